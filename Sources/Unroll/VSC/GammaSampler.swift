import UnrollCore

/// Gamma(shape α, rate β) draws with their implicit reparameterisation gradients, for the learned
/// thresholds λ ~ q(λ | x) of the "+Gamma" variational families.
public enum GammaSampler {
    /// One draw λ ~ Gamma(α, rate β) (Marsaglia–Tsang; α < 1 boosted by U^{1/α}) and ∂λ/∂α, ∂λ/∂β
    /// at fixed CDF value: ∂λ/∂α = (∂x/∂α)/β for the standard sample x = βλ, ∂λ/∂β = −λ/β.
    public static func sample(shape alpha: Double, rate beta: Double, rng: inout Random)
        -> (value: Double, dShape: Double, dRate: Double)
    {
        let x = rng.gamma(shape: alpha, scale: 1)
        let lambda = x / beta
        return (lambda, SpecialFunctions.gammaQuantileShapeDerivative(x, shape: alpha) / beta, -lambda / beta)
    }

    /// The Gamma(α, rate β) CDF at λ.
    public static func cdf(_ lambda: Double, shape alpha: Double, rate beta: Double) -> Double {
        SpecialFunctions.regularizedLowerGamma(alpha, lambda * beta)
    }
}
