import ArgumentParser
import Foundation
import Kernels
import Model

/// `clipit bench lora-fold`: what folding LoRA into the base GEMMs would save, per Linear
/// of a ViT block, before the layer is changed to do it.
///
/// For y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ (W (out, in), A (r, in), B (out, r)) it times, on the
/// step's shapes (rows = batch·tokens):
///
/// - forward, as `Linear` runs it: x·Wᵀ, the bias pass, h = x·Aᵀ, y += s·h·Bᵀ;
/// - forward folded: Z = x·[W; A]ᵀ (rows, out + r) in one GEMM after copying A under W,
///   one pass splitting Z into y (+ b) and h, then y += s·h·Bᵀ;
/// - backward-data, as `Linear` runs it: dX += dY·W, dh = s·dY·B, dX += dh·A;
/// - backward-data folded: [dY | dh] assembled in one (rows, out + r) buffer (a copy of dY,
///   dh written beside it by its GEMM), then dX += [dY | dh]·[W; A] in one GEMM.
///
/// The variants alternate, each timing the fastest of `--repeats`; the table gives each
/// Linear's times, the folded/unfolded ratio and the whole-step difference (× depth).
struct BenchLoRAFold: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lora-fold",
        abstract: "LoRA folded into the base GEMMs vs separate products, per Linear of a ViT block.")

    @Option(help: "Model whose Linear shapes to measure: vit-s16 or vit-b16.")
    var model = "vit-s16"

    @Option(help: "Images per step (rows = batch × tokens).")
    var batch = 32

    @Option(help: "LoRA rank r.")
    var rank = 16

    @Option(help: "BLAS threads (default: the library's thread variable, e.g. OPENBLAS_NUM_THREADS, else all cores).")
    var threads: Int?

    @Option(help: "Timings per variant; the fastest is reported.")
    var repeats = 5

    @Flag(help: "Print one JSON object per Linear instead of a table.")
    var json = false

    func validate() throws {
        guard ["vit-s16", "vit-b16"].contains(model) else { throw ValidationError("--model must be vit-s16 or vit-b16") }
        guard batch >= 1, rank >= 1, repeats >= 1 else { throw ValidationError("--batch, --rank and --repeats must be positive") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        setBenchmarkThreads(threads)
        let vision: VisionConfig = model == "vit-s16" ? .vitS16 : .vitB16
        let rows = batch * vision.tokens, e = vision.width, h = vision.mlpHidden
        let layers = [("qkv", e, 3 * e), ("attn-proj", e, e), ("fc1", e, h), ("fc2", h, e)]
        if !json {
            print("clipit bench lora-fold: \(model), \(rows) rows, r = \(rank), \(BLASRuntime.summary), "
                  + "\(BLASRuntime.threads) thread(s), best of \(repeats)")
            print("  layer        forward ms (folded)   ratio    backward-data ms (folded)   ratio")
        }
        var stepSaving = 0.0
        for (name, inFeatures, outFeatures) in layers {
            let timing = LoRAFoldTiming(rows: rows, inFeatures: inFeatures, outFeatures: outFeatures, rank: rank)
            var best = [Double](repeating: .infinity, count: 4)
            for _ in 0..<repeats {
                for variant in 0..<4 { best[variant] = min(best[variant], timing.seconds(variant)) }
            }
            stepSaving += Double(vision.depth) * ((best[0] - best[1]) + (best[2] - best[3]))
            if json {
                print("{\"model\": \"\(model)\", \"layer\": \"\(name)\", \"rows\": \(rows), \"in\": \(inFeatures), "
                      + "\"out\": \(outFeatures), \"rank\": \(rank), \"threads\": \(BLASRuntime.threads), "
                      + "\"core\": \"\(BLASRuntime.kernel)\", "
                      + String(format: "\"forward_s\": %.6f, \"forward_folded_s\": %.6f, ", best[0], best[1])
                      + String(format: "\"backward_data_s\": %.6f, \"backward_data_folded_s\": %.6f}", best[2], best[3]))
            } else {
                print("  " + name.padding(toLength: 10, withPad: " ", startingAt: 0)
                      + String(format: " %8.2f (%8.2f)   %6.3f    %8.2f (%8.2f)          %6.3f",
                             best[0] * 1e3, best[1] * 1e3, best[1] / best[0],
                             best[2] * 1e3, best[3] * 1e3, best[3] / best[2]))
            }
        }
        if !json {
            print(String(format: "  folding every block Linear would change one step's time by %+.1f ms (%d blocks)",
                         -stepSaving * 1e3, vision.depth))
        }
    }
}

/// The operands of one Linear with LoRA and the four timed variants.
private final class LoRAFoldTiming {
    let rows: Int, inFeatures: Int, outFeatures: Int, rank: Int
    let x: Tensor, stacked: Tensor, a: Tensor, b: Tensor, bias: Tensor
    let y: Tensor, z: Tensor, hidden: Tensor, dy: Tensor, dx: Tensor, combined: Tensor
    let scale: Float = 0.5

    init(rows: Int, inFeatures: Int, outFeatures: Int, rank: Int) {
        self.rows = rows
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.rank = rank
        x = Tensor(shape: [rows, inFeatures])
        stacked = Tensor(shape: [outFeatures + rank, inFeatures])   // [W; A]; W is its first rows
        a = Tensor(shape: [rank, inFeatures])
        b = Tensor(shape: [outFeatures, rank])
        bias = Tensor(shape: [outFeatures])
        y = Tensor(shape: [rows, outFeatures])
        z = Tensor(shape: [rows, outFeatures + rank])
        hidden = Tensor(shape: [rows, rank])
        dy = Tensor(shape: [rows, outFeatures])
        dx = Tensor(shape: [rows, inFeatures])
        combined = Tensor(shape: [rows, outFeatures + rank])
        var rng = RandomGenerator(seed: 0x4C6F5241)
        for t in [x, stacked, a, b, bias, dy] { rng.fillUniform(t.data, count: t.count, low: -1, high: 1) }
        for variant in 0..<4 { _ = seconds(variant) }   // first touches
    }

    /// Seconds of one run of variant 0 (forward), 1 (forward folded), 2 (backward-data)
    /// or 3 (backward-data folded).
    func seconds(_ variant: Int) -> Double {
        let n = outFeatures, k = inFeatures, r = rank, m = rows
        let w = stacked.data
        let watch = Stopwatch()
        switch variant {
        case 0:
            gemm(.none, .transposed, m: m, n: n, k: k, a: x.data, lda: k, b: w, ldb: k, beta: 0, c: y.data, ldc: n)
            addBiasRows(y.data, bias: bias.data, rows: m, cols: n)
            gemm(.none, .transposed, m: m, n: r, k: k, a: x.data, lda: k, b: a.data, ldb: k, beta: 0, c: hidden.data, ldc: r)
            gemm(.none, .transposed, m: m, n: n, k: r, alpha: scale, a: hidden.data, lda: r, b: b.data, ldb: r,
                 beta: 1, c: y.data, ldc: n)
        case 1:
            (w + n * k).update(from: a.data, count: r * k)
            gemm(.none, .transposed, m: m, n: n + r, k: k, a: x.data, lda: k, b: w, ldb: k, beta: 0, c: z.data, ldc: n + r)
            for row in 0..<m {
                let zr = z.data + row * (n + r), yr = y.data + row * n
                for j in 0..<n { yr[j] = zr[j] + bias.data[j] }
                (hidden.data + row * r).update(from: zr + n, count: r)
            }
            gemm(.none, .transposed, m: m, n: n, k: r, alpha: scale, a: hidden.data, lda: r, b: b.data, ldb: r,
                 beta: 1, c: y.data, ldc: n)
        case 2:
            gemm(.none, .none, m: m, n: k, k: n, a: dy.data, lda: n, b: w, ldb: k, beta: 1, c: dx.data, ldc: k)
            gemm(.none, .none, m: m, n: r, k: n, alpha: scale, a: dy.data, lda: n, b: b.data, ldb: r,
                 beta: 0, c: hidden.data, ldc: r)
            gemm(.none, .none, m: m, n: k, k: r, a: hidden.data, lda: r, b: a.data, ldb: k, beta: 1, c: dx.data, ldc: k)
        default:
            (w + n * k).update(from: a.data, count: r * k)
            for row in 0..<m { (combined.data + row * (n + r)).update(from: dy.data + row * n, count: n) }
            gemm(.none, .none, m: m, n: r, k: n, alpha: scale, a: dy.data, lda: n, b: b.data, ldb: r,
                 beta: 0, c: combined.data + n, ldc: n + r)
            gemm(.none, .none, m: m, n: k, k: n + r, a: combined.data, lda: n + r, b: w, ldb: k,
                 beta: 1, c: dx.data, ldc: k)
        }
        return watch.elapsedSeconds
    }
}
