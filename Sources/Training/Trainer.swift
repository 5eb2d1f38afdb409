import DataParallel
import Datasets
import Distributed
import Evaluation
import Formats
import Foundation
import Kernels
import Model

/// The outcome of `Trainer.run`.
public struct TrainingSummary: Codable, Equatable, Sendable {
    public var method: String
    public var seed: Int
    public var ranks: Int
    /// Optimiser steps completed (over all runs of a resumed training).
    public var steps: Int
    public var epochs: Int
    /// Whether the run stopped early at `train.stop_after_steps` or at a stop signal.
    public var stopped: Bool
    /// The signal that stopped the run (SIGTERM, SIGINT, SIGUSR1), if one did.
    public var stoppedBySignal: Int32?
    /// The last step's global-batch loss.
    public var finalLoss: Double?
    public var bestBalancedAccuracy: Double?
    public var bestStep: Int?
    /// Wall time of this process's training loop, validations included.
    public var seconds: Double
    /// Training images per second (all ranks), validations excluded.
    public var imagesPerSecond: Double
    public var trainableParameters: Int
    public var totalParameters: Int
    /// What the run was made of (`RunProvenance`): preset, image size, where each tower's
    /// weights came from, data sizes.
    public var provenance: RunProvenance?
    /// The out-of-fold teachers the soft-target term read (their validation balanced
    /// accuracy per fold); nil without one.
    public var teachers: TeacherSummary?
}

/// What a training run was built from, printed at its start and saved in `summary.json`:
/// the model preset, the image size, where each tower's weights came from ("random init"
/// when from nowhere) and the data sizes.
public struct RunProvenance: Codable, Equatable, Sendable {
    public var preset: String
    public var imageSize: Int
    /// `model.init_vision`, or "random init"; nil when the method has no image tower.
    public var visionWeights: String?
    /// `model.init_text`, or "random init"; nil when the method has no text tower.
    public var textWeights: String?
    public var trainImages: Int
    public var validationImages: Int?
    public var reports: Int?
    public var classes: Int

    public static let randomInit = "random init"

    init(config: TrainingConfig, data: TrainingData, reports: Int?) {
        preset = config.model.preset
        imageSize = config.model.vision.imageSize
        let method = config.method
        visionWeights = method.readsImages ? (config.model.initVision.isEmpty ? Self.randomInit : config.model.initVision) : nil
        textWeights = method.needsText ? (config.model.initText.isEmpty ? Self.randomInit : config.model.initText) : nil
        trainImages = data.train.count
        validationImages = data.validation?.count
        self.reports = reports
        classes = data.classNames.count
    }

    /// The lines printed at the start of a run; a tower from random init is a warning.
    public var lines: [String] {
        var lines = ["model: preset \(preset), \(imageSize) px images, \(classes) classes; data: \(trainImages) training, "
                     + (validationImages.map { "\($0) validation images" } ?? "no validation images")
                     + (reports.map { ", \($0) reports" } ?? "")]
        for (tower, weights) in [("vision", visionWeights), ("text", textWeights)] {
            guard let weights else { continue }
            lines.append(weights == Self.randomInit
                ? "warning: the \(tower) tower starts from random init (set model.init_\(tower)=FOLDER for pretrained weights)"
                : "\(tower) tower weights: \(weights)")
        }
        return lines
    }
}

/// The data-parallel trainer (docs/training.md).
///
/// Every rank builds the same model from the seed (checked at start with an allreduce of
/// a weight checksum), takes its contiguous slice of each global batch from
/// `ShardedSampler`, and runs the shared `DataParallelStep` on it (zero, forward and
/// backward with every per-sample term divided by the *global* batch size, ONE allreduce
/// of the flat gradient and one small one of the losses and the text-collapse sums,
/// finite check, clip, schedule, update). Validation, checkpoints, the metrics log and the
/// progress display run between steps.
///
/// The loss trajectory therefore does not depend on the number of ranks except through
/// the order of float additions in the allreduce and inside the per-rank GEMMs.
public final class Trainer {
    public let config: TrainingConfig
    public let method: TrainingMethod
    public let comm: any Communicator
    public let model: any TrainableModel
    public let optimizer: any Optimizer
    public let schedule: LearningRateSchedule
    public let classNames: [String]
    public let tokenizer: (any TextEncoding)?
    public let outputDirectory: String
    public let stepsPerEpoch: Int
    /// Steps the whole run takes (the schedule's length).
    public let totalSteps: Int
    public private(set) var state: TrainerState
    /// The last step's reduced losses (total, ce, distill) and gradient norm.
    public private(set) var lastLoss: LossBreakdown?
    public private(set) var lastGradientNorm: Float?

    /// zero → forward/backward → allreduce → clip → update, shared with retriever pretraining.
    let dataParallelStep: DataParallelStep
    let trainAssembler: BatchAssembler
    let valAssembler: BatchAssembler?
    /// Slices every global batch into ranks' rows and micro-batches.
    let sampler: ShardedSampler
    /// Which items fill each global batch (`GlobalBatches`).
    var batches: GlobalBatches
    /// The teachers of the soft-target term, when it has one.
    let teachers: TeacherSummary?
    let log: MetricsLog
    let progress: ProgressDisplay
    let seed: UInt64
    /// Preset, image size, tower weights' origins and data sizes of this run.
    public let provenance: RunProvenance
    private let validationPoints: Set<Int>
    private var lastValidatedStep = -1
    /// The last validation's confusion matrix, drawn into TensorBoard at the end (rank 0).
    private var lastConfusionMatrix: [[Int]]?
    /// The step `last.safetensors` was last written at (rank 0).
    private var lastSavedStep = -1
    /// Rank 0's exclusive use of the output directory until the run ends.
    private var folderLock: RunFolderLock?
    /// The run's input files and folders as its checkpoints record them (rank 0).
    private var recordedInputs: [RecordedInput] = []

    /// Sets up a run on every rank: reads the data, builds the model from the seed (or
    /// from the checkpoint `resume`), checks that all ranks hold identical weights.
    /// `showProgress` controls rank 0's progress display. Pretrained model folders in
    /// `model.init_vision` / `model.init_text` set the tower configs, the tokenizer and the
    /// image preprocessing first (`resolvingPretrainedFolders`); `config` is the result.
    /// `parallelWorkers` lets attention run its heads on the BLAS threads
    /// (`ModelExecution.parallelWorkers`: only in a process whose BLAS calls all come from
    /// this thread, as with one rank per `clipit` process; bit-identical results).
    /// An output directory that already holds a run is refused unless `resume` continues
    /// it or `overwrite` replaces it. `stopSignals` enables graceful preemption.
    ///
    /// `trainingItems`: train on these items of `data.train` only (a fold teacher's
    /// training folds); nil: all of them.
    public init(config: TrainingConfig, comm: any Communicator, outputDirectory: String, resume: String? = nil,
                showProgress: Bool = true, parallelWorkers: Bool = false, overwrite: Bool = false,
                stopSignals: StopSignals? = nil, trainingItems: [Int]? = nil) throws {
        if resume == nil && !overwrite, let existing = existingRunFile(in: outputDirectory) {
            throw TrainingError("'\(outputDirectory)' already holds a run ('\(existing)'): pass --resume auto to "
                                + "continue it, --overwrite to replace it, or another --out")
        }
        let checkpoint = try resume.map { try Checkpoint.open($0) }
        try checkpoint?.header.requireInputs()   // the model.init_* files rebuild the frozen weights
        let config = try config.effective(resumingAt: checkpoint?.header.state.step)
        self.config = config
        self.comm = comm
        self.outputDirectory = outputDirectory
        method = config.method
        seed = UInt64(truncatingIfNeeded: config.seed)

        let data = try TrainingData(config: config)
        classNames = data.classNames
        if let resume, let header = checkpoint?.header, header.classNames != classNames {
            throw TrainingError("checkpoint '\(resume)' was trained on classes \(header.classNames), "
                                + "the training data has \(classNames)")
        }
        let built = try makeModel(config, classes: classNames.count)
        built.store.execution.parallelWorkers = parallelWorkers
        built.store.execution.attentionProbabilities = config.train.attentionProbabilities
        model = built
        // Activations for the largest local batch (or micro-batch) of training and of
        // validation, sized once.
        let localBatch = { (global: Int) in (global + comm.size - 1) / comm.size }
        let unlabeledBatch = config.data.unlabeled.isEmpty ? 0 : config.train.unlabeledBatchSize
        let globalRows = config.train.batchSize + unlabeledBatch
        let trainRows = config.train.deterministic ? config.train.microBatchSize : localBatch(globalRows)
        built.reserveActivations(batch: max(trainRows, localBatch(config.train.evalBatchSize)), globalBatch: globalRows)
        let inputs = try data.assemblers(for: built, resumedTokenizer: checkpoint?.header.tokenizerState)
        (trainAssembler, valAssembler, tokenizer) = (inputs.train, inputs.validation, inputs.tokenizer)
        provenance = RunProvenance(config: config, data: data, reports: trainAssembler.text?.reportCount)
        try data.attachDistillationInputs(to: trainAssembler, model: built, comm: comm)
        teachers = trainAssembler.teacherLogits == nil ? nil : try TeacherLogits.summary(path: config.distill.teacher)

        let labelledCount = trainingItems?.count ?? data.train.count
        let micro = config.train.deterministic ? config.train.microBatchSize : 1
        let labelled = ShardedSampler.training(itemCount: labelledCount, globalBatchSize: config.train.batchSize,
                                               rank: comm.rank, worldSize: comm.size, seed: seed, microBatchSize: micro)
        stepsPerEpoch = labelled.batchesPerEpoch
        guard stepsPerEpoch > 0 else {
            throw TrainingError("the global batch (\(config.train.batchSize)) is larger than the training set "
                                + "(\(labelledCount) images): lower train.batch_size")
        }
        batches = GlobalBatches(labelled: labelled, items: trainingItems, unlabeledCount: trainAssembler.unlabeled?.count ?? 0,
                                unlabeledBatchSize: unlabeledBatch, labelledItemCount: data.train.count,
                                stepsPerEpoch: stepsPerEpoch, seed: derivedSeed(seed, 0x0BA7))
        // The rows of each global batch (labelled, then unlabelled), sliced over ranks.
        sampler = unlabeledBatch == 0 ? labelled
            : ShardedSampler.training(itemCount: stepsPerEpoch * globalRows, globalBatchSize: globalRows, rank: comm.rank,
                                      worldSize: comm.size, seed: seed, microBatchSize: micro)
        let planned = config.train.epochs * stepsPerEpoch
        totalSteps = config.train.maxSteps > 0 ? min(planned, config.train.maxSteps) : planned
        validationPoints = validationBatches(perEpoch: config.train.validationsPerEpoch, stepsPerEpoch: stepsPerEpoch)
        optimizer = makeOptimizer(config.optim, parameterCount: built.store.trainableCount)
        schedule = makeSchedule(config.optim, totalSteps: totalSteps)
        dataParallelStep = DataParallelStep(
            comm: comm, store: built.store, optimizer: optimizer, schedule: schedule, gradientClip: config.optim.gradClip,
            dropoutSeed: derivedSeed(seed, 0x0D0F), diagnosticWidth: built.textEmbeddingWidth,
            divergenceHint: "lower optim.lr, keep gradient clipping on (optim.grad_clip), or check the input files",
            stopSignals: stopSignals,
            microBatchCapacity: config.train.deterministic ? max(sampler.localMicroBatches(batch: 0).count, 1) : 0)

        if let checkpoint {
            try Checkpoint.loadWeights(checkpoint.file, into: built)
            try checkpoint.file.readOptimizerState(into: optimizer, step: checkpoint.header.optimizerStep)
            state = checkpoint.header.state
            lastValidatedStep = state.step
        } else {
            state = TrainerState()
        }
        try checkIdenticalWeights(built, comm: comm)
        // A frozen text tower's t depends only on the report: computed once here, not every step.
        if let clipit = built as? CLIPITModel, clipit.textTowerIsFrozen, config.distill.target == .text,
           let text = trainAssembler.text {
            let table = text.tokens.withUnsafeBufferPointer {
                clipit.embedReports(tokens: $0.baseAddress!, count: text.reportCount, chunk: trainRows)
            }
            trainAssembler.reportEmbeddings = (table, clipit.config.text.outputDim)
        }

        let isRoot = comm.rank == 0
        if isRoot {
            try OutputDirectory.create(outputDirectory)
            folderLock = try RunFolderLock(directory: outputDirectory)
            recordedInputs = try RunInputs.record(config, runFolder: outputDirectory)
            if resume != nil {   // records written after the checkpoint by a killed run go
                try MetricsLog.trim(path: outputDirectory + "/metrics.jsonl", toStep: state.step)
            }
        }
        try comm.barrier()
        log = try MetricsLog(path: outputDirectory + "/metrics.jsonl", enabled: isRoot, truncate: resume == nil)
        progress = ProgressDisplay(enabled: isRoot && showProgress, every: config.train.logEvery)
        if isRoot {
            try AtomicFileWriter.write(Array(try config.yaml().utf8), to: outputDirectory + "/config.yaml")
        }
    }

    /// Trains to the end of the run (or to `train.stop_after_steps`), validating
    /// `train.validations_per_epoch` times per epoch; rank 0 writes `best.safetensors`
    /// (best validation balanced accuracy), `last.safetensors`, `metrics.jsonl` and
    /// `summary.json` in the output directory. Every rank must call it.
    public func run() throws -> TrainingSummary {
        let store = model.store
        var clock = Stopwatch()
        if comm.rank == 0 {   // even with --quiet: what the run is made of, a random tower as a warning
            FileHandle.standardError.write(Data(provenance.lines.map { "train: " + $0 + "\n" }.joined().utf8))
        }
        if state.step == 0 {
            progress.message("train: method \(method), \(comm.size) rank\(comm.size == 1 ? "" : "s"), "
                             + "\(store.trainableCount) trainable of \(store.trainableCount + store.frozenCount) parameters, "
                             + "\(stepsPerEpoch) steps/epoch, \(totalSteps) steps, global batch \(config.train.batchSize)"
                             + (config.train.deterministic ? " in micro-batches of \(config.train.microBatchSize) (deterministic)" : ""))
            if config.train.deterministic && sampler.microBatchCount(0) < comm.size {
                progress.message("warning: \(sampler.microBatchCount(0)) micro-batches per step for \(comm.size) ranks: "
                                 + "ranks \(sampler.microBatchCount(0))–\(comm.size - 1) hold none and wait; lower "
                                 + "train.micro_batch_size or raise train.batch_size")
            }
        } else {
            progress.message("train: resuming at step \(state.step) (epoch \(state.epoch + 1), batch \(state.nextBatch))")
        }
        let throughput = ThroughputMeter()
        var divergence = DivergenceGuard(factor: config.train.divergenceFactor)
        let observers: [any StepObserver] = [
            StepHook { r in try divergence.check(r.losses.total, step: r.step) },
            throughput,
            StepRecordWriter(log: log, ranks: comm.size, rateKey: "images_per_s", lossTerms: true),
            ProgressReporter(display: progress, throughput: throughput),
            StepHook { [unowned self] r in if validationPoints.contains(r.batchInEpoch) { try validate(epoch: r.epoch) } },
            StepHook { [unowned self] r in
                if config.train.checkpointEvery > 0 && r.step % config.train.checkpointEvery == 0 {
                    try saveCheckpoint("last.safetensors")
                }
            },
        ]

        var stopped = false, signalled = false
        model.isTraining = true
        loop: while state.step < totalSteps && state.epoch < config.train.epochs {
            let epoch = state.epoch
            for b in state.nextBatch..<stepsPerEpoch {
                if state.step >= totalSteps { break loop }
                let report = try trainStep(epoch: epoch, batch: b, global: batches.items(epoch: epoch, batch: b))
                for observer in observers { try observer.stepEnded(report) }
                if report.stopRequested && state.step < totalSteps {
                    (stopped, signalled) = (true, true)
                    break loop
                }
                if config.train.stopAfterSteps > 0 && state.step >= config.train.stopAfterSteps && state.step < totalSteps {
                    stopped = true
                    break loop
                }
            }
        }
        model.isTraining = false
        if !stopped && lastValidatedStep != state.step {
            // The epoch of the last step taken (the state already points at the next one).
            try validate(epoch: state.nextBatch == 0 ? max(state.epoch - 1, 0) : state.epoch)
        }
        try saveCheckpoint("last.safetensors")
        progress.finishLine()
        defer { folderLock?.release() }

        let summary = TrainingSummary(
            method: method.description, seed: config.seed, ranks: comm.size, steps: state.step,
            epochs: config.train.epochs, stopped: stopped,
            stoppedBySignal: signalled ? dataParallelStep.stopSignals?.signalReceived ?? SIGTERM : nil,
            finalLoss: lastLoss.map { Double($0.total) },
            bestBalancedAccuracy: state.bestBalancedAccuracy, bestStep: state.bestStep, seconds: clock.lap(),
            imagesPerSecond: throughput.samplesPerSecond,
            trainableParameters: store.trainableCount, totalParameters: store.trainableCount + store.frozenCount,
            provenance: provenance, teachers: teachers)
        if comm.rank == 0 {
            if let matrix = lastConfusionMatrix {
                try log.write(image: HeatMapImage(counts: matrix).tensorBoardImage, tag: "val/confusion_matrix",
                              step: lastValidatedStep)
            }
            try AtomicFileWriter.writeJSON(summary, to: outputDirectory + "/summary.json")
            let best = summary.bestBalancedAccuracy.map { String(format: ", best balanced accuracy %.2f%% at step %d", $0 * 100, summary.bestStep ?? 0) } ?? ""
            progress.message(String(format: "train: %@ after %d steps in %.1f s (%.1f img/s)%@; checkpoints in %@",
                                    stopped ? "stopped" : "done", summary.steps, summary.seconds, summary.imagesPerSecond,
                                    best, outputDirectory))
            if signalled { StopSignals.announceStop(step: state.step, command: "train", runFolder: outputDirectory) }
        }
        return summary
    }

    /// One optimiser step on global batch `batch` of `epoch` (items `global`, all ranks'):
    /// the shared data-parallel step, with the text-collapse diagnostic (the mean pairwise
    /// cosine of the batch's paired-report embeddings, from Σ tᵢ/‖tᵢ‖ summed with the
    /// losses); then the state moves to the next batch.
    private func trainStep(epoch: Int, batch b: Int, global: ArraySlice<Int>) throws -> StepReport {
        let clock = Stopwatch()
        let n = sampler.globalBatchCount(b), textWidth = model.textEmbeddingWidth
        precondition(global.count == n, "Trainer: \(global.count) items for a global batch of \(n)")
        // This rank's items `items` → the summed losses, text sums added into `textSums`.
        func forwardBackward(_ items: ArraySlice<Int>, _ textSums: UnsafeMutableBufferPointer<Float>) -> LossBreakdown {
            guard !items.isEmpty else { return LossBreakdown(total: 0, ce: 0, distill: 0) }
            let batch = trainAssembler.assemble(items, inputs: model.trainingInputs, seed: seed, epoch: epoch,
                                                globalBatch: global)
            let losses = model.forwardBackward(batch, globalBatch: n)
            if let t = model.textEmbeddings { addUnitRows(t, rows: items.count, width: textWidth, into: textSums.baseAddress!) }
            return losses
        }
        // Rows are positions within the global batch.
        let start = global.startIndex, local = sampler.localRows(batch: b)
        let outcome = config.train.deterministic
            ? try dataParallelStep.run(step: state.step, batch: b, sampler: sampler) { rows, textSums in
                forwardBackward(global[start + rows.lowerBound ..< start + rows.upperBound], textSums)
            }
            : try dataParallelStep.run(step: state.step, firstGlobalRow: local.lowerBound) {
                forwardBackward(global[start + local.lowerBound ..< start + local.upperBound], $0)
            }
        var scalars: [String: Double] = [:]
        if textWidth > 0 {
            scalars["text_cos"] = meanPairwiseCosine(sumOfUnitVectors: outcome.diagnostics.baseAddress!, width: textWidth,
                                                     count: n)
        }
        state.step += 1
        state.imagesSeen += n
        (state.epoch, state.nextBatch) = b + 1 == stepsPerEpoch ? (epoch + 1, 0) : (epoch, b + 1)
        lastLoss = outcome.losses
        lastGradientNorm = outcome.gradientNorm
        return StepReport(step: state.step, totalSteps: totalSteps, epoch: epoch, epochs: config.train.epochs,
                          batchInEpoch: b, samples: n, outcome: outcome, seconds: clock.elapsedSeconds, scalars: scalars)
    }

    /// Evaluates on the validation split (all ranks), logs the metrics, writes
    /// `last.safetensors` and, on a new best balanced accuracy, `best.safetensors`.
    func validate(epoch: Int) throws {
        guard let valAssembler else { return }
        lastValidatedStep = state.step
        let result = try evaluate(model, on: valAssembler, comm: comm, batchSize: config.train.evalBatchSize,
                                  classNames: classNames)
        // The same gathered loss on every rank, so all ranks stop together; a NaN is never "best".
        guard result.loss.isFinite else {
            throw TrainingError("the validation loss became \(result.loss) at step \(state.step): the model diverged; "
                                + "lower optim.lr or keep gradient clipping on (optim.grad_clip)")
        }
        model.isTraining = true
        let ba = result.report.balancedAccuracy
        let improved = state.bestBalancedAccuracy.map { ba > $0 } ?? true
        if improved {
            state.bestBalancedAccuracy = ba
            state.bestStep = state.step
        }
        try log.write([
            "type": "val", "step": state.step, "epoch": epoch, "balanced_accuracy": ba,
            "accuracy": result.report.accuracy, "macro_f1": result.report.macroF1,
            "macro_auroc": MetricsLog.number(result.report.macroAUROC), "loss": MetricsLog.number(result.loss),
            "samples": result.report.sampleCount, "best": improved,
        ])
        lastConfusionMatrix = result.report.confusionMatrix
        progress.message(String(format: "val: step %d  balanced accuracy %.2f%%  accuracy %.2f%%  loss %.4f%@",
                                state.step, ba * 100, result.report.accuracy * 100, result.loss, improved ? "  (best)" : ""))
        // `last` first: a full disk while writing `best` still leaves the run resumable.
        try saveCheckpoint("last.safetensors")
        if improved { try saveCheckpoint("best.safetensors") }
    }

    /// Rank 0 writes the checkpoint `name` in the output directory (atomically).
    /// Writes checkpoint `name` (rank 0). `last.safetensors` is written once per step at
    /// most: a validation, the periodic checkpoint and the end of the run can all ask for
    /// it at the same step.
    func saveCheckpoint(_ name: String) throws {
        guard comm.rank == 0 else { return }
        if name == "last.safetensors" {
            if lastSavedStep == state.step { return }
            lastSavedStep = state.step
        }
        try Checkpoint.write(to: outputDirectory + "/" + name, model: model, optimizer: optimizer, config: config,
                             state: state, classNames: classNames, tokenizer: tokenizer, inputs: recordedInputs)
    }
}

/// The optimiser `optim` names, over `parameterCount` trainable values.
func makeOptimizer(_ o: OptimSettings, parameterCount count: Int) -> any Optimizer {
    switch o.optimizer {
    case .sgd: return SGD(parameterCount: count, momentum: o.momentum, weightDecay: o.weightDecay)
    case .adamw: return Adam(parameterCount: count, beta1: o.beta1, beta2: o.beta2, epsilon: o.epsilon,
                             weightDecay: o.weightDecay, decay: .decoupled)
    case .adam: return Adam(parameterCount: count, beta1: o.beta1, beta2: o.beta2, epsilon: o.epsilon,
                            weightDecay: o.weightDecay, decay: .l2)
    }
}

/// The learning-rate schedule `optim` names, over a run of `totalSteps`.
func makeSchedule(_ o: OptimSettings, totalSteps: Int) -> LearningRateSchedule {
    switch o.schedule {
    case .constant: return .constant(o.lr)
    case .cosine: return .cosine(base: o.lr, minimum: o.etaMin, steps: totalSteps)
    case .warmupCosine: return .warmupCosine(base: o.lr, minimum: o.etaMin, warmupSteps: o.warmupSteps, totalSteps: totalSteps)
    }
}

/// sum += Σ over `rows` rows of row/‖row‖ (width floats each; a zero row adds nothing).
func addUnitRows(_ t: UnsafePointer<Float>, rows: Int, width d: Int, into sum: UnsafeMutablePointer<Float>) {
    for i in 0..<rows {
        let row = t + i * d
        axpy(1 / max(Float(sumOfSquares(row, count: d).squareRoot()), 1e-12), row, sum, count: d)
    }
}

/// The batch indices within an epoch after which to validate: `perEpoch` evenly spaced
/// points, the last one at the end of the epoch (ceil(k·S/V) − 1 for k = 1…V).
func validationBatches(perEpoch: Int, stepsPerEpoch: Int) -> Set<Int> {
    perEpoch == 0 ? [] : Set((1...perEpoch).map { k in (k * stepsPerEpoch + perEpoch - 1) / perEpoch - 1 })
}

/// Throws unless every rank holds bit-identical weights (an allreduce of a checksum).
func checkIdenticalWeights(_ model: any TrainableModel, comm: any Communicator) throws {
    let checksum = Int(truncatingIfNeeded: model.weightChecksum() >> 1)
    var extremes = [checksum, -checksum]
    try comm.allreduce(&extremes, .max)
    if extremes[0] != -extremes[1] {
        throw TrainingError("the ranks hold different initial weights (checksums differ): every rank must build the "
                            + "model from the same config, seed and model.init_* / checkpoint files; check that all "
                            + "ranks read the same files")
    }
}

/// The file that marks `directory` as holding a run (its checkpoint or metrics log), if any.
func existingRunFile(in directory: String) -> String? {
    for name in ["last.safetensors", "best.safetensors", "metrics.jsonl"] {
        let path = (directory as NSString).appendingPathComponent(name)
        if FileManager.default.fileExists(atPath: path) { return path }
    }
    return nil
}
