import CMPI
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The ranks of `MPI_COMM_WORLD`.
///
/// Creating the first instance calls `MPI_Init_thread` with `MPI_THREAD_FUNNELED` (only
/// the main thread calls MPI; OpenBLAS threads never do) and sets `MPI_ERRORS_RETURN`
/// on `MPI_COMM_WORLD`, so every failed call is thrown as an `MPIError` rather than
/// killing the process inside the library. Later instances in the same process reuse
/// the initialised MPI. `shutdown()` calls `MPI_Finalize`, after which MPI cannot be
/// used again in this process.
///
/// Started without a launcher, MPI runs as a one-rank singleton.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    public let hostName: String
    public var backendName: String { "mpi" }

    /// The most elements one MPI call carries. A larger allreduce or broadcast is made
    /// as consecutive calls of at most this many elements; a larger (all)gather is made
    /// in rounds of at most `maxElementsPerCall / size` elements per rank through a
    /// scratch buffer. The default is `Int32.max`, the largest count MPI accepts; the
    /// multi-rank tests lower it to exercise the split path on small buffers.
    public var maxElementsPerCall = Int(Int32.max) {
        didSet { precondition((1 ... Int(Int32.max)).contains(maxElementsPerCall),
                              "maxElementsPerCall must be in 1...Int32.max, got \(maxElementsPerCall)") }
    }

    private let world: MPI_Comm

    public init() throws {
        var finalized: Int32 = 0
        try Self.check(MPI_Finalized(&finalized), "MPI_Finalized")
        precondition(finalized == 0, "MPI was already finalised in this process and cannot be started again")
        var initialized: Int32 = 0
        try Self.check(MPI_Initialized(&initialized), "MPI_Initialized")
        if initialized == 0 {
            var provided: Int32 = 0
            try Self.check(MPI_Init_thread(nil, nil, cmpi_thread_funneled(), &provided), "MPI_Init_thread")
            if provided < cmpi_thread_funneled() {
                fputs("clipit: warning: MPI provides thread level \(provided), below MPI_THREAD_FUNNELED; "
                      + "use an MPI built with thread support\n", stderr)
            }
        }
        world = cmpi_comm_world()
        try Self.check(MPI_Comm_set_errhandler(world, cmpi_errors_return()), "MPI_Comm_set_errhandler")
        var rank: Int32 = 0, size: Int32 = 0
        try Self.check(MPI_Comm_rank(world, &rank), "MPI_Comm_rank")
        try Self.check(MPI_Comm_size(world, &size), "MPI_Comm_size")
        self.rank = Int(rank)
        self.size = Int(size)
        var name = [CChar](repeating: 0, count: Int(MPI_MAX_PROCESSOR_NAME) + 1)
        var length: Int32 = 0
        try Self.check(MPI_Get_processor_name(&name, &length), "MPI_Get_processor_name")
        hostName = String(cString: name)
    }

    public func barrier() throws {
        try Self.check(MPI_Barrier(world), "MPI_Barrier")
    }

    public func allreduce<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, _ op: ReductionOp) throws {
        let type = Self.datatype(T.self), mpiOp = Self.operation(op)
        for range in chunkRanges(count: buffer.count, limit: maxElementsPerCall) {
            try Self.check(MPI_Allreduce(cmpi_in_place(), buffer.baseAddress! + range.lowerBound,
                                         Int32(range.count), type, mpiOp, world), "MPI_Allreduce")
        }
    }

    public func broadcast<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        checkRoot(root, "broadcast")
        let type = Self.datatype(T.self)
        for range in chunkRanges(count: buffer.count, limit: maxElementsPerCall) {
            try Self.check(MPI_Bcast(buffer.baseAddress! + range.lowerBound, Int32(range.count), type,
                                     Int32(root), world), "MPI_Bcast")
        }
    }

    public func allgather<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>,
                                               into receive: UnsafeMutableBufferPointer<T>) throws {
        precondition(receive.count == send.count * size,
                     "allgather: receive holds \(receive.count) elements, expected \(size) × \(send.count)")
        guard send.count > 0 else { return }
        if receive.count <= maxElementsPerCall {
            let type = Self.datatype(T.self)
            try Self.check(MPI_Allgather(send.baseAddress, Int32(send.count), type,
                                         receive.baseAddress, Int32(send.count), type, world), "MPI_Allgather")
        } else {
            try gatherInRounds(send, counts: Array(repeating: send.count, count: size), into: receive, root: nil)
        }
    }

    public func allgatherv<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, counts: [Int],
                                                into receive: UnsafeMutableBufferPointer<T>) throws {
        checkCounts(sendCount: send.count, counts: counts, receiveCount: receive.count, "allgatherv")
        try gatherInRounds(send, counts: counts, into: receive, root: nil)
    }

    public func gatherv<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, counts: [Int],
                                             into receive: UnsafeMutableBufferPointer<T>, root: Int) throws {
        checkRoot(root, "gatherv")
        checkCounts(sendCount: send.count, counts: counts,
                    receiveCount: rank == root ? receive.count : counts.reduce(0, +), "gatherv")
        try gatherInRounds(send, counts: counts, into: receive, root: root)
    }

    public func abort(_ message: String) -> Never {
        fputs("clipit: rank \(rank): \(message)\n", stderr)
        fflush(stderr)
        MPI_Abort(world, 1)
        exit(1)  // MPI_Abort does not return; this is only reached if it failed.
    }

    public func shutdown() {
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        if finalized == 0 { MPI_Finalize() }
    }

    // MARK: - Variable-count gathers

    /// `MPI_Allgatherv` (root `nil`) or `MPI_Gatherv` to `root`. When the total fits in
    /// one call, it receives straight into `receive`. Otherwise it runs rounds: in round
    /// `k` rank `r` sends its elements `k·p ..< (k+1)·p` (clipped to `counts[r]`, possibly
    /// none) with `p = max(1, maxElementsPerCall / size)`, into a scratch buffer of `p·size`
    /// elements, which is then copied to each rank's place in `receive`.
    private func gatherInRounds<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, counts: [Int],
                                                     into receive: UnsafeMutableBufferPointer<T>,
                                                     root: Int?) throws {
        let total = counts.reduce(0, +)
        guard total > 0 else { return }
        let receives = root == nil || root == rank
        if total <= maxElementsPerCall {
            try gatherCall(send.baseAddress, count: send.count, into: receives ? receive.baseAddress : nil,
                           counts: counts, root: root)
            return
        }
        let piece = Swift.max(1, maxElementsPerCall / size)
        let scratch = UnsafeMutableBufferPointer<T>.allocate(capacity: piece * size)
        defer { scratch.deallocate() }
        let offsets = displacements(counts)
        let rounds = (counts.max()! + piece - 1) / piece
        for round in 0 ..< rounds {
            let start = round * piece
            let pieces = counts.map { Swift.min(Swift.max($0 - start, 0), piece) }
            try gatherCall(send.baseAddress.map { $0 + Swift.min(start, send.count) }, count: pieces[rank],
                           into: receives ? scratch.baseAddress : nil, counts: pieces, root: root)
            guard receives else { continue }
            for (r, scratchOffset) in displacements(pieces).enumerated() where pieces[r] > 0 {
                (receive.baseAddress! + offsets[r] + start).update(from: scratch.baseAddress! + scratchOffset,
                                                                   count: pieces[r])
            }
        }
    }

    /// One `MPI_Allgatherv` or `MPI_Gatherv`; every count and offset fits in `Int32`.
    private func gatherCall<T: CollectiveScalar>(_ send: UnsafePointer<T>?, count: Int,
                                                 into receive: UnsafeMutablePointer<T>?,
                                                 counts: [Int], root: Int?) throws {
        let type = Self.datatype(T.self)
        let counts32 = counts.map { Int32($0) }
        let offsets32 = displacements(counts).map { Int32($0) }
        if let root {
            try Self.check(MPI_Gatherv(send, Int32(count), type, receive, counts32, offsets32, type,
                                       Int32(root), world), "MPI_Gatherv")
        } else {
            try Self.check(MPI_Allgatherv(send, Int32(count), type, receive, counts32, offsets32, type, world),
                           "MPI_Allgatherv")
        }
    }

    // MARK: - C mapping

    private static func datatype<T: CollectiveScalar>(_: T.Type) -> MPI_Datatype {
        switch T.collectiveKind {
        case .float32: return cmpi_float()
        case .float64: return cmpi_double()
        case .int64: return cmpi_int64()
        case .uint8: return cmpi_uint8()
        }
    }

    private static func operation(_ op: ReductionOp) -> MPI_Op {
        switch op {
        case .sum: return cmpi_op_sum()
        case .max: return cmpi_op_max()
        case .min: return cmpi_op_min()
        }
    }

    /// Throws `MPIError` unless `code` is `MPI_SUCCESS`.
    static func check(_ code: Int32, _ call: String) throws {
        guard code != cmpi_success() else { return }
        var text = [CChar](repeating: 0, count: Int(cmpi_max_error_string()) + 1)
        var length: Int32 = 0
        let reason = MPI_Error_string(code, &text, &length) == cmpi_success() ? String(cString: text) : "unknown error"
        throw MPIError(code: Int(code), call: call, reason: reason)
    }
}

/// The MPI library this build links.
public enum MPILibrary {
    /// `MPI_Get_library_version`'s first line (callable before `MPI_Init`), e.g. "Open MPI
    /// v4.1.4, package: Debian OpenMPI, ident: 4.1.4, repo rev: v4.1.4, May 26, 2022".
    public static var version: String {
        var buffer = [CChar](repeating: 0, count: Int(cmpi_max_library_version_string()) + 1)
        var length: Int32 = 0
        guard MPI_Get_library_version(&buffer, &length) == cmpi_success() else { return "unknown MPI library" }
        let text = String(cString: buffer)
        return text.split(separator: "\n").first.map(String.init) ?? text
    }
}
