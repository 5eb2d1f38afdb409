import ArgumentParser
import DataParallel
import Datasets
import Foundation
import Kernels
import Model
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `clipit bench data`: how fast one core prepares training images, stage by stage, as the
/// trainer does it: the images are stored decoded in a memory-mapped `.cds` file (every
/// importer decodes PNG/JPEG/TIFF/HDF5 once, at import), so a step's "decode" is reading
/// bytes from the mapping; `BatchAssembler.assemble` then runs the training transform
/// (`TransformConfig.training`: random resized crop, flips, quarter turns, colour jitter,
/// normalisation, one fused pass per image) into the batch tensor, with labels and the
/// paired reports' token ids.
///
/// Stages, each timed over the same shuffled items on the calling thread (one core):
/// `read` copies each image's bytes out of the mapping; `transform-no-jitter` is
/// `ImageTransformer.apply` with the training transform minus colour jitter (crop and
/// resample, flips and turns, normalisation); `transform` is the full training transform;
/// `assemble` is what the trainer calls per step, batches of `--batch` items (read, transform,
/// labels, tokens). The `assemble` row's time per batch, divided by `--step-seconds`, is the
/// share of a training step that data preparation takes when nothing overlaps it.
struct BenchData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Training-data preparation on one core: read, augment and assemble, images/s per stage.",
        discussion: """
            Pipelines: demo (64-px images, the demo's 64-px training transform with CLIP \
            normalisation and its text context of 32 tokens, as configs/demo.yaml trains) and 224 \
            (224-px images, e.g. NCT-CRC-HE tiles imported as they are, the 224-px training \
            transform with ImageNet normalisation and CLIP's 77-token context). Without --data the \
            images are random bytes in a temporary .cds (the transform's cost does not depend on \
            the pixels). Example: clipit bench data --pipeline demo --data DEMO/data/train.cds \
            --step-seconds 0.135
            """)

    @Option(help: "demo, 224 or both.")
    var pipeline = "both"

    @Option(help: "Read this .cds file (one pipeline only) instead of random images; its images are the input.")
    var data: String?

    @Option(help: "Distinct random images written to the temporary .cds (without --data).")
    var images = 256

    @Option(help: "Items per assembled batch (a rank's rows of one step).")
    var batch = 32

    @Option(help: "Passes over the items per stage; the fastest counts.")
    var repeats = 3

    @Option(help: "Seconds of one training step (one pipeline only): prints the batch's share of it.")
    var stepSeconds: Double?

    @Flag(help: "Print one JSON object per row instead of a table.")
    var json = false

    /// What one pipeline reads and how the trainer transforms it.
    struct Pipeline {
        var name: String
        var imageSize: Int
        var transform: TransformConfig
        var contextLength: Int
    }

    static let pipelines = [
        Pipeline(name: "demo", imageSize: 64, transform: .training(outputSize: 64, normalization: .clip),
                 contextLength: ModelPreset.named("demo")!.text.contextLength),
        Pipeline(name: "224", imageSize: 224, transform: .training(outputSize: 224, normalization: .imagenet),
                 contextLength: TextConfig.clip.contextLength),
    ]

    func validate() throws {
        guard pipeline == "both" || Self.pipelines.contains(where: { $0.name == pipeline }) else {
            throw ValidationError("unknown --pipeline '\(pipeline)'; choose demo, 224 or both")
        }
        if data != nil || stepSeconds != nil, pipeline == "both" {
            throw ValidationError("--data and --step-seconds describe one pipeline: add --pipeline demo or --pipeline 224")
        }
        if let stepSeconds, !(stepSeconds > 0) {
            throw ValidationError("--step-seconds must be positive, got \(stepSeconds)")
        }
        guard images >= 1, batch >= 1, repeats >= 1 else {
            throw ValidationError("--images, --batch and --repeats must be at least 1")
        }
    }

    func run() throws {
        if !json {
            print("clipit bench data: one core, batches of \(batch), fastest of \(repeats) pass(es) per stage")
            print(DataRow.tableHeader)
        }
        for p in Self.pipelines where pipeline == "both" || p.name == pipeline {
            for row in try measure(p) {
                print(json ? row.json : row.tableRow)
                fflush(stdout)
            }
        }
    }

    private func measure(_ p: Pipeline) throws -> [DataRow] {
        let temporary = data == nil ? try writeRandomImages(size: p.imageSize) : nil
        defer { if let temporary { try? FileManager.default.removeItem(atPath: temporary) } }
        let file = try DatasetFile(path: data ?? temporary! + "/images.cds")
        guard file.count >= batch else {
            throw ValidationError("\(file.path) holds \(file.count) images, fewer than one batch of \(batch): lower --batch")
        }
        // The trainer's epoch order is a permutation: items in a seeded shuffled order.
        var rng = RandomGenerator(seed: 0x4441_5441)
        var order = Array(0..<file.count)
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, rng.nextInt(upperBound: i + 1)) }
        let items = Array(order.prefix(max(batch, min(order.count, images))))
        let source = "\(file.height)x\(file.width)x\(file.channels)"
        func row(_ stage: String, _ time: StageTime, _ count: Int, assembled: Bool = false) -> DataRow {
            DataRow(pipeline: p.name, stage: stage, source: source, outputSize: p.transform.outputSize,
                    images: count, seconds: time.wall, cpuSeconds: time.cpu, batch: assembled ? batch : nil,
                    stepSeconds: assembled ? stepSeconds : nil)
        }

        let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: file.imageByteCount)
        defer { scratch.deallocate() }
        let read = fastest {
            for i in items {
                let bytes = file.imageBytes(at: i)
                scratch.update(from: bytes.baseAddress!, count: bytes.count)
                keep(scratch[bytes.count / 2])   // the copy must not be optimised away
            }
        }

        let output = Tensor(shape: [3 * p.transform.outputSize * p.transform.outputSize])   // (3, S, S)
        func transformSeconds(_ config: TransformConfig) -> StageTime {
            let transformer = ImageTransformer(config: config)
            return fastest {
                for i in items {
                    transformer.apply(file.imageBytes(at: i), height: file.height, width: file.width,
                                      channels: file.channels, seed: 0, epoch: 0, index: i, into: output.data)
                }
            }
        }
        var noJitter = p.transform
        noJitter.colorJitter = nil
        let plainTransform = transformSeconds(noJitter)
        let fullTransform = transformSeconds(p.transform)

        // The trainer's call: whole batches, with labels and each item's report tokens.
        let L = p.contextLength, reports = 64
        let text = PairedText(tokens: [Int32](repeating: 1, count: reports * L), contextLength: L,
                              reportOfImage: (0..<file.count).map { $0 % reports })
        let assembler = BatchAssembler(dataset: file, transform: p.transform, text: text)
        let batches = stride(from: 0, to: items.count - batch + 1, by: batch).map { items[$0 ..< $0 + batch] }
        let assemble = fastest {
            for slice in batches {
                _ = assembler.assemble(slice, inputs: [.images, .tokens], seed: 0, epoch: 0, globalBatch: slice)
            }
        }
        return [row("read", read, items.count), row("transform-no-jitter", plainTransform, items.count),
                row("transform", fullTransform, items.count),
                row("assemble", assemble, batches.count * batch, assembled: true)]
    }

    /// The fastest of `repeats` runs of `body`: wall-clock seconds, and this thread's CPU
    /// seconds (which time slices given to other processes do not inflate).
    private func fastest(_ body: () -> Void) -> StageTime {
        var best = StageTime(wall: .infinity, cpu: .infinity)
        for _ in 0..<repeats {
            let cpuStart = threadCPUSeconds()
            let watch = Stopwatch()
            body()
            best.wall = min(best.wall, watch.elapsedSeconds)
            best.cpu = min(best.cpu, threadCPUSeconds() - cpuStart)
        }
        return best
    }

    /// A temporary folder holding `images.cds`: `images` random size × size RGB images.
    private func writeRandomImages(size: Int) throws -> String {
        let folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("clipit-bench-data-\(ProcessInfo.processInfo.processIdentifier)-\(size)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let count = max(images, batch)
        let writer = try DatasetWriter(path: folder + "/images.cds", height: size, width: size, channels: 3, count: count,
                                       info: DatasetInfo(classNames: ["a", "b"], split: "train",
                                                         source: "clipit bench data: random bytes"))
        var rng = RandomGenerator(seed: 0x494D_4753)
        var pixels = [UInt8](repeating: 0, count: size * size * 3)
        for i in 0..<count {
            for j in pixels.indices { pixels[j] = UInt8(truncatingIfNeeded: rng.nextUInt64() >> 56) }
            try writer.append(image: pixels, label: i % 2)
        }
        try writer.finish()
        return folder
    }
}

/// One stage's fastest pass.
private struct StageTime {
    var wall: Double
    var cpu: Double
}

/// CPU seconds the calling thread has used so far (`CLOCK_THREAD_CPUTIME_ID`).
private func threadCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Uses `value` where the optimiser cannot see it, so the work that made it is kept.
@inline(never)
private func keep<T>(_ value: T) { withExtendedLifetime(value) {} }

/// One stage of one pipeline of `clipit bench data`.
private struct DataRow {
    var pipeline: String
    var stage: String
    /// The stored images, height × width × channels.
    var source: String
    var outputSize: Int
    var images: Int
    /// Fastest pass over `images` images: wall-clock and thread CPU seconds.
    var seconds: Double
    var cpuSeconds: Double
    /// The assembled batch size (the `assemble` row).
    var batch: Int?
    var stepSeconds: Double?

    var imagesPerSecond: Double { Double(images) / seconds }
    var imagesPerCPUSecond: Double { Double(images) / cpuSeconds }
    var microsecondsPerImage: Double { seconds / Double(images) * 1e6 }
    /// Wall-clock seconds to assemble one batch.
    var batchSeconds: Double? { batch.map { Double($0) * seconds / Double(images) } }
    var batchCPUSeconds: Double? { batch.map { Double($0) * cpuSeconds / Double(images) } }
    var stepFraction: Double? {
        guard let batchSeconds, let stepSeconds else { return nil }
        return batchSeconds / stepSeconds
    }

    static let tableHeader = pad("pipeline", 9) + pad("stage", 21) + pad("source", 12) + lpad("out", 4)
        + lpad("images", 7) + lpad("img/s", 11) + lpad("img/cpu-s", 11) + lpad("µs/img", 9) + lpad("batch s", 9)
        + lpad("of step", 9)

    var tableRow: String {
        pad(pipeline, 9) + pad(stage, 21) + pad(source, 12) + lpad("\(outputSize)", 4) + lpad("\(images)", 7)
            + lpad(String(format: "%.1f", imagesPerSecond), 11) + lpad(String(format: "%.1f", imagesPerCPUSecond), 11)
            + lpad(String(format: "%.1f", microsecondsPerImage), 9)
            + lpad(batchSeconds.map { String(format: "%.4f", $0) } ?? "-", 9)
            + lpad(stepFraction.map { String(format: "%.2f%%", $0 * 100) } ?? "-", 9)
    }

    var json: String {
        var fields: [(String, String)] = [
            ("pipeline", "\"\(pipeline)\""), ("stage", "\"\(stage)\""), ("source", "\"\(source)\""),
            ("output_size", "\(outputSize)"), ("threads", "1"), ("images", "\(images)"),
            ("seconds", String(format: "%.6f", seconds)), ("cpu_seconds", String(format: "%.6f", cpuSeconds)),
            ("images_per_s", String(format: "%.2f", imagesPerSecond)),
            ("images_per_cpu_s", String(format: "%.2f", imagesPerCPUSecond)),
            ("us_per_image", String(format: "%.2f", microsecondsPerImage)),
        ]
        if let batch, let batchSeconds, let batchCPUSeconds {
            fields += [("batch", "\(batch)"), ("batch_seconds", String(format: "%.6f", batchSeconds)),
                       ("batch_cpu_seconds", String(format: "%.6f", batchCPUSeconds))]
        }
        if let stepSeconds, let stepFraction {
            fields += [("step_seconds", String(format: "%.6f", stepSeconds)),
                       ("step_fraction", String(format: "%.5f", stepFraction))]
        }
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }
}
