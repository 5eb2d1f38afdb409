import ArgumentParser
import Formats
import Foundation
import Kernels
import Model

/// `clipit bench gemm`: single-precision GEMM throughput through the BLAS library
/// the package was built with (`BLASRuntime.summary`), for square
/// matrices (the machine's practical peak) and for every matrix product of one ViT
/// training step, each as a fraction of that peak.
///
/// Every row is timed as: one untimed call, then `--repeats` timings of a loop of
/// calls long enough to last ≥ `minimumTiming` seconds; the fastest timing is reported
/// (the least disturbed by other processes: short timings and many repeats give a
/// busy machine more chances of an undisturbed window). GFLOP/s = 2·m·n·k·batch / seconds / 10⁹.
struct BenchGEMM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm",
        abstract: "SGEMM GFLOP/s: square peak and the ViT-S/16 and ViT-B/16 training-step shapes.",
        discussion: """
            Linear layers store W as (out, in) and compute y = x·Wᵀ, so per layer the rows \
            are forward (NT), backward-data dX = dY·W (NN) and backward-weight \
            dW = dYᵀ·X (TN). Attention rows are batched over batch × heads with a \
            (batch·heads, T, d) layout. Example: clipit bench gemm --threads 1 --json
            """)

    @Option(help: "BLAS threads (default: the library's thread variable, e.g. OPENBLAS_NUM_THREADS, else all cores).")
    var threads: Int?

    @Option(name: .customLong("size"),
            help: "Square size n for the peak (n×n×n); repeat the option for several, the best is the peak.")
    var sizes: [Int] = [1024, 2048]

    @Option(help: "Timings per row; the fastest is reported.")
    var repeats = 10

    @Option(help: "Images per training step.")
    var batch = 32

    @Option(help: "Models whose shapes to measure (vit-s16, vit-b16); repeat the option for several.")
    var model: [String] = ["vit-s16", "vit-b16"]

    @Flag(help: "Print one JSON object per row instead of a table.")
    var json = false

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
        guard !sizes.isEmpty, sizes.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--size must be a positive matrix dimension, got \(sizes)")
        }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1, got \(repeats)") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
        for name in model where ViTConfig.named(name) == nil {
            throw ValidationError("unknown --model '\(name)'; known: \(ViTConfig.all.map(\.name).joined(separator: ", "))")
        }
    }

    func run() throws {
        setBenchmarkThreads(threads)
        let core = BLASRuntime.kernel
        let reporter = Reporter(json: json, blas: "\(BLASRuntime.library) \(BLASRuntime.version)", core: core,
                                threads: BLASRuntime.threads)
        if !json {
            print("clipit bench gemm: \(BLASRuntime.summary), \(BLASRuntime.threads) thread(s), "
                  + "best of \(repeats) timings (each ≥ \(Int(Self.minimumTiming * 1e3)) ms)")
            print("  \(BLASRuntime.config)")
            reporter.printHeader()
        }

        // The peak is the best square GEMM, measured before and after the model shapes
        // (each square row keeps its faster pass), so a busy spell during one pass does
        // not skew every fraction; rows are printed once everything is measured.
        let squares = sizes.map { GEMMShape(name: "square \($0)", transA: .none, transB: .none, m: $0, n: $0, k: $0) }
        var squareSeconds = squares.map(measure)
        let models = model.map { ViTConfig.named($0)! }
        let modelSeconds = models.map { config in config.shapes(batch: batch).map { measure($0.0) } }
        for (i, shape) in squares.enumerated() { squareSeconds[i] = min(squareSeconds[i], measure(shape)) }
        let peak = zip(squares, squareSeconds).map { $0.flops / $1 }.max()!

        for (shape, seconds) in zip(squares, squareSeconds) { reporter.row(shape, seconds: seconds, peak: peak) }
        for (config, timings) in zip(models, modelSeconds) {
            if !json { print("\n\(config.title), batch \(batch), \(config.tokens) tokens, depth \(config.depth)") }
            var stepFlops = 0.0, stepSeconds = 0.0
            for ((shape, perStep), seconds) in zip(config.shapes(batch: batch), timings) {
                reporter.row(shape, seconds: seconds, peak: peak)
                stepFlops += Double(perStep) * shape.flops
                stepSeconds += Double(perStep) * seconds
            }
            if !json {
                print(String(format: "  one step: %.1f GFLOP in GEMMs, %.2f s at %.1f GFLOP/s (%.0f%% of peak)",
                             stepFlops / 1e9, stepSeconds, stepFlops / stepSeconds / 1e9,
                             100 * stepFlops / stepSeconds / peak))
            }
        }
    }

    /// Shortest wall time of one timing (a loop of calls of one shape).
    static let minimumTiming = 0.02

    /// Seconds for one call of `shape` (fastest of `repeats`), on random operands.
    private func measure(_ shape: GEMMShape) -> Double {
        let a = Tensor(shape: [shape.batch * shape.m * shape.k])
        let b = Tensor(shape: [shape.batch * shape.k * shape.n])
        let c = Tensor(shape: [shape.batch * shape.m * shape.n])
        var rng = RandomGenerator(seed: 0x6E6D)
        rng.fillUniform(a.data, count: a.count, low: -1, high: 1)
        rng.fillUniform(b.data, count: b.count, low: -1, high: 1)
        let call = {
            gemmStridedBatched(shape.transA, shape.transB, m: shape.m, n: shape.n, k: shape.k,
                               a: a.data, lda: shape.transA == .none ? shape.k : shape.m,
                               strideA: shape.m * shape.k,
                               b: b.data, ldb: shape.transB == .none ? shape.n : shape.k,
                               strideB: shape.k * shape.n,
                               beta: shape.beta, c: c.data, ldc: shape.n, strideC: shape.m * shape.n,
                               batch: shape.batch)
        }
        var watch = Stopwatch()
        call()   // untimed: first-touch of C, BLAS thread start-up
        let first = max(watch.lap(), 1e-6)
        let calls = max(1, Int((Self.minimumTiming / first).rounded(.up)))
        var best = Double.infinity
        for _ in 0..<repeats {
            watch.reset()
            for _ in 0..<calls { call() }
            best = min(best, watch.elapsedSeconds / Double(calls))
            // β = 1 rows accumulate; restart C so values stay O(√k·calls), far from overflow.
            if shape.beta != 0 { c.zero() }
        }
        return best
    }
}

/// One (possibly batched) GEMM of a benchmark row: batch × (m×k · k×n), packed operands.
private struct GEMMShape {
    var name: String
    var transA: Transpose
    var transB: Transpose
    var m: Int, n: Int, k: Int
    var batch = 1
    /// 0 for forwards (overwrite), 1 for backwards (accumulate into gradients).
    var beta: Float = 0

    var flops: Double { Double(batch) * gemmFlops(m: m, n: n, k: k) }
}

/// A ViT image tower (the Model presets), for its GEMM shapes.
private struct ViTConfig {
    var name: String
    var title: String
    var vision: VisionConfig

    static let all = [
        ViTConfig(name: "vit-s16", title: "ViT-S/16", vision: .vitS16),
        ViTConfig(name: "vit-b16", title: "ViT-B/16", vision: .vitB16),
    ]

    static func named(_ name: String) -> ViTConfig? { all.first { $0.name == name } }

    var width: Int { vision.width }
    var heads: Int { vision.heads }
    var mlp: Int { vision.mlpHidden }
    var depth: Int { vision.depth }
    var patch: Int { vision.patchSize }
    var patches: Int { vision.patchCount }
    var tokens: Int { vision.tokens }   // + class token

    /// Each GEMM of one training step with how many times it runs per step.
    func shapes(batch: Int) -> [(GEMMShape, Int)] {
        let rows = batch * tokens, e = width, d = width / heads
        var out: [(GEMMShape, Int)] = []
        // Patch embedding: a linear map of flattened 3×16×16 patches (no dX: pixels need none).
        let patchIn = 3 * patch * patch
        out.append((GEMMShape(name: "\(name) patch-embed fwd", transA: .none, transB: .transposed,
                              m: batch * patches, n: e, k: patchIn), 1))
        out.append((GEMMShape(name: "\(name) patch-embed bwd-weight", transA: .transposed, transB: .none,
                              m: e, n: patchIn, k: batch * patches, beta: 1), 1))
        let linears = [("qkv", e, 3 * e), ("attn-proj", e, e), ("fc1", e, mlp), ("fc2", mlp, e)]
        for (layer, input, output) in linears {
            out.append((GEMMShape(name: "\(name) \(layer) fwd", transA: .none, transB: .transposed,
                                  m: rows, n: output, k: input), depth))
            out.append((GEMMShape(name: "\(name) \(layer) bwd-data", transA: .none, transB: .none,
                                  m: rows, n: input, k: output, beta: 1), depth))
            out.append((GEMMShape(name: "\(name) \(layer) bwd-weight", transA: .transposed, transB: .none,
                                  m: output, n: input, k: rows, beta: 1), depth))
        }
        // Attention, one GEMM per (image, head), T = tokens, d = head width.
        let bh = batch * heads, t = tokens
        let attention: [(String, Transpose, Transpose, Int, Int, Int, Float)] = [
            ("attn S=QK^T fwd", .none, .transposed, t, t, d, 0),
            ("attn O=PV fwd", .none, .none, t, d, t, 0),
            ("attn dP=dO.V^T", .none, .transposed, t, t, d, 0),
            ("attn dV=P^T.dO", .transposed, .none, t, d, t, 0),
            ("attn dQ=dS.K", .none, .none, t, d, t, 0),
            ("attn dK=dS^T.Q", .transposed, .none, t, d, t, 0),
        ]
        for (label, ta, tb, m, n, k, beta) in attention {
            out.append((GEMMShape(name: "\(name) \(label)", transA: ta, transB: tb, m: m, n: n, k: k,
                                  batch: bh, beta: beta), depth))
        }
        return out
    }
}

/// Prints benchmark rows as an aligned table or as JSON lines.
private struct Reporter {
    var json: Bool
    var blas: String
    var core: String
    var threads: Int

    func printHeader() {
        print(pad("name", 32) + pad("op", 4) + lpad("batch", 6) + lpad("m", 7) + lpad("n", 7) + lpad("k", 7)
              + lpad("ms", 10) + lpad("GFLOP/s", 9) + lpad("of peak", 9))
    }

    func row(_ shape: GEMMShape, seconds: Double, peak: Double) {
        let gflops = shape.flops / seconds / 1e9
        let fraction = shape.flops / seconds / peak
        let ta = shape.transA == .none ? "N" : "T", tb = shape.transB == .none ? "N" : "T"
        if json {
            print("{\"name\":\(jsonString(shape.name)),\"m\":\(shape.m),\"n\":\(shape.n),\"k\":\(shape.k),"
                  + "\"batch\":\(shape.batch),\"trans_a\":\"\(ta)\",\"trans_b\":\"\(tb)\","
                  + String(format: "\"gflops\":%.2f,\"peak_fraction\":%.4f,\"seconds\":%.6e,",
                           gflops, fraction, seconds)
                  + "\"blas\":\(jsonString(blas)),\"core\":\(jsonString(core)),\"threads\":\(threads)}")
        } else {
            print(pad(shape.name, 32) + pad(ta + tb, 4) + lpad("\(shape.batch)", 6) + lpad("\(shape.m)", 7)
                  + lpad("\(shape.n)", 7) + lpad("\(shape.k)", 7)
                  + lpad(String(format: "%.3f", seconds * 1e3), 10) + lpad(String(format: "%.1f", gflops), 9)
                  + lpad(String(format: "%.0f%%", 100 * fraction), 9))
        }
    }
}
