import Foundation
import UnrollCore

/// The shape of the simulated neurons' filters.
public enum SpikeWaveformKind: String, CaseIterable, Equatable, Sendable {
    /// Extracellular action potentials: a small positive pre-bump, a sharp negative trough and a slower
    /// positive after-hyperpolarisation, 1–2 ms long, a different width per neuron.
    case biphasic
    /// Gaussian random filters (the CRsAE §6.1 simulation's generic filters).
    case gaussian
}

/// A simulated extracellular recording with ground truth (reference crsae §6.1), in the CRsAE model
/// y = Σ_c h_c ∗ x_c + v: every neuron fires at a rate drawn from `firingRate`, with amplitudes
/// N(μ_c, sd_c) (μ_c from `amplitudeMean`, sd_c = `amplitudeSpread`·μ_c), two spikes of one neuron are
/// always more than K samples apart (the non-overlap rule), and the noise std is
/// std(non-zero clean samples)/10^(SNR/20). Everything is then divided by max|y| (unless `normalize` is off).
public struct SpikeRecordingConfig: Equatable, Sendable {
    public var samplingRate: Double = 10_000
    /// Seconds of recording.
    public var duration: Double = 10
    public var neurons: Int = 3
    public var channels: Int = 1
    public var waveform: SpikeWaveformKind = .biphasic
    /// The filter length K in milliseconds (K = round(ms·fs/1000) samples): a little longer than the
    /// spikes, so that a template learned with a small shift still fits in the window.
    public var filterMilliseconds: Double = 2.5
    /// Duration range of the biphasic spikes (ms), drawn per neuron; at most `filterMilliseconds`.
    public var spikeMilliseconds: ClosedRange<Double> = 1...2
    /// Hz, drawn uniformly per neuron.
    public var firingRate: ClosedRange<Double> = 10...30
    /// Mean amplitude range, drawn per neuron (in units of a unit-norm filter, before normalisation).
    public var amplitudeMean: ClosedRange<Double> = 1...3
    /// sd_c / μ_c.
    public var amplitudeSpread: Double = 0.1
    /// Random sign per spike (the §6.1 generic simulation); off for spikes, whose polarity is fixed.
    public var randomSign = false
    public var snr: Double = 16
    public var normalize = true
    /// The largest best-lag correlation allowed between two neurons' filters (redrawn above it).
    public var maxCoherence: Double = 0.75

    public init() {}

    /// K in samples.
    public var filterLength: Int { max(3, Int((filterMilliseconds * samplingRate / 1000).rounded())) }
    public var samples: Int { Int((duration * samplingRate).rounded()) }

    public func validate() throws {
        func bad(_ m: String) -> UnrollError { .invalidArgument("spike simulation: " + m) }
        guard samplingRate.isFinite, samplingRate >= 1000 else { throw bad("sampling rate must be ≥ 1000 Hz, got \(samplingRate)") }
        guard neurons >= 1, channels >= 1 else { throw bad("needs ≥ 1 neuron and ≥ 1 channel, got \(neurons), \(channels)") }
        guard filterMilliseconds.isFinite, filterMilliseconds >= 1 else { throw bad("filter length must be ≥ 1 ms, got \(filterMilliseconds)") }
        guard spikeMilliseconds.lowerBound > 0, spikeMilliseconds.upperBound <= filterMilliseconds else {
            throw bad("spike durations must lie in (0, filter length \(filterMilliseconds) ms], got \(spikeMilliseconds)")
        }
        guard duration.isFinite, samples >= 4 * filterLength else { throw bad("duration \(duration) s is shorter than four filters") }
        guard firingRate.lowerBound > 0, firingRate.upperBound * Double(filterLength + 1) < samplingRate else {
            throw bad("firing rates must be > 0 and below fs/(K + 1) (the non-overlap rule), got \(firingRate)")
        }
        guard amplitudeMean.lowerBound > 0, amplitudeMean.upperBound.isFinite else { throw bad("amplitude means must be > 0, got \(amplitudeMean)") }
        guard amplitudeSpread.isFinite, amplitudeSpread >= 0 else { throw bad("amplitude spread must be ≥ 0, got \(amplitudeSpread)") }
        guard snr.isFinite else { throw bad("SNR must be finite, got \(snr)") }
    }
}

/// A recording with its ground truth.
public struct SimulatedRecording: Sendable {
    /// `[channels, samples]`.
    public var signal: Tensor
    /// The true unit-norm filters `[neurons, channels, K]`.
    public var filters: Tensor
    /// Per neuron, the sorted code positions of its spikes (the filter's first sample).
    public var spikeTimes: [[Int]]
    /// Per neuron, the amplitude of each spike (after normalisation).
    public var amplitudes: [[Float]]
    /// The noise std (after normalisation).
    public var sigma: Float
    public var samplingRate: Double
    /// The factor the recording was divided by (max|y| before normalisation; 1 when off).
    public var scale: Float

    public init(signal: Tensor, filters: Tensor, spikeTimes: [[Int]], amplitudes: [[Float]], sigma: Float,
                samplingRate: Double, scale: Float = 1) {
        self.signal = signal
        self.filters = filters
        self.spikeTimes = spikeTimes
        self.amplitudes = amplitudes
        self.sigma = sigma
        self.samplingRate = samplingRate
        self.scale = scale
    }

    /// The sparse codes `[neurons, samples − K + 1]` of the ground truth.
    public var codes: Tensor {
        let (c, k) = (filters.shape[0], filters.shape[2])
        let ne = signal.shape[1] - k + 1
        var z = Tensor(zeros: [c, ne])
        for n in 0..<c { for (t, a) in zip(spikeTimes[n], amplitudes[n]) { z.data[n * ne + t] = a } }
        return z
    }
}

public enum SpikeSimulation {
    /// Unit-norm filters `[neurons, channels, K]`. Biphasic: each neuron draws a duration in
    /// `spikeMilliseconds`, a trough width, the size, place and width of its after-hyperpolarisation
    /// and of a small pre-bump; per channel a gain in [0.3, 1] (the distance to each electrode of a tetrode)
    /// and a ±8 % time warp. A neuron is redrawn while its best-lag correlation with an earlier one exceeds
    /// `maxCoherence` (distinct neurons, an identifiable dictionary).
    public static func filters(_ config: SpikeRecordingConfig, rng: inout Random) -> Tensor {
        let (c, ch, k) = (config.neurons, config.channels, config.filterLength)
        var w = Tensor(zeros: [c, ch, k])
        let ms = 1000 / config.samplingRate   // milliseconds per sample
        let per = ch * k
        for n in 0..<c {
            for attempt in 0..<2000 {
                let duration = rng.uniform(config.spikeMilliseconds.lowerBound, config.spikeMilliseconds.upperBound)
                let troughWidth = rng.uniform(0.08, 0.15), humpSize = rng.uniform(0.2, 0.8)
                let humpCentre = rng.uniform(0.5, 0.7), humpWidth = rng.uniform(0.1, 0.25), preSize = rng.uniform(0, 0.3)
                var h = [Float](repeating: 0, count: per)
                for e in 0..<ch {
                    let gain = ch == 1 || e == 0 ? 1 : rng.uniform(0.3, 1)
                    let warp = 1 + rng.uniform(-0.08, 0.08)
                    for t in 0..<k {
                        let v: Double
                        switch config.waveform {
                        case .gaussian:
                            v = rng.normal()
                        case .biphasic:
                            let x = Double(t) * ms / (duration * warp)     // time in units of the spike's duration
                            func bump(_ centre: Double, _ width: Double) -> Double { exp(-0.5 * pow((x - centre) / width, 2)) }
                            v = preSize * bump(0.12, 0.05) - bump(0.3, troughWidth) + humpSize * bump(humpCentre, humpWidth)
                        }
                        h[e * k + t] = Float(gain * v)
                    }
                }
                let norm = h.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot()
                h = h.map { $0 / Float(norm) }
                let coherent = (0..<n).contains { m in
                    SpikeTemplates.bestCorrelation(h[...], w.data[(m * per)..<((m + 1) * per)], channels: ch, length: k,
                                                   maxLag: k - 1).value > config.maxCoherence
                }
                w.data.replaceSubrange((n * per)..<((n + 1) * per), with: h)
                if !coherent || attempt == 1999 { break }
            }
        }
        return w
    }

    /// A recording of `config.duration` seconds from `filters` (the same neurons can make a training
    /// and a test recording: draw the filters once, then call this with two seeds). The firing rates and
    /// amplitude laws come from `rng` too.
    public static func record(_ config: SpikeRecordingConfig, filters: Tensor, rng: inout Random) throws -> SimulatedRecording {
        try config.validate()
        let (c, ch, k) = (filters.shape[0], filters.shape[1], filters.shape[2])
        guard c == config.neurons, ch == config.channels, k == config.filterLength else {
            throw UnrollError.shapeMismatch("spike simulation: filters \(filters.shape) do not fit \(config.neurons) neurons × \(config.channels) channels × K \(config.filterLength)")
        }
        let n = config.samples, ne = n - k + 1
        var times: [[Int]] = [], amps: [[Float]] = []
        var codes = Tensor(zeros: [1, c, ne])
        for neuron in 0..<c {
            let rate = rng.uniform(config.firingRate.lowerBound, config.firingRate.upperBound)
            let mean = rng.uniform(config.amplitudeMean.lowerBound, config.amplitudeMean.upperBound)
            let sd = config.amplitudeSpread * mean
            // A renewal process with a dead time of K + 1 samples (the non-overlap rule) and the given mean rate.
            let meanGap = config.samplingRate / rate, dead = Double(k + 1)
            var t = -log(1 - rng.uniform()) * meanGap
            var ts: [Int] = [], as_: [Float] = []
            while true {
                let pos = Int(t)
                if pos >= ne { break }
                var a = max(0.1 * mean, rng.normal(mean: mean, std: sd))
                if config.randomSign { a *= Double(rng.sign()) }
                ts.append(pos)
                as_.append(Float(a))
                codes.data[neuron * ne + pos] = Float(a)
                t += dead + -log(1 - rng.uniform()) * max(1, meanGap - dead)
            }
            times.append(ts)
            amps.append(as_)
        }
        let op = try Convolution1DDictionary(weights: filters)
        var y = op.apply(codes).reshaped([ch, n])
        // Noise std from the non-zero clean samples.
        var s1 = 0.0, s2 = 0.0, count = 0.0
        for v in y.data where v != 0 { s1 += Double(v); s2 += Double(v) * Double(v); count += 1 }
        let std = count > 1 ? max(0, (s2 - s1 * s1 / count) / (count - 1)).squareRoot() : 1
        var sigma = Float(std / pow(10, config.snr / 20))
        let noise = Tensor.normal([ch, n], std: sigma, rng: &rng)
        y.add(noise)
        var scale: Float = 1
        if config.normalize {
            scale = y.data.reduce(Float(0)) { max($0, abs($1)) }
            if scale > 0 {
                y = (1 / scale) * y
                sigma /= scale
                amps = amps.map { $0.map { $0 / scale } }
            }
        }
        return SimulatedRecording(signal: y, filters: filters, spikeTimes: times, amplitudes: amps, sigma: sigma,
                                  samplingRate: config.samplingRate, scale: scale)
    }

    /// Non-overlapping windows `[windows, channels, length]` of a `[channels, samples]` recording (the tail
    /// that does not fill a window is dropped).
    public static func windows(_ signal: Tensor, length: Int) throws -> Tensor {
        guard signal.rank == 2, length >= 1, signal.shape[1] >= length else {
            throw UnrollError.shapeMismatch("windows of \(length) samples need a [channels, samples ≥ \(length)] recording, got \(signal.shape)")
        }
        let (ch, n) = (signal.shape[0], signal.shape[1])
        let count = n / length
        var out = Tensor(zeros: [count, ch, length])
        signal.data.withUnsafeBufferPointer { src in
            out.data.withUnsafeMutableBufferPointer { dst in
                for w in 0..<count {
                    for e in 0..<ch {
                        (dst.baseAddress! + (w * ch + e) * length).update(from: src.baseAddress! + e * n + w * length, count: length)
                    }
                }
            }
        }
        return out
    }

    /// The noise std estimated robustly from channel 0: median(|y|)/0.6745 (the spike-sorting standard;
    /// the spikes are sparse, so the median sees mostly noise).
    public static func robustSigma(_ signal: Tensor) -> Float {
        let n = signal.shape.last ?? signal.count
        var v = signal.data.prefix(n).map { abs($0) }
        guard !v.isEmpty else { return 0 }
        let mid = v.count / 2
        v.sort()
        return v[mid] / 0.6745
    }
}
