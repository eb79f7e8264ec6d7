import Foundation
import UnrollCore

/// One entry point for every array file `UnrollIO` reads, chosen by extension (and by the file's
/// magic bytes when the extension is unknown).
///
/// Single-array formats name their array after the file (without extensions). Images (PNG, PGM)
/// come out scaled to [0, 1] with shape `[height, width]` (gray) or `[height, width, channels]`;
/// IDX and CSV values keep their scale.
public enum DataFile {
    public enum Format: String, Sendable {
        case npy, npz, safetensors, png, pgm, idx, csv
    }

    public struct Contents: Sendable {
        public var format: Format
        public var arrays: [(name: String, array: NDArray)]
        /// safetensors `__metadata__` (empty for other formats).
        public var metadata: [String: String]
    }

    public static func load(_ path: String) throws -> [(name: String, tensor: Tensor, dtype: String)] {
        try read(path).arrays.map { ($0.name, $0.array.tensor, $0.array.dtype) }
    }

    public static func read(_ path: String) throws -> Contents {
        let (format, stem) = try detect(path)
        let one = { (a: NDArray) in Contents(format: format, arrays: [(stem, a)], metadata: [:]) }
        switch format {
        case .npy:
            let bytes = try FileBytes.readMaybeGzip(path)
            return one(try naming(path) { try Npy.decode(bytes) })
        case .npz:
            return Contents(format: .npz, arrays: try Npz.read(path), metadata: [:])
        case .safetensors:
            let f = try Safetensors.read(path)
            return Contents(format: .safetensors, arrays: f.tensors, metadata: f.metadata)
        case .png:
            let image = try PNG.read(path)
            let m = Double(image.maxValue)
            let shape = image.channels == 1 ? [image.height, image.width] : [image.height, image.width, image.channels]
            return one(NDArray(dtype: image.bitDepth == 16 ? "uint16" : "uint8",
                               tensor: Tensor(shape: shape, data: image.samples.map { Float(Double($0) / m) })))
        case .pgm:
            let image = try PGM.read(path)
            return one(NDArray(dtype: image.maxValue > 255 ? "uint16" : "uint8", tensor: image.gray()))
        case .idx:
            return one(try IDX.read(path))
        case .csv:
            let (_, table) = try CSV.readNumeric(path)
            return one(NDArray(dtype: "csv", tensor: table))
        }
    }

    /// The format of `path` and the name for its array (file name without extensions).
    public static func detect(_ path: String) throws -> (Format, String) {
        var name = URL(fileURLWithPath: path).lastPathComponent
        var lower = name.lowercased()
        if lower.hasSuffix(".gz") { name.removeLast(3); lower.removeLast(3) }
        let ext = lower.split(separator: ".").count > 1 ? String(lower.split(separator: ".").last!) : ""
        let stem = ext.isEmpty ? name : String(name.dropLast(ext.count + 1))
        let byExtension: [String: Format] = [
            "npy": .npy, "npz": .npz, "safetensors": .safetensors, "png": .png, "pgm": .pgm, "idx": .idx, "csv": .csv,
        ]
        if let f = byExtension[ext] { return (f, stem) }
        if lower.hasSuffix("-ubyte") || ext.hasPrefix("idx") { return (.idx, stem) }
        return (try sniff(path), stem)
    }

    /// The format from the first bytes of the (possibly gzipped) file.
    static func sniff(_ path: String) throws -> Format {
        let bytes = try FileBytes.readMaybeGzip(path)
        let head = Array(bytes.prefix(8))
        if head.starts(with: Npy.magic) { return .npy }
        if head.starts(with: [0x50, 0x4b, 3, 4]) || head.starts(with: [0x50, 0x4b, 5, 6]) { return .npz }
        if head.starts(with: PNG.signature) { return .png }
        if head.starts(with: Array("P5".utf8)) || head.starts(with: Array("P2".utf8)) { return .pgm }
        if head.count >= 4, head[0] == 0, head[1] == 0, IDX.types[head[2]] != nil { return .idx }
        if head.count == 8, head[0...7].withUnsafeBytes({ $0.loadUnaligned(as: UInt64.self) }) < 100_000_000,
           bytes.count > 8, bytes[8] == UInt8(ascii: "{") { return .safetensors }
        throw UnrollIOError(.unsupported, file: path,
            "unknown file type (expected .npy, .npz, .safetensors, .png, .pgm, IDX (-ubyte/.idx), .csv, optionally .gz)")
    }
}
