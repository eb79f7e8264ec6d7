import Foundation
import Unroll
import UnrollCore

/// CRsAE's spike-sorting experiment (reference crsae §6.1, §6.3) on simulated recordings: learn the
/// templates from windows of a training recording (FISTA encoder, EM λ with a Gamma prior, σ from the
/// residual, Adam, unit-norm filters), then sort a separate test recording with the trained encoder and
/// with the convex baseline (the same lasso by FISTA to a tolerance), and compare their miss/false-alarm
/// rates and their wall time.
public enum SpikesExperiment {
    public enum Initialization: String, CaseIterable, Sendable {
        /// True templates plus noise, each at template error in [0.4, 0.5] (the paper's "close" start).
        case close
        /// Threshold crossings with minimum mutual correlation (the paper's data-driven start).
        case crossings
    }

    /// The experiment's recordings, starts and scoring around the training recipe (`learning`, whose
    /// fields read as the settings' own: `s.window`, `s.training.layers`, `s.epochs`, …).
    @dynamicMemberLookup
    public struct Settings: Equatable, Sendable {
        public var recording = SpikeRecordingConfig()
        public var trainSeconds: Double
        public var testSeconds: Double
        public var learning: SpikeTrainingSettings
        public var initializations: [Initialization] = [.close, .crossings]
        /// Matching tolerance in milliseconds (0.5 ms: 5 samples at 10 kHz, the peer's event range).
        public var toleranceMilliseconds = 0.5
        public var falseAlarm = 0.05
        public var convexTolerance: Float = 1e-4
        public var convexMaxIterations = 20_000
        /// Chunk length for sorting (samples).
        public var chunkSamples = 20_000
        /// Run the convex baseline (the expensive part at the paper scale).
        public var convex = true

        public init(trainSeconds: Double, testSeconds: Double, epochs: Int) {
            self.trainSeconds = trainSeconds
            self.testSeconds = testSeconds
            learning = SpikeTrainingSettings(epochs: epochs)
        }

        public subscript<T>(dynamicMember path: WritableKeyPath<SpikeTrainingSettings, T>) -> T {
            get { learning[keyPath: path] }
            set { learning[keyPath: path] = newValue }
        }
    }

    /// paper: 3 neurons, 10 kHz, K 2.5 ms, SNR 16 dB, 5 min of training windows, 12 epochs at T 50 then 12 at T 100
    /// (lr 0.001), close start, sort 10 min;
    /// small: 1 min training, sort 1 min; tiny: 10 s training, T 20, batch 16, 12 epochs, sort 4 s (seconds; for tests).
    public static func settings(_ scale: ReproductionScale) -> Settings {
        switch scale {
        case .paper:
            var s = Settings(trainSeconds: 300, testSeconds: 600, epochs: 12)
            s.refineEpochs = 12
            s.initializations = [.close]
            return s
        case .small:
            return Settings(trainSeconds: 60, testSeconds: 60, epochs: 15)
        case .tiny:
            var s = Settings(trainSeconds: 10, testSeconds: 4, epochs: 12)
            s.training.layers = 20
            s.training.batchSize = 16
            s.initializations = [.close]
            s.chunkSamples = 8000
            s.convexMaxIterations = 3000
            return s
        }
    }

    /// Everything one initialisation produced (also used by the CLI and the tests).
    public struct Outcome: Sendable {
        public var model: SpikeModel
        public var initialErrors: [Double]
        public var errors: [(error: Double, learned: Int, lag: Int)]
        public var errorHistory: [[Double]]   // per epoch (0 = start), per true neuron
    }

    /// Trains a model from `start` filters on windows of `train`.
    public static func train(_ s: Settings, start: Tensor, train: SimulatedRecording,
                             progress: ((String) -> Void)? = nil) throws -> Outcome {
        var run = try SpikeTrainingRun(s.learning, start: start, recording: train.signal)
        let initial = SpikeTemplates.errors(learned: run.trainer.dictionary.weights, truth: train.filters).map(\.error)
        var history = [initial]
        while !run.done {
            let loss = try run.trainEpoch()
            let errs = SpikeTemplates.errors(learned: run.trainer.dictionary.weights, truth: train.filters).map(\.error)
            history.append(errs)
            progress?(run.describeEpoch(loss: loss, templateErrors: errs))
        }
        let model = try run.model()
        return Outcome(model: model, initialErrors: initial,
                       errors: SpikeTemplates.errors(learned: model.filters, truth: train.filters), errorHistory: history)
    }

    /// Detections per true neuron (the matched learned filter's, shifted by the matching lag).
    public static func detections(codes: Tensor, model: SpikeModel, matching: [(error: Double, learned: Int, lag: Int)])
        -> [[DetectedSpike]]
    {
        let all = SpikeDetection.detect(codes: codes, filters: model.filters)
        return matching.map { m in all[m.learned].map { DetectedSpike(time: $0.time + m.lag, height: $0.height) } }
    }

    public static func run(_ s: Settings, scale: String, callbacks: ReproductionCallbacks = ReproductionCallbacks()) throws
        -> ReproductionResult
    {
        let start = ContinuousClock.now
        var rng = Random(seed: s.seed)
        var rec = s.recording
        let filters = SpikeSimulation.filters(rec, rng: &rng)
        rec.duration = s.trainSeconds
        var trainRNG = rng.split(), testRNG = rng.split(), initRNG = rng.split()
        let trainRecording = try SpikeSimulation.record(rec, filters: filters, rng: &trainRNG)
        rec.duration = s.testSeconds
        let test = try SpikeSimulation.record(rec, filters: filters, rng: &testRNG)
        let k = rec.filterLength, c = rec.neurons
        let tolerance = max(1, Int((s.toleranceMilliseconds * rec.samplingRate / 1000).rounded()))

        var table = ReproductionTable(experiment: "spikes", scale: scale)
        table.notes = [
            "simulated: \(c) neurons, \(rec.channels) channel(s), fs \(Int(rec.samplingRate)) Hz, K \(k) samples (\(rec.filterMilliseconds) ms), biphasic spikes \(rec.spikeMilliseconds.lowerBound)–\(rec.spikeMilliseconds.upperBound) ms, rates U[\(rec.firingRate.lowerBound), \(rec.firingRate.upperBound)] Hz, amplitudes N(μ, \(rec.amplitudeSpread)μ) with μ ~ U[\(rec.amplitudeMean.lowerBound), \(rec.amplitudeMean.upperBound)], SNR \(rec.snr) dB, non-overlap rule; train \(s.trainSeconds) s, test \(s.testSeconds) s (separate draws)",
            "CRsAE: FISTA T \(s.training.layers)\(s.refineEpochs > 0 ? ", then T \(s.refineLayers) for \(s.refineEpochs) epochs at lr \(s.refineLearningRate)" : ""), two-sided soft threshold λ_c σ²/L, L by the frequency-domain bound; windows \(s.window), batch \(s.training.batchSize), Adam lr \(s.training.learningRate) ε \(s.training.epsilon) ×\(s.training.learningRateDecay) per epoch, \(s.epochs) epochs; EM λ per filter (Gamma prior mean = Donoho's λ, rate δ \(s.priorRate), batch-mean pooling); σ from MAD, then σ ← 0.99σ + 0.01·rms(residual); unit-norm filters",
            "template error √(1 − ⟨h,ĥ⟩²) at the best lag (|ℓ| ≤ K/4) and best permutation; the paper's target is ≤ 0.1 from a start at 0.4–0.5",
            "detection: peaks of each neuron's contribution h_c ∗ x_c on its main deflection; tolerance ±\(tolerance) samples; miss = missed/true spikes, false alarm = unmatched/kept detections; miss rate at the lowest threshold with false alarm ≤ \(Int(s.falseAlarm * 100)) %",
            "convex baseline: the same lasso by FISTA until ‖x_t − x_{t−1}‖ ≤ \(s.convexTolerance)·‖x_t‖ per chunk batch; chunks overlap 2T(K−1); timings = encode + detect on the whole test recording, one run each, \(Parallel.workers) threads",
            "paper (abstract): 900× faster spike-time identification than convex optimisation (CBP on CPU vs CRsAE on a GPU); no GPU here",
        ]
        var curves: [CurveSet] = []
        let faGrid = stride(from: 0.0, through: 0.5, by: 0.005).map { $0 }

        for initialization in s.initializations {
            let name = initialization.rawValue
            let startFilters: Tensor
            switch initialization {
            case .close:
                startFilters = SpikeTemplates.perturbed(filters, rng: &initRNG)
            case .crossings:
                startFilters = try SpikeTemplates.crossingStart(trainRecording.signal, count: c, length: k, rng: &initRNG)
            }
            let outcome = try train(s, start: startFilters, train: trainRecording) { callbacks.progress?("\(name) " + $0) }
            let model = outcome.model
            for n in 0..<c {
                table.rows.append(ReproductionRow(setting: [.init("init", .string(name)), .init("neuron", .int(n)),
                                                            .init("metric", .string("initial_template_error"))],
                                                  measured: outcome.initialErrors[n], paper: nil))
                table.rows.append(ReproductionRow(setting: [.init("init", .string(name)), .init("neuron", .int(n)),
                                                            .init("metric", .string("template_error"))],
                                                  measured: outcome.errors[n].error, paper: 0.1))
            }
            var errorCurve = CurveSet(name: "spikes_template_error_\(name)", title: "template error (\(name) start)",
                                      xLabel: "epoch", yLabel: "template error", logY: true,
                                      x: outcome.errorHistory.indices.map(Double.init))
            for n in 0..<c { errorCurve.add("neuron \(n)", y: outcome.errorHistory.map { $0[n] }) }
            curves.append(errorCurve)
            var templates = CurveSet(name: "spikes_templates_\(name)", title: "templates, true vs learned (\(name) start)",
                                     xLabel: "sample", yLabel: "amplitude", logY: false, x: (0..<k).map(Double.init))
            for n in 0..<c {
                let m = outcome.errors[n], per = rec.channels * k
                templates.add("true \(n)", y: (0..<k).map { Double(filters.data[n * per + $0]) })
                var learned = [Double](repeating: .nan, count: k)
                var dot = 0.0
                for t in 0..<k where t + m.lag >= 0 && t + m.lag < k {
                    learned[t] = Double(model.filters.data[m.learned * per + t + m.lag])
                    dot += learned[t] * Double(filters.data[n * per + t])
                }
                if dot < 0 { learned = learned.map { -$0 } }
                templates.add("learned \(n)", y: learned)
            }
            curves.append(templates)
            table.info = info(s, start)
            callbacks.partial?(ReproductionResult(table: table, curves: curves))

            // Sort the test recording: trained encoder, then the convex baseline, both timed end to end.
            let t0 = ContinuousClock.now
            let codes = try model.encode(test.signal, chunkSamples: s.chunkSamples)
            let found = detections(codes: codes, model: model, matching: outcome.errors)
            let crsaeSeconds = secondsSince(t0)
            callbacks.progress?("\(name): sorted \(s.testSeconds) s with the trained encoder in \(String(format: "%.2f", crsaeSeconds)) s")
            var methods: [(String, [[DetectedSpike]], Double)] = [("crsae", found, crsaeSeconds)]
            var iterations = 0
            if s.convex {
                let t1 = ContinuousClock.now
                let convex = try model.encodeConvex(test.signal, tolerance: s.convexTolerance, maxIterations: s.convexMaxIterations,
                                                    chunkSamples: s.chunkSamples)
                let convexFound = detections(codes: convex.codes, model: model, matching: outcome.errors)
                let convexSeconds = secondsSince(t1)
                iterations = convex.iterations
                callbacks.progress?("\(name): sorted with the convex baseline in \(String(format: "%.2f", convexSeconds)) s (≤ \(iterations) FISTA iterations)")
                methods.append(("convex", convexFound, convexSeconds))
            }
            var rocCurve = CurveSet(name: "spikes_miss_vs_false_alarm_\(name)", title: "miss vs false alarm (\(name) start)",
                                    xLabel: "false alarm rate", yLabel: "miss rate", logY: false, x: faGrid)
            for (method, dets, seconds) in methods {
                for n in 0..<c {
                    let score = SpikeScore(truth: test.spikeTimes[n], detections: dets[n], tolerance: tolerance)
                    let point = score.operatingPoint(atFalseAlarm: s.falseAlarm)
                    let setting: [ReproductionRow.Entry] = [.init("init", .string(name)), .init("neuron", .int(n)), .init("method", .string(method))]
                    table.rows.append(ReproductionRow(setting: setting + [.init("metric", .string("miss_at_\(Int(s.falseAlarm * 100))pct_fa"))],
                                                      measured: point?.missRate ?? 1, paper: nil))
                    table.rows.append(ReproductionRow(setting: setting + [.init("metric", .string("false_alarm_at_that_threshold"))],
                                                      measured: point?.falseAlarmRate, paper: nil))
                    rocCurve.add("\(method) \(n)", y: faGrid.map { score.missRate(atFalseAlarm: $0) })
                }
                table.rows.append(ReproductionRow(setting: [.init("init", .string(name)), .init("method", .string(method)),
                                                            .init("metric", .string("sort_seconds"))], measured: seconds, paper: nil))
            }
            if methods.count == 2 {
                table.rows.append(ReproductionRow(setting: [.init("init", .string(name)), .init("metric", .string("convex_iterations"))],
                                                  measured: Double(iterations), paper: nil))
                table.rows.append(ReproductionRow(setting: [.init("init", .string(name)), .init("metric", .string("speedup_convex_over_crsae"))],
                                                  measured: methods[1].2 / methods[0].2, paper: 900))
            }
            curves.append(rocCurve)
            table.info = info(s, start) + [.init("true_spikes_test", .int(test.spikeTimes.reduce(0) { $0 + $1.count })),
                                           .init("sigma_true", .double(Double(test.sigma))),
                                           .init("lambda_\(name)", .string(model.lambdas.map { String(format: "%.1f", $0) }.joined(separator: ","))),
                                           .init("sigma_\(name)", .double(Double(model.sigma)))]
            callbacks.partial?(ReproductionResult(table: table, curves: curves))
        }
        return ReproductionResult(table: table, curves: curves)
    }

    static func info(_ s: Settings, _ start: ContinuousClock.Instant) -> [ReproductionRow.Entry] {
        [.init("seed", .int(Int(s.seed))), .init("epochs", .int(s.epochs)), .init("T", .int(s.training.layers))]
            + (s.refineEpochs > 0 ? [.init("refine_epochs", .int(s.refineEpochs)), .init("refine_T", .int(s.refineLayers))] : [])
            + [.init("wall_seconds", .double((secondsSince(start) * 10).rounded() / 10))]
    }
}

extension SpikeTrainingRun {
    /// "epoch 3/24 (T 50): loss …, template errors …, λ …, σ …" after an epoch.
    public func describeEpoch(loss: Double, templateErrors errs: [Double]) -> String {
        "epoch \(epochsDone)/\(totalEpochs) (T \(trainer.config.layers)): loss "
            + "\(ReproductionTable.format(loss)) template errors "
            + errs.map { ReproductionTable.format($0) }.joined(separator: " ")
            + " λ " + trainer.lambdas.map { ReproductionTable.format(Double($0)) }.joined(separator: " ")
            + " σ \(ReproductionTable.format(Double(trainer.sigma)))"
    }
}
