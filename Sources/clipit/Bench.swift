import ArgumentParser
import Foundation
import Kernels

/// `clipit bench …`: micro-benchmarks of the hot paths of training, inference and pairing:
/// the BLAS GEMM, the gradient allreduce, whole training steps, inference with merged LoRA,
/// training-data preparation and exact retrieval.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks: GEMM throughput, allreduce latency/bandwidth, training-step throughput, LoRA folding, inference, data preparation, retrieval.",
        subcommands: [BenchGEMM.self, BenchAllreduce.self, BenchStep.self, BenchLoRAFold.self, BenchPredict.self,
                      BenchData.self, BenchRetrieval.self])
}

/// Sets the BLAS threads a benchmark runs on and returns them: `requested` (its `--threads`),
/// else the library's thread variable (`OPENBLAS_NUM_THREADS`, …), else every core.
@discardableResult
func setBenchmarkThreads(_ requested: Int?) -> Int {
    let count = requested ?? BLASRuntime.environmentThreads ?? ProcessInfo.processInfo.activeProcessorCount
    BLASRuntime.setThreads(count)
    return count
}

/// The machine's practical sgemm rate in FLOP/s on this process's BLAS threads: the
/// fastest of three timed n×n×n products after an untimed one.
func measuredSgemmPeak(size n: Int) -> Double {
    let a = Tensor(shape: [n, n]), b = Tensor(shape: [n, n]), c = Tensor(shape: [n, n])
    var rng = RandomGenerator(seed: 0x7065616B)
    rng.fillUniform(a.data, count: a.count, low: -1, high: 1)
    rng.fillUniform(b.data, count: b.count, low: -1, high: 1)
    var best = Double.infinity
    for i in 0..<4 {
        let watch = Stopwatch()
        gemm(.none, .none, m: n, n: n, k: n, a: a.data, b: b.data, beta: 0, c: c.data)
        if i > 0 { best = min(best, watch.elapsedSeconds) }
    }
    return gemmFlops(m: n, n: n, k: n) / best
}
