// swift-tools-version:6.0
import PackageDescription

// Layers (data flows upward, nothing imports upward):
//   UnrollCore (tensors, BLAS, kernels, RNG) → Unroll (operators, encoders, learning, models)
//   → UnrollIO (files, the model file) ; Unroll → UnrollExperiments (the papers' experiments) ;
//   UnrollBenchmarks ; unroll (CLI) on top of all ; UnrollC (the C ABI, for Python) over Unroll and UnrollIO.

// UNROLL_MPI=1 swift build … adds data-parallel training over Open MPI (pkg-config ompi-c;
// Debian: libopenmpi-dev): the targets CMPI and UnrollMPI, linked into `unroll`. docs/distributed.md.
let mpi = Context.environment["UNROLL_MPI"] == "1"

let package = Package(
    name: "Unroll",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "Unroll", targets: ["Unroll", "UnrollCore", "UnrollIO"]),
        .executable(name: "unroll", targets: ["unroll"]),
        // The C ABI (python/unroll/unroll.h) as a shared library, for the Python package.
        .library(name: "UnrollC", type: .dynamic, targets: ["UnrollC"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "pkg-config"])]),
        .systemLibrary(
            name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]),
        .target(name: "CUnrollSupport", path: "Sources/CUnrollSupport"),
        .target(
            name: "UnrollCore",
            dependencies: [
                "CUnrollSupport",
                .target(name: "COpenBLAS", condition: .when(platforms: [.linux])),
            ]),
        .target(name: "UnrollIO", dependencies: ["Unroll", "UnrollCore", "CZlib"]),
        .target(name: "Unroll", dependencies: ["UnrollCore"]),
        // The papers' experiments (their settings and published numbers): not part of the library product.
        .target(name: "UnrollExperiments", dependencies: ["Unroll", "UnrollCore"]),
        .target(name: "UnrollC", dependencies: ["Unroll", "UnrollCore", "UnrollIO"]),
        .target(name: "UnrollBenchmarks", dependencies: ["Unroll", "UnrollCore", "UnrollIO"]),
        .executableTarget(
            name: "unroll",
            dependencies: [
                "Unroll", "UnrollCore", "UnrollIO", "UnrollExperiments", "UnrollBenchmarks",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ] + (mpi ? ["UnrollMPI"] : []),
            // The demo's denoising model and image.
            resources: [.copy("Resources")]),
        .testTarget(name: "UnrollCoreTests", dependencies: ["UnrollCore"]),
        .testTarget(name: "UnrollIOTests", dependencies: ["UnrollIO", "Unroll", "UnrollCore"],
                    exclude: ["Corpus"]),   // hostile files, read by FuzzTests from the checkout
        .testTarget(name: "UnrollTests", dependencies: ["Unroll", "UnrollCore", "UnrollIO", "UnrollExperiments", "UnrollBenchmarks"]),
    ],
    swiftLanguageModes: [.v6]
)

if mpi {
    package.targets += [
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        .target(name: "UnrollMPI", dependencies: ["Unroll", "UnrollCore", "CMPI"]),
    ]
}
