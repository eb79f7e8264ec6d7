import Foundation
import UnrollCore

/// Dictionary learning from data as a `Trainable` model (PUDLE's dense and convolutional runs,
/// the baselines):
///
///     (loss, g) ← mode.evaluate(batch, dictionary, encoder, β(step));  then normalise the atoms
///
/// One model serves PUDLE's three gradient modes and the two baselines (`TrainerConfig.noodl`,
/// `TrainerConfig.alternatingMinimization`). `DictionaryTrainer` is the one trainer over it and
/// mini-batches of the data's rows (shuffled each epoch from the seed; the last batch of an epoch
/// may be smaller): divergence leaves it at the last good step, `checkpoint()`/`restore(_:)` resume
/// bit-identically (weights, optimizer, step, epoch, position in the epoch, the shuffling generator).
public struct DictionaryModel<Op: DictionaryOperator>: Trainable {
    public private(set) var dictionary: Op
    /// The untied encoder's analysis bank E (`config.untied`), started at the initial dictionary.
    public private(set) var analysis: Op?
    public let config: TrainerConfig
    public let groundTruth: GroundTruth?

    public init(dictionary: Op, config: TrainerConfig, groundTruth: GroundTruth? = nil) {
        self.dictionary = dictionary
        self.analysis = config.untied ? dictionary : nil
        self.config = config
        self.groundTruth = groundTruth
    }

    public var parameters: [Tensor] {
        get { [dictionary.weights] + (analysis.map { [$0.weights] } ?? []) }
        set {
            dictionary.weights = newValue[0]
            if newValue.count > 1 { analysis?.weights = newValue[1] }
        }
    }
    public var parameterNames: [String] { analysis == nil ? ["dictionary"] : ["dictionary", "analysis"] }

    /// The learned model: the dictionary, the untied bank if any, the encoder at β after `steps` steps.
    public func autoencoder(afterSteps steps: Int) throws -> UnrolledAutoencoder<Op> {
        try UnrolledAutoencoder(dictionary: dictionary, analysis: analysis, encoder: config.encoder,
                                beta: config.beta.beta(afterSteps: max(0, steps - 1)))
    }

    /// ‖W − W*‖_F / ‖W*‖_F of the current weights (nil without W*).
    public func dictionaryError() -> Double? {
        groundTruth?.weights.map { DictionaryModel.relativeError(dictionary.weights, $0) }
    }

    public func evaluate(_ batch: RowBatches.Batch, step: Int) throws -> TrainingRecord {
        let beta = config.beta.beta(afterSteps: step - 1)
        let r = try config.mode.evaluate(signals: batch.rows, operator: dictionary, analysis: analysis, encoder: config.encoder, beta: beta)
        var codeError: Double?
        if let z = groundTruth?.codes { codeError = Self.meanRowDistance(r.codes, z.gatherRows(batch.indices)) }
        return TrainingRecord(step: step, epoch: batch.epoch, batchSize: batch.indices.count, loss: r.losses.loss,
                              reconstruction: r.losses.reconstruction, l1: r.losses.l1, dictionaryError: nil,
                              codeError: codeError, beta: beta, alpha: r.alpha, gradients: [r.gradient] + (r.analysisGradient.map { [$0] } ?? []))
    }

    public mutating func finishStep(_ e: inout TrainingRecord, step: Int) throws {
        if config.normalizeAtoms {
            dictionary.normalize()
            analysis?.normalize()
        }
        e.dictionaryError = dictionaryError()
    }

    /// The settings a checkpoint must share with the trainer that resumes it: `trainer.mode`,
    /// `trainer.batch_size`, `trainer.shuffle`, `trainer.seed`, `trainer.untied`, `encoder.*`.
    public func exportState() -> TrainerCheckpoint {
        var meta = ["trainer.mode": config.mode.rawValue, "trainer.shuffle": String(config.shuffle), "trainer.seed": String(config.seed),
                    "trainer.untied": String(config.untied)]
        if let b = config.batchSize { meta["trainer.batch_size"] = String(b) }
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
        return TrainerCheckpoint(tensors: [:], metadata: meta)
    }

    public mutating func restoreState(_ c: TrainerCheckpoint) throws {
        let mine = exportState().metadata
        // Either side may lack an optional key (batch size, tolerance); checkpoints written before
        // untied banks existed are tied.
        let keys = Set(mine.keys).union(c.metadata.keys.filter { $0.hasPrefix("encoder.") }).union(["trainer.batch_size"])
        for key in keys.sorted() {
            let saved = key == "trainer.untied" ? c.metadata[key] ?? "false" : c.metadata[key]
            if saved != mine[key] {
                throw UnrollError.invalidCheckpoint("\(key) is \(saved ?? "(none)"), this run's is \(mine[key] ?? "(none)")")
            }
        }
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

/// Learns a dictionary from the rows of a data matrix: the one trainer over `DictionaryModel`.
public typealias DictionaryTrainer<Op: DictionaryOperator> = Trainer<DictionaryModel<Op>, RowBatches>

/// What the trainer's accessors need from a dictionary-learning model.
public protocol DictionaryLearning: Trainable {
    associatedtype Op: DictionaryOperator
    var dictionary: Op { get }
    var config: TrainerConfig { get }
    var groundTruth: GroundTruth? { get }
    func dictionaryError() -> Double?
}

extension DictionaryModel: DictionaryLearning {}

extension Trainer where Stream == RowBatches {
    /// Validates everything (throws `UnrollError`) and prepares epoch 0.
    /// - Parameters:
    ///   - dictionary: the initial dictionary (e.g. `DenseDictionary` with W₀).
    ///   - data: the training signals, one per row (`[n, m]` for a dense dictionary).
    ///   - groundTruth: W* and/or Z* for the per-step error metrics.
    public init<Op: DictionaryOperator>(dictionary: Op, data: any RowSource, config: TrainerConfig, groundTruth: GroundTruth? = nil) throws
        where Model == DictionaryModel<Op> {
        try config.validate()
        try config.encoder.validate(for: dictionary)
        let codeShape = try dictionary.codeShape(signalShape: data.shape)
        let n = data.rowCount
        guard n >= 1, data.valuesPerRow > 0 else { throw UnrollError.shapeMismatch("training data has no examples (shape \(data.shape))") }
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
        try self.init(model: DictionaryModel(dictionary: dictionary, config: config, groundTruth: groundTruth),
                      stream: RowBatches(data: data, batchSize: config.batchSize ?? n, shuffle: config.shuffle, seed: config.seed),
                      optimizers: [Optimizer](repeating: config.optimizer, count: config.untied ? 2 : 1), blowUpLimit: config.blowUpLimit)
    }

    public var data: any RowSource { stream.data }
    public var batchSize: Int { stream.batchSize }
    public var epoch: Int { stream.epoch }
    /// Index in the epoch's order of the next batch's first example.
    public var position: Int { stream.position }
    /// Steps in one epoch (the last batch may be smaller).
    public var stepsPerEpoch: Int { stream.stepsPerEpoch }
}

extension Trainer where Model: DictionaryLearning {
    public var dictionary: Model.Op { model.dictionary }
    public var config: TrainerConfig { model.config }
    public var groundTruth: GroundTruth? { model.groundTruth }
    /// The running optimizer (moments, step count).
    public var optimizer: Optimizer { optimizers[0] }
    /// β the next step will use.
    public var beta: Float { model.config.beta.beta(afterSteps: step) }
    /// ‖W − W*‖_F / ‖W*‖_F of the current weights (nil without W*).
    public func dictionaryError() -> Double? { model.dictionaryError() }
}
