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

    /// Starts handling `handled` in this process (their default disposition is replaced).
    /// `handlingSignals: false` gives a flag raised only by `request`: a program that embeds
    /// a loop and asks it to stop, or a test.
    public init(handlingSignals: Bool = true) {
        guard handlingSignals else { return }
        for signalNumber in Self.handled {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [weak self] in self?.record(signalNumber) }
            source.resume()
            sources.append(source)
        }
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

    /// Raises the flag as if `signalNumber` had arrived.
    public func request(_ signalNumber: Int32 = SIGTERM) { record(signalNumber) }

    /// Prints the one line a scheduler's log needs when a run stopped at `step` (rank 0).
    public static func announceStop(step: Int, command: String, runFolder: String) {
        FileHandle.standardError.write(Data(("stopped by signal at step \(step); resume with clipit \(command) "
            + "--resume auto --out \(runFolder) (same options)\n").utf8))
    }

    /// The first signal received, nil while none has arrived.
    public var signalReceived: Int32? {
        lock.lock()
        defer { lock.unlock() }
        return received
    }
}

/// The checkpoint a `--resume` argument names: a path as given, or for `auto` the run
/// folder's `last.safetensors` when it exists (nil: start the run afresh).
public func checkpointToResume(_ argument: String?, runFolder: String) -> String? {
    guard argument == "auto" else { return argument }
    let last = (runFolder as NSString).appendingPathComponent("last.safetensors")
    return FileManager.default.fileExists(atPath: last) ? last : nil
}
