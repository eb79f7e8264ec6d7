import Foundation
import UnrollCore

/// Settings of CRsAE training (reference crsae §2–§4): a tied FISTA autoencoder whose encoder solves
/// min_x ½‖y − Hx‖² + σ² Σ_c λ_c ‖x_c‖₁ in T layers, the dictionary learned by Adam through the layers,
/// λ_c by the closed-form EM update with a Gamma prior, σ from the residual.
public struct CRsAEConfig: Equatable, Sendable {
    /// T, the FISTA layers.
    public var layers: Int = 50
    /// `.soft` is CRsAE's two-sided ReLU; `.nonNegative` its one-sided variant (positive spike amplitudes).
    public var threshold: Threshold = .soft
    /// α = 1/L; `.inverseLipschitz` recomputes L for the current filters.
    public var step: StepSize = .inverseLipschitz(iterations: 50, seed: 0)
    public var learningRate: Float = 0.01
    /// The learning rate is multiplied by this after every epoch of `train(data:epochs:)` (1 = constant).
    public var learningRateDecay: Float = 1
    /// Adam ε (the peer code uses 1e-3).
    public var epsilon: Float = 1e-3
    public var batchSize: Int = 32
    /// The gradient of the dictionary stage: CRsAE backpropagates the reconstruction loss through the
    /// encoder (`.leastSquares`, g_ae-ls).
    public var mode: GradientMode = .leastSquares
    /// EM λ per filter after every step; nil keeps λ fixed.
    public var lambdaPrior: GammaPriorLambda?
    /// σ ← s·σ + (1 − s)·rms(y − ŷ) after every step (the peer's s = 0.99); nil keeps σ fixed.
    public var sigmaSmoothing: Float?
    /// Unit-norm filters after every step.
    public var normalize = true
    public var seed: UInt64 = 0

    public init() {}

    public func validate() throws {
        if layers < 1 { throw UnrollError.invalidArgument("CRsAE layers T must be ≥ 1, got \(layers)") }
        if batchSize < 1 { throw UnrollError.invalidArgument("CRsAE batch size must be ≥ 1, got \(batchSize)") }
        guard learningRate.isFinite, learningRate > 0 else {
            throw UnrollError.invalidArgument("CRsAE learning rate must be finite and > 0, got \(learningRate)")
        }
        try lambdaPrior?.validate()
        guard learningRateDecay.isFinite, learningRateDecay > 0, learningRateDecay <= 1 else {
            throw UnrollError.invalidArgument("CRsAE learning-rate decay must be in (0, 1], got \(learningRateDecay)")
        }
        if let s = sigmaSmoothing, !(s.isFinite && s >= 0 && s < 1) {
            throw UnrollError.invalidArgument("σ smoothing must be in [0, 1), got \(s)")
        }
        if threshold == .hard { throw UnrollError.invalidArgument("CRsAE needs a soft or non-negative threshold, not hard") }
    }
}

/// One CRsAE step's log record.
public struct CRsAEStepRecord: StepEvaluation, Equatable {
    public var step: Int
    public var epoch: Int
    /// ½Σ‖y − ŷ‖²/B before the update.
    public var reconstruction: Double
    /// The gradient mode's loss (before the update).
    public var loss: Double
    /// Fraction of non-zero codes z_T.
    public var density: Double
    /// λ_c after the step's EM update.
    public var lambdas: [Float]
    /// σ after the step.
    public var sigma: Float
    public var alpha: Float
    public var gradients: [Tensor]
    /// The EM updates' statistics of the batch: Σ‖x_c‖₁ per filter, the samples, Σ‖y − ŷ‖² and the
    /// signal values (summed over the workers of a data-parallel run).
    public var pooledSums: [Double]
    /// Code positions per filter and sample.
    var positions: Int
}

/// CRsAE for any `DictionaryOperator` (1-D spikes here) as a `Trainable` model. Per step (one
/// mini-batch of signals):
///
///     x_T ← FISTA_T(y; H, λσ²)                        (E-step: MAP codes)
///     H   ← Adam(∂ ½‖y − H x_T‖²/B / ∂H);  normalise   (M-step 1, backprop through the layers)
///     λ_c ← (Ne + r − 1)/(mean ‖x_T,c‖₁ + δ)           (M-step 2, closed form; `GammaPriorLambda`)
///     σ   ← s σ + (1 − s) rms(y − H x_T)
///
/// `CRsAETrainer` is the one trainer over it and shuffled mini-batches of the signals; the learning
/// rate decays per epoch; λ and σ are checkpointed with the filters.
public struct CRsAEModel<Op: DictionaryOperator>: Trainable {
    public private(set) var dictionary: Op
    /// λ_c of the model (the encoder's penalty is λ_c σ²).
    public private(set) var lambdas: [Float]
    public private(set) var sigma: Float
    public let config: CRsAEConfig

    public init(dictionary: Op, lambdas: [Float], sigma: Float, config: CRsAEConfig) throws {
        try config.validate()
        guard lambdas.count == dictionary.atoms else {
            throw UnrollError.shapeMismatch("CRsAE needs one λ per filter (\(dictionary.atoms)), got \(lambdas.count)")
        }
        guard lambdas.allSatisfy({ $0.isFinite && $0 >= 0 }) else { throw UnrollError.invalidArgument("CRsAE λ must be finite and ≥ 0") }
        guard sigma.isFinite, sigma > 0 else { throw UnrollError.invalidArgument("CRsAE noise σ must be finite and > 0, got \(sigma)") }
        self.dictionary = dictionary
        self.lambdas = lambdas
        self.sigma = sigma
        self.config = config
    }

    /// The encoder of the current model: T FISTA layers, threshold λ_c σ² α.
    public var encoder: UnrolledEncoder {
        UnrolledEncoder(layers: config.layers, algorithm: .fista, threshold: config.threshold,
                        lambda: GammaPriorLambda.encoderLambda(lambdas, sigma: sigma), step: config.step)
    }

    public var parameters: [Tensor] {
        get { [dictionary.weights] }
        set { dictionary.weights = newValue[0] }
    }
    public var parameterNames: [String] { ["filters"] }

    public func evaluate(_ batch: RowBatches.Batch, step: Int) throws -> CRsAEStepRecord {
        let r = try config.mode.evaluate(signals: batch.rows, operator: dictionary, encoder: encoder)
        let (l1, positions) = GammaPriorLambda.l1PerAtom(r.codes, atoms: dictionary.atoms)
        // ½Σ‖r‖²/B = reconstruction, so Σ‖r‖² = 2·rec·B.
        let squares = 2 * r.losses.reconstruction * Double(batch.rows.rows)
        return CRsAEStepRecord(step: step, epoch: batch.epoch, reconstruction: r.losses.reconstruction, loss: r.losses.loss,
                               density: 1 - Double(r.codes.zeroCount()) / Double(max(1, r.codes.count)),
                               lambdas: lambdas, sigma: sigma, alpha: r.alpha, gradients: [r.gradient],
                               pooledSums: l1 + [Double(r.codes.rows), squares, Double(batch.rows.count)], positions: positions)
    }

    public mutating func finishStep(_ e: inout CRsAEStepRecord, step: Int) throws {
        if config.normalize { dictionary.normalize() }
        if let prior = config.lambdaPrior {
            lambdas = prior.update(l1Sums: Array(e.pooledSums.prefix(dictionary.atoms)), positions: e.positions,
                                   samples: Int(e.pooledSums[dictionary.atoms].rounded()), previous: lambdas)
        }
        if let s = config.sigmaSmoothing {
            let (squares, values) = (e.pooledSums[dictionary.atoms + 1], e.pooledSums[dictionary.atoms + 2])
            let rms = Float((squares / max(1, values)).squareRoot())
            if rms > 0 { sigma = s * sigma + (1 - s) * rms }
        }
        guard sigma.isFinite, sigma > 0, lambdas.allSatisfy({ $0.isFinite }) else {
            throw UnrollError.diverged(step: step, reason: "λ or σ is not finite (σ \(sigma))")
        }
        e.lambdas = lambdas
        e.sigma = sigma
    }

    /// λ and σ beside the settings that must match on resume.
    public func exportState() -> TrainerCheckpoint {
        TrainerCheckpoint(tensors: ["crsae.lambda": Tensor(shape: [lambdas.count], data: lambdas)],
                          metadata: ["crsae.sigma": sigma.description, "crsae.layers": String(config.layers),
                                     "crsae.threshold": config.threshold.rawValue, "crsae.mode": config.mode.rawValue,
                                     "crsae.batch": String(config.batchSize), "crsae.seed": String(config.seed)])
    }

    public mutating func restoreState(_ c: TrainerCheckpoint) throws {
        for (key, value) in exportState().metadata where key != "crsae.sigma" && c.metadata[key] != value {
            throw UnrollError.invalidCheckpoint("\(key) is \(c.metadata[key] ?? "missing"), this run's is \(value)")
        }
        guard let l = c.tensors["crsae.lambda"], l.shape == [lambdas.count], !l.hasNonFinite,
              let s = c.metadata["crsae.sigma"].flatMap(Float.init), s.isFinite, s > 0 else {
            throw UnrollError.invalidCheckpoint("crsae.lambda [\(lambdas.count)] or crsae.sigma is missing or not finite")
        }
        lambdas = l.data
        sigma = s
    }
}

/// CRsAE training: the one trainer over `CRsAEModel` and shuffled mini-batches of the signals
/// (`[n, …]` rows the operator accepts), seeded by `config.seed`.
public typealias CRsAETrainer<Op: DictionaryOperator> = Trainer<CRsAEModel<Op>, RowBatches>

/// What the trainer's accessors need from a CRsAE model.
public protocol CRsAELearning: Trainable {
    associatedtype Op: DictionaryOperator
    var dictionary: Op { get }
    var lambdas: [Float] { get }
    var sigma: Float { get }
    var config: CRsAEConfig { get }
    var encoder: UnrolledEncoder { get }
}

extension CRsAEModel: CRsAELearning {}

extension Trainer where Stream == RowBatches {
    public init<Op: DictionaryOperator>(dictionary: Op, lambdas: [Float], sigma: Float, data: Tensor, config: CRsAEConfig) throws
        where Model == CRsAEModel<Op> {
        guard data.rows >= 1, data.count > 0 else { throw UnrollError.shapeMismatch("CRsAE training data has no windows") }
        _ = try dictionary.codeShape(signalShape: data.shape)
        try self.init(model: CRsAEModel(dictionary: dictionary, lambdas: lambdas, sigma: sigma, config: config),
                      stream: RowBatches(data: data, batchSize: config.batchSize, seed: config.seed),
                      optimizers: [.adam(learningRate: config.learningRate, epsilon: config.epsilon)],
                      schedule: config.learningRateDecay == 1 ? .constant : .epochDecay(gamma: config.learningRateDecay))
    }
}

extension Trainer where Model: CRsAELearning {
    public var dictionary: Model.Op { model.dictionary }
    public var lambdas: [Float] { model.lambdas }
    public var sigma: Float { model.sigma }
    public var config: CRsAEConfig { model.config }
    public var encoder: UnrolledEncoder { model.encoder }
}
