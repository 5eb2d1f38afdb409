@testable import DataParallel
import Datasets
import Distributed
@testable import Evaluation
import Formats
import Foundation
@testable import Import
import Kernels
import Model
@testable import Retrieval
import TestSupport
@testable import Training
import XCTest

/// The retriever (CLIP-style image and text towers + logit scale) and its data-parallel
/// InfoNCE step.
final class RetrieverTests: XCTestCase {
    /// The tiny towers of docs/model-contract.md, both projecting to 24, LoRA optional.
    static func tinyConfig(lora: Bool = false) -> RetrieverConfig {
        var vision = VisionConfig.tiny
        vision.projectionDim = 24
        var config = RetrieverConfig(vision: vision, text: .tiny)
        if lora {
            let training = TowerTraining(lora: LoRAConfig(rank: 4, alpha: 8, dropout: 0.25), targets: .all)
            config.visionTraining = training
            config.textTraining = training
        }
        return config
    }

    /// A global batch of `n` random pairs: images (n, 3, 16, 16), token ids (n, 16) with an
    /// end-of-text token at a varying position.
    static func batch(_ n: Int, seed: UInt64) -> (images: [Float], tokens: [Int32]) {
        var g = RandomGenerator(seed: seed)
        let images = (0..<(n * 3 * 16 * 16)).map { _ in 2 * g.nextFloat() - 1 }
        var tokens: [Int32] = []
        for _ in 0..<n {
            let length = 3 + g.nextInt(upperBound: 12)
            for t in 0..<16 {
                tokens.append(t < length ? Int32(g.nextInt(upperBound: 62)) : (t == length ? 63 : 0))
            }
        }
        return (images, tokens)
    }

    /// Runs one data-parallel step on `ranks` thread ranks, each with its own model built
    /// from the same seed and the evenly split slice of the global batch; returns rank 0's
    /// allreduced gradient and the summed loss (checked equal on every rank).
    func reducedGradient(ranks: Int, config: RetrieverConfig, n: Int, dropoutStep: UInt64? = nil,
                         slices: ((Int) -> Range<Int>)? = nil) throws -> (gradient: [Float], loss: Float) {
        let (images, tokens) = Self.batch(n, seed: 11)
        let imageSize = 3 * 16 * 16, L = 16
        let results = try ThreadRankCommunicator.run(size: ranks) { comm -> ([Float], Float) in
            let model = try RetrieverModel(config, seed: 5)
            let mine = slices?(comm.rank) ?? evenSlice(count: n, rank: comm.rank, size: comm.size)
            if let dropoutStep {
                model.store.execution.dropout = DropoutStream(seed: 9, step: dropoutStep, firstGlobalRow: mine.lowerBound)
            } else {
                model.isTraining = false
            }
            model.store.zeroGradients()
            let localImages = Array(images[mine.lowerBound * imageSize ..< mine.upperBound * imageSize])
            let localTokens = Array(tokens[mine.lowerBound * L ..< mine.upperBound * L])
            let loss = try localImages.withUnsafeBufferPointer { i in
                try localTokens.withUnsafeBufferPointer { t in
                    try model.forwardBackward(images: i.baseAddress, tokens: t.baseAddress, batch: mine.count, comm: comm)
                }
            }
            try comm.allreduce(model.store.gradients.data, count: model.store.trainableCount, .sum)
            return (model.store.gradients.array, try comm.allreduce(loss, .sum))
        }
        for r in results.indices {
            XCTAssertEqual(results[r].0, results[0].0, "rank \(r) holds a different reduced gradient")
            XCTAssertEqual(results[r].1, results[0].1, "rank \(r) holds a different loss")
        }
        return results[0]
    }

    func assertClose(_ a: [Float], _ b: [Float], relative: Float, _ what: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        let scale = max(b.map(abs).max() ?? 0, 1e-6)
        let error = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(error / scale, relative, "\(what): max |a − b| / max |b| = \(error / scale)",
                                 file: file, line: line)
    }

    func testReducedGradientEqualsTheSingleRankGradient() throws {
        let config = Self.tinyConfig()
        let single = try reducedGradient(ranks: 1, config: config, n: 7)
        XCTAssertGreaterThan(single.gradient.map(abs).max() ?? 0, 0)
        // Every tower parameter and the logit scale receive a gradient.
        let model = try RetrieverModel(config, seed: 5)
        for p in model.store.trainableParameters {
            let g = single.gradient[p.offset ..< p.offset + p.count]
            XCTAssertTrue(g.contains { $0 != 0 }, "\(p.name) has no gradient")
        }
        for ranks in [2, 3] {
            let multi = try reducedGradient(ranks: ranks, config: config, n: 7)
            assertClose(multi.gradient, single.gradient, relative: 2e-5, "\(ranks) ranks")
            XCTAssertEqual(multi.loss, single.loss, accuracy: 1e-5 * max(1, abs(single.loss)))
        }
    }

    func testUnevenAndEmptySlicesGiveTheSameGradient() throws {
        let config = Self.tinyConfig()
        let single = try reducedGradient(ranks: 1, config: config, n: 5)
        // Rank 1 holds nothing, rank 0 one pair, rank 2 the other four.
        let uneven = try reducedGradient(ranks: 3, config: config, n: 5) { rank in
            [0..<1, 1..<1, 1..<5][rank]
        }
        assertClose(uneven.gradient, single.gradient, relative: 2e-5, "uneven slices")
        XCTAssertEqual(uneven.loss, single.loss, accuracy: 1e-5 * max(1, abs(single.loss)))
    }

    func testLoRAWithDropoutGivesTheSameGradientOnAnyRankCount() throws {
        let config = Self.tinyConfig(lora: true)
        let single = try reducedGradient(ranks: 1, config: config, n: 6, dropoutStep: 3)
        let multi = try reducedGradient(ranks: 3, config: config, n: 6, dropoutStep: 3)
        assertClose(multi.gradient, single.gradient, relative: 2e-5, "LoRA, dropout on")
        // Only LoRA factors and the logit scale are trainable.
        let model = try RetrieverModel(config, seed: 5)
        XCTAssertTrue(model.store.trainableParameters.allSatisfy {
            isLoRAParameterName($0.name) || $0.name == "logit_scale"
        })
    }

    /// The loss equals the InfoNCE of the single-process embeddings, and the gradient of
    /// the logit scale matches a central finite difference of that loss.
    func testLossAndLogitScaleGradientAgainstFiniteDifference() throws {
        let config = Self.tinyConfig()
        let (images, tokens) = Self.batch(6, seed: 3)
        let model = try RetrieverModel(config, seed: 1)
        model.isTraining = false
        let comm = SingleRankCommunicator()
        func loss() throws -> Double {
            model.store.zeroGradients()
            return Double(try images.withUnsafeBufferPointer { i in
                try tokens.withUnsafeBufferPointer { t in
                    try model.forwardBackward(images: i.baseAddress, tokens: t.baseAddress, batch: 6, comm: comm)
                }
            })
        }
        let value = try loss()
        let analytic = Double(model.logitScale.gradient!.pointee)
        // Reference: the symmetric InfoNCE written out in Double from the embeddings.
        let v = images.withUnsafeBufferPointer { model.embedImages($0.baseAddress!, batch: 6) }
        let t = tokens.withUnsafeBufferPointer { model.embedTexts($0.baseAddress!, batch: 6) }
        let e = exp(Double(model.logitScale.value.pointee))
        func s(_ i: Int, _ j: Int) -> Double {
            e * (0..<24).reduce(0.0) { $0 + Double(v[i * 24 + $1]) * Double(t[j * 24 + $1]) }
        }
        var reference = 0.0
        for i in 0..<6 {
            reference -= s(i, i) - log((0..<6).map { exp(s(i, $0)) }.reduce(0, +))
            reference -= s(i, i) - log((0..<6).map { exp(s($0, i)) }.reduce(0, +))
        }
        XCTAssertEqual(value, reference / 12, accuracy: 1e-5 * max(1, reference / 12))
        let s = model.logitScale.value
        let h: Float = 1e-2, base = s.pointee
        s.pointee = base + h
        let up = try loss()
        s.pointee = base - h
        let down = try loss()
        s.pointee = base
        let numeric = (up - down) / Double(2 * h)
        XCTAssertEqual(analytic, numeric, accuracy: 1e-3 + 1e-2 * abs(numeric))
    }

    func testExportMergesLoRAAndReloadsTheSameEmbeddings() throws {
        var config = Self.tinyConfig(lora: true)
        config.visionTraining.lora?.dropout = 0
        config.textTraining.lora?.dropout = 0
        let model = try RetrieverModel(config, seed: 2)
        // Non-zero LoRA B so that merging matters.
        var g = RandomGenerator(seed: 4)
        for p in model.store.parameters where p.name.contains("lora_B") || p.name.hasSuffix("lora_embedding_B") {
            g.fillGaussian(p.value, count: p.count, mean: 0, std: 0.05)
        }
        model.logitScale.value.pointee = 3.25
        let (images, tokens) = Self.batch(4, seed: 8)
        let imageEmbeddings = images.withUnsafeBufferPointer { model.embedImages($0.baseAddress!, batch: 4) }
        let textEmbeddings = tokens.withUnsafeBufferPointer { model.embedTexts($0.baseAddress!, batch: 4) }

        let path = FileManager.default.temporaryDirectory.appendingPathComponent("retriever-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try model.export(to: path, metadata: ["note": "test"])
        let (loaded, metadata) = try RetrieverModel.load(path: path)
        XCTAssertEqual(metadata["note"], "test")
        XCTAssertEqual(loaded.config, config.inference)
        XCTAssertEqual(loaded.store.trainableCount, 0)
        XCTAssertFalse(loaded.store.parameters.contains { isLoRAParameterName($0.name) })
        XCTAssertEqual(loaded.logitScale.value.pointee, 3.25)
        let reloadedImages = images.withUnsafeBufferPointer { loaded.embedImages($0.baseAddress!, batch: 4) }
        let reloadedTexts = tokens.withUnsafeBufferPointer { loaded.embedTexts($0.baseAddress!, batch: 4) }
        assertClose(reloadedImages, imageEmbeddings, relative: 1e-5, "image embeddings")
        assertClose(reloadedTexts, textEmbeddings, relative: 1e-5, "text embeddings")
        // Normalised rows.
        for r in 0..<4 {
            let row = reloadedImages[r * 24 ..< (r + 1) * 24]
            XCTAssertEqual(row.map { $0 * $0 }.reduce(0, +), 1, accuracy: 1e-5)
        }
        // The original model is unmerged again and still trains.
        assertClose(images.withUnsafeBufferPointer { model.embedImages($0.baseAddress!, batch: 4) }, imageEmbeddings,
                    relative: 1e-5, "after export")
    }

    func testMismatchedProjectionWidthsAreRejected() {
        var config = Self.tinyConfig()
        config.vision.projectionDim = 16
        XCTAssertThrowsError(try RetrieverModel(config, seed: 0)) { error in
            XCTAssertTrue(String(describing: error).contains("different widths"))
        }
    }
}

/// Pretraining and Stage-1 pairing on the tiny synthetic benchmark, on 1 and 2 thread ranks.
final class RetrieverPipelineTests: XCTestCase {
    static let directory: String = {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("clipit-retriever-\(getpid())").path
        _ = try! SyntheticBenchmark.generate(config: SyntheticBenchmarkConfig.preset("tiny")!, seed: 1, preset: "tiny",
                                             directory: path, threads: 1)
        return path
    }()

    static var settings: PretrainConfig {
        var s = PretrainConfig()
        s.epochs = 2
        s.batchSize = 12
        s.holdoutFraction = 0.25
        s.warmupSteps = 1
        s.evaluateEvery = 0
        return s
    }

    /// Pretrains on `ranks` thread ranks, exports the model from rank 0 to `export`.
    /// A pretraining stopped by a signal after its first step and resumed from its
    /// checkpoint ends with the same weights, on two thread ranks, as an uninterrupted one.
    func testAStoppedPretrainingResumesBitIdentically() throws {
        let dir = Self.directory
        let work = NSTemporaryDirectory() + "clipit-pretrain-resume-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: work) }
        func run(out: String, resume: String?, stopAtOnce: Bool) throws -> [PretrainSummary] {
            try ThreadRankCommunicator.run(size: 2) { comm -> PretrainSummary in
                let config = try RetrieverPresets.config("tiny")
                let data = try PairedRetrievalData(imagesPath: dir + "/paired.cds", reportsPath: dir + "/paired.jsonl",
                                                   holdoutFraction: Self.settings.holdoutFraction, text: config.text)
                let model = try RetrieverModel(config, seed: 7)
                let signals = StopSignals(handlingSignals: false)
                if stopAtOnce && comm.rank == 1 { signals.request() }
                let trainer = try RetrieverPretrainer(model: model, data: data, settings: Self.settings, comm: comm,
                                                      outputDirectory: out, showProgress: false, resume: resume,
                                                      stopSignals: signals)
                return try trainer.run()
            }
        }
        let whole = try run(out: work + "/whole", resume: nil, stopAtOnce: false)
        XCTAssertNil(whole[0].stoppedBySignal)
        let stopped = try run(out: work + "/split", resume: nil, stopAtOnce: true)
        XCTAssertEqual(stopped.map(\.steps), [1, 1], "both ranks stop after the same step")
        XCTAssertNotNil(stopped[0].stoppedBySignal)
        let resumed = try run(out: work + "/split", resume: work + "/split/last.safetensors", stopAtOnce: false)
        XCTAssertEqual(resumed[0].steps, whole[0].steps)
        XCTAssertEqual(resumed[0].before, whole[0].before, "the resumed run keeps the first run's 'before'")
        XCTAssertEqual(resumed[0].after, whole[0].after)
        let a = try SafeTensorsFile(path: work + "/whole/last.safetensors")
        let b = try SafeTensorsFile(path: work + "/split/last.safetensors")
        XCTAssertEqual(a.names, b.names)
        for name in a.names { XCTAssertEqual(try a.floats(name).map(\.bitPattern), try b.floats(name).map(\.bitPattern), name) }
        let losses = { (path: String) -> [Double] in
            try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").compactMap { line in
                let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                return o["type"] as? String == "step" ? o["loss"] as? Double : nil
            }
        }
        XCTAssertEqual(try losses(work + "/split/metrics.jsonl"), try losses(work + "/whole/metrics.jsonl"))
    }

    func pretrain(ranks: Int, export: String? = nil) throws -> [PretrainSummary] {
        let dir = Self.directory
        return try ThreadRankCommunicator.run(size: ranks) { comm -> PretrainSummary in
            let config = try RetrieverPresets.config("tiny")
            let data = try PairedRetrievalData(imagesPath: dir + "/paired.cds", reportsPath: dir + "/paired.jsonl",
                                               holdoutFraction: Self.settings.holdoutFraction, text: config.text)
            let model = try RetrieverModel(config, seed: 7)
            let trainer = try RetrieverPretrainer(model: model, data: data, settings: Self.settings, comm: comm,
                                                  outputDirectory: nil, showProgress: false)
            let summary = try trainer.run()
            if comm.rank == 0, let export {
                try model.export(to: export, metadata: ["clipit.tokenizer": data.tokenizer.stateJSON])
            }
            return summary
        }
    }

    func testPretrainingDoesNotDependOnTheRankCount() throws {
        let one = try pretrain(ranks: 1)[0]
        let two = try pretrain(ranks: 2)
        func untimed(_ s: PretrainSummary) -> PretrainSummary {
            var s = s
            (s.seconds, s.pairsPerSecond) = (0, 0)
            return s
        }
        XCTAssertEqual(untimed(two[0]), untimed(two[1]), "the ranks disagree on the summary")
        XCTAssertEqual(one.steps, 6)   // 36 training pairs, global batch 12: 3 steps per epoch
        XCTAssertEqual(one.steps, two[0].steps)
        XCTAssertEqual(one.finalLoss!, two[0].finalLoss!, accuracy: 1e-3 * max(1, abs(one.finalLoss!)))
        XCTAssertEqual(one.after?.pairs, 12)
        XCTAssertEqual(one.after?.imageToTextTop5 ?? -1, two[0].after?.imageToTextTop5 ?? -2, accuracy: 1e-9)
        XCTAssertEqual(one.after?.labelMatchTop1 ?? -1, two[0].after?.labelMatchTop1 ?? -2, accuracy: 1e-9)
    }

    func testPairingPipelineMatchesOnOneAndTwoRanks() throws {
        let export = FileManager.default.temporaryDirectory.appendingPathComponent("retriever-pipe-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: export) }
        _ = try pretrain(ranks: 1, export: export)
        let dir = Self.directory
        func pairs(ranks: Int, strategy: PairingStrategy) throws -> [PairsFile] {
            try ThreadRankCommunicator.run(size: ranks) { comm -> PairsFile in
                let pipeline = try PairingPipeline(retrieverPath: export, comm: comm, batchSize: 5)
                let dataset = try DatasetFile(path: dir + "/val.cds")
                let corpus = try ReportCorpus(path: dir + "/reports.jsonl", classNames: dataset.classNames)
                return try pipeline.pair(dataset, split: "val", localReports: pipeline.embedReports(corpus),
                                         reportLabels: corpus.labels, options: PairingOptions(strategy: strategy, seed: 2))
            }
        }
        for strategy in [PairingStrategy.top1, .sampleTopK(3), .oracle] {
            let one = try pairs(ranks: 1, strategy: strategy)[0]
            let two = try pairs(ranks: 2, strategy: strategy)
            XCTAssertEqual(one.imageCount, 12)
            XCTAssertEqual(one.reportCount, 40)
            XCTAssertEqual(two[0], two[1])
            XCTAssertEqual(one.reportIndices, two[0].reportIndices, "\(strategy)")
            for (a, b) in zip(one.records, two[0].records) {
                XCTAssertEqual(a.score, b.score, accuracy: 1e-5)
                XCTAssertNotNil(a.reportLabel)
                XCTAssertEqual(a.imageLabel, b.imageLabel)
            }
            if strategy == .oracle { XCTAssertEqual(one.summary().labelMatchRate, 1) }
        }
    }
}
