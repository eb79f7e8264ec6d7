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
public struct CRsAEStepRecord: Equatable, Sendable {
    public var step: Int
    public var epoch: Int
    /// ½Σ‖y − ŷ‖²/B before the update.
    public var reconstruction: Double
    /// λ_c after the step's EM update.
    public var lambdas: [Float]
    public var sigma: Float
    public var alpha: Float
    public var seconds: Double
}

/// CRsAE training for any `DictionaryOperator` (1-D spikes here; the 2-D denoising model can reuse it).
/// Per step (one mini-batch of signals):
///
///     x_T ← FISTA_T(y; H, λσ²)                        (E-step: MAP codes)
///     H   ← Adam(∂ ½‖y − H x_T‖²/B / ∂H);  normalise   (M-step 1, backprop through the layers)
///     λ_c ← (Ne + r − 1)/(mean ‖x_T,c‖₁ + δ)           (M-step 2, closed form; `GammaPriorLambda`)
///     σ   ← s σ + (1 − s) rms(y − H x_T)
public struct CRsAETrainer<Op: DictionaryOperator> {
    public private(set) var dictionary: Op
    /// λ_c of the model (the encoder's penalty is λ_c σ²).
    public private(set) var lambdas: [Float]
    public private(set) var sigma: Float
    public let config: CRsAEConfig
    public private(set) var optimizer: Optimizer
    public private(set) var step = 0
    public private(set) var epoch = 0
    private var rng: Random

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
        self.optimizer = .adam(learningRate: config.learningRate, epsilon: config.epsilon)
        self.rng = Random(seed: config.seed)
    }

    /// The encoder of the current model: T FISTA layers, threshold λ_c σ² α.
    public var encoder: UnrolledEncoder {
        UnrolledEncoder(layers: config.layers, algorithm: .fista, threshold: config.threshold,
                        lambda: GammaPriorLambda.encoderLambda(lambdas, sigma: sigma), step: config.step)
    }

    /// One step on `batch` (`[B, …]` signals the operator accepts). Throws on divergence, changing nothing.
    @discardableResult
    public mutating func trainStep(batch: Tensor) throws -> CRsAEStepRecord {
        let t0 = ContinuousClock.now
        let result = try config.mode.evaluate(signals: batch, operator: dictionary, encoder: encoder)
        guard result.losses.loss.isFinite, !result.gradient.hasNonFinite else {
            throw UnrollError.diverged(step: step + 1, reason: "non-finite CRsAE loss or gradient")
        }
        var newDictionary = dictionary
        var w = newDictionary.weights
        var newOptimizer = optimizer
        newOptimizer.step(&w, gradient: result.gradient)
        if w.hasNonFinite { throw UnrollError.diverged(step: step + 1, reason: "the updated filters contain NaN or Inf") }
        newDictionary.weights = w
        if config.normalize { newDictionary.normalize() }

        dictionary = newDictionary
        optimizer = newOptimizer
        if let prior = config.lambdaPrior {
            lambdas = prior.update(codes: result.codes, atoms: dictionary.atoms, previous: lambdas)
        }
        if let s = config.sigmaSmoothing {
            // ½Σ‖r‖²/B = reconstruction, so mean r² = 2·rec·B / (entries of the batch).
            let rms = Float((2 * result.losses.reconstruction * Double(batch.rows) / Double(max(1, batch.count))).squareRoot())
            if rms > 0 { sigma = s * sigma + (1 - s) * rms }
        }
        step += 1
        return CRsAEStepRecord(step: step, epoch: epoch, reconstruction: result.losses.reconstruction, lambdas: lambdas,
                               sigma: sigma, alpha: result.alpha,
                               seconds: secondsSince(t0))
    }

    /// `epochs` passes over `data` (`[n, …]`) in shuffled mini-batches.
    public mutating func train(data: Tensor, epochs: Int, onStep: ((CRsAEStepRecord) throws -> Void)? = nil) throws {
        guard data.rows >= 1 else { throw UnrollError.shapeMismatch("CRsAE training data has no windows") }
        for _ in 0..<max(0, epochs) {
            let order = rng.permutation(data.rows)
            for start in stride(from: 0, to: order.count, by: config.batchSize) {
                let idx = Array(order[start..<min(order.count, start + config.batchSize)])
                let record = try trainStep(batch: data.gatherRows(idx))
                try onStep?(record)
            }
            epoch += 1
            optimizer.learningRate *= config.learningRateDecay
        }
    }
}
