import Foundation
import UnrollCore

/// CRsAE's EM update of the per-filter sparsity penalty λ_c (reference crsae §4) for any dictionary
/// operator: the codes are Laplace, p(x_c | λ_c) ∝ λ_c^Ne exp(−λ_c ‖x_c‖₁), and λ_c has a Gamma prior of
/// mean λ̄ and rate δ (shape r = δ·λ̄). Holding the codes fixed, the MAP estimate (the M-step) is
///
///     λ_c = (J·Ne + r − 1) / (Σ_j ‖x_c^j‖₁ + δ)          pooling `.sum`       (J examples pooled)
///     λ_c = (Ne + r − 1)  / (mean_j ‖x_c^j‖₁ + δ)        pooling `.batchMean` (the PyTorch loss)
///
/// with Ne the code entries per filter per example (1-D: N − K + 1; 2-D: the code map's area). δ = 0,
/// r = 1 is the maximum-likelihood Ne/‖x_c‖₁. Codes are laid out `[batch, atoms, …]` as every
/// `DictionaryOperator` lays them out. In the lasso the encoder solves, the penalty is λ_c·σ²
/// (`encoderLambda`), so that the layer threshold is λ_c σ² α = λ_c σ²/L.
public struct GammaPriorLambda: Equatable, Sendable {
    public enum Pooling: String, Equatable, Sendable { case sum, batchMean }

    /// Prior mean λ̄ (> 0).
    public var priorMean: Float
    /// Prior rate δ (≥ 0; 0 = no prior, maximum likelihood).
    public var rate: Float
    public var pooling: Pooling
    /// Exponential smoothing of successive estimates: λ ← s·λ_old + (1 − s)·λ_new (0 = take the new value).
    public var smoothing: Float

    public init(priorMean: Float, rate: Float, pooling: Pooling = .batchMean, smoothing: Float = 0) {
        self.priorMean = priorMean
        self.rate = rate
        self.pooling = pooling
        self.smoothing = smoothing
    }

    /// Gamma shape r = δ·λ̄ (1 without a prior, so the update is the ML estimate).
    public var shape: Float { rate > 0 ? rate * priorMean : 1 }

    public func validate() throws {
        guard priorMean.isFinite, priorMean > 0 else {
            throw UnrollError.invalidArgument("EM λ prior mean must be finite and > 0, got \(priorMean)")
        }
        guard rate.isFinite, rate >= 0 else { throw UnrollError.invalidArgument("EM λ prior rate δ must be finite and ≥ 0, got \(rate)") }
        guard smoothing.isFinite, smoothing >= 0, smoothing < 1 else {
            throw UnrollError.invalidArgument("EM λ smoothing must be in [0, 1), got \(smoothing)")
        }
    }

    /// Σ_j ‖x_c^j‖₁ per atom (Double) and the entries per atom per example, for codes `[J, atoms, …]`.
    public static func l1PerAtom(_ codes: Tensor, atoms: Int) -> (sums: [Double], positions: Int) {
        let batch = codes.rows, perSample = codes.cols
        precondition(atoms > 0 && perSample % atoms == 0, "codes \(codes.shape) do not hold \(atoms) atoms")
        let positions = perSample / atoms
        var sums = [Double](repeating: 0, count: atoms)
        codes.data.withUnsafeBufferPointer { p in
            for i in 0..<batch {
                for c in 0..<atoms {
                    let start = (i * atoms + c) * positions
                    var s = 0.0
                    for q in start..<(start + positions) { s += Double(abs(p[q])) }
                    sums[c] += s
                }
            }
        }
        return (sums, positions)
    }

    /// The closed-form M-step for codes `[J, atoms, …]` (J ≥ 1), smoothed towards `previous` if given.
    public func update(codes: Tensor, atoms: Int, previous: [Float]? = nil) -> [Float] {
        let (sums, ne) = Self.l1PerAtom(codes, atoms: atoms)
        return update(l1Sums: sums, positions: ne, samples: codes.rows, previous: previous)
    }

    /// `update` from the codes' statistics: Σ‖x_c‖₁ per atom over `samples` samples of `positions`
    /// code positions each (what data-parallel workers add up before the update).
    public func update(l1Sums sums: [Double], positions ne: Int, samples: Int, previous: [Float]? = nil) -> [Float] {
        let j = Double(max(1, samples)), r = Double(shape), d = Double(rate)
        return (0..<sums.count).map { c in
            let fresh: Double
            switch pooling {
            case .sum: fresh = (j * Double(ne) + r - 1) / (sums[c] + d)
            case .batchMean: fresh = (Double(ne) + r - 1) / (sums[c] / j + d)
            }
            // All-zero codes without a prior: no finite estimate; keep the previous value (or the prior mean).
            let value = fresh.isFinite ? Float(fresh) : (previous?[c] ?? priorMean)
            guard let old = previous?[c] else { return value }
            return smoothing * old + (1 - smoothing) * value
        }
    }

    /// The negative log-posterior of λ given the codes (up to a constant), the loss whose minimiser
    /// `update` is: Σ_c [λ_c (L1_c + δ) − (Ne' + r − 1) log λ_c], with L1_c and Ne' pooled as `pooling` says.
    public func negativeLogPosterior(codes: Tensor, lambdas: [Float]) -> Double {
        let (sums, ne) = Self.l1PerAtom(codes, atoms: lambdas.count)
        let j = Double(max(1, codes.rows)), r = Double(shape), d = Double(rate)
        var total = 0.0
        for (c, l) in lambdas.enumerated() {
            let lam = Double(l)
            let (l1, count) = pooling == .sum ? (sums[c], j * Double(ne)) : (sums[c] / j, Double(ne))
            total += lam * (l1 + d) - (count + r - 1) * log(lam)
        }
        return total
    }

    /// The encoder's per-atom lasso penalty λ_c·σ² (with α = 1/L the layer threshold is λ_c σ²/L).
    public static func encoderLambda(_ lambdas: [Float], sigma: Float) -> Lambda {
        .perAtom(lambdas.map { $0 * sigma * sigma })
    }

    /// Donoho's universal choice, CRsAE's initial λ: √(2 log(C·Ne))/σ (threshold σ√(2 log(C·Ne))/L).
    public static func donoho(atoms: Int, positions: Int, sigma: Float) -> Float {
        Float((2 * log(Double(max(2, atoms * positions)))).squareRoot()) / sigma
    }
}
