import ArgumentParser
import DataParallel
import Datasets
import Formats
import Foundation

/// `clipit synth`: writes the synthetic histology benchmark (docs/datasets.md).
struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Generate the synthetic histology benchmark: downstream .cds splits, an unpaired report corpus, a paired set for the retriever and, optionally, unlabelled images.",
        discussion: """
        Output in DIR: train.cds, val.cds, test.cds (labelled images), reports.jsonl (the \
        external, unpaired report corpus, with a "label" field for the oracle pairing), \
        paired.cds + paired.jsonl (image-report pairs aligned by index, for the retriever), \
        with --unlabeled N also unlabeled.cds (N images drawn like the training split but \
        stored without labels, for data.unlabeled after clipit pair), and manifest.json. \
        The same preset, sizes and seed always give byte-identical files, and --unlabeled \
        changes no file but manifest.json.
        """)

    @Option(help: "Size preset: \(SyntheticBenchmarkConfig.presetNames.joined(separator: ", ")).")
    var preset: String = "demo"

    @Option(help: "Random seed; every byte written depends only on it and the sizes.")
    var seed: UInt64 = 0

    @Option(help: "Output folder (created if missing).")
    var out: String

    @Option(help: "Image side in pixels (overrides the preset).")
    var imageSize: Int?

    @Option(help: "Training images (overrides the preset).")
    var train: Int?

    @Option(help: "Validation images (overrides the preset).")
    var val: Int?

    @Option(help: "Test images (overrides the preset).")
    var test: Int?

    @Option(help: "Reports in the unpaired corpus (overrides the preset).")
    var reports: Int?

    @Option(help: "Image-report pairs for the retriever (overrides the preset).")
    var paired: Int?

    @Option(help: "Unlabelled images drawn like the training split, written to unlabeled.cds without labels (0: no such file).")
    var unlabeled: Int = 0

    @Option(help: "0…1: wider slide-to-slide stain variation and subtler look-alike subtypes (0: the original benchmark; docs/datasets.md).")
    var difficulty: Float = 0

    @Option(help: "Worker threads for rendering (output does not depend on it).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Also write a PNG montage of training images (rows: classes) to this path.")
    var montage: String?

    func validate() throws {
        guard SyntheticBenchmarkConfig.preset(preset) != nil else {
            throw ValidationError("unknown preset '\(preset)'; choose one of \(SyntheticBenchmarkConfig.presetNames.joined(separator: ", "))")
        }
        if let imageSize, !(16...512).contains(imageSize) {
            throw ValidationError("--image-size must be between 16 and 512, got \(imageSize)")
        }
        let counts: [(String, Int?)] = [("train", train), ("val", val), ("test", test), ("reports", reports),
                                        ("paired", paired), ("unlabeled", unlabeled)]
        for (name, value) in counts {
            if let value, value < 0 { throw ValidationError("--\(name) must not be negative, got \(value)") }
        }
        guard (0...1).contains(difficulty) else { throw ValidationError("--difficulty must be between 0 and 1, got \(difficulty)") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        var config = SyntheticBenchmarkConfig.preset(preset)!
        if let imageSize { config.imageSize = imageSize }
        if let train { config.trainCount = train }
        if let val { config.valCount = val }
        if let test { config.testCount = test }
        if let reports { config.reportCount = reports }
        if let paired { config.pairedCount = paired }
        config.unlabeledCount = unlabeled
        config.difficulty = difficulty
        let output = try SyntheticBenchmark.generate(config: config, seed: seed, preset: preset, directory: out, threads: threads,
                                                     progress: ItemProgress.callback("synth: image sets", unit: "sets/s",
                                                                                     enabled: true))
        print("synth: preset \(preset), seed \(seed), difficulty \(difficulty), \(config.imageSize)×\(config.imageSize) RGB, classes: \(SyntheticTaxonomy.classNames.joined(separator: ", "))")
        for file in output.files {
            let counts = file.classCounts.isEmpty ? "" : "  per class \(file.classCounts)"
            let count = file.kind == "manifest" ? "" : String(file.count)
            print("  \(out)/\(file.name)  \(file.kind) \(count)\(counts)")
        }
        print(String(format: "synth: done in %.2f s", output.seconds))
        if let montage {
            let image = SyntheticBenchmark.montage(try DatasetFile(path: out + "/train.cds"), perClass: 8)
            try PNGWriter.write(image.pixels, width: image.width, height: image.height, channels: 3, to: montage)
            print("synth: montage of the first training images per class written to \(montage)")
        }
    }
}
