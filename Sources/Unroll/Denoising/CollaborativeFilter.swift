import CUnrollSupport
import UnrollCore

/// A collaborative filter of the noisy image, mixed into the denoiser's estimate: BM3D's two steps (Dabov,
/// Foi, Katkovnik & Egiazarian 2007, as Lebrun 2012 describes them, with a DCT for the 2-D transform). The
/// model's estimate x̂ becomes p = (1 − a)·x̂ + a·b, where b is BM3D's first step of the noisy input y (its
/// hard threshold at λσ); then, with a second-step share c > 0, (1 − c)·p + c·f, where f is BM3D's second
/// step of y with p as its pilot (Wiener factors P²/(P² + μ²σ²)).
///
/// Why: the network and its non-local means see the image through 11×11 filters and an estimate that has
/// already lost fine periodic texture, so patches of a striped cloth no longer find each other. b matches
/// patches of the noisy image itself and shrinks each matched group jointly (8×8 DCT, then a Walsh–Hadamard
/// transform across the group), which keeps a texture that recurs. Its errors differ from the network's, so
/// a share of it helps even where the network is better. f shrinks the same groups by how much of each
/// coefficient the pilot holds, a gentler estimate than b's all-or-nothing threshold. docs/denoising.md chooses
/// a, λ, c and μ on training images; a 25×25 search window, 0.41 of the offsets of BM3D's 39×39, costs at most
/// 0.07 dB there.
///
/// The groups, step by step: reference 8×8 patches every `step` pixels (and at the last row and column); for
/// each, up to `groupSize` patches (a power of two, the reference first) whose top-left corner is within
/// `searchRadius` of it and whose squared distance to it on the noisy image is at most 2500/255²·64
/// (5000/255²·64 above σ = 40/255), the nearest first and ties in scan order. Both steps use them (matching
/// on the pilot with BM3D's smaller second-step limit gained no more on the training images, and matching once
/// costs half). b: coefficients below λσ zeroed, each filtered patch added with weight 1/(non-zero
/// coefficients) times a Kaiser window (β = 2), every pixel divided by its weights. f: the orthonormal Haar
/// transform across the group instead, each noisy coefficient scaled by the pilot's factor, weight 1/Σ factor².
public struct CollaborativeFilter: Equatable, Sendable {
    /// a: the share of the first step in the output, in (0, 1].
    public var weight: Float
    /// λ: the first step zeroes coefficients below λσ.
    public var threshold: Float
    /// c: the share of the second step, in [0, 1] (0: the first step only).
    public var wienerWeight: Float
    /// μ: the second step's factors are P²/(P² + μ²σ²) (BM3D's μ² = 0.4 for white noise).
    public var wienerThreshold: Float
    /// Patches per group at most, a power of two ≤ 32.
    public var groupSize: Int
    /// Candidates' top-left corners within ±searchRadius of the reference's, in both directions.
    public var searchRadius: Int
    /// Pixels between reference patches.
    public var step: Int

    public static let patchSide = 8
    /// BM3D's μ for white noise, √0.4.
    public static let defaultWienerThreshold = Float(0.4).squareRoot()

    /// The same filter with other shares and thresholds (validated as `init` does).
    public func with(weight: Float, threshold: Float, wienerWeight: Float? = nil, wienerThreshold: Float? = nil) throws -> CollaborativeFilter {
        try CollaborativeFilter(weight: weight, threshold: threshold, wienerWeight: wienerWeight ?? self.wienerWeight,
                                wienerThreshold: wienerThreshold ?? self.wienerThreshold, groupSize: groupSize, searchRadius: searchRadius, step: step)
    }

    /// Throws unless 0 < weight ≤ 1, 0 ≤ wienerWeight ≤ 1, both thresholds ≥ 0 and finite, groupSize a power of two in
    /// 1…32, searchRadius in 1…64, step in 1…4 (the C kernel relies on reference rows at most 4 apart).
    public init(weight: Float, threshold: Float = 2.7, wienerWeight: Float = 0, wienerThreshold: Float = Self.defaultWienerThreshold,
                groupSize: Int = 16, searchRadius: Int = 12, step: Int = 3) throws {
        guard weight.isFinite, weight > 0, weight <= 1 else {
            throw UnrollError.invalidArgument("the collaborative filter's weight must be in (0, 1], got \(weight)")
        }
        guard wienerWeight.isFinite, wienerWeight >= 0, wienerWeight <= 1 else {
            throw UnrollError.invalidArgument("the collaborative filter's second-step share must be in [0, 1], got \(wienerWeight)")
        }
        guard threshold.isFinite, threshold >= 0 else {
            throw UnrollError.invalidArgument("the collaborative filter's threshold λ must be finite and ≥ 0, got \(threshold)")
        }
        guard wienerThreshold.isFinite, wienerThreshold >= 0 else {
            throw UnrollError.invalidArgument("the collaborative filter's second-step μ must be finite and ≥ 0, got \(wienerThreshold)")
        }
        guard (1...32).contains(groupSize), groupSize & (groupSize - 1) == 0, (1...64).contains(searchRadius), (1...4).contains(step) else {
            throw UnrollError.invalidArgument("the collaborative filter needs a group size that is a power of two ≤ 32, a search radius in 1...64 and a step in 1...4, got \(groupSize), \(searchRadius) and \(step)")
        }
        self.weight = weight
        self.threshold = threshold
        self.wienerWeight = wienerWeight
        self.wienerThreshold = wienerThreshold
        self.groupSize = groupSize
        self.searchRadius = searchRadius
        self.step = step
    }

    /// "a share 0.35 of BM3D's first step on the noisy image (8×8 patches, …)", for `unroll info` and the reports.
    public var description: String {
        "a share \(weight) of BM3D's first step on the noisy image (8×8 patches, groups of \(groupSize), "
            + "\(2 * searchRadius + 1)×\(2 * searchRadius + 1) window, step \(step), λ = \(threshold))"
            + (wienerWeight > 0 ? ", then a share \(wienerWeight) of its second step (μ = \(wienerThreshold))" : "")
    }

    /// Reference rows per part: a band's distances stay in cache.
    static let bandReferenceRows = 8

    /// (1 − a)·estimate + a·b, then (with c > 0) the second step's share c mixed in with that as the pilot.
    public func apply(_ estimate: Tensor, noisy: Tensor, sigma: Float) throws -> Tensor {
        guard estimate.shape == noisy.shape else {
            throw UnrollError.shapeMismatch("the estimate \(estimate.shape) and the noisy image \(noisy.shape) differ in shape")
        }
        let groups = try Groups(noisy, sigma: sigma, filter: self)
        let b = groups.filter(noisy, pilot: nil, threshold: threshold * sigma)
        let pilot = Self.mix(estimate, b, share: weight)
        guard wienerWeight > 0 else { return pilot }
        return Self.mix(pilot, groups.filter(noisy, pilot: pilot.data, threshold: wienerThreshold * sigma), share: wienerWeight)
    }

    /// BM3D's first step b of a noisy `[H, W]` image (both sides ≥ 8) for noise of `sigma` (> 0).
    public func basicEstimate(_ noisy: Tensor, sigma: Float) throws -> Tensor {
        try Groups(noisy, sigma: sigma, filter: self).filter(noisy, pilot: nil, threshold: threshold * sigma)
    }

    /// BM3D's second step f of a noisy image with this pilot (same shape), on the first step's groups.
    public func finalEstimate(_ noisy: Tensor, pilot: Tensor, sigma: Float) throws -> Tensor {
        guard pilot.shape == noisy.shape else {
            throw UnrollError.shapeMismatch("the pilot \(pilot.shape) and the noisy image \(noisy.shape) differ in shape")
        }
        if pilot.hasNonFinite { throw UnrollError.nonFinite("the pilot for the collaborative filter contains NaN or Inf") }
        return try Groups(noisy, sigma: sigma, filter: self).filter(noisy, pilot: pilot.data, threshold: wienerThreshold * sigma)
    }

    static func mix(_ x: Tensor, _ y: Tensor, share: Float) -> Tensor {
        Tensor(shape: x.shape, data: zip(x.data, y.data).map { (1 - share) * $0 + share * $1 })
    }

    /// Every reference patch's group, band by band (bands of reference rows go to the workers; each filters
    /// into its own buffers, added in band order, so the bits do not depend on the worker count).
    struct Groups {
        let filter: CollaborativeFilter
        let height: Int, width: Int
        let rows: [Int32], cols: [Int32]
        /// Per band: the offsets of each reference's patches ([references, groupSize]) and their counts.
        var members: [[Int32]], counts: [[Int32]]

        init(_ noisy: Tensor, sigma: Float, filter: CollaborativeFilter) throws {
            let k = CollaborativeFilter.patchSide
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
                var g = Array(stride(from: 0, through: n - k, by: filter.step))
                if g.last != n - k { g.append(n - k) }
                return g.map(Int32.init)
            }
            let (rows, cols) = (grid(h), grid(w))
            let tau = Float((sigma <= 40 / 255 ? 2500.0 : 5000.0) / (255.0 * 255.0) * Double(k * k))
            let bandRows = CollaborativeFilter.bandReferenceRows, bands = (rows.count + bandRows - 1) / bandRows
            let scratchBytes = unroll_collaborative_scratch(bandRows, cols.count, w, Int32(filter.groupSize))
            let (radius, group) = (Int32(filter.searchRadius), Int32(filter.groupSize))
            var members = [[Int32]](repeating: [], count: bands), counts = members
            noisy.data.withUnsafeBufferPointer { image in
                rows.withUnsafeBufferPointer { rowList in
                    cols.withUnsafeBufferPointer { colList in
                        members.withUnsafeMutableBufferPointer { membersOut in
                            counts.withUnsafeMutableBufferPointer { countsOut in
                                nonisolated(unsafe) let (image, rowList, colList) = (image, rowList, colList)
                                nonisolated(unsafe) let (membersOut, countsOut) = (membersOut, countsOut)
                                Parallel.forEachPart(bands, parts: Parallel.workers) { _, range in
                                    var scratch = [UInt8](repeating: 0, count: scratchBytes)
                                    for b in range {
                                        let n = min(rowList.count, (b + 1) * bandRows) - b * bandRows, references = n * colList.count
                                        var band = [Int32](repeating: 0, count: references * Int(group)), count = [Int32](repeating: 0, count: references)
                                        scratch.withUnsafeMutableBytes { t in
                                            unroll_collaborative_match(image.baseAddress!, h, w, rowList.baseAddress! + b * bandRows, n,
                                                                       colList.baseAddress!, colList.count, radius, group, tau, &band, &count,
                                                                       t.baseAddress!)
                                        }
                                        membersOut[b] = band
                                        countsOut[b] = count
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (self.filter, height, width, self.rows, self.cols, self.members, self.counts) = (filter, h, w, rows, cols, members, counts)
        }

        /// Band b's sums cover image rows reach(b): its patches and the search window's reach.
        func reach(_ b: Int) -> Range<Int> {
            let bandRows = CollaborativeFilter.bandReferenceRows
            let first = Int(rows[b * bandRows]), last = Int(rows[min(rows.count, (b + 1) * bandRows) - 1])
            return max(0, first - filter.searchRadius)..<min(height, last + filter.searchRadius + CollaborativeFilter.patchSide)
        }

        /// The first step (no pilot; coefficients below `threshold` zeroed) or the second (the pilot's Wiener
        /// factors with noise `threshold`) of the noisy image, on these groups.
        func filter(_ noisy: Tensor, pilot: [Float]?, threshold: Float) -> Tensor {
            let (h, w, bands, group) = (height, width, members.count, Int32(filter.groupSize))
            var sums = [[Float]](repeating: [], count: bands)
            (pilot ?? []).withUnsafeBufferPointer { pilotPixels in
                noisy.data.withUnsafeBufferPointer { image in
                    sums.withUnsafeMutableBufferPointer { out in
                        nonisolated(unsafe) let (image, out) = (image, out)
                        nonisolated(unsafe) let pilotBase = pilot == nil ? nil : pilotPixels.baseAddress
                        Parallel.forEachPart(bands, parts: Parallel.workers) { _, range in
                            for b in range {
                                let span = reach(b)
                                var band = [Float](repeating: 0, count: 2 * span.count * w)
                                band.withUnsafeMutableBufferPointer { s in
                                    unroll_collaborative_filter(image.baseAddress!, pilotBase, w, members[b], counts[b], counts[b].count, group,
                                                                threshold, s.baseAddress!, s.baseAddress! + span.count * w, span.lowerBound)
                                }
                                out[b] = band
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
}
