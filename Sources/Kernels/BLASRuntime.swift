import COpenBLAS

/// Process-wide control and introspection of the OpenBLAS library.
///
/// The number of BLAS threads per rank times the number of ranks on a node should not
/// exceed the node's cores; `launch/mpirun` sets `OPENBLAS_NUM_THREADS` accordingly,
/// and `setThreads` overrides it from the command line.
public enum BLASRuntime {
    /// Sets the number of threads OpenBLAS uses for subsequent calls.
    public static func setThreads(_ n: Int) {
        precondition(n >= 1, "BLAS thread count must be at least 1, got \(n)")
        openblas_set_num_threads(Int32(n))
    }

    /// The number of threads OpenBLAS currently uses.
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// The CPU kernel OpenBLAS dispatched to (for example "Haswell", "SkylakeX"); it is
    /// influenced by the `OPENBLAS_CORETYPE` environment variable.
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// OpenBLAS's build configuration string (version, threading model, target).
    public static var config: String { String(cString: openblas_get_config()) }
}
