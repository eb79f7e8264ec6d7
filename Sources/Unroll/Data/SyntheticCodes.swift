import UnrollCore

/// Codes with exactly `perRow` stored entries per row (the ground-truth codes of synthetic data):
/// row i's column indices are `indices[i*perRow ..< (i+1)*perRow]` (ascending) and its values are
/// the same slice of `values`. Compact (n·s numbers instead of n·p); `dense` builds a `[rows, p]` tensor.
public struct SyntheticCodes: Equatable, Sendable {
    public let rows: Int
    public let cols: Int
    public let perRow: Int
    public var indices: [Int]
    public var values: [Float]

    public init(rows: Int, cols: Int, perRow: Int, indices: [Int], values: [Float]) {
        precondition(indices.count == rows * perRow && values.count == rows * perRow,
                     "codes need \(rows * perRow) indices and values")
        precondition(indices.allSatisfy { $0 >= 0 && $0 < cols }, "code index out of 0..<\(cols)")
        self.rows = rows
        self.cols = cols
        self.perRow = perRow
        self.indices = indices
        self.values = values
    }

    /// Column indices of the stored entries of row `i` (ascending).
    public func support(ofRow i: Int) -> ArraySlice<Int> { indices[(i * perRow)..<((i + 1) * perRow)] }

    /// All rows as a dense `[rows, cols]` tensor.
    public func dense() -> Tensor { dense(rows: 0..<rows) }

    /// Rows `range` as a dense `[range.count, cols]` tensor.
    public func dense(rows range: Range<Int>) -> Tensor { dense(gathering: Array(range)) }

    /// The given rows, in order, as a dense `[rowIndices.count, cols]` tensor.
    public func dense(gathering rowIndices: [Int]) -> Tensor {
        var out = Tensor(zeros: [rowIndices.count, cols])
        let (s, c) = (perRow, cols)
        out.data.withUnsafeMutableBufferPointer { o in
            for (r, i) in rowIndices.enumerated() {
                precondition(i >= 0 && i < rows, "code row \(i) out of 0..<\(rows)")
                for k in 0..<s { o[r * c + indices[i * s + k]] += values[i * s + k] }
            }
        }
        return out
    }

    /// codes · W for a `[cols, m]` matrix W (rows of W are atoms), using the sparsity: n·s·m work.
    public func times(_ w: Tensor) -> Tensor {
        precondition(w.rank == 2 && w.shape[0] == cols, "codes [\(rows), \(cols)] · \(w.shape)")
        let m = w.shape[1], s = perRow
        var out = Tensor(zeros: [rows, m])
        indices.withUnsafeBufferPointer { idx in
            values.withUnsafeBufferPointer { val in
                w.data.withUnsafeBufferPointer { wp in
                    out.data.withUnsafeMutableBufferPointer { op in
                        let o = op.baseAddress!, wb = wp.baseAddress!
                        Parallel.forEachChunk(rows, minPerPart: max(1, 65_536 / max(1, s * m))) { range in
                            for i in range {
                                let row = o + i * m
                                for k in 0..<s {
                                    let a = val[i * s + k], atom = wb + idx[i * s + k] * m
                                    for j in 0..<m { row[j] += a * atom[j] }
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}
