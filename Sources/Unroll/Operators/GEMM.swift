import UnrollCore

/// In-place matrix products for the layer loops (no allocation when `c` is uniquely referenced).
enum GEMM {
    /// c ← alpha·op(a)·op(b) + beta·c, all viewed as matrices `[rows, cols]`.
    @inline(__always)
    static func gemm(_ a: Tensor, transposeA: Bool = false, _ b: Tensor, transposeB: Bool = false,
                     alpha: Float = 1, beta: Float = 0, into c: inout Tensor) {
        let (ar, ac, br, bc) = (a.rows, a.cols, b.rows, b.cols)
        let m = transposeA ? ac : ar, k = transposeA ? ar : ac
        let k2 = transposeB ? bc : br, n = transposeB ? br : bc
        precondition(k == k2 && c.rows == m && c.cols == n,
                     "gemm shapes: \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "") → \(c.shape)")
        if k == 0 {
            if beta != 1 { c.mapInPlace { beta * $0 } }
            return
        }
        a.data.withUnsafeBufferPointer { pa in
            b.data.withUnsafeBufferPointer { pb in
                c.data.withUnsafeMutableBufferPointer { pc in
                    BLAS.sgemm(transA: transposeA, transB: transposeB, m: m, n: n, k: k,
                               alpha: alpha, a: pa.baseAddress!, lda: ac, b: pb.baseAddress!, ldb: bc,
                               beta: beta, c: pc.baseAddress!, ldc: n)
                }
            }
        }
    }

    /// y ← y + alpha·x (same element count).
    @inline(__always)
    static func axpy(_ alpha: Float, _ x: Tensor, _ y: inout Tensor) {
        precondition(x.count == y.count, "axpy: \(x.shape) vs \(y.shape)")
        if x.count == 0 { return }
        x.data.withUnsafeBufferPointer { px in
            y.data.withUnsafeMutableBufferPointer { py in
                BLAS.saxpy(x.count, alpha, px.baseAddress!, py.baseAddress!)
            }
        }
    }

    /// dst ← src element by element (same count; keeps dst's storage when unique).
    @inline(__always)
    static func copy(_ src: Tensor, into dst: inout Tensor) {
        precondition(src.count == dst.count, "copy: \(src.shape) vs \(dst.shape)")
        if src.count == 0 { return }
        src.data.withUnsafeBufferPointer { s in
            dst.data.withUnsafeMutableBufferPointer { d in
                d.baseAddress!.update(from: s.baseAddress!, count: s.count)
            }
        }
    }
}
