@testable import DataParallel
import Datasets
import Distributed
@testable import Evaluation
import Formats
import Foundation
@testable import Import
import Kernels
@testable import Model
@testable import Retrieval
import TestSupport
@testable import Training
import XCTest

/// A tiny labelled dataset on disk: train/val `.cds` (16×16 RGB, 3 classes), a report
/// corpus and pairs files, in a fresh temporary directory.
struct TinyTrainingData {
    let directory: String
    var train: String { directory + "/train.cds" }
    var val: String { directory + "/val.cds" }
    var reports: String { directory + "/reports.jsonl" }
    var trainPairs: String { directory + "/train.pairs.jsonl" }
    var valPairs: String { directory + "/val.pairs.jsonl" }
    static let classNames = ["tumour", "stroma", "normal"]

    init(trainCount: Int = 20, valCount: Int = 9, reportCount: Int = 12) throws {
        directory = NSTemporaryDirectory() + "clipit-trainer-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var generator = RandomGenerator(seed: 42)
        for (split, count) in [("train", trainCount), ("val", valCount)] {
            let writer = try DatasetWriter(path: directory + "/\(split).cds", height: 16, width: 16, channels: 3,
                                           count: count, info: DatasetInfo(classNames: Self.classNames, split: split,
                                                                           source: "unit test"))
            for i in 0..<count {
                let label = i % 3
                // Class-dependent mean colour plus noise, so the task is learnable.
                let image = (0..<(16 * 16 * 3)).map { k -> UInt8 in
                    let base = k % 3 == label ? 170 : 70
                    return UInt8(clamping: base + generator.nextInt(upperBound: 60) - 30)
                }
                try writer.append(image: image, label: label)
            }
            try writer.finish()
        }
        let words = [["malignant", "glands", "atypia", "mitoses"], ["fibrous", "spindle", "collagen", "stroma"],
                     ["normal", "crypts", "goblet", "mucosa"]]
        var lines = ""
        for j in 0..<reportCount {
            let w = words[j % 3]
            lines += "{\"id\":\"r\(j)\",\"text\":\"Specimen \(j): \(w[0]) \(w[1]) with \(w[2]), \(w[3]). Redacted *** notes.\"}\n"
        }
        try lines.write(toFile: reports, atomically: true, encoding: .utf8)
        for (split, count, path) in [("train", trainCount, trainPairs), ("val", valCount, valPairs)] {
            let records = (0..<count).map { i -> PairRecord in
                let report = (i % 3) + 3 * ((i / 3) % (reportCount / 3))   // a report of the image's class
                return PairRecord(image: i, report: report, score: 0.5, topReports: [report], topScores: [0.5])
            }
            try PairsFile(split: split, strategy: .top1, seed: 0, reportCount: reportCount, recordedK: 1, records: records)
                .write(to: URL(fileURLWithPath: path))
        }
    }

    /// The tiny preset on this data, with `overrides` on top.
    func config(method: String = "clipit", overrides: [String] = []) throws -> TrainingConfig {
        try TrainingConfig.resolve(yaml: nil, overrides: [
            "method=\(method)", "data.train=\(train)", "data.val=\(val)", "data.reports=\(reports)",
            "data.train_pairs=\(trainPairs)", "data.val_pairs=\(valPairs)", "train.batch_size=4",
            "train.epochs=2", "train.validations_per_epoch=2", "data.augment=true",
        ] + overrides)
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

/// The loss of every step in a run's metrics log.
func stepLosses(_ runDirectory: String) throws -> [Double] {
    let text = try String(contentsOfFile: runDirectory + "/metrics.jsonl", encoding: .utf8)
    return try text.split(separator: "\n").compactMap { line in
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        return object["type"] as? String == "step" ? object["loss"] as? Double : nil
    }
}

/// Every tensor of a safetensors file as raw bits, by name.
func tensorBits(_ path: String) throws -> [String: [UInt32]] {
    let file = try SafeTensorsFile(path: path)
    var result: [String: [UInt32]] = [:]
    for name in file.names { result[name] = try file.floats(name).map(\.bitPattern) }
    return result
}

final class TrainerTests: XCTestCase {
    var data: TinyTrainingData!

    override func setUpWithError() throws { data = try TinyTrainingData() }
    override func tearDown() { data.remove() }

    func run(_ config: TrainingConfig, out: String, resume: String? = nil,
             comm: any Communicator = SingleRankCommunicator()) throws -> TrainingSummary {
        try Trainer(config: config, comm: comm, outputDirectory: out, resume: resume, showProgress: false).run()
    }

    /// k + m steps in one go, or k steps, stop, resume for m: the same bits.
    func testResumeContinuesBitIdentically() throws {
        let config = try data.config(overrides: ["optim.schedule=cosine", "model.lora.dropout=0.1"])
        let whole = data.directory + "/whole", split = data.directory + "/split"
        let full = try run(config, out: whole)
        XCTAssertEqual(full.steps, 10)
        XCTAssertFalse(full.stopped)

        var interrupted = config
        interrupted.train.stopAfterSteps = 4
        let first = try run(interrupted, out: split)
        XCTAssertTrue(first.stopped)
        XCTAssertEqual(first.steps, 4)
        let header = try Checkpoint.open(split + "/last.safetensors").header
        XCTAssertEqual(header.state.step, 4)
        XCTAssertEqual(header.state.epoch, 0)
        XCTAssertEqual(header.state.nextBatch, 4)

        var resumed = header.config
        resumed.train.stopAfterSteps = 0
        let second = try run(resumed, out: split, resume: split + "/last.safetensors")
        XCTAssertEqual(second.steps, 10)
        XCTAssertEqual(second.bestStep, full.bestStep)
        XCTAssertEqual(second.bestBalancedAccuracy, full.bestBalancedAccuracy)

        let a = try tensorBits(whole + "/last.safetensors"), b = try tensorBits(split + "/last.safetensors")
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        XCTAssertTrue(a.keys.contains("optimizer.exp_avg"))
        for name in a.keys { XCTAssertEqual(a[name], b[name], "\(name) differs after resuming") }
        XCTAssertEqual(try stepLosses(whole), try stepLosses(split), "the resumed log continues the same trajectory")
    }

    /// Plain mode: the same global batches on 1 and 3 ranks (uneven slices 2/1/1, and an
    /// empty slice with a batch of 2) give the same losses up to float summation order.
    func testLossTrajectoryDoesNotDependOnTheRankCount() throws {
        for batch in [4, 2] {
            let config = try data.config(overrides: ["train.batch_size=\(batch)", "train.max_steps=6", "model.lora.dropout=0.2",
                                                     "train.deterministic=false"])
            let single = data.directory + "/single-\(batch)", threaded = data.directory + "/three-\(batch)"
            _ = try run(config, out: single)
            let summaries = try ThreadRankCommunicator.run(size: 3) { comm in
                try Trainer(config: config, comm: comm, outputDirectory: threaded, showProgress: false).run()
            }
            XCTAssertEqual(Set(summaries.map(\.steps)), [6])
            let a = try stepLosses(single), b = try stepLosses(threaded)
            XCTAssertEqual(a.count, 6)
            XCTAssertEqual(a.count, b.count)
            for (x, y) in zip(a, b) {
                XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(x)), "batch \(batch): \(a) vs \(b)")
            }
        }
    }

    /// Deterministic mode: 1 and 3 ranks give byte-identical checkpoints and exactly equal
    /// losses, with micro-batches split 1/1/1 (batch 5 in micro-batches of 2: the last one
    /// shorter) and 2/1/1 (batch 4 in micro-batches of 1), dropout and augmentation on; the
    /// plain mode's float allreduce gives other bits (checked so the comparison can fail).
    func testDeterministicModeGivesTheSameBitsOnAnyRankCount() throws {
        for (batch, micro) in [(5, 2), (4, 1)] {
            let config = try data.config(overrides: [
                "train.batch_size=\(batch)", "train.micro_batch_size=\(micro)", "train.deterministic=true",
                "train.epochs=4", "model.lora.dropout=0.2", "data.augment=true"])
            let single = data.directory + "/det1-\(batch)", threaded = data.directory + "/det3-\(batch)"
            _ = try run(config, out: single)
            _ = try ThreadRankCommunicator.run(size: 3) { comm in
                try Trainer(config: config, comm: comm, outputDirectory: threaded, showProgress: false).run()
            }
            let a = try stepLosses(single), b = try stepLosses(threaded)
            XCTAssertEqual(a.count, 4 * (20 / batch))
            XCTAssertEqual(a, b, "batch \(batch), micro-batches of \(micro)")
            for name in ["last.safetensors", "best.safetensors"] {
                XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: single + "/" + name)),
                               try Data(contentsOf: URL(fileURLWithPath: threaded + "/" + name)),
                               "batch \(batch): \(name) differs between 1 and 3 ranks")
            }
        }
        var plain = try data.config(overrides: ["train.batch_size=4", "train.epochs=4", "train.deterministic=false"])
        plain.train.validationsPerEpoch = 0
        let single = data.directory + "/plain1", threaded = data.directory + "/plain3"
        _ = try run(plain, out: single)
        _ = try ThreadRankCommunicator.run(size: 3) { comm in
            try Trainer(config: plain, comm: comm, outputDirectory: threaded, showProgress: false).run()
        }
        XCTAssertNotEqual(try Data(contentsOf: URL(fileURLWithPath: single + "/last.safetensors")),
                          try Data(contentsOf: URL(fileURLWithPath: threaded + "/last.safetensors")),
                          "the plain mode was expected to differ in the last bits between 1 and 3 ranks")
    }

    /// `train.attention_probabilities=recomputed` (both towers of CLIP-IT) trains to exactly
    /// the losses of the stored probabilities; an unknown value is refused naming the key.
    func testRecomputedAttentionProbabilitiesTrainTheSameLosses() throws {
        let stored = try data.config(overrides: ["train.epochs=2"])
        let recomputed = try data.config(overrides: ["train.epochs=2", "train.attention_probabilities=recomputed"])
        XCTAssertEqual(stored.train.attentionProbabilities, .stored)
        XCTAssertEqual(recomputed.train.attentionProbabilities, .recomputed)
        _ = try run(stored, out: data.directory + "/attention-stored")
        _ = try run(recomputed, out: data.directory + "/attention-recomputed")
        let a = try stepLosses(data.directory + "/attention-stored"), b = try stepLosses(data.directory + "/attention-recomputed")
        XCTAssertFalse(a.isEmpty)
        XCTAssertEqual(a, b)
        XCTAssertThrowsError(try data.config(overrides: ["train.attention_probabilities=flash"])) { error in
            XCTAssertTrue("\(error)".contains("attention_probabilities"), "\(error)")
        }
    }

    func testEveryMethodTrainsAndBuildsTheModelItNames() throws {
        var trainable: [String: Int] = [:]
        // The soft-target methods read teachers' logits; retriever-kd's oracle has its own test.
        let teachers = try FoldTeachers.train(config: data.config(method: "text-only", overrides: ["distill.folds=2",
                                                                                                   "train.max_steps=2"]),
                                              comm: SingleRankCommunicator(), outputDirectory: data.directory + "/teachers",
                                              showProgress: false)
        for method in TrainingMethod.all where method != .retrieverKD {
            let config = try data.config(method: method.description,
                                         overrides: ["train.max_steps=2", "distill.teacher=\(teachers)"])
            let out = data.directory + "/\(method)"
            let summary = try run(config, out: out)
            XCTAssertEqual(summary.steps, 2, "\(method)")
            XCTAssertNotNil(summary.finalLoss.map { $0.isFinite ? $0 : nil } ?? nil, "\(method)")
            trainable[method.description] = summary.trainableParameters
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/best.safetensors"), "\(method)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/config.yaml"), "\(method)")
            let (model, header) = try Checkpoint.loadModel(out + "/last.safetensors")
            XCTAssertEqual(header.config.method, method)
            XCTAssertEqual(model.predictionInputs, method == .textOnly ? [.tokens] : [.images])
        }
        let t = trainable
        XCTAssertLessThan(t["unimodal"]!, t["unimodal-lora"]!)
        XCTAssertLessThan(t["unimodal-lora"]!, t["clipit"]!)
        XCTAssertLessThan(t["no-text-lora"]!, t["clipit"]!)
        XCTAssertLessThan(t["no-vision-lora"]!, t["clipit"]!)
        XCTAssertLessThan(t["clipit"]!, t["full-finetune"]!)
        XCTAssertLessThan(t["no-distill"]!, t["clipit"]!)
        XCTAssertLessThan(t["vision-logits-only"]!, t["clipit"]!)
        XCTAssertEqual(t["text-drop:50"], t["clipit"])
        // The extensions train the image side only (the text tower is frozen).
        XCTAssertEqual(t["clipit-kd"], t["no-text-lora"])
        XCTAssertEqual(t["clipit-contrastive"], t["no-text-lora"])
        XCTAssertEqual(t["clipit-fusion"], t["no-text-lora"])
    }

    func testTrainingLowersTheLossAndMergedInferenceMatches() throws {
        let config = try data.config(method: "clipit", overrides: ["train.epochs=6", "data.augment=false"])
        let out = data.directory + "/learn"
        let summary = try run(config, out: out)
        let losses = try stepLosses(out)
        XCTAssertLessThan(losses.last!, losses.first!)
        XCTAssertNotNil(summary.bestBalancedAccuracy)

        let (model, header) = try Checkpoint.loadModel(out + "/best.safetensors")
        let val = try DatasetFile(path: data.val)
        let assembler = try evaluationAssembler(for: model, header: header, dataset: val, pairsPath: nil, reportsPath: nil)
        let comm = SingleRankCommunicator()
        let unmerged = try evaluate(model, on: assembler, comm: comm, batchSize: 5)
        XCTAssertEqual(unmerged.report.balancedAccuracy, summary.bestBalancedAccuracy!, accuracy: 1e-12,
                       "the best checkpoint reproduces its validation score")
        model.mergeLoRA()
        let merged = try evaluate(model, on: assembler, comm: comm, batchSize: 7)
        XCTAssertEqual(merged.report.confusionMatrix, unmerged.report.confusionMatrix)
        for (x, y) in zip(merged.predictions.scores, unmerged.predictions.scores) { XCTAssertEqual(x, y, accuracy: 1e-4) }
    }

    func testRanksWithDifferentWeightsStopWithAClearMessage() throws {
        let config = try data.config()
        XCTAssertThrowsError(try ThreadRankCommunicator.run(size: 2) { comm -> Int in
            var mine = config
            mine.seed = comm.rank   // rank 1 builds different weights
            _ = try Trainer(config: mine, comm: comm, outputDirectory: self.data.directory + "/bad", showProgress: false)
            return 0
        }) { error in
            XCTAssertTrue(String(describing: error).contains("different initial weights"), "\(error)")
        }
    }

    func testMissingInputsAreReportedWithWhatToPass() throws {
        var config = try data.config()
        config.data.trainPairs = ""
        XCTAssertThrowsError(try config.validate()) { XCTAssertTrue("\($0)".contains("--pairs")) }
        config = try data.config()
        config.data.train = data.directory + "/missing.cds"
        XCTAssertThrowsError(try Trainer(config: config, comm: SingleRankCommunicator(),
                                         outputDirectory: data.directory + "/x", showProgress: false))
        config = try data.config(overrides: ["train.batch_size=64"])
        XCTAssertThrowsError(try Trainer(config: config, comm: SingleRankCommunicator(),
                                         outputDirectory: data.directory + "/x", showProgress: false)) {
            XCTAssertTrue("\($0)".contains("larger than the training set"))
        }
    }

    func testValidationPointsAndMetricsLog() throws {
        let config = try data.config(overrides: ["train.validations_per_epoch=3", "train.max_steps=7"])
        let out = data.directory + "/log"
        _ = try run(config, out: out)
        let lines = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let objects = try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let steps = objects.filter { $0["type"] as? String == "step" }
        let vals = objects.filter { $0["type"] as? String == "val" }
        XCTAssertEqual(steps.map { $0["step"] as! Int }, Array(1...7))
        for key in ["step", "epoch", "loss", "ce", "distill", "lr", "grad_norm", "images_per_s", "text_cos"] {
            XCTAssertNotNil(steps[0][key], key)
        }
        for s in steps {   // a mean cosine of distinct unit vectors
            let c = s["text_cos"] as! Double
            XCTAssertTrue(c > -1 && c <= 1 + 1e-5, "text_cos \(c)")
        }
        // 5 steps per epoch, 3 validations: after steps 2, 4, 5 of each epoch; the run ends at 7.
        XCTAssertEqual(vals.map { $0["step"] as! Int }, [2, 4, 5, 7])
        XCTAssertEqual(vals[0]["samples"] as? Int, 9)
        for s in steps { XCTAssertLessThanOrEqual(s["grad_norm"] as! Double, 1e9) }
    }
}
