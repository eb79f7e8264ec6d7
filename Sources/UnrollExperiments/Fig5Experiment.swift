import Foundation
import Unroll
import UnrollCore

/// PUDLE's comparison with NOODL (reference §4, paper Fig 5): a large dictionary (m 1000, p 1500) learned
/// from D₀ close to D* (δ = 0.005) with mini-batches of 50, T = 100, α = 0.2, for one epoch
/// (1000 iterations), by g_ae-ls with a soft threshold (λ 0.2), with λ decaying over the layers, with a
/// hard threshold (τ 0.1), and by NOODL (η 20). The table is the relative error at 80 % and 100 % of the
/// iterations (800 and 1000 in the paper).
public enum Fig5Experiment {
    public enum Method: String, CaseIterable, Sendable {
        case leastSquares = "ae-ls"
        case leastSquaresDecay = "ae-ls-decay"
        case leastSquaresHard = "ae-ls-ht"
        case noodl = "noodl"
    }

    public struct Settings: Equatable, Sendable {
        /// Everything but the sparsity, which `sparsities` sets per run.
        public var data: SyntheticDictionaryConfig
        public var sparsities: [Int]
        public var methods: [Method] = Method.allCases
        public var iterations: Int
        public var batchSize = 50
        public var layers = 100
        public var alpha: Float = 0.2
        public var lambda: Float = 0.2
        public var tau: Float = 0.1
        public var noodlEta: Float = 20
        public var learningRate: Float = 1e-3
        public var epsilon: Float = 1e-3
        /// λ decay: β = 1 − 0.005·⌊step / betaEvery⌋ (paper: every 100 of 1000 iterations).
        public var betaEvery = 100
        public var seed: UInt64 = 0

        public init(data: SyntheticDictionaryConfig, sparsities: [Int], iterations: Int) {
            self.data = data
            self.sparsities = sparsities
            self.iterations = iterations
        }

        /// The iterations the table reports: 80 % and 100 % of the run (800 and 1000 in the paper).
        public var reportedIterations: [Int] {
            let a = iterations * 4 / 5
            return a >= 1 && a < iterations ? [a, iterations] : [iterations]
        }
    }

    /// paper: m 1000, p 1500, n 50 000, s ∈ {10, 20, 40}, 1000 iterations;
    /// small: m 200, p 300, n 10 000, s ∈ {5, 10}, 600 iterations (β drops every 60);
    /// tiny: m 80, p 120, n 2000, s 3, 150 iterations (β drops every 15).
    public static func settings(_ scale: ReproductionScale) -> Settings {
        var data = SyntheticDictionaryConfig(signalSize: 1000, atomCount: 1500, exampleCount: 50_000, sparsity: 10,
                                             signs: .sharedPerExample, initNoise: 0.005)
        switch scale {
        case .paper:
            return Settings(data: data, sparsities: [10, 20, 40], iterations: 1000)
        case .small:
            data.signalSize = 200
            data.atomCount = 300
            data.exampleCount = 10_000
            var s = Settings(data: data, sparsities: [5, 10], iterations: 600)
            s.betaEvery = 60
            return s
        case .tiny:
            // m 80 / p 120 keeps the atoms incoherent enough that IHT with τ 0.1 (and the decayed λ) still
            // finds the sparse code; at m 30 / p 45 both fall to dense zero-residual codes and stall.
            data.signalSize = 80
            data.atomCount = 120
            data.exampleCount = 2000
            var s = Settings(data: data, sparsities: [3], iterations: 150)
            s.betaEvery = 15
            return s
        }
    }

    /// §4's table: error at iteration 800 and 1000 per s and method.
    static let paper: [Int: [Method: (Double, Double)]] = [
        10: [.leastSquares: (8.7e-3, 8.7e-3), .leastSquaresDecay: (3.9e-5, 5.2e-6),
             .leastSquaresHard: (2.8e-5, 2.9e-6), .noodl: (8.1e-3, 3.9e-3)],
        20: [.leastSquares: (1.4e-2, 1.4e-2), .leastSquaresDecay: (3.4e-5, 5.7e-6),
             .leastSquaresHard: (3.1e-6, 4.8e-7), .noodl: (6.8e-4, 1.7e-4)],
        40: [.leastSquares: (2.6e-2, 2.6e-2), .leastSquaresDecay: (1.4e-4, 4.0e-5),
             .leastSquaresHard: (4.3e-5, 9.8e-6), .noodl: (2.0e-5, 2.3e-6)],
    ]

    static func paperValue(s: Int, method: Method, iteration: Int) -> Double? {
        guard let pair = paper[s]?[method] else { return nil }
        switch iteration {
        case 800: return pair.0
        case 1000: return pair.1
        default: return nil
        }
    }

    /// The trainer configuration of one method.
    public static func trainerConfig(_ method: Method, _ s: Settings) -> TrainerConfig {
        let adam = Optimizer.adam(learningRate: s.learningRate, epsilon: s.epsilon)
        func soft() -> UnrolledEncoder {
            UnrolledEncoder(layers: s.layers, threshold: .soft, lambda: .scalar(s.lambda), step: .fixed(s.alpha))
        }
        switch method {
        case .leastSquares:
            return TrainerConfig(encoder: soft(), mode: .leastSquares, optimizer: adam, batchSize: s.batchSize,
                                 shuffle: true, seed: s.seed)
        case .leastSquaresDecay:
            return TrainerConfig(encoder: soft(), mode: .leastSquares, optimizer: adam, batchSize: s.batchSize,
                                 shuffle: true, seed: s.seed,
                                 beta: BetaSchedule(start: 1, decrement: 0.005, every: s.betaEvery))
        case .leastSquaresHard:
            let encoder = UnrolledEncoder(layers: s.layers, threshold: .hard, lambda: .scalar(s.tau), step: .fixed(s.alpha))
            return TrainerConfig(encoder: encoder, mode: .leastSquares, optimizer: adam, batchSize: s.batchSize,
                                 shuffle: true, seed: s.seed)
        case .noodl:
            return .noodl(tau: s.tau, alpha: s.alpha, layers: s.layers, eta: s.noodlEta, batchSize: s.batchSize,
                          shuffle: true, seed: s.seed)
        }
    }

    /// Rows `{s, method, iteration, measured = rel. error}`; one curve set per s (error against iteration,
    /// iteration 0 = D₀). A run that diverges keeps its curve up to the last good step (then NaN) and a
    /// note says where it stopped.
    public static func run(_ settings: Settings, scale: String,
                           callbacks: ReproductionCallbacks = ReproductionCallbacks()) throws -> ReproductionResult {
        let start = ContinuousClock.now
        var table = ReproductionTable(experiment: "fig5", scale: scale)
        let d = settings.data
        table.notes = [
            "data: m \(d.signalSize), p \(d.atomCount), n \(d.exampleCount), amplitudes U[1,2] with ONE random sign per example (PUDLE's generator), no noise, D₀ = normalise(D* + \(d.initNoise)·N)",
            "batch \(settings.batchSize), T \(settings.layers), α \(settings.alpha), \(settings.iterations) iterations, shuffled; ae-ls*: Adam lr \(settings.learningRate) ε \(settings.epsilon); ae-ls λ \(settings.lambda); ae-ls-decay λ_t = λ·β^(t−1), β = 1 − 0.005 every \(settings.betaEvery) iterations; ae-ls-ht τ \(settings.tau); noodl: hard-threshold encoder τ \(settings.tau), SGD η \(settings.noodlEta) on the (1/B²)-scaled direction",
            "metric: ‖D − D*‖_F/‖D*‖_F (atoms normalised, no permutation)",
        ]
        if scale != ReproductionScale.paper.rawValue {
            table.notes.append("the paper column is the published value at the paper's scale (m 1000, p 1500, n 50 000, iterations 800/1000); this run is smaller, so only rows with the same s and iteration get one")
        }
        var curves: [CurveSet] = []
        for sparsity in settings.sparsities {
            var config = d
            config.sparsity = sparsity
            let dataStart = ContinuousClock.now
            let data = try SyntheticDictionaryData(config, seed: settings.seed)
            let truth = GroundTruth(weights: data.dictionary, codes: nil)
            let initial = DictionaryMetrics.relativeFrobeniusError(data.initialDictionary, data.dictionary)
            callbacks.progress?("fig5 s=\(sparsity): data generated in \(String(format: "%.1f", secondsSince(dataStart))) s, initial error \(ReproductionTable.format(initial))")
            var curve = CurveSet(name: "fig5_s\(sparsity)", title: "fig5 s=\(sparsity): relative dictionary error",
                                 xLabel: "iteration", yLabel: "rel. error", logY: true,
                                 x: (0...settings.iterations).map(Double.init))
            for method in settings.methods {
                let runStart = ContinuousClock.now
                var trainer = try DictionaryTrainer(
                    dictionary: try DenseDictionary(weights: data.initialDictionary), data: data.signals,
                    config: trainerConfig(method, settings), groundTruth: truth)
                var errors = [initial]
                let every = max(1, settings.iterations / 20)
                do {
                    try trainer.train(steps: settings.iterations) { record in
                        errors.append(record.dictionaryError ?? .nan)
                        if record.step % every == 0 {
                            callbacks.progress?("fig5 s=\(sparsity) \(method.rawValue) iteration \(record.step)/\(settings.iterations) "
                                                + "error \(ReproductionTable.format(record.dictionaryError ?? .nan)) "
                                                + String(format: "(%.3f s/step)", record.seconds))
                        }
                    }
                } catch let UnrollError.diverged(step, reason) {
                    table.notes.append("s=\(sparsity) \(method.rawValue) diverged at iteration \(step): \(reason)")
                    callbacks.progress?("fig5 s=\(sparsity) \(method.rawValue) diverged at iteration \(step): \(reason)")
                }
                for it in settings.reportedIterations {
                    table.rows.append(ReproductionRow(
                        setting: [.init("s", .int(sparsity)), .init("method", .string(method.rawValue)),
                                  .init("iteration", .int(it))],
                        measured: it < errors.count ? errors[it] : nil,
                        paper: paperValue(s: sparsity, method: method, iteration: it)))
                }
                curve.add(method.rawValue, y: errors)
                callbacks.progress?("fig5 s=\(sparsity) \(method.rawValue) done: final \(ReproductionTable.format(errors.last ?? .nan)) "
                                    + String(format: "(%.0f s)", secondsSince(runStart)))
                table.info = info(settings, start)
                callbacks.partial?(ReproductionResult(table: table, curves: curves + [curve]))
            }
            curves.append(curve)
        }
        table.info = info(settings, start)
        return ReproductionResult(table: table, curves: curves)
    }

    static func info(_ s: Settings, _ start: ContinuousClock.Instant) -> [ReproductionRow.Entry] {
        [.init("seed", .int(Int(s.seed))), .init("iterations", .int(s.iterations)),
         .init("wall_seconds", .double((secondsSince(start) * 10).rounded() / 10))]
    }
}
