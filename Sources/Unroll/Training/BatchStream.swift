import UnrollCore

/// Where a trainer's batches come from, as a value: the trainer copies it, draws a batch, and keeps
/// the copy only when the step commits, so a rejected step leaves the stream where it was. Its state
/// goes into checkpoints, so a resumed run draws the same batches.
public protocol BatchStream: Sendable {
    associatedtype Batch
    mutating func next() -> Batch
    /// Epochs completed (0 for streams without epochs).
    var epoch: Int { get }
    func exportState(into checkpoint: inout TrainerCheckpoint)
    mutating func restoreState(_ checkpoint: TrainerCheckpoint) throws
}

/// Rows of a data matrix in mini-batches, the order shuffled afresh each epoch from `seed` (or kept);
/// the last batch of an epoch may be smaller.
public struct RowBatches: BatchStream {
    public struct Batch: Sendable {
        public var rows: Tensor
        /// The rows' indices in the data (for per-example ground truth).
        public var indices: [Int]
        /// The epoch the batch belongs to.
        public var epoch: Int
    }

    public let data: Tensor
    public let batchSize: Int
    public let shuffle: Bool
    public private(set) var epoch = 0
    /// Index in the epoch's order of the next batch's first row.
    public private(set) var position = 0
    private var rng: Random
    /// The generator's state before the current epoch's order was drawn (what a checkpoint stores).
    private var epochStartState: [UInt64]
    private var order: [Int] = []

    public init(data: Tensor, batchSize: Int, shuffle: Bool = true, seed: UInt64) {
        self.data = data
        self.batchSize = max(1, min(batchSize, data.rows))
        self.shuffle = shuffle
        self.rng = Random(seed: seed)
        self.epochStartState = rng.state
        self.order = drawOrder()
    }

    public var stepsPerEpoch: Int { (data.rows + batchSize - 1) / batchSize }

    private mutating func drawOrder() -> [Int] { shuffle ? rng.permutation(data.rows) : Array(0..<data.rows) }

    public mutating func next() -> Batch {
        let end = min(position + batchSize, data.rows)
        let indices = Array(order[position..<end])
        let batch = Batch(rows: data.gatherRows(indices), indices: indices, epoch: epoch)
        position = end
        if position >= data.rows {
            epoch += 1
            position = 0
            epochStartState = rng.state
            order = drawOrder()
        }
        return batch
    }

    public func exportState(into c: inout TrainerCheckpoint) {
        c.metadata["trainer.epoch"] = String(epoch)
        c.metadata["trainer.position"] = String(position)
        c.metadata["trainer.examples"] = String(data.rows)
        c.metadata["trainer.rng"] = epochStartState.map { String($0) }.joined(separator: ",")
    }

    public mutating func restoreState(_ c: TrainerCheckpoint) throws {
        let examples = try c.count("trainer.examples")
        guard examples == data.rows else {
            throw UnrollError.invalidCheckpoint("trainer.examples is \(examples), but the data have \(data.rows) rows")
        }
        let newEpoch = try c.count("trainer.epoch"), newPosition = try c.count("trainer.position")
        guard newPosition < data.rows else {
            throw UnrollError.invalidCheckpoint("trainer.position \(newPosition) is outside the \(data.rows) examples")
        }
        rng = try c.generator("trainer.rng")
        epochStartState = rng.state
        order = drawOrder()
        epoch = newEpoch
        position = newPosition
    }
}

/// Random noisy/clean crop pairs of training images (`DenoisingSampler`), `batchSize` per batch,
/// from one generator seeded by the run.
public struct CropBatches: BatchStream {
    public typealias Batch = (noisy: Tensor, clean: Tensor)
    public let sampler: DenoisingSampler
    public let batchSize: Int
    private var rng: Random
    public var epoch: Int { 0 }

    public init(sampler: DenoisingSampler, batchSize: Int, seed: UInt64) {
        self.sampler = sampler
        self.batchSize = batchSize
        self.rng = Random(seed: seed)
    }

    public mutating func next() -> Batch { sampler.next(batch: batchSize, rng: &rng) }

    public func exportState(into c: inout TrainerCheckpoint) {
        c.setGenerator(rng, "trainer.rng")
        c.metadata["trainer.images"] = String(sampler.images.count)
    }

    public mutating func restoreState(_ c: TrainerCheckpoint) throws {
        let images = try c.count("trainer.images")
        guard images == sampler.images.count else {
            throw UnrollError.invalidCheckpoint("trainer.images is \(images), this run has \(sampler.images.count) training images")
        }
        rng = try c.generator("trainer.rng")
    }
}
