import Dispatch
import Foundation

/// Graceful preemption: SIGTERM (what Slurm and most schedulers send), SIGINT and SIGUSR1
/// (`sbatch --signal=B:USR1@120`) only raise a flag here. Each data-parallel step carries
/// this rank's flag in its loss reduction (no extra collective), so every rank learns of a
/// signal received by any of them after the same step and all stop together at that step
/// boundary, with a checkpoint of it (`DataParallelStep.Outcome.stopRequested`).
public final class StopSignals: @unchecked Sendable {
    /// The signals that request a stop.
    public static let handled: [Int32] = [SIGTERM, SIGINT, SIGUSR1]
    /// The process exit code of a run stopped by a signal after writing its checkpoint
    /// (EX_TEMPFAIL: try again — `--resume auto` continues it).
    public static let exitCode: Int32 = 75

    private let lock = NSLock()
    private var received: Int32?
    private var sources: [any DispatchSourceSignal] = []

    /// Starts handling `handled` in this process (the default disposition is replaced).
    public init() {
        for signalNumber in Self.handled {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [weak self] in self?.record(signalNumber) }
            source.resume()
            sources.append(source)
        }
    }

    /// A flag that is never raised (tests, library use without signal handling).
    public init(handling: Bool) {
        precondition(!handling, "StopSignals(handling: true) is init()")
    }

    deinit {
        for source in sources { source.cancel() }
        for signalNumber in Self.handled where !sources.isEmpty { signal(signalNumber, SIG_DFL) }
    }

    private func record(_ signalNumber: Int32) {
        lock.lock()
        if received == nil { received = signalNumber }
        lock.unlock()
    }

    /// Raises the flag as if `signalNumber` had arrived (tests).
    public func request(_ signalNumber: Int32 = SIGTERM) { record(signalNumber) }

    /// The first signal received, nil while none has arrived.
    public var signalReceived: Int32? {
        lock.lock()
        defer { lock.unlock() }
        return received
    }
}
