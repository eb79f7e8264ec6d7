#if canImport(Accelerate)
import Accelerate
#elseif canImport(COpenBLAS)
import COpenBLAS
#endif

/// The single seam to the system BLAS (OpenBLAS on Linux, Accelerate on Apple platforms).
/// Matrices are row-major; `lda` etc. are row strides in elements.
public enum BLAS {
    /// OpenBLAS's own threads turned off, once, before the first call that could use them (every entry
    /// below reads this first; a Swift global is initialised exactly once, thread-safely). Our workers
    /// split the products (`sgemm`), and OpenBLAS's threaded path must never run: two threads inside it
    /// at once deadlocked in its thread server, or corrupted the heap, in the test process, where many
    /// tests call BLAS at once and none had set the count yet.
    @usableFromInline static let singleThreaded: Bool = {
        #if canImport(COpenBLAS)
        openblas_set_num_threads(1)
        #endif
        return true
    }()

    /// C = alpha·op(A)·op(B) + beta·C with op(A) m×k, op(B) k×n, C m×n.
    ///
    /// Threads: BLAS itself runs on one thread, and a product worth splitting is split here over
    /// `Parallel`'s workers, in blocks of C's rows (or of its columns when C has few rows), one BLAS
    /// call each. One pool then serves every loop: OpenBLAS's own threads spin on `sched_yield` for a
    /// while after each call, and on two cores they took a core from our workers between the products
    /// (28 % of a profile). Every entry of C is a sum of the same terms either way, but OpenBLAS's
    /// blocking follows the shape of each call, so a split product can round differently in the last
    /// bits (175×121 by 121×1156 cut at column 576: 96 columns differ): results depend on the worker
    /// count, never on the run.
    public static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        _ = singleThreaded
        // One BLAS call on rows (or columns) lo..<hi of C; op(A)'s rows are A's rows or columns, op(B)'s
        // columns B's columns or rows.
        nonisolated(unsafe) let (a, b, c) = (a, b, c)
        func gemm(byRows: Bool, _ lo: Int, _ hi: Int) {
            let (rows, cols) = byRows ? (hi - lo, n) : (m, hi - lo)
            let aPart = byRows ? (transA ? a + lo : a + lo * lda) : a
            let bPart = byRows ? b : (transB ? b + lo * ldb : b + lo)
            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        Int32(rows), Int32(cols), Int32(k), alpha, aPart, Int32(lda), bPart, Int32(ldb), beta,
                        byRows ? c + lo * ldc : c + lo, Int32(ldc))
        }
        let parts = min(Parallel.workers, (m * n * max(1, k)) / minWorkPerPart)
        let byRows = m >= n, side = max(m, n)
        guard parts > 1, side >= 2 * blockQuantum else { return gemm(byRows: true, 0, m) }
        // The longer side of C in `parts` blocks whose edges are multiples of the quantum.
        let count = min(parts, side / blockQuantum)
        Parallel.forEachPart(count, parts: count) { part, _ in
            let lo = (side * part / count) / blockQuantum * blockQuantum
            let hi = part == count - 1 ? side : (side * (part + 1) / count) / blockQuantum * blockQuantum
            if hi > lo { gemm(byRows: byRows, lo, hi) }
        }
    }

    /// Multiply-adds below which a product runs on one thread (a hand-off costs ≈ 10 µs).
    public static let minWorkPerPart = 1 << 20
    /// Block edges are multiples of this (the kernels' register blocking), so no part gets a ragged edge.
    public static let blockQuantum = 16

    /// C = alpha·A·Aᵀ + beta·C for A n×k, computing only the upper triangle of the n×n C (row-major:
    /// entries C[i, j] with j ≥ i); the strictly lower triangle is left untouched. Half the work of sgemm.
    /// Split over `Parallel`'s workers like `sgemm`: bands of rows of equal triangle area, each its diagonal
    /// block by syrk and the block right of it by gemm.
    public static func ssyrkUpper(
        n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if n == 0 { return }
        _ = singleThreaded
        let parts = min(Parallel.workers, (n * n / 2 * max(1, k)) / minWorkPerPart, n / blockQuantum)
        if parts <= 1 {
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, Int32(n), Int32(k), alpha, a, Int32(lda), beta, c, Int32(ldc))
            return
        }
        // Row r_q = n(1 − √(1 − q/parts)) leaves q/parts of the triangle above it.
        let edges = (0...parts).map { q -> Int in
            q == parts ? n : Int((Double(n) * (1 - (1 - Double(q) / Double(parts)).squareRoot()) / Double(blockQuantum)).rounded()) * blockQuantum
        }
        nonisolated(unsafe) let (a, c) = (a, c)
        Parallel.forEachPart(parts, parts: parts) { q, _ in
            let (lo, hi) = (edges[q], edges[q + 1])
            guard hi > lo else { return }
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, Int32(hi - lo), Int32(k), alpha, a + lo * lda, Int32(lda),
                        beta, c + lo * ldc + lo, Int32(ldc))
            if hi < n {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(hi - lo), Int32(n - hi), Int32(k), alpha,
                            a + lo * lda, Int32(lda), a + hi * lda, Int32(lda), beta, c + lo * ldc + hi, Int32(ldc))
            }
        }
    }

    /// y = alpha·op(A)·x + beta·y with A rows×cols.
    @inlinable
    public static func sgemv(
        trans: Bool, rows: Int, cols: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>, beta: Float, y: UnsafeMutablePointer<Float>
    ) {
        if rows == 0 || cols == 0 { return }
        _ = singleThreaded
        cblas_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, Int32(rows), Int32(cols),
                    alpha, a, Int32(lda), x, 1, beta, y, 1)
    }

    /// y += alpha·x
    @inlinable
    public static func saxpy(_ n: Int, _ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        _ = singleThreaded
        cblas_saxpy(Int32(n), alpha, x, 1, y, 1)
    }

    @inlinable
    public static func sdot(_ n: Int, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>) -> Float {
        _ = singleThreaded
        return cblas_sdot(Int32(n), x, 1, y, 1)
    }

    /// Threads OpenBLAS uses per call: 1 once a call has gone through here (`singleThreaded`;
    /// Accelerate manages its own).
    public static var threads: Int {
        #if canImport(COpenBLAS)
        return Int(openblas_get_num_threads())
        #else
        return 1
        #endif
    }
}

extension Tensor {
    /// op(self) · op(other) for matrices.
    public func matmul(_ other: Tensor, transposeSelf: Bool = false, transposeOther: Bool = false) -> Tensor {
        precondition(rank == 2 && other.rank == 2, "matmul needs matrices, got \(shape) and \(other.shape)")
        let m = transposeSelf ? shape[1] : shape[0]
        let k = transposeSelf ? shape[0] : shape[1]
        let k2 = transposeOther ? other.shape[1] : other.shape[0]
        let n = transposeOther ? other.shape[0] : other.shape[1]
        precondition(k == k2, "matmul inner dimensions differ: \(shape)\(transposeSelf ? "ᵀ" : "") · \(other.shape)\(transposeOther ? "ᵀ" : "")")
        var out = Tensor(zeros: [m, n])
        if k == 0 { return out }
        data.withUnsafeBufferPointer { a in
            other.data.withUnsafeBufferPointer { b in
                out.data.withUnsafeMutableBufferPointer { c in
                    BLAS.sgemm(transA: transposeSelf, transB: transposeOther, m: m, n: n, k: k,
                               alpha: 1, a: a.baseAddress!, lda: shape[1],
                               b: b.baseAddress!, ldb: other.shape[1],
                               beta: 0, c: c.baseAddress!, ldc: n)
                }
            }
        }
        return out
    }

    /// op(self) · x for a matrix and a vector (rank 1).
    public func matvec(_ x: Tensor, transposeSelf: Bool = false) -> Tensor {
        precondition(rank == 2, "matvec needs a matrix, got \(shape)")
        let (r, c) = (shape[0], shape[1])
        precondition(x.count == (transposeSelf ? r : c), "matvec: \(shape)\(transposeSelf ? "ᵀ" : "") · vector of \(x.count)")
        var y = Tensor(zeros: [transposeSelf ? c : r])
        data.withUnsafeBufferPointer { a in
            x.data.withUnsafeBufferPointer { xv in
                y.data.withUnsafeMutableBufferPointer { yv in
                    BLAS.sgemv(trans: transposeSelf, rows: r, cols: c, alpha: 1, a: a.baseAddress!, lda: c,
                               x: xv.baseAddress!, beta: 0, y: yv.baseAddress!)
                }
            }
        }
        return y
    }
}
