// swift-tools-version:6.0
import PackageDescription

/// clipit: CLIP-IT distillation training for histology on CPU clusters (MPI + a CBLAS:
/// OpenBLAS by default, BLIS or MKL by `CLIPIT_BLAS`; see `BLASLibrary` below).
///
/// Layering, bottom to top (a module imports only modules listed above it; docs/architecture.md):
///   CMPI, CBLAS, CZlib      — C system libraries (pkg-config), thin inline shims only; CBLAS is
///                             the chosen BLAS library's shim (Sources/CBLAS/<library>)
///   CHDF5                   — HDF5 (libhdf5-dev), read by Formats' HDF5File (PCam's published files)
///   CPNG, CJPEG, CTIFF      — libpng, libjpeg-turbo, libtiff; C shims for their setjmp/longjmp and
///                             variadic APIs (the decode loops of libpng and libjpeg live there)
///   Kernels                 — Float32 tensors, BLAS GEMM, elementwise forward/backward kernels
///   Formats                 — file formats: safetensors, PNG writing, NPZ/NPY, zlib, HDF5 (reading), TensorBoard
///                             events, atomic writes, memory maps
///   ImageDecoding           — PNG, JPEG and TIFF files to 8-bit RGB, exactly as Pillow's convert("RGB")
///   Distributed             — Communicator (MPI or single rank), sharded sampling
///   Datasets                — .cds and report-corpus files, cleaning, image transforms and
///                             preprocessing, tokenizers, the synthetic benchmark
///   Model                   — layers, encoders, LoRA, heads, losses, optimisers, the models
///                             (CLIP-IT, unimodal, text-only, retriever) and their protocol; no file I/O
///   Configuration           — YAML configurations (Yams): presets, files, --set overrides, typed decoding
///   Import                  — weights in and out: pretrained folders, safetensors loading,
///                             PEFT export, retriever exports, pretrained tokenizers
///   DataParallel            — the one data-parallel step, batch assembly, metrics log (+ TensorBoard), progress
///   Retrieval               — Stage 1: retriever pretraining, embedding, exact top-k, pairing, pairs files
///   Evaluation              — Stage 3: evaluating a model on a split, metrics, Ω, seed statistics
///   Training                — Stage 2: configuration, methods, the trainer, checkpoints
///   Reporting               — what training did, as one self-contained HTML page: SVG charts
///                             (curves, error bars, heat maps, histograms), run and pairing readers
///   clipit                  — the command-line tool (one file per subcommand)
///   TestSupport             — thread-simulated ranks and brute-force reference checkers (tests only)
/// Release builds keep Swift's runtime checks (bounds, overflow, preconditions) in every
/// module, the parsers of untrusted input included: `-Ounchecked` on Kernels and Model, the
/// only candidates, measured no faster (docs/benchmarks.md, "Runtime checks").

/// The BLAS library under Kernels, chosen at build time by the environment variable
/// `CLIPIT_BLAS` (docs/benchmarks.md, "BLAS libraries"):
///
///     swift build -c release                                               # OpenBLAS
///     CLIPIT_BLAS=blis swift build -c release --scratch-path .build-blis   # BLIS
///     CLIPIT_BLAS=mkl  swift build -c release --scratch-path .build-mkl    # MKL (pkg-config mkl-sdl)
///
/// Each is one system-library target named `CBLAS` (Sources/CBLAS/OpenBLAS, BLIS or MKL)
/// whose shim exposes the CBLAS calls plus the same `clipit_blas_*` thread-control and
/// introspection calls, so no Swift code depends on the choice. Keep one scratch path per
/// library: the builds share nothing.
enum BLASLibrary: String, CaseIterable {
    case openblas, blis, mkl

    /// The library named by `CLIPIT_BLAS` (case-insensitive; OpenBLAS when unset or empty).
    static var chosen: BLASLibrary {
        let name = (Context.environment["CLIPIT_BLAS"] ?? "").lowercased()
        if name.isEmpty { return .openblas }
        guard let library = BLASLibrary(rawValue: name) else {
            fatalError("CLIPIT_BLAS='\(name)' is not a BLAS library clipit builds with; "
                       + "use one of \(allCases.map(\.rawValue).joined(separator: ", ")) (docs/benchmarks.md, \"BLAS libraries\")")
        }
        return library
    }

    /// The `CBLAS` target: the library's shim folder, its pkg-config name and packages.
    var target: Target {
        switch self {
        case .openblas:
            return .systemLibrary(name: "CBLAS", path: "Sources/CBLAS/OpenBLAS", pkgConfig: "openblas",
                                  providers: [.apt(["libopenblas-dev"])])
        case .blis:
            // Upstream and Spack installs ship blis.pc (-I<prefix>/include/blis); Debian's
            // libblis-dev has none, and its blis.h is found on the default include path.
            return .systemLibrary(name: "CBLAS", path: "Sources/CBLAS/BLIS", pkgConfig: "blis",
                                  providers: [.apt(["libblis-pthread-dev"])])
        case .mkl:
            // mkl-sdl.pc (oneAPI: $MKLROOT/lib/pkgconfig; pip mkl-devel: <venv>/lib/pkgconfig)
            // links the single dynamic library libmkl_rt.
            return .systemLibrary(name: "CBLAS", path: "Sources/CBLAS/MKL", pkgConfig: "mkl-sdl")
        }
    }
}

/// The instruction set the numeric Swift modules (Kernels, Model, Retrieval) are compiled for, from the
/// environment variable `CLIPIT_TARGET_CPU`: an LLVM CPU name (`haswell`: AVX2 and FMA;
/// `skylake-avx512`, `znver4`, …), or unset / `generic` for the compiler's baseline x86-64
/// (SSE2). It widens the element-wise kernels' vectors (norms, activations, softmax, the
/// top-k scan); the
/// GEMMs are the BLAS library's own. The results are the same bits on any setting: Swift
/// does not contract a·b + c into FMA and the kernels fix their summation order. The
/// binary then needs that CPU: `launch/lib/common.sh` picks `haswell` when the building
/// machine has AVX2 and FMA; a cluster that builds on one node for others names the compute
/// nodes' CPU (docs/cluster.md).
let targetCPUSettings: [SwiftSetting] = {
    let cpu = Context.environment["CLIPIT_TARGET_CPU"] ?? ""
    guard !cpu.isEmpty, cpu != "generic" else { return [] }
    return [.unsafeFlags(["-target-cpu", cpu])]
}()

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
        BLASLibrary.chosen.target,
        .systemLibrary(name: "CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5",
                       providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng16", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg62-turbo-dev"])]),
        .systemLibrary(name: "CTIFF", pkgConfig: "libtiff-4", providers: [.apt(["libtiff-dev"])]),

        .target(name: "Kernels", dependencies: ["CBLAS"], swiftSettings: targetCPUSettings),
        .target(name: "Formats", dependencies: ["CZlib", "CHDF5"]),
        .target(name: "Distributed", dependencies: ["CMPI", "Kernels"]),
        .target(name: "ImageDecoding", dependencies: ["CPNG", "CJPEG", "CTIFF", "Formats"]),
        .target(name: "Datasets", dependencies: ["Kernels", "Formats", "ImageDecoding"]),
        .target(name: "Model", dependencies: ["Kernels"], swiftSettings: targetCPUSettings),
        .target(name: "Configuration", dependencies: [.product(name: "Yams", package: "Yams")]),
        .target(name: "Import", dependencies: ["Model", "Datasets", "Formats", "Kernels"]),
        .target(name: "DataParallel", dependencies: ["Model", "Datasets", "Distributed", "Formats", "Kernels"]),
        .target(name: "Retrieval", dependencies: ["DataParallel", "Import", "Configuration", "Model", "Datasets",
                                                  "Distributed", "Formats", "Kernels"],
                swiftSettings: targetCPUSettings),
        .target(name: "Evaluation", dependencies: ["DataParallel", "Model", "Datasets", "Distributed", "Formats", "Kernels"]),
        .target(name: "Training", dependencies: ["Evaluation", "Retrieval", "DataParallel", "Import", "Configuration",
                                                 "Model", "Datasets", "Distributed", "Formats", "Kernels"]),
        .target(name: "Reporting", dependencies: ["Evaluation", "Retrieval", "Datasets", "Formats"]),
        .executableTarget(
            name: "clipit",
            dependencies: ["Reporting", "Training", "Evaluation", "Retrieval", "DataParallel", "Import", "Configuration", "Model", "Datasets",
                           "Distributed", "ImageDecoding", "Formats", "Kernels",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            plugins: ["BuildInfoPlugin"]),
        // `clipit --version`'s git revision, generated before each build.
        .plugin(name: "BuildInfoPlugin", capability: .buildTool()),

        // Test support: thread-simulated ranks and brute-force reference checkers.
        .target(name: "TestSupport", dependencies: ["Retrieval", "Evaluation", "Distributed", "Formats", "Kernels"],
                path: "Tests/TestSupport"),

        // Multi-rank suite: an executable run under `mpirun -np N` by launch/test.
        .executableTarget(name: "clipit-multirank-tests",
                          dependencies: ["TestSupport", "Training", "Retrieval", "DataParallel", "Model", "Datasets",
                                         "Distributed", "Kernels"],
                          path: "Tests/MultiRank", exclude: ["run.sh"]),

        .testTarget(name: "KernelsTests", dependencies: [
            "Kernels", .product(name: "Numerics", package: "swift-numerics")]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "Kernels", "TestSupport"]),
        .testTarget(name: "FormatsTests", dependencies: ["Formats", "ImageDecoding", "Kernels", "TestSupport"],
                    exclude: ["Fixtures"]),   // read from the checkout by path
        .testTarget(name: "ImageDecodingTests", dependencies: ["ImageDecoding", "Formats", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "Formats", "Kernels", "TestSupport"],
                    exclude: ["Fixtures"]),   // read from the checkout by path
        .testTarget(name: "ModelTests", dependencies: [
            "Model", "Import", "Kernels", "Formats", "TestSupport", .product(name: "Numerics", package: "swift-numerics")],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "ImportTests", dependencies: ["Import", "Model", "Datasets", "Formats", "Kernels", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "RetrievalTests", dependencies: ["Retrieval", "Evaluation", "DataParallel", "Model", "Import", "Formats",
                                                           "Datasets", "Distributed", "Kernels", "TestSupport"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "Distributed", "Kernels", "TestSupport"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Configuration", "Retrieval", "Evaluation", "DataParallel", "Model",
                                                          "Import", "Datasets", "Distributed", "ImageDecoding", "Formats", "Kernels",
                                                          "TestSupport"]),
        .testTarget(name: "ReportingTests", dependencies: ["Reporting", "Evaluation", "Retrieval", "Datasets", "Formats",
                                                           "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
