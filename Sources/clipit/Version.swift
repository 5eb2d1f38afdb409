import Distributed
import Foundation
import Kernels

/// What `clipit --version` prints: the version, the git revision it was built from, the
/// BLAS library with the kernel it chose on this machine, and the MPI library.
enum ClipitVersion {
    /// The release.
    static let number = "0.9.0"

    static var text: String {
        """
        clipit \(number) (git \(BuildInfo.gitRevision))
        BLAS: \(BLASRuntime.library) \(BLASRuntime.version); kernel \(BLASRuntime.kernel)\(kernelNote); \(BLASRuntime.config)
        MPI: \(MPILibrary.version)
        """
    }

    /// The library's kernel variable (`OPENBLAS_CORETYPE`, …), when set, chose the kernel
    /// instead of the library's detection.
    private static var kernelNote: String {
        let variable = BLASRuntime.kernelVariable
        return ProcessInfo.processInfo.environment[variable].map { " (set by \(variable)=\($0))" } ?? ""
    }
}
