import CZlib
import Foundation

/// Thin wrappers over zlib: inflate and deflate in the three framings, and CRC-32.
public enum Zlib {
    public enum Format: Sendable {
        /// Bare deflate data (inside zip entries).
        case raw
        /// zlib header and Adler-32 trailer (PNG's IDAT stream).
        case zlib
        /// gzip header and CRC-32 trailer (`.gz` files). Inflating accepts zlib too.
        case gzip

        var inflateWindowBits: Int32 {
            switch self {
            case .raw: return -15
            case .zlib: return 15
            case .gzip: return 15 + 32  // auto-detect gzip or zlib header
            }
        }

        var deflateWindowBits: Int32 {
            switch self {
            case .raw: return -15
            case .zlib: return 15
            case .gzip: return 15 + 16
            }
        }
    }

    /// Whether `bytes` start with the gzip magic number.
    public static func isGzip<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        var it = bytes.makeIterator()
        return it.next() == 0x1f && it.next() == 0x8b
    }

    // MARK: CRC-32

    public static func crc32<C: ContiguousBytes>(_ bytes: C, initial: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { crc32(raw: $0, initial: initial) }
    }

    public static func crc32(raw: UnsafeRawBufferPointer, initial: UInt32 = 0) -> UInt32 {
        var crc = uLong(initial)
        guard var p = raw.baseAddress?.assumingMemoryBound(to: Bytef.self) else { return initial }
        var left = raw.count
        while left > 0 {
            let n = Swift.min(left, 1 << 30)
            crc = CZlib.crc32(crc, p, uInt(n))
            p += n
            left -= n
        }
        return UInt32(truncatingIfNeeded: crc)
    }

    // MARK: Inflate

    /// Decompresses `input`. `sizeHint` is the expected output size (allocation only);
    /// more than `limit` bytes of output is an error (guards against a header lying about a size).
    public static func inflate<C: ContiguousBytes>(_ input: C, format: Format, sizeHint: Int = 0,
                                                    limit: Int = Int.max) throws -> [UInt8] {
        try input.withUnsafeBytes { try inflate(raw: $0, format: format, sizeHint: sizeHint, limit: limit) }
    }

    public static func gunzip<C: ContiguousBytes>(_ input: C, limit: Int = Int.max) throws -> [UInt8] {
        try input.withUnsafeBytes { raw -> [UInt8] in
            // The gzip trailer's last 4 bytes hold the uncompressed size mod 2^32: a good first guess.
            var hint = 0
            if raw.count >= 18 {
                hint = (0..<4).reduce(0) { $0 | Int(raw[raw.count - 4 + $1]) << (8 * $1) }
            }
            return try inflate(raw: raw, format: .gzip, sizeHint: Swift.min(hint, limit), limit: limit)
        }
    }

    static func inflate(raw input: UnsafeRawBufferPointer, format: Format, sizeHint: Int, limit: Int) throws -> [UInt8] {
        var stream = z_stream()
        var rc = inflateInit2_(&stream, format.inflateWindowBits, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else { throw UnrollIOError(.corrupt, "zlib inflateInit2 failed (code \(rc))") }
        defer { inflateEnd(&stream) }

        // Deflate cannot compress better than about 1032:1, so a larger hint is a lie: do not trust it.
        let plausible = input.count > (Int.max - 1024) / 1032 ? Int.max : input.count * 1032 + 1024
        // One byte beyond the limit is room enough to notice a stream that exceeds it.
        let capacity = limit == Int.max ? Int.max : limit + 1
        var out = [UInt8](repeating: 0, count: Swift.min(capacity, Swift.max(64, Swift.min(sizeHint, plausible))))
        var produced = 0
        let base = input.baseAddress?.assumingMemoryBound(to: Bytef.self)
        var consumed = 0  // input bytes handed to zlib so far
        var fedTotal = 0

        func truncatedError() -> UnrollIOError {
            UnrollIOError(.corrupt, "compressed stream ends early (truncated after \(produced) bytes of output)")
        }

        while true {
            if stream.avail_in == 0 && fedTotal < input.count {
                let n = Swift.min(input.count - fedTotal, 1 << 30)
                stream.next_in = UnsafeMutablePointer(mutating: base! + fedTotal)
                stream.avail_in = uInt(n)
                fedTotal += n
            }
            if produced == out.count {
                let grown = out.count > capacity - out.count ? capacity : 2 * out.count
                out.append(contentsOf: repeatElement(0, count: grown - out.count))
            }
            let roomBefore = Swift.min(out.count - produced, 1 << 30)
            rc = out.withUnsafeMutableBytes { o -> Int32 in
                stream.next_out = o.baseAddress!.assumingMemoryBound(to: Bytef.self) + produced
                stream.avail_out = uInt(roomBefore)
                return CZlib.inflate(&stream, Z_NO_FLUSH)
            }
            produced += roomBefore - Int(stream.avail_out)
            consumed = fedTotal - Int(stream.avail_in)
            if produced > limit {
                throw UnrollIOError(.corrupt, "compressed stream inflates to more than the expected \(limit) bytes")
            }

            switch rc {
            case Z_OK:
                continue
            case Z_STREAM_END:
                // gzip allows several members back to back (`cat a.gz b.gz`).
                let rest = input.count - consumed
                if format == .gzip, rest >= 2, input[consumed] == 0x1f, input[consumed + 1] == 0x8b {
                    guard inflateReset(&stream) == Z_OK else { throw UnrollIOError(.corrupt, "zlib inflateReset failed") }
                    continue
                }
                out.removeSubrange(produced...)
                return out
            case Z_BUF_ERROR:
                // No progress possible: either the output is full (grow and go on) or the input ran out.
                if stream.avail_out == 0 { continue }
                if stream.avail_in == 0 && fedTotal == input.count { throw truncatedError() }
                continue
            default:
                let msg = stream.msg.map { String(cString: $0) } ?? "error code \(rc)"
                throw UnrollIOError(.corrupt, "corrupt compressed stream: \(msg)")
            }
        }
    }

    // MARK: Deflate

    /// Compresses `input` (level 0…9, 6 is zlib's default).
    public static func deflate<C: ContiguousBytes>(_ input: C, format: Format, level: Int32 = 6) -> [UInt8] {
        input.withUnsafeBytes { deflate(raw: $0, format: format, level: level) }
    }

    static func deflate(raw input: UnsafeRawBufferPointer, format: Format, level: Int32) -> [UInt8] {
        var stream = z_stream()
        let rc = deflateInit2_(&stream, level, Z_DEFLATED, format.deflateWindowBits, 8, Z_DEFAULT_STRATEGY,
                               zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        precondition(rc == Z_OK, "zlib deflateInit2 failed (code \(rc))")  // only fails on bad arguments or no memory
        defer { deflateEnd(&stream) }

        let bound = input.count < (1 << 30) ? Int(deflateBound(&stream, uLong(input.count))) : input.count / 2
        var out = [UInt8](repeating: 0, count: Swift.max(bound, 64))
        var produced = 0
        var fedTotal = 0
        let base = input.baseAddress?.assumingMemoryBound(to: Bytef.self)
        while true {
            if stream.avail_in == 0 && fedTotal < input.count {
                let n = Swift.min(input.count - fedTotal, 1 << 30)
                stream.next_in = UnsafeMutablePointer(mutating: base! + fedTotal)
                stream.avail_in = uInt(n)
                fedTotal += n
            }
            if produced == out.count { out.append(contentsOf: repeatElement(0, count: out.count)) }
            let room = Swift.min(out.count - produced, 1 << 30)
            let flush = fedTotal == input.count ? Z_FINISH : Z_NO_FLUSH
            let r = out.withUnsafeMutableBytes { o -> Int32 in
                stream.next_out = o.baseAddress!.assumingMemoryBound(to: Bytef.self) + produced
                stream.avail_out = uInt(room)
                return CZlib.deflate(&stream, flush)
            }
            produced += room - Int(stream.avail_out)
            if r == Z_STREAM_END { break }
            precondition(r == Z_OK || r == Z_BUF_ERROR, "zlib deflate failed (code \(r))")
        }
        out.removeSubrange(produced...)
        return out
    }

    public static func gzip<C: ContiguousBytes>(_ input: C, level: Int32 = 6) -> [UInt8] {
        deflate(input, format: .gzip, level: level)
    }
}
