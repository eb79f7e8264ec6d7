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
        guard model.adaptiveSigma != nil else { return (model, nil) }
        if let sigma { return (try model.atNoise(sigma), nil) }
        guard let image else { throw UnrollError.invalidArgument("a noise-adaptive model needs the noise σ, or an image to estimate it from") }
        let estimate = try NoiseEstimate.sigma(image)
        return estimate > 0 ? (try model.atNoise(estimate), estimate) : (model, nil)
    }
}
