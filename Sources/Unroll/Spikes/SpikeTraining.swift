import Foundation
import UnrollCore

/// How `unroll spikes train` (and Python's `SpikeSorter`) learn spike templates from a recording with
/// CRsAE: windows of the recording, FISTA at `training.layers` for `epochs` epochs (0: none), then an optional
/// refinement at `refineLayers`; EM λ per filter with a Gamma prior; σ from the residual; Adam.
public struct SpikeTrainingSettings: Equatable, Sendable {
    /// Training window length in samples (CRsAE: 1000).
    public var window = 1000
    public var training = CRsAEConfig()
    public var epochs: Int
    /// A second phase of `refineEpochs` epochs at `refineLayers` FISTA layers, from what the first phase
    /// learned, with a fresh Adam at the constant `refineLearningRate` (0 epochs: none). 50 layers leave
    /// the codes of a smooth template smeared over neighbouring samples, which biases the learned template
    /// (docs/spikes.md); 100 layers do not, but started far from the truth they land in worse minima.
    public var refineEpochs = 0
    public var refineLayers = 100
    public var refineLearningRate: Float = 0.001
    /// Gamma prior rate δ of the EM λ (prior mean: Donoho's λ for the initial σ).
    public var priorRate: Float = 500
    public var seed: UInt64 = 0

    /// Epochs of the first phase (T 50, lr 0.01 decaying) when none are given: CRsAE's 15 to bring a far
    /// start (crossings, the perturbed truth, a file) near the templates, and none from a clustered
    /// start, which is already near them: on the simulated draws one such epoch moved a start at
    /// template errors ≤ 0.03 to 0.09 (docs/spikes.md), so that run goes straight to the refinement.
    public static func defaultEpochs(start: SpikeStart?) -> Int { start == .clusters ? 0 : 15 }

    /// The template length when none is given: 2.5 ms at `samplingRate` (CRsAE's), at least 3 samples.
    public static func defaultFilterLength(samplingRate: Double) -> Int { max(3, Int((2.5 * samplingRate / 1000).rounded())) }

    /// CRsAE's settings: T 50, batch 32, Adam lr 0.01 ε 1e-3 ×0.9 per epoch, σ smoothing 0.99.
    public init(epochs: Int) {
        self.epochs = epochs
        training.layers = 50
        training.batchSize = 32
        training.learningRate = 0.01
        training.learningRateDecay = 0.9
        training.epsilon = 1e-3
        training.sigmaSmoothing = 0.99
    }
}

/// One spikes training run, resumable: `epochs` epochs of CRsAE at T = `training.layers`, then
/// `refineEpochs` at T = `refineLayers` with the refine learning rate and a fresh optimizer (the
/// second phase's trainer starts from the first's filters, λ and σ). `checkpoint()` holds the
/// phase and its trainer's state; `restore` continues bit for bit.
public struct SpikeTrainingRun {
    public let settings: SpikeTrainingSettings
    let windows: Tensor
    let config: CRsAEConfig
    /// 1, then 2 for the refinement.
    public private(set) var phase = 1
    public private(set) var trainer: CRsAETrainer<Convolution1DDictionary>
    /// Where each step's gradient and EM statistics are combined across workers (data-parallel
    /// runs; each phase's trainer uses it).
    public var reducer: any GradientReducer = LocalReducer() {
        didSet { trainer.reducer = reducer }
    }

    /// The first phase's trainer from `start` `[C, channels, K]` (normalised), λ from Donoho's rule
    /// at the recording's robust σ, on windows of `recording` `[channels, samples]`.
    public init(_ s: SpikeTrainingSettings, start: Tensor, recording: Tensor) throws {
        guard s.epochs >= 0, s.refineEpochs >= 0, s.epochs + s.refineEpochs >= 1 else {
            throw UnrollError.invalidArgument("spikes training needs epochs ≥ 0 and refinement epochs ≥ 0, at least one in all; got \(s.epochs) and \(s.refineEpochs)")
        }
        windows = try SpikeSimulation.windows(recording, length: s.window)
        let sigma0 = SpikeSimulation.robustSigma(recording)
        let k = start.shape[2], c = start.shape[0]
        let lambda0 = GammaPriorLambda.donoho(atoms: c, positions: s.window - k + 1, sigma: sigma0)
        var config = s.training
        config.seed = s.seed
        config.lambdaPrior = GammaPriorLambda(priorMean: lambda0, rate: s.priorRate)
        var dictionary = try Convolution1DDictionary(weights: start)
        dictionary.normalize()
        trainer = try CRsAETrainer(dictionary: dictionary, lambdas: [Float](repeating: lambda0, count: c), sigma: sigma0,
                                   data: windows, config: config)
        self.settings = s
        self.config = config
    }

    var phaseEpochs: Int { phase == 1 ? settings.epochs : settings.refineEpochs }
    public var totalEpochs: Int { settings.epochs + settings.refineEpochs }
    public var epochsDone: Int { (phase == 1 ? 0 : settings.epochs) + trainer.epoch }
    public var done: Bool { epochsDone >= totalEpochs }

    /// The refinement's settings.
    var refineConfig: CRsAEConfig {
        var c = config
        c.layers = settings.refineLayers
        c.learningRate = settings.refineLearningRate
        c.learningRateDecay = 1
        return c
    }

    /// One epoch (entering the refinement first when the first phase is complete); the mean loss.
    @discardableResult
    public mutating func trainEpoch() throws -> Double {
        if phase == 1 && trainer.epoch >= phaseEpochs {
            trainer = try CRsAETrainer(dictionary: trainer.dictionary, lambdas: trainer.lambdas, sigma: trainer.sigma,
                                       data: windows, config: refineConfig)
            trainer.reducer = reducer
            phase = 2
        }
        var rec = 0.0, steps = 0
        try trainer.train(epochs: 1) { r in rec += r.reconstruction; steps += 1 }
        return rec / Double(max(1, steps))
    }

    public func checkpoint() -> TrainerCheckpoint {
        var c = trainer.checkpoint()
        c.metadata["spikes.phase"] = String(phase)
        return c
    }

    /// Continues from `checkpoint()` of a run with the same settings and recording.
    public mutating func restore(_ c: TrainerCheckpoint) throws {
        guard let p = c.metadata["spikes.phase"].flatMap(Int.init), p == 1 || p == 2 else {
            throw UnrollError.invalidCheckpoint("spikes.phase is \(c.metadata["spikes.phase"] ?? "missing"), expected 1 or 2")
        }
        var restored = trainer
        if p == 2 {
            guard settings.refineEpochs > 0 else {
                throw UnrollError.invalidCheckpoint("the checkpoint is in the refinement, but this run has no refinement epochs")
            }
            restored = try CRsAETrainer(dictionary: trainer.dictionary, lambdas: trainer.lambdas, sigma: trainer.sigma,
                                        data: windows, config: refineConfig)
            restored.reducer = reducer
        }
        try restored.restore(c)
        trainer = restored
        phase = p
    }

    /// The trained model (the encoder of the last phase).
    public func model() throws -> SpikeModel {
        let alpha = try trainer.encoder.stepSize(for: trainer.dictionary)
        return try SpikeModel(filters: trainer.dictionary.weights, lambdas: trainer.lambdas, sigma: trainer.sigma,
                              layers: trainer.config.layers, threshold: trainer.config.threshold, alpha: alpha)
    }
}
