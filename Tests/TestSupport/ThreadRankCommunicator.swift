import Distributed
import Foundation

/// A communicator whose ranks are threads of this process: each collective deposits
/// every rank's buffer in a shared hub and waits for all of them, so distributed code
/// paths (uneven slices, rank-ordered gathers, offsets) run with more than one rank in
/// a unit test. Semantics follow the `Communicator` documentation.
public final class ThreadRankCommunicator: Communicator {
    public final class Hub {
        let size: Int
        let condition = NSCondition()
        var generation = 0
        var arrived = 0
        var deposits: [Any?]
        var published: [Any] = []

        init(size: Int) {
            self.size = size
            deposits = [Any?](repeating: nil, count: size)
        }

        /// Every rank's `value`, in rank order, once all ranks have called.
        func exchange(rank: Int, _ value: Any) -> [Any] {
            condition.lock()
            defer { condition.unlock() }
            let myGeneration = generation
            deposits[rank] = value
            arrived += 1
            if arrived == size {
                published = deposits.map { $0! }
                deposits = [Any?](repeating: nil, count: size)
                arrived = 0
                generation += 1
                condition.broadcast()
            } else {
                while generation == myGeneration { condition.wait() }
            }
            return published
        }
    }

    public let rank: Int
    let hub: Hub
    public var size: Int { hub.size }
    public let hostName = "localhost"
    public var backendName: String { "threads" }

    init(rank: Int, hub: Hub) {
        self.rank = rank
        self.hub = hub
    }

    /// Runs `body(comm)` on `size` threads, one per rank, and returns their results in rank order.
    public static func run<R>(size: Int, _ body: @escaping (ThreadRankCommunicator) throws -> R) throws -> [R] {
        let hub = Hub(size: size)
        let results = RankResults<R>(size: size)
        let threads = (0..<size).map { rank in
            Thread {
                let result = Result { try body(ThreadRankCommunicator(rank: rank, hub: hub)) }
                results.lock.lock()
                results.values[rank] = result
                results.lock.unlock()
            }
        }
        threads.forEach { $0.stackSize = 8 << 20; $0.start() }
        while true {
            results.lock.lock()
            let done = results.values.allSatisfy { $0 != nil }
            results.lock.unlock()
            if done { break }
            Thread.sleep(forTimeInterval: 0.001)
        }
        return try results.values.map { try $0!.get() }
    }

    public func barrier() throws { _ = hub.exchange(rank: rank, 0) }

    public func allreduce<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, _ op: ReductionOp) throws {
        let all = hub.exchange(rank: rank, Array(buffer)).map { $0 as! [T] }
        for i in buffer.indices { buffer[i] = Self.reduce(all.map { $0[i] }, op) }
    }

    static func reduce<T>(_ values: [T], _ op: ReductionOp) -> T {
        func apply<N: Comparable & AdditiveArithmetic>(_ v: [N]) -> N {
            switch op {
            case .sum: return v.reduce(.zero, +)
            case .max: return v.max()!
            case .min: return v.min()!
            }
        }
        if let v = values as? [Float] { return apply(v) as! T }
        if let v = values as? [Double] { return apply(v) as! T }
        if let v = values as? [Int] { return apply(v) as! T }
        if let v = values as? [UInt8] { return apply(v) as! T }
        fatalError("ThreadRankCommunicator: unsupported element type \(T.self)")
    }

    public func broadcast<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        let all = hub.exchange(rank: rank, Array(buffer)).map { $0 as! [T] }
        for i in buffer.indices { buffer[i] = all[root][i] }
    }

    public func allgather<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>) throws {
        let all = hub.exchange(rank: rank, Array(send)).map { $0 as! [T] }
        precondition(all.allSatisfy { $0.count == send.count } && receive.count == send.count * size)
        for (i, value) in all.joined().enumerated() { receive[i] = value }
    }

    public func allgatherv<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, counts: [Int],
                                         into receive: UnsafeMutableBufferPointer<T>) throws {
        checkCounts(send.count, counts, receive.count)
        let all = hub.exchange(rank: rank, Array(send)).map { $0 as! [T] }
        precondition(all.map(\.count) == counts, "allgatherv: counts \(counts) but ranks sent \(all.map(\.count))")
        for (i, value) in all.joined().enumerated() { receive[i] = value }
    }

    public func gatherv<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, counts: [Int],
                                      into receive: UnsafeMutableBufferPointer<T>, root: Int) throws {
        let all = hub.exchange(rank: rank, Array(send)).map { $0 as! [T] }
        if rank == root {
            checkCounts(send.count, counts, receive.count)
            for (i, value) in all.joined().enumerated() { receive[i] = value }
        }
    }

    private func checkCounts(_ sendCount: Int, _ counts: [Int], _ receiveCount: Int) {
        precondition(counts.count == size && counts[rank] == sendCount && receiveCount == counts.reduce(0, +),
                     "collective counts \(counts) for rank \(rank) sending \(sendCount) into \(receiveCount)")
    }

    public func abort(_ message: String) -> Never { fatalError("rank \(rank): \(message)") }

    public func shutdown() {}
}

/// The ranks' results of `ThreadRankCommunicator.run`, written under `lock` by the rank threads.
final class RankResults<R>: @unchecked Sendable {
    let lock = NSLock()
    var values: [Result<R, Error>?]
    init(size: Int) { values = [Result<R, Error>?](repeating: nil, count: size) }
}
