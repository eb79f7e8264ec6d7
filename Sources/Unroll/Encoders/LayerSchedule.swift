import Foundation
import UnrollCore

/// The per-layer constants of one unrolled run — thresholds b_t and FISTA momenta μ_t — computed in one
/// place so the generic layer loop and the dense fast path use bit-identical values. (Public so that an
/// operator's own loop, `DictionaryOperator.unrolledLoop`, can receive it; its members are the module's.)
public struct LayerSchedule {
    let layers: Int
    let fista: Bool
    let threshold: Threshold
    /// λ_j (soft kinds) or τ_j (hard) per atom.
    let base: [Float]
    let beta: Float
    /// α for the soft kinds (b = λα), 1 for the hard threshold.
    let scale: Float
    /// Learned per-layer, per-atom factors G_{t,j} on the thresholds, row t − 1 (empty: all 1).
    let gains: [Float]
    /// μ_t for t = 1 … layers (FISTA; empty for ISTA): y_{t+1} = z_t + μ_t (z_t − z_{t−1}).
    let momentum: [Float]

    /// `scaledByStep`: b = λ·α (the soft kinds' penalty λ) rather than b = λ (the hard threshold τ, or
    /// a threshold learned as a bias).
    init(layers: Int, fista: Bool, threshold: Threshold, base: [Float], beta: Float, alpha: Float, scaledByStep: Bool,
         gains: [Float] = []) {
        precondition(gains.isEmpty || gains.count == layers * base.count, "layer gains: \(gains.count) values for \(layers) layers × \(base.count) atoms")
        self.layers = layers
        self.gains = gains
        self.fista = fista
        self.threshold = threshold
        self.base = base
        self.beta = beta
        self.scale = scaledByStep ? alpha : 1
        var mu: [Float] = []
        if fista {
            mu.reserveCapacity(layers)
            var s = 1.0   // s_t
            for _ in 0..<layers {
                let sNext = (1 + (1 + 4 * s * s).squareRoot()) / 2
                mu.append(Float((s - 1) / sNext))
                s = sNext
            }
        }
        self.momentum = mu
    }

    /// b_t[j] = base[j]·β^(t−1)·scale (·G_{t,j} with gains) for layer t (1-based), into `b` (one value per atom).
    func thresholds(layer t: Int, into b: UnsafeMutablePointer<Float>) {
        let decay = Float(pow(Double(beta), Double(t - 1)))
        for j in 0..<base.count { b[j] = base[j] * decay * scale }
        if !gains.isEmpty {
            let row = (t - 1) * base.count
            for j in 0..<base.count { b[j] *= gains[row + j] }
        }
    }

    /// ∂b_t[j]/∂base[j] = β^(t−1)·scale, without the gains.
    func thresholdFactor(layer t: Int) -> Float { Float(pow(Double(beta), Double(t - 1))) * scale }

    /// G_{t,j} (1 without gains).
    @inline(__always) func gain(layer t: Int, atom j: Int) -> Float { gains.isEmpty ? 1 : gains[(t - 1) * base.count + j] }

    /// μ of the extrapolation that forms layer t's input: y_t = z_{t−1} + μ(z_{t−1} − z_{t−2});
    /// 0 for ISTA and for t = 1.
    func inputMomentum(layer t: Int) -> Float {
        fista && t >= 2 ? momentum[t - 2] : 0
    }
}
