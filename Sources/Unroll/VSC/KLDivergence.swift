import Foundation

/// Closed-form KL divergences of the variational families (vsc §2–§3), each with its partial
/// derivatives with respect to the encoder's parameterisation. All in Double.
public enum KLDivergence {
    /// KL(N(μ, e^ℓ) ‖ N(0, v_p)) with ℓ the log-variance and v_p the prior variance.
    public static func gaussian(mean mu: Double, logVariance l: Double, priorVariance vp: Double)
        -> (value: Double, dMean: Double, dLogVariance: Double)
    {
        let v = exp(l)
        let value = -0.5 * (1 + l - log(vp)) + 0.5 * (mu * mu + v) / vp
        return (value, mu / vp, -0.5 + 0.5 * v / vp)
    }

    /// KL(Laplace(μ, b) ‖ Laplace(0, b_p)) = |μ|/b_p + log b_p − log b − 1 + (b/b_p) e^{−|μ|/b}, ℓ = log b.
    public static func laplace(mean mu: Double, logScale l: Double, priorScale bp: Double)
        -> (value: Double, dMean: Double, dLogScale: Double)
    {
        let b = exp(l), a = abs(mu), e = exp(-a / b)
        let value = a / bp + log(bp) - l - 1 + (b / bp) * e
        let sign: Double = mu > 0 ? 1 : (mu < 0 ? -1 : 0)
        return (value, sign * (1 - e) / bp, -1 + (b / bp) * e * (1 + a / b))
    }

    /// KL(Bernoulli(γ) ‖ Bernoulli(γ_p)) for γ, γ_p in (0, 1).
    public static func bernoulli(_ g: Double, prior gp: Double) -> (value: Double, dProbability: Double) {
        let value = g * log(g / gp) + (1 - g) * log((1 - g) / (1 - gp))
        return (value, log(g / gp) - log((1 - g) / (1 - gp)))
    }

    /// KL(Gamma(α, rate β) ‖ Gamma(α_p, rate β_p))
    /// = (α − α_p) ψ(α) − log Γ(α) + log Γ(α_p) + α_p (log β − log β_p) + α (β_p − β)/β.
    public static func gamma(shape a: Double, rate b: Double, priorShape ap: Double, priorRate bp: Double)
        -> (value: Double, dShape: Double, dRate: Double)
    {
        let value = (a - ap) * SpecialFunctions.digamma(a) - SpecialFunctions.logGamma(a)
            + SpecialFunctions.logGamma(ap) + ap * (log(b) - log(bp)) + a * (bp - b) / b
        let dShape = (a - ap) * SpecialFunctions.trigamma(a) + bp / b - 1
        let dRate = ap / b - a * bp / (b * b)
        return (value, dShape, dRate)
    }

    /// The spike-and-slab KL: γ · KL(N(μ, e^ℓ) ‖ N(0, v_p)) + KL(Bernoulli(γ) ‖ Bernoulli(γ_p)).
    public static func spikeAndSlab(mean mu: Double, logVariance l: Double, spike g: Double,
                                    priorVariance vp: Double, spikePrior gp: Double)
        -> (value: Double, dMean: Double, dLogVariance: Double, dSpike: Double)
    {
        let slab = gaussian(mean: mu, logVariance: l, priorVariance: vp)
        let spike = bernoulli(g, prior: gp)
        return (g * slab.value + spike.value, g * slab.dMean, g * slab.dLogVariance, slab.value + spike.dProbability)
    }
}
