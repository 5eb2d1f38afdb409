import ArgumentParser

/// `clipit bench …`: micro-benchmarks of the two hot paths of a training step, the
/// BLAS GEMM and the gradient allreduce.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks: GEMM throughput, allreduce latency/bandwidth, training-step throughput.",
        subcommands: [BenchGEMM.self, BenchAllreduce.self, BenchStep.self])
}
