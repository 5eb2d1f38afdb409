import Configuration
import DataParallel
import Datasets
import Distributed
import Formats
import Import
import Foundation
import Kernels
import Model

// Pretraining the retriever (CLIP-IT.md, Setting: a CLIP-style model trained on *other*
// paired image–text data) with CLIP's symmetric InfoNCE, data-parallel with negatives
// from the whole global batch. docs/retriever.md has the math and the commands.

/// The retriever architectures `clipit pretrain --preset` builds.
///
/// Both towers are the CLIP-IT towers of the training preset of the same name
/// (`ModelPreset`), the image tower with a projection to the text
/// tower's width, so a pretrained retriever's towers can initialise CLIP-IT's
/// (`model.init_vision`, `model.init_text`).
/// - `tiny`: 16 px images, patch 8, E = 32, depth 2 (the test towers); seconds.
/// - `demo`: 64 px images, patch 8, E = 128, depth 4, 4 heads, MLP 256; text context 32,
///   width 96, vocabulary 512, 128-d embeddings.
public enum RetrieverPresets {
    public static let names = ModelPreset.names

    public static func config(_ name: String) throws -> RetrieverConfig {
        // Both towers are CLIP-IT's towers of the preset of the same name, so an export can
        // initialise CLIP-IT's vision backbone (`model.init_vision`) as well as its text
        // tower (`model.init_text`); the image tower adds a projection to D.
        guard let preset = ModelPreset.named(name) else {
            throw RetrieverError("unknown retriever preset '\(name)'; choose one of \(names.joined(separator: ", "))")
        }
        let text = preset.text
        guard let dimension = text.projectionDim else {
            throw RetrieverError("preset '\(name)' has a text tower without projection")
        }
        var vision = preset.vision
        vision.projectionDim = dimension
        return RetrieverConfig(vision: vision, text: text)
    }
}

/// How `clipit pretrain` trains the retriever: the `pretrain:` section of a config file
/// (`resolve`), with snake_case keys (`pretrain.weight_decay`), over these defaults.
public struct PretrainConfig: Codable, Equatable, Sendable {
    /// The towers: `ModelPreset` / `RetrieverPresets` name (`tiny`, `demo`).
    public var preset: String = "demo"
    /// The paired set: a `.cds` of images and a report corpus aligned with it by index
    /// ("" with `clipit pretrain --data DIR`: DIR/paired.cds and DIR/paired.jsonl).
    public var images: String = ""
    public var reports: String = ""
    public var seed: Int = 0
    public var epochs: Int = 10
    /// Global batch (all ranks together): the number of pairs whose InfoNCE shares negatives.
    public var batchSize: Int = 64
    public var evalBatchSize: Int = 128
    /// AdamW with decoupled weight decay, linear warm-up then cosine decay to `minLr`.
    public var lr: Float = 1e-3
    public var minLr: Float = 1e-5
    public var weightDecay: Float = 0.05
    public var warmupSteps: Int = 20
    /// Global gradient-norm clipping (0: off).
    public var gradClip: Float = 1
    /// The last `holdoutFraction` of the paired set (whole slides, as the set is written
    /// slide by slide) is held out of training and measures retrieval quality.
    public var holdoutFraction: Double = 0.1
    /// Flips and quarter turns on training images.
    public var augment: Bool = true
    public var normalization: NormalizationName = .clip
    /// LoRA rank on every Linear of both towers (0: full fine-tuning of both towers).
    public var loraRank: Int = 0
    public var loraAlpha: Float = 8
    /// Evaluate on the held-out pairs every this many epochs (0: only at the end).
    public var evaluateEvery: Int = 1
    /// Progress line every this many steps.
    public var logEvery: Int = 10

    public init() {}

    /// The `pretrain:` section of `yaml` (a config file's text; its other sections belong to
    /// `clipit train`) with `pretrain.key=value` overrides, over the defaults: the same
    /// configuration system as `TrainingConfig.resolve`.
    public static func resolve(yaml: String?, overrides: [String] = []) throws -> PretrainConfig {
        do {
            return try ConfigurationResolver.resolve(yaml: yaml, overrides: overrides, section: "pretrain",
                                                    keysDocument: "docs/retriever.md") { _ in
                PretrainConfig()
            }
        } catch let error as ConfigurationError {
            throw RetrieverError(error.description)
        }
    }

    /// The configuration as YAML (`pretrain:` section, snake_case keys).
    public func yaml() throws -> String {
        struct File: Encodable { var pretrain: PretrainConfig }
        return try ConfigurationResolver.yaml(of: File(pretrain: self))
    }

    public func validate() throws {
        func require(_ condition: Bool, _ message: String) throws {
            if !condition { throw RetrieverError("config: " + message) }
        }
        try require(RetrieverPresets.names.contains(preset),
                    "unknown pretrain.preset '\(preset)'; choose one of \(RetrieverPresets.names.joined(separator: ", "))")
        try require(epochs >= 1, "pretrain.epochs must be at least 1")
        try require(batchSize >= 2, "pretrain.batch_size must be at least 2 (InfoNCE needs negatives)")
        try require(evalBatchSize >= 1, "pretrain.eval_batch_size must be at least 1")
        try require(lr > 0 && minLr >= 0, "pretrain.lr must be positive and pretrain.min_lr non-negative")
        try require((0..<1).contains(holdoutFraction), "pretrain.holdout_fraction must be in [0, 1)")
        try require(loraRank >= 0, "pretrain.lora_rank must be non-negative")
        try require(logEvery >= 1, "pretrain.log_every must be at least 1")
    }

    /// The retriever architecture: the preset's towers, with `loraRank` applied.
    public func retrieverConfig() throws -> RetrieverConfig {
        let config = try RetrieverPresets.config(preset)
        guard loraRank > 0 else { return config }
        var c = config
        let lora = TowerTraining(lora: LoRAConfig(rank: loraRank, alpha: loraAlpha), targets: .all)
        c.visionTraining = lora
        c.textTraining = lora
        return c
    }
}

/// Image→text and text→image retrieval quality over a set of held-out pairs, each image
/// searched among the reports of all the held-out pairs (and the other way round).
public struct RetrievalQuality: Codable, Equatable, Sendable {
    public var pairs: Int
    /// Fraction of images whose own report is the most similar (top-1) or among the five
    /// most similar (top-5) of all held-out reports.
    public var imageToTextTop1: Double
    public var imageToTextTop5: Double
    /// Fraction of reports whose own image is the most similar image.
    public var textToImageTop1: Double
    /// Fraction of images whose top-1 report carries the image's label (the quality that
    /// matters for CLIP-IT's pairing: a report of the right class).
    public var labelMatchTop1: Double
    /// Top-1 and top-5 chance level, 1/n and 5/n.
    public var chanceTop1: Double
}

/// The paired image–report set, split into training and held-out pairs, with the
/// tokenizer built from its cleaned reports.
public struct PairedRetrievalData {
    public let images: DatasetFile
    public let corpus: ReportCorpus
    public let tokenizer: WordTokenizer
    /// Every report's token ids, `(count, L)`; report i belongs to image i.
    public let text: PairedText
    public let trainCount: Int
    public var heldOut: Range<Int> { trainCount ..< images.count }

    /// Reads `imagesPath` (.cds) and `reportsPath` (corpus aligned with it by index).
    public init(imagesPath: String, reportsPath: String, holdoutFraction: Double, text: TextConfig) throws {
        images = try DatasetFile(path: imagesPath)
        // The held-out label match (`RetrievalQuality.labelMatchTop1`) reads the labels.
        try images.requireLabels(for: "the paired set of clipit pretrain")
        corpus = try ReportCorpus(path: reportsPath)
        guard corpus.count == images.count else {
            throw RetrieverError("'\(reportsPath)' has \(corpus.count) reports but '\(imagesPath)' has \(images.count) "
                                     + "images: the paired set must be aligned by index (paired.cds + paired.jsonl)")
        }
        let cleaned = corpus.texts.map(ReportCleaning.clean)
        tokenizer = WordTokenizer(corpus: cleaned, vocabularySize: text.vocabularySize, contextLength: text.contextLength)
        guard tokenizer.endOfTextId == text.endOfTextId else {
            throw RetrieverError("the text tower pools at id \(text.endOfTextId) but the word tokenizer's end-of-text "
                                     + "id is \(tokenizer.endOfTextId) (vocabulary size − 1)")
        }
        // Image i is paired with report i.
        self.text = PairedText(tokens: PairedText.encode(cleaned, encoding: tokenizer, wordDropFraction: 0, seed: 0),
                               contextLength: tokenizer.contextLength, reportOfImage: Array(0..<corpus.count))
        let held = Int((Double(images.count) * holdoutFraction).rounded())
        trainCount = images.count - held
        guard trainCount >= 2 else {
            throw RetrieverError("only \(trainCount) training pairs after holding out \(held): lower --holdout")
        }
    }
}

/// Summary of a pretraining run (`summary.json`).
public struct PretrainSummary: Codable, Equatable, Sendable {
    public var ranks: Int
    /// The signal that stopped the run early (it resumes with `--resume auto`), if one did.
    public var stoppedBySignal: Int32?
    public var steps: Int
    public var epochs: Int
    public var trainPairs: Int
    public var heldOutPairs: Int
    public var seconds: Double
    public var pairsPerSecond: Double
    public var finalLoss: Double?
    public var logitScale: Double
    public var trainableParameters: Int
    public var before: RetrievalQuality?
    public var after: RetrievalQuality?
}

/// Data-parallel pretraining of a `RetrieverModel` on a `PairedRetrievalData`.
///
/// Step (every rank, global batch of N pairs from `ShardedSampler.training` over the
/// training pairs): the shared `DataParallelStep`, whose forward/backward embeds the
/// local slice and all-gathers both embedding matrices (`RetrieverModel.forwardBackward`);
/// AdamW; then the logit scale is clamped to [0, ln 100] (CLIP). Every rank applies the
/// same update to bit-identical weights.
public final class RetrieverPretrainer {
    public let model: RetrieverModel
    public let data: PairedRetrievalData
    public let settings: PretrainConfig
    public let comm: any Communicator
    public let sampler: ShardedSampler
    public let optimizer: Adam
    public let schedule: LearningRateSchedule
    public let totalSteps: Int
    /// zero → forward/backward → allreduce → clip → update, shared with the trainer.
    let dataParallelStep: DataParallelStep
    /// Where rank 0 writes metrics.jsonl and `writeOutputs`' files; nil: nowhere.
    public let outputDirectory: String?
    let trainAssembler: BatchAssembler
    let evalAssembler: BatchAssembler
    let log: MetricsLog
    let progress: ProgressDisplay
    let seed: UInt64
    /// Where the run is (a fresh run, or the checkpoint it resumed from).
    private(set) var state = PretrainState()

    /// `resume`: a `last.safetensors` this pretraining wrote (weights, optimiser state and
    /// position): the run continues exactly where it stopped. `stopSignals` enables
    /// graceful preemption (every rank stops after the same step with a checkpoint).
    public init(model: RetrieverModel, data: PairedRetrievalData, settings: PretrainConfig, comm: any Communicator,
                outputDirectory: String?, showProgress: Bool = true, resume: String? = nil,
                stopSignals: StopSignals? = nil) throws {
        try settings.validate()
        self.model = model
        self.data = data
        self.settings = settings
        self.outputDirectory = outputDirectory
        self.comm = comm
        seed = UInt64(truncatingIfNeeded: settings.seed)
        let normalization = settings.normalization.normalization
        let size = model.config.vision.imageSize
        let train = settings.augment
            ? TransformConfig(outputSize: size, interpolation: .bilinear, normalization: normalization,
                              horizontalFlip: true, verticalFlip: true, rotate90: true)
            : TransformConfig.evaluation(outputSize: size, normalization: normalization)
        trainAssembler = BatchAssembler(dataset: data.images, transform: train, text: data.text)
        evalAssembler = BatchAssembler(dataset: data.images, transform: .evaluation(outputSize: size, normalization: normalization),
                                       text: data.text)
        sampler = ShardedSampler.training(itemCount: data.trainCount, globalBatchSize: settings.batchSize,
                                          rank: comm.rank, worldSize: comm.size, seed: seed)
        guard sampler.batchesPerEpoch > 0 else {
            throw RetrieverError("the global batch (\(settings.batchSize)) is larger than the \(data.trainCount) "
                                     + "training pairs: lower --batch")
        }
        totalSteps = settings.epochs * sampler.batchesPerEpoch
        schedule = .warmupCosine(base: settings.lr, minimum: settings.minLr,
                                 warmupSteps: min(settings.warmupSteps, totalSteps), totalSteps: totalSteps)
        optimizer = Adam(parameterCount: model.store.trainableCount, weightDecay: settings.weightDecay, decay: .decoupled)
        // Activations for the largest local batch (training slices, evaluation chunks), sized once.
        let localTrain = (settings.batchSize + comm.size - 1) / comm.size
        model.reserveActivations(batch: max(localTrain, settings.evalBatchSize), globalBatch: settings.batchSize)
        dataParallelStep = DataParallelStep(comm: comm, store: model.store, optimizer: optimizer, schedule: schedule,
                                            gradientClip: settings.gradClip, dropoutSeed: derivedSeed(seed, 0x0D0F),
                                            divergenceHint: "lower --lr or keep --grad-clip on", stopSignals: stopSignals)
        if let resume { state = try PretrainCheckpoint.load(resume, into: model, optimizer: optimizer) }
        let isRoot = comm.rank == 0
        if isRoot, let outputDirectory {
            try OutputDirectory.create(outputDirectory)
            if resume != nil { try MetricsLog.trim(path: outputDirectory + "/metrics.jsonl", toStep: state.step) }
        }
        try comm.barrier()
        log = try MetricsLog(path: (outputDirectory ?? ".") + "/metrics.jsonl", enabled: isRoot && outputDirectory != nil,
                             truncate: resume == nil)
        progress = ProgressDisplay(enabled: isRoot && showProgress, every: settings.logEvery)
    }

    /// Trains for `settings.epochs` epochs; returns the summary (the same on every rank).
    public func run() throws -> PretrainSummary {
        let store = model.store
        let before = try state.before ?? evaluate()
        state.before = before
        progress.message(String(format: "pretrain: %d rank%@, %d trainable parameters, %d steps/epoch × %d epochs, "
                                    + "global batch %d; held-out %d pairs: top-1 %.1f%% (chance %.1f%%) before training",
                                comm.size, comm.size == 1 ? "" : "s", store.trainableCount, sampler.batchesPerEpoch,
                                settings.epochs, settings.batchSize, data.heldOut.count, before.imageToTextTop1 * 100,
                                before.chanceTop1 * 100))
        var step = state.step
        var lastLoss: Float?
        var after = state.after
        var signalled = false
        let throughput = ThroughputMeter()
        let observers: [any StepObserver] = [
            throughput,
            StepRecordWriter(log: log, ranks: comm.size, rateKey: "pairs_per_s", lossTerms: false),
            ProgressReporter(display: progress, throughput: throughput),
            StepHook { [unowned self] r in
                // Held-out retrieval after every `evaluate_every` epochs and after the last one.
                guard r.batchInEpoch + 1 == sampler.batchesPerEpoch else { return }
                let epochsDone = r.epoch + 1
                if epochsDone == settings.epochs || (settings.evaluateEvery > 0 && epochsDone % settings.evaluateEvery == 0) {
                    after = try evaluateAfterEpoch(r.epoch, step: r.step)
                    state.after = after
                }
            },
        ]
        model.isTraining = true
        let (startEpoch, startBatch) = (state.epoch, state.nextBatch)   // a resumed run's position
        loop: for epoch in startEpoch..<settings.epochs {
            for (b, local) in sampler.batches(epoch: epoch).enumerated() where epoch > startEpoch || b >= startBatch {
                let clock = Stopwatch()
                let n = sampler.globalBatchCount(b)
                let rows = RowExchange(comm: comm, counts: sampler.sliceCounts(batch: b))
                // InfoNCE gathers every rank's embeddings, so an empty slice still takes part.
                let outcome = try dataParallelStep.run(step: step,
                                                       firstGlobalRow: sampler.localRows(batch: b).lowerBound) { _ in
                    let batch = local.isEmpty ? nil
                        : trainAssembler.assemble(local, inputs: [.images, .tokens], seed: seed, epoch: epoch)
                    let loss = try model.forwardBackward(images: batch?.images, tokens: batch?.tokens,
                                                         batch: local.count, rows: rows)
                    return LossBreakdown(total: loss, ce: loss, distill: 0)
                }
                if model.logitScale.isTrainable { SymmetricInfoNCELoss.clampLogitScale(model.logitScale.value) }
                step += 1
                lastLoss = outcome.losses.total
                let report = StepReport(step: step, totalSteps: totalSteps, epoch: epoch, epochs: settings.epochs,
                                        batchInEpoch: b, samples: n, outcome: outcome, seconds: clock.elapsedSeconds,
                                        scalars: ["logit_scale": Double(model.logitScale.value.pointee)])
                (state.step, state.epoch, state.nextBatch) = b + 1 == sampler.batchesPerEpoch
                    ? (step, epoch + 1, 0) : (step, epoch, b + 1)
                for observer in observers { try observer.stepEnded(report) }
                if report.stopRequested && step < totalSteps {
                    signalled = true
                    break loop
                }
            }
        }
        try saveCheckpoint()
        model.isTraining = false
        progress.finishLine()
        if signalled && comm.rank == 0 {
            StopSignals.announceStop(step: step, command: "pretrain", runFolder: outputDirectory ?? ".")
        }
        return PretrainSummary(ranks: comm.size,
                               stoppedBySignal: signalled ? dataParallelStep.stopSignals?.signalReceived ?? SIGTERM : nil,
                               steps: step, epochs: settings.epochs, trainPairs: data.trainCount,
                               heldOutPairs: data.heldOut.count, seconds: throughput.seconds,
                               pairsPerSecond: throughput.samplesPerSecond, finalLoss: lastLoss.map(Double.init),
                               logitScale: Double(model.logitScale.value.pointee),
                               trainableParameters: store.trainableCount, before: before, after: after)
    }

    /// Writes the run's outputs from rank 0 into `outputDirectory` (nothing without one):
    /// `config.yaml` (the effective `pretrain:` section), `summary.json` and
    /// `retriever.safetensors`, the export
    /// `clipit pair` reads (`PairingEncoder`): the weights with the tokenizer and the
    /// image normalisation, plus `metadata` (e.g. preset and seed, for the record).
    public func writeOutputs(summary: PretrainSummary, metadata: [String: String] = [:]) throws {
        guard comm.rank == 0, let outputDirectory else { return }
        try AtomicFileWriter.write(Array(try settings.yaml().utf8), to: outputDirectory + "/config.yaml")
        try AtomicFileWriter.writeJSON(summary, to: outputDirectory + "/summary.json")
        var meta = metadata
        meta[RetrieverModel.tokenizerMetadataKey] = data.tokenizer.stateJSON
        meta[RetrieverModel.normalizationMetadataKey] = settings.normalization.rawValue
        try model.export(to: outputDirectory + "/retriever.safetensors", metadata: meta)
    }

    /// Rank 0 writes `last.safetensors` (atomically): every parameter, the optimiser state
    /// and the position, so that `resume` continues bit-identically.
    func saveCheckpoint() throws {
        guard comm.rank == 0, let outputDirectory else { return }
        try PretrainCheckpoint.write(to: outputDirectory + "/last.safetensors", model: model, optimizer: optimizer,
                                     state: state, settings: settings)
    }

    /// The held-out evaluation after `epoch`: logged, shown, and the model back in training mode.
    private func evaluateAfterEpoch(_ epoch: Int, step: Int) throws -> RetrievalQuality {
        let quality = try evaluate()
        try log.write(["type": "val", "step": step, "epoch": epoch, "top1": quality.imageToTextTop1,
                       "top5": quality.imageToTextTop5, "text_to_image_top1": quality.textToImageTop1,
                       "label_match_top1": quality.labelMatchTop1, "pairs": quality.pairs])
        progress.message(String(format: "held-out: epoch %d  image→text top-1 %.1f%%  top-5 %.1f%%  "
                                    + "text→image top-1 %.1f%%  label match %.1f%%  (s = %.2f)",
                                epoch + 1, quality.imageToTextTop1 * 100, quality.imageToTextTop5 * 100,
                                quality.textToImageTop1 * 100, quality.labelMatchTop1 * 100,
                                model.logitScale.value.pointee))
        model.isTraining = true
        return quality
    }

    /// Retrieval quality on the held-out pairs (every rank embeds a slice; the result is
    /// the same on every rank and does not depend on the rank count).
    public func evaluate() throws -> RetrievalQuality {
        try evaluateRetrieval(model: model, assembler: evalAssembler, items: data.heldOut, comm: comm,
                              batchSize: settings.evalBatchSize)
    }
}

/// Image→text / text→image retrieval among the pairs `items` of `assembler` (image i
/// paired with its report, the assembler's text). Each rank embeds its even slice of the
/// items; `distributedCosineTopK` shares the embeddings and searches exactly. Every rank
/// must call it; all get the same result.
public func evaluateRetrieval(model: RetrieverModel, assembler: BatchAssembler, items: Range<Int>,
                              comm: any Communicator, batchSize: Int) throws -> RetrievalQuality {
    let count = items.count
    guard count > 0 else {
        return RetrievalQuality(pairs: 0, imageToTextTop1: 0, imageToTextTop5: 0, textToImageTop1: 0,
                                labelMatchTop1: 0, chanceTop1: 0)
    }
    let mine = evenSlice(count: count, rank: comm.rank, size: comm.size)
    var images: [Float] = [], texts: [Float] = []
    for start in stride(from: mine.lowerBound, to: mine.upperBound, by: batchSize) {
        let indices = Array((start ..< min(start + batchSize, mine.upperBound)).map { items.lowerBound + $0 })
        let batch = assembler.assemble(indices, inputs: [.images, .tokens], seed: 0, epoch: 0)
        images += model.embedImages(batch.images!, batch: indices.count)
        texts += model.embedTexts(batch.tokens!, batch: indices.count)
    }
    let d = model.embeddingDim, k = min(5, count)
    let imageToText = try distributedCosineTopK(comm: comm, localQueries: images, localKeys: texts, dimension: d, k: k)
    let textToImage = try distributedCosineTopK(comm: comm, localQueries: texts, localKeys: images, dimension: d, k: 1)
    let labels = items.map { assembler.dataset.label(at: $0) }
    var top1 = 0, top5 = 0, reverse = 0, labelMatch = 0
    for i in 0..<count {
        let row = imageToText.indices(row: i)
        if row.first == i { top1 += 1 }
        if row.contains(i) { top5 += 1 }
        if labels[row.first!] == labels[i] { labelMatch += 1 }
        if textToImage.indices(row: i).first == i { reverse += 1 }
    }
    let n = Double(count)
    return RetrievalQuality(pairs: count, imageToTextTop1: Double(top1) / n, imageToTextTop5: Double(top5) / n,
                            textToImageTop1: Double(reverse) / n, labelMatchTop1: Double(labelMatch) / n,
                            chanceTop1: 1 / n)
}

extension RetrieverModel {
    /// `forwardBackward(images:tokens:batch:rows:)` over `comm`'s ranks; `sliceCounts`,
    /// the pairs of every rank in rank order, when the caller knows them
    /// (`ShardedSampler.sliceCounts`), otherwise one `allgather` finds them.
    @discardableResult
    public func forwardBackward(images: UnsafePointer<Float>?, tokens: UnsafePointer<Int32>?, batch: Int,
                                sliceCounts: [Int]? = nil, comm: any Communicator) throws -> Float {
        let counts = try sliceCounts ?? comm.allgather([batch])
        return try forwardBackward(images: images, tokens: tokens, batch: batch,
                                   rows: RowExchange(comm: comm, counts: counts))
    }
}


/// Where a pretraining run is: the steps done, the next batch, and the held-out figures
/// measured so far (a resumed run keeps its "before").
public struct PretrainState: Codable, Equatable, Sendable {
    public var step = 0
    public var epoch = 0
    public var nextBatch = 0
    public var before: RetrievalQuality?
    public var after: RetrievalQuality?

    public init() {}
}

/// A pretraining run's `last.safetensors`: every parameter under its name, the optimiser's
/// buffers under `optimizer.<name>`, and in the metadata the state, the optimiser's step
/// and the configuration (`pretrain:` YAML).
public enum PretrainCheckpoint {
    static let stateKey = "clipit.pretrain.state"
    static let optimizerStepKey = "clipit.optimizer_step"
    static let configKey = "clipit.pretrain.config"

    public static func write(to path: String, model: RetrieverModel, optimizer: any Optimizer, state: PretrainState,
                             settings: PretrainConfig) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var writer = SafeTensorsWriter(metadata: [
            stateKey: String(decoding: try encoder.encode(state), as: UTF8.self),
            optimizerStepKey: String(optimizer.stepCount),
            configKey: try settings.yaml(),
        ])
        for p in model.store.parameters { writer.add(p.name, shape: p.shape, pointer: p.value, count: p.count) }
        writer.addOptimizerState(optimizer)
        try writer.write(to: path)
    }

    /// Loads `path` into `model` and `optimizer` (built with the same configuration) and
    /// returns where the run stopped.
    public static func load(_ path: String, into model: RetrieverModel, optimizer: any Optimizer) throws -> PretrainState {
        let file = try SafeTensorsFile(path: path)
        guard let stateJSON = file.metadata[stateKey],
              let state = try? JSONDecoder().decode(PretrainState.self, from: Data(stateJSON.utf8)) else {
            throw RetrieverError("'\(path)' is not a pretraining checkpoint (no '\(stateKey)' metadata); resume from the "
                                 + "last.safetensors that clipit pretrain wrote")
        }
        try model.store.load(from: file, prefix: "", allowMissing: { _ in false },
                             ignoreUnexpected: { $0.hasPrefix("optimizer.") })
        try file.readOptimizerState(into: optimizer, step: Int(file.metadata[optimizerStepKey] ?? "") ?? 0)
        if let name = model.store.firstNonFiniteParameter() {
            throw RetrieverError("'\(path)': parameter '\(name)' holds non-finite values; resume from an earlier checkpoint")
        }
        return state
    }
}
