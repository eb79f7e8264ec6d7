import Foundation
import UnrollCore

/// The convex baseline for spike sorting: the same convolutional lasso the CRsAE encoder approximates,
///     min_x ½‖y − Hx‖² + Σ_c λ_c ‖x_c‖₁   (λ_c = the encoder's penalty, i.e. CRsAE's λ_c σ²),
/// solved by FISTA (α = 1/L) run until the relative change of the iterate over a batch,
/// ‖x_t − x_{t−1}‖ / ‖x_t‖, is ≤ `tolerance` (or `maxIterations` is reached).
public struct ConvexLassoSolver: Equatable, Sendable {
    public var threshold: Threshold
    public var lambda: Lambda
    public var alpha: Float
    public var tolerance: Float
    public var maxIterations: Int

    public init(threshold: Threshold = .soft, lambda: Lambda, alpha: Float, tolerance: Float = 1e-4, maxIterations: Int = 20_000) {
        self.threshold = threshold
        self.lambda = lambda
        self.alpha = alpha
        self.tolerance = tolerance
        self.maxIterations = maxIterations
    }

    /// The same lasso as `encoder` (its threshold and λ) with the step it would use for `op`.
    public init<Op: DictionaryOperator>(matching encoder: UnrolledEncoder, operator op: Op, tolerance: Float = 1e-4,
                                        maxIterations: Int = 20_000) throws {
        self.init(threshold: encoder.threshold, lambda: encoder.lambda, alpha: try encoder.stepSize(for: op),
                  tolerance: tolerance, maxIterations: maxIterations)
    }

    /// Codes for a signal batch and the iterations used.
    public func solve<Op: DictionaryOperator>(_ signals: Tensor, operator op: Op) throws -> (codes: Tensor, iterations: Int) {
        try FlushDenormals.with(true) {
            let shape = try op.codeShape(signalShape: signals.shape)
            let positions = shape.dropFirst().reduce(1, *) / op.atoms
            let b = lambda.values(atoms: op.atoms).map { threshold.scalesWithStep ? $0 * alpha : $0 }
            let hty = op.adjoint(signals)
            var z = Tensor(zeros: shape), zPrev = z, y = z, v = z
            var s: Float = 1
            var used = 0
            for t in 1...max(1, maxIterations) {
                // v = y − α Hᵀ(H y − x)
                v = y
                v.add(op.adjoint(op.apply(y)), scaledBy: -alpha)
                v.add(hty, scaledBy: alpha)
                swap(&z, &zPrev)
                threshold.apply(v, thresholds: b, positions: positions, into: &z)
                let sNext = (1 + (1 + 4 * s * s).squareRoot()) / 2
                let mu = (s - 1) / sNext
                s = sNext
                var change = 0.0, norm = 0.0
                z.data.withUnsafeBufferPointer { pz in
                    zPrev.data.withUnsafeBufferPointer { pp in
                        y.data.withUnsafeMutableBufferPointer { py in
                            for i in 0..<pz.count {
                                let d = pz[i] - pp[i]
                                py[i] = pz[i] + mu * d
                                change += Double(d) * Double(d)
                                norm += Double(pz[i]) * Double(pz[i])
                            }
                        }
                    }
                }
                used = t
                if t > 1 && change <= Double(tolerance) * Double(tolerance) * norm { break }
            }
            return (z, used)
        }
    }
}
