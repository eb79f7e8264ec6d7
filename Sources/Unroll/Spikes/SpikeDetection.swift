import Foundation
import UnrollCore

/// A detected spike: its time (the code position, i.e. the template's first sample) and its peak height.
public struct DetectedSpike: Equatable, Sendable {
    public var time: Int
    public var height: Float
    public init(time: Int, height: Float) {
        self.time = time
        self.height = height
    }
}

/// Spike times from codes (reference crsae §6.3): reconstruct each neuron's contribution h_c ∗ x_c,
/// pick the peaks of its main deflection on its strongest channel, and map each peak back to the spike's
/// start by the template's peak offset.
public enum SpikeDetection {
    /// Neuron c's contribution h_c ∗ x_c on `channel`, for codes `[C, Ne]`: a trace of Ne + K − 1 samples.
    public static func contribution(codes: Tensor, filters: Tensor, neuron c: Int, channel: Int) -> [Float] {
        let (ch, k) = (filters.shape[1], filters.shape[2])
        let ne = codes.shape[1]
        let h = Array(filters.data[((c * ch + channel) * k)..<((c * ch + channel + 1) * k)])
        var out = [Float](repeating: 0, count: ne + k - 1)
        codes.data.withUnsafeBufferPointer { z in
            out.withUnsafeMutableBufferPointer { y in
                // Sparse codes: add the filter at every non-zero.
                for q in 0..<ne {
                    let a = z[c * ne + q]
                    if a != 0 { for t in 0..<k { y[q + t] += a * h[t] } }
                }
            }
        }
        return out
    }

    /// The channel with the most energy of filter c, the offset of its largest |tap| there, and that
    /// tap's sign (−1 for a trough).
    public static func mainDeflection(filters: Tensor, neuron c: Int) -> (channel: Int, offset: Int, sign: Float) {
        let (ch, k) = (filters.shape[1], filters.shape[2])
        var bestChannel = 0, bestEnergy = -1.0
        for e in 0..<ch {
            let s = (0..<k).reduce(0.0) { $0 + Double(filters.data[(c * ch + e) * k + $1] * filters.data[(c * ch + e) * k + $1]) }
            if s > bestEnergy { bestEnergy = s; bestChannel = e }
        }
        var offset = 0
        for t in 0..<k where abs(filters.data[(c * ch + bestChannel) * k + t]) > abs(filters.data[(c * ch + bestChannel) * k + offset]) {
            offset = t
        }
        return (bestChannel, offset, filters.data[(c * ch + bestChannel) * k + offset] < 0 ? -1 : 1)
    }

    /// Local maxima of `trace` with height > 0, at least `separation` samples apart (higher peaks win).
    public static func peaks(_ trace: [Float], separation: Int) -> [(index: Int, height: Float)] {
        var candidates: [(Int, Float)] = []
        let n = trace.count
        for t in 0..<n where trace[t] > 0 {
            let left = t == 0 ? -Float.infinity : trace[t - 1], right = t == n - 1 ? -Float.infinity : trace[t + 1]
            if trace[t] > left && trace[t] >= right { candidates.append((t, trace[t])) }
        }
        guard separation > 1 else { return candidates }
        // Greedy by height, then back in time order. Two kept peaks are ≥ separation apart, so each
        // bucket of `separation` samples holds at most one: check the neighbouring buckets only.
        var taken: [(Int, Float)] = []
        var byBucket: [Int: Int] = [:]
        for (t, h) in candidates.sorted(by: { $0.1 > $1.1 }) {
            let bucket = t / separation
            let clash = ((bucket - 1)...(bucket + 1)).contains { b in byBucket[b].map { abs($0 - t) < separation } ?? false }
            if clash { continue }
            taken.append((t, h))
            byBucket[bucket] = t
        }
        return taken.sorted { $0.0 < $1.0 }.map { (index: $0.0, height: $0.1) }
    }

    /// Every neuron's detections in one list ordered by time, then neuron (what `spikes sort` writes).
    public static func byTime(_ perNeuron: [[DetectedSpike]]) -> [(neuron: Int, spike: DetectedSpike)] {
        perNeuron.enumerated().flatMap { n, spikes in spikes.map { (neuron: n, spike: $0) } }
            .sorted { ($0.spike.time, $0.neuron) < ($1.spike.time, $1.neuron) }
    }

    /// Every neuron's detected spikes (all peaks, heights to be thresholded by the scoring) from codes `[C, Ne]`.
    public static func detect(codes: Tensor, filters: Tensor, separation: Int? = nil) -> [[DetectedSpike]] {
        let (c, k) = (filters.shape[0], filters.shape[2])
        return (0..<c).map { n in
            let (channel, offset, sign) = mainDeflection(filters: filters, neuron: n)
            var trace = contribution(codes: codes, filters: filters, neuron: n, channel: channel)
            if sign < 0 { for i in trace.indices { trace[i] = -trace[i] } }
            return peaks(trace, separation: separation ?? max(1, k / 2)).map { DetectedSpike(time: $0.index - offset, height: $0.height) }
        }
    }
}

/// Miss and false-alarm rates as the detection threshold sweeps (reference crsae §6.3), with a tolerance
/// window: a true spike is missed when no detection at or above the threshold lies within ±`tolerance`
/// samples of it; a detection is a false alarm when no true spike lies within ±`tolerance` of it.
/// miss rate = missed / true spikes; false-alarm rate = false alarms / detections kept.
public struct SpikeScore: Equatable, Sendable {
    public struct Point: Equatable, Sendable {
        public var threshold: Float
        public var missRate: Double
        public var falseAlarmRate: Double
        public var detections: Int
    }

    /// From the lowest threshold (all peaks) up.
    public var curve: [Point]
    public var trueSpikes: Int

    public init(truth: [Int], detections: [DetectedSpike], tolerance: Int, maxPoints: Int = 400) {
        let t = truth.sorted()
        trueSpikes = t.count
        // Per detection: does a true spike lie within the tolerance? Per true spike: the highest nearby detection.
        var bestNear = [Float](repeating: -.infinity, count: t.count)
        var hit = [Bool](repeating: false, count: detections.count)
        for (i, d) in detections.enumerated() {
            var lo = 0, hi = t.count
            while lo < hi { let mid = (lo + hi) / 2; if t[mid] < d.time - tolerance { lo = mid + 1 } else { hi = mid } }
            var j = lo
            while j < t.count && t[j] <= d.time + tolerance {
                hit[i] = true
                bestNear[j] = max(bestNear[j], d.height)
                j += 1
            }
        }
        let heights = detections.map(\.height).sorted()
        var thresholds: [Float] = [0]
        if !heights.isEmpty {
            let step = max(1, heights.count / maxPoints)
            thresholds += stride(from: 0, to: heights.count, by: step).map { heights[$0] }
            thresholds.append(heights.last!)
            thresholds.append(heights.last! * 1.0001 + 1e-12)   // nothing kept
        }
        let near = bestNear.sorted()
        let byHeight = zip(detections.map(\.height), hit).sorted { $0.0 < $1.0 }
        var points: [Point] = []
        for th in thresholds {
            // missed = true spikes whose best nearby detection is below th; kept = detections ≥ th.
            let missed = Self.countBelow(near, th)
            let firstKept = Self.firstIndex(byHeight.map(\.0), atLeast: th)
            let kept = byHeight.count - firstKept
            let falseAlarms = byHeight[firstKept...].reduce(0) { $0 + ($1.1 ? 0 : 1) }
            points.append(Point(threshold: th, missRate: t.isEmpty ? 0 : Double(missed) / Double(t.count),
                                falseAlarmRate: kept == 0 ? 0 : Double(falseAlarms) / Double(kept), detections: kept))
        }
        curve = points
    }

    private static func countBelow(_ sorted: [Float], _ th: Float) -> Int { firstIndex(sorted, atLeast: th) }

    private static func firstIndex(_ sorted: [Float], atLeast th: Float) -> Int {
        var lo = 0, hi = sorted.count
        while lo < hi { let mid = (lo + hi) / 2; if sorted[mid] < th { lo = mid + 1 } else { hi = mid } }
        return lo
    }

    /// The lowest miss rate at a threshold whose false-alarm rate is ≤ `falseAlarm` (1 if none).
    public func missRate(atFalseAlarm falseAlarm: Double) -> Double {
        curve.filter { $0.falseAlarmRate <= falseAlarm && $0.detections > 0 }.map(\.missRate).min() ?? 1
    }

    /// The point of that lowest miss rate (nil if no threshold reaches the false-alarm rate).
    public func operatingPoint(atFalseAlarm falseAlarm: Double) -> Point? {
        curve.filter { $0.falseAlarmRate <= falseAlarm && $0.detections > 0 }.min { $0.missRate < $1.missRate }
    }
}
