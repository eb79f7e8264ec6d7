import Foundation
import UnrollCore

/// NumPy's `.npy` format: a magic string, a version, a header that is a Python dict literal
/// (`{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`), then the raw elements.
///
/// Reads versions 1.0, 2.0 and 3.0; element types bool, (u)int8…64, float16/32/64 in either byte
/// order; C or Fortran order (Fortran data is reordered to row-major); any rank including 0-d.
/// Writes version 1.0 `<f4` (or `<i8`, `|u1` for labels), byte-identical to `np.save`.
public enum Npy {
    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    // MARK: Reading

    public static func read(_ path: String) throws -> NDArray {
        let bytes = try FileBytes.read(path)
        return try naming(path) { try decode(bytes) }
    }

    /// The header of a `.npy` file's first bytes, and where its data start.
    static func parseHeader(_ bytes: [UInt8]) throws -> (header: NpyHeader, dataOffset: Int) {
        var r = ByteReader(bytes)
        guard bytes.count >= 6, Array(bytes[0..<6]) == magic else {
            throw UnrollIOError(.badMagic, "not a .npy file (missing the \\x93NUMPY magic)")
        }
        try r.skip(6, "the .npy magic")
        let major = try r.u8("the .npy version")
        let minor = try r.u8("the .npy version")
        let headerLength: Int
        switch major {
        case 1: headerLength = Int(try r.le(UInt16.self, "the .npy header length"))
        case 2, 3: headerLength = Int(try r.le(UInt32.self, "the .npy header length"))
        default: throw UnrollIOError(.unsupported, ".npy format version \(major).\(minor) (known: 1.0, 2.0, 3.0)")
        }
        let headerBytes = try r.bytes(headerLength, "the .npy header")
        // v1/v2 headers are latin-1, v3 UTF-8; the fields we accept are ASCII either way.
        guard let headerText = String(bytes: headerBytes, encoding: major == 3 ? .utf8 : .isoLatin1) else {
            throw UnrollIOError(.malformed, ".npy header is not valid text")
        }
        return (try NpyHeader(parsing: headerText), r.offset)
    }

    public static func decode(_ bytes: [UInt8]) throws -> NDArray {
        let (header, offset) = try parseHeader(bytes)
        let r = ByteReader(bytes, offset: offset)
        let count = try elementCount(header.shape, ".npy shape")
        let size = try byteCount(count, header.type.size, ".npy data")
        if r.remaining < size {
            throw UnrollIOError(.truncated,
                ".npy header promises shape \(header.shape) of \(header.descr) (\(size) bytes) but the file has \(r.remaining) bytes of data")
        }
        if r.remaining > size {
            throw UnrollIOError(.malformed,
                ".npy header promises shape \(header.shape) of \(header.descr) (\(size) bytes) but the file has \(r.remaining) bytes of data")
        }
        var values = try decodeElements(bytes, offset: r.offset, count: count, type: header.type, bigEndian: header.bigEndian)
        if header.fortranOrder && header.shape.count > 1 { values = fortranToRowMajor(values, shape: header.shape) }
        return NDArray(dtype: header.type.numpyName, tensor: Tensor(shape: header.shape, data: values))
    }

    /// Column-major (first index fastest) to row-major (last index fastest).
    static func fortranToRowMajor(_ values: [Float], shape: [Int]) -> [Float] {
        let rank = shape.count
        var fStride = [Int](repeating: 1, count: rank)  // Fortran strides in elements
        for k in 1..<rank { fStride[k] = fStride[k - 1] * shape[k - 1] }
        var out = [Float](repeating: 0, count: values.count)
        var index = [Int](repeating: 0, count: rank)
        var src = 0
        for i in 0..<values.count {
            out[i] = values[src]
            // Advance the row-major multi-index, keeping `src` the matching Fortran offset.
            var k = rank - 1
            while k >= 0 {
                index[k] += 1
                src += fStride[k]
                if index[k] < shape[k] { break }
                src -= fStride[k] * shape[k]
                index[k] = 0
                k -= 1
            }
        }
        return out
    }

    // MARK: Writing

    /// `.npy` bytes of a Float32 tensor (`<f4`, C order).
    public static func encode(_ tensor: Tensor) -> [UInt8] {
        encode(descr: "<f4", shape: tensor.shape, payload: float32LEBytes(tensor.data))
    }

    /// `.npy` bytes of integer labels as `<i8` with the given shape (default: 1-D).
    public static func encode(int64 values: [Int], shape: [Int]? = nil) -> [UInt8] {
        var payload = [UInt8]()
        payload.reserveCapacity(values.count * 8)
        for v in values { payload.appendLE(Int64(v)) }
        return encode(descr: "<i8", shape: shape ?? [values.count], payload: payload)
    }

    /// `.npy` bytes of unsigned bytes as `|u1` with the given shape (default: 1-D).
    public static func encode(uint8 values: [UInt8], shape: [Int]? = nil) -> [UInt8] {
        encode(descr: "|u1", shape: shape ?? [values.count], payload: values)
    }

    public static func write(_ tensor: Tensor, to path: String) throws {
        try AtomicFile.write(encode(tensor), to: path)
    }

    static func encode(descr: String, shape: [Int], payload: [UInt8]) -> [UInt8] {
        precondition(shape.reduce(1, *) * ElementType(descr: descr)!.size == payload.count, "payload does not match shape")
        return header(descr: descr, shape: shape) + payload
    }

    /// The bytes before the data of a float32 array of `shape` (C order): a writer that fills the
    /// data in parts (ranks of a distributed run) puts them after it.
    public static func float32Header(shape: [Int]) -> [UInt8] { header(descr: "<f4", shape: shape) }

    static func header(descr: String, shape: [Int]) -> [UInt8] {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        // Like NumPy: room for the first dimension to grow in place to 21 digits.
        if let first = shape.first { header += String(repeating: " ", count: max(0, 21 - String(first).utf8.count)) }
        var headerBytes = Array(header.utf8)
        // Version 1.0 has a 16-bit header length; NumPy switches to 2.0 only when it overflows.
        let major: UInt8 = headerBytes.count + 1 + 64 > 65535 ? 2 : 1
        let prefix = major == 1 ? 10 : 12
        let padding = 64 - (prefix + headerBytes.count + 1) % 64
        headerBytes += [UInt8](repeating: 0x20, count: padding) + [0x0a]
        var out = magic + [major, 0]
        if major == 1 { out.appendLE(UInt16(headerBytes.count)) } else { out.appendLE(UInt32(headerBytes.count)) }
        return out + headerBytes
    }
}

extension ElementType {
    /// The element type of a NumPy type string such as `<f4`, `|u1`, `>i8`.
    init?(descr: String) {
        var code = Substring(descr)
        if let first = code.first, "<>|=".contains(first) { code = code.dropFirst() }
        switch code {
        case "b1", "?": self = .bool
        case "i1": self = .int8
        case "u1": self = .uint8
        case "i2": self = .int16
        case "u2": self = .uint16
        case "i4": self = .int32
        case "u4": self = .uint32
        case "i8": self = .int64
        case "u8": self = .uint64
        case "f2": self = .float16
        case "f4": self = .float32
        case "f8": self = .float64
        default: return nil
        }
    }
}

/// The three fields of a `.npy` header.
struct NpyHeader {
    var descr: String
    var type: ElementType
    var bigEndian: Bool
    var fortranOrder: Bool
    var shape: [Int]

    init(parsing text: String) throws {
        var parser = PythonLiteralParser(text)
        let value: PythonLiteral?
        do { value = try parser.parseValue() } catch let f as PythonLiteralParser.Failure where f.tooDeep {
            throw UnrollIOError(.malformed, ".npy header nests brackets deeper than \(PythonLiteralParser.maxDepth) levels")
        } catch { value = nil }
        guard case .dict(let entries)? = value else {
            throw UnrollIOError(.malformed, ".npy header is not a Python dict literal: \(text.prefix(120))")
        }
        func field(_ key: String) throws -> PythonLiteral {
            guard let v = entries.first(where: { $0.0 == key })?.1 else {
                throw UnrollIOError(.malformed, ".npy header lacks '\(key)'")
            }
            return v
        }
        switch try field("descr") {
        case .string(let s):
            descr = s
        default:
            throw UnrollIOError(.unsupported, ".npy structured or record dtypes are not supported (descr must be a string like '<f4')")
        }
        guard let t = ElementType(descr: descr) else {
            throw UnrollIOError(.unsupported,
                ".npy dtype '\(descr)' (supported: bool, int8…int64, uint8…uint64, float16/32/64)")
        }
        type = t
        bigEndian = descr.hasPrefix(">")
        guard case .bool(let f) = try field("fortran_order") else {
            throw UnrollIOError(.malformed, ".npy header 'fortran_order' must be True or False")
        }
        fortranOrder = f
        guard case .tuple(let dims) = try field("shape") else {
            throw UnrollIOError(.malformed, ".npy header 'shape' must be a tuple")
        }
        shape = try dims.map {
            guard case .int(let d) = $0 else { throw UnrollIOError(.malformed, ".npy header 'shape' must hold integers") }
            guard d >= 0 else { throw UnrollIOError(.malformed, ".npy header has a negative dimension \(d)") }
            return d
        }
    }
}

/// The small subset of Python literals that `.npy` headers use.
indirect enum PythonLiteral: Equatable {
    case string(String), int(Int), bool(Bool), none
    case tuple([PythonLiteral]), list([PythonLiteral]), dict([(String, PythonLiteral)])

    static func == (a: PythonLiteral, b: PythonLiteral) -> Bool { String(describing: a) == String(describing: b) }
}

struct PythonLiteralParser {
    struct Failure: Error { var tooDeep = false }
    /// Deeper nesting is refused before it can exhaust the stack (a header needs 2 levels).
    static let maxDepth = 32
    let chars: [Character]
    var i = 0
    var depth = 0

    init(_ text: String) { chars = Array(text) }

    mutating func skipSpace() { while i < chars.count, chars[i].isWhitespace { i += 1 } }

    mutating func expect(_ c: Character) throws {
        skipSpace()
        guard i < chars.count, chars[i] == c else { throw Failure() }
        i += 1
    }

    mutating func parseValue() throws -> PythonLiteral {
        skipSpace()
        guard i < chars.count else { throw Failure() }
        let container = "([{".contains(chars[i])
        if container {
            depth += 1
            guard depth <= Self.maxDepth else { throw Failure(tooDeep: true) }
        }
        defer { if container { depth -= 1 } }
        switch chars[i] {
        case "'", "\"":
            return .string(try parseString())
        case "(":
            return .tuple(try parseSequence(close: ")"))
        case "[":
            return .list(try parseSequence(close: "]"))
        case "{":
            i += 1
            var entries: [(String, PythonLiteral)] = []
            while true {
                skipSpace()
                if i < chars.count, chars[i] == "}" { i += 1; return .dict(entries) }
                guard case .string(let key) = try parseValue() else { throw Failure() }
                try expect(":")
                entries.append((key, try parseValue()))
                skipSpace()
                if i < chars.count, chars[i] == "," { i += 1 } else { try expect("}"); return .dict(entries) }
            }
        default:
            var word = ""
            while i < chars.count, chars[i].isLetter || chars[i].isNumber || chars[i] == "-" || chars[i] == "_" {
                word.append(chars[i]); i += 1
            }
            switch word {
            case "True": return .bool(true)
            case "False": return .bool(false)
            case "None": return .none
            default:
                // Python 2 era files may write longs as `3L`.
                guard let v = Int(word.hasSuffix("L") ? String(word.dropLast()) : word) else { throw Failure() }
                return .int(v)
            }
        }
    }

    mutating func parseString() throws -> String {
        let quote = chars[i]
        i += 1
        var s = ""
        while i < chars.count, chars[i] != quote {
            if chars[i] == "\\", i + 1 < chars.count { i += 1 }
            s.append(chars[i]); i += 1
        }
        guard i < chars.count else { throw Failure() }
        i += 1
        return s
    }

    mutating func parseSequence(close: Character) throws -> [PythonLiteral] {
        i += 1
        var items: [PythonLiteral] = []
        while true {
            skipSpace()
            if i < chars.count, chars[i] == close { i += 1; return items }
            items.append(try parseValue())
            skipSpace()
            if i < chars.count, chars[i] == "," { i += 1 } else { try expect(close); return items }
        }
    }
}
