import UnrollCore

/// A model the one `Trainer` can train (layer 6 of the design): its learned tensors, the loss and the
/// gradients of a batch, and what changes without a gradient after a step (normalising atoms, CRsAE's
/// EM λ). PUDLE's dense and convolutional models, CRsAE 1-D and 2-D conform; the trainer owns the
/// loop, the optimizers, the divergence guard, checkpoints and the gradient-reduction seam.
public protocol Trainable: Sendable {
    associatedtype Batch
    /// What one batch gives: the loss, a gradient per parameter, and the model's own measures.
    associatedtype Evaluation: StepEvaluation

    /// The learned tensors, in a fixed order (`parameterNames` names them in checkpoints).
    var parameters: [Tensor] { get set }
    var parameterNames: [String] { get }

    /// Loss and gradients of `batch` at the current parameters, for step `step` (1-based; schedules such
    /// as PUDLE's λ decay depend on it). Must not change the model.
    func evaluate(_ batch: Batch, step: Int) throws -> Evaluation

    /// After the optimizer step (the parameters are updated and finite): projections and updates
    /// without a gradient; it may complete the step's measures. Throws `UnrollError.diverged` to reject the step (the trainer rolls back).
    mutating func finishStep(_ evaluation: inout Evaluation, step: Int) throws

    /// State beyond the parameters that a resume needs (EM λ, σ, L), and its restore.
    func exportState() -> TrainerCheckpoint
    mutating func restoreState(_ checkpoint: TrainerCheckpoint) throws
}

extension Trainable {
    public func exportState() -> TrainerCheckpoint { TrainerCheckpoint(tensors: [:], metadata: [:]) }
    public mutating func restoreState(_ checkpoint: TrainerCheckpoint) throws {}
    public mutating func finishStep(_ evaluation: inout Evaluation, step: Int) throws {}
}

/// The part of a step's result the trainer reads.
public protocol StepEvaluation: Sendable {
    /// The batch's loss (with several workers, replaced by the mean over the global batch; the other
    /// measures of a record stay this worker's share's).
    var loss: Double { get set }
    /// One per parameter, in `parameters` order; the reducer may replace them (averaged across workers).
    var gradients: [Tensor] { get set }
    /// Sums over the batch that `finishStep` reads (CRsAE's EM statistics); with several workers the
    /// reducer replaces them by their sums over every worker's share. None by default.
    var pooledSums: [Double] { get set }
    /// The batch's generator after the model's own draws, for a stream that shares it (VSC samples
    /// from the generator that shuffles, as its reference does); nil for models that draw nothing.
    var generator: Random? { get }
}

extension StepEvaluation {
    public var generator: Random? { nil }
    public var pooledSums: [Double] {
        get { [] }
        set {}
    }
}

/// Where a batch's gradient is combined across workers before the update: the identity in one
/// process; `MPIReducer` (target UnrollMPI) sums over the ranks with one `MPI_Allreduce`. With more
/// than one worker, each evaluates its share of every global batch (`BatchStream.shard`) and every
/// worker applies the same reduced update. Every worker must call it once per step, in step order.
public protocol GradientReducer: Sendable {
    /// This worker's index in 0..<workers.
    var rank: Int { get }
    var workers: Int { get }
    /// Replaces `gradients` and `loss`, this worker's means over its `examples`, by the means over
    /// the examples of every worker, and `sums` by their sums over the workers.
    func reduce(_ gradients: inout [Tensor], loss: inout Double, sums: inout [Double], examples: Int) throws
    /// Whether every worker holds exactly these tensors (compared by a 64-bit hash of their bits).
    func agree(on tensors: [Tensor]) throws -> Bool
}

extension Tensor {
    /// FNV-1a over the values' bits (for checking that workers hold the same weights).
    public static func bitHash(_ tensors: [Tensor]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for t in tensors {
            for v in t.data {
                h = (h ^ UInt64(v.bitPattern)) &* 0x0000_0100_0000_01b3
            }
        }
        return h
    }
}

/// One process: nothing to combine.
public struct LocalReducer: GradientReducer {
    public init() {}
    public var rank: Int { 0 }
    public var workers: Int { 1 }
    public func reduce(_ gradients: inout [Tensor], loss: inout Double, sums: inout [Double], examples: Int) throws {}
    public func agree(on tensors: [Tensor]) throws -> Bool { true }
}
