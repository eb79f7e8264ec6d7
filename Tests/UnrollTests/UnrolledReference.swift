import Foundation
import Unroll
import UnrollCore

// Independent references for the encoder and gradient tests: plain Double loops that share no code
// with the library, plus small random problems.

/// An unrolled (F)ISTA forward pass and the losses in Double, written from the equations:
/// v_t = y_t − α (y_t W − X) Wᵀ, z_t = θ(v_t), with W `[p, m]` atoms as rows.
struct ReferenceUnrolled {
    var p: Int, m: Int, batch: Int
    var layers: Int
    var alpha: Double
    var threshold: Threshold
    var fista: Bool
    var lambdas: [Double]   // per atom (λ or τ)
    var beta: Double = 1

    /// Final codes (B·p) and the smallest distance of any pre-activation to a threshold kink.
    func forward(w: [Double], x: [Double]) -> (z: [Double], kinkMargin: Double) {
        var z = [Double](repeating: 0, count: batch * p)
        var zPrev = z
        var y = z
        var s = 1.0
        var margin = Double.infinity
        for t in 1...layers {
            // r = y W − X ; v = y − α r Wᵀ
            var r = [Double](repeating: 0, count: batch * m)
            for i in 0..<batch {
                for k in 0..<m {
                    var acc = -x[i * m + k]
                    for j in 0..<p { acc += y[i * p + j] * w[j * m + k] }
                    r[i * m + k] = acc
                }
            }
            var zNew = [Double](repeating: 0, count: batch * p)
            for i in 0..<batch {
                for j in 0..<p {
                    var g = 0.0
                    for k in 0..<m { g += r[i * m + k] * w[j * m + k] }
                    let v = y[i * p + j] - alpha * g
                    var b = lambdas[j] * pow(beta, Double(t - 1))
                    if threshold != .hard { b *= alpha }
                    switch threshold {
                    case .soft:
                        zNew[i * p + j] = v > b ? v - b : (v < -b ? v + b : 0)
                        margin = min(margin, abs(abs(v) - b))
                    case .nonNegative:
                        zNew[i * p + j] = max(v - b, 0)
                        margin = min(margin, abs(v - b))
                    case .hard:
                        zNew[i * p + j] = abs(v) > b ? v : 0
                        margin = min(margin, abs(abs(v) - b))
                    }
                }
            }
            zPrev = z
            z = zNew
            if fista {
                let sNext = (1 + (1 + 4 * s * s).squareRoot()) / 2
                let mu = (s - 1) / sNext
                s = sNext
                for q in 0..<(batch * p) { y[q] = z[q] + mu * (z[q] - zPrev[q]) }
            } else {
                y = z
            }
        }
        return (z, margin)
    }

    /// ½Σ‖x − zW‖²/B (+ Σ λ_j|z|/B when `lasso`).
    func loss(w: [Double], x: [Double], z: [Double], lasso: Bool) -> Double {
        var rec = 0.0
        for i in 0..<batch {
            for k in 0..<m {
                var acc = -x[i * m + k]
                for j in 0..<p { acc += z[i * p + j] * w[j * m + k] }
                rec += acc * acc
            }
        }
        var total = 0.5 * rec / Double(batch)
        if lasso {
            for i in 0..<batch { for j in 0..<p { total += lambdas[j] * abs(z[i * p + j]) / Double(batch) } }
        }
        return total
    }

    /// The loss of `mode` as a function of W (codes re-encoded with W, except for `decoder`,
    /// whose codes `fixedCodes` stay fixed).
    func modeLoss(_ mode: GradientMode, w: [Double], x: [Double], fixedCodes: [Double]) -> Double {
        switch mode {
        case .decoder: return loss(w: w, x: x, z: fixedCodes, lasso: true)
        case .lasso: return loss(w: w, x: x, z: forward(w: w, x: x).z, lasso: true)
        case .leastSquares: return loss(w: w, x: x, z: forward(w: w, x: x).z, lasso: false)
        case .noodl: fatalError("NOODL has no loss")
        }
    }

    /// Central finite differences of `modeLoss` in every entry of W.
    func finiteDifferenceGradient(_ mode: GradientMode, w: [Double], x: [Double], h: Double = 1e-6) -> [Double] {
        let fixed = forward(w: w, x: x).z
        var g = [Double](repeating: 0, count: w.count)
        for q in 0..<w.count {
            var wp = w, wm = w
            wp[q] += h
            wm[q] -= h
            g[q] = (modeLoss(mode, w: wp, x: x, fixedCodes: fixed) - modeLoss(mode, w: wm, x: x, fixedCodes: fixed)) / (2 * h)
        }
        return g
    }
}

/// A dense dictionary that does NOT override `makeLayerKernel`, so it runs the generic kernel
/// (the path convolutional operators take).
struct GenericDense: DictionaryOperator {
    var inner: DenseDictionary
    var weights: Tensor {
        get { inner.weights }
        set { inner.weights = newValue }
    }
    var atoms: Int { inner.atoms }
    func codeShape(signalShape: [Int]) throws -> [Int] { try inner.codeShape(signalShape: signalShape) }
    func signalShape(codeShape: [Int]) throws -> [Int] { try inner.signalShape(codeShape: codeShape) }
    func apply(_ codes: Tensor) -> Tensor { inner.apply(codes) }
    func adjoint(_ signals: Tensor) -> Tensor { inner.adjoint(signals) }
    func weightGradient(residual: Tensor, codes: Tensor) -> Tensor { inner.weightGradient(residual: residual, codes: codes) }
    mutating func normalize() { inner.normalize() }
    func lipschitz(iterations: Int, rng: inout Random) -> Float { inner.lipschitz(iterations: iterations, rng: &rng) }
}

func doubles(_ t: Tensor) -> [Double] { t.data.map(Double.init) }

/// ‖a − b‖ / ‖b‖.
func relativeDifference(_ a: [Double], _ b: [Double]) -> Double {
    var d = 0.0, n = 0.0
    for i in 0..<a.count {
        d += (a[i] - b[i]) * (a[i] - b[i])
        n += b[i] * b[i]
    }
    return n > 0 ? (d / n).squareRoot() : d.squareRoot()
}

/// A synthetic dictionary-learning problem made inline (PUDLE §2 style): unit-norm W*, s-sparse codes
/// with U[1,2] amplitudes and random signs, X = Z*W*, and W₀ = normalise(W* + δ·noise).
struct SyntheticProblem {
    var truth: Tensor
    var codes: Tensor
    var signals: Tensor
    var initial: Tensor

    init(m: Int, p: Int, n: Int, s: Int, initNoise: Float, seed: UInt64) {
        var rng = Random(seed: seed)
        var w = Tensor.normal([p, m], rng: &rng)
        w.normalizeRows()
        var z = Tensor(zeros: [n, p])
        for i in 0..<n {
            for j in rng.sample(s, from: p) { z[i, j] = rng.sign() * Float(rng.uniform(1, 2)) }
        }
        var w0 = w + initNoise * Tensor.normal([p, m], rng: &rng)
        w0.normalizeRows()
        truth = w
        codes = z
        signals = z.matmul(w)
        initial = w0
    }
}

/// A gradient checked along directions through the whole tensor: for each of `directions` random
/// unit Gaussian vectors r, u = (ĝ + r)/‖ĝ + r‖ with ĝ = g/‖g‖ (every entry moves, and ⟨g, u⟩ is
/// about ‖g‖/√2 rather than ‖g‖/√n, so it stands above the Float rounding of the loss), the central
/// difference (f(θ + hu) − f(θ − hu))/2h against ⟨g, u⟩. Returns the pairs (finite difference, analytic).
func directionalDifferences(at theta: Tensor, gradient g: Tensor, directions: Int = 2, h: Float, seed: UInt64,
                            _ f: (Tensor) -> Double) -> [(fd: Double, analytic: Double)] {
    var rng = Random(seed: seed)
    func unit(_ t: Tensor) -> Tensor { Float(1 / max(t.squaredNorm().squareRoot(), 1e-30)) * t }
    return (0..<directions).map { _ in
        let u = unit(unit(g) + unit(Tensor.normal(theta.shape, rng: &rng)))
        let fd = (f(theta + h * u) - f(theta + (-h) * u)) / Double(2 * h)
        let analytic = zip(g.data, u.data).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        return (fd, analytic)
    }
}
