import Foundation
import UnrollCore

/// Dictionary learning on the ω-regularised objective of PUDLE's Theorem 5.1, with non-negative codes,
/// by exact alternating minimisation:
///
///     F(W, Z) = ½‖X − ZW‖² + λ Σ|Z| + ω/2 ‖W‖²,   Z ≥ 0      (X `[n, m]`, Z `[n, p]`, W `[p, m]`)
///
///     repeat:  Z ← argmin_{Z ≥ 0} F(W, Z)         (`NonNegativeLasso`, warm-started, to convergence)
///              W ← (ZᵀZ + ωI)⁻¹ZᵀX               (the exact minimiser in W: F is a ridge problem in W)
///     until the relative changes of W and of Z in one round are both below `tolerance`.
///
/// No atom normalisation: ω/2‖W‖² is what keeps the scale of W bounded, and a stationary point of F
/// (which the theorem is about) exists. At such a point W = W̃(Z) exactly, which `ExampleCombination`
/// checks. The returned codes are the exact minimiser for the returned W.
public enum RegularizedDictionaryLearning {
    public struct Settings: Equatable, Sendable {
        public var atoms: Int
        public var lambda: Double
        public var omega: Double
        /// Stop when ‖ΔW‖/‖W‖ and ‖ΔZ‖/‖Z‖ of one round are both below this.
        public var tolerance: Double = 1e-6
        public var maxRounds: Int = 1000
        /// The code step's proximal residual at the end; early rounds, while ‖W − W̃‖/‖W̃‖ is larger, use
        /// min(1e-5, 10⁻³·‖W − W̃‖/‖W̃‖) (never below this).
        public var codeTolerance: Double = 1e-10
        public var codeMaxIterations: Int = 20000
        /// Anderson acceleration of the round map W ↦ W̃(Z(W)) with this memory (0 = plain alternating
        /// minimisation). A step is kept only if F does not rise; otherwise the plain step is taken.
        public var andersonMemory: Int = 5
        /// Seed of the initial dictionary (p random training examples, each scaled to unit norm).
        public var seed: UInt64 = 0

        public init(atoms: Int, lambda: Double, omega: Double) {
            self.atoms = atoms
            self.lambda = lambda
            self.omega = omega
        }

        public func validate() throws {
            guard atoms >= 1 else { throw UnrollError.invalidArgument("atoms p must be ≥ 1, got \(atoms)") }
            guard omega.isFinite, omega > 0 else { throw UnrollError.invalidArgument("ω must be finite and > 0, got \(omega)") }
            guard tolerance.isFinite, tolerance > 0 else { throw UnrollError.invalidArgument("tolerance must be finite and > 0, got \(tolerance)") }
            guard maxRounds >= 1 else { throw UnrollError.invalidArgument("rounds must be ≥ 1, got \(maxRounds)") }
            try NonNegativeLasso(lambda: lambda, tolerance: codeTolerance, maxIterations: codeMaxIterations).validate()
        }
    }

    public struct Result: Sendable {
        /// W, `[p, m]` (atoms as rows), in Double row-major and as a tensor.
        public var weightsDouble: [Double]
        public var weights: Tensor
        /// Z, `[n, p]` row-major: the exact lasso codes for W.
        public var codes: [Double]
        public var rounds: Int
        /// ‖ΔW‖/‖W‖ and ‖ΔZ‖/‖Z‖ of the last round.
        public var dictionaryChange: Double
        public var codeChange: Double
        public var converged: Bool
        /// F(W, Z) after every round.
        public var objective: [Double]
        /// The largest relative proximal-gradient residual of the final codes.
        public var codeResidual: Double
        public var seconds: Double
    }

    /// Runs alternating minimisation on `signals` (`[n, m]`). `progress` sees one line per round.
    public static func train(signals: Tensor, settings s: Settings, progress: ((String) -> Void)? = nil) throws -> Result {
        try s.validate()
        guard signals.rank == 2, signals.rows >= 1, signals.cols >= 1 else {
            throw UnrollError.shapeMismatch("training signals must be a non-empty [examples, signal size] matrix, got shape \(signals.shape)")
        }
        guard !signals.hasNonFinite else { throw UnrollError.nonFinite("training signals contain NaN or Inf") }
        let start = ContinuousClock.now
        let m = signals.cols, p = s.atoms
        var w = initialWeights(signals: signals, atoms: p, seed: s.seed)
        let solver = NonNegativeLasso(lambda: s.lambda, tolerance: s.codeTolerance, maxIterations: s.codeMaxIterations)
        var z: [Double]? = nil
        var objective: [Double] = []
        var dW = Double.infinity, dZ = Double.infinity
        var rounds = 0
        var accepted = Double.infinity
        // (W, W̃(Z(W))) of the last rounds, for Anderson; the plain step to fall back to.
        var history: [(w: [Double], g: [Double])] = []
        var fallback: [Double]? = nil
        while rounds < s.maxRounds {
            rounds += 1
            // Inexact codes while W still moves a lot (cheaper rounds), exact ones near the end.
            var roundSolver = solver
            roundSolver.tolerance = max(s.codeTolerance, min(1e-5, 1e-3 * (dW.isFinite ? dW : 1)))
            let codes = try roundSolver.solve(signals: signals, weights: w, atoms: p, warmStart: z)
            let f = Self.objective(signals: signals, weights: w, codes: codes.codes, atoms: p, lambda: s.lambda, omega: s.omega)
            if let plain = fallback, !(f <= accepted) {
                // The extrapolated W made F rise: take the plain step instead and restart the history.
                progress?("round \(rounds): extrapolation rejected (F \(String(format: "%.10g", f)) > \(String(format: "%.10g", accepted)))")
                history.removeAll()
                fallback = nil
                w = plain
                continue
            }
            dZ = z.map { ExampleCombination.relativeDifference($0, codes.codes) } ?? .infinity
            z = codes.codes
            accepted = f
            objective.append(f)
            let g = try ExampleCombination(signals: signals, codes: codes.codes, atoms: p, omega: s.omega).impliedWeights()
            dW = ExampleCombination.relativeDifference(w, g)
            progress?("round \(rounds): F \(String(format: "%.10g", f)), ‖W − W̃‖/‖W̃‖ \(String(format: "%.4g", dW)), ΔZ \(String(format: "%.4g", dZ)), lasso iterations ≤ \(codes.iterations)")
            if dW < s.tolerance && dZ < s.tolerance { break }
            history.append((w, g))
            if history.count > s.andersonMemory + 1 { history.removeFirst() }
            if let next = Self.anderson(history) {
                fallback = g
                w = next
            } else {
                fallback = nil
                w = g
            }
        }
        // Codes exact for the final W (z already is, unless the last round was rejected).
        let final = try solver.solve(signals: signals, weights: w, atoms: p, warmStart: z)
        return Result(weightsDouble: w, weights: Tensor(shape: [p, m], data: w.map(Float.init)), codes: final.codes,
                      rounds: rounds, dictionaryChange: dW, codeChange: dZ,
                      converged: dW < s.tolerance && dZ < s.tolerance, objective: objective,
                      codeResidual: final.residual, seconds: secondsSince(start))
    }

    /// Anderson's extrapolation (type II) from the pairs (w_i, g_i = G(w_i)): with f_i = g_i − w_i,
    /// γ = argmin ‖f_k − ΔF γ‖ and w⁺ = g_k − ΔG γ. Nil with fewer than two pairs or a singular system.
    static func anderson(_ h: [(w: [Double], g: [Double])]) -> [Double]? {
        let k = h.count - 1
        guard k >= 1 else { return nil }
        let dim = h[k].w.count
        let f = h.map { pair in (0..<dim).map { pair.g[$0] - pair.w[$0] } }
        let dF = (0..<k).map { j in (0..<dim).map { f[j + 1][$0] - f[j][$0] } }
        var a = [Double](repeating: 0, count: k * k), b = [Double](repeating: 0, count: k)
        for i in 0..<k {
            for j in 0...i {
                var s = 0.0
                for q in 0..<dim { s += dF[i][q] * dF[j][q] }
                a[i * k + j] = s
                a[j * k + i] = s
            }
            var s = 0.0
            for q in 0..<dim { s += dF[i][q] * f[k][q] }
            b[i] = s
        }
        let trace = (0..<k).reduce(0.0) { $0 + a[$1 * k + $1] }
        guard trace > 0, trace.isFinite else { return nil }
        for i in 0..<k { a[i * k + i] += 1e-12 * trace }
        guard let factor = try? Cholesky(a, size: k) else { return nil }
        let gamma = factor.solve(b)
        var next = h[k].g
        for j in 0..<k {
            for q in 0..<dim { next[q] -= gamma[j] * (h[j + 1].g[q] - h[j].g[q]) }
        }
        return next.allSatisfy(\.isFinite) ? next : nil
    }

    /// p random training examples, each scaled to unit norm (Gaussian rows if p > n), `[p, m]` row-major.
    public static func initialWeights(signals: Tensor, atoms p: Int, seed: UInt64) -> [Double] {
        let n = signals.rows, m = signals.cols
        var rng = Random(seed: seed)
        var w = [Double](repeating: 0, count: p * m)
        if p <= n {
            for (u, k) in rng.sample(p, from: n).enumerated() {
                let row = (0..<m).map { Double(signals[k, $0]) }
                let norm = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
                for q in 0..<m { w[u * m + q] = norm > 0 ? row[q] / norm : 0 }
            }
        } else {
            var t = Tensor.normal([p, m], rng: &rng)
            t.normalizeRows()
            w = t.data.map(Double.init)
        }
        return w
    }

    /// F(W, Z) = ½‖X − ZW‖² + λΣ|Z| + ω/2‖W‖², in Double.
    public static func objective(signals: Tensor, weights w: [Double], codes z: [Double], atoms p: Int,
                                 lambda: Double, omega: Double) -> Double {
        let n = signals.rows, m = signals.cols
        var rec = 0.0, l1 = 0.0
        var row = [Double](repeating: 0, count: m)
        for i in 0..<n {
            for q in 0..<m { row[q] = -Double(signals.data[i * m + q]) }
            for u in 0..<p where z[i * p + u] != 0 {
                let a = z[i * p + u]
                l1 += abs(a)
                for q in 0..<m { row[q] += a * w[u * m + q] }
            }
            for q in 0..<m { rec += row[q] * row[q] }
        }
        let ww = w.reduce(0) { $0 + $1 * $1 }
        return 0.5 * rec + lambda * l1 + 0.5 * omega * ww
    }
}
