import Foundation
import UnrollCore

/// Learns a dictionary from data by mini-batch steps (layer 4 of the design):
///
///     for each step:  batch ← the next `batchSize` examples of the epoch's order (shuffled by `seed`)
///                     (loss, g) ← mode.evaluate(batch, dictionary, encoder, β(step))
///                     optimizer step on the weights along g;  normalise the atoms
///
/// One loop serves PUDLE's three gradient modes and the two baselines (`TrainerConfig.noodl`,
/// `TrainerConfig.alternatingMinimization`). The last batch of an epoch may be smaller.
///
/// **Divergence.** A non-finite loss or gradient, an overflowing optimizer state, or updated weights that
/// are non-finite or larger than `blowUpLimit`, throws `UnrollError.diverged(step:reason:)`; the trainer then still holds the state
/// after the last good step (weights, optimizer, counters, shuffling), ready to checkpoint.
///
/// **Checkpoints.** `checkpoint()` exports everything a resume needs — weights, optimizer state, step,
/// epoch, position in the epoch, the shuffling generator's state — and `restore(_:)` on a trainer made
/// with the same dictionary shape, data and config continues bit-identically.
public struct DictionaryTrainer<Op: DictionaryOperator> {
    /// The dictionary being learned.
    public private(set) var dictionary: Op
    public let config: TrainerConfig
    /// The running optimizer (moments, step count).
    public private(set) var optimizer: Optimizer
    /// Completed steps.
    public private(set) var step: Int = 0
    /// Current epoch (0-based).
    public private(set) var epoch: Int = 0
    /// Index in the epoch's order of the next batch's first example.
    public private(set) var position: Int = 0

    public let data: Tensor
    public let groundTruth: GroundTruth?
    /// Examples per step.
    public let batchSize: Int

    private var rng: Random
    /// The generator's state before the current epoch's order was drawn (the checkpoint stores this).
    private var epochStartState: [UInt64]
    private var order: [Int]
    private var clockStart = ContinuousClock.now

    /// Validates everything (throws `UnrollError`) and prepares epoch 0.
    /// - Parameters:
    ///   - dictionary: the initial dictionary (e.g. `DenseDictionary` with W₀).
    ///   - data: the training signals, one per row (`[n, m]` for a dense dictionary).
    ///   - groundTruth: W* and/or Z* for the per-step error metrics.
    public init(dictionary: Op, data: Tensor, config: TrainerConfig, groundTruth: GroundTruth? = nil) throws {
        try config.validate()
        try config.encoder.validate(for: dictionary)
        let codeShape = try dictionary.codeShape(signalShape: data.shape)
        let n = data.rows
        guard n >= 1, data.count > 0 else { throw UnrollError.shapeMismatch("training data has no examples (shape \(data.shape))") }
        if data.hasNonFinite { throw UnrollError.nonFinite("training data contain NaN or Inf") }
        if dictionary.weights.hasNonFinite { throw UnrollError.nonFinite("initial dictionary contains NaN or Inf") }
        if let truth = groundTruth {
            if let w = truth.weights {
                guard w.shape == dictionary.weights.shape else {
                    throw UnrollError.shapeMismatch("ground-truth dictionary has shape \(w.shape), the trained one \(dictionary.weights.shape)")
                }
                if w.hasNonFinite { throw UnrollError.nonFinite("ground-truth dictionary contains NaN or Inf") }
            }
            if let z = truth.codes {
                guard z.shape == codeShape else {
                    throw UnrollError.shapeMismatch("ground-truth codes have shape \(z.shape), the data's codes \(codeShape)")
                }
                if z.hasNonFinite { throw UnrollError.nonFinite("ground-truth codes contain NaN or Inf") }
            }
        }
        self.dictionary = dictionary
        self.config = config
        self.optimizer = config.optimizer
        self.optimizer.reset()
        self.data = data
        self.groundTruth = groundTruth
        self.batchSize = min(config.batchSize ?? n, n)
        self.rng = Random(seed: config.seed)
        self.epochStartState = rng.state
        self.order = []
        self.order = drawOrder()
    }

    /// Steps in one epoch (the last batch may be smaller).
    public var stepsPerEpoch: Int { (data.rows + batchSize - 1) / batchSize }

    /// β the next step will use.
    public var beta: Float { config.beta.beta(afterSteps: step) }

    /// ‖W − W*‖_F / ‖W*‖_F of the current weights (nil without W*).
    public func dictionaryError() -> Double? {
        groundTruth?.weights.map { DictionaryTrainer.relativeError(dictionary.weights, $0) }
    }

    private mutating func drawOrder() -> [Int] {
        config.shuffle ? rng.permutation(data.rows) : Array(0..<data.rows)
    }

    // MARK: training

    /// One optimizer step on the next batch. On divergence it throws and changes nothing.
    @discardableResult
    public mutating func trainStep() throws -> TrainingRecord {
        let t0 = ContinuousClock.now
        let thisStep = step + 1
        let end = min(position + batchSize, data.rows)
        let indices = Array(order[position..<end])
        let batch = data.gatherRows(indices)
        let beta = self.beta

        let result = try FlushDenormals.with(true) {
            try config.mode.evaluate(signals: batch, operator: dictionary, encoder: config.encoder, beta: beta)
        }
        guard result.losses.loss.isFinite else {
            throw UnrollError.diverged(step: thisStep, reason: "the loss is \(result.losses.loss)")
        }
        if result.gradient.hasNonFinite {
            throw UnrollError.diverged(step: thisStep, reason: "the gradient contains NaN or Inf")
        }

        var newDictionary = dictionary
        var newOptimizer = optimizer
        var w = newDictionary.weights
        newOptimizer.step(&w, gradient: result.gradient)
        if !newOptimizer.isFinite {
            throw UnrollError.diverged(step: thisStep, reason: "the optimizer state overflowed (gradient too large)")
        }
        let largest = w.data.reduce(Float(0)) { max($0, abs($1)) }
        if w.hasNonFinite || !(largest <= config.blowUpLimit) {
            throw UnrollError.diverged(step: thisStep, reason: w.hasNonFinite
                ? "the updated dictionary contains NaN or Inf"
                : "the updated dictionary has an entry of magnitude \(largest) > \(config.blowUpLimit)")
        }
        newDictionary.weights = w
        if config.normalizeAtoms { newDictionary.normalize() }

        // Commit.
        dictionary = newDictionary
        optimizer = newOptimizer
        step = thisStep
        let batchEpoch = epoch
        position = end
        if position >= data.rows {
            epoch += 1
            position = 0
            epochStartState = rng.state
            order = drawOrder()
        }

        var codeError: Double?
        if let z = groundTruth?.codes { codeError = Self.meanRowDistance(result.codes, z.gatherRows(indices)) }
        let now = ContinuousClock.now
        return TrainingRecord(
            step: thisStep, epoch: batchEpoch, batchSize: indices.count,
            loss: result.losses.loss, reconstruction: result.losses.reconstruction, l1: result.losses.l1,
            dictionaryError: dictionaryError(), codeError: codeError, beta: beta, alpha: result.alpha,
            seconds: (now - t0).seconds, elapsed: (now - clockStart).seconds)
    }

    /// `steps` training steps; `onStep` sees each record (throw from it to stop early). The callback
    /// cannot touch the trainer itself (exclusive access): to checkpoint every k steps, loop over
    /// `trainStep()` instead.
    public mutating func train(steps: Int, onStep: ((TrainingRecord) throws -> Void)? = nil) throws {
        for _ in 0..<max(0, steps) {
            let record = try trainStep()
            try onStep?(record)
        }
    }

    /// Trains until `epochs` more epochs are complete (finishing a partly done epoch counts as one).
    public mutating func train(epochs: Int, onStep: ((TrainingRecord) throws -> Void)? = nil) throws {
        let target = epoch + max(0, epochs)
        while epoch < target {
            let record = try trainStep()
            try onStep?(record)
        }
    }

    // MARK: checkpoints

    /// Tensors: `dictionary` (the weights) and the optimizer's `optimizer.first` / `optimizer.second`.
    /// Metadata: `trainer.step`, `trainer.epoch`, `trainer.position`, `trainer.examples`,
    /// `trainer.rng` (the shuffling generator's state at the start of the epoch, comma-separated),
    /// `trainer.beta`, `trainer.mode`, the optimizer's `optimizer.*` entries, and for information only
    /// (not checked on restore) `trainer.batch_size`, `trainer.shuffle`, `trainer.seed`, `encoder.*`.
    public func checkpoint() -> TrainerCheckpoint {
        let opt = optimizer.exportState()
        var tensors = opt.tensors
        tensors["dictionary"] = dictionary.weights
        var meta = opt.metadata
        meta["trainer.step"] = String(step)
        meta["trainer.epoch"] = String(epoch)
        meta["trainer.position"] = String(position)
        meta["trainer.examples"] = String(data.rows)
        meta["trainer.rng"] = epochStartState.map { String($0) }.joined(separator: ",")
        meta["trainer.beta"] = beta.description
        meta["trainer.mode"] = config.mode.rawValue
        meta["trainer.batch_size"] = String(batchSize)
        meta["trainer.shuffle"] = String(config.shuffle)
        meta["trainer.seed"] = String(config.seed)
        let enc = config.encoder
        meta["encoder.layers"] = String(enc.layers)
        meta["encoder.algorithm"] = enc.algorithm.rawValue
        meta["encoder.threshold"] = enc.threshold.rawValue
        meta["encoder.lambda"] = enc.lambda.allValues.map(\.description).joined(separator: ",")
        switch enc.step {
        case let .fixed(a): meta["encoder.step"] = a.description
        case let .inverseLipschitz(iterations, seed): meta["encoder.step"] = "1/L (\(iterations) power iterations, seed \(seed))"
        }
        if let tol = enc.tolerance { meta["encoder.tolerance"] = tol.description }
        return TrainerCheckpoint(tensors: tensors, metadata: meta)
    }

    /// Restores a `checkpoint()` into this trainer (same dictionary shape, data size and config).
    /// Throws `UnrollError.invalidCheckpoint` when an entry is missing or does not fit.
    public mutating func restore(_ checkpoint: TrainerCheckpoint) throws {
        let meta = checkpoint.metadata
        guard let w = checkpoint.tensors["dictionary"] else {
            throw UnrollError.invalidCheckpoint("the tensor \"dictionary\" is missing")
        }
        guard w.shape == dictionary.weights.shape else {
            throw UnrollError.invalidCheckpoint("dictionary has shape \(w.shape), the trainer's is \(dictionary.weights.shape)")
        }
        if w.hasNonFinite { throw UnrollError.invalidCheckpoint("dictionary contains NaN or Inf") }
        let examples = try checkpoint.count("trainer.examples")
        guard examples == data.rows else {
            throw UnrollError.invalidCheckpoint("trainer.examples is \(examples), but the data have \(data.rows) rows")
        }
        let newStep = try checkpoint.count("trainer.step"), newEpoch = try checkpoint.count("trainer.epoch")
        let newPosition = try checkpoint.count("trainer.position")
        guard newPosition < data.rows else {
            throw UnrollError.invalidCheckpoint("trainer.position \(newPosition) is outside the \(data.rows) examples")
        }
        if let mode = meta["trainer.mode"], mode != config.mode.rawValue {
            throw UnrollError.invalidCheckpoint("trainer.mode is \(mode), the trainer's is \(config.mode.rawValue)")
        }
        let restoredRNG = try checkpoint.generator("trainer.rng")
        var newOptimizer = config.optimizer
        try newOptimizer.restoreState(tensors: checkpoint.tensors, metadata: meta, weightShape: w.shape)

        dictionary.weights = w
        optimizer = newOptimizer
        step = newStep
        epoch = newEpoch
        position = newPosition
        rng = restoredRNG
        epochStartState = restoredRNG.state
        order = drawOrder()
        clockStart = ContinuousClock.now
    }

    // MARK: metrics

    /// ‖n(A) − n(B)‖_F / ‖n(B)‖_F with every atom (row) scaled to unit norm (PUDLE's metric).
    static func relativeError(_ a: Tensor, _ b: Tensor) -> Double {
        var na = a, nb = b
        na.normalizeRows()
        nb.normalizeRows()
        let den = nb.squaredNorm()
        return den > 0 ? ((na - nb).squaredNorm() / den).squareRoot() : .nan
    }

    /// mean_i ‖a_i − b_i‖ over rows.
    static func meanRowDistance(_ a: Tensor, _ b: Tensor) -> Double {
        let c = a.cols, r = a.rows
        guard r > 0 else { return 0 }
        return a.data.withUnsafeBufferPointer { pa in
            b.data.withUnsafeBufferPointer { pb in
                var total = 0.0
                for i in 0..<r {
                    var s = 0.0
                    for j in (i * c)..<((i + 1) * c) {
                        let d = Double(pa[j]) - Double(pb[j])
                        s += d * d
                    }
                    total += s.squareRoot()
                }
                return total / Double(r)
            }
        }
    }
}
