import Foundation

/// A dense Float32 tensor in row-major order.
///
/// Storage is a Swift array, so copies are cheap and copy-on-write: a tensor is a value.
/// A matrix is a rank-2 tensor `[rows, cols]`; sample matrices hold one sample per row.
/// Shape mismatches passed to kernels are programming errors and trap; input that comes
/// from users is validated (with thrown errors) before it reaches the kernels.
public struct Tensor: Equatable, Sendable {
    public private(set) var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        precondition(shape.reduce(1, *) == data.count,
                     "shape \(shape) needs \(shape.reduce(1, *)) elements, got \(data.count)")
        self.shape = shape
        self.data = data
    }

    public init(zeros shape: [Int]) {
        self.init(repeating: 0, shape: shape)
    }

    public init(repeating value: Float, shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.data = [Float](repeating: value, count: shape.reduce(1, *))
    }

    /// A matrix from nested rows (tests and small literals).
    public init(rows: [[Float]]) {
        let cols = rows.first?.count ?? 0
        precondition(rows.allSatisfy { $0.count == cols }, "ragged rows")
        self.init(shape: [rows.count, cols], data: rows.flatMap { $0 })
    }

    public var count: Int { data.count }
    public var rank: Int { shape.count }
    /// First dimension (rows of a matrix).
    public var rows: Int { shape.first ?? 1 }
    /// Elements per row: the product of all dimensions after the first.
    public var cols: Int { shape.count <= 1 ? (shape.first ?? 1) : shape.dropFirst().reduce(1, *) }

    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, data: data)
    }

    public subscript(i: Int, j: Int) -> Float {
        get { data[i * shape[1] + j] }
        set { data[i * shape[1] + j] = newValue }
    }

    /// Rows `range` of the tensor viewed as `[rows, cols]` (a copy; keeps trailing dimensions).
    public func rows(_ range: Range<Int>) -> Tensor {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows, "rows \(range) out of 0..<\(rows)")
        let c = cols
        var s = shape
        if s.isEmpty { s = [1] }
        s[0] = range.count
        return Tensor(shape: s, data: Array(data[(range.lowerBound * c)..<(range.upperBound * c)]))
    }

    /// The rows at `indices`, in that order (mini-batches from shuffled indices).
    public func gatherRows(_ indices: [Int]) -> Tensor {
        let c = cols
        var out = [Float](repeating: 0, count: indices.count * c)
        data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for (k, i) in indices.enumerated() {
                    precondition(i >= 0 && i < rows, "row \(i) out of 0..<\(rows)")
                    (dst.baseAddress! + k * c).update(from: src.baseAddress! + i * c, count: c)
                }
            }
        }
        var s = shape
        s[0] = indices.count
        return Tensor(shape: s, data: out)
    }

    /// Transpose of a matrix.
    public func transposed() -> Tensor {
        precondition(rank == 2, "transposed() needs a matrix, got shape \(shape)")
        let (r, c) = (shape[0], shape[1])
        var out = [Float](repeating: 0, count: count)
        data.withUnsafeBufferPointer { a in
            out.withUnsafeMutableBufferPointer { b in
                // Blocked so both sides stay in cache.
                let bs = 32
                for i0 in stride(from: 0, to: r, by: bs) {
                    for j0 in stride(from: 0, to: c, by: bs) {
                        for i in i0..<Swift.min(i0 + bs, r) {
                            for j in j0..<Swift.min(j0 + bs, c) { b[j * r + i] = a[i * c + j] }
                        }
                    }
                }
            }
        }
        return Tensor(shape: [c, r], data: out)
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let preview = data.prefix(8).map { String(format: "%.4g", $0) }.joined(separator: ", ")
        return "Tensor(\(shape), [\(preview)\(count > 8 ? ", …" : "")])"
    }
}

extension Array where Element == Float {
    /// Arrays of `counts` floats that `body` writes in place through one buffer each. They start
    /// uninitialised, which spares a pass that zeroes them: `body` must write every element.
    public static func written(counts: [Int], _ body: ([UnsafeMutableBufferPointer<Float>]) -> Void) -> [[Float]] {
        func nested(_ i: Int, _ buffers: [UnsafeMutableBufferPointer<Float>]) -> [[Float]] {
            guard i < counts.count else {
                body(buffers)
                return []
            }
            var rest: [[Float]] = []
            let first = [Float](unsafeUninitializedCapacity: counts[i]) { buffer, initialized in
                rest = nested(i + 1, buffers + [buffer])
                initialized = counts[i]
            }
            return [first] + rest
        }
        return nested(0, [])
    }
}
