import UnrollCore

/// Training batches for image denoising: random square crops of random training images, random
/// horizontal and vertical flips, and additive Gaussian noise N(0, σ²) drawn afresh for every batch,
/// all from one seeded generator (PUDLE: 129×129 crops, flips, σ = 25/255, batch 1).
///
/// Images are `[H, W]` tensors with values in [0, 1]. An image smaller than the crop is zero-padded at
/// the bottom/right first (torchvision's `RandomCrop(pad_if_needed=True)`).
public struct DenoisingSampler: Sendable {
    public let images: [Tensor]
    public let cropSize: Int
    public let sigma: Float
    public let flips: Bool

    /// Throws for an empty list, a non-image tensor, NaN/Inf pixels, crop < 1 or σ < 0.
    public init(images: [Tensor], cropSize: Int, sigma: Float, flips: Bool = true) throws {
        guard !images.isEmpty else { throw UnrollError.invalidArgument("denoising needs at least one training image") }
        try DenoisingImages.validate(images, what: "training image")
        guard cropSize >= 1 else { throw UnrollError.invalidArgument("crop size must be ≥ 1, got \(cropSize)") }
        try DenoisingImages.validateSigma(sigma)
        self.images = images
        self.cropSize = cropSize
        self.sigma = sigma
        self.flips = flips
    }

    /// A batch `(noisy, clean)`, both `[batch, crop, crop]`.
    public func next(batch: Int, rng: inout Random) -> (noisy: Tensor, clean: Tensor) {
        let c = cropSize
        var clean = Tensor(zeros: [batch, c, c])
        clean.data.withUnsafeMutableBufferPointer { out in
            for b in 0..<batch {
                let image = images[rng.int(below: images.count)]
                let (h, w) = (image.shape[0], image.shape[1])
                let top = rng.int(below: max(h, c) - c + 1), left = rng.int(below: max(w, c) - c + 1)
                let flipH = flips && rng.next() >> 63 == 1, flipV = flips && rng.next() >> 63 == 1
                image.data.withUnsafeBufferPointer { src in
                    for i in 0..<c {
                        let r = top + (flipV ? c - 1 - i : i)
                        guard r < h else { continue }
                        for j in 0..<c {
                            let col = left + (flipH ? c - 1 - j : j)
                            if col < w { out[(b * c + i) * c + j] = src[r * w + col] }
                        }
                    }
                }
            }
        }
        return (DenoisingImages.addNoise(clean, sigma: sigma, rng: &rng), clean)
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
