import Foundation
import Testing
import Unroll
import UnrollCore

@Suite struct MetricsTests {
    /// All injective maps of `rows` rows into `cols` columns (rows ≤ cols), for brute force.
    static func injections(_ rows: Int, _ cols: Int) -> [[Int]] {
        if rows == 0 { return [[]] }
        return injections(rows - 1, cols).flatMap { prefix in
            (0..<cols).filter { !prefix.contains($0) }.map { prefix + [$0] }
        }
    }

    static func bruteForceMinimum(_ cost: [Double], rows: Int, cols: Int) -> Double {
        if rows <= cols {
            return injections(rows, cols).map { a in a.enumerated().reduce(0.0) { $0 + cost[$1.offset * cols + $1.element] } }.min()!
        }
        // Each column gets a distinct row.
        return injections(cols, rows).map { a in a.enumerated().reduce(0.0) { $0 + cost[$1.element * cols + $1.offset] } }.min()!
    }

    @Test func hungarianMatchesBruteForceOnRandomSquareCosts() {
        var rng = Random(seed: 1)
        for trial in 0..<20 {
            let n = 6
            // Integer costs make ties common, which exercises the tie handling.
            let cost = (0..<(n * n)).map { _ in trial % 2 == 0 ? rng.uniform() : Double(rng.int(below: 5)) }
            let a = Hungarian.assignment(cost: cost, rows: n, cols: n)
            #expect(Set(a).count == n && a.allSatisfy { (0..<n).contains($0) })
            let total = Hungarian.totalCost(a, cost: cost, cols: n)
            #expect(abs(total - Self.bruteForceMinimum(cost, rows: n, cols: n)) < 1e-12)
        }
    }

    @Test func hungarianMatchesBruteForceOnRectangularCosts() {
        var rng = Random(seed: 2)
        for (rows, cols) in [(4, 6), (6, 4), (1, 5), (5, 1), (3, 7)] {
            for _ in 0..<5 {
                let cost = (0..<(rows * cols)).map { _ in rng.uniform(-1, 3) }
                let a = Hungarian.assignment(cost: cost, rows: rows, cols: cols)
                let assigned = a.filter { $0 >= 0 }
                #expect(a.count == rows && assigned.count == min(rows, cols) && Set(assigned).count == assigned.count)
                let total = Hungarian.totalCost(a, cost: cost, cols: cols)
                #expect(abs(total - Self.bruteForceMinimum(cost, rows: rows, cols: cols)) < 1e-12)
            }
        }
    }

    @Test func hungarianSmallClosedCase() {
        // Rows pick columns 1, 0, 2 for 1 + 2 + 2 = 5; the greedy row-wise choice (1, 1→taken…) is worse.
        let cost: [Double] = [4, 1, 3,
                              2, 0, 5,
                              3, 2, 2]
        #expect(Hungarian.assignment(cost: cost, rows: 3, cols: 3) == [1, 0, 2])
        #expect(Hungarian.assignment(cost: [], rows: 0, cols: 3) == [])
        #expect(Hungarian.assignment(cost: [], rows: 2, cols: 0) == [-1, -1])
    }

    @Test func permutedSignFlippedDictionaryHasZeroMatchedErrorButLargeUnmatchedError() {
        var rng = Random(seed: 3)
        var truth = Tensor.normal([12, 9], rng: &rng)
        truth.normalizeRows()
        let perm = rng.permutation(12)
        var w = truth.gatherRows(perm)
        for i in 0..<12 where i % 3 != 0 { for j in 0..<9 { w[i, j] *= -2.5 } }   // flip and rescale
        let match = DictionaryMetrics.matchAtoms(w, to: truth)
        #expect(match.maxSinDistance < 1e-6 && match.relativeFrobeniusError < 1e-6)
        #expect(match.references == Array(0..<12))
        for t in 0..<12 {
            #expect(perm[match.atoms[t]] == t)                                  // learned atom i is true atom perm[i]
            #expect(match.signs[t] == (match.atoms[t] % 3 == 0 ? 1 : -1))
        }
        let aligned = match.aligned(w)
        #expect(zip(aligned.data, truth.data).allSatisfy { abs($0 - $1) < 1e-5 })
        // Unmatched: random atoms against each other are nearly orthogonal, so ≈ √2.
        #expect(DictionaryMetrics.relativeFrobeniusError(w, truth) > 1)
    }

    @Test func closedFormRotationInTwoDimensions() {
        let theta = 0.3
        let truth = Tensor(rows: [[1, 0], [0, 1]])
        let w = Tensor(rows: [[Float(cos(theta)), Float(sin(theta))], [Float(-sin(theta)), Float(cos(theta))]])
        // ‖w_i − e_i‖ = 2 sin(θ/2) for both atoms; ‖W*‖_F = √2.
        #expect(abs(DictionaryMetrics.relativeFrobeniusError(w, truth) - 2 * sin(theta / 2)) < 1e-6)
        // Scaling atoms changes nothing (both sides are normalised).
        #expect(abs(DictionaryMetrics.relativeFrobeniusError(3 * w, 0.5 * truth) - 2 * sin(theta / 2)) < 1e-6)
        let match = DictionaryMetrics.matchAtoms(w, to: truth)
        #expect(match.atoms == [0, 1] && match.signs == [1, 1])
        #expect(abs(match.meanSinDistance - sin(theta)) < 1e-6 && abs(match.maxSinDistance - sin(theta)) < 1e-6)
        #expect(abs(match.relativeFrobeniusError - 2 * sin(theta / 2)) < 1e-6)
        #expect(match.recoveredCount(within: 0.3) == 2 && match.recoveredCount(within: 0.29) == 0)
    }

    @Test func fewerLearnedAtomsThanTrueOnes() {
        var rng = Random(seed: 4)
        var truth = Tensor.normal([5, 8], rng: &rng)
        truth.normalizeRows()
        let w = truth.gatherRows([3, 0, 4])
        let match = DictionaryMetrics.matchAtoms(w, to: truth)
        #expect(match.references == [0, 3, 4] && match.atoms == [1, 0, 2])
        #expect(match.maxSinDistance < 1e-6 && match.referenceCount == 5)
        let aligned = match.aligned(w)
        #expect(aligned.rows(1..<2).data.allSatisfy { $0 == 0 })   // true atom 1 unmatched
        // More learned atoms than true: every true atom is matched, the extras are left out.
        let extra = DictionaryMetrics.matchAtoms(Tensor(shape: [6, 8], data: truth.data + Tensor.normal([1, 8], rng: &rng).data), to: truth)
        #expect(extra.atoms == [0, 1, 2, 3, 4] && extra.maxSinDistance < 1e-6)
    }

    @Test func zeroAndNonFiniteAtomsDoNotTrap() {
        let truth = Tensor(rows: [[1, 0], [0, 1]])
        let w = Tensor(rows: [[0, 0], [Float.nan, 1]])
        let match = DictionaryMetrics.matchAtoms(w, to: truth)
        #expect(match.atoms.count == 2 && match.sinDistances == [1, 1])
    }

    @Test func codeErrorClosedForm() {
        let z = Tensor(rows: [[1, 0], [0, 0]]), truth = Tensor(rows: [[0, 0], [3, 4]])
        #expect(CodeMetrics.meanError(z, truth) == 3)   // (1 + 5) / 2
        #expect(CodeMetrics.meanError(truth, truth) == 0)
    }

    @Test func supportRecoveryCounts() {
        let z = Tensor(rows: [[0.5, 0.01, 0], [0, 2, 0], [0, 0, 0]])
        let truth = Tensor(rows: [[1, 0, 0], [0, 0, 3], [0, 0, 0]])
        let r = CodeMetrics.supportRecovery(z, truth, tolerance: 0.1)
        #expect(r.truePositives == 1 && r.predicted == 2 && r.actual == 2)
        #expect(r.precision == 0.5 && r.recall == 0.5)
        #expect(abs(r.exactFraction - 2.0 / 3.0) < 1e-12)   // rows 0 and 2 match exactly
        // Without the tolerance the 0.01 entry counts as a (false) non-zero.
        let strict = CodeMetrics.supportRecovery(z, truth)
        #expect(strict.predicted == 3 && abs(strict.precision - 1.0 / 3.0) < 1e-12 && strict.exactRows == 1)
        let empty = CodeMetrics.supportRecovery(Tensor(zeros: [2, 2]), Tensor(zeros: [2, 2]))
        #expect(empty.precision == 1 && empty.recall == 1 && empty.exactFraction == 1)
    }
}
