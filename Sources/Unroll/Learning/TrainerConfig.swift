import Foundation
import UnrollCore

/// The per-layer λ decay β as a function of the training step (PUDLE's AEdecay schedule:
/// β = 1 at the start and 0.005 lower after every 100 mini-batch steps).
///
/// β(step) = max(minimum, start − decrement·⌊step / every⌋), where `step` counts completed steps.
public struct BetaSchedule: Equatable, Sendable {
    public var start: Float
    public var decrement: Float
    public var every: Int
    public var minimum: Float

    public init(start: Float = 1, decrement: Float = 0, every: Int = 100, minimum: Float = 0) {
        self.start = start
        self.decrement = decrement
        self.every = every
        self.minimum = minimum
    }

    /// β = 1 throughout (a constant λ across layers).
    public static let constant = BetaSchedule()
    /// PUDLE's decay: 1, then −0.005 every 100 steps.
    public static let pudle = BetaSchedule(start: 1, decrement: 0.005, every: 100)

    /// β for the step after `completedSteps` steps.
    public func beta(afterSteps completedSteps: Int) -> Float {
        let drops = Double(completedSteps / max(1, every))
        return Float(max(Double(minimum), Double(start) - Double(decrement) * drops))
    }

    public func validate() throws {
        guard start.isFinite, start >= 0 else { throw UnrollError.invalidArgument("β schedule start must be finite and ≥ 0, got \(start)") }
        guard decrement.isFinite, decrement >= 0 else {
            throw UnrollError.invalidArgument("β schedule decrement must be finite and ≥ 0, got \(decrement)")
        }
        guard every >= 1 else { throw UnrollError.invalidArgument("β schedule interval must be ≥ 1 step, got \(every)") }
        guard minimum.isFinite, minimum >= 0 else {
            throw UnrollError.invalidArgument("β schedule minimum must be finite and ≥ 0, got \(minimum)")
        }
    }
}

/// Everything a `DictionaryTrainer` needs besides the dictionary and the data.
public struct TrainerConfig: Equatable, Sendable {
    public var encoder: UnrolledEncoder
    public var mode: GradientMode
    /// The optimizer as configured (fresh state); the trainer keeps its own running copy.
    public var optimizer: Optimizer
    /// Examples per step; `nil` = the full data set (full-batch gradient descent). Larger than n means n.
    public var batchSize: Int?
    /// Draw a new random order of the examples every epoch (from `seed`); otherwise keep the file order.
    public var shuffle: Bool
    public var seed: UInt64
    /// Scale every atom to unit norm after every optimizer step (PUDLE: yes, except its MNIST model).
    public var normalizeAtoms: Bool
    public var beta: BetaSchedule
    /// A step whose updated weights have an entry larger than this in magnitude counts as diverged.
    public var blowUpLimit: Float
    /// Learn a separate analysis bank E for the encoder's correlation, v = y − α Eᵀ(D y − x), started
    /// at the initial dictionary (an untied PUDLE; through-the-encoder gradients only).
    public var untied = false

    public init(encoder: UnrolledEncoder, mode: GradientMode, optimizer: Optimizer, batchSize: Int? = nil,
                shuffle: Bool = true, seed: UInt64 = 0, normalizeAtoms: Bool = true,
                beta: BetaSchedule = .constant, blowUpLimit: Float = 1e6) {
        self.encoder = encoder
        self.mode = mode
        self.optimizer = optimizer
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.seed = seed
        self.normalizeAtoms = normalizeAtoms
        self.beta = beta
        self.blowUpLimit = blowUpLimit
    }

    /// Checks the settings that do not depend on the dictionary or the data.
    public func validate() throws {
        try encoder.validate()
        try optimizer.validate()
        try beta.validate()
        if let b = batchSize, b < 1 { throw UnrollError.invalidArgument("batch size must be ≥ 1, got \(b)") }
        guard blowUpLimit.isFinite, blowUpLimit > 0 else {
            throw UnrollError.invalidArgument("blow-up limit must be finite and > 0, got \(blowUpLimit)")
        }
        if untied && !mode.throughEncoder {
            throw UnrollError.invalidArgument("an untied encoder learns its analysis bank through the encoder: use lasso or least-squares, not \(mode.rawValue)")
        }
    }
}

/// Known true dictionary and/or codes of a synthetic problem, for the per-step error metrics.
public struct GroundTruth: Sendable {
    /// W*, same shape as the trained weights.
    public var weights: Tensor?
    /// Z*, one row per data example (`[n, …]`, the code shape of the data).
    public var codes: Tensor?

    public init(weights: Tensor? = nil, codes: Tensor? = nil) {
        self.weights = weights
        self.codes = codes
    }
}

/// One training step's log record.
public struct TrainingRecord: StepEvaluation, Equatable {
    /// 1-based number of this step (= completed steps after it).
    public var step: Int
    /// 0-based epoch the step's batch came from.
    public var epoch: Int
    public var batchSize: Int
    /// The mode's loss on the batch, with the weights before this step's update.
    public var loss: Double
    /// ½Σ‖x − x̂‖²/B on the batch (before the update).
    public var reconstruction: Double
    /// Σ|z|/B on the batch (before the update).
    public var l1: Double
    /// ‖W − W*‖_F / ‖W*‖_F after the update (atoms normalised, no permutation), if W* is known.
    public var dictionaryError: Double?
    /// mean_i ‖z_i − z*_i‖ over the batch (codes from the weights before the update), if Z* is known.
    public var codeError: Double?
    /// The λ decay β used by the encoder in this step.
    public var beta: Float
    /// The encoder step α used.
    public var alpha: Float
    /// ∂loss/∂W (the trainer reads it; the reducer may average it across workers).
    public var gradients: [Tensor]
}

/// A trainer's full state for an exact resume: named tensors and string metadata.
/// (The Unroll module does not write files; the CLI stores this as safetensors.)
public struct TrainerCheckpoint: Equatable, Sendable {
    public var tensors: [String: Tensor]
    public var metadata: [String: String]

    public init(tensors: [String: Tensor], metadata: [String: String]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    /// The non-negative integer stored under `key` (a step or epoch count).
    public func count(_ key: String) throws -> Int {
        guard let v = metadata[key].flatMap(Int.init), v >= 0 else {
            throw UnrollError.invalidCheckpoint("\(key) is missing or not a non-negative integer")
        }
        return v
    }

    /// The random generator stored under `key` by `setGenerator`.
    public func generator(_ key: String) throws -> Random {
        guard let words = metadata[key]?.split(separator: ",").compactMap({ UInt64($0) }),
              let rng = Random(state: words) else {
            throw UnrollError.invalidCheckpoint("\(key) is missing or not a generator state")
        }
        return rng
    }

    /// Stores `rng`'s full state under `key` (comma-separated words).
    public mutating func setGenerator(_ rng: Random, _ key: String) {
        metadata[key] = rng.state.map(String.init).joined(separator: ",")
    }

    /// Where an epoch-based trainer stands: `trainer.step`, `trainer.epoch`, `trainer.examples` (the size
    /// of its data set) and `trainer.rng`.
    mutating func setProgress(step: Int, epoch: Int, examples: Int, rng: Random) {
        metadata["trainer.step"] = String(step)
        metadata["trainer.epoch"] = String(epoch)
        metadata["trainer.examples"] = String(examples)
        setGenerator(rng, "trainer.rng")
    }

    /// What `setProgress` stored, for data of `examples` items (`unit` names them in the error).
    func progress(examples: Int, unit: String) throws -> (step: Int, epoch: Int, rng: Random) {
        guard let saved = metadata["trainer.examples"].flatMap(Int.init), saved == examples else {
            throw UnrollError.invalidCheckpoint("trainer.examples is \(metadata["trainer.examples"] ?? "missing"), but the data have \(examples) \(unit)")
        }
        return (try count("trainer.step"), try count("trainer.epoch"), try generator("trainer.rng"))
    }
}

extension Dictionary where Key == String, Value == String {
    /// The checkpoint metadata under `key` (throws `invalidCheckpoint` naming it when missing).
    func required(_ key: String) throws -> String {
        guard let v = self[key] else { throw UnrollError.invalidCheckpoint("metadata \(key) is missing") }
        return v
    }

    /// The case of `T` named under `key` (throws `invalidCheckpoint` naming the key and the unknown name).
    func choice<T: RawRepresentable & CaseIterable>(_ key: String, _: T.Type) throws -> T where T.RawValue == String {
        let name = try required(key)
        guard let v = T(rawValue: name) else {
            throw UnrollError.invalidCheckpoint("metadata \(key) '\(name)' is not one of " + T.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return v
    }

    /// The number under `key` (throws `invalidCheckpoint` naming it when missing or not a number).
    func number<T: LosslessStringConvertible>(_ key: String, _: T.Type) throws -> T {
        guard let v = T(try required(key)) else { throw UnrollError.invalidCheckpoint("metadata \(key) is not a number") }
        return v
    }
}
