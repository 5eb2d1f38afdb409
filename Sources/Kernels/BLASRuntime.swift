import CBLAS
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Process-wide control and introspection of the BLAS library the package was built with.
///
/// The library is a build setting (`CLIPIT_BLAS=openblas|blis|mkl`, read by Package.swift;
/// OpenBLAS by default): each choice puts its own `CBLAS` module under Kernels, whose shim
/// answers the same `clipit_blas_*` calls, so nothing here depends on which library it is
/// (docs/benchmarks.md, "BLAS libraries").
///
/// The number of BLAS threads per rank times the number of ranks on a node should not
/// exceed the node's cores; `launch/mpirun` sets every library's thread variable
/// accordingly, and `setThreads` overrides it from the command line.
public enum BLASRuntime {
    /// The library's name: "OpenBLAS", "BLIS" or "MKL".
    public static var library: String { String(cString: clipit_blas_library()) }

    /// The library's version as it reports it at run time ("0.3.21", "0.9.0", "2026.2.1").
    public static var version: String { text(clipit_blas_version) }

    /// The CPU kernel the library chose on this machine: OpenBLAS's core ("Cooperlake"),
    /// BLIS's sub-configuration ("zen3"), MKL's instruction-set branch ("AVX2").
    public static var kernel: String { String(cString: clipit_blas_kernel()) }

    /// The environment variable that overrides the kernel choice (`OPENBLAS_CORETYPE`,
    /// `BLIS_ARCH_TYPE`, `MKL_ENABLE_INSTRUCTIONS`).
    public static var kernelVariable: String { String(cString: clipit_blas_kernel_variable()) }

    /// The library's own description of its build (OpenBLAS's configuration string,
    /// BLIS's version and threading model, MKL's version line).
    public static var config: String { text(clipit_blas_description) }

    /// "OpenBLAS 0.3.21, kernel Cooperlake": what benchmarks print in their header.
    public static var summary: String { "\(library) \(version), kernel \(kernel)" }

    /// Sets the number of threads the library uses for subsequent calls.
    public static func setThreads(_ n: Int) {
        precondition(n >= 1, "BLAS thread count must be at least 1, got \(n)")
        clipit_blas_set_threads(Int32(n))
    }

    /// The number of threads the library currently uses (for MKL: at most uses).
    public static var threads: Int { max(1, Int(clipit_blas_threads())) }

    /// The environment variable the library reads its thread count from at start-up:
    /// `OPENBLAS_NUM_THREADS`, `BLIS_NUM_THREADS` or `MKL_NUM_THREADS`.
    public static var threadVariable: String { String(cString: clipit_blas_thread_variable()) }

    /// The positive thread count in `threadVariable`, if set.
    public static var environmentThreads: Int? {
        getenv(threadVariable).flatMap { Int(String(cString: $0)) }.flatMap { $0 >= 1 ? $0 : nil }
    }

    /// A string a shim writes into a buffer.
    private static func text(_ write: (UnsafeMutablePointer<CChar>?, Int32) -> Void) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        buffer.withUnsafeMutableBufferPointer { write($0.baseAddress, Int32($0.count)) }
        return String(cString: buffer)
    }
}
