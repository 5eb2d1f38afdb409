#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Collectives have no timeout in MPI: a rank that is stopped (SIGSTOP), hung or cut off
/// by a dead link leaves every other rank waiting forever. `WatchedCommunicator` wraps a
/// communicator so that each collective is timed by a watchdog thread; when one exceeds
/// `timeout`, the rank prints which collective, in which phase (e.g. "step 12") and for
/// how long, and exits non-zero — the launcher then ends the whole job.
public final class WatchedCommunicator: Communicator {
    public let base: any Communicator
    /// Seconds a collective may take before the job is ended.
    public let timeout: Double
    private let lock = NSLock()
    private var operation: String?
    private var started = 0.0
    private var calls = 0
    private var phaseLabel: String?
    private var step = 0
    private var running = true

    /// Exit status of a rank ended by the watchdog.
    public static let exitCode: Int32 = 70

    public init(_ base: any Communicator, timeout: Double) {
        precondition(timeout > 0, "WatchedCommunicator: the timeout must be positive")
        self.base = base
        self.timeout = timeout
        let thread = Thread { [weak self] in
            while let self, self.watch() { usleep(200_000) }
        }
        thread.start()
    }

    /// What the ranks are doing, named in a timeout's message: a label set here, otherwise
    /// the step `beginStep` recorded ("step N"), or "start-up" before the first step.
    public var phase: String {
        get { lock.lock(); defer { lock.unlock() }; return phaseText }
        set { lock.lock(); phaseLabel = newValue; lock.unlock() }
    }

    /// Records the step without building a string (called once per step).
    public func beginStep(_ step: Int) {
        lock.lock()
        self.step = step
        lock.unlock()
    }

    /// `phase` (the caller holds the lock).
    private var phaseText: String { phaseLabel ?? (step > 0 ? "step \(step)" : "start-up") }

    /// One check; false once the communicator is shut down.
    private func watch() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard running else { return false }
        if let operation, Self.now() - started > timeout {
            let message = "clipit: rank \(base.rank): collective \(operation) (call \(calls), \(phaseText)) has not "
                + "completed after \(Int(timeout)) s: another rank is stopped, hung or unreachable; ending the job "
                + "(--collective-timeout sets the limit)\n"
            message.withCString { _ = write(2, $0, strlen($0)) }
            _exit(Self.exitCode)
        }
        return true
    }

    private func timed<R>(_ name: String, _ body: () throws -> R) rethrows -> R {
        lock.lock()
        operation = name
        started = Self.now()
        calls += 1
        lock.unlock()
        defer {
            lock.lock()
            operation = nil
            lock.unlock()
        }
        return try body()
    }

    private static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    public var rank: Int { base.rank }
    public var size: Int { base.size }
    public var hostName: String { base.hostName }
    public var backendName: String { base.backendName + " (collectives time out after \(Int(timeout)) s)" }

    public func barrier() throws { try timed("barrier") { try base.barrier() } }

    public func allreduce<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, _ op: ReductionOp) throws {
        try timed("allreduce") { try base.allreduce(buffer, op) }
    }

    public func broadcast<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        try timed("broadcast") { try base.broadcast(buffer, root: root) }
    }

    public func allgather<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>) throws {
        try timed("allgather") { try base.allgather(send, into: receive) }
    }

    public func allgatherv<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, counts: [Int],
                                                into receive: UnsafeMutableBufferPointer<T>) throws {
        try timed("allgatherv") { try base.allgatherv(send, counts: counts, into: receive) }
    }

    public func gatherv<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, counts: [Int],
                                             into receive: UnsafeMutableBufferPointer<T>, root: Int) throws {
        try timed("gatherv") { try base.gatherv(send, counts: counts, into: receive, root: root) }
    }

    public func abort(_ message: String) -> Never { base.abort(message) }

    public func shutdown() {
        lock.lock()
        running = false
        lock.unlock()
        base.shutdown()
    }
}
