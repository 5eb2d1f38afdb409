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
        BLAS: \(BLASRuntime.config); kernel \(BLASRuntime.coreName)\(coreTypeNote)
        MPI: \(MPILibrary.version)
        """
    }

    /// `OPENBLAS_CORETYPE`, when set, chose the kernel instead of OpenBLAS's detection.
    private static var coreTypeNote: String {
        ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"].map { " (set by OPENBLAS_CORETYPE=\($0))" } ?? ""
    }
}
