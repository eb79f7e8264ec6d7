import Foundation
import UnrollCore

/// Settings of a denoising run (PUDLE Table 1: T 15, α 0.1, σ 25/255, 129×129 crops, batch 1,
/// Adam lr 1e-4 ε 1e-3, filters renormalised after every step, loss against the clean image).
public struct DenoisingConfig: Equatable, Sendable {
    public var encoder: UnrolledEncoder
    public var mode: GradientMode
    public var optimizer: Optimizer
    public var sigma: Float
    public var cropSize: Int
    public var batchSize: Int
    public var target: DenoisingTarget
    public var flips: Bool
    public var normalizeFilters: Bool
    public var seed: UInt64

    public init(encoder: UnrolledEncoder, mode: GradientMode = .leastSquares,
                optimizer: Optimizer = .adam(learningRate: 1e-4, epsilon: 1e-3), sigma: Float = 25.0 / 255,
                cropSize: Int = 129, batchSize: Int = 1, target: DenoisingTarget = .clean, flips: Bool = true,
                normalizeFilters: Bool = true, seed: UInt64 = 0) {
        self.encoder = encoder
        self.mode = mode
        self.optimizer = optimizer
        self.sigma = sigma
        self.cropSize = cropSize
        self.batchSize = batchSize
        self.target = target
        self.flips = flips
        self.normalizeFilters = normalizeFilters
        self.seed = seed
    }

    public func validate() throws {
        try encoder.validate()
        try optimizer.validate()
        try DenoisingImages.validateSigma(sigma)
        guard batchSize >= 1 else { throw UnrollError.invalidArgument("batch size must be ≥ 1, got \(batchSize)") }
        guard cropSize >= 1 else { throw UnrollError.invalidArgument("crop size must be ≥ 1, got \(cropSize)") }
        guard mode != .noodl else { throw UnrollError.invalidArgument("denoising trains with decoder, lasso or least-squares, not noodl") }
    }
}

/// One step's numbers.
public struct DenoisingRecord: Sendable {
    public var step: Int
    /// The mode's loss on the batch (before the update).
    public var loss: Double
    /// ½Σ‖target − D z‖²/B.
    public var reconstruction: Double
    /// Σ|z|/B.
    public var l1: Double
    /// Fraction of non-zero codes.
    public var density: Double
    public var seconds: Double
}

/// Learns a convolutional dictionary for denoising: every step draws a batch of noisy crops
/// (`DenoisingSampler`), encodes the noisy crops, and moves the filters along the mode's gradient of
/// the loss against the clean crops (`.clean`) or the noisy ones (`.noisy`); then the filters are
/// scaled to unit norm. Divergence (non-finite loss, gradient or weights) throws
/// `UnrollError.diverged` and leaves the trainer at its last good state.
public struct DenoisingTrainer {
    public private(set) var dictionary: Convolution2DDictionary
    public let config: DenoisingConfig
    public private(set) var optimizer: Optimizer
    public private(set) var step = 0
    public let sampler: DenoisingSampler
    private var rng: Random

    /// `dictionary` gives the filters and stride (its image size is replaced by the crop size).
    public init(dictionary: Convolution2DDictionary, images: [Tensor], config: DenoisingConfig) throws {
        try config.validate()
        try config.encoder.validate(for: dictionary)
        guard config.cropSize >= dictionary.kernel else {
            throw UnrollError.invalidArgument("crop size \(config.cropSize) is smaller than the \(dictionary.kernel)×\(dictionary.kernel) filters")
        }
        try DenoisingImages.validate(images, what: "training image", minimumSide: dictionary.kernel)
        self.sampler = try DenoisingSampler(images: images, cropSize: config.cropSize, sigma: config.sigma, flips: config.flips)
        self.dictionary = try dictionary.resized(height: config.cropSize, width: config.cropSize)
        self.config = config
        self.optimizer = config.optimizer
        self.optimizer.reset()
        self.rng = Random(seed: config.seed)
    }

    @discardableResult
    public mutating func trainStep() throws -> DenoisingRecord {
        let t0 = ContinuousClock.now
        var nextRng = rng
        let (noisy, clean) = sampler.next(batch: config.batchSize, rng: &nextRng)
        let target = config.target == .clean ? clean : noisy
        let result = try config.mode.evaluate(input: noisy, target: target, operator: dictionary, encoder: config.encoder)
        let thisStep = step + 1
        guard result.losses.loss.isFinite else { throw UnrollError.diverged(step: thisStep, reason: "the loss is \(result.losses.loss)") }
        if result.gradient.hasNonFinite { throw UnrollError.diverged(step: thisStep, reason: "the gradient contains NaN or Inf") }
        var w = dictionary.weights
        var newOptimizer = optimizer
        newOptimizer.step(&w, gradient: result.gradient)
        if w.hasNonFinite || !newOptimizer.isFinite {
            throw UnrollError.diverged(step: thisStep, reason: "the updated filters or the optimizer state are not finite")
        }
        dictionary.weights = w
        if config.normalizeFilters { dictionary.normalize() }
        optimizer = newOptimizer
        rng = nextRng
        step = thisStep
        let codes = result.codes
        return DenoisingRecord(step: thisStep, loss: result.losses.loss, reconstruction: result.losses.reconstruction,
                               l1: result.losses.l1, density: 1 - Double(codes.zeroCount()) / Double(max(1, codes.count)),
                               seconds: secondsSince(t0))
    }
}

// MARK: checkpoints

extension DenoisingTrainer {
    /// Tensors `filters` and the optimizer's moments; metadata `trainer.step`, `trainer.rng` (the
    /// sampler's generator), and the settings a resumed run must share (`denoise.*`, `encoder.*`,
    /// `optimizer.*`). Restoring it and training on continues bit for bit.
    public func checkpoint() -> TrainerCheckpoint {
        let opt = optimizer.exportState()
        var tensors = opt.tensors
        tensors["filters"] = dictionary.weights
        var meta = opt.metadata
        meta.merge(settings) { _, new in new }
        meta["trainer.step"] = String(step)
        var checkpoint = TrainerCheckpoint(tensors: tensors, metadata: meta)
        checkpoint.setGenerator(rng, "trainer.rng")
        return checkpoint
    }

    /// The settings a checkpoint must match to be resumed by this trainer.
    var settings: [String: String] {
        let e = config.encoder
        return [
            "denoise.mode": config.mode.rawValue, "denoise.sigma": config.sigma.description,
            "denoise.crop": String(config.cropSize), "denoise.batch": String(config.batchSize),
            "denoise.target": config.target.rawValue, "denoise.flips": String(config.flips),
            "denoise.normalize": String(config.normalizeFilters), "denoise.seed": String(config.seed),
            "denoise.images": String(sampler.images.count), "denoise.stride": String(dictionary.stride),
            "encoder.layers": String(e.layers), "encoder.algorithm": e.algorithm.rawValue,
            "encoder.threshold": e.threshold.rawValue,
            "encoder.lambda": e.lambda.allValues.map(\.description).joined(separator: ","),
            "encoder.step": { if case let .fixed(a) = e.step { return a.description } else { return "auto" } }(),
        ]
    }

    /// Continues from `checkpoint()` of a run with the same settings (else `UnrollError.invalidCheckpoint`
    /// naming the first setting that differs); nothing changes when it throws.
    public mutating func restore(_ checkpoint: TrainerCheckpoint) throws {
        let meta = checkpoint.metadata
        for (key, value) in settings.sorted(by: { $0.key < $1.key }) where meta[key] != value {
            throw UnrollError.invalidCheckpoint("\(key) is \(meta[key] ?? "missing"), this run's is \(value)")
        }
        guard let filters = checkpoint.tensors["filters"], filters.shape == dictionary.weights.shape, !filters.hasNonFinite else {
            throw UnrollError.invalidCheckpoint("the tensor filters is missing, non-finite or not \(dictionary.weights.shape)")
        }
        let newStep = try checkpoint.count("trainer.step")
        let restoredRNG = try checkpoint.generator("trainer.rng")
        var newOptimizer = config.optimizer
        try newOptimizer.restoreState(tensors: checkpoint.tensors, metadata: meta, weightShape: filters.shape)
        dictionary.weights = filters
        optimizer = newOptimizer
        step = newStep
        rng = restoredRNG
    }
}
