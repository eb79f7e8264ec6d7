import Foundation
import UnrollCore

/// Denoising whole images with a trained convolutional dictionary: x̂ = D·encoder(y), for images of any
/// size (the operator is resized to each image; see `Convolution2DDictionary` for sizes that do not
/// fit the stride).
public enum Denoiser {
    /// The reconstruction x̂ = D_dec·encoder(y) of a noisy `[H, W]` image (not clamped). With
    /// `shiftAverage` (default: the model's own setting) and stride > 1, the mean of the s² shifted reconstructions (see
    /// `ShiftAveraging.swift`; the shifts `shifts`, default the model's), encoded `chunk` copies at a
    /// time; otherwise one pass over the image. Then the model's non-local stage and its collaborative filter,
    /// if it has them.
    public static func denoise(_ noisy: Tensor, model: UnrolledAutoencoder<Convolution2DDictionary>,
                               shiftAverage: Bool? = nil, shifts: ShiftSet? = nil, chunk: Int = 5) throws -> Tensor {
        let (k, s) = (model.dictionary.kernel, model.dictionary.stride)
        try DenoisingImages.validate([noisy], what: "image", minimumSide: k)
        let (h, w) = (noisy.shape[0], noisy.shape[1])
        var sigma: Float?
        if model.nonLocal != nil || model.collaborative != nil {
            guard let noise = model.noiseSigma else {
                let stage = model.nonLocal != nil ? "the non-local stage" : "the collaborative filter"
                throw UnrollError.invalidArgument("\(stage) needs the noise σ: a noise-adaptive model set for it, or an EM model")
            }
            sigma = noise
        }
        let estimate: Tensor
        if shiftAverage ?? model.shiftAverage, s > 1 {
            estimate = try averageOverShifts(noisy, stride: s, kernel: k, chunk: chunk, shifts: shifts ?? model.shifts) {
                try model.reconstruct($0).reconstruction
            }
        } else {
            estimate = try model.reconstruct(noisy.reshaped([1, h, w])).reconstruction.reshaped([h, w])
        }
        guard let sigma else { return estimate }
        let smoothed = try model.nonLocal?.apply(estimate, sigma: sigma) ?? estimate
        return try model.collaborative?.apply(smoothed, noisy: noisy, sigma: sigma) ?? smoothed
    }

    /// `denoise` with a tied model of these filters and this encoder (PUDLE's convolutional models).
    public static func denoise(_ noisy: Tensor, dictionary: Convolution2DDictionary, encoder: UnrolledEncoder) throws -> Tensor {
        try denoise(noisy, model: UnrolledAutoencoder(dictionary: dictionary, encoder: encoder))
    }

    /// PSNRs of one image (dB): the noisy input and the estimate, each with both peaks (values clamped to [0, 1]).
    public struct Score: Equatable, Sendable {
        public var noisy: Double
        public var denoised: Double
        public var noisyCleanMax: Double
        public var denoisedCleanMax: Double

        public init(noisy: Tensor, denoised: Tensor, clean: Tensor) {
            self.noisy = PSNR.value(noisy, clean: clean)
            self.denoised = PSNR.value(denoised, clean: clean)
            self.noisyCleanMax = PSNR.value(noisy, clean: clean, peak: .cleanMax)
            self.denoisedCleanMax = PSNR.value(denoised, clean: clean, peak: .cleanMax)
        }
    }

    /// Mean scores over a test set.
    public struct Evaluation: Sendable {
        public var scores: [Score]
        public var meanNoisy: Double { mean(\.noisy) }
        public var meanDenoised: Double { mean(\.denoised) }
        public var meanNoisyCleanMax: Double { mean(\.noisyCleanMax) }
        public var meanDenoisedCleanMax: Double { mean(\.denoisedCleanMax) }
        /// Mean PSNR gain over the noisy input (peak 1; the same with the clean-max peak).
        public var gain: Double { meanDenoised - meanNoisy }

        func mean(_ key: KeyPath<Score, Double>) -> Double {
            scores.isEmpty ? .nan : scores.map { $0[keyPath: key] }.reduce(0, +) / Double(scores.count)
        }
    }

    /// Adds N(0, σ²) noise to each whole clean image (from `seed`, so every model sees the same noisy
    /// test set), denoises it, and scores it (both PSNR peaks).
    public static func evaluate(clean images: [Tensor], sigma: Float, seed: UInt64,
                                model: UnrolledAutoencoder<Convolution2DDictionary>, shiftAverage: Bool? = nil) throws -> Evaluation {
        try DenoisingImages.validateSigma(sigma)
        try DenoisingImages.validate(images, what: "test image", minimumSide: model.dictionary.kernel)
        var rng = Random(seed: seed)
        var scores: [Score] = []
        for clean in images {
            let noisy = DenoisingImages.addNoise(clean, sigma: sigma, rng: &rng)
            let estimate = try denoise(noisy, model: model, shiftAverage: shiftAverage)
            scores.append(Score(noisy: noisy, denoised: estimate, clean: clean))
        }
        return Evaluation(scores: scores)
    }

    /// `evaluate` with a tied model of these filters and this encoder.
    public static func evaluate(clean images: [Tensor], sigma: Float, seed: UInt64,
                                dictionary: Convolution2DDictionary, encoder: UnrolledEncoder) throws -> Evaluation {
        try DenoisingImages.validateSigma(sigma)
        return try evaluate(clean: images, sigma: sigma, seed: seed, model: UnrolledAutoencoder(dictionary: dictionary, encoder: encoder))
    }
}
