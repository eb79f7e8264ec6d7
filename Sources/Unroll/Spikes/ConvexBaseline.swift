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

    /// Codes for a signal batch and the iterations used: the one unrolled loop (`UnrolledEncoder`) run
    /// as an iterative solver, FISTA from z = 0 until the relative change is ≤ `tolerance`.
    public func solve<Op: DictionaryOperator>(_ signals: Tensor, operator op: Op) throws -> (codes: Tensor, iterations: Int) {
        try UnrolledEncoder(layers: max(1, maxIterations), algorithm: .fista, threshold: threshold, lambda: lambda,
                            step: .fixed(alpha), tolerance: tolerance).solve(signals, with: op)
    }
}
