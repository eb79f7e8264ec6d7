import UnrollCore

/// The noise level of an image from the image alone, for noise-adaptive models when the user does
/// not know σ: Donoho's robust estimate from the finest diagonal wavelet band,
///
///     σ̂ = median |HH| / 0.6745,   HH = (a − b − c + d)/2 over the 2×2 blocks [a b; c d]
///
/// (the orthonormal Haar diagonal detail). Gaussian noise of σ gives HH ~ N(0, σ²), whose median
/// absolute value is 0.6745σ; image structure in that band is sparse, so the median barely sees it
/// (it biases σ̂ up a little on fine textures).
public enum NoiseEstimate {
    /// σ̂ of a `[H, W]` image (both sides ≥ 2).
    public static func sigma(_ image: Tensor) throws -> Float {
        guard image.rank == 2, image.shape[0] >= 2, image.shape[1] >= 2 else {
            throw UnrollError.shapeMismatch("estimating the noise needs a [height, width] image of at least 2×2, got \(image.shape)")
        }
        if image.hasNonFinite { throw UnrollError.nonFinite("the image contains NaN or Inf") }
        let (h, w) = (image.shape[0], image.shape[1])
        var details: [Float] = []
        details.reserveCapacity((h / 2) * (w / 2))
        image.data.withUnsafeBufferPointer { p in
            for r in stride(from: 0, to: h - 1, by: 2) {
                for c in stride(from: 0, to: w - 1, by: 2) {
                    let (a, b, d0, d1) = (p[r * w + c], p[r * w + c + 1], p[(r + 1) * w + c], p[(r + 1) * w + c + 1])
                    details.append(abs(a - b - d0 + d1) / 2)
                }
            }
        }
        details.sort()
        let n = details.count
        let median = n % 2 == 1 ? details[n / 2] : (details[n / 2 - 1] + details[n / 2]) / 2
        return median / 0.6745
    }
}

extension Denoiser {
    /// `model` set for the noise of an image: a noise-adaptive model's thresholds for `sigma`, or, when
    /// `sigma` is nil, for the σ estimated from `image` (returned as `estimated`; a noiseless image
    /// keeps the reference σ); any other model as it is.
    public static func model(_ model: UnrolledAutoencoder<Convolution2DDictionary>, forNoise sigma: Float?, of image: Tensor? = nil) throws
        -> (model: UnrolledAutoencoder<Convolution2DDictionary>, estimated: Float?) {
        let (set, estimated, _) = try self.model(choosingFrom: [model], forNoise: sigma, of: image)
        return (set, estimated)
    }

    /// Of noise-adaptive models for successive ranges of noise, the one for the image's noise (σ
    /// given, or estimated from `image` and returned), set for that noise: `models[i]` serves σ from
    /// `bounds[i − 1]` up to `bounds[i]` (ascending, one fewer than the models). A model trained over a
    /// wide range of σ loses to one trained at the range's top there, so the package ships one per range,
    /// switching where a held-out image says (docs/denoising.md). `chosen` is the model's index. A
    /// noiseless image gets the first model at its reference σ; a single model of any kind is
    /// `model(_:forNoise:of:)`.
    public static func model(choosingFrom models: [UnrolledAutoencoder<Convolution2DDictionary>], switchingAt bounds: [Float] = [],
                             forNoise sigma: Float?, of image: Tensor? = nil) throws
        -> (model: UnrolledAutoencoder<Convolution2DDictionary>, estimated: Float?, chosen: Int) {
        guard let first = models.first else { throw UnrollError.invalidArgument("no denoising model to choose from") }
        guard bounds.count == models.count - 1, bounds.allSatisfy({ $0.isFinite && $0 > 0 }), zip(bounds, bounds.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw UnrollError.invalidArgument("\(models.count) models need \(models.count - 1) ascending noise levels > 0 to switch at, got \(bounds)")
        }
        guard models.count == 1 || models.allSatisfy({ $0.adaptiveSigma != nil }) else {
            throw UnrollError.invalidArgument("choosing a model by the noise σ needs noise-adaptive models")
        }
        guard first.adaptiveSigma != nil else { return (first, nil, 0) }
        var noise: Float, estimated: Float?
        if let sigma {
            noise = sigma
        } else {
            guard let image else { throw UnrollError.invalidArgument("a noise-adaptive model needs the noise σ, or an image to estimate it from") }
            noise = try NoiseEstimate.sigma(image)
            guard noise > 0 else { return (first, nil, 0) }
            estimated = noise
        }
        guard noise.isFinite, noise > 0 else { throw UnrollError.invalidArgument("noise σ must be finite and > 0, got \(noise)") }
        let chosen = range(of: noise, switchingAt: bounds)
        return (try models[chosen].atNoise(noise), estimated, chosen)
    }

    /// The index of the range that holds `sigma`: how many of the ascending `bounds` are ≤ it.
    public static func range(of sigma: Float, switchingAt bounds: [Float]) -> Int {
        bounds.filter { $0 <= sigma }.count
    }
}
