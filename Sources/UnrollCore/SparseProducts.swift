/// Products with mostly-zero code matrices. After the first unrolled layers only a few per cent of the
/// codes are non-zero, so Z·W and Zᵀ·R cost O(nnz·m) here instead of the dense O(B·p·m).
///
/// Two forms: `Tensor` methods that take the codes in dense storage (and skip the zeros as they scan),
/// and `SparseMatrix`, the codes compressed by rows (CSR), for when the same support is used more than once.

/// A matrix in compressed sparse rows: the non-zeros of row `i` are `values[rowStart[i]..<rowStart[i+1]]`
/// at columns `colIndex[…]` (increasing within a row).
public struct SparseMatrix: Equatable, Sendable {
    public private(set) var rows: Int
    public private(set) var cols: Int
    public private(set) var rowStart: [Int]
    public private(set) var colIndex: [Int]
    public var values: [Float]

    public init(rows: Int, cols: Int, rowStart: [Int], colIndex: [Int], values: [Float]) {
        precondition(rows >= 0 && cols >= 0 && rowStart.count == rows + 1 && rowStart.first == 0
                     && rowStart.last == values.count && colIndex.count == values.count,
                     "SparseMatrix: inconsistent CSR arrays for \(rows)×\(cols)")
        for i in 0..<rows {
            precondition(rowStart[i] <= rowStart[i + 1], "SparseMatrix: rowStart decreases at row \(i)")
            for k in rowStart[i]..<rowStart[i + 1] {
                precondition(colIndex[k] >= 0 && colIndex[k] < cols, "SparseMatrix: column \(colIndex[k]) out of 0..<\(cols)")
                precondition(k == rowStart[i] || colIndex[k - 1] < colIndex[k], "SparseMatrix: columns not increasing in row \(i)")
            }
        }
        self.rows = rows
        self.cols = cols
        self.rowStart = rowStart
        self.colIndex = colIndex
        self.values = values
    }

    /// The non-zeros of a tensor viewed as `[rows, cols]` (`Tensor.rows`, `Tensor.cols`).
    public init(dense: Tensor) {
        rows = 0
        cols = 0
        rowStart = [0]
        colIndex = []
        values = []
        update(from: dense)
    }

    /// Re-compresses `dense` into this matrix, reusing its storage.
    public mutating func update(from dense: Tensor) {
        let (r, c) = (dense.rows, dense.cols)
        rows = r
        cols = c
        rowStart.removeAll(keepingCapacity: true)
        colIndex.removeAll(keepingCapacity: true)
        values.removeAll(keepingCapacity: true)
        rowStart.append(0)
        dense.data.withUnsafeBufferPointer { z in
            for i in 0..<r {
                for j in 0..<c where z[i * c + j] != 0 {
                    colIndex.append(j)
                    values.append(z[i * c + j])
                }
                rowStart.append(values.count)
            }
        }
    }

    public var nonZeroCount: Int { values.count }
    /// Fraction of entries that are stored.
    public var density: Double { rows * cols == 0 ? 0 : Double(values.count) / Double(rows * cols) }

    /// The `[rows, cols]` dense matrix.
    public func dense() -> Tensor {
        var t = Tensor(zeros: [rows, cols])
        for i in 0..<rows {
            for k in rowStart[i]..<rowStart[i + 1] { t.data[i * cols + colIndex[k]] = values[k] }
        }
        return t
    }

    /// self · W for W `[cols, m]`: each output row is Σ_j z_j W[j, :] over the row's non-zeros.
    public func matmul(_ w: Tensor) -> Tensor {
        var out = Tensor(zeros: [])
        matmul(w, into: &out)
        return out
    }

    public func matmul(_ w: Tensor, into output: inout Tensor, accumulate: Bool = false) {
        precondition(w.rank == 2 && w.shape[0] == cols, "SparseMatrix.matmul: \(rows)×\(cols) · \(w.shape)")
        let m = w.shape[1]
        Tensor.prepare(&output, shape: [rows, m], accumulate: accumulate, "SparseMatrix.matmul")
        if rows == 0 || m == 0 { return }
        let nnz = values.count
        rowStart.withUnsafeBufferPointer { start in
            colIndex.withUnsafeBufferPointer { idx in
                values.withUnsafeBufferPointer { val in
                    w.data.withUnsafeBufferPointer { wp in
                        output.data.withUnsafeMutableBufferPointer { op in
                            let (wb, ob) = (wp.baseAddress!, op.baseAddress!)
                            Parallel.forEachChunk(rows, minPerPart: SparseKernels.rowsPerPart(rows: rows, work: nnz * m)) { range in
                                for i in range {
                                    let out = ob + i * m
                                    if !accumulate { out.update(repeating: 0, count: m) }
                                    for k in start[i]..<start[i + 1] { SparseKernels.axpy(m, val[k], wb + idx[k] * m, out) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// selfᵀ · R for R `[rows, m]`: the `[cols, m]` sum over non-zeros z_ij of z_ij · R[i, :] into row j.
    public func transposedMatmul(_ r: Tensor) -> Tensor {
        var out = Tensor(zeros: [])
        transposedMatmul(r, into: &out)
        return out
    }

    public func transposedMatmul(_ r: Tensor, into output: inout Tensor, accumulate: Bool = false) {
        precondition(r.rank == 2 && r.shape[0] == rows, "SparseMatrix.transposedMatmul: (\(rows)×\(cols))ᵀ · \(r.shape)")
        let m = r.shape[1]
        Tensor.prepare(&output, shape: [cols, m], accumulate: accumulate, "SparseMatrix.transposedMatmul")
        if !accumulate { output.data.withUnsafeMutableBufferPointer { $0.update(repeating: 0) } }
        if rows == 0 || cols == 0 || m == 0 { return }
        let (nRows, nnz) = (rows, values.count)
        rowStart.withUnsafeBufferPointer { start in
            colIndex.withUnsafeBufferPointer { idx in
                values.withUnsafeBufferPointer { val in
                    r.data.withUnsafeBufferPointer { rp in
                        output.data.withUnsafeMutableBufferPointer { op in
                            let (rb, ob) = (rp.baseAddress!, op.baseAddress!)
                            // Each worker owns a range of output rows (atoms), so no two write the same row.
                            Parallel.forEachChunk(cols, minPerPart: SparseKernels.rowsPerPart(rows: cols, work: nnz * m)) { atoms in
                                for i in 0..<nRows {
                                    for k in start[i]..<start[i + 1] where atoms.contains(idx[k]) {
                                        SparseKernels.axpy(m, val[k], rb + i * m, ob + idx[k] * m)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// (R · Wᵀ) sampled at this matrix's non-zeros, for R `[rows, m]` and W `[cols, m]`: the gradient with
    /// respect to the codes restricted to their support. Same structure as `self`, new values.
    public func sampledProduct(_ r: Tensor, _ w: Tensor) -> SparseMatrix {
        precondition(r.rank == 2 && w.rank == 2 && r.shape[0] == rows && w.shape[0] == cols && r.shape[1] == w.shape[1],
                     "SparseMatrix.sampledProduct: R \(r.shape), W \(w.shape) for a \(rows)×\(cols) pattern")
        var out = self
        let m = r.shape[1]
        if values.isEmpty || m == 0 {
            for k in out.values.indices { out.values[k] = 0 }
            return out
        }
        rowStart.withUnsafeBufferPointer { start in
            colIndex.withUnsafeBufferPointer { idx in
                r.data.withUnsafeBufferPointer { rp in
                    w.data.withUnsafeBufferPointer { wp in
                        out.values.withUnsafeMutableBufferPointer { val in
                            let (rb, wb, vb) = (rp.baseAddress!, wp.baseAddress!, val.baseAddress!)
                            Parallel.forEachChunk(rows, minPerPart: SparseKernels.rowsPerPart(rows: rows, work: values.count * m)) { range in
                                for i in range {
                                    for k in start[i]..<start[i + 1] { vb[k] = SparseKernels.dot(m, rb + i * m, wb + idx[k] * m) }
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

extension Tensor {
    /// self · W where self `[B, p]` is mostly zeros: Σ_j z_j W[j, :] over the non-zeros of each row.
    /// Equals `matmul(w)`; faster than the dense GEMM below roughly 10 % non-zeros.
    public func sparseMatmul(_ w: Tensor) -> Tensor {
        var out = Tensor(zeros: [])
        sparseMatmul(w, into: &out)
        return out
    }

    public func sparseMatmul(_ w: Tensor, into output: inout Tensor, accumulate: Bool = false) {
        precondition(rank == 2 && w.rank == 2 && shape[1] == w.shape[0], "sparseMatmul: \(shape) · \(w.shape)")
        let (b, p, m) = (shape[0], shape[1], w.shape[1])
        Tensor.prepare(&output, shape: [b, m], accumulate: accumulate, "sparseMatmul")
        if b == 0 || m == 0 { return }
        if p == 0 {
            if !accumulate { output.data.withUnsafeMutableBufferPointer { $0.update(repeating: 0) } }
            return
        }
        data.withUnsafeBufferPointer { zp in
            w.data.withUnsafeBufferPointer { wp in
                output.data.withUnsafeMutableBufferPointer { op in
                    let (zb, wb, ob) = (zp.baseAddress!, wp.baseAddress!, op.baseAddress!)
                    Parallel.forEachChunk(b, minPerPart: SparseKernels.rowsPerPart(rows: b, work: b * (p + m))) { range in
                        for i in range {
                            let z = zb + i * p, out = ob + i * m
                            if !accumulate { out.update(repeating: 0, count: m) }
                            for j in 0..<p where z[j] != 0 { SparseKernels.axpy(m, z[j], wb + j * m, out) }
                        }
                    }
                }
            }
        }
    }

    /// selfᵀ · R where self `[B, p]` is mostly zeros and R is `[B, m]`: `[p, m]`, accumulating
    /// z_ij · R[i, :] into row j over the non-zeros only (the dictionary gradient ZᵀR).
    public func sparseTransposedMatmul(_ r: Tensor) -> Tensor {
        var out = Tensor(zeros: [])
        sparseTransposedMatmul(r, into: &out)
        return out
    }

    public func sparseTransposedMatmul(_ r: Tensor, into output: inout Tensor, accumulate: Bool = false) {
        precondition(rank == 2 && r.rank == 2 && shape[0] == r.shape[0], "sparseTransposedMatmul: \(shape)ᵀ · \(r.shape)")
        let (b, p, m) = (shape[0], shape[1], r.shape[1])
        Tensor.prepare(&output, shape: [p, m], accumulate: accumulate, "sparseTransposedMatmul")
        if !accumulate { output.data.withUnsafeMutableBufferPointer { $0.update(repeating: 0) } }
        if b == 0 || p == 0 || m == 0 { return }
        data.withUnsafeBufferPointer { zp in
            r.data.withUnsafeBufferPointer { rp in
                output.data.withUnsafeMutableBufferPointer { op in
                    let (zb, rb, ob) = (zp.baseAddress!, rp.baseAddress!, op.baseAddress!)
                    // Workers own ranges of atoms (output rows): no two write the same row.
                    Parallel.forEachChunk(p, minPerPart: SparseKernels.rowsPerPart(rows: p, work: b * (p + m))) { atoms in
                        for i in 0..<b {
                            let z = zb + i * p, row = rb + i * m
                            for j in atoms where z[j] != 0 { SparseKernels.axpy(m, z[j], row, ob + j * m) }
                        }
                    }
                }
            }
        }
    }
}

enum SparseKernels {
    /// Rows per parallel part so that a part gets at least ~64k operations (else run inline).
    @inline(__always)
    static func rowsPerPart(rows: Int, work: Int) -> Int {
        work < 1 << 17 ? Swift.max(1, rows) : Swift.max(1, rows * (1 << 16) / work)
    }

    @inline(__always)
    static func axpy(_ n: Int, _ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        for t in 0..<n { y[t] += a * x[t] }
    }

    @inline(__always)
    static func dot(_ n: Int, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>) -> Float {
        // Four partial sums so the loop vectorises without reassociation flags.
        var (s0, s1, s2, s3): (Float, Float, Float, Float) = (0, 0, 0, 0)
        var t = 0
        while t + 4 <= n {
            s0 += x[t] * y[t]
            s1 += x[t + 1] * y[t + 1]
            s2 += x[t + 2] * y[t + 2]
            s3 += x[t + 3] * y[t + 3]
            t += 4
        }
        while t < n {
            s0 += x[t] * y[t]
            t += 1
        }
        return (s0 + s1) + (s2 + s3)
    }
}
