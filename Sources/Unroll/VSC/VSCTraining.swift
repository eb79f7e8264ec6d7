import Foundation
import UnrollCore

// Variational sparse coding on the one trainer: both VSC models are `Trainable` (their encoder,
// heads and decoder tensors are the parameters, each with its own optimizer and the one-cycle
// schedule), over shuffled batches of rows with the last partial batch dropped. The samples are
// drawn from the generator that shuffles (as the reference does with one torch generator), handed
// back to the stream after every step.

/// What one VSC training step measured (means over the batch, for the selected samples).
public struct VSCStepRecord<Model: Sendable>: StepEvaluation {
    public var step: Int
    public var epoch: Int
    /// Σ_b Σ_j w_bj L_bj / B, the loss the encoder descends.
    public var loss: Double
    /// mean_px(x − x̂)² of the selected samples.
    public var reconstruction: Double
    /// Mean Σ_latents KL per datum.
    public var kl: Double
    /// Fraction of non-zero code entries over all J samples.
    public var nonZero: Double
    public var gradients: [Tensor]
    public var generator: Random?
    /// What is averaged over workers besides the gradients (Φ's update direction, the batch-norm
    /// running statistics), each × the examples, then the examples; `finishStep` divides.
    public var pooledSums: [Double] = []
    /// The model after the step's passes (caches, batch-norm statistics), before the update.
    var trained: Model?
    /// The linear generator's dictionary update direction.
    var direction: Tensor?
}

extension VSCStepRecord {
    /// Puts `tensors` (this worker's means over `examples`) into `pooledSums`, weighted by `examples`.
    mutating func pool(_ tensors: [Tensor], examples: Int) {
        let n = Double(examples)
        pooledSums = tensors.flatMap { $0.data.map { Double($0) * n } } + [n]
    }

    /// The pooled tensors (shaped like `tensors`) as means over every worker's examples: exactly the
    /// pooled values with one worker.
    func pooled(like tensors: [Tensor]) -> [Tensor] {
        guard let n = pooledSums.last else { return tensors }
        var offset = 0
        return tensors.map { t in
            defer { offset += t.count }
            return Tensor(shape: t.shape, data: (0..<t.count).map { Float(pooledSums[offset + $0] / n) })
        }
    }
}

public typealias LinearGeneratorStepRecord = VSCStepRecord<LinearGeneratorModel>

extension LinearGeneratorModel: Trainable {
    public var parameterNames: [String] {
        trunk.parameterNames(prefix: "encoder.trunk.")
            + heads.enumerated().flatMap { i, head in head.parameterNames(prefix: "encoder.head\(i).") }
    }

    public func evaluate(_ batch: RowBatches.Batch, step: Int) throws -> LinearGeneratorStepRecord {
        var rng = batch.generator
        var m = self
        m.zeroGradients()
        let g = m.accumulateGradients(batch.rows, samples: config.variational.samples, klWeight: config.klWeight,
                                      aggregation: config.aggregation, warmup: config.warmup(step: step - 1),
                                      temperature: config.temperature(step: step - 1), rng: &rng)
        var record = LinearGeneratorStepRecord(step: step, epoch: batch.epoch, loss: g.loss, reconstruction: g.reconstruction, kl: g.kl,
                                               nonZero: g.nonZero, gradients: m.gradients, generator: rng, trained: m,
                                               direction: g.dictionaryDirection)
        record.pool([g.dictionaryDirection], examples: batch.rows.rows)
        return record
    }

    /// Φ ← Φ + η(direction − 2ρΦ), η decayed per epoch (the reference's manual step).
    public mutating func finishStep(_ e: inout LinearGeneratorStepRecord, step: Int) throws {
        let updated = parameters
        self = e.trained!
        parameters = updated
        let eta = config.dictionaryRate * Float(pow(Double(config.dictionaryDecay), Double(e.epoch)))
        var direction = e.pooled(like: [e.direction!])[0]
        direction.add(dictionary, scaledBy: -2 * config.frobenius)
        dictionary.add(direction, scaledBy: eta)
        guard !dictionary.hasNonFinite else { throw UnrollError.diverged(step: step, reason: "the dictionary has non-finite entries") }
        e.trained = nil
        e.direction = nil
    }

    /// The dictionary and the settings (`vsc.*`, checked on restore).
    public func exportState() -> TrainerCheckpoint {
        var meta = config.metadata
        meta["vsc.pixels"] = String(pixels)
        return TrainerCheckpoint(tensors: ["dictionary": dictionary], metadata: meta)
    }

    public mutating func restoreState(_ c: TrainerCheckpoint) throws {
        let current = exportState().metadata
        for key in ["vsc.family", "vsc.threshold", "vsc.lambda", "vsc.samples", "vsc.hidden", "vsc.latents", "vsc.pixels",
                    "vsc.batch_size", "vsc.aggregation"] where c.metadata[key] != current[key] {
            throw UnrollError.invalidCheckpoint("\(key) is \(c.metadata[key] ?? "missing"), this run's is \(current[key] ?? "unset")")
        }
        guard let d = c.tensors["dictionary"], d.shape == dictionary.shape, !d.hasNonFinite else {
            throw UnrollError.invalidCheckpoint("the tensor dictionary is missing, non-finite or not \(dictionary.shape)")
        }
        dictionary = d
    }

    /// A trained model from a checkpoint or model file alone (settings from its metadata), for
    /// encoding and evaluation; `step` is where training stood (the temperature schedule reads it).
    public init(checkpoint c: TrainerCheckpoint) throws {
        let config = try LinearGeneratorConfig(metadata: c.metadata)
        var rng = Random(seed: 0)
        self.init(pixels: try c.metadata.number("vsc.pixels", Int.self), config: config, rng: &rng)
        try trunk.restoreState(c.tensors, prefix: "encoder.trunk.")
        for i in heads.indices { try heads[i].restoreState(c.tensors, prefix: "encoder.head\(i).") }
        try restoreState(c)
    }
}

/// Trains a `LinearGeneratorModel` on signals `[n, pixels]` (vsc §4 and §6): SGD with Nesterov
/// momentum on the encoder under the one-cycle schedule, Φ by its own rule.
public typealias LinearGeneratorTrainer = Trainer<LinearGeneratorModel, RowBatches>

extension Trainer where Model == LinearGeneratorModel, Stream == RowBatches {
    /// The encoder and Φ from `config.seed` (a split of it), the shuffling and sampling generator the rest.
    public init(data: Tensor, config: LinearGeneratorConfig) throws {
        try config.validate()
        guard data.rank == 2, data.cols >= 1, data.rows >= config.batchSize else {
            throw UnrollError.invalidArgument("training set \(data.shape) is smaller than the batch size \(config.batchSize)")
        }
        if data.hasNonFinite { throw UnrollError.nonFinite("the training signals contain NaN or Inf") }
        var rng = Random(seed: config.seed)
        var modelRng = rng.split()
        let model = LinearGeneratorModel(pixels: data.cols, config: config, rng: &modelRng)
        let sgd = Optimizer.sgd(learningRate: config.learningRate, momentum: config.momentum, nesterov: true)
        try self.init(model: model, stream: RowBatches(data: data, batchSize: config.batchSize, dropLast: true, generator: rng),
                      optimizers: [Optimizer](repeating: sgd, count: model.parameters.count),
                      schedule: .oneCycle(OneCycleSchedule(maxLearningRate: config.learningRate,
                                                           totalSteps: config.epochs * (data.rows / config.batchSize))))
    }

    public var config: LinearGeneratorConfig { model.config }
}

public typealias NetworkGeneratorStepRecord = VSCStepRecord<NetworkGeneratorModel>

extension NetworkGeneratorModel: Trainable {
    public var parameterNames: [String] {
        encoder.parameterNames(prefix: "encoder.trunk.")
            + heads.enumerated().flatMap { i, head in head.parameterNames(prefix: "encoder.head\(i).") }
            + decoder.parameterNames(prefix: "decoder.")
    }

    public func evaluate(_ batch: RowBatches.Batch, step: Int) throws -> NetworkGeneratorStepRecord {
        var rng = batch.generator
        var m = self
        m.zeroGradients()
        let g = m.accumulateGradients(batch.rows, samples: config.variational.samples, klWeight: config.klWeight,
                                      aggregation: config.aggregation, temperature: config.temperature(step: step - 1), rng: &rng)
        var record = NetworkGeneratorStepRecord(step: step, epoch: batch.epoch, loss: g.loss, reconstruction: g.reconstruction, kl: g.kl,
                                                nonZero: g.nonZero, gradients: m.gradients, generator: rng, trained: m)
        record.pool(m.runningStatistics, examples: batch.rows.rows)
        return record
    }

    /// Keeps the step's batch-norm statistics (averaged over workers) with the updated weights.
    public mutating func finishStep(_ e: inout NetworkGeneratorStepRecord, step: Int) throws {
        let updated = parameters
        self = e.trained!
        parameters = updated
        runningStatistics = e.pooled(like: runningStatistics)
        e.trained = nil
    }

    /// The batch-norm running statistics and the settings (`vsc.*`, checked on restore).
    public func exportState() -> TrainerCheckpoint {
        var tensors = encoder.exportRunningStatistics(prefix: "encoder.trunk.")
        for (i, head) in heads.enumerated() { tensors.merge(head.exportRunningStatistics(prefix: "encoder.head\(i).")) { _, b in b } }
        tensors.merge(decoder.exportRunningStatistics(prefix: "decoder.")) { _, b in b }
        return TrainerCheckpoint(tensors: tensors, metadata: config.metadata)
    }

    public mutating func restoreState(_ c: TrainerCheckpoint) throws {
        let current = config.metadata
        for key in ["vsc.generator", "vsc.family", "vsc.threshold", "vsc.lambda", "vsc.samples", "vsc.latents",
                    "vsc.channels", "vsc.batch_size", "vsc.aggregation"] where c.metadata[key] != current[key] {
            throw UnrollError.invalidCheckpoint("\(key) is \(c.metadata[key] ?? "missing"), this run's is \(current[key] ?? "unset")")
        }
        var restored = self
        try restored.encoder.restoreState(c.tensors, prefix: "encoder.trunk.")
        for i in restored.heads.indices { try restored.heads[i].restoreState(c.tensors, prefix: "encoder.head\(i).") }
        try restored.decoder.restoreState(c.tensors, prefix: "decoder.")
        self = restored
    }

    /// A trained model from a checkpoint or model file alone (settings from its metadata).
    public init(checkpoint c: TrainerCheckpoint) throws {
        var rng = Random(seed: 0)
        self.init(config: try NetworkGeneratorConfig(metadata: c.metadata), rng: &rng)
        try restoreState(c)
    }
}

/// Trains a `NetworkGeneratorModel` on images `[n, 784]` (vsc §5): Adam on every weight under the
/// one-cycle schedule.
public typealias NetworkGeneratorTrainer = Trainer<NetworkGeneratorModel, RowBatches>

extension Trainer where Model == NetworkGeneratorModel, Stream == RowBatches {
    /// Every layer from a split of `config.seed`, the shuffling and sampling generator the rest.
    public init(data: Tensor, config: NetworkGeneratorConfig) throws {
        try config.validate()
        guard data.rank == 2, data.cols == NetworkGeneratorModel.pixels, data.rows >= config.batchSize else {
            throw UnrollError.invalidArgument("training images \(data.shape): expected [n ≥ \(config.batchSize), \(NetworkGeneratorModel.pixels)]")
        }
        if data.hasNonFinite { throw UnrollError.nonFinite("the training images contain NaN or Inf") }
        var rng = Random(seed: config.seed)
        var modelRng = rng.split()
        let model = NetworkGeneratorModel(config: config, rng: &modelRng)
        let adam = Optimizer.adam(learningRate: config.learningRate, beta1: config.beta1, beta2: config.beta2,
                                  weightDecay: config.weightDecay)
        try self.init(model: model, stream: RowBatches(data: data, batchSize: config.batchSize, dropLast: true, generator: rng),
                      optimizers: [Optimizer](repeating: adam, count: model.parameters.count),
                      schedule: .oneCycle(OneCycleSchedule(maxLearningRate: config.learningRate,
                                                           totalSteps: config.epochs * (data.rows / config.batchSize))))
    }

    public var config: NetworkGeneratorConfig { model.config }
}
