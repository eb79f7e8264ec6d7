import Testing
import UnrollCore

@Suite struct ElementwiseTests {
    var rng = Random(seed: 51)

    @Test mutating func thresholdsMatchTheirDefinitions() {
        var t = Tensor.normal([13, 17], rng: &rng)
        t.data[0] = 0.3       // exactly at the threshold: soft → 0, hard → 0 (|v| > τ is strict)
        t.data[1] = -0.3
        let b: Float = 0.3
        let soft = t.softThreshold(b), hard = t.hardThreshold(b), relu = t.relu(bias: b), relu0 = t.relu()
        for i in 0..<t.count {
            let v = t.data[i]
            let s: Float = abs(v) <= b ? 0 : (v > 0 ? v - b : v + b)
            #expect(soft.data[i] == s)
            #expect(Tensor.soft(v, b) == s)
            #expect(hard.data[i] == (abs(v) > b ? v : 0))
            #expect(relu.data[i] == max(v - b, 0))
            #expect(relu0.data[i] == max(v, 0))
        }
        #expect(soft.data[0] == 0 && soft.data[1] == 0 && hard.data[0] == 0)
        #expect(soft.shape == t.shape && hard.shape == t.shape)
    }

    @Test mutating func arithmeticAndMaps() {
        let a = Tensor.normal([4, 6], rng: &rng), b = Tensor.normal([4, 6], rng: &rng)
        let sum = a + b, diff = a - b, prod = a * b, scaled = 2.5 * a
        var acc = a
        acc.add(b, scaledBy: -0.5)
        for i in 0..<a.count {
            #expect(sum.data[i] == a.data[i] + b.data[i])
            #expect(diff.data[i] == a.data[i] - b.data[i])
            #expect(prod.data[i] == a.data[i] * b.data[i])
            #expect(scaled.data[i] == 2.5 * a.data[i])
            #expect(abs(acc.data[i] - (a.data[i] - 0.5 * b.data[i])) < 1e-6)
        }
        #expect(a.map { $0 * $0 }.data == a.data.map { $0 * $0 })
        #expect(a.zipWith(b, max).data == zip(a.data, b.data).map { max($0, $1) })
    }

    @Test mutating func reductionsMatchDoubleLoops() {
        var t = Tensor.normal([50, 40], mean: 0.3, rng: &rng)
        t.data[7] = 0
        t.data[99] = 0
        let d = t.data.map(Double.init)
        let s = d.reduce(0, +), sq = d.reduce(0) { $0 + $1 * $1 }, l1 = d.reduce(0) { $0 + abs($1) }
        #expect(abs(Double(t.sum()) - s) < 1e-5 * max(1, abs(s)))
        #expect(abs(Double(t.mean()) - s / 2000) < 1e-6)
        #expect(t.min() == t.data.min()! && t.max() == t.data.max()!)
        #expect(abs(t.squaredNorm() - sq) < 1e-9 * sq)
        #expect(abs(Double(t.norm()) - sq.squareRoot()) < 1e-6 * sq.squareRoot())
        #expect(abs(Double(t.l1Norm()) - l1) < 1e-6 * l1)
        #expect(t.zeroCount() == d.filter { $0 == 0 }.count)
        #expect(!t.hasNonFinite)
        var bad = t
        bad.data[3] = .nan
        #expect(bad.hasNonFinite)
        bad.data[3] = -.infinity
        #expect(bad.hasNonFinite)
        #expect(bad.largestMagnitude == .infinity)
        bad.data[7] = -.nan
        #expect(bad.largestMagnitude.isNaN)
        // largestMagnitude is max |x| exactly, including negatives, −0, subnormals and the largest float.
        #expect(t.largestMagnitude == t.data.map(abs).max()!)
        for v: Float in [-3.2e38, .greatestFiniteMagnitude, -.leastNonzeroMagnitude, -0.0] {
            var u = Tensor(shape: [3], data: [0.25, v, -0.5])
            #expect(u.largestMagnitude == max(0.5, abs(v)), "\(v)")
            #expect(!u.hasNonFinite)
            u.data[0] = .infinity
            #expect(u.hasNonFinite)
        }
        #expect(Tensor(zeros: [0, 3]).largestMagnitude == 0 && !Tensor(zeros: [0, 3]).hasNonFinite)
        #expect(Tensor(zeros: [0, 3]).mean() == 0)
    }

    @Test mutating func rowAndColumnNormsAndNormalisation() {
        var m = Tensor.normal([9, 14], rng: &rng)
        for j in 0..<14 { m[4, j] = 0 }   // a zero row
        for i in 0..<9 { m[i, 6] = 0 }    // a zero column
        let rn = m.rowNorms(), cn = m.columnNorms()
        for i in 0..<9 {
            let ref = (0..<14).reduce(0.0) { $0 + Double(m[i, $1]) * Double(m[i, $1]) }.squareRoot()
            #expect(abs(Double(rn[i]) - ref) < 1e-5 * max(1, ref))
        }
        for j in 0..<14 {
            let ref = (0..<9).reduce(0.0) { $0 + Double(m[$1, j]) * Double(m[$1, j]) }.squareRoot()
            #expect(abs(Double(cn[j]) - ref) < 1e-5 * max(1, ref))
        }
        var r = m
        r.normalizeRows()
        for (i, n) in r.rowNorms().enumerated() { #expect(i == 4 ? n == 0 : abs(n - 1) < 1e-5) }
        for j in 0..<14 { #expect(abs(r[0, j] - m[0, j] / rn[0]) < 1e-6) }   // direction kept
        var c = m
        c.normalizeColumns()
        for (j, n) in c.columnNorms().enumerated() { #expect(j == 6 ? n == 0 : abs(n - 1) < 1e-5) }
        for i in 0..<9 { #expect(abs(c[i, 0] - m[i, 0] / cn[0]) < 1e-6) }
        // Rows of a rank-3 tensor are its first-axis slices.
        var t3 = Tensor.normal([3, 2, 5], rng: &rng)
        t3.normalizeRows()
        for n in t3.rowNorms() { #expect(abs(n - 1) < 1e-5) }
    }

    @Test mutating func matvecMatchesNaiveLoopBothWays() {
        let a = Tensor.normal([23, 41], rng: &rng)
        let x = Tensor.normal([41], rng: &rng), y = Tensor.normal([23], rng: &rng)
        let ax = a.matvec(x), aty = a.matvec(y, transposeSelf: true)
        #expect(ax.shape == [23] && aty.shape == [41])
        for i in 0..<23 {
            let ref = (0..<41).reduce(0.0) { $0 + Double(a[i, $1]) * Double(x.data[$1]) }
            #expect(abs(Double(ax.data[i]) - ref) < 1e-5 * max(1, abs(ref)))
        }
        for j in 0..<41 {
            let ref = (0..<23).reduce(0.0) { $0 + Double(a[$1, j]) * Double(y.data[$1]) }
            #expect(abs(Double(aty.data[j]) - ref) < 1e-5 * max(1, abs(ref)))
        }
    }

    @Test mutating func matmulLargeAndDegenerateShapes() {
        // Large enough for OpenBLAS's blocking and threads; compared on sampled entries.
        let (m, k, n) = (300, 257, 190)
        let a = Tensor.normal([m, k], rng: &rng), b = Tensor.normal([k, n], rng: &rng)
        let c = a.matmul(b)
        for _ in 0..<300 {
            let i = rng.int(below: m), j = rng.int(below: n)
            let ref = (0..<k).reduce(0.0) { $0 + Double(a[i, $1]) * Double(b[$1, j]) }
            #expect(abs(Double(c[i, j]) - ref) < 1e-4 * max(1, abs(ref)))
        }
        // Inner dimension 0 gives zeros; empty outer dimensions give empty results.
        #expect(Tensor(zeros: [3, 0]).matmul(Tensor(zeros: [0, 4])) == Tensor(zeros: [3, 4]))
        #expect(Tensor(zeros: [0, 5]).matmul(Tensor.normal([5, 2], rng: &rng)).shape == [0, 2])
    }

    @Test mutating func blasLevelOneHelpers() {
        var y = Tensor.normal([37], rng: &rng).data
        let x = Tensor.normal([37], rng: &rng).data, y0 = y
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in BLAS.saxpy(37, 0.5, xp.baseAddress!, yp.baseAddress!) }
        }
        for i in 0..<37 { #expect(abs(y[i] - (y0[i] + 0.5 * x[i])) < 1e-6) }
        let d = x.withUnsafeBufferPointer { xp in y0.withUnsafeBufferPointer { BLAS.sdot(37, xp.baseAddress!, $0.baseAddress!) } }
        let ref = (0..<37).reduce(0.0) { $0 + Double(x[$1]) * Double(y0[$1]) }
        #expect(abs(Double(d) - ref) < 1e-5 * max(1, abs(ref)))
    }
}
