/// The element types the array formats (.npy, safetensors, IDX) can hold on disk.
/// Every one is read into Float32; `numpyName` is kept so callers can say what the file held.
public enum ElementType: String, CaseIterable, Sendable {
    case bool, int8, uint8, int16, uint16, int32, uint32, int64, uint64, float16, bfloat16, float32, float64

    public var size: Int {
        switch self {
        case .bool, .int8, .uint8: return 1
        case .int16, .uint16, .float16, .bfloat16: return 2
        case .int32, .uint32, .float32: return 4
        case .int64, .uint64, .float64: return 8
        }
    }

    /// NumPy's name for the type ("float32", "uint8", …; "bfloat16" has no NumPy name).
    public var numpyName: String { rawValue }
}

/// Converts `count` packed elements of type `type` starting at `bytes[offset]` to Float.
/// `bigEndian` selects the byte order of multi-byte elements. The caller has checked the size; this
/// checks that the float values fit in the memory the process may still take.
func decodeElements(_ bytes: [UInt8], offset: Int, count: Int, type: ElementType, bigEndian: Bool) throws -> [Float] {
    precondition(offset >= 0 && count >= 0 && offset + count * type.size <= bytes.count)
    try MemoryBudget.check(count * MemoryLayout<Float>.size, for: "the \(count) values")
    var out = [Float](repeating: 0, count: count)
    bytes.withUnsafeBytes { raw in
        let src = UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + count * type.size)])
        out.withUnsafeMutableBufferPointer { dst in
            decodeElements(src, into: dst, type: type, bigEndian: bigEndian)
        }
    }
    return out
}

private func decodeElements(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>,
                            type: ElementType, bigEndian: Bool) {
    let n = dst.count
    // One concrete loop per type: these run over whole datasets.
    func ints<T: FixedWidthInteger>(_: T.Type) {
        for i in 0..<n {
            let raw = src.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self)
            dst[i] = Float(bigEndian ? T(bigEndian: raw) : T(littleEndian: raw))
        }
    }
    switch type {
    case .bool:
        for i in 0..<n { dst[i] = src[i] != 0 ? 1 : 0 }
    case .uint8:
        for i in 0..<n { dst[i] = Float(src[i]) }
    case .int8:
        for i in 0..<n { dst[i] = Float(Int8(bitPattern: src[i])) }
    case .int16: ints(Int16.self)
    case .uint16: ints(UInt16.self)
    case .int32: ints(Int32.self)
    case .uint32: ints(UInt32.self)
    case .int64: ints(Int64.self)
    case .uint64: ints(UInt64.self)
    case .float16:
        for i in 0..<n {
            let raw = src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
            dst[i] = Float(halfBits: bigEndian ? UInt16(bigEndian: raw) : UInt16(littleEndian: raw))
        }
    case .bfloat16:
        // bfloat16 is the top half of a float32.
        for i in 0..<n {
            let raw = src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
            let bits = bigEndian ? UInt16(bigEndian: raw) : UInt16(littleEndian: raw)
            dst[i] = Float(bitPattern: UInt32(bits) << 16)
        }
    case .float32:
        for i in 0..<n {
            let raw = src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)
            dst[i] = Float(bitPattern: bigEndian ? UInt32(bigEndian: raw) : UInt32(littleEndian: raw))
        }
    case .float64:
        for i in 0..<n {
            let raw = src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)
            dst[i] = Float(Double(bitPattern: bigEndian ? UInt64(bigEndian: raw) : UInt64(littleEndian: raw)))
        }
    }
}

extension Float {
    /// IEEE 754 half precision to Float, exactly (no Float16 type needed).
    init(halfBits h: UInt16) {
        let sign = UInt32(h >> 15) << 31
        let exponent = Int(h >> 10) & 0x1f
        let mantissa = UInt32(h & 0x3ff)
        if exponent == 0x1f {  // inf / nan
            self = Float(bitPattern: sign | 0x7f80_0000 | (mantissa << 13))
        } else if exponent == 0 {  // zero / subnormal: mantissa × 2^-24
            let magnitude = Float(mantissa) * 0x1p-24
            self = sign != 0 ? -magnitude : magnitude
        } else {
            self = Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
        }
    }
}

/// Little-endian float32 bytes of `values` (the writers' payload).
func float32LEBytes(_ values: [Float]) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: values.count * 4)
    out.withUnsafeMutableBytes { dst in
        values.withUnsafeBufferPointer { src in
            for i in 0..<src.count { dst.storeBytes(of: src[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        }
    }
    return out
}
