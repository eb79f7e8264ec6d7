import Foundation
import UnrollCore

/// How the learning rates change over a run, as a function of where the run stands (so a resumed
/// run recomputes them exactly).
public enum LearningRateSchedule: Equatable, Sendable {
    case constant
    /// × γ after every `every` steps (CRsAE's StepLR).
    case stepDecay(every: Int, gamma: Float)
    /// × γ after every epoch.
    case epochDecay(gamma: Float)
    /// The one-cycle schedule (VSC), replacing the configured rate.
    case oneCycle(OneCycleSchedule)

    /// The rate for the step after `step` completed steps in `epoch` completed epochs, from `base`
    /// (γ applied by repeated multiplication, as a running rate would be).
    func rate(_ base: Float, step: Int, epoch: Int) -> Float {
        let (times, gamma): (Int, Float)
        switch self {
        case .constant: return base
        case let .oneCycle(schedule): return schedule.learningRate(step: step)
        case let .stepDecay(every, g): (times, gamma) = (step / max(1, every), g)
        case let .epochDecay(g): (times, gamma) = (epoch, g)
        }
        var r = base
        for _ in 0..<times { r *= gamma }
        return r
    }

    func validate() throws {
        switch self {
        case .constant: return
        case let .oneCycle(schedule): try schedule.validate()
        case let .stepDecay(every, g):
            guard every >= 1 else { throw UnrollError.invalidArgument("learning-rate step must be ≥ 1, got \(every)") }
            guard g.isFinite, g > 0, g <= 1 else { throw UnrollError.invalidArgument("learning-rate γ must be in (0, 1], got \(g)") }
        case let .epochDecay(g):
            guard g.isFinite, g > 0, g <= 1 else { throw UnrollError.invalidArgument("learning-rate decay must be in (0, 1], got \(g)") }
        }
    }
}

/// The one training loop (layer 6 of the design), for every `Trainable` model and `BatchStream`:
///
///     batch ← stream.next();  (loss, g) ← model.evaluate(batch);  reducer.reduce(g, loss)
///     each parameter: optimizer step (its own optimizer, the schedule's rate);  model.finishStep
///
/// **Commit or roll back.** A step works on copies of the model, the optimizers and the stream, and
/// keeps them only when everything is finite: a non-finite loss or gradient, an overflowing optimizer,
/// updated parameters that are non-finite or larger than `blowUpLimit`, or a `finishStep` that throws,
/// throw `UnrollError.diverged(step:reason:)` and leave the trainer at the last good step, ready to
/// checkpoint.
///
/// **Checkpoints.** `checkpoint()` holds the parameters (by name), the optimizers' moments, the step,
/// the stream's position and generator, and the model's own state; `restore(_:)` on a trainer built
/// with the same model shape, data and settings continues bit-identically.
///
/// **Workers.** `reducer` combines each batch's gradient across processes before the update (the
/// identity here; MPI's allreduce for data-parallel training).
public struct Trainer<Model: Trainable, Stream: BatchStream>: Sendable where Stream.Batch == Model.Batch {
    public private(set) var model: Model
    public private(set) var stream: Stream
    /// One optimizer per parameter, as running.
    public private(set) var optimizers: [Optimizer]
    /// The optimizers as configured (the schedule scales their rates).
    public let baseOptimizers: [Optimizer]
    /// Which parameters the schedule applies to (all by default).
    public let scheduled: [Bool]
    public let schedule: LearningRateSchedule
    public let blowUpLimit: Float
    public var reducer: any GradientReducer = LocalReducer()
    /// Completed steps.
    public private(set) var step = 0

    /// What a step returns: the step, the epoch its batch came from, the model's evaluation (whose
    /// fields read through: `report.loss`), the time.
    @dynamicMemberLookup
    public struct Report: Sendable {
        public var step: Int
        public var epoch: Int
        public var evaluation: Model.Evaluation
        public var seconds: Double

        public subscript<T>(dynamicMember key: KeyPath<Model.Evaluation, T>) -> T { evaluation[keyPath: key] }
    }

    public init(model: Model, stream: Stream, optimizers: [Optimizer], schedule: LearningRateSchedule = .constant,
                scheduled: [Bool]? = nil, blowUpLimit: Float = 1e6) throws {
        let p = model.parameters
        guard optimizers.count == p.count, model.parameterNames.count == p.count else {
            throw UnrollError.invalidArgument("a trainer needs one optimizer and one name per parameter (\(p.count)), got \(optimizers.count) and \(model.parameterNames.count)")
        }
        for o in optimizers { try o.validate() }
        try schedule.validate()
        guard blowUpLimit.isFinite, blowUpLimit > 0 else {
            throw UnrollError.invalidArgument("blow-up limit must be finite and > 0, got \(blowUpLimit)")
        }
        for (t, name) in zip(p, model.parameterNames) where t.hasNonFinite {
            throw UnrollError.nonFinite("the initial \(name) contains NaN or Inf")
        }
        self.model = model
        self.stream = stream
        self.baseOptimizers = optimizers.map { var o = $0; o.reset(); return o }
        self.scheduled = scheduled ?? [Bool](repeating: true, count: p.count)
        self.schedule = schedule
        self.blowUpLimit = blowUpLimit
        self.optimizers = []
        self.optimizers = self.scheduled(baseOptimizers, step: 0, epoch: stream.epoch)
    }

    /// The optimizers with the schedule's rate for the step after `step` completed steps (what a
    /// checkpoint stores, so a resume recomputes and checks it).
    private func scheduled(_ optimizers: [Optimizer], step: Int, epoch: Int) -> [Optimizer] {
        var out = optimizers
        for i in out.indices where scheduled[i] {
            out[i].learningRate = schedule.rate(baseOptimizers[i].learningRate, step: step, epoch: epoch)
        }
        return out
    }

    /// One step on the next batch; on divergence it throws and changes nothing.
    @discardableResult
    public mutating func trainStep() throws -> Report {
        let t0 = ContinuousClock.now
        let thisStep = step + 1
        let names = model.parameterNames
        var nextStream = stream
        let batchEpoch = stream.epoch
        var batch = nextStream.next()
        if reducer.workers > 1 {
            let global = Stream.examples(in: batch)
            guard global >= reducer.workers else {
                throw UnrollError.invalidArgument("a batch of \(global) examples cannot be shared by \(reducer.workers) workers; use a batch ≥ \(reducer.workers)")
            }
            batch = Stream.shard(batch, worker: reducer.rank, of: reducer.workers)
        }
        var evaluation = try FlushDenormals.with(true) { try model.evaluate(batch, step: thisStep) }
        var loss = evaluation.loss
        var (gradients, sums) = (evaluation.gradients, evaluation.pooledSums)
        try reducer.reduce(&gradients, loss: &loss, sums: &sums, examples: Stream.examples(in: batch))
        evaluation.gradients = gradients
        evaluation.pooledSums = sums
        evaluation.loss = loss
        guard loss.isFinite else { throw UnrollError.diverged(step: thisStep, reason: "the loss is \(loss)") }
        // A gradient with NaN or Inf makes its updated weights non-finite, so the gradients are searched
        // only when a step's own checks fail (reporting the first such gradient, as before any step).
        func failed(_ reason: String) -> UnrollError {
            for (g, name) in zip(evaluation.gradients, names) where g.hasNonFinite {
                return UnrollError.diverged(step: thisStep, reason: "the gradient of the \(name) contains NaN or Inf")
            }
            return UnrollError.diverged(step: thisStep, reason: reason)
        }

        var newModel = model
        var newOptimizers = optimizers
        var updated = newModel.parameters
        for i in updated.indices {
            let summary = newOptimizers[i].step(&updated[i], gradient: evaluation.gradients[i])
            if !summary.stateIsFinite { throw failed("the optimizer state overflowed (gradient too large)") }
            let largest = summary.largestWeight
            if !(largest <= blowUpLimit) {
                throw failed(!largest.isFinite ? "the updated \(names[i]) contains NaN or Inf"
                                               : "the updated \(names[i]) has an entry of magnitude \(largest) > \(blowUpLimit)")
            }
        }
        newModel.parameters = updated
        try newModel.finishStep(&evaluation, step: thisStep)
        // With several workers each drew from its own generator (`shard`); the stream keeps its own,
        // so every worker shuffles the next epoch alike.
        if let g = evaluation.generator, reducer.workers == 1 { nextStream.adopt(g) }
        // Only what `finishStep` replaced needs a check: a tensor still sharing the checked step's storage
        // is unchanged (`updated` stays alive, so writing to it in place would have copied it).
        try withExtendedLifetime(updated) {
            for (i, (t, name)) in zip(newModel.parameters, names).enumerated()
            where !(i < updated.count && t.sharesStorage(with: updated[i])) && t.hasNonFinite {
                throw UnrollError.diverged(step: thisStep, reason: "the updated \(name) contains NaN or Inf")
            }
        }

        model = newModel
        optimizers = scheduled(newOptimizers, step: thisStep, epoch: nextStream.epoch)
        stream = nextStream
        step = thisStep
        return Report(step: thisStep, epoch: batchEpoch, evaluation: evaluation, seconds: secondsSince(t0))
    }

    /// Steps until `steps` are complete in total; `onStep` sees each report.
    public mutating func train(toStep steps: Int, onStep: ((Report) throws -> Void)? = nil) throws {
        while step < steps {
            let report = try trainStep()
            try onStep?(report)
        }
    }

    /// `steps` more steps.
    public mutating func train(steps: Int, onStep: ((Report) throws -> Void)? = nil) throws {
        try train(toStep: step + max(0, steps), onStep: onStep)
    }

    /// Trains until `epochs` more epochs are complete (finishing a partly done epoch counts as one).
    public mutating func train(epochs: Int, onStep: ((Report) throws -> Void)? = nil) throws {
        let target = stream.epoch + max(0, epochs)
        while stream.epoch < target {
            let report = try trainStep()
            try onStep?(report)
        }
    }

    /// The same model, optimizers and step, drawing its batches from `stream` from now on (online
    /// learning: each call of scikit-learn's `partial_fit` brings new data).
    public func continuing(on stream: Stream) -> Trainer {
        var t = self
        t.stream = stream
        return t
    }

    // MARK: checkpoints

    /// The optimizer's key prefix: `optimizer.` for a model with one parameter, else `optimizer.<name>.`.
    private func prefix(_ i: Int) -> String {
        model.parameterNames.count == 1 ? "optimizer." : "optimizer.\(model.parameterNames[i])."
    }

    public func checkpoint() -> TrainerCheckpoint {
        var c = model.exportState()
        for (i, (name, tensor)) in zip(model.parameterNames, model.parameters).enumerated() {
            c.tensors[name] = tensor
            let state = optimizers[i].exportState(prefix: prefix(i))
            c.tensors.merge(state.tensors) { _, new in new }
            c.metadata.merge(state.metadata) { _, new in new }
        }
        c.metadata["trainer.step"] = String(step)
        stream.exportState(into: &c)
        return c
    }

    /// Restores a `checkpoint()`; throws `UnrollError.invalidCheckpoint` (changing nothing) when an
    /// entry is missing or does not fit this trainer.
    public mutating func restore(_ c: TrainerCheckpoint) throws {
        var newModel = model
        var parameters = newModel.parameters
        var newOptimizers = baseOptimizers
        for (i, name) in model.parameterNames.enumerated() {
            guard let t = c.tensors[name] else { throw UnrollError.invalidCheckpoint("the tensor \"\(name)\" is missing") }
            guard t.shape == parameters[i].shape else {
                throw UnrollError.invalidCheckpoint("\(name) has shape \(t.shape), the trainer's is \(parameters[i].shape)")
            }
            if t.hasNonFinite { throw UnrollError.invalidCheckpoint("\(name) contains NaN or Inf") }
            parameters[i] = t
            try newOptimizers[i].restoreState(tensors: c.tensors, metadata: c.metadata, weightShape: t.shape, prefix: prefix(i))
        }
        newModel.parameters = parameters
        try newModel.restoreState(c)
        let newStep = try c.count("trainer.step")
        var newStream = stream
        try newStream.restoreState(c)
        newOptimizers = scheduled(newOptimizers, step: newStep, epoch: newStream.epoch)
        for i in newOptimizers.indices {
            // The run's optimizer settings must be the checkpoint's (the moments mean nothing under
            // others); a scheduled rate may differ: a longer run stretches a one-cycle schedule.
            for (key, value) in newOptimizers[i].exportState(prefix: prefix(i)).metadata.sorted(by: { $0.key < $1.key })
            where !key.hasSuffix(".steps") && !(schedule != .constant && scheduled[i] && key.hasSuffix(".learning_rate")) && c.metadata[key] != value {
                throw UnrollError.invalidCheckpoint("\(key) is \(c.metadata[key] ?? "missing"), this run's is \(value)")
            }
        }
        model = newModel
        optimizers = newOptimizers
        stream = newStream
        step = newStep
    }
}
