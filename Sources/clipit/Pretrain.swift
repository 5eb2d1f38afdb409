import ArgumentParser
import Configuration
import DataParallel
import Datasets
import Foundation
import Model
import Retrieval

/// `clipit pretrain`: trains the CLIP-style retriever on a paired image–report set.
struct Pretrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pretrain",
        abstract: "Pretrain the retriever (image + text towers) with the symmetric InfoNCE loss, data-parallel.",
        discussion: """
            The configuration is the pretrain: section of --config (defaults otherwise), then \
            --set pretrain.key=value, then the flags below. Reads the paired set (DIR/paired.cds + \
            DIR/paired.jsonl from `clipit synth`, or --images/--reports), holds out the last \
            --holdout fraction of the pairs, and \
            trains both towers with negatives from the whole global batch across all ranks. \
            Writes OUT/retriever.safetensors (LoRA merged; the input of `clipit pair`), \
            OUT/metrics.jsonl and OUT/summary.json, and prints held-out image→text top-1/top-5 \
            retrieval accuracy and how often the top-1 report has the image's label. \
            Run it unchanged on one rank or under mpirun/srun. See docs/retriever.md.
            """)

    @OptionGroup var communicator: CommunicatorOptions

    @Option(help: "YAML configuration file whose pretrain: section sets any key below (configs/*.yaml).")
    var config: String?

    @Option(name: .customLong("set"),
            help: ArgumentHelp("Override any pretrain key, e.g. --set pretrain.min_lr=1e-6 (repeatable).",
                               valueName: "pretrain.key=value"))
    var overrides: [String] = []

    @Option(help: "Directory holding paired.cds and paired.jsonl.")
    var data: String?

    @Option(help: "Paired images (.cds); overrides DIR/paired.cds (pretrain.images).")
    var images: String?

    @Option(help: "Reports aligned with the images by index (.jsonl/.txt); overrides DIR/paired.jsonl (pretrain.reports).")
    var reports: String?

    @Option(help: "Output folder (created if missing).")
    var out: String

    @Option(help: ArgumentHelp("Continue from a stopped run's checkpoint (its last.safetensors), or 'auto': "
                               + "--out's last.safetensors when it has one.", valueName: "checkpoint|auto"))
    var resume: String?

    @Option(help: "Tower preset: tiny or demo (pretrain.preset; default demo).")
    var preset: String?

    @Option(help: "Epochs (pretrain.epochs; default 10).")
    var epochs: Int?

    @Option(help: "Global batch over all ranks: the pairs whose InfoNCE shares negatives (pretrain.batch_size; default 64).")
    var batch: Int?

    @Option(name: .customLong("batch-size"), help: aliasHelp(of: "batch"))
    var batchSizeAlias: Int?

    @Option(help: "Peak learning rate of AdamW (pretrain.lr; default 1e-3).")
    var lr: Float?

    @Option(help: "Decoupled weight decay (pretrain.weight_decay; default 0.05).")
    var weightDecay: Float?

    @Option(help: "Linear warm-up steps before the cosine decay (pretrain.warmup_steps; default 20).")
    var warmupSteps: Int?

    @Option(help: "Global gradient-norm clipping, 0 for none (pretrain.grad_clip; default 1).")
    var gradClip: Float?

    @Option(help: "Fraction of the pairs (the last ones) held out to measure retrieval (pretrain.holdout_fraction; default 0.1).")
    var holdout: Double?

    @Option(help: "LoRA rank on both towers, 0 for full fine-tuning (pretrain.lora_rank; default 0).")
    var loraRank: Int?

    @Option(help: "Evaluate on the held-out pairs every this many epochs, 0 for the end only (pretrain.evaluate_every; default 1).")
    var evalEvery: Int?

    @Option(help: "Image normalisation: clip, imagenet or unit (pretrain.normalization; default clip).")
    var normalization: NormalizationName?

    @Flag(help: "No flips or quarter turns on training images (pretrain.augment: false).")
    var noAugment = false

    @Option(help: "Random seed: weights, batch order, dropout (pretrain.seed; default 0).")
    var seed: Int?

    @Option(help: "Progress line every this many steps (pretrain.log_every; default 10).")
    var logEvery: Int?

    /// Defaults ← the config file's `pretrain:` section ← --set ← the explicit flags above.
    func resolveConfig() throws -> PretrainConfig {
        let yaml = try config.map(ConfigurationResolver.readFile)
        var c = try PretrainConfig.resolve(yaml: yaml, overrides: overrides)
        if let preset { c.preset = preset }
        if let epochs { c.epochs = epochs }
        if let batch = try renamedOption(batch, batchSizeAlias, name: "batch", oldName: "batch-size") { c.batchSize = batch }
        if let lr { c.lr = lr }
        if let weightDecay { c.weightDecay = weightDecay }
        if let warmupSteps { c.warmupSteps = warmupSteps }
        if let gradClip { c.gradClip = gradClip }
        if let holdout { c.holdoutFraction = holdout }
        if let loraRank { c.loraRank = loraRank }
        if let evalEvery { c.evaluateEvery = evalEvery }
        if let normalization { c.normalization = normalization }
        if noAugment { c.augment = false }
        if let seed { c.seed = seed }
        if let logEvery { c.logEvery = logEvery }
        if let data, images == nil || reports == nil {
            let paired = try DataFolder(data).pairedSet()
            if images == nil { c.images = paired.images }
            if reports == nil { c.reports = paired.reports }
        }
        if let images { c.images = images }
        if let reports { c.reports = reports }
        guard !c.images.isEmpty, !c.reports.isEmpty else {
            throw RetrieverError("pass --data DIR (with paired.cds and paired.jsonl), both --images and --reports, "
                                 + "or pretrain.images and pretrain.reports in the config")
        }
        try c.validate()
        return c
    }

    func validate() throws {
        do { _ = try resolveConfig() } catch { throw ValidationError(String(describing: error)) }
    }

    /// Pretrains; on SIGTERM, SIGINT or SIGUSR1 every rank stops after the same step with a
    /// checkpoint of it (no export is written) and the process exits with status 75.
    func run() throws {
        try communicator.runStoppable { comm, signals in
            let settings = try resolveConfig()
            let config = try settings.retrieverConfig()
            let paired = try PairedRetrievalData(imagesPath: settings.images, reportsPath: settings.reports,
                                                 holdoutFraction: settings.holdoutFraction, text: config.text)
            let model = try RetrieverModel(config, seed: UInt64(truncatingIfNeeded: settings.seed))
            model.store.execution.parallelWorkers = true   // one rank per process: BLAS called from this thread only
            let trainer = try RetrieverPretrainer(model: model, data: paired, settings: settings, comm: comm,
                                                  outputDirectory: out, resume: checkpointToResume(resume, runFolder: out),
                                                  stopSignals: signals)
            let summary = try trainer.run()
            if summary.stoppedBySignal != nil { return true }
            try trainer.writeOutputs(summary: summary, metadata: ["clipit.retriever.preset": settings.preset,
                                                                  "clipit.retriever.seed": String(settings.seed)])
            if comm.rank == 0 {
                if let q = summary.after {
                    print(String(format: "pretrain: %d steps in %.1f s (%.1f pairs/s, %d rank%@); held-out %d pairs: "
                                     + "image→text top-1 %.1f%%, top-5 %.1f%%, label match %.1f%%",
                                 summary.steps, summary.seconds, summary.pairsPerSecond, summary.ranks,
                                 summary.ranks == 1 ? "" : "s", q.pairs, q.imageToTextTop1 * 100, q.imageToTextTop5 * 100,
                                 q.labelMatchTop1 * 100))
                }
                print("pretrain: wrote \(out)/retriever.safetensors, config.yaml, summary.json, metrics.jsonl")
            }
            try comm.barrier()
            return false
        }
    }
}

extension NormalizationName: ExpressibleByArgument {}
