import DataParallel
import Datasets
import Distributed
import Formats
import Foundation
@testable import Import
import Kernels
@testable import Model
@testable import Retrieval
import TestSupport
@testable import Training
import XCTest

/// The extensions of CLIP-IT.md decisions 8–10 as training runs: out-of-fold teachers,
/// `clipit-kd`, `clipit-contrastive`, `clipit-fusion` and `retriever-kd`, each the same bits
/// on 1 and on 3 ranks.
final class DistillationTrainingTests: XCTestCase {
    var data: TinyTrainingData!

    override func setUpWithError() throws { data = try TinyTrainingData(trainCount: 24) }
    override func tearDown() { data.remove() }

    private func teachers(ranks: Int, out: String, folds: Int = 3) throws -> String {
        let config = try data.config(method: "text-only", overrides: ["distill.folds=\(folds)", "train.epochs=2"])
        if ranks == 1 {
            return try FoldTeachers.train(config: config, comm: SingleRankCommunicator(), outputDirectory: out,
                                          showProgress: false)
        }
        return try ThreadRankCommunicator.run(size: ranks) { comm in
            try FoldTeachers.train(config: config, comm: comm, outputDirectory: out, showProgress: false)
        }[0]
    }

    func testFoldsAreBalancedSeededPermutations() {
        let folds = FoldTeachers.folds(count: 23, k: 5, seed: 3)
        XCTAssertEqual((0..<5).map { k in folds.filter { $0 == k }.count }, [5, 5, 5, 4, 4])
        XCTAssertEqual(folds, FoldTeachers.folds(count: 23, k: 5, seed: 3))
        XCTAssertNotEqual(folds, FoldTeachers.folds(count: 23, k: 5, seed: 4))
    }

    /// The teacher file is the same bytes on 1 and 3 ranks; every image's logits come from
    /// the teacher that did not train on it.
    func testOutOfFoldTeacherLogitsAreTheSameOnAnyRankCount() throws {
        let one = try teachers(ranks: 1, out: data.directory + "/t1")
        let three = try teachers(ranks: 3, out: data.directory + "/t3")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: one)), try Data(contentsOf: URL(fileURLWithPath: three)))
        let file = try TeacherLogits(path: one)
        XCTAssertEqual(file.summary.folds, 3)
        XCTAssertEqual(file.summary.trainCount, 24)
        XCTAssertEqual(file.summary.foldBalancedAccuracy.count, 3)
        XCTAssertEqual(file.logits.count, 24 * 3)
        // Teacher k trained on the other folds only: its run saw 16 of the 24 images.
        for k in 0..<3 {
            let summary = try ProjectJSON.decoder().decode(
                TrainingSummary.self, from: Data(contentsOf: URL(fileURLWithPath: data.directory + "/t1/fold-\(k)/summary.json")))
            XCTAssertEqual(summary.provenance?.trainImages, 24)
            XCTAssertEqual(summary.epochs * 16 / 4, summary.steps, "fold \(k) trains on 16 images in batches of 4")
        }
        // Predicting image i with its own fold's teacher reproduces the file's row.
        let (model, header) = try Checkpoint.loadModel(data.directory + "/t1/fold-1/best.safetensors")
        let assembler = try evaluationAssembler(for: model, header: header, dataset: DatasetFile(path: data.train),
                                                pairsPath: data.trainPairs, reportsPath: data.reports)
        let image = file.summary.fold.firstIndex(of: 1)!
        let logits = model.inEvaluationMode { () -> [Float] in
            let batch = assembler.assemble([image], inputs: model.predictionInputs, seed: 0, epoch: 0)
            return Array(UnsafeBufferPointer(start: model.predict(batch), count: 3))
        }
        // One image alone or in a chunk of 16 rows: the same sums up to GEMM blocking.
        for (a, b) in zip(logits, file.logits[image * 3 ..< image * 3 + 3]) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    /// clipit-kd, clipit-contrastive and clipit-fusion: the same loss trajectory and weights
    /// on 1 and on 3 ranks (deterministic mode), every term present in the logged steps.
    func testExtensionsGiveTheSameBitsOnOneAndThreeRanks() throws {
        let teacher = try teachers(ranks: 1, out: data.directory + "/teachers")
        for (method, term) in [("clipit-kd", "kd"), ("clipit-contrastive", "contrastive"), ("clipit-fusion", "ce_real_text")] {
            let config = try data.config(method: method, overrides: [
                "distill.teacher=\(teacher)", "train.batch_size=6", "train.micro_batch_size=2", "train.epochs=2",
                "model.lora.dropout=0.1"])
            XCTAssertEqual(config.model.textGradient, .stopped, method)
            let single = data.directory + "/\(method)-1", threaded = data.directory + "/\(method)-3"
            _ = try Trainer(config: config, comm: SingleRankCommunicator(), outputDirectory: single, showProgress: false).run()
            _ = try ThreadRankCommunicator.run(size: 3) { comm in
                try Trainer(config: config, comm: comm, outputDirectory: threaded, showProgress: false).run()
            }
            let a = try stepLosses(single)
            XCTAssertEqual(a.count, 8, method)
            XCTAssertEqual(a, try stepLosses(threaded), method)
            XCTAssertEqual(try tensorBits(single + "/last.safetensors"), try tensorBits(threaded + "/last.safetensors"), method)
            let log = try String(contentsOfFile: single + "/metrics.jsonl", encoding: .utf8)
            XCTAssertTrue(log.contains("\"\(term)\":"), "\(method) logs its \(term) term")
        }
    }

    /// The soft-target term moves the model: the same run with α = 0 ends elsewhere.
    func testSoftTargetsChangeTheTraining() throws {
        let teacher = try teachers(ranks: 1, out: data.directory + "/teachers")
        let runs = try [0.5, 0.0].map { alpha -> [String: [UInt32]] in
            let config = try data.config(method: "clipit-kd", overrides: ["distill.teacher=\(teacher)",
                                                                          "distill.kd_weight=\(alpha)"])
            let out = data.directory + "/kd-\(alpha)"
            _ = try Trainer(config: config, comm: SingleRankCommunicator(), outputDirectory: out, showProgress: false).run()
            return try tensorBits(out + "/last.safetensors")
        }
        XCTAssertNotEqual(runs[0]["heads.vision_head.weight"], runs[1]["heads.vision_head.weight"])
    }

    /// A clipit-kd run whose teachers live in its folder (as when trained in the same job)
    /// is moved, resumed from there and ends as the uninterrupted run; the checkpoint finds
    /// the teacher file in the moved folder.
    func testAKDRunWithItsTeachersInsideMovesAndResumes() throws {
        let run = data.directory + "/kd-run", moved = data.directory + "/kd-moved", whole = data.directory + "/kd-whole"
        let teacher = try teachers(ranks: 1, out: run + "/teachers")
        var config = try data.config(method: "clipit-kd", overrides: ["distill.teacher=\(teacher)"])
        _ = try Trainer(config: config, comm: SingleRankCommunicator(), outputDirectory: whole, showProgress: false).run()
        config.train.stopAfterSteps = 4
        _ = try Trainer(config: config, comm: SingleRankCommunicator(), outputDirectory: run, showProgress: false).run()
        try FileManager.default.moveItem(atPath: run, toPath: moved)
        let header = try Checkpoint.open(moved + "/last.safetensors").header
        XCTAssertEqual(URL(fileURLWithPath: header.config.distill.teacher).standardized.path,
                       URL(fileURLWithPath: moved + "/teachers/teacher.safetensors").standardized.path)
        var resumed = header.config
        resumed.train.stopAfterSteps = 0
        _ = try Trainer(config: resumed, comm: SingleRankCommunicator(), outputDirectory: moved,
                        resume: moved + "/last.safetensors", showProgress: false).run()
        XCTAssertEqual(try tensorBits(whole + "/last.safetensors"), try tensorBits(moved + "/last.safetensors"))
    }

    /// A teacher file made for another training set is refused, naming both.
    func testTeacherOfAnotherTrainingSetIsRefused() throws {
        let teacher = try teachers(ranks: 1, out: data.directory + "/teachers")
        let other = try TinyTrainingData(trainCount: 21)
        defer { other.remove() }
        let config = try other.config(method: "clipit-kd", overrides: ["distill.teacher=\(teacher)"])
        XCTAssertThrowsError(try Trainer(config: config, comm: SingleRankCommunicator(),
                                         outputDirectory: other.directory + "/run", showProgress: false)) { error in
            XCTAssertTrue("\(error)".contains("24 training images"), "\(error)")
            XCTAssertTrue("\(error)".contains("train the teachers on this training set"), "\(error)")
        }
        XCTAssertThrowsError(try TeacherLogits(path: data.train)) { error in
            XCTAssertTrue("\(error)".contains(data.train), "\(error)")
        }
        XCTAssertThrowsError(try TeacherLogits(path: data.directory + "/teachers/fold-0/last.safetensors")) { error in
            XCTAssertTrue("\(error)".contains("not a teacher-logits file"), "\(error)")
        }
    }

    /// An unlabelled pool of `count` images (16×16 RGB) and its pairs file in the data folder.
    private func writePool(count: Int) throws -> (images: String, pairs: String) {
        let images = data.directory + "/unlabeled.cds", pairs = data.directory + "/unlabeled.pairs.jsonl"
        let writer = try DatasetWriter(path: images, height: 16, width: 16, channels: 3, count: count,
                                       info: DatasetInfo(classNames: TinyTrainingData.classNames, split: "unlabeled",
                                                         source: "unit test", labelled: false))
        var generator = RandomGenerator(seed: 77)
        for _ in 0..<count {
            try writer.append(image: (0..<(16 * 16 * 3)).map { _ in UInt8(generator.nextInt(upperBound: 256)) })
        }
        try writer.finish()
        let records = (0..<count).map { i in PairRecord(image: i, report: i % 12, score: 0.5, topReports: [i % 12], topScores: [0.5]) }
        try PairsFile(split: "unlabeled", strategy: .top1, seed: 0, reportCount: 12, recordedK: 1, records: records)
            .write(to: URL(fileURLWithPath: pairs))
        return (images, pairs)
    }

    /// Unlabelled images join the distillation terms: teachers average their logits over the
    /// pool; a clipit-kd run with 4 unlabelled images per batch is the same bits on 1 and 3
    /// ranks, and differs from the run without them; a labelled pool is refused.
    func testUnlabelledPoolJoinsTheDistillationTermsOnAnyRankCount() throws {
        let pool = try writePool(count: 10)
        let poolKeys = ["data.unlabeled=\(pool.images)", "data.unlabeled_pairs=\(pool.pairs)"]
        let teacherConfig = try data.config(method: "text-only", overrides: ["distill.folds=2"] + poolKeys)
        let teacher = try FoldTeachers.train(config: teacherConfig, comm: SingleRankCommunicator(),
                                             outputDirectory: data.directory + "/teachers", showProgress: false)
        let file = try TeacherLogits(path: teacher)
        XCTAssertEqual(file.summary.unlabeledCount, 10)
        XCTAssertEqual(file.unlabeledLogits.count, 30)
        let config = try data.config(method: "clipit-kd", overrides: poolKeys + [
            "distill.teacher=\(teacher)", "train.unlabeled_batch_size=4", "train.micro_batch_size=2", "distill.contrastive_weight=0.5"])
        let single = data.directory + "/pool-1", threaded = data.directory + "/pool-3"
        let summary = try Trainer(config: config, comm: SingleRankCommunicator(), outputDirectory: single, showProgress: false).run()
        XCTAssertEqual(summary.steps, 12)
        _ = try ThreadRankCommunicator.run(size: 3) { comm in
            try Trainer(config: config, comm: comm, outputDirectory: threaded, showProgress: false).run()
        }
        XCTAssertEqual(try stepLosses(single), try stepLosses(threaded))
        XCTAssertEqual(try tensorBits(single + "/last.safetensors"), try tensorBits(threaded + "/last.safetensors"))
        // Without the pool's rows (same teachers, same pool file attached): another model.
        var without = config
        without.train.unlabeledBatchSize = 0
        _ = try Trainer(config: without, comm: SingleRankCommunicator(), outputDirectory: data.directory + "/pool-0",
                        showProgress: false).run()
        XCTAssertNotEqual(try tensorBits(single + "/last.safetensors")["heads.projection.weight"],
                          try tensorBits(data.directory + "/pool-0/last.safetensors")["heads.projection.weight"])
        // The pool's draws: 4 per step, every image once per pool epoch, after the labelled items.
        let trainer = try Trainer(config: config, comm: SingleRankCommunicator(), outputDirectory: data.directory + "/draws",
                                  showProgress: false)
        var batches = trainer.batches
        let first = (0..<5).flatMap { Array(batches.items(epoch: 0, batch: $0).suffix(4)) }
        XCTAssertTrue(first.allSatisfy { $0 >= 24 && $0 < 34 })
        XCTAssertEqual(Set(first.prefix(10)).count, 10, "the first 10 draws are the whole pool")
        var labelledPool = config
        labelledPool.data.unlabeled = data.val
        XCTAssertThrowsError(try Trainer(config: labelledPool, comm: SingleRankCommunicator(),
                                         outputDirectory: data.directory + "/bad", showProgress: false)) { error in
            XCTAssertTrue("\(error)".contains("holds labelled images"), "\(error)")
        }
    }

    /// retriever-kd: targets from the retriever's image tower, teachers = probes on it.
    func testRetrieverKDTrainsOnTheRetrieversImageTower() throws {
        let retrieverConfig = try RetrieverPresets.config("tiny")
        let retriever = try RetrieverModel(retrieverConfig, seed: 9)
        let corpus = try ReportCorpus(path: data.reports)
        let tokenizer = WordTokenizer(corpus: corpus.texts.map(ReportCleaning.clean),
                                      vocabularySize: retrieverConfig.text.vocabularySize,
                                      contextLength: retrieverConfig.text.contextLength)
        let path = data.directory + "/retriever.safetensors"
        try retriever.export(to: path, metadata: [RetrieverModel.tokenizerMetadataKey: tokenizer.stateJSON,
                                                  RetrieverModel.normalizationMetadataKey: "imagenet"])
        var student = try data.config(method: "retriever-kd", overrides: ["distill.retriever=\(path)", "distill.folds=2",
                                                                          "model.init_text=\(path)"])
        let teacherConfig = try FoldTeachers.teacherConfig(for: student)
        XCTAssertEqual(teacherConfig.method, .unimodal)
        XCTAssertEqual(teacherConfig.model.initVision, path)
        student.distill.teacher = try FoldTeachers.train(config: teacherConfig, comm: SingleRankCommunicator(),
                                                         outputDirectory: data.directory + "/probes", showProgress: false)
        XCTAssertEqual(try TeacherLogits.summary(path: student.distill.teacher).method, "unimodal")
        let trainer = try Trainer(config: student, comm: SingleRankCommunicator(), outputDirectory: data.directory + "/rkd",
                                  showProgress: false)
        // t of image i is the retriever's normalised embedding of image i.
        let (table, width) = try XCTUnwrap(trainer.trainAssembler.reportEmbeddings)
        XCTAssertEqual(table.count, 24 * width)
        let encoder = try RetrieverExportEncoder(path: path)
        let direct = l2NormalizedRows(encoder.embedImages(try DatasetFile(path: data.train), range: 5..<6), dimension: width)
        // One image alone or in a batch of 24: the same sums up to GEMM blocking, ~1e-6.
        for (a, b) in zip(table[5 * width ..< 6 * width], direct) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        let summary = try trainer.run()
        XCTAssertEqual(summary.teachers?.method, "unimodal")
    }
}
