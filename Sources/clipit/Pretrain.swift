import Datasets
import Model
import Import
import DataParallel
import Evaluation
import Retrieval
import ArgumentParser
import Formats
import Foundation
import Training

/// `clipit pretrain`: trains the CLIP-style retriever on a paired image–report set.
struct Pretrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pretrain",
        abstract: "Pretrain the retriever (image + text towers) with the symmetric InfoNCE loss, data-parallel.",
        discussion: """
            Reads the paired set (DIR/paired.cds + DIR/paired.jsonl from `clipit synth`, or \
            --images/--reports), holds out the last --holdout fraction of the pairs, and \
            trains both towers with negatives from the whole global batch across all ranks. \
            Writes OUT/retriever.safetensors (LoRA merged; the input of `clipit pair`), \
            OUT/metrics.jsonl and OUT/summary.json, and prints held-out image→text top-1/top-5 \
            retrieval accuracy and how often the top-1 report has the image's label. \
            Run it unchanged on one rank or under mpirun/srun. See docs/retriever.md.
            """)

    @OptionGroup var communicator: CommunicatorOptions

    @Option(help: "Directory holding paired.cds and paired.jsonl.")
    var data: String?

    @Option(help: "Paired images (.cds); overrides DIR/paired.cds.")
    var images: String?

    @Option(help: "Reports aligned with the images by index (.jsonl/.txt); overrides DIR/paired.jsonl.")
    var reports: String?

    @Option(help: "Output directory (created if missing).")
    var out: String

    @Option(help: "Architecture: \(RetrieverPresets.names.joined(separator: ", ")).")
    var preset: String = "demo"

    @Option(help: "Epochs over the training pairs.")
    var epochs: Int = 10

    @Option(help: "Global batch size (pairs sharing negatives, over all ranks).")
    var batchSize: Int = 64

    @Option(help: "Peak learning rate (AdamW, warm-up then cosine).")
    var lr: Float = 1e-3

    @Option(help: "Decoupled weight decay.")
    var weightDecay: Float = 0.05

    @Option(help: "Warm-up steps.")
    var warmupSteps: Int = 20

    @Option(help: "Global gradient-norm clipping (0: off).")
    var gradClip: Float = 1

    @Option(help: "Fraction of the pairs (the last ones) held out to measure retrieval.")
    var holdout: Double = 0.1

    @Option(help: "LoRA rank on both towers (0: full fine-tuning).")
    var loraRank: Int = 0

    @Option(help: "Evaluate on the held-out pairs every this many epochs (0: at the end only).")
    var evalEvery: Int = 1

    @Option(help: "Image normalisation: clip, imagenet or unit.")
    var normalization: String = "clip"

    @Flag(help: "No flips or quarter turns on training images.")
    var noAugment = false

    @Option(help: "Random seed (weights, batch order, dropout).")
    var seed: Int = 0

    @Option(help: "Progress line every this many steps.")
    var logEvery: Int = 10

    var settings: PretrainSettings {
        var s = PretrainSettings()
        s.seed = seed
        s.epochs = epochs
        s.batchSize = batchSize
        s.lr = lr
        s.weightDecay = weightDecay
        s.warmupSteps = warmupSteps
        s.gradClip = gradClip
        s.holdoutFraction = holdout
        s.loraRank = loraRank
        s.evaluateEvery = evalEvery
        s.normalization = normalization
        s.augment = !noAugment
        s.logEvery = max(logEvery, 1)
        return s
    }

    func validate() throws {
        guard data != nil || (images != nil && reports != nil) else {
            throw ValidationError("pass --data DIR (with paired.cds and paired.jsonl) or both --images and --reports")
        }
        guard RetrieverPresets.names.contains(preset) else {
            throw ValidationError("unknown --preset '\(preset)'; choose one of \(RetrieverPresets.names.joined(separator: ", "))")
        }
        do { try settings.validate() } catch { throw ValidationError(String(describing: error)) }
    }

    func run() throws {
        try communicator.run { comm in
            let settings = self.settings
            let config = settings.apply(to: try RetrieverPresets.config(preset))
            let paired = try PairedRetrievalData(imagesPath: images ?? data! + "/paired.cds",
                                                 reportsPath: reports ?? data! + "/paired.jsonl",
                                                 holdoutFraction: settings.holdoutFraction, text: config.text)
            let model = try RetrieverModel(config, seed: UInt64(truncatingIfNeeded: seed))
            model.store.execution.parallelHeads = true   // one rank per process: BLAS called from this thread only
            let trainer = try RetrieverPretrainer(model: model, data: paired, settings: settings, comm: comm,
                                                  outputDirectory: out)
            let summary = try trainer.run()
            try trainer.writeOutputs(summary: summary, metadata: ["clipit.retriever.preset": preset,
                                                                  "clipit.retriever.seed": String(seed)])
            if comm.rank == 0 {
                if let q = summary.after {
                    print(String(format: "pretrain: %d steps in %.1f s (%.1f pairs/s, %d rank%@); held-out %d pairs: "
                                     + "image→text top-1 %.1f%%, top-5 %.1f%%, label match %.1f%%",
                                 summary.steps, summary.seconds, summary.pairsPerSecond, summary.ranks,
                                 summary.ranks == 1 ? "" : "s", q.pairs, q.imageToTextTop1 * 100, q.imageToTextTop5 * 100,
                                 q.labelMatchTop1 * 100))
                }
                print("pretrain: wrote \(out)/retriever.safetensors, summary.json, metrics.jsonl")
            }
            try comm.barrier()
        }
    }
}
