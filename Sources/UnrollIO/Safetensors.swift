import Foundation
import UnrollCore

/// The contents of a safetensors file: tensors in the order of their data, and the
/// `__metadata__` string map.
public struct SafetensorsFile: Sendable {
    public var tensors: [(name: String, array: NDArray)]
    public var metadata: [String: String]

    /// The tensor called `name`, if present.
    public subscript(name: String) -> NDArray? { tensors.first { $0.name == name }?.array }
}

/// Hugging Face's safetensors: an 8-byte little-endian header length, a JSON header
/// `{"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, "__metadata__": {…}}`,
/// then the tensors' bytes (little-endian, row-major), back to back.
///
/// Reads F32, F64, F16, BF16, I8…I64, U8…U64, BOOL into Float32 tensors; writes F32. Offsets are
/// validated as the reference implementation does: each tensor's byte range matches its shape and
/// dtype, and the ranges tile the data buffer exactly, in order, without gaps or overlaps.
public enum Safetensors {
    static let maxHeaderLength = 100_000_000

    static let dtypes: [String: ElementType] = [
        "BOOL": .bool, "U8": .uint8, "I8": .int8, "U16": .uint16, "I16": .int16, "F16": .float16, "BF16": .bfloat16,
        "U32": .uint32, "I32": .int32, "F32": .float32, "U64": .uint64, "I64": .int64, "F64": .float64,
    ]

    // MARK: Reading

    public static func read(_ path: String) throws -> SafetensorsFile {
        let bytes = try FileBytes.read(path)
        return try naming(path) { try decode(bytes) }
    }

    public static func decode(_ bytes: [UInt8]) throws -> SafetensorsFile {
        var r = ByteReader(bytes)
        let n = try r.le(UInt64.self, "the safetensors header length")
        guard n <= UInt64(maxHeaderLength) else {
            throw UnrollIOError(.malformed, "safetensors header length \(n) is implausible (limit \(maxHeaderLength); not a safetensors file?)")
        }
        let headerBytes = try r.bytes(Int(n), "the safetensors JSON header")
        guard headerBytes.first == UInt8(ascii: "{") else {
            throw UnrollIOError(.badMagic, "safetensors header is not a JSON object (not a safetensors file?)")
        }
        let header: [(key: String, value: StrictJSON)]
        do {
            guard case let .object(entries) = try StrictJSON.parse(Array(headerBytes)) else { throw StrictJSON.Failure(message: "not an object") }
            header = entries
        } catch let f as StrictJSON.Failure {
            throw UnrollIOError(.malformed, "safetensors header is not valid JSON: \(f.message)")
        }
        let dataStart = r.offset
        let dataLength = bytes.count - dataStart

        var metadata: [String: String] = [:]
        var entries: [(name: String, type: ElementType, dtype: String, shape: [Int], begin: Int, end: Int)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard case let .object(m) = value else {
                    throw UnrollIOError(.malformed, "safetensors __metadata__ must be an object of strings")
                }
                for (k, v) in m {
                    guard case let .string(s) = v else {
                        throw UnrollIOError(.malformed, "safetensors __metadata__ value for '\(k)' is not a string")
                    }
                    metadata[k] = s
                }
                continue
            }
            func field(_ key: String) -> StrictJSON? {
                guard case let .object(fields) = value else { return nil }
                return fields.first { $0.key == key }?.value
            }
            guard case let .string(dtype)? = field("dtype"), case let .array(shapeAny)? = field("shape"),
                  case let .array(offsetsAny)? = field("data_offsets") else {
                throw UnrollIOError(.malformed, "safetensors tensor '\(name)' needs dtype, shape and data_offsets")
            }
            guard let type = dtypes[dtype] else {
                throw UnrollIOError(.unsupported,
                    "safetensors tensor '\(name)' has dtype \(dtype) (supported: \(dtypes.keys.sorted().joined(separator: ", ")))")
            }
            let shape = try shapeAny.map { v -> Int in
                guard let d = jsonInt(v) else { throw UnrollIOError(.malformed, "safetensors tensor '\(name)': shape must hold integers") }
                guard d >= 0 else { throw UnrollIOError(.malformed, "safetensors tensor '\(name)': negative dimension \(d)") }
                return d
            }
            guard offsetsAny.count == 2, let begin = jsonInt(offsetsAny[0]), let end = jsonInt(offsetsAny[1]),
                  begin >= 0, begin <= end else {
                throw UnrollIOError(.malformed, "safetensors tensor '\(name)': data_offsets must be [begin, end] with 0 ≤ begin ≤ end")
            }
            let count = try elementCount(shape, "safetensors tensor '\(name)'")
            let size = try byteCount(count, type.size, "safetensors tensor '\(name)'")
            guard end - begin == size else {
                throw UnrollIOError(.malformed,
                    "safetensors tensor '\(name)': shape \(shape) of \(dtype) needs \(size) bytes but data_offsets [\(begin), \(end)] span \(end - begin)")
            }
            entries.append((name, type, dtype, shape, begin, end))
        }

        // The byte ranges must tile the data buffer: sorted, each starting where the last ended.
        entries.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var covered = 0
        for e in entries {
            guard e.begin == covered else {
                throw UnrollIOError(.malformed, e.begin < covered
                    ? "safetensors tensor '\(e.name)' overlaps the previous tensor (starts at \(e.begin), previous ends at \(covered))"
                    : "safetensors data has a gap before tensor '\(e.name)' (bytes \(covered)..<\(e.begin) belong to no tensor)")
            }
            guard e.end <= dataLength else {
                throw UnrollIOError(.truncated,
                    "safetensors tensor '\(e.name)' ends at byte \(e.end) of the data but the file holds only \(dataLength) data bytes")
            }
            covered = e.end
        }
        guard covered == dataLength else {
            throw UnrollIOError(.malformed, "safetensors data has \(dataLength) bytes but its tensors cover \(covered)")
        }

        let tensors = try entries.map { e in
            (name: e.name, array: NDArray(dtype: e.type.numpyName, tensor: Tensor(shape: e.shape, data:
                try decodeElements(bytes, offset: dataStart + e.begin, count: e.shape.reduce(1, *), type: e.type, bigEndian: false))))
        }
        return SafetensorsFile(tensors: tensors, metadata: metadata)
    }

    /// A JSON integer (not a boolean, not `2.0`).
    static func jsonInt(_ v: StrictJSON) -> Int? {
        if case let .integer(i) = v { return i }
        return nil
    }

    // MARK: Writing

    /// Safetensors bytes of named Float32 tensors (F32) and a string metadata map.
    public static func encode(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:]) -> [UInt8] {
        precondition(Set(tensors.map(\.name)).count == tensors.count, "duplicate tensor names")
        precondition(!tensors.contains { $0.name == "__metadata__" }, "'__metadata__' is reserved")
        var fields: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(JSONLiteral.string($0)):\(JSONLiteral.string(metadata[$0]!))" }
            fields.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        var offset = 0
        for (name, t) in tensors {
            let size = t.count * 4
            let shape = t.shape.map(String.init).joined(separator: ",")
            fields.append("\(JSONLiteral.string(name)):{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + size)]}")
            offset += size
        }
        var header = Array(("{" + fields.joined(separator: ",") + "}").utf8)
        // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
        header += [UInt8](repeating: 0x20, count: (8 - header.count % 8) % 8)
        var out: [UInt8] = []
        out.reserveCapacity(8 + header.count + offset)
        out.appendLE(UInt64(header.count))
        out += header
        for (_, t) in tensors { out += float32LEBytes(t.data) }
        return out
    }

    /// Writes atomically (temporary file, then rename): safe for checkpoints.
    public static func write(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:], to path: String) throws {
        try AtomicFile.write(encode(tensors, metadata: metadata), to: path)
    }
}
