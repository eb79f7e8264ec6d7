import Foundation
import Testing
import Unroll
import UnrollCore

/// The trainer's data-parallel seam without MPI: workers on threads share a reducer that sums their
/// example-weighted gradients (what `MPIReducer`'s one MPI_Allreduce does across processes). Each
/// worker evaluates its share of the same global batches; they must end with identical weights, equal
/// to one process's training with the same global batch up to float summation order.
@Suite struct DataParallelTests {
    /// An all-reduce over threads: every worker deposits [g·b, loss·b, b]; the last one in publishes
    /// the sums; each divides by Σb.
    final class ThreadReducer: @unchecked Sendable {
        let workers: Int
        private let condition = NSCondition()
        private var sums: [Double] = []
        private var arrived = 0
        private var generation = 0
        private var published: [Double] = []

        init(workers: Int) { self.workers = workers }

        func allReduce(_ values: [Double]) -> [Double] {
            condition.lock()
            defer { condition.unlock() }
            let myGeneration = generation
            sums = sums.isEmpty ? values : zip(sums, values).map(+)
            arrived += 1
            if arrived == workers {
                published = sums
                sums = []
                arrived = 0
                generation += 1
                condition.broadcast()
            } else {
                while generation == myGeneration { condition.wait() }
            }
            return published
        }
    }

    struct Worker: GradientReducer {
        let rank: Int
        let shared: ThreadReducer
        var workers: Int { shared.workers }

        func reduce(_ gradients: inout [Tensor], loss: inout Double, sums: inout [Double], examples: Int) throws {
            let b = Double(examples)
            var values = gradients.flatMap { $0.data.map { Double($0) * b } }
            values += sums + [loss * b, b]
            let totals = shared.allReduce(values)
            let total = totals[totals.count - 1]
            var offset = 0
            for i in gradients.indices {
                for k in 0..<gradients[i].count { gradients[i].data[k] = Float(totals[offset + k] / total) }
                offset += gradients[i].count
            }
            for i in sums.indices { sums[i] = totals[offset + i] }
            offset += sums.count
            loss = totals[offset] / total
        }

        /// Σ over workers of the hash's 16-bit parts equals workers × this worker's parts.
        func agree(on tensors: [Tensor]) throws -> Bool {
            let h = Tensor.bitHash(tensors)
            let parts = (0..<4).map { Double((h >> (16 * UInt64($0))) & 0xFFFF) }
            return shared.allReduce(parts) == parts.map { $0 * Double(workers) }
        }
    }

    @Test(arguments: [2, 3])
    func workersEndIdenticalAndEqualToOneProcess(workers: Int) throws {
        var rng = Random(seed: 12)
        let data = Tensor.normal([64, 12], rng: &rng)
        let initial = DenseDictionary.random(atoms: 16, signalSize: 12, seed: 3)
        let config = TrainerConfig(encoder: UnrolledEncoder(layers: 20, lambda: .scalar(0.1), step: .fixed(0.2)),
                                   mode: .leastSquares, optimizer: .adam(learningRate: 1e-2), batchSize: 20, seed: 4)
        let steps = 50
        var single = try DictionaryTrainer(dictionary: initial, data: data, config: config)
        try Parallel.withWorkers(1) { try single.train(toStep: steps) }

        let shared = ThreadReducer(workers: workers)
        let results = Results(count: workers)
        let threads = (0..<workers).map { rank in
            Thread {
                do {
                    var t = try DictionaryTrainer(dictionary: initial, data: data, config: config)
                    t.reducer = Worker(rank: rank, shared: shared)
                    try Parallel.withWorkers(1) { try t.train(toStep: steps) }
                    guard try t.reducer.agree(on: t.model.parameters) else { return results.set(rank, nil) }
                    results.set(rank, t.dictionary.weights)
                } catch {
                    results.set(rank, nil)
                }
            }
        }
        threads.forEach { $0.start() }
        let weights = results.wait()
        #expect(weights.allSatisfy { $0 != nil }, "a worker failed")
        let w = weights.compactMap { $0 }
        #expect(w.allSatisfy { $0 == w[0] }, "the workers' weights differ")
        let difference = relativeDifference(doubles(w[0]), doubles(single.dictionary.weights))
        #expect(difference < 1e-5, "relative difference \(difference) to one process")
    }

    /// Results of worker threads, waited for.
    final class Results: @unchecked Sendable {
        private let condition = NSCondition()
        private var values: [Tensor?]
        private var done = 0
        init(count: Int) { values = Array(repeating: nil, count: count) }
        func set(_ i: Int, _ t: Tensor?) {
            condition.lock()
            values[i] = t
            done += 1
            condition.broadcast()
            condition.unlock()
        }
        func wait() -> [Tensor?] {
            condition.lock()
            defer { condition.unlock() }
            while done < values.count { condition.wait() }
            return values
        }
    }

    /// Trains one trainer per worker thread (all from `make`) for `epochs`; each worker's checkpoint
    /// tensors (weights, optimizer state, batch-norm statistics), or nil when it failed.
    static func trainOnWorkers<M, S>(_ workers: Int, epochs: Int, _ make: @escaping @Sendable () throws -> Trainer<M, S>)
        -> [[String: Tensor]?] {
        let shared = ThreadReducer(workers: workers)
        let results = Results(count: workers)
        let states = StateBox(count: workers)
        let threads = (0..<workers).map { rank in
            Thread {
                do {
                    var t = try make()
                    t.reducer = Worker(rank: rank, shared: shared)
                    try Parallel.withWorkers(1) { try t.train(epochs: epochs) }
                    states.set(rank, t.checkpoint().tensors)
                    results.set(rank, Tensor(shape: [1], data: [try t.reducer.agree(on: t.model.parameters) ? 1 : 0]))
                } catch {
                    results.set(rank, nil)
                }
            }
        }
        threads.forEach { $0.start() }
        let agreed = results.wait()
        return (0..<workers).map { agreed[$0]?.data == [1] ? states.values[$0] : nil }
    }

    final class StateBox: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var values: [[String: Tensor]?]
        init(count: Int) { values = Array(repeating: nil, count: count) }
        func set(_ i: Int, _ v: [String: Tensor]) { lock.lock(); values[i] = v; lock.unlock() }
    }

    /// VSC data-parallel: each worker samples its share from its own generator, Φ's update direction
    /// and the batch-norm running statistics are averaged like the gradients, and the shuffling stays
    /// global, so the workers end with identical state (weights, optimizer moments, Φ, batch norm).
    @Test func vscWorkersEndIdentical() throws {
        var rng = Random(seed: 5)
        let patches = Tensor.normal([24, 16], rng: &rng)
        let linear = Self.trainOnWorkers(2, epochs: 3) {
            var c = VSCLinearTests.smallConfig(VariationalConfig(family: .thresholdedLaplacian, threshold: .fixed(0.2)))
            c.batchSize = 6
            return try LinearGeneratorTrainer(data: patches, config: c)
        }
        #expect(linear.allSatisfy { $0 != nil }, "a linear worker failed or disagreed")
        #expect(linear[0] == linear[1] && linear[0]?["dictionary"] != nil)
        let images = Tensor.uniform([12, 784], rng: &rng)
        let conv = Self.trainOnWorkers(3, epochs: 1) {
            var c = VSCFashionTests.smallConfig(VariationalConfig(family: .thresholdedGaussian))
            c.batchSize = 6
            return try NetworkGeneratorTrainer(data: images, config: c)
        }
        #expect(conv.allSatisfy { $0 != nil }, "a conv worker failed or disagreed")
        #expect(conv[0] == conv[1] && conv[1] == conv[2])
        #expect(conv[0]?.keys.contains { $0.hasSuffix("running_var") } == true)
    }

    /// Workers draw from different generators, reproducibly.
    @Test func workersSampleFromTheirOwnGenerators() {
        var rng = Random(seed: 2)
        var stream = RowBatches(data: Tensor.normal([10, 3], rng: &rng), batchSize: 6, seed: 7)
        let batch = stream.next()
        var a = RowBatches.shard(batch, worker: 0, of: 2).generator, b = RowBatches.shard(batch, worker: 1, of: 2).generator
        var again = RowBatches.shard(batch, worker: 1, of: 2).generator
        let (x, y, z) = (a.next(), b.next(), again.next())
        #expect(x != y && y == z)
        var next = stream.next().generator
        var c = RowBatches.shard(stream.next(), worker: 1, of: 2).generator
        #expect(c.next() != y && next.next() != x)
    }

    @Test func aBatchSmallerThanTheWorkersIsRefused() throws {
        var rng = Random(seed: 1)
        let data = Tensor.normal([4, 6], rng: &rng)
        let config = TrainerConfig(encoder: UnrolledEncoder(layers: 3, lambda: .scalar(0.1), step: .fixed(0.2)),
                                   mode: .leastSquares, optimizer: .adam(learningRate: 1e-2), batchSize: 2, seed: 4)
        var t = try DictionaryTrainer(dictionary: DenseDictionary.random(atoms: 5, signalSize: 6, seed: 1), data: data, config: config)
        t.reducer = Worker(rank: 0, shared: ThreadReducer(workers: 3))
        #expect(throws: UnrollError.self) { try t.trainStep() }
    }
}
