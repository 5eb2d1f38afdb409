import ArgumentParser

/// `clipit bench …`: micro-benchmarks of the two hot paths of a training step, the
/// BLAS GEMM and the gradient allreduce.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Micro-benchmarks: GEMM throughput and allreduce latency/bandwidth.",
        subcommands: [BenchGEMM.self, BenchAllreduce.self])
}
