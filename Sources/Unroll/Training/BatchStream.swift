import UnrollCore

/// Where a trainer's batches come from, as a value: the trainer copies it, draws a batch, and keeps
/// the copy only when the step commits, so a rejected step leaves the stream where it was. Its state
/// goes into checkpoints, so a resumed run draws the same batches.
public protocol BatchStream: Sendable {
    associatedtype Batch
    mutating func next() -> Batch
    /// Takes back the generator a model drew samples from (`StepEvaluation.generator`); most streams
    /// share none and ignore it.
    mutating func adopt(_ generator: Random)
    /// Epochs completed (0 for streams without epochs).
    var epoch: Int { get }
    func exportState(into checkpoint: inout TrainerCheckpoint)
    mutating func restoreState(_ checkpoint: TrainerCheckpoint) throws
    /// The examples in a batch.
    static func examples(in batch: Batch) -> Int
    /// Worker `worker`'s share of a global batch (examples worker·b/N ..< (worker+1)·b/N of b).
    static func shard(_ batch: Batch, worker: Int, of workers: Int) -> Batch
}

extension BatchStream {
    /// The examples of worker `worker` of `workers` in a batch of `count`.
    public static func shareRange(_ count: Int, worker: Int, of workers: Int) -> Range<Int> {
        (worker * count / workers)..<((worker + 1) * count / workers)
    }
}

/// Rows of a data matrix in mini-batches, the order shuffled afresh each epoch from `seed` (or kept).
/// The last batch of an epoch may be smaller, or be dropped (`dropLast`). An epoch's order is drawn
/// when its first batch is: a model that samples from the same generator (`StepEvaluation.generator`,
/// VSC) hands it back after each step, and the next epoch's order continues from there.
public struct RowBatches: BatchStream {
    public struct Batch: Sendable {
        public var rows: Tensor
        /// The rows' indices in the data (for per-example ground truth).
        public var indices: [Int]
        /// The epoch the batch belongs to.
        public var epoch: Int
        /// The stream's generator after this batch's draws, for a model that samples from it.
        public var generator: Random
    }

    public let data: any RowSource
    public let batchSize: Int
    public let shuffle: Bool
    public let dropLast: Bool
    public private(set) var epoch = 0
    /// Index in the epoch's order of the next batch's first row.
    public private(set) var position = 0
    private var rng: Random
    /// The generator's state before the current epoch's order was drawn (what a checkpoint stores).
    private var epochStartState: [UInt64]
    /// The current epoch's order; nil until its first batch is drawn.
    private var order: [Int]?
    /// Whether a model hands the generator back (then checkpoints also store its current state).
    private var shared = false

    public init(data: any RowSource, batchSize: Int, shuffle: Bool = true, dropLast: Bool = false, seed: UInt64) {
        self.init(data: data, batchSize: batchSize, shuffle: shuffle, dropLast: dropLast, generator: Random(seed: seed))
    }

    /// Shuffling (and, for a sampling model, sampling) continues `generator`.
    public init(data: any RowSource, batchSize: Int, shuffle: Bool = true, dropLast: Bool = false, generator: Random) {
        self.data = data
        self.batchSize = max(1, min(batchSize, data.rowCount))
        self.shuffle = shuffle
        self.dropLast = dropLast
        self.rng = generator
        self.epochStartState = rng.state
    }

    public var stepsPerEpoch: Int { dropLast ? data.rowCount / batchSize : (data.rowCount + batchSize - 1) / batchSize }
    /// Rows an epoch uses.
    private var epochRows: Int { dropLast ? stepsPerEpoch * batchSize : data.rowCount }

    private mutating func drawOrder() -> [Int] { shuffle ? rng.permutation(data.rowCount) : Array(0..<data.rowCount) }

    public mutating func next() -> Batch {
        if order == nil {
            epochStartState = rng.state
            order = drawOrder()
        }
        let end = min(position + batchSize, epochRows)
        let indices = Array(order![position..<end])
        let batch = Batch(rows: data.gatherRows(indices), indices: indices, epoch: epoch, generator: rng)
        position = end
        if position >= epochRows {
            epoch += 1
            position = 0
            order = nil
        }
        return batch
    }

    public mutating func adopt(_ generator: Random) {
        rng = generator
        shared = true
    }

    public static func examples(in batch: Batch) -> Int { batch.rows.rows }

    /// A sampling model draws each worker's share from its own generator, derived from the batch's
    /// generator, the epoch, the batch's first row and the worker (reproducible from the seed and the
    /// rank; the shuffling stays global because the stream keeps its own generator, see `Trainer`).
    public static func shard(_ batch: Batch, worker: Int, of workers: Int) -> Batch {
        let r = shareRange(batch.rows.rows, worker: worker, of: workers)
        let generator = batch.generator.derived([UInt64(batch.epoch), UInt64(batch.indices.first ?? 0), UInt64(worker)])
        return Batch(rows: batch.rows.rows(r), indices: Array(batch.indices[r]), epoch: batch.epoch, generator: generator)
    }

    public func exportState(into c: inout TrainerCheckpoint) {
        c.metadata["trainer.epoch"] = String(epoch)
        c.metadata["trainer.position"] = String(position)
        c.metadata["trainer.examples"] = String(data.rowCount)
        c.metadata["trainer.rng"] = (order == nil ? rng.state : epochStartState).map { String($0) }.joined(separator: ",")
        if shared && order != nil { c.setGenerator(rng, "trainer.rng_now") }
    }

    public mutating func restoreState(_ c: TrainerCheckpoint) throws {
        let examples = try c.count("trainer.examples")
        guard examples == data.rowCount else {
            throw UnrollError.invalidCheckpoint("trainer.examples is \(examples), but the data have \(data.rowCount) rows")
        }
        let newEpoch = try c.count("trainer.epoch"), newPosition = try c.count("trainer.position")
        guard newPosition < epochRows else {
            throw UnrollError.invalidCheckpoint("trainer.position \(newPosition) is outside the \(epochRows) examples of an epoch")
        }
        var restored = self
        restored.rng = try c.generator("trainer.rng")
        restored.epochStartState = restored.rng.state
        restored.order = nil
        if newPosition > 0 {
            restored.order = restored.drawOrder()
            if c.metadata["trainer.rng_now"] != nil { restored.rng = try c.generator("trainer.rng_now") }
        }
        restored.epoch = newEpoch
        restored.position = newPosition
        self = restored
    }
}

extension BatchStream {
    public mutating func adopt(_ generator: Random) {}
}

/// Random noisy/clean crop pairs of training images and their noise σ (`DenoisingSampler`), `batchSize` per batch,
/// from one generator seeded by the run.
public struct CropBatches: BatchStream {
    public typealias Batch = (noisy: Tensor, clean: Tensor, sigmas: [Float])
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

    public static func examples(in batch: Batch) -> Int { batch.noisy.rows }

    public static func shard(_ batch: Batch, worker: Int, of workers: Int) -> Batch {
        let r = shareRange(batch.noisy.rows, worker: worker, of: workers)
        return (batch.noisy.rows(r), batch.clean.rows(r), Array(batch.sigmas[r]))
    }

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
