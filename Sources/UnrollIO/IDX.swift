import Foundation
import UnrollCore

/// The IDX format of MNIST and Fashion-MNIST: bytes 0 0, a type code, the number of dimensions,
/// each dimension as a big-endian u32, then the big-endian elements. Read raw or gzipped (by magic).
/// Values keep their scale: u8 pixels come out as 0…255, not divided.
public enum IDX {
    static let types: [UInt8: ElementType] = [0x08: .uint8, 0x09: .int8, 0x0B: .int16, 0x0C: .int32, 0x0D: .float32, 0x0E: .float64]

    public static func read(_ path: String) throws -> NDArray {
        let bytes = try FileBytes.readMaybeGzip(path)
        return try naming(path) { try decode(bytes) }
    }

    /// A 1-D IDX file of integer class labels.
    public static func readLabels(_ path: String) throws -> [Int] {
        let a = try read(path)
        guard a.shape.count == 1 else {
            throw UnrollIOError(.malformed, file: path, "labels must be 1-D, the file holds shape \(a.shape)")
        }
        return a.tensor.data.map { Int($0) }
    }

    public static func decode(_ bytes: [UInt8]) throws -> NDArray {
        guard bytes.count >= 4, bytes[0] == 0, bytes[1] == 0 else {
            throw UnrollIOError(.badMagic, "not an IDX file (magic must start with two zero bytes)")
        }
        guard let type = types[bytes[2]] else {
            throw UnrollIOError(.unsupported, "IDX type code 0x\(String(bytes[2], radix: 16)) (known: 08 u8, 09 i8, 0B i16, 0C i32, 0D f32, 0E f64)")
        }
        let rank = Int(bytes[3])
        var r = ByteReader(bytes, offset: 4)
        var shape: [Int] = []
        for k in 0..<rank { shape.append(Int(try r.be(UInt32.self, "IDX dimension \(k)"))) }
        let count = try elementCount(shape, "IDX shape")
        let size = try byteCount(count, type.size, "IDX data")
        guard r.remaining == size else {
            throw UnrollIOError(r.remaining < size ? .truncated : .malformed,
                "IDX header promises shape \(shape) of \(type.numpyName) (\(size) bytes) but the file has \(r.remaining) bytes of data")
        }
        let values = try decodeElements(bytes, offset: r.offset, count: count, type: type, bigEndian: true)
        return NDArray(dtype: type.numpyName, tensor: Tensor(shape: shape, data: values))
    }

    /// IDX bytes (u8) of the given shape; for writing small test files and label files.
    public static func encode(uint8 values: [UInt8], shape: [Int]) -> [UInt8] {
        precondition(shape.reduce(1, *) == values.count && shape.count < 256, "IDX shape does not match the values")
        var out: [UInt8] = [0, 0, 0x08, UInt8(shape.count)]
        for d in shape { out.appendBE(UInt32(d)) }
        return out + values
    }
}
