import ArgumentParser
import Distributed

/// Chooses the communicator of a command: `--comm auto|mpi|single`.
struct CommunicatorOptions: ParsableArguments {
    @Option(name: .customLong("comm"),
            help: "Communicator: auto (MPI when started by mpirun/srun, else one rank without MPI), mpi, or single.")
    var mode: CommunicatorMode = .auto

    func make() throws -> any Communicator { try Communicators.make(mode) }
}

extension CommunicatorMode: ExpressibleByArgument {}
