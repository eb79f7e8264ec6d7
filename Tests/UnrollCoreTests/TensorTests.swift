import Testing
import UnrollCore

@Suite struct TensorTests {
    @Test func reshapeKeepsDataAndCountsRowsAndCols() {
        let t = Tensor(shape: [2, 3, 4], data: (0..<24).map(Float.init))
        #expect(t.rows == 2 && t.cols == 12)
        #expect(t.reshaped([6, 4])[5, 3] == 23)
    }

    @Test func copyOnWriteKeepsValuesApart() {
        var a = Tensor(rows: [[1, 2], [3, 4]])
        let b = a
        a[0, 0] = 9
        #expect(b[0, 0] == 1 && a[0, 0] == 9)
    }

    @Test func rowSlicesAndGather() {
        let t = Tensor(rows: [[1, 2], [3, 4], [5, 6]])
        #expect(t.rows(1..<3) == Tensor(rows: [[3, 4], [5, 6]]))
        #expect(t.gatherRows([2, 0]) == Tensor(rows: [[5, 6], [1, 2]]))
    }

    @Test func transposeOfNonSquareMatrix() {
        var rng = Random(seed: 1)
        let a = Tensor.normal([37, 70], rng: &rng)
        let t = a.transposed()
        for i in 0..<37 { for j in 0..<70 { #expect(t[j, i] == a[i, j]) } }
    }

    @Test func matmulMatchesNaiveLoopForEveryTransposeCombination() {
        var rng = Random(seed: 2)
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let (m, k, n) = (13, 29, 7)
            let a = Tensor.normal(ta ? [k, m] : [m, k], rng: &rng)
            let b = Tensor.normal(tb ? [n, k] : [k, n], rng: &rng)
            let c = a.matmul(b, transposeSelf: ta, transposeOther: tb)
            for i in 0..<m {
                for j in 0..<n {
                    var s: Double = 0
                    for l in 0..<k { s += Double(ta ? a[l, i] : a[i, l]) * Double(tb ? b[j, l] : b[l, j]) }
                    #expect(abs(Double(c[i, j]) - s) < 1e-4 * max(1, abs(s)))
                }
            }
        }
    }
}
