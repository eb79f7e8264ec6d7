import CUnrollSupport
import Testing
import UnrollCore

@Suite struct SparseProductsTests {
    /// ‖a − b‖ / ‖b‖ in Double.
    func relativeError(_ a: Tensor, _ b: Tensor) -> Double {
        #expect(a.shape == b.shape)
        return (a - b).squaredNorm().squareRoot() / max(1e-30, b.squaredNorm().squareRoot())
    }

    /// (B, p, m, density): small ones run inline, the large one in parallel; one with empty rows and atoms.
    static let cases: [(Int, Int, Int, Double)] = [(3, 5, 4, 0.4), (17, 64, 33, 0.05), (512, 256, 128, 0.05), (40, 100, 64, 0.005)]

    @Test func codesTimesDictionaryEqualsDenseGemm() {
        var rng = Random(seed: 31)
        for (b, p, m, d) in Self.cases {
            let z = sparseNormal([b, p], density: d, rng: &rng)
            let w = Tensor.normal([p, m], rng: &rng)
            let dense = z.matmul(w)
            #expect(relativeError(z.sparseMatmul(w), dense) < 1e-5, "dense storage \((b, p, m))")
            #expect(relativeError(SparseMatrix(dense: z).matmul(w), dense) < 1e-5, "CSR \((b, p, m))")
        }
    }

    @Test func transposedCodesTimesResidualEqualsDenseGemm() {
        var rng = Random(seed: 32)
        for (b, p, m, d) in Self.cases {
            let z = sparseNormal([b, p], density: d, rng: &rng)
            let r = Tensor.normal([b, m], rng: &rng)
            let dense = z.matmul(r, transposeSelf: true)
            #expect(dense.shape == [p, m])
            #expect(relativeError(z.sparseTransposedMatmul(r), dense) < 1e-5, "dense storage \((b, p, m))")
            #expect(relativeError(SparseMatrix(dense: z).transposedMatmul(r), dense) < 1e-5, "CSR \((b, p, m))")
        }
    }

    @Test func csrRoundTripAndStructure() {
        var rng = Random(seed: 33)
        let z = sparseNormal([20, 30], density: 0.1, rng: &rng)
        let s = SparseMatrix(dense: z)
        #expect(s.dense() == z)
        #expect(s.nonZeroCount == z.count - z.zeroCount())
        #expect(s.rowStart.count == 21 && s.rowStart.last == s.nonZeroCount)
        for i in 0..<20 {
            for k in s.rowStart[i]..<s.rowStart[i + 1] { #expect(z[i, s.colIndex[k]] == s.values[k]) }
        }
        // Explicit arrays, and update(from:) reusing storage.
        let t = SparseMatrix(rows: 2, cols: 3, rowStart: [0, 2, 3], colIndex: [0, 2, 1], values: [1, 2, 3])
        #expect(t.dense() == Tensor(rows: [[1, 0, 2], [0, 3, 0]]))
        var u = t
        u.update(from: z)
        #expect(u == s)
        #expect(SparseMatrix(dense: Tensor(zeros: [4, 6])).nonZeroCount == 0)
    }

    @Test func sampledProductIsDenseProductAtTheSupport() {
        var rng = Random(seed: 34)
        let z = sparseNormal([64, 40], density: 0.1, rng: &rng)
        let r = Tensor.normal([64, 33], rng: &rng)
        let w = Tensor.normal([40, 33], rng: &rng)
        let full = r.matmul(w, transposeOther: true)
        let s = SparseMatrix(dense: z).sampledProduct(r, w)
        var worst = 0.0
        for i in 0..<64 {
            for k in s.rowStart[i]..<s.rowStart[i + 1] {
                let ref = Double(full[i, s.colIndex[k]])
                worst = max(worst, abs(Double(s.values[k]) - ref) / max(1, abs(ref)))
            }
        }
        #expect(s.nonZeroCount == z.count - z.zeroCount())
        #expect(worst < 1e-5)
    }

    @Test func intoVariantsOverwriteOrAccumulate() {
        var rng = Random(seed: 35)
        let z = sparseNormal([30, 20], density: 0.2, rng: &rng)
        let w = Tensor.normal([20, 10], rng: &rng)
        let r = Tensor.normal([30, 10], rng: &rng)
        let csr = SparseMatrix(dense: z)
        var out = Tensor.normal([30, 10], rng: &rng)
        let start = out
        z.sparseMatmul(w, into: &out, accumulate: true)
        #expect(relativeError(out, start + z.matmul(w)) < 1e-5)
        csr.matmul(w, into: &out)
        #expect(relativeError(out, z.matmul(w)) < 1e-5)
        var g = Tensor.normal([20, 10], rng: &rng)
        let g0 = g
        csr.transposedMatmul(r, into: &g, accumulate: true)
        #expect(relativeError(g, g0 + z.matmul(r, transposeSelf: true)) < 1e-5)
        z.sparseTransposedMatmul(r, into: &g)
        #expect(relativeError(g, z.matmul(r, transposeSelf: true)) < 1e-5)
    }
    /// The streaming kernel of sparse rows times long dense rows adds each term as one fused multiply-add,
    /// in order, whatever the length's remainder, the number of terms (groups of four and the rest) or
    /// repeats: bit for bit a scalar chain of fused multiply-adds. The BLAS saxpy calls it replaced agree
    /// to rounding; bit for bit only where OpenBLAS's kernel fuses its tail too (its Haswell kernel, chosen
    /// on some AMD machines, does not).
    @Test func scaledRowSumIsSuccessiveSaxpys() {
        var rng = Random(seed: 34)
        let rowsCount = 37
        for n in [256, 257, 1000, 1003, 1500] {
            let matrix = Tensor.normal([rowsCount, n + 5], rng: &rng)
            for terms in [0, 1, 3, 4, 5, 9, 16] {
                let index = (0..<terms).map { _ in Int32(rng.int(below: rowsCount)) }
                let coef = (0..<terms).map { _ in Float(rng.normal()) }
                let start = Tensor.normal([n], rng: &rng).data
                var expected = start, got = start, saxpys = start
                matrix.data.withUnsafeBufferPointer { m in
                    for q in 0..<terms {
                        let row = Int(index[q]) * (n + 5)
                        for i in 0..<n { expected[i].addProduct(coef[q], m[row + i]) }   // fused
                        BLAS.saxpy(n, coef[q], m.baseAddress! + row, &saxpys)
                    }
                    unroll_add_scaled_rows(Int32(n), &got, m.baseAddress!, n + 5, index, coef, Int32(terms))
                }
                #expect(got.map(\.bitPattern) == expected.map(\.bitPattern), "n \(n), \(terms) terms")
                #expect(zip(got, saxpys).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) }, "n \(n), \(terms) terms: not the saxpys' sum")
            }
        }
    }
}
