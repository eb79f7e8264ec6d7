import Testing
import Unroll
import UnrollCore

@Suite struct BaselineTests {
    static func run(_ cfg: TrainerConfig, _ prob: SyntheticProblem, steps: Int) throws -> (Double, Double, [TrainingRecord]) {
        var t = try DictionaryTrainer(dictionary: try DenseDictionary(weights: prob.initial), data: prob.signals,
                                      config: cfg, groundTruth: GroundTruth(weights: prob.truth))
        let start = t.dictionaryError()!
        var records: [TrainingRecord] = []
        try t.train(steps: steps) { records.append($0.evaluation) }
        return (start, t.dictionaryError()!, records)
    }

    /// PUDLE's Algorithm 1: FISTA to convergence, then a g_dec step. It removes most of the initial error
    /// (down to the lasso bias).
    @Test func alternatingMinimizationReducesTheDictionaryError() throws {
        let prob = SyntheticProblem(m: 20, p: 30, n: 500, s: 3, initNoise: 0.1, seed: 4)
        let cfg = TrainerConfig.alternatingMinimization(
            lambda: .scalar(0.1), tolerance: 1e-5, maxIterations: 500,
            optimizer: .adam(learningRate: 1e-2, epsilon: 1e-3), batchSize: 50)
        #expect(cfg.mode == .decoder && cfg.encoder.algorithm == .fista && cfg.encoder.tolerance == 1e-5)
        let (start, end, records) = try Self.run(cfg, prob, steps: 100)
        #expect(start > 0.35)
        #expect(end < 0.25 * start, "Algorithm 1: \(start) → \(end)")
        #expect(records.last!.loss < records.first!.loss)
    }

    /// NOODL as PUDLE ran it (hard-threshold IHT codes, η = 20 on the twice-B-divided direction) converges
    /// from a close initialisation when the codes are sparse.
    @Test func noodlReducesTheDictionaryErrorFromACloseInit() throws {
        let prob = SyntheticProblem(m: 30, p: 40, n: 500, s: 2, initNoise: 0.02, seed: 4)
        let cfg = TrainerConfig.noodl(batchSize: 50)
        #expect(cfg.mode == .noodl && cfg.encoder.threshold == .hard && cfg.encoder.layers == 100)
        #expect(cfg.optimizer == .sgd(learningRate: 20))
        let (start, end, _) = try Self.run(cfg, prob, steps: 120)
        #expect(end < 0.1 * start, "NOODL: \(start) → \(end)")
    }
}
