import ArgumentParser
import Distributed

/// Chooses the communicator of a command: `--comm auto|mpi|single`.
struct CommunicatorOptions: ParsableArguments {
    @Option(name: .customLong("comm"),
            help: "Communicator: auto (MPI when started by mpirun/srun, else one rank without MPI), mpi, or single.")
    var mode: CommunicatorMode = .auto

    func make() throws -> any Communicator { try Communicators.make(mode) }

    /// Runs a command's work on this process's rank: makes the communicator, aborts the
    /// whole job (non-zero exit on every rank) when `body` throws on any rank, and shuts the
    /// communicator down afterwards.
    func run(_ body: (any Communicator) throws -> Void) throws {
        let comm = try make()
        comm.runOrAbort { try body(comm) }
        comm.shutdown()
    }
}

extension CommunicatorMode: ExpressibleByArgument {}
