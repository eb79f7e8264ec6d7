import Foundation
import UnrollCore

/// A decoded PGM image: `height` rows of `width` samples in 0…maxValue.
public struct PGMImage: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var maxValue: Int
    public var samples: [UInt16]

    /// Gray levels in [0, 1], shape `[height, width]`.
    public func gray() -> Tensor {
        let m = Double(maxValue)
        return Tensor(shape: [height, width], data: samples.map { Float(Double($0) / m) })
    }
}

/// Netpbm gray maps: P5 (binary; 8-bit, or 16-bit big-endian when maxval > 255) and P2 (ASCII).
/// Writes 8-bit P5.
public enum PGM {
    public static func read(_ path: String) throws -> PGMImage {
        let bytes = try FileBytes.read(path)
        return try naming(path) { try decode(bytes) }
    }

    /// The image at `path` as gray levels in [0, 1], shape `[height, width]`.
    public static func readGray(_ path: String) throws -> Tensor {
        try read(path).gray()
    }

    public static func decode(_ bytes: [UInt8]) throws -> PGMImage {
        guard bytes.count >= 2, bytes[0] == UInt8(ascii: "P"), bytes[1] == UInt8(ascii: "5") || bytes[1] == UInt8(ascii: "2") else {
            throw UnrollIOError(.badMagic, "not a PGM file (expected P5 or P2 magic)")
        }
        let binary = bytes[1] == UInt8(ascii: "5")
        var i = 2

        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0a || b == 0x0d || b == 0x0b || b == 0x0c }
        // A decimal token, skipping whitespace and `#` comments before it.
        func number(_ what: String) throws -> Int {
            while i < bytes.count {
                if isSpace(bytes[i]) { i += 1 } else if bytes[i] == UInt8(ascii: "#") {
                    while i < bytes.count, bytes[i] != 0x0a, bytes[i] != 0x0d { i += 1 }
                } else { break }
            }
            guard i < bytes.count else { throw UnrollIOError(.truncated, "PGM file ends before its \(what)") }
            var value = 0, digits = 0
            while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 {
                let (m, o1) = value.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(Int(bytes[i] - 0x30))
                guard !o1, !o2 else { throw UnrollIOError(.malformed, "PGM \(what) is too large") }
                value = s; digits += 1; i += 1
            }
            guard digits > 0 else { throw UnrollIOError(.malformed, "PGM \(what) is not a non-negative integer") }
            return value
        }

        let width = try number("width"), height = try number("height"), maxValue = try number("maxval")
        guard width > 0, height > 0 else { throw UnrollIOError(.malformed, "PGM size \(width)×\(height) is invalid") }
        guard (1...65535).contains(maxValue) else { throw UnrollIOError(.malformed, "PGM maxval \(maxValue) is not in 1…65535") }
        let count = try elementCount([height, width], "PGM")
        // The file must hold the pixels before they are allocated (a header may claim 2³¹ × 2³¹).
        let wide = maxValue > 255
        if binary {
            guard i < bytes.count, isSpace(bytes[i]) else { throw UnrollIOError(.truncated, "PGM file ends after its header") }
            i += 1  // exactly one whitespace byte before the raster
            let size = try byteCount(count, wide ? 2 : 1, "PGM")
            guard bytes.count - i >= size else {
                throw UnrollIOError(.truncated, "PGM \(width)×\(height) needs \(size) bytes of pixels, the file has \(bytes.count - i)")
            }
        } else {
            guard count <= (bytes.count - i + 1) / 2 else {   // a digit and a separator per pixel at least
                throw UnrollIOError(.truncated, "PGM \(width)×\(height) needs \(count) pixels, the file has \(bytes.count - i) bytes after its header")
            }
        }
        var samples = [UInt16](repeating: 0, count: count)
        if binary {
            for k in 0..<count {
                samples[k] = wide ? UInt16(bytes[i + 2 * k]) << 8 | UInt16(bytes[i + 2 * k + 1]) : UInt16(bytes[i + k])
            }
        } else {
            for k in 0..<count {
                let v = try number("pixel \(k)")
                guard v <= maxValue else { throw UnrollIOError(.malformed, "PGM pixel \(k) is \(v), above maxval \(maxValue)") }
                samples[k] = UInt16(v)
            }
        }
        if binary, let bad = samples.firstIndex(where: { Int($0) > maxValue }) {
            throw UnrollIOError(.malformed, "PGM pixel \(bad) is \(samples[bad]), above maxval \(maxValue)")
        }
        return PGMImage(width: width, height: height, maxValue: maxValue, samples: samples)
    }

    /// 8-bit binary PGM bytes of a `[height, width]` tensor of gray levels in [0, 1] (clamped, rounded).
    public static func encode(_ gray: Tensor) -> [UInt8] {
        precondition(gray.rank == 2, "PGM needs a [height, width] tensor, got \(gray.shape)")
        var out = Array("P5\n\(gray.shape[1]) \(gray.shape[0])\n255\n".utf8)
        out += gray.data.map { UInt8(max(0, min(255, ($0 * 255).rounded()))) }
        return out
    }

    public static func write(_ gray: Tensor, to path: String) throws {
        try AtomicFile.write(encode(gray), to: path)
    }
}
