import CUnrollSupport
import Foundation
import Testing
import Unroll
import UnrollCore

/// `LassoHomotopy`: the exact lasso codes, checked against coordinate descent in Double written here
/// (an independent solver), against the optimality conditions, and on the edge cases; its C loops against
/// the straightforward Swift loops, bit for bit.
@Suite struct LassoHomotopyTests {
    /// A dictionary [p, m] with unit-norm atoms and signals from k-sparse codes plus noise.
    static func problem(p: Int, m: Int, n: Int, k: Int, seed: UInt64) throws -> (DenseDictionary, Tensor) {
        var rng = Random(seed: seed)
        var w = Tensor.normal([p, m], rng: &rng)
        w.normalizeRows()
        var z = Tensor(zeros: [n, p])
        for i in 0..<n { for _ in 0..<k { z.data[i * p + rng.int(below: p)] = Float(rng.normal()) } }
        var x = z.matmul(w)
        x.add(Tensor.normal([n, m], rng: &rng).map { 0.01 * $0 })
        return (try DenseDictionary(weights: w), x)
    }

    /// Cyclic coordinate descent on ½‖x − zW‖² + λ‖z‖₁ in Double, to a change of 1e-13.
    static func coordinateDescent(_ x: [Double], _ w: Tensor, lambda: Double) -> [Double] {
        let (p, m) = (w.rows, w.cols)
        let atoms = (0..<p).map { j in (0..<m).map { Double(w.data[j * m + $0]) } }
        let norms = atoms.map { $0.reduce(0) { $0 + $1 * $1 } }
        var z = [Double](repeating: 0, count: p), r = x
        for _ in 0..<20_000 {
            var change = 0.0
            for j in 0..<p {
                let rho = zip(atoms[j], r).reduce(0) { $0 + $1.0 * $1.1 } + norms[j] * z[j]
                let next = rho > lambda ? (rho - lambda) / norms[j] : rho < -lambda ? (rho + lambda) / norms[j] : 0
                if next != z[j] {
                    for t in 0..<m { r[t] -= (next - z[j]) * atoms[j][t] }
                    change = max(change, abs(next - z[j]))
                    z[j] = next
                }
            }
            if change < 1e-13 { break }
        }
        return z
    }

    static func objective(_ x: [Double], _ z: [Double], _ w: Tensor, lambda: Double) -> Double {
        let (p, m) = (w.rows, w.cols)
        var r = x
        for j in 0..<p where z[j] != 0 { for t in 0..<m { r[t] -= z[j] * Double(w.data[j * m + t]) } }
        return 0.5 * r.reduce(0) { $0 + $1 * $1 } + lambda * z.reduce(0) { $0 + abs($1) }
    }

    @Test func matchesCoordinateDescentAndTheOptimalityConditions() throws {
        let (d, x) = try Self.problem(p: 60, m: 30, n: 25, k: 4, seed: 1)
        let lambda: Float = 0.1
        let (codes, report) = try LassoHomotopy(lambda: lambda).encode(x, with: d)
        #expect(report.exact == 25 && report.solvedByEncoder == 0, "\(report)")
        let w = d.weights, (p, m) = (w.rows, w.cols)
        for i in 0..<x.rows {
            let xi = (0..<m).map { Double(x.data[i * m + $0]) }, zi = (0..<p).map { Double(codes.data[i * p + $0]) }
            let reference = Self.coordinateDescent(xi, w, lambda: Double(lambda))
            let (ours, theirs) = (Self.objective(xi, zi, w, lambda: 0.1), Self.objective(xi, reference, w, lambda: 0.1))
            #expect(abs(ours - theirs) <= 1e-6 * theirs, "signal \(i): objective \(ours) vs coordinate descent \(theirs)")
            #expect(zip(zi, reference).allSatisfy { abs($0 - $1) <= 1e-4 }, "signal \(i): codes differ")
            // Optimality: c_j − (Gz)_j = λ sign(z_j) on the support, |·| ≤ λ off it.
            var r = xi
            for j in 0..<p where zi[j] != 0 { for t in 0..<m { r[t] -= zi[j] * Double(w.data[j * m + t]) } }
            for j in 0..<p {
                let corr = (0..<m).reduce(0.0) { $0 + r[$1] * Double(w.data[j * m + $1]) }
                if zi[j] != 0 {
                    #expect(abs(corr - 0.1 * (zi[j] > 0 ? 1 : -1)) <= 1e-5, "signal \(i) atom \(j): correlation \(corr) on the support")
                } else {
                    #expect(abs(corr) <= 0.1 * (1 + 1e-4), "signal \(i) atom \(j): correlation \(corr) off the support")
                }
            }
        }
    }

    @Test func edgeCases() throws {
        let (d, x) = try Self.problem(p: 20, m: 12, n: 6, k: 2, seed: 2)
        // λ above every |⟨x, w_j⟩|: all zeros.
        let (zeros, _) = try LassoHomotopy(lambda: 1e4).encode(x, with: d)
        #expect(zeros.zeroCount() == zeros.count)
        // The same codes with one worker or two (signals are independent).
        let one = try Parallel.withWorkers(1) { try LassoHomotopy(lambda: 0.05).encode(x, with: d).codes }
        let two = try Parallel.withWorkers(2) { try LassoHomotopy(lambda: 0.05).encode(x, with: d).codes }
        #expect(one == two)
        // A repeated atom (G singular): still the lasso minimum, by the path or by the ISTA finish.
        var w = d.weights
        for t in 0..<w.cols { w.data[w.cols + t] = w.data[t] }
        let twin = try DenseDictionary(weights: w)
        let (codes, _) = try LassoHomotopy(lambda: 0.05).encode(x, with: twin)
        for i in 0..<x.rows {
            let xi = (0..<w.cols).map { Double(x.data[i * w.cols + $0]) }
            let zi = (0..<w.rows).map { Double(codes.data[i * w.rows + $0]) }
            let reference = Self.coordinateDescent(xi, w, lambda: 0.05)
            let (ours, theirs) = (Self.objective(xi, zi, w, lambda: 0.05), Self.objective(xi, reference, w, lambda: 0.05))
            #expect(abs(ours - theirs) <= 1e-5 * theirs, "signal \(i): \(ours) vs \(theirs)")
        }
        // A path cut short after one event: those signals are solved by the unrolled encoder instead.
        let (cut, cutReport) = try LassoHomotopy(lambda: 0.05, maxEvents: 1).encode(x, with: d)
        #expect(cutReport.solvedByEncoder > 0 && cutReport.exact + cutReport.solvedByEncoder == x.rows, "\(cutReport)")
        let dw = d.weights
        for i in 0..<x.rows {
            let xi = (0..<dw.cols).map { Double(x.data[i * dw.cols + $0]) }
            let zi = (0..<dw.rows).map { Double(cut.data[i * dw.rows + $0]) }
            let (ours, theirs) = (Self.objective(xi, zi, dw, lambda: 0.05),
                                  Self.objective(xi, Self.coordinateDescent(xi, dw, lambda: 0.05), dw, lambda: 0.05))
            #expect(abs(ours - theirs) <= 1e-5 * theirs, "cut path, signal \(i): \(ours) vs \(theirs)")
        }
        #expect(try LassoHomotopy(lambda: 0.1).encode(Tensor(zeros: [0, 12]), with: d).codes.shape == [0, 20])
        // Bad input is refused by name.
        for bad in [Float(-1), .nan, .infinity] {
            #expect(throws: UnrollError.self) { _ = try LassoHomotopy(lambda: bad).encode(x, with: d) }
        }
        #expect(throws: UnrollError.self) { _ = try LassoHomotopy(lambda: 0.1).encode(Tensor(zeros: [3, 5]), with: d) }
        var nan = x
        nan.data[4] = .nan
        #expect(throws: UnrollError.self) { _ = try LassoHomotopy(lambda: 0.1).encode(nan, with: d) }
    }
    /// Whether every code meets the lasso's optimality conditions in Double: c_j − (Gz)_j = λ sign(z_j) on
    /// the support, |·| ≤ λ(1 + 1e-4) off it.
    static func optimalityViolations(_ x: Tensor, _ codes: Tensor, _ w: Tensor, lambda: Double) -> [String] {
        let (p, m) = (w.rows, w.cols)
        var found: [String] = []
        for i in 0..<x.rows {
            var r = (0..<m).map { Double(x.data[i * m + $0]) }
            let z = (0..<p).map { Double(codes.data[i * p + $0]) }
            for j in 0..<p where z[j] != 0 { for t in 0..<m { r[t] -= z[j] * Double(w.data[j * m + t]) } }
            for j in 0..<p {
                let corr = (0..<m).reduce(0.0) { $0 + r[$1] * Double(w.data[j * m + $1]) }
                let ok = z[j] != 0 ? abs(corr - lambda * (z[j] > 0 ? 1 : -1)) <= 1e-5 : abs(corr) <= lambda * (1 + 1e-4)
                if !ok { found.append("signal \(i) atom \(j): correlation \(corr), code \(z[j])") }
            }
        }
        return found
    }

    /// More signals than one block of c = Wx (1024 rows): every block's codes are the lasso minimum.
    @Test func manyRowBlocks() throws {
        let (d, x) = try Self.problem(p: 40, m: 20, n: 2 * 1024 + 37, k: 3, seed: 3)
        let (codes, report) = try LassoHomotopy(lambda: 0.05).encode(x, with: d)
        #expect(report.exact + report.solvedByEncoder == x.rows && report.exact > x.rows * 9 / 10, "\(report)")
        let violations = Self.optimalityViolations(x, codes, d.weights, lambda: 0.05)
        #expect(violations.isEmpty, "\(violations.count) violations, first \(violations.first ?? "")")
    }

    /// The path's two loops over the atoms (LassoHomotopy.c, one clone per instruction set) against the Swift
    /// loops they replaced: the same bits, across block edges and with ties and blocked atoms.
    @Test func kernelsMatchTheStraightforwardLoops() {
        var rng = Random(seed: 35)
        let atoms = 90
        let g = Tensor.normal([atoms, 200], rng: &rng).data
        for p in [1, 3, 63, 64, 65, 130, 200] {
            let gp = (0..<atoms).flatMap { row in g[(row * 200)..<(row * 200 + p)] }   // [atoms, p]
            for count in 0...9 {
                let rows = (0..<count).map { _ in rng.int(below: atoms) }
                let weights = (0..<count).map { _ in Float(rng.normal()) }
                let start = Tensor.normal([p], rng: &rng).data
                var expected = start, got = start
                for (row, w) in zip(rows, weights) { for j in 0..<p { expected[j] += w * gp[row * p + j] } }
                unroll_homotopy_add_rows(Int32(p), &got, gp, rows, weights, Int32(count))
                #expect(got.map(\.bitPattern) == expected.map(\.bitPattern), "add rows: p \(p), \(count) rows")
            }
            let lam: Float = 0.7
            var r = (0..<p).map { _ in Float(rng.uniform() * 1.6 - 0.8) }          // some |r| above λ: no root there
            var a = (0..<p).map { _ in Float(rng.normal() * 1.5) }                 // some |a| ≥ 1: one root or none
            var blocked = (0..<p).map { _ in rng.uniform() < 0.2 ? Float.infinity : 0 }
            if p > 2 {   // the smallest time twice, in the middle and at the end: the first is the one
                for j in [p / 2, p - 1] { (r[j], a[j], blocked[j]) = (0.6999, 0.5, 0) }
            }
            var t = [Float](repeating: -1, count: p), smallest: Float = -1
            let index = unroll_homotopy_next_join(Int32(p), lam, r, a, blocked, &t, &smallest)
            let expected = (0..<p).map { j -> Float in
                let (n1, d1, n2, d2) = (lam - r[j], 1 - a[j], lam + r[j], 1 + a[j])
                let t1: Float = d1 > 0 && n1 > 0 ? n1 / d1 : .infinity
                let t2: Float = d2 > 0 && n2 > 0 ? n2 / d2 : .infinity
                return max(min(t1, t2), blocked[j])
            }
            #expect(t.map(\.bitPattern) == expected.map(\.bitPattern), "join times: p \(p)")
            let least = expected.min()!
            #expect(smallest.bitPattern == least.bitPattern && index == expected.firstIndex(of: least)!, "p \(p): \(index), \(smallest)")
            if p > 2 { #expect(index == p / 2) }
        }
    }
}
