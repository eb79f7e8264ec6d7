import Foundation
import UnrollCore

/// NumPy's `.npz`: a zip archive of `.npy` files (`np.savez` stores them, `np.savez_compressed`
/// deflates them). Names in this API are without the `.npy` suffix, as `np.load(...)[name]` uses them.
public enum Npz {
    public static func read(_ path: String) throws -> [(name: String, array: NDArray)] {
        let bytes = try FileBytes.read(path)
        return try naming(path) { try decode(bytes) }
    }

    public static func decode(_ bytes: [UInt8]) throws -> [(name: String, array: NDArray)] {
        guard bytes.count >= 4, bytes[0] == 0x50, bytes[1] == 0x4b else {
            throw UnrollIOError(.badMagic, "not an .npz file (zip archives start with 'PK')")
        }
        return try Zip.entries(bytes).filter { !$0.name.hasSuffix("/") }.map { entry in
            let data = try Zip.extract(entry, from: bytes)
            do {
                let name = entry.name.hasSuffix(".npy") ? String(entry.name.dropLast(4)) : entry.name
                return (name, try Npy.decode(data))
            } catch let e as UnrollIOError {
                throw UnrollIOError(e.kind, "entry '\(entry.name)': \(e.detail)")
            }
        }
    }

    /// `.npz` bytes of named tensors (each `<f4`), stored or deflated.
    public static func encode(_ arrays: [(name: String, tensor: Tensor)], compressed: Bool = false) -> [UInt8] {
        encode(npy: arrays.map { ($0.name, Npy.encode($0.tensor)) }, compressed: compressed)
    }

    /// `.npz` bytes of already encoded `.npy` entries (to mix in labels from `Npy.encode(int64:)`).
    public static func encode(npy entries: [(name: String, npy: [UInt8])], compressed: Bool = false) -> [UInt8] {
        precondition(Set(entries.map(\.name)).count == entries.count, "duplicate names in .npz entries")
        return Zip.archive(entries.map { ($0.name + ".npy", $0.npy) }, compressed: compressed)
    }

    public static func write(_ arrays: [(name: String, tensor: Tensor)], to path: String, compressed: Bool = false) throws {
        try AtomicFile.write(encode(arrays, compressed: compressed), to: path)
    }

    public static func write(npy entries: [(name: String, npy: [UInt8])], to path: String, compressed: Bool = false) throws {
        try AtomicFile.write(encode(npy: entries, compressed: compressed), to: path)
    }
}
