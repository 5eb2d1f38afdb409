import ArgumentParser
import Distributed

/// `clipit smoke`: checks that a multi-rank launch works before a long job is queued.
struct Smoke: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "smoke",
        abstract: "Multi-rank smoke run: ranks and hosts, an allreduce check, a sharded-sampler summary.",
        discussion: """
            Run it the way training will be run, e.g. `launch/mpirun -- clipit smoke` or \
            `srun clipit smoke`. Rank 0 prints every rank's host, checks an allreduce and \
            that the sharded sampler gives every item to exactly one rank. Exits 0 on \
            success; on failure every rank is stopped with a message.
            """)

    @OptionGroup var communicator: CommunicatorOptions

    @Option(help: "Items in the simulated dataset.")
    var items = 1000

    @Option(help: "Global batch size of the simulated dataset (default 64).")
    var batch: Int?

    @Option(name: .customLong("batch-size"), help: aliasHelp(of: "batch"))
    var batchSizeAlias: Int?

    /// `--batch` (or its old name), default 64.
    var batchSize: Int { get throws { try renamedOption(batch, batchSizeAlias, name: "batch", oldName: "batch-size") ?? 64 } }

    @Option(help: "Sampler seed.")
    var seed: UInt64 = 0

    func validate() throws {
        guard items >= 0 else { throw ValidationError("--items must be non-negative, got \(items)") }
        let batchSize = try self.batchSize
        guard batchSize >= 1 else { throw ValidationError("--batch must be at least 1, got \(batchSize)") }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    func run() throws {
        try communicator.run { comm in try smoke(comm) }
    }

    private func smoke(_ comm: any Communicator) throws {
        let (rank, size) = (comm.rank, comm.size)
        let hosts = try comm.allgather(string: comm.hostName)
        if rank == 0 {
            print("clipit smoke: \(size) rank\(size == 1 ? "" : "s"), backend \(comm.backendName)")
            for (r, host) in hosts.enumerated() { print("  rank \(r)/\(size) on \(host)") }
        }

        // Allreduce: every element is the sum of rank+1 over ranks, n(n+1)/2.
        var values = [Float](repeating: Float(rank + 1), count: 1023)
        try comm.allreduce(&values, .sum)
        let expectedSum = Float(size * (size + 1) / 2)
        guard values.allSatisfy({ $0 == expectedSum }) else {
            throw Failure(description: "allreduce sum gave \(values.first ?? 0), expected \(expectedSum)")
        }
        let largest = try comm.allreduce(rank, .max)
        guard largest == size - 1 else { throw Failure(description: "allreduce max gave \(largest), expected \(size - 1)") }
        if rank == 0 { print("allreduce: ok (sum of rank+1 = \(Int(expectedSum)), max rank = \(largest))") }

        // Sharded sampler: training drops the partial batch; evaluation sees every item once.
        let batchSize = try self.batchSize
        let training = ShardedSampler.training(itemCount: items, globalBatchSize: batchSize, rank: rank,
                                               worldSize: size, seed: seed)
        let (trained, trainCounts) = try comm.allgatherv(training.indices(epoch: 0))
        let evaluation = ShardedSampler.evaluation(itemCount: items, globalBatchSize: batchSize, rank: rank,
                                                   worldSize: size)
        let (evaluated, _) = try comm.allgatherv(evaluation.indices(epoch: 0))
        let trainedExpected = training.batchesPerEpoch * batchSize
        guard trained.count == trainedExpected, Set(trained).count == trained.count else {
            throw Failure(description: "training sampler gave \(trained.count) items (\(Set(trained).count) distinct), "
                          + "expected \(trainedExpected) distinct")
        }
        guard evaluated.sorted() == Array(0 ..< items) else {
            throw Failure(description: "evaluation sampler did not give every one of \(items) items exactly once")
        }
        if rank == 0 {
            print("sampler: \(items) items, global batch \(batchSize), \(training.batchesPerEpoch) batches per epoch; "
                  + "epoch 0 items per rank \(trainCounts); evaluation sees each item once: ok")
            print("smoke: ok")
        }
    }
}
