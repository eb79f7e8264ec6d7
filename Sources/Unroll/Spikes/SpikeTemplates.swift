import Foundation
import UnrollCore

/// Template initialisation and the template error (reference crsae §6.1, §6.3).
public enum SpikeTemplates {
    /// Shift-invariant correlation of two filters `[channels, K]` (flattened, same shape) at lag ℓ:
    /// Σ_ch Σ_k a[ch, k]·b[ch, k + ℓ], over |ℓ| ≤ maxLag; returns (largest |corr|, its lag).
    /// Unit-norm inputs give a value in [0, 1].
    public static func bestCorrelation(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>, channels: Int, length k: Int,
                                       maxLag: Int) -> (value: Double, lag: Int) {
        let a = Array(a), b = Array(b)
        var best = -1.0, bestLag = 0
        for lag in -maxLag...maxLag {
            var s = 0.0
            for e in 0..<channels {
                for t in max(0, -lag)..<min(k, k - lag) { s += Double(a[e * k + t]) * Double(b[e * k + t + lag]) }
            }
            if abs(s) > best { best = abs(s); bestLag = lag }
        }
        return (best, bestLag)
    }

    /// The template error err(h, ĥ) = √(1 − ⟨h, ĥ⟩²) of every true filter (MLSP-2018 Eq. 12) with the best
    /// lag (|ℓ| ≤ `maxLag`, default K/4) and the best assignment of learned to true filters (Hungarian on the
    /// errors). `learned` and `truth` are `[C, channels, K]` (normalised here). Returns per true neuron its
    /// error, the learned filter assigned to it and the lag.
    public static func errors(learned: Tensor, truth: Tensor, maxLag: Int? = nil)
        -> [(error: Double, learned: Int, lag: Int)]
    {
        precondition(learned.shape == truth.shape && learned.rank == 3, "template errors: \(learned.shape) vs \(truth.shape)")
        var a = try! Convolution1DDictionary(weights: learned), b = try! Convolution1DDictionary(weights: truth)
        a.normalize()
        b.normalize()
        let (c, ch, k) = (truth.shape[0], truth.shape[1], truth.shape[2])
        let per = ch * k, lagLimit = maxLag ?? max(1, k / 4)
        var cost = [Double](repeating: 0, count: c * c), lags = [Int](repeating: 0, count: c * c)
        for i in 0..<c {
            for j in 0..<c {
                let r = bestCorrelation(b.weights.data[(i * per)..<((i + 1) * per)], a.weights.data[(j * per)..<((j + 1) * per)],
                                        channels: ch, length: k, maxLag: lagLimit)
                cost[i * c + j] = max(0, 1 - min(1, r.value * r.value)).squareRoot()
                lags[i * c + j] = r.lag
            }
        }
        let assignment = Hungarian.assignment(cost: cost, rows: c, cols: c)
        return (0..<c).map { i in (cost[i * c + assignment[i]], assignment[i], lags[i * c + assignment[i]]) }
    }

    /// CRsAE's "close" start: h_c + N(0, (noise·std(h_c))²), renormalised, redrawn per filter until its
    /// template error (best lag) lies in `errorRange` (the paper: [0.4, 0.5]).
    public static func perturbed(_ truth: Tensor, errorRange: ClosedRange<Double> = 0.4...0.5, noise: Double = 0.5,
                                 rng: inout Random) -> Tensor {
        let (c, ch, k) = (truth.shape[0], truth.shape[1], truth.shape[2])
        let per = ch * k
        var out = truth
        for n in 0..<c {
            let h = Array(truth.data[(n * per)..<((n + 1) * per)])
            let mean = h.reduce(0, +) / Float(per)
            let std = (h.reduce(0.0) { $0 + Double(($1 - mean) * ($1 - mean)) } / Double(per)).squareRoot()
            var scale = noise
            for attempt in 0..<10_000 {
                var g = h.map { $0 + Float(scale * std * rng.normal()) }
                let norm = g.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot()
                g = g.map { $0 / Float(norm) }
                let r = bestCorrelation(h[...], g[...], channels: ch, length: k, maxLag: max(1, k / 4))
                let err = max(0, 1 - r.value * r.value).squareRoot()
                if errorRange.contains(err) {
                    out.data.replaceSubrange((n * per)..<((n + 1) * per), with: g)
                    break
                }
                // Steer the noise level towards the range if it keeps missing.
                if attempt % 50 == 49 { scale *= err < errorRange.lowerBound ? 1.2 : 0.85 }
            }
        }
        return out
    }

    /// Waveforms of `length` samples around every downward crossing of −`threshold` on channel 0 of a
    /// `[channels, samples]` recording, starting `before` samples ahead of the crossing; at most `limit`,
    /// evenly spread. Returns `[count, channels, length]`.
    public static func crossings(_ signal: Tensor, threshold: Float, length: Int, before: Int, limit: Int = 2000) -> Tensor {
        let (ch, n) = (signal.shape[0], signal.shape[1])
        var starts: [Int] = []
        var t = 1
        while t < n {
            if signal.data[t] < -threshold && signal.data[t - 1] >= -threshold {
                let s = t - before
                if s >= 0 && s + length <= n { starts.append(s) }
                t += length     // one waveform per spike
            } else {
                t += 1
            }
        }
        if starts.count > limit { starts = (0..<limit).map { starts[$0 * starts.count / limit] } }
        var out = Tensor(zeros: [starts.count, ch, length])
        for (i, s) in starts.enumerated() {
            for e in 0..<ch { for q in 0..<length { out.data[(i * ch + e) * length + q] = signal.data[e * n + s + q] } }
        }
        return out
    }

    /// A start from the recording alone: the `minimumCorrelation` choice among the waveforms at the
    /// crossings of `threshold` robust σ (median|y|/0.6745) of a `[channels, samples]` recording.
    public static func crossingStart(_ recording: Tensor, count: Int, length: Int, threshold: Float = 4, draws: Int = 5000,
                                     rng: inout Random) throws -> Tensor {
        let sigma = SpikeSimulation.robustSigma(recording)
        let waves = crossings(recording, threshold: threshold * sigma, length: length, before: length / 4)
        return try minimumCorrelation(waves, count: count, draws: draws, rng: &rng)
    }

    /// CRsAE's data-driven start (`generateMinCorrTemplates`): among `draws` random subsets of `count`
    /// waveforms (rows of `[W, channels, K]`), the one with the smallest summed |correlation| between its
    /// normalised members; returned normalised, `[count, channels, K]`. Throws when there are fewer
    /// waveforms than `count`.
    public static func minimumCorrelation(_ waveforms: Tensor, count: Int, draws: Int = 5000, rng: inout Random) throws -> Tensor {
        let w = waveforms.rows
        guard w >= count, count >= 1 else {
            throw UnrollError.invalidArgument("template init needs ≥ \(count) threshold crossings, found \(w); lower the threshold")
        }
        var unit = waveforms
        let per = waveforms.cols
        unit.data.withUnsafeMutableBufferPointer { p in
            for i in 0..<w {
                var s = 0.0
                for q in (i * per)..<((i + 1) * per) { s += Double(p[q] * p[q]) }
                let inv = s > 0 ? Float(1 / s.squareRoot()) : 0
                for q in (i * per)..<((i + 1) * per) { p[q] *= inv }
            }
        }
        var best: [Int] = Array(0..<count), bestScore = Double.infinity
        for _ in 0..<max(1, draws) {
            let pick = rng.sample(count, from: w)
            var score = 0.0
            for a in 0..<count {
                for b in (a + 1)..<count {
                    var s = 0.0
                    for q in 0..<per { s += Double(unit.data[pick[a] * per + q] * unit.data[pick[b] * per + q]) }
                    score += abs(s)
                }
            }
            if score < bestScore { bestScore = score; best = pick }
        }
        return unit.gatherRows(best)
    }
}
