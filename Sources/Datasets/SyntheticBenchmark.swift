// The synthetic CLIP-IT benchmark: a labelled image-only downstream set (train/val/test
// .cds), an unpaired external report corpus (JSONL), a separate paired image–report set
// for training the retriever and, optionally, a pool of unlabelled images drawn like the
// training split. Everything is a pure function of (configuration, seed).
import Formats
import Foundation
import Kernels

/// Sizes of a synthetic benchmark.
public struct SyntheticBenchmarkConfig: Equatable, Sendable {
    public var imageSize: Int
    public var trainCount: Int
    public var valCount: Int
    public var testCount: Int
    /// Reports in the external, unpaired corpus.
    public var reportCount: Int
    /// Image–report pairs for the retriever.
    public var pairedCount: Int
    /// Unlabelled images (`unlabeled.cds`), drawn like the training split from a stream of
    /// their own; 0 writes no such file.
    public var unlabeledCount: Int
    /// Images per simulated slide (one staining style per slide; slides never span splits).
    public var imagesPerSlide: Int
    /// 0…1: wider slide-to-slide stain variation and subtler differences between the
    /// look-alike subtypes (docs/datasets.md). 0 reproduces the original benchmark.
    public var difficulty: Float

    public init(imageSize: Int, trainCount: Int, valCount: Int, testCount: Int, reportCount: Int,
                pairedCount: Int, unlabeledCount: Int = 0, imagesPerSlide: Int = 40, difficulty: Float = 0) {
        self.imageSize = imageSize
        self.trainCount = trainCount
        self.valCount = valCount
        self.testCount = testCount
        self.reportCount = reportCount
        self.pairedCount = pairedCount
        self.unlabeledCount = unlabeledCount
        self.imagesPerSlide = imagesPerSlide
        self.difficulty = difficulty
    }

    /// Named presets: `tiny` (tests; well under a second), `small`, `demo` (a 15-minute
    /// two-core training demo).
    public static func preset(_ name: String) -> SyntheticBenchmarkConfig? {
        switch name {
        case "tiny": return SyntheticBenchmarkConfig(imageSize: 32, trainCount: 24, valCount: 12, testCount: 12,
                                                      reportCount: 40, pairedCount: 48, imagesPerSlide: 6)
        case "small": return SyntheticBenchmarkConfig(imageSize: 64, trainCount: 400, valCount: 100, testCount: 200,
                                                       reportCount: 300, pairedCount: 800)
        case "demo": return SyntheticBenchmarkConfig(imageSize: 64, trainCount: 2000, valCount: 500, testCount: 1000,
                                                      reportCount: 1000, pairedCount: 3000)
        default: return nil
        }
    }

    public static let presetNames = ["tiny", "small", "demo"]
}

/// One generated split held in memory: images (count × S × S × 3), labels, latent subtypes.
public struct SyntheticSplit: Sendable {
    public var name: String
    public var size: Int
    public var images: [UInt8]
    public var labels: [Int]
    public var subtypes: [Int]
    public var slides: [Int]
    public var count: Int { labels.count }
}

public enum SyntheticBenchmark {
    public static let generatorName = "clipit synthetic histology v1"

    /// Stream tags keeping the random streams of splits and corpora apart.
    static let tags: [String: Int] = ["train": 1, "val": 2, "test": 3, "paired": 4, "reports": 5, "paired-reports": 6,
                                      "unlabeled": 7]

    /// Balanced labels (counts differ by at most one), shuffled by the split's stream.
    static func balancedLabels(count: Int, seed: UInt64, tag: Int) -> [Int] {
        let classes = SyntheticTaxonomy.classNames.count
        var labels = (0..<count).map { $0 % classes }
        var g = RandomGenerator(seed: derivedSeed(seed, tag, -1))
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) { labels.swapAt(i, g.nextInt(upperBound: i + 1)) }
        }
        return labels
    }

    /// Renders one split. Image i depends only on (seed, split, i); rendering is spread over
    /// `threads` workers without changing a byte.
    public static func renderSplit(_ name: String, count: Int, size: Int, seed: UInt64,
                                   imagesPerSlide: Int, difficulty: Float = 0,
                                   threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> SyntheticSplit {
        let tag = tags[name] ?? 100
        let labels = balancedLabels(count: count, seed: seed, tag: tag)
        var subtypes = [Int](repeating: 0, count: count)
        let slides = (0..<count).map { $0 / max(imagesPerSlide, 1) }
        let bytesPerImage = size * size * 3
        var images = [UInt8](repeating: 0, count: count * bytesPerImage)
        let workers = max(1, min(threads, count))
        images.withUnsafeMutableBufferPointer { imageBuffer in
            subtypes.withUnsafeMutableBufferPointer { subtypeBuffer in
                let imageBase = imageBuffer.baseAddress, subtypeBase = subtypeBuffer.baseAddress
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    let renderer = TissueRenderer(size: size, difficulty: difficulty)
                    var i = worker
                    while i < count {
                        var stainGenerator = RandomGenerator(seed: derivedSeed(seed, tag, 1_000_000 + slides[i]))
                        let stain = StainStyle(&stainGenerator, difficulty: difficulty)
                        var g = RandomGenerator(seed: derivedSeed(seed, tag, i))
                        let subtype = SyntheticTaxonomy.drawSubtype(labels[i], &g)
                        subtypeBase![i] = subtype
                        renderer.render(label: labels[i], subtype: subtype, stain: stain, generator: &g,
                                        into: imageBase! + i * bytesPerImage)
                        i += workers
                    }
                }
            }
        }
        return SyntheticSplit(name: name, size: size, images: images, labels: labels, subtypes: subtypes, slides: slides)
    }

    /// Reports for the given (label, subtype) list, report j from the stream (seed, tag, j).
    static func reports(labels: [Int], subtypes: [Int], seed: UInt64, tag: Int) -> [String] {
        (0..<labels.count).map { j in
            var g = RandomGenerator(seed: derivedSeed(seed, tag, j))
            return SyntheticReports.report(label: labels[j], subtype: subtypes[j], &g)
        }
    }

    /// The external corpus: labels balanced, subtypes drawn with the class frequencies,
    /// all independent of any image.
    public static func externalCorpus(count: Int, seed: UInt64) -> (corpus: ReportCorpus, subtypes: [Int]) {
        let tag = tags["reports"]!
        let labels = balancedLabels(count: count, seed: seed, tag: tag)
        let subtypes = (0..<count).map { j -> Int in
            var g = RandomGenerator(seed: derivedSeed(seed, tag, 2_000_000 + j))
            return SyntheticTaxonomy.drawSubtype(labels[j], &g)
        }
        let texts = reports(labels: labels, subtypes: subtypes, seed: seed, tag: tag)
        let corpus = ReportCorpus(ids: (0..<count).map { "report-\(pad($0))" }, texts: texts,
                                  tissues: Array(repeating: "colon", count: count), labels: labels)
        return (corpus, subtypes)
    }

    /// The paired set's reports: report i describes paired image i's class and subtype.
    public static func pairedReports(for split: SyntheticSplit, seed: UInt64) -> ReportCorpus {
        let texts = reports(labels: split.labels, subtypes: split.subtypes, seed: seed, tag: tags["paired-reports"]!)
        return ReportCorpus(ids: (0..<split.count).map { "paired-\(pad($0))" }, texts: texts,
                            tissues: Array(repeating: "colon", count: split.count), labels: split.labels)
    }

    static func pad(_ i: Int) -> String {
        let s = String(i)
        return s.count >= 6 ? s : String(repeating: "0", count: 6 - s.count) + s
    }

    /// What `generate` wrote.
    public struct Output: Sendable {
        public struct FileEntry: Sendable {
            public var name: String
            public var kind: String
            public var count: Int
            /// Images per class; empty for files without classes (manifest) or labels.
            public var classCounts: [Int]
            /// False for the unlabelled pool, whose manifest entry has no class counts.
            public var labelled = true
        }
        public var directory: String
        public var files: [FileEntry]
        public var seconds: Double
    }

    /// Writes the whole benchmark into `directory` (created if needed): train.cds, val.cds,
    /// test.cds, reports.jsonl, paired.cds, paired.jsonl, unlabeled.cds (only when
    /// `config.unlabeledCount` > 0), manifest.json. The other files do not depend on
    /// `unlabeledCount`: they are the same bytes with or without the unlabelled pool.
    /// `progress` is told each part written (a split, a corpus) and the count of parts.
    public static func generate(config: SyntheticBenchmarkConfig, seed: UInt64, preset: String,
                                directory: String, threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                                progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> Output {
        let start = Date()
        try OutputDirectory.create(directory)
        let classNames = SyntheticTaxonomy.classNames
        let source = "\(generatorName), seed \(seed)"
        var entries: [Output.FileEntry] = []
        func counts(_ labels: [Int]) -> [Int] {
            var c = [Int](repeating: 0, count: classNames.count)
            for l in labels { c[l] += 1 }
            return c
        }
        var imageSetsWritten = 0
        let imageSets = config.unlabeledCount > 0 ? 5 : 4   // train, val, test, paired, unlabeled
        // Writes `split`; `labelled: false` stores no label and no latent subtype (the pool is
        // unlabelled: what its images show is recorded nowhere).
        func writeSplit(_ split: SyntheticSplit, file: String, idPrefix: String, labelled: Bool = true) throws {
            let info = DatasetInfo(classNames: classNames, split: split.name, source: source, labelled: labelled,
                                   ids: (0..<split.count).map { "\(idPrefix)-\(pad($0))" },
                                   attributes: labelled ? ["subtype": split.subtypes, "slide": split.slides] : ["slide": split.slides],
                                   metadata: ["seed": String(seed), "preset": preset, "generator": generatorName,
                                              "difficulty": String(config.difficulty)])
            let writer = try DatasetWriter(path: directory + "/" + file, height: split.size, width: split.size,
                                           channels: 3, count: split.count, info: info)
            let bytes = split.size * split.size * 3
            try split.images.withUnsafeBufferPointer { all in
                for i in 0..<split.count {
                    let image = UnsafeBufferPointer(rebasing: all[(i * bytes)..<((i + 1) * bytes)])
                    if labelled { try writer.append(image: image, label: split.labels[i]) } else { try writer.append(image: image) }
                }
            }
            try writer.finish()
            let kind = !labelled ? "unlabelled images" : split.name == "paired" ? "paired images" : "images"
            entries.append(.init(name: file, kind: kind, count: split.count, classCounts: labelled ? counts(split.labels) : [],
                                 labelled: labelled))
            imageSetsWritten += 1
            progress?(imageSetsWritten, imageSets)
        }
        for (name, count) in [("train", config.trainCount), ("val", config.valCount), ("test", config.testCount)] {
            let split = renderSplit(name, count: count, size: config.imageSize, seed: seed,
                                    imagesPerSlide: config.imagesPerSlide, difficulty: config.difficulty, threads: threads)
            try writeSplit(split, file: "\(name).cds", idPrefix: name)
        }
        let external = externalCorpus(count: config.reportCount, seed: seed)
        try external.corpus.writeJSONL(to: directory + "/reports.jsonl", classNames: classNames)
        entries.append(.init(name: "reports.jsonl", kind: "reports", count: external.corpus.count,
                             classCounts: counts(external.corpus.labels.map { $0! })))
        let paired = renderSplit("paired", count: config.pairedCount, size: config.imageSize, seed: seed,
                                 imagesPerSlide: config.imagesPerSlide, difficulty: config.difficulty, threads: threads)
        try writeSplit(paired, file: "paired.cds", idPrefix: "paired")
        let pairedCorpus = pairedReports(for: paired, seed: seed)
        try pairedCorpus.writeJSONL(to: directory + "/paired.jsonl", classNames: classNames)
        entries.append(.init(name: "paired.jsonl", kind: "paired reports", count: pairedCorpus.count,
                             classCounts: counts(paired.labels)))
        if config.unlabeledCount > 0 {
            // Rendered like the training split (balanced classes, the subtype frequencies,
            // slides of `imagesPerSlide`) from the stream tag "unlabeled", so no image or
            // slide coincides with one of another split; the class of each image is drawn to
            // render it and then forgotten.
            let unlabeled = renderSplit("unlabeled", count: config.unlabeledCount, size: config.imageSize, seed: seed,
                                        imagesPerSlide: config.imagesPerSlide, difficulty: config.difficulty, threads: threads)
            try writeSplit(unlabeled, file: "unlabeled.cds", idPrefix: "unlabeled", labelled: false)
        }

        // Manifest (fixed key order: byte-identical for the same inputs).
        var json = "{\n"
        json += "  \"generator\": \(jsonString(generatorName)),\n"
        json += "  \"preset\": \(jsonString(preset)),\n"
        json += "  \"seed\": \(seed),\n"
        json += "  \"image_size\": \(config.imageSize),\n"
        json += "  \"images_per_slide\": \(config.imagesPerSlide),\n"
        json += "  \"difficulty\": \(config.difficulty),\n"
        json += "  \"classes\": [" + classNames.map(jsonString).joined(separator: ", ") + "],\n"
        json += "  \"subtypes\": {" + zip(classNames, SyntheticTaxonomy.subtypeNames).map {
            jsonString($0.0) + ": [" + $0.1.map(jsonString).joined(separator: ", ") + "]"
        }.joined(separator: ", ") + "},\n"
        json += "  \"files\": [\n" + entries.map {
            "    {\"path\": \(jsonString($0.name)), \"kind\": \(jsonString($0.kind)), \"count\": \($0.count)"
                + (!$0.labelled ? "}"
                   : ", \"class_counts\": [\($0.classCounts.map(String.init).joined(separator: ", "))]}")
        }.joined(separator: ",\n") + "\n  ],\n"
        json += "  \"paired\": {\"images\": \"paired.cds\", \"reports\": \"paired.jsonl\", \"aligned_by\": \"index\"}\n"
        json += "}\n"
        try writeFileAtomically(directory + "/manifest.json", Array(json.utf8))
        entries.append(.init(name: "manifest.json", kind: "manifest", count: 0, classCounts: []))
        return Output(directory: directory, files: entries, seconds: Date().timeIntervalSince(start))
    }

    /// A montage (rows = classes, `perClass` columns, 2-pixel white gaps) of the first
    /// images of each class of an RGB dataset file, as RGB bytes and its size.
    public static func montage(_ file: DatasetFile, perClass: Int) -> (pixels: [UInt8], width: Int, height: Int) {
        precondition(file.channels == 3, "montage: RGB images expected")
        let (H, W, gap, classes) = (file.height, file.width, 2, file.classNames.count)
        let width = perClass * (W + gap) - gap, height = classes * (H + gap) - gap
        var pixels = [UInt8](repeating: 255, count: width * height * 3)
        for c in 0..<classes {
            let members = (0..<file.count).filter { file.label(at: $0) == c }.prefix(perClass)
            for (k, i) in members.enumerated() {
                let image = file.imageBytes(at: i)
                for y in 0..<H {
                    let target = ((c * (H + gap) + y) * width + k * (W + gap)) * 3
                    for b in 0..<(W * 3) { pixels[target + b] = image[y * W * 3 + b] }
                }
            }
        }
        return (pixels, width, height)
    }
}
