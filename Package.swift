// swift-tools-version:6.0
import PackageDescription

// Layers (data flows upward, nothing imports upward):
//   UnrollCore (tensors, BLAS, kernels, RNG) → Unroll (operators, encoders, learning, models)
//   UnrollCore → UnrollIO (files) ; UnrollBenchmarks ; unroll (CLI) on top of all.
let optimized: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]

let package = Package(
    name: "Unroll",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "Unroll", targets: ["Unroll", "UnrollCore", "UnrollIO"]),
        .executable(name: "unroll", targets: ["unroll"]),
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
            ],
            swiftSettings: optimized),
        .target(name: "UnrollIO", dependencies: ["UnrollCore", "CZlib"], swiftSettings: optimized),
        .target(name: "Unroll", dependencies: ["UnrollCore"], swiftSettings: optimized),
        .target(name: "UnrollBenchmarks", dependencies: ["Unroll", "UnrollCore", "UnrollIO"], swiftSettings: optimized),
        .executableTarget(
            name: "unroll",
            dependencies: [
                "Unroll", "UnrollCore", "UnrollIO", "UnrollBenchmarks",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // The demo's denoising model and image.
            resources: [.copy("Resources")],
            swiftSettings: optimized),
        .testTarget(name: "UnrollCoreTests", dependencies: ["UnrollCore"]),
        .testTarget(name: "UnrollIOTests", dependencies: ["UnrollIO", "UnrollCore"]),
        .testTarget(name: "UnrollTests", dependencies: ["Unroll", "UnrollCore", "UnrollIO"]),
    ],
    swiftLanguageModes: [.v5]
)
