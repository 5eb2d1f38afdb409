import ArgumentParser
import Foundation
import Kernels
import Model
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `clipit bench predict`: image-only CLIP-IT inference as `clipit predict` runs it (the
/// vision tower with LoRA merged into its base weights, then the heads), against the same
/// model built without LoRA. Merging must make LoRA free: the goal is a merged/plain ratio
/// of at most 1.01.
///
/// Both variants are `CLIPITModel.predict(images:batch:)` on one configuration (the preset's
/// ViT, the late-fusion heads with the projection h_d, evaluation mode, serial attention
/// heads as `clipit predict` runs them); only the vision tower's training differs: LoRA on
/// every block Linear and the patch embedding, merged (`merged`), or no LoRA (`plain`).
/// The text tower is not built: image-only inference never touches it.
struct BenchPredict: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Inference latency and throughput: CLIP-IT with LoRA merged against the same model without LoRA.",
        discussion: """
            Each round builds one variant's model, times it, frees it, then does the same for \
            the other (one model in memory at a time); the first variant alternates between \
            rounds: plain, merged, merged, plain, plain, merged, … Per variant: single-image forwards (batch-1 latency) and forwards of \
            --batch images (throughput); each row reports the median over all rounds, and the \
            merged rows the ratio of their median to the plain one (also of the fastest forwards \
            and of the CPU times). Weights are random (LoRA B \
            too, so the merge changes the weights); images uniform in [-1, 1]. \
            Example: clipit bench predict --model vit-s16 --threads 1 --json
            """)

    @Option(help: "vit-s16, vit-b16 or both.")
    var model = "both"

    @Option(help: "Image side in pixels (a multiple of 16).")
    var imageSize = 224

    @Option(help: "Images per forward of the throughput rows.")
    var batch = 64

    @Option(help: "BLAS threads (default: the library's thread variable, e.g. OPENBLAS_NUM_THREADS, else all cores).")
    var threads: Int?

    @Option(help: "Rounds of plain then merged.")
    var rounds = 2

    @Option(help: "Timed single-image forwards per variant and round.")
    var latencyForwards = 20

    @Option(help: "Timed forwards of --batch images per variant and round.")
    var throughputForwards = 2

    @Option(help: "Untimed single-image forwards after each build.")
    var warmup = 2

    @Option(help: "LoRA rank r of the merged variant (alpha = r/2).")
    var rank = 16

    @Option(help: "Number of classes.")
    var classes = 9

    @Flag(help: "Print one JSON object per row instead of a table.")
    var json = false

    static let models: [(name: String, config: VisionConfig)] = [("vit-s16", .vitS16), ("vit-b16", .vitB16)]

    func validate() throws {
        guard model == "both" || Self.models.contains(where: { $0.name == model }) else {
            throw ValidationError("unknown --model '\(model)'; choose vit-s16, vit-b16 or both")
        }
        guard imageSize >= 16 && imageSize % 16 == 0 else {
            throw ValidationError("--image-size must be a positive multiple of the patch size 16, got \(imageSize)")
        }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
        guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1, got \(rounds)") }
        guard latencyForwards >= 1, throughputForwards >= 1 else {
            throw ValidationError("--latency-forwards and --throughput-forwards must be at least 1")
        }
        guard warmup >= 0 else { throw ValidationError("--warmup must be non-negative, got \(warmup)") }
        guard rank >= 1 else { throw ValidationError("--rank must be at least 1, got \(rank)") }
        guard classes >= 2 else { throw ValidationError("--classes must be at least 2, got \(classes)") }
    }

    func run() throws {
        setBenchmarkThreads(threads)
        if !json {
            print("clipit bench predict: \(BLASRuntime.summary), \(BLASRuntime.threads) thread(s), "
                  + "\(imageSize)² images, LoRA r = \(rank) merged vs no LoRA, \(rounds) round(s) of "
                  + "\(latencyForwards) single-image and \(throughputForwards) batch-\(batch) forwards per variant")
            print(PredictRow.tableHeader)
        }
        for m in Self.models where model == "both" || m.name == model {
            for row in measure(m.name, m.config) {
                print(json ? row.json : row.tableRow)
                fflush(stdout)
            }
        }
    }

    /// Seconds of every timed forward, per variant and batch size.
    private struct Timings {
        var wall: [Double] = []
        var cpu: [Double] = []
    }

    private func measure(_ name: String, _ config: VisionConfig) -> [PredictRow] {
        var vision = config
        vision.imageSize = imageSize
        let perImage = 3 * imageSize * imageSize
        let images = Tensor(shape: [batch * perImage])   // (B, 3, S, S)
        var rng = RandomGenerator(seed: 0x5052_4544)
        rng.fillUniform(images.data, count: images.count, low: -1, high: 1)
        var timings: [Variant: [Int: Timings]] = [:]
        for round in 0..<rounds {
            // Each variant goes first in every other round, so neither always follows the other.
            for variant in round % 2 == 0 ? Variant.allCases : Variant.allCases.reversed() {
                let model = makeModel(variant, vision: vision)
                model.reserveActivations(batch: batch)   // one arena for both batch sizes
                for _ in 0..<warmup { _ = model.predict(images: images.data, batch: 1) }
                for (count, forwards) in [(1, latencyForwards), (batch, throughputForwards)] {
                    for _ in 0..<forwards {
                        let cpuStart = processCPUSeconds()
                        let watch = Stopwatch()
                        _ = model.predict(images: images.data, batch: count)
                        timings[variant, default: [:]][count, default: Timings()].wall.append(watch.elapsedSeconds)
                        timings[variant, default: [:]][count, default: Timings()].cpu.append(processCPUSeconds() - cpuStart)
                    }
                }
            }
        }
        var rows: [PredictRow] = []
        for count in [1, batch] {
            let plain = timings[.plain]![count]!
            for variant in Variant.allCases {
                let t = timings[variant]![count]!
                rows.append(PredictRow(
                    model: name, variant: variant.rawValue, imageSize: imageSize, batch: count,
                    threads: BLASRuntime.threads, forwards: t.wall.count, seconds: median(t.wall),
                    fastest: t.wall.min()!, cpuSeconds: median(t.cpu),
                    mergedOverPlain: variant == .merged ? median(t.wall) / median(plain.wall) : nil,
                    mergedOverPlainFastest: variant == .merged ? t.wall.min()! / plain.wall.min()! : nil,
                    mergedOverPlainCPU: variant == .merged ? median(t.cpu) / median(plain.cpu) : nil))
            }
        }
        return rows
    }

    private enum Variant: String, CaseIterable {
        case plain, merged
    }

    /// The inference model of `variant`: the same configuration and seed, LoRA on the
    /// vision tower merged, or no LoRA at all.
    private func makeModel(_ variant: Variant, vision: VisionConfig) -> CLIPITModel {
        let lora = TowerTraining(lora: LoRAConfig(rank: rank, alpha: Float(rank) / 2, dropout: 0), targets: .all)
        let config = CLIPITConfig(vision: vision, text: .clip, visionTraining: variant == .merged ? lora : .frozen,
                                  textTraining: .frozen, classes: classes, distillation: false)
        let model = CLIPITModel(config, seed: 1)
        model.isTraining = false
        if variant == .merged {
            // A trained adapter has B ≠ 0 (it starts at 0): merging then changes every base weight.
            var rng = RandomGenerator(seed: 0x4C6F_5241)
            for p in model.store.parameters where p.name.contains("lora_B") {
                rng.fillUniform(p.value, count: p.count, low: -0.01, high: 0.01)
            }
            model.mergeLoRA()
        }
        return model
    }
}

/// One (model, variant, batch size) of `clipit bench predict`: medians over every round.
private struct PredictRow {
    var model: String
    var variant: String
    var imageSize: Int
    var batch: Int
    var threads: Int
    var forwards: Int
    /// Median wall-clock seconds of one forward of `batch` images.
    var seconds: Double
    var fastest: Double
    /// Median process CPU seconds (all threads) of one forward: less sensitive than the wall
    /// clock to other processes on a shared machine.
    var cpuSeconds: Double
    /// Median of this variant ÷ median of the plain model (merged rows only), and the same
    /// for the fastest forwards and for the CPU time.
    var mergedOverPlain: Double?
    var mergedOverPlainFastest: Double?
    var mergedOverPlainCPU: Double?

    var imagesPerSecond: Double { Double(batch) / seconds }

    static let tableHeader = pad("model", 9) + pad("variant", 8) + lpad("batch", 6) + lpad("thr", 4)
        + lpad("forwards", 9) + lpad("ms", 10) + lpad("img/s", 9) + lpad("cpu ms", 10) + lpad("merged/plain", 13)
        + lpad("(min)", 7) + lpad("(cpu)", 7)

    var tableRow: String {
        pad(model, 9) + pad(variant, 8) + lpad("\(batch)", 6) + lpad("\(threads)", 4) + lpad("\(forwards)", 9)
            + lpad(String(format: "%.2f", seconds * 1000), 10) + lpad(String(format: "%.2f", imagesPerSecond), 9)
            + lpad(String(format: "%.2f", cpuSeconds * 1000), 10)
            + lpad(mergedOverPlain.map { String(format: "%.4f", $0) } ?? "-", 13)
            + lpad(mergedOverPlainFastest.map { String(format: "%.4f", $0) } ?? "-", 7)
            + lpad(mergedOverPlainCPU.map { String(format: "%.4f", $0) } ?? "-", 7)
    }

    var json: String {
        var fields: [(String, String)] = [
            ("model", "\"\(model)\""), ("variant", "\"\(variant)\""), ("image_size", "\(imageSize)"),
            ("batch", "\(batch)"), ("threads", "\(threads)"), ("core", "\"\(BLASRuntime.kernel)\""),
            ("forwards", "\(forwards)"),
            ("seconds", String(format: "%.6f", seconds)), ("seconds_min", String(format: "%.6f", fastest)),
            ("cpu_seconds", String(format: "%.6f", cpuSeconds)),
            ("images_per_s", String(format: "%.3f", imagesPerSecond)),
            ("latency_ms", String(format: "%.3f", seconds * 1000)),
        ]
        if let mergedOverPlain, let mergedOverPlainFastest, let mergedOverPlainCPU {
            fields += [("merged_over_plain", String(format: "%.4f", mergedOverPlain)),
                       ("merged_over_plain_min", String(format: "%.4f", mergedOverPlainFastest)),
                       ("merged_over_plain_cpu", String(format: "%.4f", mergedOverPlainCPU))]
        }
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }
}

/// The middle value (the mean of the two middle values for an even count).
func median(_ values: [Double]) -> Double {
    let sorted = values.sorted(), n = sorted.count
    precondition(n > 0, "median of no values")
    return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
}

/// CPU seconds this process has used so far, all threads (`CLOCK_PROCESS_CPUTIME_ID`).
func processCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
