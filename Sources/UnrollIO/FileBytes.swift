import Foundation
#if canImport(Glibc)
import Glibc
private let systemRead = Glibc.read
#elseif canImport(Darwin)
import Darwin
private let systemRead = Darwin.read
#endif

/// Reading whole files into memory, with errors that say why a file could not be read.
public enum FileBytes {
    public static func read(_ path: String) throws -> [UInt8] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw UnrollIOError(.notFound, file: path, "no such file")
        }
        if isDirectory.boolValue { throw UnrollIOError(.unreadable, file: path, "is a directory, expected a file") }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw UnrollIOError(.unreadable, file: path, "permission denied")
        }
        // One allocation of the file's size, filled by read(2) (no intermediate Data copy), after
        // checking that it fits.
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw UnrollIOError(.unreadable, file: path, "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw UnrollIOError(.unreadable, file: path, "cannot stat: \(String(cString: strerror(errno)))") }
        let size = Int(info.st_size)
        try MemoryBudget.check(size, for: "its \(size) bytes", file: path)
        var failure: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            count = 0
            while count < size {
                let n = systemRead(fd, buffer.baseAddress! + count, size - count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { failure = n < 0 ? errno : EIO; break }
                count += n
            }
        }
        guard failure == 0, bytes.count == size else {
            throw UnrollIOError(.unreadable, file: path, "cannot read: \(failure == 0 ? "the file shrank while being read" : String(cString: strerror(failure)))")
        }
        return bytes
    }

    /// The file's bytes, gunzipped when they start with the gzip magic (1f 8b), at most `limit` bytes.
    public static func readMaybeGzip(_ path: String, limit: Int = DecodeLimit.bytes) throws -> [UInt8] {
        let raw = try read(path)
        guard Zlib.isGzip(raw) else { return raw }
        return try naming(path) {
            do { return try Zlib.gunzip(raw, limit: limit) } catch let e as UnrollIOError where e.kind == .corrupt && e.detail.contains("more than the expected") {
                throw UnrollIOError(.unsupported, "gzip data decode to more than the limit of \(limit) bytes (raise it with \(DecodeLimit.environmentVariable))")
            }
        }
    }
}

/// Bounds-checked reading of little- and big-endian fields from a byte array.
/// Running past the end throws `.truncated` naming `what` is being read.
struct ByteReader {
    let bytes: [UInt8]
    var offset: Int

    init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    var remaining: Int { bytes.count - offset }

    func need(_ n: Int, _ what: String) throws {
        guard n >= 0, n <= remaining else {
            throw UnrollIOError(.truncated,
                "file ends inside \(what) (needs \(n) bytes at offset \(offset), \(Swift.max(remaining, 0)) left)")
        }
    }

    mutating func bytes(_ n: Int, _ what: String) throws -> ArraySlice<UInt8> {
        try need(n, what)
        defer { offset += n }
        return bytes[offset..<(offset + n)]
    }

    mutating func skip(_ n: Int, _ what: String) throws {
        try need(n, what)
        offset += n
    }

    mutating func u8(_ what: String) throws -> UInt8 {
        try need(1, what)
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func le<T: FixedWidthInteger & UnsignedInteger>(_ type: T.Type, _ what: String) throws -> T {
        let v = try peekLE(type, at: offset, what)
        offset += MemoryLayout<T>.size
        return v
    }

    mutating func be<T: FixedWidthInteger & UnsignedInteger>(_ type: T.Type, _ what: String) throws -> T {
        let n = MemoryLayout<T>.size
        try need(n, what)
        var v: T = 0
        for k in 0..<n { v = (v << 8) | T(bytes[offset + k]) }
        offset += n
        return v
    }

    func peekLE<T: FixedWidthInteger & UnsignedInteger>(_ type: T.Type, at position: Int, _ what: String) throws -> T {
        let n = MemoryLayout<T>.size
        guard position >= 0, position <= bytes.count - n else {
            throw UnrollIOError(.truncated, "file ends inside \(what) (needs \(n) bytes at offset \(position))")
        }
        var v: T = 0
        for k in (0..<n).reversed() { v = (v << 8) | T(bytes[position + k]) }
        return v
    }
}

/// Appending little- and big-endian fields to a byte array (for writers).
extension Array where Element == UInt8 {
    mutating func appendLE<T: FixedWidthInteger>(_ v: T) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }

    mutating func appendBE<T: FixedWidthInteger>(_ v: T) {
        Swift.withUnsafeBytes(of: v.bigEndian) { append(contentsOf: $0) }
    }
}

/// The number of elements of `shape`, or an error if a dimension is negative or the product overflows.
func elementCount(_ shape: [Int], _ what: String) throws -> Int {
    var n = 1
    for d in shape {
        guard d >= 0 else { throw UnrollIOError(.malformed, "\(what): negative dimension in shape \(shape)") }
        let (p, overflow) = n.multipliedReportingOverflow(by: d)
        guard !overflow else { throw UnrollIOError(.malformed, "\(what): shape \(shape) overflows the element count") }
        n = p
    }
    return n
}

/// `count * size` in bytes, or an error on overflow.
func byteCount(_ count: Int, _ size: Int, _ what: String) throws -> Int {
    let (p, overflow) = count.multipliedReportingOverflow(by: size)
    guard !overflow else { throw UnrollIOError(.malformed, "\(what): byte size overflows (\(count) × \(size))") }
    return p
}

/// `0x1234abcd`-style text of a 32-bit checksum (for error messages).
func hex32(_ v: UInt32) -> String {
    let digits = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
}
