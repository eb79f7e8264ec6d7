import Foundation
import UnrollCore

/// The exact non-negative lasso codes for a dense dictionary, in Double:
///
///     z_i = argmin_{z ≥ 0} ½‖x_i − Wᵀz‖² + λ·Σ_j z_j        (W `[p, m]`, atoms as rows)
///
/// by FISTA with adaptive restart (O'Donoghue & Candès) from a warm start, per example, run until the
/// proximal-gradient residual ‖z − max(0, z − α(∇ + λ))‖ is at most `tolerance`·‖z‖. This is the
/// non-negative ISTA encoder of `UnrolledEncoder` (threshold `.nonNegative`) run to convergence, in
/// Double and warm-started: Theorem 5.1 needs codes that are the exact minimiser for the current
/// dictionary, and alternating minimisation to a relative change of 1e-6 needs codes that do not
/// jitter at Float32 resolution from one round to the next.
public struct NonNegativeLasso: Equatable, Sendable {
    public var lambda: Double
    /// Relative proximal-gradient residual at which an example counts as converged.
    public var tolerance: Double
    public var maxIterations: Int

    public init(lambda: Double, tolerance: Double = 1e-10, maxIterations: Int = 20000) {
        self.lambda = lambda
        self.tolerance = tolerance
        self.maxIterations = maxIterations
    }

    public struct Result: Sendable {
        /// Z, `[n, p]` row-major.
        public var codes: [Double]
        /// The most iterations any example needed.
        public var iterations: Int
        /// The largest relative residual over the examples at exit.
        public var residual: Double
    }

    public func validate() throws {
        guard lambda.isFinite, lambda >= 0 else { throw UnrollError.invalidArgument("lasso λ must be finite and ≥ 0, got \(lambda)") }
        guard tolerance.isFinite, tolerance > 0 else { throw UnrollError.invalidArgument("lasso tolerance must be finite and > 0, got \(tolerance)") }
        guard maxIterations >= 1 else { throw UnrollError.invalidArgument("lasso iterations must be ≥ 1, got \(maxIterations)") }
    }

    /// Codes for `signals` (`[n, m]`) and `weights` (`[p, m]` row-major Double), from `warmStart`
    /// (`[n, p]`, negative entries clipped) or zero.
    public func solve(signals: Tensor, weights w: [Double], atoms p: Int, warmStart: [Double]? = nil) throws -> Result {
        try validate()
        let n = signals.rows, m = signals.cols
        guard signals.rank == 2, p >= 1, w.count == p * m else {
            throw UnrollError.shapeMismatch("lasso: signals \(signals.shape) and \(p) atoms need weights of \(p)×\(m) values, got \(w.count)")
        }
        if let z0 = warmStart, z0.count != n * p {
            throw UnrollError.shapeMismatch("lasso warm start needs \(n)×\(p) values, got \(z0.count)")
        }
        let gram = Self.gram(w, atoms: p, signalSize: m)
        let lipschitz = Self.largestEigenvalue(gram, size: p)
        guard lipschitz.isFinite else { throw UnrollError.nonFinite("lasso: the dictionary's ‖W‖₂² is not finite") }
        // Zero dictionary: every code is 0.
        let alpha = lipschitz > 0 ? 1 / (1.02 * lipschitz) : 0
        var codes = warmStart.map { $0.map { max(0, $0) } } ?? [Double](repeating: 0, count: n * p)
        let parts = max(1, min(Parallel.workers, n / 8))
        var iterations = [Int](repeating: 0, count: parts)
        var residuals = [Double](repeating: 0, count: parts)
        let x = signals.data
        codes.withUnsafeMutableBufferPointer { zAll in
            let zAll = zAll
            iterations.withUnsafeMutableBufferPointer { itOut in
                residuals.withUnsafeMutableBufferPointer { resOut in
                    let itOut = itOut, resOut = resOut
                    Parallel.forEachPart(n, parts: parts) { part, range in
                        var c = [Double](repeating: 0, count: p)
                        var scratch = Scratch(p: p)
                        var worst = 0, worstResidual = 0.0
                        for i in range {
                            // c = W x_i
                            for u in 0..<p {
                                var s = 0.0
                                for q in 0..<m { s += w[u * m + q] * Double(x[i * m + q]) }
                                c[u] = s
                            }
                            let (its, res) = solveOne(gram: gram, c: c, alpha: alpha, p: p,
                                                      z: UnsafeMutableBufferPointer(rebasing: zAll[(i * p)..<((i + 1) * p)]),
                                                      scratch: &scratch)
                            worst = max(worst, its)
                            worstResidual = max(worstResidual, res)
                        }
                        itOut[part] = worst
                        resOut[part] = worstResidual
                    }
                }
            }
        }
        return Result(codes: codes, iterations: iterations.max() ?? 0, residual: residuals.max() ?? 0)
    }

    struct Scratch {
        var y: [Double], zNew: [Double], g: [Double], supp: [Int]
        init(p: Int) {
            y = [Double](repeating: 0, count: p)
            zNew = y
            g = y
            supp = []
            supp.reserveCapacity(p)
        }
    }

    /// g = Gv − c over v's non-zeros.
    @inline(__always)
    static func gradient(_ gram: [Double], _ c: [Double], _ v: [Double], p: Int, supp: inout [Int], into g: inout [Double]) {
        supp.removeAll(keepingCapacity: true)
        for u in 0..<p where v[u] != 0 { supp.append(u) }
        for j in 0..<p { g[j] = -c[j] }
        for u in supp {
            let a = v[u]
            let row = u * p
            for j in 0..<p { g[j] += a * gram[row + j] }
        }
    }

    /// FISTA with restart on one example; returns (iterations, relative residual at exit).
    func solveOne(gram: [Double], c: [Double], alpha: Double, p: Int, z: UnsafeMutableBufferPointer<Double>,
                  scratch s: inout Scratch) -> (Int, Double) {
        guard alpha > 0 else {
            for j in 0..<p { z[j] = 0 }
            return (0, 0)
        }
        let step = alpha * lambda
        for j in 0..<p { s.y[j] = z[j] }
        var t = 1.0
        var residual = Double.infinity
        var it = 0
        while it < maxIterations {
            it += 1
            Self.gradient(gram, c, s.y, p: p, supp: &s.supp, into: &s.g)
            var restart = 0.0
            for j in 0..<p {
                let v = max(0, s.y[j] - alpha * s.g[j] - step)
                s.zNew[j] = v
                restart += (s.y[j] - v) * (v - z[j])
            }
            let tNew = (1 + (1 + 4 * t * t).squareRoot()) / 2
            let mu = restart > 0 ? 0 : (t - 1) / tNew
            t = restart > 0 ? 1 : tNew
            for j in 0..<p {
                let v = s.zNew[j]
                s.y[j] = v + mu * (v - z[j])
                z[j] = v
            }
            if it % 10 == 0 || it == maxIterations {
                residual = proxResidual(gram: gram, c: c, alpha: alpha, p: p, z: z, scratch: &s)
                if residual <= tolerance { break }
            }
        }
        return (it, residual)
    }

    /// ‖z − max(0, z − α(Gz − c + λ))‖ / max(‖z‖, α‖c‖): 0 exactly at the minimiser.
    func proxResidual(gram: [Double], c: [Double], alpha: Double, p: Int, z: UnsafeMutableBufferPointer<Double>,
                      scratch s: inout Scratch) -> Double {
        for j in 0..<p { s.zNew[j] = z[j] }
        Self.gradient(gram, c, s.zNew, p: p, supp: &s.supp, into: &s.g)
        var r = 0.0, zz = 0.0, cc = 0.0
        for j in 0..<p {
            let d = z[j] - max(0, z[j] - alpha * (s.g[j] + lambda))
            r += d * d
            zz += z[j] * z[j]
            cc += c[j] * c[j]
        }
        let scale = max(zz.squareRoot(), alpha * cc.squareRoot(), 1e-300)
        return r.squareRoot() / scale
    }

    /// W·Wᵀ, `[p, p]` in Double.
    static func gram(_ w: [Double], atoms p: Int, signalSize m: Int) -> [Double] {
        var g = [Double](repeating: 0, count: p * p)
        g.withUnsafeMutableBufferPointer { gp in
            let gp = gp
            Parallel.forEachChunk(p, minPerPart: 16) { range in
                for u in range {
                    for v in 0...u {
                        var s = 0.0
                        for q in 0..<m { s += w[u * m + q] * w[v * m + q] }
                        gp[u * p + v] = s
                        gp[v * p + u] = s
                    }
                }
            }
        }
        return g
    }

    /// λ_max of a symmetric PSD matrix by power iteration (deterministic start), to 1e-9 relative.
    static func largestEigenvalue(_ a: [Double], size p: Int) -> Double {
        var v = (0..<p).map { 1 + 0.01 * Double($0 % 7) }
        var lambda = 0.0
        for _ in 0..<1000 {
            var av = [Double](repeating: 0, count: p)
            for i in 0..<p {
                var s = 0.0
                for j in 0..<p { s += a[i * p + j] * v[j] }
                av[i] = s
            }
            let norm = av.reduce(0) { $0 + $1 * $1 }.squareRoot()
            guard norm > 0, norm.isFinite else { return norm.isFinite ? 0 : .infinity }
            let previous = lambda
            lambda = norm / v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            v = av.map { $0 / norm }
            if abs(lambda - previous) <= 1e-9 * lambda { break }
        }
        return lambda
    }
}
