#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How `Communicators.make` chooses the communicator implementation.
public enum CommunicatorMode: String, Sendable, CaseIterable {
    /// MPI when the process was started by an MPI launcher, a single rank otherwise
    /// (see `Communicators.launcherVariables`).
    case auto
    /// Always MPI; without a launcher this is a one-rank MPI singleton.
    case mpi
    /// Always a single rank without MPI (`MPI_Init` is never called).
    case single
}

/// Creates the communicator for this process.
public enum Communicators {
    /// Environment variables that launchers set in every rank's environment. If any is
    /// present, `.auto` selects MPI:
    /// - `OMPI_COMM_WORLD_SIZE`: Open MPI's `mpirun`/`mpiexec`;
    /// - `PMIX_RANK`: any PMIx launcher (`srun --mpi=pmix`, `prterun`, Open MPI 5);
    /// - `PMI_SIZE`, `PMI_RANK`: PMI-1/PMI-2 launchers (MPICH Hydra, `srun --mpi=pmi2`);
    /// - `SLURM_PROCID` together with `SLURM_NTASKS`: a task started by `srun`.
    ///   (Inside an `sbatch` script but outside `srun` these are also set; MPI then
    ///   starts as a one-rank singleton, which behaves like `.single`.)
    public static let launcherVariables = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"]

    /// The environment variable that overrides `.auto`: `CLIPIT_COMM=mpi|single|auto`.
    public static let overrideVariable = "CLIPIT_COMM"

    /// The mode `.auto` resolves to in `environment`; `.mpi` and `.single` resolve to
    /// themselves. The rule: `CLIPIT_COMM` if set to `mpi` or `single`; otherwise MPI
    /// if any of `launcherVariables` is set, or both `SLURM_PROCID` and `SLURM_NTASKS`
    /// are; otherwise a single rank.
    public static func resolve(_ mode: CommunicatorMode, environment: [String: String]) -> CommunicatorMode {
        guard mode == .auto else { return mode }
        if let forced = environment[overrideVariable].flatMap(CommunicatorMode.init(rawValue:)), forced != .auto {
            return forced
        }
        if launcherVariables.contains(where: { environment[$0] != nil }) { return .mpi }
        if environment["SLURM_PROCID"] != nil && environment["SLURM_NTASKS"] != nil { return .mpi }
        return .single
    }

    /// The number of ranks a launcher started this job with, read from the launcher's
    /// environment (`OMPI_COMM_WORLD_SIZE`, `PMI_SIZE`, `SLURM_NTASKS`); nil without one.
    public static func launcherRankCount(environment: [String: String]) -> Int? {
        for key in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"] {
            if let value = environment[key].flatMap(Int.init) { return value }
        }
        return nil
    }

    /// The communicator for `mode`, resolved against this process's environment.
    /// MPI is initialised at most once per process; a second `.mpi` request returns a
    /// communicator over the same `MPI_COMM_WORLD`.
    public static func make(_ mode: CommunicatorMode = .auto) throws -> any Communicator {
        switch resolve(mode, environment: processEnvironment()) {
        case .mpi: return try MPICommunicator()
        case .single, .auto: return SingleRankCommunicator()
        }
    }

    static func processEnvironment() -> [String: String] {
        var environment: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let pair = String(cString: pointer)
            if let equals = pair.firstIndex(of: "=") {
                environment[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
            }
            entry += 1
        }
        return environment
    }
}
