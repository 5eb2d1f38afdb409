// swift-tools-version:6.0
import PackageDescription

/// clipit: CLIP-IT distillation training for histology on CPU clusters (MPI + OpenBLAS).
///
/// Layering (nothing above `Distributed` sees MPI, nothing above `Kernels` sees CBLAS):
///   CMPI, COpenBLAS, CZlib  — C system libraries (pkg-config), thin inline shims only
///   Kernels                 — Float32 tensors, BLAS GEMM, elementwise forward/backward kernels
///   Distributed             — Communicator (MPI or single rank), sharded sampling
///   Formats                 — safetensors, atomic writes, memory maps, zlib (inflate, CRC32)
///   Model                   — layers, encoders, LoRA, CLIP-IT heads, losses, optimisers
///   Datasets                — dataset and report-corpus files, cleaning, transforms, synthetic data
///   Training                — retrieval/pairing, data-parallel trainer, checkpoints, metrics
///   clipit                  — the command-line tool (one file per subcommand)
let optimise: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]

let package = Package(
    name: "clipit",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "clipit", targets: ["clipit"]),
        .library(name: "Kernels", targets: ["Kernels"]),
        .library(name: "Distributed", targets: ["Distributed"]),
        .library(name: "Model", targets: ["Model"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.0.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
    ],
    targets: [
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),

        .target(name: "Kernels", dependencies: ["COpenBLAS"], swiftSettings: optimise),
        .target(name: "Distributed", dependencies: ["CMPI", "Kernels"], swiftSettings: optimise),
        .target(name: "Formats", dependencies: ["Kernels", "CZlib"], swiftSettings: optimise),
        .target(name: "Model", dependencies: ["Kernels", "Formats"], swiftSettings: optimise),
        .target(name: "Datasets", dependencies: ["Kernels", "Formats"], swiftSettings: optimise),
        .target(name: "Import", dependencies: ["Model", "Formats", "Kernels"], swiftSettings: optimise),
        .target(name: "Training", dependencies: ["Kernels", "Model", "Distributed", "Datasets", "Formats", "Import",
                                                 .product(name: "Yams", package: "Yams")],
                swiftSettings: optimise),
        .executableTarget(
            name: "clipit",
            dependencies: ["Kernels", "Distributed", "Model", "Formats", "Datasets", "Training", "Import",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: optimise),

        // Multi-rank suite: an executable run under `mpirun -np N` by launch/test.
        .executableTarget(name: "clipit-multirank-tests", dependencies: ["Distributed", "Kernels", "Training"],
                          path: "Tests/MultiRank", exclude: ["run.sh"], swiftSettings: optimise),

        .testTarget(name: "KernelsTests", dependencies: [
            "Kernels", .product(name: "Numerics", package: "swift-numerics")]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "Kernels"]),
        .testTarget(name: "FormatsTests", dependencies: ["Formats", "Kernels"]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "Formats", "Kernels"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Model", "Distributed", "Datasets", "Kernels", "Import"]),
        .testTarget(name: "ImportTests", dependencies: ["Import", "Model", "Formats", "Kernels"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "ModelTests", dependencies: [
            "Model", "Kernels", .product(name: "Numerics", package: "swift-numerics")],
                    resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v5]
)
