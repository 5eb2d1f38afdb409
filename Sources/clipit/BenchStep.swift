import ArgumentParser
import Foundation
import Kernels
import Model
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `clipit bench step`: throughput of whole training steps (forward, backward, gradient
/// clipping and Adam) for unimodal + LoRA and CLIP-IT on ViT-S/16 and ViT-B/16, as
/// images/s, achieved GFLOP/s and the fraction of the machine's sgemm peak.
///
/// FLOPs are the matrix products the step executes, counted analytically
/// (`trainingFlops`, see Sources/Model/Profiling.swift): with a frozen base, the backward
/// has data gradients but no weight gradients for the base weights. The time breakdown
/// comes from a forward-only pass timed before each step (backward = forward+backward −
/// forward) and from `GEMMStatistics`, which times every `gemm` call while enabled.
struct BenchStep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "step",
        abstract: "Training-step throughput: images/s, GFLOP/s and fraction of the sgemm peak.",
        discussion: """
            Models are built from their presets with random weights and fed random inputs: \
            images uniform in [-1, 1], random labels, and for CLIP-IT random token ids for the \
            CLIP text tower (context 77, width 512, 12 layers) with an end-of-text token at a \
            random position in the second half of each sequence. LoRA (rank --rank, alpha = \
            rank/2, no dropout) on every block Linear and the patch embedding (vision) or \
            token embedding (text); Adam (lr 1e-3, weight decay 1e-4), gradient clipping 0.5. \
            Example: clipit bench step --model vit-b16 --method both --threads 2 --json
            """)

    @Option(help: "vit-s16, vit-b16, vit-l16, or both (ViT-S/16 and ViT-B/16).")
    var model = "both"

    @Option(help: "unimodal-lora, clipit or both.")
    var method = "both"

    @Option(help: "Image side in pixels (a multiple of 16).")
    var imageSize = 224

    @Option(help: "Images per training step.")
    var batch = 32

    @Option(help: "BLAS threads (default: the library's thread variable, e.g. OPENBLAS_NUM_THREADS, else all cores).")
    var threads: Int?

    @Option(help: "Timed steps per configuration.")
    var steps = 3

    @Option(help: "Untimed steps before timing (the first allocates the activations).")
    var warmup = 1

    @Option(help: "sgemm peak in GFLOP/s to compare with (default: measured before each configuration).")
    var peakGflops: Double?

    @Option(help: "Side of the square sgemm that measures the peak.")
    var peakSize = 2048

    @Option(help: "LoRA rank r (alpha = r/2, the reference's r = 16, alpha = 8).")
    var rank = 16

    @Option(help: "Number of classes.")
    var classes = 9

    @Flag(inversion: .prefixedNo,
          help: "Time a forward-only pass per step and every GEMM, for the time breakdown.")
    var breakdown = true

    @Flag(inversion: .prefixedNo,
          help: "Split attention heads and the row-wise kernels over the BLAS threads (ModelExecution.parallelWorkers).")
    var parallelWorkers = true

    @Option(help: "What attention keeps for the backward: stored (probabilities) or recomputed (two statistics per row).")
    var attentionProbabilities = AttentionProbabilities.stored

    @Flag(help: "Print one JSON object per configuration instead of a table.")
    var json = false

    static let models: [(name: String, title: String, config: VisionConfig)] = [
        ("vit-s16", "ViT-S/16", .vitS16), ("vit-b16", "ViT-B/16", .vitB16), ("vit-l16", "ViT-L/16", .vitL16),
    ]
    static let methods = ["unimodal-lora", "clipit"]

    func validate() throws {
        guard model == "both" || Self.models.contains(where: { $0.name == model }) else {
            throw ValidationError("unknown --model '\(model)'; choose vit-s16, vit-b16, vit-l16 or both (S and B)")
        }
        guard method == "both" || Self.methods.contains(method) else {
            throw ValidationError("unknown --method '\(method)'; choose unimodal-lora, clipit or both")
        }
        guard imageSize >= 16 && imageSize % 16 == 0 else {
            throw ValidationError("--image-size must be a positive multiple of the patch size 16, got \(imageSize)")
        }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be non-negative, got \(warmup)") }
        if let peakGflops, !(peakGflops > 0) {
            throw ValidationError("--peak-gflops must be positive, got \(peakGflops)")
        }
        guard peakSize >= 64 else { throw ValidationError("--peak-size must be at least 64, got \(peakSize)") }
        guard rank >= 1 else { throw ValidationError("--rank must be at least 1, got \(rank)") }
        guard classes >= 2 else { throw ValidationError("--classes must be at least 2, got \(classes)") }
    }

    func run() throws {
        setBenchmarkThreads(threads)
        let models = Self.models.filter { model == "both" ? $0.name != "vit-l16" : $0.name == model }
        let methods = Self.methods.filter { method == "both" || $0 == method }
        if !json {
            print("clipit bench step: \(BLASRuntime.summary), \(BLASRuntime.threads) thread(s), "
                  + "batch \(batch), \(imageSize)² images, LoRA r = \(rank), warmup \(warmup), \(steps) timed step(s), "
                  + (parallelWorkers ? "parallel" : "serial") + " heads and row kernels")
            if methods.contains("clipit") {
                print("  CLIP-IT includes the CLIP text tower (context 77, width 512, 12 layers) on random token ids")
            }
            print(StepResult.tableHeader)
        }
        for m in models {
            for name in methods {
                let peak = peakGflops ?? measuredSgemmPeak(size: peakSize) / 1e9
                let result = measure(model: m, method: name, peakGflops: peak)
                print(json ? result.json : result.tableRow)
                fflush(stdout)
            }
        }
    }

    // MARK: - One configuration

    /// What one configuration runs: a forward, a forward+backward into the store's
    /// gradients, and the FLOPs of the latter.
    private struct Workload {
        var store: ParameterStore
        var flops: TrainingFlops
        var forward: () -> Void
        var forwardBackward: () -> Void
    }

    private func measure(model m: (name: String, title: String, config: VisionConfig), method: String,
                         peakGflops: Double) -> StepResult {
        let peakReset = resetPeakResidentMemory()
        var vision = m.config
        vision.imageSize = imageSize
        let inputs = RandomInputs(batch: batch, imageSize: imageSize, classes: classes,
                                  text: method == "clipit" ? TextConfig.clip : nil)
        let lora = TowerTraining(lora: LoRAConfig(rank: rank, alpha: Float(rank) / 2, dropout: 0), targets: .all)
        let workload = makeWorkload(vision: vision, method: method, lora: lora, inputs: inputs)
        let store = workload.store
        let adam = Adam(parameterCount: store.trainableCount, weightDecay: 1e-4)

        var forward: [Double] = [], forwardGEMM: [Double] = [], forwardBackward: [Double] = []
        var forwardBackwardGEMM: [Double] = [], optimizer: [Double] = [], executedFlops: [Double] = []
        var faultsBefore = 0
        for i in 0..<(warmup + steps) {
            let timed = i >= warmup
            if i == warmup { faultsBefore = minorPageFaults() }
            var watch = Stopwatch()
            if timed && breakdown {
                GEMMStatistics.reset()
                GEMMStatistics.isEnabled = true
                watch.reset()
                workload.forward()
                forward.append(watch.lap())
                GEMMStatistics.isEnabled = false
                forwardGEMM.append(GEMMStatistics.seconds)
            }
            GEMMStatistics.reset()
            GEMMStatistics.isEnabled = timed && breakdown
            watch.reset()
            workload.forwardBackward()
            let fb = watch.lap()
            GEMMStatistics.isEnabled = false
            clipGradientNorm(store.gradients.data, count: store.trainableCount, maxNorm: 0.5)
            adam.step(store, learningRate: 1e-3)
            store.zeroGradients()
            let opt = watch.lap()
            if timed {
                forwardBackward.append(fb)
                optimizer.append(opt)
                forwardBackwardGEMM.append(GEMMStatistics.seconds)
                executedFlops.append(GEMMStatistics.flops)
            }
        }
        let faultsPerStep = Double(minorPageFaults() - faultsBefore) / Double(steps)
        let stepTimes = zip(forwardBackward, optimizer).map { $0 + $1 }
        return StepResult(
            model: m.name, method: method, imageSize: imageSize, batch: batch, threads: BLASRuntime.threads,
            steps: steps, trainableParameters: store.trainableCount, flops: workload.flops,
            executedGEMMFlops: breakdown ? mean(executedFlops) : nil,
            secondsPerStep: mean(stepTimes), fastestStep: stepTimes.min()!,
            forward: breakdown ? mean(forward) : nil,
            forwardBackward: mean(forwardBackward), optimizer: mean(optimizer),
            forwardGEMM: breakdown ? mean(forwardGEMM) : nil,
            forwardBackwardGEMM: breakdown ? mean(forwardBackwardGEMM) : nil,
            peakGflops: peakGflops, peakResidentMiB: peakResidentMemoryMiB(),
            peakResidentScope: peakReset ? "configuration" : "process", parallelWorkers: parallelWorkers,
            attentionProbabilities: attentionProbabilities,
            pageFaultsPerStep: faultsPerStep)
    }

    private func makeWorkload(vision: VisionConfig, method: String, lora: TowerTraining,
                              inputs: RandomInputs) -> Workload {
        let b = batch
        let images = UnsafePointer(inputs.images.data), labels = UnsafePointer(inputs.labels)
        if method == "clipit" {
            let config = CLIPITConfig(vision: vision, text: .clip, visionTraining: lora, textTraining: lora,
                                      classes: classes)
            let model = CLIPITModel(config, seed: 1)
            model.store.execution.parallelWorkers = parallelWorkers   // this process calls BLAS from one thread
            model.store.execution.attentionProbabilities = attentionProbabilities
            let tokens = UnsafePointer(inputs.tokens!)
            return Workload(
                store: model.store, flops: model.trainingFlops(batch: b),
                forward: { _ = model.loss(images: images, labels: labels, tokens: tokens, batch: b) },
                forwardBackward: { model.forwardBackward(images: images, labels: labels, tokens: tokens, batch: b) })
        }
        let model = UnimodalModel(vision: vision, training: lora, classes: classes, seed: 1)
        model.store.execution.parallelWorkers = parallelWorkers
        model.store.execution.attentionProbabilities = attentionProbabilities
        return Workload(
            store: model.store, flops: model.trainingFlops(batch: b),
            forward: { _ = model.predict(images: images, batch: b) },   // no dropout: same work as training
            forwardBackward: { model.forwardBackward(images: images, labels: labels, batch: b) })
    }
}

/// Random inputs of one configuration; the buffers live as long as the value.
private final class RandomInputs {
    let images: Tensor                                   // (B, 3, S, S)
    let labels: UnsafeMutablePointer<Int32>              // (B)
    let tokens: UnsafeMutablePointer<Int32>?             // (B, L)
    let batch: Int

    init(batch: Int, imageSize: Int, classes: Int, text: TextConfig?) {
        self.batch = batch
        var rng = RandomGenerator(seed: 0x5354_4550)
        images = Tensor(shape: [batch, 3, imageSize, imageSize])
        rng.fillUniform(images.data, count: images.count, low: -1, high: 1)
        labels = .allocate(capacity: batch)
        for i in 0..<batch { labels[i] = Int32(rng.nextInt(upperBound: classes)) }
        guard let text else { tokens = nil; return }
        let L = text.contextLength
        let ids = UnsafeMutablePointer<Int32>.allocate(capacity: batch * L)
        for i in 0..<(batch * L) { ids[i] = Int32(1 + rng.nextInt(upperBound: Int(text.endOfTextId) - 1)) }
        for b in 0..<batch { ids[b * L + L / 2 + rng.nextInt(upperBound: L - L / 2)] = text.endOfTextId }
        tokens = ids
    }

    deinit {
        labels.deallocate()
        tokens?.deallocate()
    }
}

/// One configuration's measurements.
private struct StepResult {
    var model: String
    var method: String
    var imageSize: Int
    var batch: Int
    var threads: Int
    var steps: Int
    var trainableParameters: Int
    var flops: TrainingFlops
    var executedGEMMFlops: Double?
    var secondsPerStep: Double
    var fastestStep: Double
    /// Phase means; nil without the breakdown.
    var forward: Double?
    var forwardBackward: Double
    var optimizer: Double
    var forwardGEMM: Double?
    var forwardBackwardGEMM: Double?
    var peakGflops: Double
    var peakResidentMiB: Double
    var peakResidentScope: String
    var parallelWorkers: Bool
    var attentionProbabilities: AttentionProbabilities
    /// Minor page faults per timed step (first touches of new memory; 0 when the step
    /// allocates nothing).
    var pageFaultsPerStep: Double

    var imagesPerSecond: Double { Double(batch) / secondsPerStep }
    var gflops: Double { flops.total / secondsPerStep / 1e9 }
    var peakFraction: Double { gflops / peakGflops }
    var backward: Double? { forward.map { forwardBackward - $0 } }
    var backwardGEMM: Double? {
        guard let forwardGEMM, let forwardBackwardGEMM else { return nil }
        return forwardBackwardGEMM - forwardGEMM
    }

    static let tableHeader = pad("model", 9) + pad("method", 15) + lpad("thr", 4) + lpad("s/step", 8)
        + lpad("img/s", 7) + lpad("GFLOP", 8) + lpad("GFLOP/s", 9) + lpad("peak", 7) + lpad("of peak", 8)
        + lpad("fwd s", 7) + lpad("bwd s", 7) + lpad("opt s", 7) + lpad("fwd gemm", 9) + lpad("bwd gemm", 9)
        + lpad("RSS MiB", 9)

    var tableRow: String {
        func seconds(_ s: Double?) -> String { s.map { String(format: "%.2f", $0) } ?? "-" }
        func share(_ part: Double?, _ whole: Double?) -> String {
            guard let part, let whole, whole > 0 else { return "-" }
            return String(format: "%.0f%%", 100 * part / whole)
        }
        return pad(model, 9) + pad(method, 15) + lpad("\(threads)", 4)
            + lpad(String(format: "%.2f", secondsPerStep), 8)
            + lpad(String(format: "%.2f", imagesPerSecond), 7)
            + lpad(String(format: "%.0f", flops.total / 1e9), 8)
            + lpad(String(format: "%.1f", gflops), 9)
            + lpad(String(format: "%.1f", peakGflops), 7)
            + lpad(String(format: "%.0f%%", 100 * peakFraction), 8)
            + lpad(seconds(forward), 7) + lpad(seconds(backward), 7)
            + lpad(String(format: "%.2f", optimizer), 7)
            + lpad(share(forwardGEMM, forward), 9) + lpad(share(backwardGEMM, backward), 9)
            + lpad(String(format: "%.0f", peakResidentMiB), 9)
    }

    var json: String {
        var fields: [(String, String)] = [
            ("model", "\"\(model)\""), ("method", "\"\(method)\""), ("image_size", "\(imageSize)"),
            ("batch", "\(batch)"), ("threads", "\(threads)"), ("steps", "\(steps)"),
            ("blas", "\"\(BLASRuntime.library) \(BLASRuntime.version)\""), ("kernel", "\"\(BLASRuntime.kernel)\""),
            ("parallel_workers", parallelWorkers ? "true" : "false"),
            ("attention_probabilities", "\"\(attentionProbabilities.rawValue)\""),
            ("images_per_s", String(format: "%.3f", imagesPerSecond)),
            ("gflops", String(format: "%.2f", gflops)),
            ("peak_fraction", String(format: "%.4f", peakFraction)),
            ("peak_gflops", String(format: "%.2f", peakGflops)),
            ("seconds_per_step", String(format: "%.4f", secondsPerStep)),
            ("seconds_per_step_min", String(format: "%.4f", fastestStep)),
            ("gflop_per_step", String(format: "%.2f", flops.total / 1e9)),
            ("gflop_forward", String(format: "%.2f", flops.forward / 1e9)),
            ("gflop_backward", String(format: "%.2f", flops.backward / 1e9)),
            ("forward_backward_s", String(format: "%.4f", forwardBackward)),
            ("optimizer_s", String(format: "%.4f", optimizer)),
            ("peak_rss_mib", String(format: "%.1f", peakResidentMiB)),
            ("peak_rss_scope", "\"\(peakResidentScope)\""),
            ("trainable_parameters", "\(trainableParameters)"),
            ("page_faults_per_step", String(format: "%.1f", pageFaultsPerStep)),
        ]
        if let forward, let backward, let forwardGEMM, let backwardGEMM, let executedGEMMFlops {
            fields += [
                ("forward_s", String(format: "%.4f", forward)),
                ("backward_s", String(format: "%.4f", backward)),
                ("forward_gemm_s", String(format: "%.4f", forwardGEMM)),
                ("forward_other_s", String(format: "%.4f", forward - forwardGEMM)),
                ("backward_gemm_s", String(format: "%.4f", backwardGEMM)),
                ("backward_other_s", String(format: "%.4f", backward - backwardGEMM)),
                ("gemm_gflop_executed", String(format: "%.2f", executedGEMMFlops / 1e9)),
            ]
        }
        if method == "clipit" { fields.append(("text_tower", "\"CLIP context 77 width 512 depth 12, random token ids\"")) }
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }

}

private func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(max(values.count, 1)) }

/// Resets the kernel's peak-RSS mark of this process (Linux: `echo 5 > /proc/self/clear_refs`),
/// so that the next reading covers one configuration only. Returns false where unsupported.
/// First hands the heap memory freed by the previous configuration back to the system
/// (`malloc_trim`): glibc keeps freed blocks below its adaptive mmap threshold (up to 32 MiB)
/// in the heap, where they would count towards the next configuration's peak.
private func resetPeakResidentMemory() -> Bool {
    #if os(Linux)
    // malloc_trim is glibc's (<malloc.h>, which the Glibc module does not export).
    typealias MallocTrim = @convention(c) (Int) -> Int32
    if let trim = dlsym(nil, "malloc_trim") { _ = unsafeBitCast(trim, to: MallocTrim.self)(0) }
    guard let file = fopen("/proc/self/clear_refs", "w") else { return false }
    defer { fclose(file) }
    return fputs("5", file) >= 0 && fflush(file) == 0
    #else
    return false
    #endif
}

/// Minor page faults of this process so far (`getrusage` `ru_minflt`).
private func minorPageFaults() -> Int {
    var usage = rusage()
    #if os(Linux)
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    #else
    getrusage(RUSAGE_SELF, &usage)
    #endif
    return usage.ru_minflt
}

/// Peak resident set size of this process in MiB (`getrusage` `ru_maxrss`: KiB on Linux,
/// bytes on macOS).
private func peakResidentMemoryMiB() -> Double {
    var usage = rusage()
    #if os(Linux)
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_maxrss) / 1024
    #else
    getrusage(RUSAGE_SELF, &usage)
    return Double(usage.ru_maxrss) / (1024 * 1024)
    #endif
}

extension AttentionProbabilities: ExpressibleByArgument {}
