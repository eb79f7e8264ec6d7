import Foundation
import UnrollCore

/// The rows of a float32 `.npy` file (little-endian, C order), mapped read-only into memory instead
/// of read: the pages a process touches come from the page cache, which every process on the machine
/// shares. `Npy.mapRows` makes one.
public final class MappedRows: RowSource, @unchecked Sendable {
    public let shape: [Int]
    private let mapping: UnsafeMutableRawPointer
    private let length: Int
    private let values: UnsafePointer<Float>

    init(path: String, dataOffset: Int, shape: [Int], fileSize: Int) throws {
        try MemoryBudget.check(fileSize, for: "its \(fileSize) bytes (mapped)", file: path)
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw UnrollIOError(.unreadable, file: path, "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard let p = mmap(nil, fileSize, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw UnrollIOError(.unreadable, file: path, "cannot map \(fileSize) bytes: \(String(cString: strerror(errno)))")
        }
        mapping = p
        length = fileSize
        values = UnsafeRawPointer(p + dataOffset).assumingMemoryBound(to: Float.self)
        self.shape = shape
    }

    deinit { munmap(mapping, length) }

    private var buffer: UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: values, count: shape.reduce(1, *)) }

    public func gatherRows(_ indices: [Int]) -> Tensor {
        let c = valuesPerRow, n = rowCount
        var out = [Float](repeating: 0, count: indices.count * c)
        out.withUnsafeMutableBufferPointer { dst in
            for (k, i) in indices.enumerated() {
                precondition(i >= 0 && i < n, "row \(i) out of 0..<\(n)")
                (dst.baseAddress! + k * c).update(from: values + i * c, count: c)
            }
        }
        var s = shape
        s[0] = indices.count
        return Tensor(shape: s, data: out)
    }

    public func rows(_ range: Range<Int>) -> Tensor { gatherRows(Array(range)) }

    public var hasNonFinite: Bool { firstNonFinite != nil }

    /// The index (row-major) of the first NaN or infinity.
    public var firstNonFinite: Int? { buffer.firstIndex { !$0.isFinite } }
}

extension Npy {
    /// The rows of `path` mapped into memory when it is a plain float32 `.npy` (little-endian, C order,
    /// rank ≥ 1, its size exactly what the header says), higher ranks flattened to rows; nil for any
    /// other `.npy`, which is read.
    public static func mapRows(_ path: String) throws -> MappedRows? {
        guard Int(littleEndian: 1) == 1 else { return nil }
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        let prefix = [UInt8]((try? handle.read(upToCount: 1 << 16)) ?? Data())
        guard let (header, offset) = try? parseHeader(prefix), header.type == .float32, !header.bigEndian,
              !header.fortranOrder || header.shape.count <= 1, !header.shape.isEmpty, offset % 4 == 0 else { return nil }
        let size = try byteCount(try elementCount(header.shape, ".npy shape"), 4, ".npy data")
        let fileSize = Int((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)??.intValue ?? -1)
        guard fileSize == offset + size else { return nil }   // a lying size: read() names the problem
        // Samples as rows: [n, h, w] stacks are rows of h·w values.
        let rows = header.shape.count == 1 ? header.shape : [header.shape[0], header.shape.dropFirst().reduce(1, *)]
        return try MappedRows(path: path, dataOffset: offset, shape: rows, fileSize: fileSize)
    }
}
