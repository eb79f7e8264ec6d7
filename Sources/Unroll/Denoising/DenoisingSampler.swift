import UnrollCore

/// Training batches for image denoising: random square crops of random training images, random
/// horizontal and vertical flips (and, with `rotations`, transposes: with the flips, all eight
/// rotations and reflections of the square), and additive Gaussian noise drawn afresh for every batch,
/// all from one seeded generator (PUDLE: 129×129 crops, flips, σ = 25/255, batch 1).
///
/// The noise σ is one value, or a range from which each crop draws its own σ uniformly (a
/// noise-adaptive model's training data); `next` returns every crop's σ.
///
/// Images are `[H, W]` tensors with values in [0, 1]. An image smaller than the crop is zero-padded at
/// the bottom/right first (torchvision's `RandomCrop(pad_if_needed=True)`).
public struct DenoisingSampler: Sendable {
    public let images: [Tensor]
    public let cropSize: Int
    /// The crops' noise σ: one value (lower = upper) or the range each crop draws from.
    public let sigmas: ClosedRange<Float>
    public let flips: Bool
    public let rotations: Bool

    /// Throws for an empty list, a non-image tensor, NaN/Inf pixels, crop < 1 or σ < 0.
    public init(images: [Tensor], cropSize: Int, sigmas: ClosedRange<Float>, flips: Bool = true, rotations: Bool = false) throws {
        guard !images.isEmpty else { throw UnrollError.invalidArgument("denoising needs at least one training image") }
        try DenoisingImages.validate(images, what: "training image")
        guard cropSize >= 1 else { throw UnrollError.invalidArgument("crop size must be ≥ 1, got \(cropSize)") }
        try DenoisingImages.validateSigma(sigmas.lowerBound)
        try DenoisingImages.validateSigma(sigmas.upperBound)
        self.images = images
        self.cropSize = cropSize
        self.sigmas = sigmas
        self.flips = flips
        self.rotations = rotations
    }

    /// One noise σ for every crop.
    public init(images: [Tensor], cropSize: Int, sigma: Float, flips: Bool = true, rotations: Bool = false) throws {
        try DenoisingImages.validateSigma(sigma)
        try self.init(images: images, cropSize: cropSize, sigmas: sigma...sigma, flips: flips, rotations: rotations)
    }

    /// A batch `(noisy, clean, sigmas)`: crops `[batch, crop, crop]` and each crop's noise σ.
    /// Draws per crop: image, position, flips, then the transpose (with `rotations`) and σ (with a
    /// range), so a fixed-σ sampler without rotations draws as it always did.
    public func next(batch: Int, rng: inout Random) -> (noisy: Tensor, clean: Tensor, sigmas: [Float]) {
        let c = cropSize
        var clean = Tensor(zeros: [batch, c, c])
        var sigma = [Float](repeating: sigmas.lowerBound, count: batch)
        clean.data.withUnsafeMutableBufferPointer { out in
            for b in 0..<batch {
                let image = images[rng.int(below: images.count)]
                let (h, w) = (image.shape[0], image.shape[1])
                let top = rng.int(below: max(h, c) - c + 1), left = rng.int(below: max(w, c) - c + 1)
                let flipH = flips && rng.next() >> 63 == 1, flipV = flips && rng.next() >> 63 == 1
                let transpose = rotations && rng.next() >> 63 == 1
                if sigmas.upperBound > sigmas.lowerBound {
                    sigma[b] = Float(rng.uniform(Double(sigmas.lowerBound), Double(sigmas.upperBound)))
                }
                image.data.withUnsafeBufferPointer { src in
                    for i in 0..<c {
                        for j in 0..<c {
                            let (u, v) = transpose ? (j, i) : (i, j)
                            let r = top + (flipV ? c - 1 - u : u), col = left + (flipH ? c - 1 - v : v)
                            if r < h, col < w { out[(b * c + i) * c + j] = src[r * w + col] }
                        }
                    }
                }
            }
        }
        guard sigmas.upperBound > sigmas.lowerBound else {
            return (DenoisingImages.addNoise(clean, sigma: sigmas.lowerBound, rng: &rng), clean, sigma)
        }
        var noisy = Tensor.normal(clean.shape, rng: &rng)
        noisy.data.withUnsafeMutableBufferPointer { n in
            clean.data.withUnsafeBufferPointer { x in
                for i in 0..<n.count { n[i] = x[i] + sigma[i / (c * c)] * n[i] }
            }
        }
        return (noisy, clean, sigma)
    }
}

/// Checks and noise for denoising images (`[H, W]` tensors in [0, 1]).
public enum DenoisingImages {
    /// Every image must be `[H, W]` with finite pixels (and at least `minimumSide` on each side).
    public static func validate(_ images: [Tensor], what: String, names: [String]? = nil, minimumSide: Int = 1) throws {
        for (k, image) in images.enumerated() {
            let name = names.map { "\(what) \($0[k])" } ?? "\(what) \(k)"
            guard image.rank == 2 else { throw UnrollError.shapeMismatch("\(name) must be a [height, width] gray image, got shape \(image.shape)") }
            guard image.shape[0] >= minimumSide, image.shape[1] >= minimumSide else {
                throw UnrollError.shapeMismatch("\(name) is \(image.shape[0])×\(image.shape[1]), smaller than the \(minimumSide)×\(minimumSide) filters")
            }
            if image.hasNonFinite { throw UnrollError.nonFinite("\(name) contains NaN or Inf") }
        }
    }

    public static func validateSigma(_ sigma: Float) throws {
        guard sigma.isFinite, sigma >= 0 else {
            throw UnrollError.invalidArgument("noise σ must be finite and ≥ 0, got \(sigma)")
        }
    }

    /// x + σ·N(0, 1) per pixel.
    public static func addNoise(_ x: Tensor, sigma: Float, rng: inout Random) -> Tensor {
        guard sigma > 0 else { return x }
        var y = x
        y.add(Tensor.normal(x.shape, rng: &rng), scaledBy: sigma)
        return y
    }
}
