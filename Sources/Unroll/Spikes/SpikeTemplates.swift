import Foundation
import UnrollCore

/// How a spikes training run starts from the recording alone.
public enum SpikeStart: String, CaseIterable, Sendable {
    /// The spikes' waveforms clustered, more clusters than neurons then merged (`SpikeTemplates.clusteredStart`).
    case clusters
    /// Threshold crossings with minimum mutual correlation (CRsAE's `generateMinCorrTemplates`).
    case crossings

    /// `count` templates of `length` samples from a `[channels, samples]` recording, with crossings of
    /// `threshold` robust σ.
    public func templates(_ recording: Tensor, count: Int, length: Int, threshold: Float, rng: inout Random) throws -> Tensor {
        switch self {
        case .clusters: return try SpikeTemplates.clusteredStart(recording, count: count, length: length, threshold: threshold, rng: &rng)
        case .crossings: return try SpikeTemplates.crossingStart(recording, count: count, length: length, threshold: threshold, rng: &rng)
        }
    }
}

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

    /// A start from the recording alone by clustering the spikes it holds (the default of `spikes train`):
    ///
    /// 1. detection: every downward crossing of −`threshold` robust σ (per channel, median|y|/0.6745) on any
    ///    channel, one per template length, aligned on the trough that follows;
    /// 2. k-means++ (seeded, best of `restarts`) into `candidates` clusters (default 3 × `count`) on the
    ///    K samples around the trough: more clusters than neurons, because one neuron's spikes split by
    ///    amplitude and by a sample of alignment jitter before two neurons merge;
    /// 3. merging: while more than `count` clusters remain, the pair with the highest best-lag correlation
    ///    of their mean waveforms merges if it is at least `mergeCorrelation` (the smaller one shifted by
    ///    that lag, means weighted by size);
    /// 4. the `count` largest clusters' mean waveforms, each cut to K samples from K/8 samples before the
    ///    point where 1 % of its energy has passed (a template starts at the spike's onset, as the
    ///    simulated ones do, with a margin for the spikes' jitter), normalised.
    ///
    /// `recording` is `[channels, samples]`; returns `[count, channels, length]`. At most `limit`
    /// waveforms, evenly spread, are clustered. Throws when fewer than `candidates` spikes are detected.
    public static func clusteredStart(_ recording: Tensor, count: Int, length k: Int, threshold: Float = 4,
                                      candidates: Int? = nil, mergeCorrelation: Double = 0.9, limit: Int = 2000,
                                      restarts: Int = 10, rng: inout Random) throws -> Tensor {
        let ch = recording.shape[0]
        let clusters = candidates ?? 3 * count
        guard count >= 1, clusters >= count else {
            throw UnrollError.invalidArgument("template init: \(clusters) candidate clusters for \(count) neurons")
        }
        let pad = k / 2, span = k + 2 * pad
        let windows = spikeWindows(recording, threshold: threshold, length: k, span: span, limit: limit)
        guard windows.count >= clusters else {
            throw UnrollError.invalidArgument("template init needs ≥ \(clusters) spikes crossing \(threshold) robust σ, found \(windows.count); lower --crossing")
        }
        // Cluster on the K samples of every channel around the trough.
        let centre: [[Double]] = windows.map { w in (0..<ch).flatMap { e in w[(e * span + pad)..<(e * span + pad + k)] } }
        let labels = kMeans(centre, clusters: clusters, restarts: restarts, rng: &rng)
        var members = [[Int]](repeating: [], count: clusters)
        for (i, l) in labels.enumerated() { members[l].append(i) }
        func mean(_ rows: [[Double]], _ idx: [Int]) -> [Double] {
            var m = [Double](repeating: 0, count: rows[0].count)
            for i in idx { for q in m.indices { m[q] += rows[i][q] } }
            return m.map { $0 / Double(max(1, idx.count)) }
        }
        // Re-align every member on its cluster's mean (the trough picks a neighbouring sample or channel
        // for some spikes; averaging them unshifted smears the template).
        let jitter = max(1, k / 8)
        var groups = members.filter { !$0.isEmpty }.map { idx in
            let first = mean(windows, idx)
            var sum = [Double](repeating: 0, count: ch * span)
            for i in idx {
                var bestLag = 0, bestDot = -Double.infinity
                for lag in -jitter...jitter {
                    var dot = 0.0
                    for e in 0..<ch { for t in pad..<(pad + k) { dot += windows[i][e * span + t + lag] * first[e * span + t] } }
                    if dot > bestDot { bestDot = dot; bestLag = lag }
                }
                for (q, v) in shifted(windows[i], by: bestLag, channels: ch, length: span).enumerated() { sum[q] += v }
            }
            let whole = sum.map { $0 / Double(idx.count) }
            let centre = (0..<ch).flatMap { e in whole[(e * span + pad)..<(e * span + pad + k)] }
            return (size: Double(idx.count), centre: centre, whole: whole)
        }
        // Merge the most similar pair while it is one neuron's.
        while groups.count > count {
            var best = (value: -1.0, a: 0, b: 0, lag: 0)
            for a in groups.indices {
                for b in (a + 1)..<groups.count {
                    let r = bestCorrelation(unit(groups[a].centre)[...], unit(groups[b].centre)[...], channels: ch, length: k, maxLag: max(1, k / 4))
                    if r.value > best.value { best = (r.value, a, b, r.lag) }
                }
            }
            guard best.value >= mergeCorrelation else { break }
            // Keep the larger as the reference; b[t + lag] lines up with a[t].
            var (a, b, lag) = (best.a, best.b, best.lag)
            if groups[b].size > groups[a].size { (a, b, lag) = (b, a, -lag) }
            let (wa, wb) = (groups[a].size, groups[b].size)
            func blend(_ x: [Double], _ y: [Double], length: Int) -> [Double] {
                let y = shifted(y, by: lag, channels: ch, length: length)
                return zip(x, y).map { ($0 * wa + $1 * wb) / (wa + wb) }
            }
            groups[a] = (wa + wb, blend(groups[a].centre, groups[b].centre, length: k),
                         blend(groups[a].whole, groups[b].whole, length: span))
            groups.remove(at: b)
        }
        let kept = groups.sorted { $0.size > $1.size }.prefix(count)
        guard kept.count == count else {
            throw UnrollError.invalidArgument("template init: the spikes form \(kept.count) distinct clusters, fewer than \(count) neurons")
        }
        var out = Tensor(zeros: [count, ch, k])
        for (c, g) in kept.enumerated() {
            // Onset: K/8 samples before 1 % of the energy (summed over channels) has passed.
            var energy = [Double](repeating: 0, count: span)
            for e in 0..<ch { for t in 0..<span { energy[t] += g.whole[e * span + t] * g.whole[e * span + t] } }
            let total = energy.reduce(0, +)
            var run = 0.0, onset = 0
            while onset < span - 1 && run + energy[onset] < 0.01 * total { run += energy[onset]; onset += 1 }
            let first = min(max(onset - max(1, k / 8), 0), span - k)
            let cut = (0..<ch).flatMap { e in g.whole[(e * span + first)..<(e * span + first + k)] }
            let u = unit(cut)
            for q in 0..<(ch * k) { out.data[c * ch * k + q] = Float(u[q]) }
        }
        return out
    }

    /// Waveforms `[channels · span]` centred on the troughs after each downward crossing of −`threshold`
    /// robust σ on any channel (at most one per `length` samples); at most `limit`, evenly spread.
    static func spikeWindows(_ signal: Tensor, threshold: Float, length k: Int, span: Int, limit: Int) -> [[Double]] {
        let (ch, n) = (signal.shape[0], signal.shape[1])
        let scale: [Float] = (0..<ch).map { e in
            let s = SpikeSimulation.robustSigma(Tensor(shape: [n], data: Array(signal.data[(e * n)..<((e + 1) * n)])))
            return s > 0 ? 1 / s : 0
        }
        // The most negative channel, in robust σ.
        func depth(_ t: Int) -> Float { (0..<ch).map { signal.data[$0 * n + t] * scale[$0] }.min()! }
        var starts: [Int] = []
        var t = 1
        while t < n {
            if depth(t) < -threshold && depth(t - 1) >= -threshold {
                var trough = t
                for u in t..<min(n, t + max(1, k / 2)) where depth(u) < depth(trough) { trough = u }
                let s = trough - span / 2
                if s >= 0 && s + span <= n { starts.append(s) }
                t += k
            } else {
                t += 1
            }
        }
        if starts.count > limit { starts = (0..<limit).map { starts[$0 * starts.count / limit] } }
        return starts.map { s in
            var w = [Double](repeating: 0, count: ch * span)
            for e in 0..<ch { for t in 0..<span { w[e * span + t] = Double(signal.data[e * n + s + t]) } }
            return w
        }
    }

    /// k-means++ (Arthur & Vassilvitskii) with Lloyd iterations, the best of `restarts` by inertia;
    /// the label of every row.
    public static func kMeans(_ x: [[Double]], clusters c: Int, restarts: Int, iterations: Int = 50, rng: inout Random) -> [Int] {
        func distance(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } }
        var bestLabels: [Int] = [], bestInertia = Double.infinity
        for _ in 0..<max(1, restarts) {
            var centres = [x[rng.int(below: x.count)]]
            var nearest = x.map { distance($0, centres[0]) }
            while centres.count < c {
                let total = nearest.reduce(0, +)
                var u = rng.uniform() * total, pick = x.count - 1
                for (i, d) in nearest.enumerated() { u -= d; if u < 0 { pick = i; break } }
                centres.append(x[pick])
                nearest = zip(nearest, x).map { min($0, distance($1, x[pick])) }
            }
            var labels = [Int](repeating: 0, count: x.count)
            for _ in 0..<iterations {
                var changed = false
                for (i, row) in x.enumerated() {
                    var l = 0, d = Double.infinity
                    for (j, m) in centres.enumerated() { let e = distance(row, m); if e < d { d = e; l = j } }
                    if l != labels[i] { labels[i] = l; changed = true }
                }
                var sums = [[Double]](repeating: [Double](repeating: 0, count: x[0].count), count: c)
                var sizes = [Int](repeating: 0, count: c)
                for (i, row) in x.enumerated() { sizes[labels[i]] += 1; for q in row.indices { sums[labels[i]][q] += row[q] } }
                for j in 0..<c where sizes[j] > 0 { centres[j] = sums[j].map { $0 / Double(sizes[j]) } }
                if !changed { break }
            }
            let inertia = zip(x, labels).reduce(0) { $0 + distance($1.0, centres[$1.1]) }
            if inertia < bestInertia { bestInertia = inertia; bestLabels = labels }
        }
        return bestLabels
    }

    static func unit(_ v: [Double]) -> [Float] {
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return v.map { Float(norm > 0 ? $0 / norm : 0) }
    }

    /// `v` (`[channels, length]`) with sample t + lag moved to t, zero-filled.
    static func shifted(_ v: [Double], by lag: Int, channels: Int, length: Int) -> [Double] {
        var out = [Double](repeating: 0, count: v.count)
        for e in 0..<channels {
            for t in 0..<length where t + lag >= 0 && t + lag < length { out[e * length + t] = v[e * length + t + lag] }
        }
        return out
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
