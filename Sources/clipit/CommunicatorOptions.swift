import ArgumentParser
import DataParallel
import Distributed

/// Chooses the communicator of a command: `--comm auto|mpi|single`.
struct CommunicatorOptions: ParsableArguments {
    @Option(name: .customLong("comm"),
            help: "Communicator: auto (MPI when started by mpirun/srun, else one rank without MPI), mpi, or single.")
    var mode: CommunicatorMode = .auto

    @Option(help: ArgumentHelp("Seconds a collective may wait for the other ranks before the job is ended "
                               + "(a stopped, hung or unreachable rank); 0: wait forever.", valueName: "seconds"))
    var collectiveTimeout: Double = 600

    /// The communicator; with several ranks its collectives are watched
    /// (`WatchedCommunicator`, `--collective-timeout`).
    func make() throws -> any Communicator {
        let comm = try Communicators.make(mode)
        guard comm.size > 1, collectiveTimeout > 0 else { return comm }
        return WatchedCommunicator(comm, timeout: collectiveTimeout)
    }

    func validate() throws {
        guard collectiveTimeout >= 0 else { throw ValidationError("--collective-timeout must not be negative") }
    }

    /// Runs a command's work on this process's rank: makes the communicator, aborts the
    /// whole job (non-zero exit on every rank) when `body` throws on any rank, and shuts the
    /// communicator down afterwards.
    func run(_ body: (any Communicator) throws -> Void) throws {
        let comm = try make()
        comm.runOrAbort { try body(comm) }
        comm.shutdown()
    }

    /// `run` for a loop that stops gracefully on SIGTERM, SIGINT or SIGUSR1: `body` gets the
    /// signal flag and returns whether the loop stopped on it; the process then exits with
    /// `StopSignals.exitCode` (75) after the communicator is shut down.
    func runStoppable(_ body: (any Communicator, StopSignals) throws -> Bool) throws {
        let signals = StopSignals()
        var stopped = false
        try run { stopped = try body($0, signals) }
        if stopped { throw ExitCode(StopSignals.exitCode) }
    }
}

extension CommunicatorMode: ExpressibleByArgument {}
