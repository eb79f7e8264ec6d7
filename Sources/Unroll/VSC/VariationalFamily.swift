import Foundation
import UnrollCore

/// The variational families of "Variational sparse coding with learned thresholding" (vsc §2–§3).
public enum VariationalFamily: String, CaseIterable, Equatable, Sendable {
    /// N(μ, e^ℓ) against the prior N(0, priorSpread) (a standard VAE).
    case gaussian
    /// Laplace(μ, e^ℓ) against the prior Laplace(0, priorSpread).
    case laplacian
    /// A Gaussian base sample passed through the shifted soft-threshold.
    case thresholdedGaussian
    /// A Laplacian base sample passed through the shifted soft-threshold.
    case thresholdedLaplacian
    /// Tonolini et al.'s concrete spike-and-slab: a relaxed Bernoulli selection times a Gaussian slab.
    case spikeAndSlab

    /// Whether the base distribution is Laplace (ℓ = log b) rather than Gauss (ℓ = log variance).
    public var isLaplacian: Bool { self == .laplacian || self == .thresholdedLaplacian }
    /// Whether samples go through the shifted soft-threshold (and so use `ThresholdKind`).
    public var isThresholded: Bool { self == .thresholdedGaussian || self == .thresholdedLaplacian }
}

/// The threshold λ of the thresholded families.
public enum ThresholdKind: Equatable, Sendable {
    /// A global constant λ ≥ 0.
    case fixed(Float)
    /// A learned per-datum, per-latent, per-sample λ ~ Gamma(α, rate β) from the encoder's α/β heads,
    /// with prior Gamma(3, rate 3/λ0) of mean λ0 = `priorMean`.
    case gamma(priorMean: Float)

    /// The encoder's λ (fixed) or the prior's mean λ0 (learned).
    public var lambda: Float {
        switch self {
        case let .fixed(l): return l
        case let .gamma(m): return m
        }
    }

    /// Shape and rate of the learned threshold's Gamma prior, Gamma(3, rate 3/λ0).
    public var priorShapeRate: (shape: Double, rate: Double) { (3, 3 / Double(lambda)) }
}

/// Settings of a variational family. The defaults are the linear-generator configuration of vsc §4.
public struct VariationalConfig: Equatable, Sendable {
    public var family: VariationalFamily
    public var threshold: ThresholdKind
    /// Prior spread: the Laplace prior's scale b_p, or the Gaussian prior's (and slab prior's) variance.
    public var priorSpread: Float = 0.1
    /// Prior probability γ_p that a spike-and-slab latent is active.
    public var spikePrior: Float = 0.1
    /// Weight of KL(q(λ) ‖ p(λ)) added per latent for learned thresholds.
    public var gammaKLWeight: Float = 0.1
    /// Samples J drawn per datum.
    public var samples: Int = 20

    /// `threshold` nil gives the §4 default for the family: λ = 0.25 (Laplace), 0.52 (Gauss).
    public init(family: VariationalFamily, threshold: ThresholdKind? = nil, priorSpread: Float = 0.1,
                spikePrior: Float = 0.1, gammaKLWeight: Float = 0.1, samples: Int = 20) {
        self.family = family
        self.threshold = threshold ?? VariationalConfig.defaultThreshold(for: family)
        self.priorSpread = priorSpread
        self.spikePrior = spikePrior
        self.gammaKLWeight = gammaKLWeight
        self.samples = samples
    }

    /// The fixed threshold of the §4 linear-generator runs: 0.25 (Laplacian families), 0.52 (Gaussian).
    public static func defaultThreshold(for family: VariationalFamily) -> ThresholdKind {
        .fixed(family.isLaplacian ? 0.25 : 0.52)
    }

    /// Whether this configuration samples learned Gamma thresholds (and needs the α, β heads).
    public var learnsThreshold: Bool {
        if family.isThresholded, case .gamma = threshold { return true }
        return false
    }

    public func validate() throws {
        func bad(_ m: String) -> UnrollError { .invalidArgument("variational config: \(m)") }
        switch threshold {
        case let .fixed(l):
            guard l.isFinite, l >= 0 else { throw bad("threshold λ must be a finite number ≥ 0, got \(l)") }
        case let .gamma(m):
            guard m.isFinite, m > 0 else { throw bad("learned threshold prior mean λ0 must be > 0, got \(m)") }
        }
        guard priorSpread.isFinite, priorSpread > 0 else {
            throw bad("prior spread must be > 0, got \(priorSpread)")
        }
        guard spikePrior > 0, spikePrior < 1 else { throw bad("spike prior must be in (0, 1), got \(spikePrior)") }
        guard gammaKLWeight.isFinite, gammaKLWeight >= 0 else {
            throw bad("Gamma KL weight must be ≥ 0, got \(gammaKLWeight)")
        }
        guard samples >= 1 else { throw bad("samples J must be ≥ 1, got \(samples)") }
    }
}

/// What the encoder heads produce for a batch of B data, each [B, D].
///
/// `logScale` is log b (Laplacian families) or the log variance (Gaussian families, spike-and-slab).
/// `alphaLogit`/`betaLogit` only for learned thresholds (α = clip(exp(·), 1e-6, 1e6), likewise β);
/// `spikeLogit` only for spike-and-slab (log γ = min(spikeLogit, 0)). The same struct carries
/// gradients with respect to these tensors.
public struct EncoderOutputs: Sendable {
    public var mean: Tensor
    public var logScale: Tensor
    public var alphaLogit: Tensor?
    public var betaLogit: Tensor?
    public var spikeLogit: Tensor?

    public init(mean: Tensor, logScale: Tensor, alphaLogit: Tensor? = nil, betaLogit: Tensor? = nil,
                spikeLogit: Tensor? = nil) {
        self.mean = mean
        self.logScale = logScale
        self.alphaLogit = alphaLogit
        self.betaLogit = betaLogit
        self.spikeLogit = spikeLogit
    }

    /// Data B (rows of `mean`).
    public var data: Int { mean.rows }
    /// Latents D (columns of `mean`).
    public var latents: Int { mean.cols }

    /// Adds `other` head by head (for summing gradients); a head missing on one side is taken from the other.
    public mutating func add(_ other: EncoderOutputs, scaledBy scale: Float = 1) {
        func sum(_ a: Tensor?, _ b: Tensor?) -> Tensor? {
            guard let b else { return a }
            guard var a else { return scale == 1 ? b : b.map { $0 * scale } }
            a.add(b, scaledBy: scale)
            return a
        }
        mean.add(other.mean, scaledBy: scale)
        logScale.add(other.logScale, scaledBy: scale)
        alphaLogit = sum(alphaLogit, other.alphaLogit)
        betaLogit = sum(betaLogit, other.betaLogit)
        spikeLogit = sum(spikeLogit, other.spikeLogit)
    }

    /// Checks that every head `config` needs is present, shaped like `mean` ([B, D]) and finite.
    public func validate(for config: VariationalConfig) throws {
        if let problem = structuralProblem(for: config) { throw UnrollError.invalidArgument("encoder outputs: \(problem)") }
        for (name, head) in heads(for: config) where head?.hasNonFinite == true {
            throw UnrollError.invalidArgument("encoder outputs: \(name) contains NaN or ±Inf")
        }
    }

    /// The heads `config` uses, by name (nil where missing).
    func heads(for config: VariationalConfig) -> [(String, Tensor?)] {
        var heads: [(String, Tensor?)] = [("mean", mean), ("logScale", logScale)]
        if config.learnsThreshold { heads += [("alphaLogit", alphaLogit), ("betaLogit", betaLogit)] }
        if config.family == .spikeAndSlab { heads.append(("spikeLogit", spikeLogit)) }
        return heads
    }

    /// A missing head or a shape mismatch, described; nil when the structure fits `config`.
    func structuralProblem(for config: VariationalConfig) -> String? {
        guard mean.rank == 2 else { return "mean must be [B, D], got \(mean.shape)" }
        for (name, head) in heads(for: config) {
            guard let t = head else { return "\(config.family) with \(config.threshold) needs the \(name) head" }
            guard t.shape == mean.shape else { return "\(name) must be \(mean.shape) like mean, got \(t.shape)" }
        }
        return nil
    }
}

/// α or β of a learned threshold from its head: clip(exp(logit), 1e-6, 1e6), and ∂/∂logit (0 when clipped).
@inline(__always)
func gammaParameter(_ logit: Float) -> (value: Double, derivative: Double) {
    let e = exp(Double(logit))
    if e < 1e-6 { return (1e-6, 0) }
    if e > 1e6 { return (1e6, 0) }
    return (e, e)
}

/// The spike probability γ = clamp(exp(min(s, 0)), 1e-6, 1 − 1e-6) and ∂γ/∂s (0 where clamped or s ≥ 0).
@inline(__always)
func spikeProbability(_ s: Float) -> (value: Double, derivative: Double) {
    let e = exp(min(Double(s), 0))
    if e < 1e-6 { return (1e-6, 0) }
    if e > 1 - 1e-6 { return (1 - 1e-6, 0) }
    return (e, e)
}

extension VariationalConfig {
    /// The method's name in tables, as the paper labels it ("Thresh Laplacian+Gamma", …).
    public var label: String {
        let base: String
        switch family {
        case .gaussian: base = "Gaussian"
        case .laplacian: base = "Laplacian"
        case .thresholdedGaussian: base = "Thresh Gaussian"
        case .thresholdedLaplacian: base = "Thresh Laplacian"
        case .spikeAndSlab: base = "Spike-and-slab"
        }
        return learnsThreshold ? base + "+Gamma" : base
    }
}

extension VariationalConfig {
    /// The settings as checkpoint metadata (`vsc.family`, `vsc.threshold`, `vsc.lambda`, …).
    var metadata: [String: String] {
        var meta: [String: String] = [:]
        meta["vsc.family"] = family.rawValue
        switch threshold {
        case let .fixed(l): meta["vsc.threshold"] = "fixed"; meta["vsc.lambda"] = l.description
        case let .gamma(m): meta["vsc.threshold"] = "gamma"; meta["vsc.lambda"] = m.description
        }
        meta["vsc.prior_spread"] = priorSpread.description
        meta["vsc.spike_prior"] = spikePrior.description
        meta["vsc.gamma_kl_weight"] = gammaKLWeight.description
        meta["vsc.samples"] = String(samples)
        return meta
    }

    /// The settings read back from `metadata` (throws `invalidCheckpoint` naming a missing or bad key).
    init(metadata meta: [String: String]) throws {
        let family = try meta.choice("vsc.family", VariationalFamily.self)
        let lambda = try meta.number("vsc.lambda", Float.self)
        let threshold: ThresholdKind
        switch try meta.required("vsc.threshold") {
        case "fixed": threshold = .fixed(lambda)
        case "gamma": threshold = .gamma(priorMean: lambda)
        case let other: throw UnrollError.invalidCheckpoint("metadata vsc.threshold '\(other)': expected fixed or gamma")
        }
        self.init(family: family, threshold: threshold, priorSpread: try meta.number("vsc.prior_spread", Float.self),
                  spikePrior: try meta.number("vsc.spike_prior", Float.self),
                  gammaKLWeight: try meta.number("vsc.gamma_kl_weight", Float.self),
                  samples: try meta.number("vsc.samples", Int.self))
    }
}
