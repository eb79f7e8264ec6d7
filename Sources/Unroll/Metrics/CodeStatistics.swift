import Foundation
import UnrollCore

/// Statistics of a set of codes `[n, d]` (codes as rows) that need no reference codes: sparsity,
/// the sparse-coding objective, redundancy (multi-information) and collapse, as the variational
/// sparse coding paper measures them.
public enum CodeStatistics {
    /// The fraction of entries that are not exactly zero.
    public static func nonZeroFraction(_ z: Tensor) -> Double { nonZeroFraction(zeros: z.zeroCount(), of: z.count) }

    /// The same fraction from a count of zeros among `count` entries.
    public static func nonZeroFraction(zeros: Int, of count: Int) -> Double {
        count == 0 ? 0 : 1 - Double(zeros) / Double(count)
    }

    /// Mean over rows of ½‖x − z·W‖² + λ‖z‖₁, for a dense dictionary W `[d, m]` (atoms as rows).
    public static func sparseCodingObjective(signals x: Tensor, codes z: Tensor, dictionary w: Tensor,
                                             lambda: Float) -> Double {
        precondition(z.rows == x.rows && z.cols == w.rows && w.cols == x.cols,
                     "objective: codes \(z.shape), dictionary \(w.shape), signals \(x.shape)")
        let residual = x - z.matmul(w)
        let total = 0.5 * residual.squaredNorm() + Double(lambda) * Double(z.l1Norm())
        return total / Double(max(x.rows, 1))
    }

    /// The reference's code alphabet: bins with edges `linspace(−2, 2, bins)` plus ±1e-50, so exact
    /// zeros form their own symbol (`bins + 3` symbols, numpy.digitize's convention; ±1e-50 is not a
    /// Float, the smallest positive Float plays its part).
    public static func symbolEdges(bins: Int = 20, range: Float = 2) -> [Float] {
        let grid = (0..<bins).map { -range + 2 * range * Float($0) / Float(bins - 1) }
        return (grid + [-Float.leastNonzeroMagnitude, Float.leastNonzeroMagnitude]).sorted()
    }

    /// The symbol of `v`: the number of edges ≤ v (numpy.digitize with increasing edges).
    @inline(__always) static func symbol(_ v: Float, _ edges: [Float]) -> Int {
        var lo = 0, hi = edges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if edges[mid] <= v { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Multi-information (total correlation) Σₖ H(zₖ) − H(z₁, …, z_d) in bits, with plug-in
    /// (maximum-likelihood) entropies of the discretised codes. With few rows the joint entropy
    /// saturates at log₂ n, as in the reference estimator.
    public static func multiInformation(_ z: Tensor, edges: [Float] = symbolEdges()) -> Double {
        let (n, d) = (z.rows, z.cols)
        guard n > 0 else { return 0 }
        var symbols = [UInt8](repeating: 0, count: n * d)
        for i in 0..<(n * d) { symbols[i] = UInt8(symbol(z.data[i], edges)) }
        var marginal = 0.0
        var counts = [Int](repeating: 0, count: edges.count + 1)
        for k in 0..<d {
            for i in counts.indices { counts[i] = 0 }
            for r in 0..<n { counts[Int(symbols[r * d + k])] += 1 }
            marginal += entropy(counts, total: n)
        }
        var rows: [ArraySlice<UInt8>: Int] = [:]
        for r in 0..<n { rows[symbols[(r * d)..<((r + 1) * d)], default: 0] += 1 }
        return marginal - entropy(Array(rows.values), total: n)
    }

    static func entropy(_ counts: [Int], total: Int) -> Double {
        counts.reduce(0.0) { h, c in
            guard c > 0 else { return h }
            let p = Double(c) / Double(total)
            return h - p * log2(p)
        }
    }

    /// Share of columns (latents) whose `values` `[n, d]` are ≤ `tolerance` in magnitude on at least
    /// `share` of the rows. With |z| it is the coefficient collapse, with the per-latent KL the
    /// posterior collapse (tolerance 1e-2, share 0.95 in the reference).
    public static func collapsedFraction(_ values: Tensor, tolerance: Float = 1e-2, share: Double = 0.95) -> Double {
        let (n, d) = (values.rows, values.cols)
        guard n > 0, d > 0 else { return 0 }
        var collapsed = 0
        for k in 0..<d {
            var small = 0
            for r in 0..<n where abs(values.data[r * d + k]) <= tolerance { small += 1 }
            if Double(small) >= share * Double(n) { collapsed += 1 }
        }
        return Double(collapsed) / Double(d)
    }
}
