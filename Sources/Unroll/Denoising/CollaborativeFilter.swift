import CUnrollSupport
import UnrollCore

/// A collaborative filter of the noisy image, mixed into the denoiser's estimate: the model's estimate x̂
/// becomes (1 − a)·x̂ + a·b, where b is BM3D's first step (Dabov, Foi, Katkovnik & Egiazarian 2007, as
/// Lebrun 2012 describes it, with a DCT for the 2-D transform) of the noisy input y, its hard threshold at
/// `threshold`·σ.
///
/// Why: the network and its non-local means see the image through 11×11 filters and an estimate that has
/// already lost fine periodic texture, so patches of a striped cloth no longer find each other. b matches
/// patches of the noisy image itself and shrinks each matched group jointly (8×8 DCT, then a Walsh–Hadamard
/// transform across the group), which keeps a texture that recurs. Its errors differ from the network's, so
/// a share of it helps even where the network is better (docs/denoising.md chooses a and λ on training
/// images; a 25×25 search window, 0.41 of the offsets of BM3D's 39×39, costs at most 0.07 dB there).
///
/// b, step by step: reference 8×8 patches every `step` pixels (and at the last row and column); for each,
/// up to `groupSize` patches (a power of two, the reference first) whose top-left corner is within
/// `searchRadius` of it and whose squared distance to it is at most 2500/255²·64 (5000/255²·64 above
/// σ = 40/255), the nearest first and ties in scan order; the coefficients below threshold·σ zeroed; each
/// filtered patch added with weight 1/(non-zero coefficients) times a Kaiser window (β = 2), and every pixel
/// divided by its weights.
public struct CollaborativeFilter: Equatable, Sendable {
    /// a: the share of the collaborative estimate in the output, in (0, 1].
    public var weight: Float
    /// λ: coefficients below λσ are zeroed.
    public var threshold: Float
    /// Patches per group at most, a power of two ≤ 32.
    public var groupSize: Int
    /// Candidates' top-left corners within ±searchRadius of the reference's, in both directions.
    public var searchRadius: Int
    /// Pixels between reference patches.
    public var step: Int

    public static let patchSide = 8

    /// The same filter with another share and threshold (validated as `init` does).
    public func with(weight: Float, threshold: Float) throws -> CollaborativeFilter {
        try CollaborativeFilter(weight: weight, threshold: threshold, groupSize: groupSize, searchRadius: searchRadius, step: step)
    }

    /// Throws unless 0 < weight ≤ 1, threshold ≥ 0 and finite, groupSize a power of two in 1…32, searchRadius in
    /// 1…64, step in 1…4 (the C kernel relies on reference rows at most 4 apart).
    public init(weight: Float, threshold: Float = 2.7, groupSize: Int = 16, searchRadius: Int = 12, step: Int = 3) throws {
        guard weight.isFinite, weight > 0, weight <= 1 else {
            throw UnrollError.invalidArgument("the collaborative filter's weight must be in (0, 1], got \(weight)")
        }
        guard threshold.isFinite, threshold >= 0 else {
            throw UnrollError.invalidArgument("the collaborative filter's threshold λ must be finite and ≥ 0, got \(threshold)")
        }
        guard (1...32).contains(groupSize), groupSize & (groupSize - 1) == 0, (1...64).contains(searchRadius), (1...4).contains(step) else {
            throw UnrollError.invalidArgument("the collaborative filter needs a group size that is a power of two ≤ 32, a search radius in 1...64 and a step in 1...4, got \(groupSize), \(searchRadius) and \(step)")
        }
        self.weight = weight
        self.threshold = threshold
        self.groupSize = groupSize
        self.searchRadius = searchRadius
        self.step = step
    }

    /// "a share 0.35 of BM3D's first step on the noisy image (8×8 patches, …)", for `unroll info` and the reports.
    public var description: String {
        "a share \(weight) of BM3D's first step on the noisy image (8×8 patches, groups of \(groupSize), "
            + "\(2 * searchRadius + 1)×\(2 * searchRadius + 1) window, step \(step), λ = \(threshold))"
    }

    /// Reference rows per part: a band's distances stay in cache.
    static let bandReferenceRows = 8

    /// (1 − a)·estimate + a·`basicEstimate(noisy, sigma:)`.
    public func apply(_ estimate: Tensor, noisy: Tensor, sigma: Float) throws -> Tensor {
        guard estimate.shape == noisy.shape else {
            throw UnrollError.shapeMismatch("the estimate \(estimate.shape) and the noisy image \(noisy.shape) differ in shape")
        }
        let b = try basicEstimate(noisy, sigma: sigma)
        return Tensor(shape: estimate.shape, data: zip(estimate.data, b.data).map { (1 - weight) * $0 + weight * $1 })
    }

    /// BM3D's first step of a noisy `[H, W]` image (both sides ≥ 8) for noise of `sigma` (> 0). Bands of
    /// reference rows go to the workers; each sums into its own buffers, added in band order, so the bits do
    /// not depend on the worker count.
    public func basicEstimate(_ noisy: Tensor, sigma: Float) throws -> Tensor {
        let k = Self.patchSide
        guard noisy.shape.count == 2, noisy.shape[0] >= k, noisy.shape[1] >= k else {
            throw UnrollError.shapeMismatch("the collaborative filter takes one [H, W] image with both sides ≥ \(k), got \(noisy.shape)")
        }
        guard sigma.isFinite, sigma > 0 else { throw UnrollError.invalidArgument("noise σ must be finite and > 0, got \(sigma)") }
        if noisy.hasNonFinite { throw UnrollError.nonFinite("the image for the collaborative filter contains NaN or Inf") }
        let (h, w) = (noisy.shape[0], noisy.shape[1])
        guard h * w <= Int(Int32.max) else {   // the kernel keeps patch positions as 32-bit offsets
            throw UnrollError.shapeMismatch("the collaborative filter takes images of at most \(Int32.max) pixels, got \(h)×\(w)")
        }
        func grid(_ n: Int) -> [Int32] {
            var g = Array(stride(from: 0, through: n - k, by: step))
            if g.last != n - k { g.append(n - k) }
            return g.map(Int32.init)
        }
        let rows = grid(h), cols = grid(w)
        let tau = Float((sigma <= 40 / 255 ? 2500.0 : 5000.0) / (255.0 * 255.0) * Double(k * k))
        let bandRows = Self.bandReferenceRows, bands = (rows.count + bandRows - 1) / bandRows
        let scratchBytes = unroll_collaborative_scratch(bandRows, cols.count, w, Int32(groupSize))
        // Band b's sums cover image rows reach(b): its patches and the search window's reach.
        func reach(_ b: Int) -> Range<Int> {
            let first = Int(rows[b * bandRows]), last = Int(rows[min(rows.count, (b + 1) * bandRows) - 1])
            return max(0, first - searchRadius)..<min(h, last + searchRadius + k)
        }
        var sums = [[Float]](repeating: [], count: bands)
        let (radius, group, thresholdValue) = (Int32(searchRadius), Int32(groupSize), threshold * sigma)
        noisy.data.withUnsafeBufferPointer { image in
            rows.withUnsafeBufferPointer { rowList in
                cols.withUnsafeBufferPointer { colList in
                    sums.withUnsafeMutableBufferPointer { out in
                        nonisolated(unsafe) let (image, rowList, colList, out) = (image, rowList, colList, out)
                        Parallel.forEachPart(bands, parts: Parallel.workers) { _, range in
                            var scratch = [UInt8](repeating: 0, count: scratchBytes)
                            for b in range {
                                let span = reach(b), n = min(rows.count, (b + 1) * bandRows) - b * bandRows
                                var band = [Float](repeating: 0, count: 2 * span.count * w)
                                band.withUnsafeMutableBufferPointer { s in
                                    scratch.withUnsafeMutableBytes { t in
                                        unroll_collaborative_band(image.baseAddress!, h, w, rowList.baseAddress! + b * bandRows, n,
                                                                  colList.baseAddress!, colList.count, radius, group, tau, thresholdValue,
                                                                  s.baseAddress!, s.baseAddress! + span.count * w, span.lowerBound, t.baseAddress!)
                                    }
                                }
                                out[b] = band
                            }
                        }
                    }
                }
            }
        }
        var num = [Float](repeating: 0, count: h * w), den = num
        for b in 0..<bands {
            let span = reach(b), half = span.count * w, base = span.lowerBound * w
            sums[b].withUnsafeBufferPointer { s in
                for i in 0..<half {
                    num[base + i] += s[i]
                    den[base + i] += s[half + i]
                }
            }
        }
        return Tensor(shape: [h, w], data: zip(num, den).map { $0 / $1 })
    }
}
