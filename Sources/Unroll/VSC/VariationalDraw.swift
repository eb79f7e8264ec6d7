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
    /// The entries of `codes` equal to zero as drawn (counted while they were hot in cache).
    let codeZeros: Int

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
                        nonisolated(unsafe) let op = op
                        Parallel.forEachChunk(b, minPerPart: max(1, (1 << 16) / max(1, j * d))) { data in
                            for datum in data {
                                for s in 0..<j {
                                    let row = (datum * j + s) * d
                                    for k in 0..<d { op[datum * d + k] += gp[row + k] * jp[row + k] }
                                }
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
    let b = outputs.data, d = outputs.latents, j = config.samples
    let family = config.family, learned = config.learnsThreshold, spike = family == .spikeAndSlab
    // Per datum: one stream for the base noise, one for learned thresholds, so perturbing α or β
    // (whose rejection sampler consumes a varying count of numbers) leaves the base noise unchanged.
    var streams = (0..<b).map { _ in rng.split() }
    var thresholdStreams = (0..<b).map { _ in rng.split() }

    let laplacian = family.isLaplacian, thresholded = family.isThresholded
    let fixedLambda = Double(config.threshold.lambda)
    let prior = config.threshold.priorShapeRate
    let spread = Double(config.priorSpread), spikePrior = Double(config.spikePrior)
    let gammaWeight = Double(config.gammaKLWeight)
    let w = Double(warmup), t = Double(temperature), slabFloor = (1 - w).squareRoot()
    let mu = outputs.mean.data, ls = outputs.logScale.data
    let aLogit = outputs.alphaLogit?.data ?? [], bLogit = outputs.betaLogit?.data ?? []
    let sLogit = outputs.spikeLogit?.data ?? []

    /// The noise scale of latent p: exp(ℓ) for the Laplacian families, exp(ℓ/2) for the others (computed
    /// once per latent, not per draw).
    func noiseScale(_ p: Int) -> Double { laplacian ? exp(Double(ls[p])) : exp(0.5 * Double(ls[p])) }

    /// Spike-and-slab code entry e = (i·J + s)·D + k of latent p = i·D + k, whose noise scale is `scale`:
    /// value, slab, selection and Jacobian.
    @inline(__always)
    func sampleSpike(_ out: DrawBuffers, _ e: Int, _ p: Int, _ scale: Double, _ r: inout Random) {
        let m = Double(mu[p])
        let noise = r.normal()
        let sigma = scale
        let slab = w * m + (w * sigma + slabFloor) * noise
        var u = r.uniform()
        while u == 0 { u = r.uniform() }
        let x = (log(u) - log1p(-u) + min(Double(sLogit[p]), 0)) / t  // (logistic noise + log γ)/T
        let sel = x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x))
        let hard: Double = sel > 0.5 ? 1 : 0
        out.codes[e] = Float(hard * slab)
        out.base[e] = Float(slab)
        out.selection[e] = Float(sel)
        out.dMean[e] = Float(hard * w)
        out.dScale[e] = Float(hard * w * sigma * 0.5 * noise)
        out.dSpike[e] = sLogit[p] < 0 ? Float(slab * sel * (1 - sel) / t) : 0
    }

    /// The rest of code entry e of latent p (Laplace and Gauss families) once its noise ε is drawn: base
    /// sample, code (thresholded by a fixed or a sampled λ) and Jacobian.
    @inline(__always)
    func codeFromNoise(_ out: DrawBuffers, _ e: Int, _ p: Int, _ eps: Double, _ thresholdRandom: inout Random) {
        let m = Double(mu[p])
        out.dMean[e] = 1
        out.base[e] = Float(m + eps)
        guard thresholded else {
            out.codes[e] = Float(m + eps)
            return
        }
        var lambda = fixedLambda, dLambdaA = 0.0, dLambdaB = 0.0
        if learned {
            let a = gammaParameter(aLogit[p]), rate = gammaParameter(bLogit[p])
            guard !a.value.isNaN && !rate.value.isNaN else {
                (out.codes[e], out.lambdas[e], out.dAlpha[e], out.dBeta[e]) = (.nan, .nan, 0, 0)
                return
            }
            let g = GammaSampler.sample(shape: a.value, rate: rate.value, rng: &thresholdRandom)
            lambda = g.value
            dLambdaA = g.dShape * a.derivative
            dLambdaB = g.dRate * rate.derivative
            out.lambdas[e] = Float(lambda)
        }
        // Every buffer entry is written (the buffers start uninitialised).
        let active = !(abs(eps) <= lambda), sign: Double = eps > 0 ? 1 : -1
        out.codes[e] = active ? Float(m + eps - lambda * sign) : 0
        if learned {
            out.dAlpha[e] = active ? Float(-sign * dLambdaA) : 0
            out.dBeta[e] = active ? Float(-sign * dLambdaB) : 0
        }
    }

    /// KL of latent p and its partials; returns the KL.
    func latentKL(_ out: DrawBuffers, _ p: Int) -> Double {
        let m = Double(mu[p]), l = Double(ls[p])
        var kl: Double
        switch family {
        case .gaussian, .thresholdedGaussian:
            let g = KLDivergence.gaussian(mean: m, logVariance: l, priorVariance: spread)
            (kl, out.klMean[p], out.klScale[p]) = (g.value, Float(g.dMean), Float(g.dLogVariance))
        case .laplacian, .thresholdedLaplacian:
            let g = KLDivergence.laplace(mean: m, logScale: l, priorScale: spread)
            (kl, out.klMean[p], out.klScale[p]) = (g.value, Float(g.dMean), Float(g.dLogScale))
        case .spikeAndSlab:
            let gamma = spikeProbability(sLogit[p])
            let g = KLDivergence.spikeAndSlab(mean: m, logVariance: l, spike: gamma.value, priorVariance: spread,
                                              spikePrior: spikePrior)
            (kl, out.klMean[p], out.klScale[p]) = (g.value, Float(g.dMean), Float(g.dLogVariance))
            out.klSpike[p] = Float(g.dSpike * gamma.derivative)
        }
        if learned {
            let a = gammaParameter(aLogit[p]), rate = gammaParameter(bLogit[p])
            guard !a.value.isNaN && !rate.value.isNaN else {
                (out.klAlpha[p], out.klBeta[p]) = (0, 0)
                return .nan
            }
            let g = KLDivergence.gamma(shape: a.value, rate: rate.value, priorShape: prior.shape, priorRate: prior.rate)
            kl += gammaWeight * g.value
            out.klAlpha[p] = Float(gammaWeight * g.dShape * a.derivative)
            out.klBeta[p] = Float(gammaWeight * g.dRate * rate.derivative)
        }
        return kl
    }

    return DrawBuffers.filling(data: b, samples: j, latents: d, learned: learned, spike: spike) { out in
        streams.withUnsafeMutableBufferPointer { noise in
            thresholdStreams.withUnsafeMutableBufferPointer { thresholds in
                // Learned thresholds cost far more per entry (Gamma draw + implicit gradient).
                Parallel.forEachChunk(b, minPerPart: max(1, (learned ? 2_000 : 50_000) / max(1, j * d))) { range in
                    var scales = [Double](repeating: 0, count: d), us = scales, logs = scales
                    for i in range {  // datum i writes only its own rows
                        for k in 0..<d { scales[k] = noiseScale(i * d + k) }
                        // The streams in registers, not behind the buffer.
                        var (r, tr) = (noise[i], thresholds[i])
                        for s in 0..<j {
                            let row = (i * j + s) * d
                            if spike {
                                for k in 0..<d { sampleSpike(out, row + k, i * d + k, scales[k], &r) }
                            } else if laplacian {
                                // A row's uniforms, then their logarithms, then its codes: independent libm
                                // calls overlap in the pipeline, where one entry at a time waited for each.
                                for k in 0..<d { us[k] = r.uniform() - 0.5 }
                                for k in 0..<d { logs[k] = log(max(1 - 2 * abs(us[k]), 1e-6)) }
                                for k in 0..<d {
                                    let eps = -scales[k] * (us[k] < 0 ? -1 : 1) * logs[k] * w
                                    out.dScale[row + k] = Float(eps)
                                    codeFromNoise(out, row + k, i * d + k, eps, &tr)
                                }
                            } else {
                                for k in 0..<d {
                                    let eps = r.normal() * scales[k]
                                    out.dScale[row + k] = Float(0.5 * eps)
                                    codeFromNoise(out, row + k, i * d + k, eps, &tr)
                                }
                            }
                        }
                        (noise[i], thresholds[i]) = (r, tr)
                        var zeros = 0
                        for e in (i * j * d)..<((i + 1) * j * d) where out.codes[e] == 0 { zeros += 1 }
                        out.zeros[i] = zeros
                        var total = 0.0
                        for k in 0..<d {
                            let kl = latentKL(out, i * d + k)
                            out.latentKL[i * d + k] = Float(kl)
                            total += kl
                        }
                        out.kl[i] = total
                    }
                }
            }
        }
    }
}

/// The output buffers of one draw, written in place of the arrays the `VariationalDraw` keeps (the heads
/// a configuration does not use are empty). They start uninitialised: the draw writes every entry.
/// Workers write disjoint datum rows, so plain pointers suffice.
private struct DrawBuffers {
    /// Per code entry [B·J, D].
    let codes, base, selection, lambdas, dMean, dScale, dAlpha, dBeta, dSpike: UnsafeMutableBufferPointer<Float>
    /// Per latent [B, D].
    let latentKL, klMean, klScale, klAlpha, klBeta, klSpike: UnsafeMutableBufferPointer<Float>
    let kl: UnsafeMutableBufferPointer<Double>
    /// Per datum: its codes' zero entries.
    let zeros: UnsafeMutableBufferPointer<Int>

    /// Runs `fill` on buffers for a draw of `samples` codes for each of `data` data and returns the draw.
    static func filling(data: Int, samples: Int, latents: Int, learned: Bool, spike: Bool,
                        _ fill: (DrawBuffers) -> Void) -> VariationalDraw {
        let n = data * samples * latents, m = data * latents
        // In `VariationalDraw`'s order: codes, base, selection, thresholds, then the Jacobian's and the
        // KL partials' heads.
        let counts = [n, n, spike ? n : 0, learned ? n : 0, n, n, learned ? n : 0, learned ? n : 0, spike ? n : 0,
                      m, m, m, learned ? m : 0, learned ? m : 0, spike ? m : 0]
        var kl = [Double](repeating: 0, count: data), zeros = [Int](repeating: 0, count: data)
        let arrays = [Float].written(counts: counts) { p in
            kl.withUnsafeMutableBufferPointer { kl in
                zeros.withUnsafeMutableBufferPointer { zeros in
                    fill(DrawBuffers(codes: p[0], base: p[1], selection: p[2], lambdas: p[3], dMean: p[4], dScale: p[5],
                                     dAlpha: p[6], dBeta: p[7], dSpike: p[8], latentKL: p[9], klMean: p[10], klScale: p[11],
                                     klAlpha: p[12], klBeta: p[13], klSpike: p[14], kl: kl, zeros: zeros))
                }
            }
        }
        func tensor(_ i: Int) -> Tensor { Tensor(shape: [arrays[i].count / latents, latents], data: arrays[i]) }
        func head(_ i: Int, _ used: Bool) -> Tensor? { used ? tensor(i) : nil }
        let jacobian = EncoderOutputs(mean: tensor(4), logScale: tensor(5), alphaLogit: head(6, learned),
                                      betaLogit: head(7, learned), spikeLogit: head(8, spike))
        let partials = EncoderOutputs(mean: tensor(10), logScale: tensor(11), alphaLogit: head(12, learned),
                                      betaLogit: head(13, learned), spikeLogit: head(14, spike))
        return VariationalDraw(codes: tensor(0), kl: kl, latentKL: tensor(9), samples: samples,
                               thresholds: head(3, learned), base: tensor(1), selection: head(2, spike),
                               codeJacobian: jacobian, klPartials: partials, codeZeros: zeros.reduce(0, +))
    }
}
