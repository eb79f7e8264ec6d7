/// Every decoder of outside bytes, by name: what the fuzz tests (`FuzzTests`) and the libFuzzer
/// harness (`Fuzz/`, `scripts/fuzz.sh`) drive. Each takes a file's whole content from memory.
public enum FormatReaders {
    public typealias Decode = @Sendable ([UInt8]) throws -> Void

    public static let all: [(name: String, decode: Decode)] = [
        ("npy", { _ = try Npy.decode($0) }),
        ("npz", { _ = try Npz.decode($0) }),
        ("safetensors", { _ = try Safetensors.decode($0) }),
        ("png", { _ = try PNG.decode($0) }),
        ("pgm", { _ = try PGM.decode($0) }),
        ("idx", { _ = try IDX.decode($0) }),
        ("gzip", { _ = try Zlib.gunzip($0, limit: DecodeLimit.bytes) }),
        ("csv", { _ = try CSV.decodeNumeric($0) }),
        ("model", { _ = try ModelFile.decode($0) }),
    ]

    /// The decoder called `name` (one of `all`'s names).
    public static func named(_ name: String) -> Decode? { all.first { $0.name == name }?.decode }
}
