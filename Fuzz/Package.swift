// swift-tools-version:6.0
// The libFuzzer harness over every reader of outside bytes (UnrollIO's `FormatReaders`). Built and run
// by scripts/fuzz.sh with coverage and the address sanitizer:
//   swift build -c release --package-path Fuzz -Xswiftc -sanitize=fuzzer,address
import PackageDescription

let package = Package(
    name: "UnrollFuzz",
    dependencies: [.package(name: "Unroll", path: "..")],
    targets: [
        .target(name: "CLibFuzzer"),
        // lld: gold fails on the sanitized objects (an internal error in its DWARF reader).
        .executableTarget(name: "UnrollFuzz", dependencies: ["CLibFuzzer", .product(name: "Unroll", package: "Unroll")],
                          linkerSettings: [.unsafeFlags(["-use-ld=lld"])]),
    ],
    swiftLanguageModes: [.v6]
)
