#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A one-rank communicator that never touches MPI: reductions and broadcasts leave the
/// buffer as it is, gathers copy the send buffer. Unit tests and single-process runs
/// use it; it checks its arguments exactly as `MPICommunicator` does, so code that
/// passes here does not trip those checks at scale.
public final class SingleRankCommunicator: Communicator {
    public let rank = 0
    public let size = 1
    public let hostName: String
    public var backendName: String { "single" }

    public init() {
        hostName = localHostName()
    }

    public func barrier() throws {}

    public func allreduce<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, _ op: ReductionOp) throws {}

    public func broadcast<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        checkRoot(root, "broadcast")
    }

    public func allgather<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>,
                                               into receive: UnsafeMutableBufferPointer<T>) throws {
        precondition(receive.count == send.count, "allgather: receive holds \(receive.count), expected \(send.count)")
        copy(send, into: receive)
    }

    public func allgatherv<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, counts: [Int],
                                                into receive: UnsafeMutableBufferPointer<T>) throws {
        checkCounts(sendCount: send.count, counts: counts, receiveCount: receive.count, "allgatherv")
        copy(send, into: receive)
    }

    public func gatherv<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, counts: [Int],
                                             into receive: UnsafeMutableBufferPointer<T>, root: Int) throws {
        checkRoot(root, "gatherv")
        checkCounts(sendCount: send.count, counts: counts, receiveCount: receive.count, "gatherv")
        copy(send, into: receive)
    }

    public func abort(_ message: String) -> Never {
        fputs("clipit: rank \(rank): \(message)\n", stderr)
        fflush(stderr)
        exit(1)
    }

    public func shutdown() {}

    private func copy<T>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>) {
        guard let source = send.baseAddress, let destination = receive.baseAddress else { return }
        destination.update(from: source, count: send.count)
    }
}

/// This machine's host name (`gethostname`), "localhost" when it cannot be read.
public func localHostName() -> String {
    var name = [CChar](repeating: 0, count: 256)
    return gethostname(&name, name.count - 1) == 0 ? String(cString: name) : "localhost"
}
