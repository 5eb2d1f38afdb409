/// A group of ranks that exchange data with collective operations.
///
/// Every rank of a job holds one communicator. A collective call (`barrier`,
/// `allreduce`, `broadcast`, `allgather`, `allgatherv`, `gatherv`) must be made by
/// *every* rank, in the same order, with matching element types and counts; a rank
/// that skips a collective leaves the others waiting forever. Use `runOrAbort` around a
/// rank's work so that an error on one rank ends the whole job instead.
///
/// Buffers are passed as unsafe buffer pointers so that a flat gradient buffer is
/// reduced in place without a copy; the extensions below add `[T]` conveniences.
/// Counts above what one MPI call accepts (`Int32.max` elements) are split into
/// several calls by the implementation, so callers never see that limit.
///
/// Implementations:
/// - `MPICommunicator`: all ranks of `MPI_COMM_WORLD` (under `mpirun`/`srun`, or a
///   one-rank MPI singleton when started without a launcher).
/// - `SingleRankCommunicator`: one rank, no MPI at all; every collective is the
///   identity (or a copy). Unit tests and single-process tools use it.
///
/// `Communicators.make(_:)` chooses between them; see `CommunicatorMode`.
///
/// Errors: an MPI failure is thrown as `MPIError`. Misuse (a root out of range,
/// receive buffers of the wrong size) is a programmer error and traps.
public protocol Communicator: AnyObject {
    /// This process's rank, in `0..<size`.
    var rank: Int { get }
    /// The number of ranks in the job.
    var size: Int { get }
    /// The name of the host this rank runs on (`MPI_Get_processor_name` or `gethostname`).
    var hostName: String { get }
    /// A short name of the implementation, "mpi" or "single", for logs.
    var backendName: String { get }

    /// Blocks until every rank has entered the barrier.
    func barrier() throws

    /// Replaces `buffer` on every rank by the elementwise reduction `op` of the buffers
    /// of all ranks. All ranks pass the same `buffer.count`.
    func allreduce<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, _ op: ReductionOp) throws

    /// Copies `buffer` of rank `root` into `buffer` on every other rank. All ranks pass
    /// the same `buffer.count`.
    func broadcast<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws

    /// Concatenates the equal-sized `send` buffers of all ranks, in rank order, into
    /// `receive` on every rank. Requires `receive.count == size * send.count`.
    func allgather<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>) throws

    /// Concatenates the `send` buffers of all ranks, in rank order, into `receive` on
    /// every rank, where rank `r` contributes `counts[r]` elements (zero is allowed).
    /// Requires `counts.count == size`, `counts[rank] == send.count` and
    /// `receive.count == counts.reduce(0, +)`; every rank passes the same `counts`.
    func allgatherv<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, counts: [Int],
                                         into receive: UnsafeMutableBufferPointer<T>) throws

    /// As `allgatherv`, but only rank `root` receives; `receive` is ignored elsewhere
    /// (pass an empty buffer).
    func gatherv<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, counts: [Int],
                                      into receive: UnsafeMutableBufferPointer<T>, root: Int) throws

    /// Ends the whole job: prints `clipit: rank R: message` to standard error and
    /// terminates every rank with a non-zero status (`MPI_Abort`; `exit(1)` for a
    /// single rank). Never returns.
    func abort(_ message: String) -> Never

    /// Releases the communicator (`MPI_Finalize`). Call once, on every rank, after the
    /// last collective. Further calls are ignored.
    func shutdown()

    /// Notes that the ranks are entering optimiser step `step` (1-based), for messages
    /// about a collective that does not complete (`WatchedCommunicator`). Default: nothing.
    func beginStep(_ step: Int)
}

/// The reduction applied elementwise by `allreduce`.
public enum ReductionOp: String, Sendable, CaseIterable {
    case sum, max, min
}

/// The element kinds a collective can carry; `Int` travels as a 64-bit integer.
public enum CollectiveScalarKind: Sendable {
    case float32, float64, int64, uint8
}

/// A scalar type that collectives can send. Conformances: `Float`, `Double`, `Int`
/// (as int64) and `UInt8` (raw bytes). Other types should not conform.
public protocol CollectiveScalar {
    static var collectiveKind: CollectiveScalarKind { get }
}

extension Float: CollectiveScalar { public static var collectiveKind: CollectiveScalarKind { .float32 } }
extension Double: CollectiveScalar { public static var collectiveKind: CollectiveScalarKind { .float64 } }
extension UInt8: CollectiveScalar { public static var collectiveKind: CollectiveScalarKind { .uint8 } }
extension Int: CollectiveScalar {
    public static var collectiveKind: CollectiveScalarKind {
        precondition(MemoryLayout<Int>.size == 8, "clipit needs a 64-bit Int")
        return .int64
    }
}

/// An MPI call that returned an error code (the communicator uses `MPI_ERRORS_RETURN`,
/// so MPI reports failures to us instead of aborting inside the library).
public struct MPIError: Error, CustomStringConvertible, Sendable {
    /// The MPI error code.
    public let code: Int
    /// The MPI function that failed, e.g. "MPI_Allreduce".
    public let call: String
    /// `MPI_Error_string` for `code`.
    public let reason: String

    public init(code: Int, call: String, reason: String) {
        self.code = code
        self.call = call
        self.reason = reason
    }

    public var description: String {
        "\(call) failed with MPI error \(code): \(reason) "
            + "(check that every rank makes the same collective calls with matching counts)"
    }
}

// MARK: - Pointer and array conveniences

extension Communicator {
    public func beginStep(_ step: Int) {}
}

extension Communicator {
    /// In-place allreduce of `count` elements starting at `pointer` (a flat gradient buffer).
    public func allreduce<T: CollectiveScalar>(_ pointer: UnsafeMutablePointer<T>, count: Int,
                                               _ op: ReductionOp) throws {
        try allreduce(UnsafeMutableBufferPointer(start: pointer, count: count), op)
    }

    /// In-place allreduce of an array; all ranks pass arrays of the same length.
    public func allreduce<T: CollectiveScalar>(_ array: inout [T], _ op: ReductionOp) throws {
        try array.withUnsafeMutableBufferPointer { try allreduce($0, op) }
    }

    /// The reduction `op` of one value over all ranks.
    public func allreduce<T: CollectiveScalar>(_ value: T, _ op: ReductionOp) throws -> T {
        var values = [value]
        try allreduce(&values, op)
        return values[0]
    }

    /// Broadcast of `count` elements starting at `pointer` from `root`.
    public func broadcast<T: CollectiveScalar>(_ pointer: UnsafeMutablePointer<T>, count: Int,
                                               root: Int) throws {
        try broadcast(UnsafeMutableBufferPointer(start: pointer, count: count), root: root)
    }

    /// In-place broadcast of an array whose length is already the same on every rank.
    public func broadcast<T: CollectiveScalar>(_ array: inout [T], root: Int) throws {
        try array.withUnsafeMutableBufferPointer { try broadcast($0, root: root) }
    }

    /// Returns `root`'s array on every rank; the length need only be right on `root`
    /// (it is broadcast first). Other ranks' `array` is ignored.
    public func broadcastArray<T: CollectiveScalar>(_ array: [T], root: Int) throws -> [T] {
        let count = try broadcastValue(array.count, root: root)
        if rank == root {
            // The root only reads its buffer, so the array's storage is passed as is.
            try array.withUnsafeBufferPointer { try broadcast(UnsafeMutableBufferPointer(mutating: $0), root: root) }
            return array
        }
        var received = [T](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
        try broadcast(&received, root: root)
        return received
    }

    /// Returns `root`'s value on every rank.
    public func broadcastValue<T: CollectiveScalar>(_ value: T, root: Int) throws -> T {
        var values = [value]
        try broadcast(&values, root: root)
        return values[0]
    }

    /// Returns `root`'s bytes on every rank (any length; other ranks' argument is ignored).
    public func broadcast(bytes: [UInt8], root: Int) throws -> [UInt8] {
        try broadcastArray(bytes, root: root)
    }

    /// Returns `root`'s string on every rank (UTF-8 on the wire).
    public func broadcast(string: String, root: Int) throws -> String {
        String(decoding: try broadcast(bytes: Array(string.utf8), root: root), as: UTF8.self)
    }

    /// The equal-length arrays of all ranks, concatenated in rank order.
    public func allgather<T: CollectiveScalar>(_ array: [T]) throws -> [T] {
        let total = array.count * size
        var result = [T](unsafeUninitializedCapacity: total) { _, initialized in initialized = total }
        try array.withUnsafeBufferPointer { send in
            try result.withUnsafeMutableBufferPointer { try allgather(send, into: $0) }
        }
        return result
    }

    /// The arrays of all ranks (any lengths, zero included), concatenated in rank order,
    /// with each rank's count. The counts are exchanged first with an `allgather`.
    public func allgatherv<T: CollectiveScalar>(_ array: [T]) throws -> (values: [T], counts: [Int]) {
        let counts = try allgather([array.count])
        let total = counts.reduce(0, +)
        var result = [T](unsafeUninitializedCapacity: total) { _, initialized in initialized = total }
        try array.withUnsafeBufferPointer { send in
            try result.withUnsafeMutableBufferPointer { try allgatherv(send, counts: counts, into: $0) }
        }
        return (result, counts)
    }

    /// The arrays of all ranks (any lengths), concatenated in rank order on `root`, with
    /// each rank's count; `nil` on the other ranks.
    public func gatherv<T: CollectiveScalar>(_ array: [T], root: Int) throws -> (values: [T], counts: [Int])? {
        let counts = try allgather([array.count])
        let total = rank == root ? counts.reduce(0, +) : 0
        var result = [T](unsafeUninitializedCapacity: total) { _, initialized in initialized = total }
        try array.withUnsafeBufferPointer { send in
            try result.withUnsafeMutableBufferPointer { try gatherv(send, counts: counts, into: $0, root: root) }
        }
        return rank == root ? (result, counts) : nil
    }

    /// The equal-length arrays of all ranks, concatenated in rank order on `root`; `nil`
    /// elsewhere.
    public func gather<T: CollectiveScalar>(_ array: [T], root: Int) throws -> [T]? {
        let counts = [Int](repeating: array.count, count: size)
        let total = rank == root ? array.count * size : 0
        var result = [T](unsafeUninitializedCapacity: total) { _, initialized in initialized = total }
        try array.withUnsafeBufferPointer { send in
            try result.withUnsafeMutableBufferPointer { try gatherv(send, counts: counts, into: $0, root: root) }
        }
        return rank == root ? result : nil
    }

    /// One string per rank, in rank order, on every rank (e.g. host names).
    public func allgather(string: String) throws -> [String] {
        let (bytes, counts) = try allgatherv(Array(string.utf8))
        var strings: [String] = []
        var start = 0
        for count in counts {
            strings.append(String(decoding: bytes[start ..< start + count], as: UTF8.self))
            start += count
        }
        return strings
    }

    /// Runs `body`; if it throws, ends the whole job with `abort` and the error's
    /// description, so that no other rank is left waiting in a collective.
    ///
    ///     let comm = try Communicators.make()
    ///     comm.runOrAbort { try train(comm) }
    ///     comm.shutdown()
    public func runOrAbort<Result>(_ body: () throws -> Result) -> Result {
        do {
            return try body()
        } catch {
            abort(String(describing: error))
        }
    }
}

// MARK: - Shared precondition checks for implementations

extension Communicator {
    func checkRoot(_ root: Int, _ call: String) {
        Swift.precondition(root >= 0 && root < size, "\(call): root \(root) is not a rank of a \(size)-rank job")
    }

    func checkCounts(sendCount: Int, counts: [Int], receiveCount: Int, _ call: String) {
        Swift.precondition(counts.count == size, "\(call): \(counts.count) counts for \(size) ranks")
        Swift.precondition(counts.allSatisfy { $0 >= 0 }, "\(call): negative count in \(counts)")
        Swift.precondition(counts[rank] == sendCount,
                           "\(call): rank \(rank) sends \(sendCount) elements but counts says \(counts[rank])")
        Swift.precondition(receiveCount == counts.reduce(0, +),
                           "\(call): receive buffer holds \(receiveCount) elements, counts sum to \(counts.reduce(0, +))")
    }
}
