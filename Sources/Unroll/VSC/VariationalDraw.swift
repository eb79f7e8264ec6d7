import Foundation
import UnrollCore

/// J codes sampled per datum from a variational family, with what backpropagation needs.
public struct VariationalDraw: Sendable {
    /// Sampled codes [B·J, D], row b·J + j.
    public var codes: Tensor
    /// Per datum b: Σ_latents KL (base KL + gammaKLWeight·KL_Gamma, or the spike-and-slab KL); the same for every j.
    public var kl: [Double]
    /// Per datum and latent [B, D]: the KL terms that `kl` sums over latents (for posterior-collapse counts).
    public var latentKL: Tensor
    /// Samples J per datum.
    public var samples: Int
    /// The sampled thresholds λ [B·J, D] of a learned-threshold family (nil otherwise).
    public var thresholds: Tensor?
    /// The base samples before thresholding or selection [B·J, D]: μ + ε (Laplace, Gauss families)
    /// or the slab (spike-and-slab). The straight-through backward differentiates these.
    public var base: Tensor
    /// Spike-and-slab only: the relaxed selection sigmoid((logistic + log γ)/T) [B·J, D], before rounding.
    public var selection: Tensor?
    /// ∂code/∂(encoder output) per code entry [B·J, D] under the straight-through surrogate.
    var codeJacobian: EncoderOutputs
    /// ∂KL_b/∂(encoder output) per latent [B, D].
    var klPartials: EncoderOutputs

    /// Gradients for every encoder head given ∂L/∂codes [B·J, D] (already weighted by the sample
    /// aggregation), by the straight-through estimator; the KL is not included (see `klGradient`).
    public func backward(codesGradient g: Tensor) -> EncoderOutputs {
        precondition(g.shape == codes.shape, "codes gradient must be \(codes.shape), got \(g.shape)")
        let d = codes.cols, b = codes.rows / samples, j = samples
        func reduce(_ jac: Tensor?) -> Tensor? {
            guard let jac else { return nil }
            var out = [Float](repeating: 0, count: b * d)
            g.data.withUnsafeBufferPointer { gp in
                jac.data.withUnsafeBufferPointer { jp in
                    out.withUnsafeMutableBufferPointer { op in
                        for datum in 0..<b {
                            for s in 0..<j {
                                let row = (datum * j + s) * d
                                for k in 0..<d { op[datum * d + k] += gp[row + k] * jp[row + k] }
                            }
                        }
                    }
                }
            }
            return Tensor(shape: [b, d], data: out)
        }
        return EncoderOutputs(mean: reduce(codeJacobian.mean)!, logScale: reduce(codeJacobian.logScale)!,
                              alphaLogit: reduce(codeJacobian.alphaLogit), betaLogit: reduce(codeJacobian.betaLogit),
                              spikeLogit: reduce(codeJacobian.spikeLogit))
    }

    /// Gradient of klWeight·Σ_b weights[b]·KL_b with respect to the encoder heads (weights e.g. 1/B each).
    public func klGradient(weights: [Float], klWeight: Float) -> EncoderOutputs {
        let b = kl.count
        precondition(weights.count == b, "KL gradient needs \(b) weights, got \(weights.count)")
        func scale(_ t: Tensor?) -> Tensor? {
            guard var t else { return nil }
            let d = t.cols
            for datum in 0..<b {
                let w = klWeight * weights[datum]
                for k in 0..<d { t.data[datum * d + k] *= w }
            }
            return t
        }
        return EncoderOutputs(mean: scale(klPartials.mean)!, logScale: scale(klPartials.logScale)!,
                              alphaLogit: scale(klPartials.alphaLogit), betaLogit: scale(klPartials.betaLogit),
                              spikeLogit: scale(klPartials.spikeLogit))
    }
}

/// Draws `config.samples` codes per datum from the variational family (vsc §2–§3).
///
/// Base sample s = μ + ε: Laplace ε = −b·sign(u)·log(max(1 − 2|u|, 1e-6))·warmup, u ~ U(−½, ½);
/// Gauss ε = N(0, 1)·exp(ℓ/2). Thresholded families: z = 0 if |ε| ≤ λ, else μ + ε − λ·sign(ε).
/// Backward is the clean straight-through estimator: as if z = μ + ε everywhere (∂z/∂μ = 1,
/// ∂z/∂ℓ = ε·(1 Laplace, ½ Gauss)), plus ∂z/∂λ = −sign(ε) on active entries for learned λ,
/// chained into α, β by the implicit Gamma reparameterisation gradient.
/// Spike-and-slab: slab = w·μ + (w·σ + √(1 − w))·n, selection = sigmoid((logistic noise + log γ)/T),
/// z = round(selection)·slab, backward through the soft selection.
///
/// `warmup` in [0, 1] scales the Laplace noise and the slab (1 at evaluation); `temperature` T > 0 is
/// the spike-and-slab relaxation's. The config must be valid and the outputs carry the heads it needs,
/// shaped [B, D] (`outputs.validate(for: config)` checks both and finiteness); NaN heads do not trap but
/// give NaN codes or KL, so a trainer sees divergence in its loss. Each datum gets its own streams
/// split from `rng` in order, so results do not depend on the worker count.
public func drawCodes(_ outputs: EncoderOutputs, config: VariationalConfig, warmup: Float, temperature: Float,
                      rng: inout Random) -> VariationalDraw {
    precondition((try? config.validate()) != nil, "drawCodes needs a validated config")
    if let problem = outputs.structuralProblem(for: config) { preconditionFailure("drawCodes: \(problem)") }
    precondition(warmup >= 0 && warmup <= 1, "warm-up must be in [0, 1], got \(warmup)")
    precondition(temperature > 0, "temperature must be > 0, got \(temperature)")
    let b = outputs.data, d = outputs.latents, j = config.samples, n = b * j * d
    let family = config.family, learned = config.learnsThreshold, spike = family == .spikeAndSlab
    // Per datum: one stream for the base noise, one for learned thresholds, so perturbing α or β
    // (whose rejection sampler consumes a varying count of numbers) leaves the base noise unchanged.
    var streams = (0..<b).map { _ in rng.split() }
    var thresholdStreams = (0..<b).map { _ in rng.split() }

    var codes = [Float](repeating: 0, count: n)
    var jMean = [Float](repeating: 0, count: n), jScale = [Float](repeating: 0, count: n)
    var jAlpha = [Float](repeating: 0, count: learned ? n : 0), jBeta = jAlpha, lambdas = jAlpha
    var jSpike = [Float](repeating: 0, count: spike ? n : 0), selection = jSpike
    var base = [Float](repeating: 0, count: n)
    var kl = [Double](repeating: 0, count: b), latentKL = [Float](repeating: 0, count: b * d)
    var kMean = [Float](repeating: 0, count: b * d), kScale = kMean
    var kAlpha = [Float](repeating: 0, count: learned ? b * d : 0), kBeta = kAlpha
    var kSpike = [Float](repeating: 0, count: spike ? b * d : 0)

    let fixedLambda = Double(config.threshold.lambda)
    let prior = config.threshold.priorShapeRate
    let spread = Double(config.priorSpread), gammaWeight = Double(config.gammaKLWeight)
    let w = Double(warmup), t = Double(temperature), slabFloor = (1 - w).squareRoot()
    let mu = outputs.mean.data, ls = outputs.logScale.data
    let aLogit = outputs.alphaLogit?.data ?? [], bLogit = outputs.betaLogit?.data ?? []
    let sLogit = outputs.spikeLogit?.data ?? []

    // One datum: its J·D code entries and its D KL terms. Writes only rows of datum `i`.
    func datum(_ i: Int, _ r: inout Random, _ thresholdRandom: inout Random, _ base: UnsafeMutablePointer<Float>,
               _ selection: UnsafeMutablePointer<Float>?,
               _ codes: UnsafeMutablePointer<Float>, _ jMean: UnsafeMutablePointer<Float>,
               _ jScale: UnsafeMutablePointer<Float>, _ jAlpha: UnsafeMutablePointer<Float>?,
               _ jBeta: UnsafeMutablePointer<Float>?, _ lambdas: UnsafeMutablePointer<Float>?,
               _ jSpike: UnsafeMutablePointer<Float>?, _ kl: UnsafeMutablePointer<Double>,
               _ latentKL: UnsafeMutablePointer<Float>,
               _ kMean: UnsafeMutablePointer<Float>, _ kScale: UnsafeMutablePointer<Float>,
               _ kAlpha: UnsafeMutablePointer<Float>?, _ kBeta: UnsafeMutablePointer<Float>?,
               _ kSpike: UnsafeMutablePointer<Float>?) {
        for s in 0..<j {
            for k in 0..<d {
                let p = i * d + k, e = (i * j + s) * d + k
                let m = Double(mu[p]), l = Double(ls[p])
                if spike {
                    let noise = r.normal()
                    let sigma = exp(0.5 * l)
                    let slab = w * m + (w * sigma + slabFloor) * noise
                    var u = r.uniform()
                    while u == 0 { u = r.uniform() }
                    let logSpike = min(Double(sLogit[p]), 0)
                    let x = (log(u) - log1p(-u) + logSpike) / t
                    let sel = x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x))
                    let hard: Double = sel > 0.5 ? 1 : 0
                    codes[e] = Float(hard * slab)
                    base[e] = Float(slab)
                    selection![e] = Float(sel)
                    jMean[e] = Float(hard * w)
                    jScale[e] = Float(hard * w * sigma * 0.5 * noise)
                    jSpike![e] = sLogit[p] < 0 ? Float(slab * sel * (1 - sel) / t) : 0
                    continue
                }
                let eps: Double
                if family.isLaplacian {
                    let u = r.uniform() - 0.5
                    eps = -exp(l) * (u < 0 ? -1 : 1) * log(max(1 - 2 * abs(u), 1e-6)) * w
                    jScale[e] = Float(eps)
                } else {
                    eps = r.normal() * exp(0.5 * l)
                    jScale[e] = Float(0.5 * eps)
                }
                jMean[e] = 1
                base[e] = Float(m + eps)
                guard family.isThresholded else {
                    codes[e] = Float(m + eps)
                    continue
                }
                var lambda = fixedLambda
                var dLambdaA = 0.0, dLambdaB = 0.0
                if learned {
                    let a = gammaParameter(aLogit[p]), rate = gammaParameter(bLogit[p])
                    guard !a.value.isNaN && !rate.value.isNaN else {
                        codes[e] = .nan
                        lambdas![e] = .nan
                        continue
                    }
                    let g = GammaSampler.sample(shape: a.value, rate: rate.value, rng: &thresholdRandom)
                    lambda = g.value
                    dLambdaA = g.dShape * a.derivative
                    dLambdaB = g.dRate * rate.derivative
                    lambdas![e] = Float(lambda)
                }
                if abs(eps) <= lambda {
                    codes[e] = 0
                } else {
                    let sign: Double = eps > 0 ? 1 : -1
                    codes[e] = Float(m + eps - lambda * sign)
                    if learned {
                        jAlpha![e] = Float(-sign * dLambdaA)
                        jBeta![e] = Float(-sign * dLambdaB)
                    }
                }
            }
        }
        var total = 0.0
        for k in 0..<d {
            let p = i * d + k, m = Double(mu[p]), l = Double(ls[p])
            let before = total
            defer { latentKL[p] = Float(total - before) }
            switch family {
            case .gaussian, .thresholdedGaussian:
                let g = KLDivergence.gaussian(mean: m, logVariance: l, priorVariance: spread)
                total += g.value
                kMean[p] = Float(g.dMean)
                kScale[p] = Float(g.dLogVariance)
            case .laplacian, .thresholdedLaplacian:
                let g = KLDivergence.laplace(mean: m, logScale: l, priorScale: spread)
                total += g.value
                kMean[p] = Float(g.dMean)
                kScale[p] = Float(g.dLogScale)
            case .spikeAndSlab:
                let gamma = spikeProbability(sLogit[p])
                let g = KLDivergence.spikeAndSlab(mean: m, logVariance: l, spike: gamma.value, priorVariance: spread,
                                                  spikePrior: Double(config.spikePrior))
                total += g.value
                kMean[p] = Float(g.dMean)
                kScale[p] = Float(g.dLogVariance)
                kSpike![p] = Float(g.dSpike * gamma.derivative)
            }
            if learned {
                let a = gammaParameter(aLogit[p]), rate = gammaParameter(bLogit[p])
                guard !a.value.isNaN && !rate.value.isNaN else {
                    total = .nan
                    continue
                }
                let g = KLDivergence.gamma(shape: a.value, rate: rate.value, priorShape: prior.shape,
                                           priorRate: prior.rate)
                total += gammaWeight * g.value
                kAlpha![p] = Float(gammaWeight * g.dShape * a.derivative)
                kBeta![p] = Float(gammaWeight * g.dRate * rate.derivative)
            }
        }
        kl[i] = total
    }

    codes.withUnsafeMutableBufferPointer { codesP in
    jMean.withUnsafeMutableBufferPointer { jMeanP in
    jScale.withUnsafeMutableBufferPointer { jScaleP in
    jAlpha.withUnsafeMutableBufferPointer { jAlphaP in
    jBeta.withUnsafeMutableBufferPointer { jBetaP in
    lambdas.withUnsafeMutableBufferPointer { lambdasP in
    jSpike.withUnsafeMutableBufferPointer { jSpikeP in
    kl.withUnsafeMutableBufferPointer { klP in
    latentKL.withUnsafeMutableBufferPointer { latentP in
    kMean.withUnsafeMutableBufferPointer { kMeanP in
    kScale.withUnsafeMutableBufferPointer { kScaleP in
    kAlpha.withUnsafeMutableBufferPointer { kAlphaP in
    kBeta.withUnsafeMutableBufferPointer { kBetaP in
    kSpike.withUnsafeMutableBufferPointer { kSpikeP in
    streams.withUnsafeMutableBufferPointer { streamsP in
    thresholdStreams.withUnsafeMutableBufferPointer { thresholdP in
    base.withUnsafeMutableBufferPointer { baseP in
    selection.withUnsafeMutableBufferPointer { selectionP in
        // Learned thresholds cost far more per entry (Gamma draw + implicit gradient).
        Parallel.forEachChunk(b, minPerPart: max(1, (learned ? 2_000 : 50_000) / max(1, j * d))) { range in
            for i in range {
                datum(i, &streamsP[i], &thresholdP[i], baseP.baseAddress!, selectionP.baseAddress, codesP.baseAddress!, jMeanP.baseAddress!, jScaleP.baseAddress!,
                      jAlphaP.baseAddress, jBetaP.baseAddress, lambdasP.baseAddress, jSpikeP.baseAddress,
                      klP.baseAddress!, latentP.baseAddress!, kMeanP.baseAddress!, kScaleP.baseAddress!, kAlphaP.baseAddress,
                      kBetaP.baseAddress, kSpikeP.baseAddress)
            }
        }
    }}}}}}}}}}}}}}}}}}

    func tensor(_ a: [Float], _ rows: Int) -> Tensor? { a.isEmpty ? nil : Tensor(shape: [rows, d], data: a) }
    let jacobian = EncoderOutputs(mean: tensor(jMean, b * j)!, logScale: tensor(jScale, b * j)!,
                                  alphaLogit: tensor(jAlpha, b * j), betaLogit: tensor(jBeta, b * j),
                                  spikeLogit: tensor(jSpike, b * j))
    let partials = EncoderOutputs(mean: tensor(kMean, b)!, logScale: tensor(kScale, b)!,
                                  alphaLogit: tensor(kAlpha, b), betaLogit: tensor(kBeta, b),
                                  spikeLogit: tensor(kSpike, b))
    return VariationalDraw(codes: Tensor(shape: [b * j, d], data: codes), kl: kl,
                           latentKL: Tensor(shape: [b, d], data: latentKL), samples: j,
                           thresholds: tensor(lambdas, b * j),
                           base: Tensor(shape: [b * j, d], data: base), selection: tensor(selection, b * j), codeJacobian: jacobian, klPartials: partials)
}
