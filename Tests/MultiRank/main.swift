// Multi-rank test suite for the Distributed module, run under an MPI launcher:
//
//     mpirun -np 2 clipit-multirank-tests
//     mpirun -np 4 --oversubscribe clipit-multirank-tests
//     mpirun -np 2 clipit-multirank-tests --abort-test     # must exit non-zero, promptly
//
// Every case runs on every rank; a case passes only if it passes on all ranks (the
// verdicts are combined with an allreduce). Rank 0 prints one line per case and the
// summary `N passed, N failed`; the exit status is non-zero if any case failed.
// Tests/MultiRank/run.sh runs this at several rank counts together with the abort test.
import Distributed
import Kernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
import DataParallel
import Datasets
import Model
import Retrieval
import Training
#endif

/// The error the failing rank throws in `--abort-test`.
struct DeliberateFailure: Error, CustomStringConvertible {
    let rank: Int
    var description: String {
        "deliberate failure for the abort test on rank \(rank) while the other ranks wait in a barrier"
    }
}

/// Collects the verdicts of the cases and prints the summary.
final class Suite {
    let comm: any Communicator
    private(set) var passed = 0
    private(set) var failed = 0

    init(_ comm: any Communicator) { self.comm = comm }

    /// Runs one case on every rank. `body` records problems with `expect`; the case
    /// passes if no rank recorded one.
    func test(_ name: String, _ body: (inout [String]) throws -> Void) throws {
        var problems: [String] = []
        try body(&problems)
        for problem in problems.prefix(5) {
            fputs("rank \(comm.rank): \(name): \(problem)\n", stderr)
        }
        let passedEverywhere = try comm.allreduce(problems.isEmpty ? 1 : 0, .min) == 1
        if passedEverywhere { passed += 1 } else { failed += 1 }
        if comm.rank == 0 { print("\(passedEverywhere ? "ok  " : "FAIL") \(name)") }
    }

    /// Runs `body` with the MPI communicator's per-call element limit lowered to
    /// `limit`, so that the chunked and multi-round paths run on small buffers.
    func withChunkLimit(_ limit: Int, _ body: () throws -> Void) rethrows {
        guard let mpi = comm as? MPICommunicator else { return try body() }
        let saved = mpi.maxElementsPerCall
        mpi.maxElementsPerCall = limit
        defer { mpi.maxElementsPerCall = saved }
        try body()
    }
}

func expect(_ condition: Bool, _ message: @autoclosure () -> String, _ problems: inout [String]) {
    if !condition { problems.append(message()) }
}

/// Records a problem for the first index where `actual` and `expected` differ.
func expectEqual<T: Equatable>(_ actual: [T], _ expected: [T], _ what: String, _ problems: inout [String]) {
    guard actual.count == expected.count else {
        problems.append("\(what): \(actual.count) elements, expected \(expected.count)")
        return
    }
    if let i = actual.indices.first(where: { actual[$0] != expected[$0] }) {
        problems.append("\(what): element \(i) is \(actual[i]), expected \(expected[i])")
    }
}

// MARK: - Cases

/// The value rank `rank` contributes at index `i` in the reduction cases: small
/// integers, so that Float sums are exact.
func contribution(_ i: Int, rank: Int) -> Int { (i * 31 + rank * 17) % 101 - 50 }

func reduced(_ op: ReductionOp, _ i: Int, ranks: Int) -> Int {
    let values = (0 ..< ranks).map { contribution(i, rank: $0) }
    switch op {
    case .sum: return values.reduce(0, +)
    case .max: return values.max()!
    case .min: return values.min()!
    }
}

func reductionCases(_ suite: Suite) throws {
    let comm = suite.comm, n = comm.size, r = comm.rank
    for count in [1, 7, 1023] {
        for op in ReductionOp.allCases {
            try suite.test("allreduce \(op) Float/Double/Int, \(count) elements") { problems in
                var floats = (0 ..< count).map { Float(contribution($0, rank: r)) }
                var doubles = (0 ..< count).map { Double(contribution($0, rank: r)) + 0.5 }
                // Ints beyond the Int32 range, to catch a 32-bit datatype.
                var ints = (0 ..< count).map { contribution($0, rank: r) + (1 << 40) }
                try comm.allreduce(&floats, op)
                try comm.allreduce(&doubles, op)
                try comm.allreduce(&ints, op)
                let expected = (0 ..< count).map { reduced(op, $0, ranks: n) }
                let shift = op == .sum ? n : 1
                expectEqual(floats, expected.map { Float($0) }, "Float", &problems)
                expectEqual(doubles, expected.map { Double($0) + 0.5 * Double(shift) }, "Double", &problems)
                expectEqual(ints, expected.map { $0 + shift << 40 }, "Int", &problems)
            }
        }
    }

    let large = 16 << 20
    try suite.test("allreduce sum Float, \(large) elements (64 MiB)") { problems in
        var floats = [Float](repeating: 0, count: large)
        for i in 0 ..< large { floats[i] = Float(i % 251 + r) }
        try comm.allreduce(&floats, .sum)
        let offset = n * (n - 1) / 2
        let bad = (0 ..< large).first { floats[$0] != Float(n * ($0 % 251) + offset) }
        expect(bad == nil, "element \(bad ?? 0) is \(floats[bad ?? 0])", &problems)
    }

    try suite.test("allreduce through a raw pointer (flat gradient buffer), 1023 elements") { problems in
        let count = 1023
        let gradient = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { gradient.deallocate() }
        for i in 0 ..< count { (gradient + i).initialize(to: Float(contribution(i, rank: r))) }
        try comm.allreduce(gradient, count: count, .sum)
        expectEqual(Array(UnsafeBufferPointer(start: gradient, count: count)),
                    (0 ..< count).map { Float(reduced(.sum, $0, ranks: n)) }, "gradient", &problems)
    }

    for limit in [1, 5, 64] {
        try suite.test("allreduce sum/max, chunked at \(limit) elements per call, 1023 elements") { problems in
            try suite.withChunkLimit(limit) {
                var floats = (0 ..< 1023).map { Float(contribution($0, rank: r)) }
                var ints = (0 ..< 1023).map { contribution($0, rank: r) }
                try comm.allreduce(&floats, .sum)
                try comm.allreduce(&ints, .max)
                expectEqual(floats, (0 ..< 1023).map { Float(reduced(.sum, $0, ranks: n)) }, "Float sum", &problems)
                expectEqual(ints, (0 ..< 1023).map { reduced(.max, $0, ranks: n) }, "Int max", &problems)
            }
        }
    }

    try suite.test("allreduce of scalars, empty arrays") { problems in
        expect(try comm.allreduce(r + 1, .sum) == n * (n + 1) / 2, "sum of rank+1", &problems)
        expect(try comm.allreduce(Double(r), .max) == Double(n - 1), "max rank", &problems)
        expect(try comm.allreduce(Float(r), .min) == 0, "min rank", &problems)
        var empty: [Float] = []
        try comm.allreduce(&empty, .sum)
        expect(empty.isEmpty, "empty array changed", &problems)
    }
}

func broadcastCases(_ suite: Suite) throws {
    let comm = suite.comm, n = comm.size, r = comm.rank
    for root in Set([0, n - 1]).sorted() {
        for count in [1, 7, 1023] {
            try suite.test("broadcast Float/Double/Int from root \(root), \(count) elements") { problems in
                func value(_ i: Int, _ rank: Int) -> Int { i * 7 + rank * 1000 }
                var floats = (0 ..< count).map { Float(value($0, r)) }
                var doubles = (0 ..< count).map { Double(value($0, r)) / 3 }
                var ints = (0 ..< count).map { value($0, r) << 35 }
                try comm.broadcast(&floats, root: root)
                try comm.broadcast(&doubles, root: root)
                try comm.broadcast(&ints, root: root)
                expectEqual(floats, (0 ..< count).map { Float(value($0, root)) }, "Float", &problems)
                expectEqual(doubles, (0 ..< count).map { Double(value($0, root)) / 3 }, "Double", &problems)
                expectEqual(ints, (0 ..< count).map { value($0, root) << 35 }, "Int", &problems)
            }
        }
    }
    let root = n - 1
    try suite.test("broadcast bytes, String and variable-length array from root \(root)") { problems in
        let message = "rank \(r) says héllo"
        expect(try comm.broadcast(string: message, root: root) == "rank \(root) says héllo", "String", &problems)
        let bytes = try comm.broadcast(bytes: r == root ? [0, 255, 7] : [], root: root)
        expect(bytes == [0, 255, 7], "bytes \(bytes)", &problems)
        let array = try comm.broadcastArray(r == root ? [1.5, 2.5] : [9.0, 9.0, 9.0, 9.0], root: root)
        expect(array == [1.5, 2.5], "array \(array)", &problems)
    }
    try suite.test("broadcast chunked at 3 elements per call, 1023 elements, root \(root)") { problems in
        try suite.withChunkLimit(3) {
            var floats = (0 ..< 1023).map { Float($0 + r * 10_000) }
            try comm.broadcast(&floats, root: root)
            expectEqual(floats, (0 ..< 1023).map { Float($0 + root * 10_000) }, "Float", &problems)
        }
    }
}

func gatherCases(_ suite: Suite) throws {
    let comm = suite.comm, n = comm.size, r = comm.rank
    func block(_ rank: Int, _ count: Int) -> [Double] { (0 ..< count).map { Double(rank * 1000 + $0) } }

    for (limit, label) in [(Int(Int32.max), ""), (5, ", chunked at 5 per call")] {
        try suite.test("allgather equal counts (1 and 7)\(label)") { problems in
            try suite.withChunkLimit(limit) {
                expectEqual(try comm.allgather([r]), Array(0 ..< n), "ranks", &problems)
                expectEqual(try comm.allgather(block(r, 7)), (0 ..< n).flatMap { block($0, 7) }, "Double", &problems)
                let floats = try comm.allgather((0 ..< 7).map { Float(r * 7 + $0) })
                expectEqual(floats, (0 ..< 7 * n).map { Float($0) }, "Float", &problems)
            }
        }

        // Rank 1 (rank 0 when alone) contributes nothing; the others different amounts.
        let silent = n > 1 ? 1 : 0
        func count(_ rank: Int) -> Int { rank == silent ? 0 : 2 * rank + 9 }
        try suite.test("allgatherv, rank \(silent) contributes zero elements\(label)") { problems in
            try suite.withChunkLimit(limit) {
                let (values, counts) = try comm.allgatherv(block(r, count(r)))
                expectEqual(counts, (0 ..< n).map(count), "counts", &problems)
                expectEqual(values, (0 ..< n).flatMap { block($0, count($0)) }, "values", &problems)
                let (none, noneCounts) = try comm.allgatherv([Int]())
                expect(none.isEmpty && noneCounts == Array(repeating: 0, count: n), "all-empty allgatherv", &problems)
            }
        }

        let root = n - 1
        try suite.test("gatherv and gather to root \(root)\(label)") { problems in
            try suite.withChunkLimit(limit) {
                let gathered = try comm.gatherv(block(r, count(r)), root: root)
                let equal = try comm.gather(block(r, 2), root: root)
                if r == root {
                    expectEqual(gathered?.values ?? [], (0 ..< n).flatMap { block($0, count($0)) }, "gatherv", &problems)
                    expectEqual(equal ?? [], (0 ..< n).flatMap { block($0, 2) }, "gather", &problems)
                } else {
                    expect(gathered == nil && equal == nil, "non-root received data", &problems)
                }
            }
        }
    }

    try suite.test("allgather of host names, barrier") { problems in
        let hosts = try comm.allgather(string: comm.hostName)
        expect(hosts.count == n && hosts[r] == comm.hostName, "hosts \(hosts)", &problems)
        try comm.barrier()
    }
}

func samplerCases(_ suite: Suite) throws {
    let comm = suite.comm, n = comm.size, r = comm.rank

    try suite.test("training sampler: global batches match the one-rank order, no duplicates") { problems in
        let sampler = ShardedSampler.training(itemCount: 1000, globalBatchSize: 64, rank: r, worldSize: n, seed: 2024)
        let alone = ShardedSampler.training(itemCount: 1000, globalBatchSize: 64, rank: 0, worldSize: 1, seed: 2024)
        for epoch in 0 ..< 2 {
            var seen: [Int] = []
            let reference = alone.batches(epoch: epoch)
            for (b, local) in sampler.batches(epoch: epoch).enumerated() {
                let (global, counts) = try comm.allgatherv(local)
                expectEqual(counts, sampler.sliceCounts(batch: b), "epoch \(epoch) batch \(b) counts", &problems)
                expectEqual(global, reference[b], "epoch \(epoch) batch \(b)", &problems)
                seen += global
            }
            expect(seen.count == 960 && Set(seen).count == 960, "epoch \(epoch): \(seen.count) items", &problems)
        }
    }

    try suite.test("sampler order equals the documented Fisher–Yates over Kernels.RandomGenerator") { problems in
        // mix(x), the SplitMix64 output function, is the first output of a generator
        // whose state is x minus the golden-ratio increment.
        func mix(_ x: UInt64) -> UInt64 {
            var generator = RandomGenerator(seed: x &- 0x9E37_79B9_7F4A_7C15)
            return generator.nextUInt64()
        }
        let sampler = ShardedSampler.training(itemCount: 777, globalBatchSize: 10, rank: r, worldSize: n, seed: 99)
        for epoch in [0, 1, 12] {
            var order = Array(0 ..< 777)
            var generator = RandomGenerator(seed: mix(99 ^ mix(UInt64(epoch))))
            for i in stride(from: 776, through: 1, by: -1) { order.swapAt(i, generator.nextInt(upperBound: i + 1)) }
            expectEqual(sampler.globalOrder(epoch: epoch), order, "epoch \(epoch)", &problems)
        }
    }

    try suite.test("evaluation and keep-last samplers: every item exactly once across ranks") { problems in
        for sampler in [ShardedSampler.evaluation(itemCount: 1001, globalBatchSize: 64, rank: r, worldSize: n),
                        ShardedSampler(itemCount: 1001, globalBatchSize: 64, rank: r, worldSize: n, seed: 5,
                                       shuffle: true, dropLast: false)] {
            let (all, _) = try comm.allgatherv(sampler.indices(epoch: 3))
            expectEqual(all.sorted(), Array(0 ..< 1001), "items (shuffle: \(sampler.shuffle))", &problems)
        }
    }
}

// MARK: - Main

func runAbortTest(_ comm: any Communicator) -> Never {
    let failing = comm.size - 1
    comm.runOrAbort {
        if comm.rank == failing { throw DeliberateFailure(rank: comm.rank) }
        try comm.barrier()  // the other ranks wait here until the abort ends them
    }
    fputs("rank \(comm.rank): left the barrier although rank \(failing) failed\n", stderr)
    comm.shutdown()
    exit(3)
}

let comm: any Communicator
do {
    comm = try Communicators.make(.mpi)
} catch {
    fputs("clipit-multirank-tests: cannot start MPI: \(error)\n", stderr)
    exit(2)
}

if CommandLine.arguments.contains("--abort-test") { runAbortTest(comm) }

let suite = Suite(comm)
comm.runOrAbort {
    if comm.rank == 0 { print("Distributed multi-rank suite: \(comm.size) ranks, backend \(comm.backendName)") }
    try reductionCases(suite)
    try broadcastCases(suite)
    try gatherCases(suite)
    try samplerCases(suite)
    try retrievalCases(suite)
    try pretrainCases(suite)
}
if comm.rank == 0 {
    print("\(suite.passed) passed, \(suite.failed) failed")
    fflush(stdout)
}
comm.shutdown()
exit(suite.failed == 0 ? 0 : 1)
