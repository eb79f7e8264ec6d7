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
public struct DenoisingRecord: StepEvaluation {
    /// The mode's loss on the batch (before the update).
    public var loss: Double
    /// ½Σ‖target − D z‖²/B.
    public var reconstruction: Double
    /// Σ|z|/B.
    public var l1: Double
    /// Fraction of non-zero codes.
    public var density: Double
    public var gradients: [Tensor]
}

/// PUDLE's convolutional denoiser as a `Trainable` model: every batch of noisy crops is encoded, and
/// the filters move along the mode's gradient of the loss against the clean crops (`.clean`) or the
/// noisy ones (`.noisy`); then they are scaled to unit norm. `DenoisingTrainer` is the one trainer
/// over it and random crops (`CropBatches`).
public struct ConvDenoisingModel: Trainable {
    public private(set) var dictionary: Convolution2DDictionary
    public let config: DenoisingConfig

    public init(dictionary: Convolution2DDictionary, config: DenoisingConfig) throws {
        try config.validate()
        try config.encoder.validate(for: dictionary)
        guard config.cropSize >= dictionary.kernel else {
            throw UnrollError.invalidArgument("crop size \(config.cropSize) is smaller than the \(dictionary.kernel)×\(dictionary.kernel) filters")
        }
        self.dictionary = try dictionary.resized(height: config.cropSize, width: config.cropSize)
        self.config = config
    }

    public var parameters: [Tensor] {
        get { [dictionary.weights] }
        set { dictionary.weights = newValue[0] }
    }
    public var parameterNames: [String] { ["filters"] }

    public func evaluate(_ batch: CropBatches.Batch, step: Int) throws -> DenoisingRecord {
        let target = config.target == .clean ? batch.clean : batch.noisy
        let r = try config.mode.evaluate(input: batch.noisy, target: target, operator: dictionary, encoder: config.encoder)
        return DenoisingRecord(loss: r.losses.loss, reconstruction: r.losses.reconstruction, l1: r.losses.l1,
                               density: 1 - Double(r.codes.zeroCount()) / Double(max(1, r.codes.count)), gradients: [r.gradient])
    }

    public mutating func finishStep(_ evaluation: inout DenoisingRecord, step: Int) throws {
        if config.normalizeFilters { dictionary.normalize() }
    }

    /// The run's settings: a checkpoint resumes only a run with the same ones.
    var settings: [String: String] {
        let e = config.encoder
        return [
            "denoise.mode": config.mode.rawValue, "denoise.sigma": config.sigma.description,
            "denoise.crop": String(config.cropSize), "denoise.batch": String(config.batchSize),
            "denoise.target": config.target.rawValue, "denoise.flips": String(config.flips),
            "denoise.normalize": String(config.normalizeFilters), "denoise.seed": String(config.seed),
            "denoise.stride": String(dictionary.stride),
            "encoder.layers": String(e.layers), "encoder.algorithm": e.algorithm.rawValue,
            "encoder.threshold": e.threshold.rawValue,
            "encoder.lambda": e.lambda.allValues.map(\.description).joined(separator: ","),
            "encoder.step": { if case let .fixed(a) = e.step { return a.description } else { return "auto" } }(),
        ]
    }

    public func exportState() -> TrainerCheckpoint { TrainerCheckpoint(tensors: [:], metadata: settings) }

    public mutating func restoreState(_ checkpoint: TrainerCheckpoint) throws {
        for (key, value) in settings.sorted(by: { $0.key < $1.key }) where checkpoint.metadata[key] != value {
            throw UnrollError.invalidCheckpoint("\(key) is \(checkpoint.metadata[key] ?? "missing"), this run's is \(value)")
        }
    }
}

/// Learns a convolutional dictionary for denoising: the one trainer over `ConvDenoisingModel` and
/// random noisy crops of the training images. Divergence throws `UnrollError.diverged` and leaves the
/// trainer at its last good state; `checkpoint()`/`restore(_:)` resume bit-identically.
public typealias DenoisingTrainer = Trainer<ConvDenoisingModel, CropBatches>

extension Trainer where Model == ConvDenoisingModel, Stream == CropBatches {
    public init(dictionary: Convolution2DDictionary, images: [Tensor], config: DenoisingConfig) throws {
        let model = try ConvDenoisingModel(dictionary: dictionary, config: config)
        try DenoisingImages.validate(images, what: "training image", minimumSide: dictionary.kernel)
        let sampler = try DenoisingSampler(images: images, cropSize: config.cropSize, sigma: config.sigma, flips: config.flips)
        try self.init(model: model, stream: CropBatches(sampler: sampler, batchSize: config.batchSize, seed: config.seed),
                      optimizers: [config.optimizer])
    }

    public var dictionary: Convolution2DDictionary { model.dictionary }
    public var config: DenoisingConfig { model.config }
    public var sampler: DenoisingSampler { stream.sampler }
}
