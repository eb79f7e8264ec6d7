import Foundation
import Testing
import Unroll
import UnrollCore

@Suite struct TrainerTests {
    static func config(mode: GradientMode = .leastSquares, batch: Int? = 32, optimizer: Optimizer = .adam(learningRate: 1e-2),
                       layers: Int = 30, shuffle: Bool = true) -> TrainerConfig {
        TrainerConfig(encoder: UnrolledEncoder(layers: layers, lambda: .scalar(0.1), step: .fixed(0.2)),
                      mode: mode, optimizer: optimizer, batchSize: batch, shuffle: shuffle, seed: 42)
    }

    @Test func leastSquaresTrainingLowersLossAndDictionaryError() throws {
        let prob = SyntheticProblem(m: 20, p: 30, n: 400, s: 3, initNoise: 0.1, seed: 1)
        var cfg = Self.config(batch: 50, layers: 50)
        cfg.encoder.lambda = .scalar(0.2)
        cfg.optimizer = .adam(learningRate: 3e-3, epsilon: 1e-3)
        var trainer = try DictionaryTrainer(dictionary: try DenseDictionary(weights: prob.initial), data: prob.signals,
                                            config: cfg, groundTruth: GroundTruth(weights: prob.truth, codes: prob.codes))
        let initialError = trainer.dictionaryError()!
        var records: [TrainingRecord] = []
        try trainer.train(steps: 240) { records.append($0.evaluation) }
        let first = records.prefix(8).map(\.loss).reduce(0, +) / 8
        let last = records.suffix(8).map(\.loss).reduce(0, +) / 8
        let finalError = records.last!.dictionaryError!
        #expect(last < 0.5 * first, "loss \(first) → \(last)")
        #expect(finalError < 0.5 * initialError, "dictionary error \(initialError) → \(finalError)")
        #expect(records.last!.codeError! < records.first!.codeError!)
        #expect(records.map(\.step) == Array(1...240))
        #expect(records.last!.epoch == 29 && trainer.epoch == 30 && trainer.step == 240)
        // atoms stay unit norm
        #expect(trainer.dictionary.weights.rowNorms().allSatisfy { abs($0 - 1) < 1e-5 })
    }

    @Test func resumingFromACheckpointIsBitIdentical() throws {
        let prob = SyntheticProblem(m: 8, p: 12, n: 100, s: 2, initNoise: 0.1, seed: 2)
        for (mode, algorithm, schedule) in [(GradientMode.leastSquares, UnrolledEncoder.Algorithm.ista, BetaSchedule.constant),
                                            (.lasso, .fista, BetaSchedule(start: 1, decrement: 0.05, every: 3)),
                                            (.decoder, .ista, .constant)] {
            var cfg = Self.config(mode: mode, batch: 32, optimizer: .adam(learningRate: 1e-2), layers: 10)
            cfg.encoder.algorithm = algorithm
            cfg.beta = schedule
            let w0 = try DenseDictionary(weights: prob.initial)
            var straight = try DictionaryTrainer(dictionary: w0, data: prob.signals, config: cfg)
            var straightRecords: [TrainingRecord] = []
            try straight.train(steps: 13) { straightRecords.append($0.evaluation) }

            var first = try DictionaryTrainer(dictionary: w0, data: prob.signals, config: cfg)
            try first.train(steps: 7)
            let saved = first.checkpoint()
            var resumed = try DictionaryTrainer(dictionary: w0, data: prob.signals, config: cfg)
            try resumed.restore(saved)
            var resumedRecords: [TrainingRecord] = []
            try resumed.train(steps: 6) { resumedRecords.append($0.evaluation) }

            #expect(resumed.dictionary.weights == straight.dictionary.weights, "\(mode)")
            #expect(resumed.optimizer == straight.optimizer)
            #expect((resumed.step, resumed.epoch, resumed.position) == (straight.step, straight.epoch, straight.position))
            #expect(resumedRecords.map(\.loss) == straightRecords.suffix(6).map(\.loss))
            #expect(resumedRecords.map(\.beta) == straightRecords.suffix(6).map(\.beta))
        }
    }

    @Test func sgdWithMomentumResumesBitIdenticallyToo() throws {
        let prob = SyntheticProblem(m: 8, p: 12, n: 50, s: 2, initNoise: 0.1, seed: 3)
        let cfg = Self.config(batch: 16, optimizer: .sgd(learningRate: 0.05, momentum: 0.9), layers: 8)
        let w0 = try DenseDictionary(weights: prob.initial)
        var a = try DictionaryTrainer(dictionary: w0, data: prob.signals, config: cfg)
        try a.train(steps: 9)
        var b = try DictionaryTrainer(dictionary: w0, data: prob.signals, config: cfg)
        try b.train(steps: 4)
        var c = try DictionaryTrainer(dictionary: w0, data: prob.signals, config: cfg)
        try c.restore(b.checkpoint())
        try c.train(steps: 5)
        #expect(c.dictionary.weights == a.dictionary.weights)
    }

    @Test func divergenceStopsAtTheLastGoodStep() throws {
        let prob = SyntheticProblem(m: 8, p: 12, n: 64, s: 2, initNoise: 0.1, seed: 4)
        // Without normalisation: Adam at lr 1 makes the encoder (α = 0.2) blow up, so the gradient
        // overflows Adam's v; SGD on g_dec past its stable step size grows the weights geometrically
        // (lr 10: past the blow-up limit; lr 3: slower, until the loss overflows).
        for (mode, optimizer, expected) in [(GradientMode.leastSquares, Optimizer.adam(learningRate: 1), "optimizer state"),
                                            (.decoder, .sgd(learningRate: 10), "magnitude"),
                                            (.decoder, .sgd(learningRate: 3), "loss is")] {
            var cfg = Self.config(mode: mode, batch: 16, optimizer: optimizer, layers: 20)
            cfg.normalizeAtoms = false
            let w0 = try DenseDictionary(weights: prob.initial)
            var trainer = try DictionaryTrainer(dictionary: w0, data: prob.signals, config: cfg)
            var replay = trainer
            var caught: UnrollError?
            do {
                for _ in 0..<500 {
                    replay = trainer          // the state after the last good step
                    try trainer.trainStep()
                }
            } catch let e as UnrollError {
                caught = e
            }
            guard case let .diverged(step, reason)? = caught else {
                Issue.record("expected divergence, got \(String(describing: caught))")
                continue
            }
            #expect(step >= 2 && reason.contains(expected), "diverged at \(step): \(reason)")
            #expect(trainer.step == step - 1 && replay.step == step - 1)
            #expect(trainer.dictionary.weights == replay.dictionary.weights)
            #expect(trainer.optimizer == replay.optimizer)
            #expect("\(caught!)".contains("step \(step)"))
            // The state is usable: its checkpoint restores into a fresh trainer.
            var fresh = try DictionaryTrainer(dictionary: w0, data: prob.signals, config: cfg)
            try fresh.restore(trainer.checkpoint())
            #expect(fresh.dictionary.weights == replay.dictionary.weights && fresh.step == step - 1)
        }
    }

    @Test func invalidInputThrowsNamedErrors() throws {
        let prob = SyntheticProblem(m: 6, p: 9, n: 20, s: 2, initNoise: 0.1, seed: 5)
        let op = try DenseDictionary(weights: prob.initial)
        func message(_ cfg: TrainerConfig, data: Tensor? = nil, op: DenseDictionary? = nil, truth: GroundTruth? = nil) -> String {
            do {
                _ = try DictionaryTrainer(dictionary: op ?? (try! DenseDictionary(weights: prob.initial)),
                                          data: data ?? prob.signals, config: cfg, groundTruth: truth)
                return ""
            } catch {
                return "\(error)"
            }
        }
        let good = Self.config()
        #expect(message(good) == "")
        var c = good
        c.encoder.lambda = .scalar(-0.1)
        #expect(message(c).contains("λ"))
        c = good
        c.encoder.threshold = .hard
        c.encoder.lambda = .scalar(-0.1)
        #expect(message(c).contains("τ"))
        c = good
        c.encoder.layers = 0
        #expect(message(c).contains("layers"))
        c = good
        c.encoder.step = .fixed(-1)
        #expect(message(c).contains("α"))
        c = good
        c.batchSize = 0
        #expect(message(c).contains("batch size"))
        c = good
        c.optimizer = .adam(learningRate: 0)
        #expect(message(c).contains("learning rate"))
        #expect(message(good, data: Tensor(zeros: [20, 7])).contains("shape mismatch"))
        var bad = prob.signals
        bad[3, 2] = .nan
        #expect(message(good, data: bad).contains("training data"))
        var badW = op
        badW.weights[0, 0] = .infinity
        #expect(message(good, op: badW).contains("initial dictionary"))
        #expect(message(good, truth: GroundTruth(weights: Tensor(zeros: [9, 5]))).contains("ground-truth"))
        _ = op
    }

    @Test func checkpointRestoreRejectsMismatches() throws {
        let prob = SyntheticProblem(m: 6, p: 9, n: 20, s: 2, initNoise: 0.1, seed: 6)
        var t = try DictionaryTrainer(dictionary: try DenseDictionary(weights: prob.initial), data: prob.signals, config: Self.config(batch: 8))
        try t.train(steps: 2)
        var cp = t.checkpoint()
        cp.tensors["dictionary"] = Tensor(zeros: [9, 5])
        #expect(throws: UnrollError.self) { try t.restore(cp) }
        cp = t.checkpoint()
        cp.metadata["trainer.rng"] = nil
        #expect(throws: UnrollError.self) { try t.restore(cp) }
        cp = t.checkpoint()
        cp.metadata["optimizer.kind"] = "sgd"
        #expect(throws: UnrollError.self) { try t.restore(cp) }
        #expect(t.step == 2)
    }

    @Test func betaScheduleFollowsPUDLEAndReachesTheEncoder() throws {
        let s = BetaSchedule.pudle
        #expect(s.beta(afterSteps: 0) == 1 && s.beta(afterSteps: 99) == 1)
        #expect(s.beta(afterSteps: 100) == 0.995 && s.beta(afterSteps: 1000) == 0.95)
        #expect(BetaSchedule(start: 1, decrement: 0.3, every: 1, minimum: 0.2).beta(afterSteps: 5) == 0.2)
        let prob = SyntheticProblem(m: 6, p: 9, n: 20, s: 2, initNoise: 0.1, seed: 7)
        var cfg = Self.config(batch: 5)
        cfg.beta = BetaSchedule(start: 1, decrement: 0.1, every: 2)
        var t = try DictionaryTrainer(dictionary: try DenseDictionary(weights: prob.initial), data: prob.signals, config: cfg)
        var betas: [Float] = []
        try t.train(steps: 5) { betas.append($0.beta) }
        #expect(betas == [1, 1, 0.9, 0.9, 0.8])
    }

    @Test func epochsCoverEveryExampleOnceAndFullBatchIsOneStep() throws {
        let prob = SyntheticProblem(m: 6, p: 9, n: 23, s: 2, initNoise: 0.1, seed: 8)
        var t = try DictionaryTrainer(dictionary: try DenseDictionary(weights: prob.initial), data: prob.signals,
                                      config: Self.config(batch: 10))
        var sizes: [Int] = []
        try t.train(epochs: 2) { sizes.append($0.batchSize) }
        #expect(sizes == [10, 10, 3, 10, 10, 3] && t.stepsPerEpoch == 3)
        var full = try DictionaryTrainer(dictionary: try DenseDictionary(weights: prob.initial), data: prob.signals,
                                         config: Self.config(batch: nil, shuffle: false))
        var fullSizes: [Int] = []
        try full.train(epochs: 2) { fullSizes.append($0.batchSize) }
        #expect(fullSizes == [23, 23])
    }

    @Test func optimizersFollowTheirUpdateRules() throws {
        var rng = Random(seed: 9)
        let w0 = Tensor.normal([3, 4], rng: &rng)
        let grads = (0..<3).map { _ in Tensor.normal([3, 4], rng: &rng) }
        // Adam against the textbook formula in Double.
        var adam = Optimizer.adam(learningRate: 0.01, beta1: 0.8, beta2: 0.9, epsilon: 1e-3)
        var w = w0
        var md = [Double](repeating: 0, count: 12), vd = md, wd = doubles(w0)
        for (t, g) in grads.enumerated() {
            adam.step(&w, gradient: g)
            for i in 0..<12 {
                let gi = Double(g.data[i])
                md[i] = 0.8 * md[i] + 0.2 * gi
                vd[i] = 0.9 * vd[i] + 0.1 * gi * gi
                let mh = md[i] / (1 - pow(0.8, Double(t + 1))), vh = vd[i] / (1 - pow(0.9, Double(t + 1)))
                wd[i] -= 0.01 * mh / (vh.squareRoot() + 1e-3)
            }
        }
        #expect(zip(doubles(w), wd).allSatisfy { abs($0 - $1) < 1e-6 })
        #expect(adam.steps == 3)
        // A large tensor (vector lanes, a tail, split over the workers): the scalar Float roundings, bit for bit.
        let n = 200_003
        var big = Tensor.normal([n], rng: &rng)
        var (wf, mf, vf) = (big.data, [Float](repeating: 0, count: n), [Float](repeating: 0, count: n))
        var bigAdam = Optimizer.adam(learningRate: 0.01, beta1: 0.8, beta2: 0.9, epsilon: 1e-3)
        for t in 1...2 {
            let g = Tensor.normal([n], rng: &rng)
            bigAdam.step(&big, gradient: g)
            let (lr, b1, b2): (Float, Float, Float) = (0.01, 0.8, 0.9)
            let step = Float(Double(lr) / (1 - pow(Double(b1), Double(t)))), bc2 = Float((1 - pow(Double(b2), Double(t))).squareRoot())
            for i in 0..<n {
                mf[i] = 0.8 * mf[i] + (1 - 0.8) * g.data[i]
                vf[i] = 0.9 * vf[i] + (1 - 0.9) * g.data[i] * g.data[i]
                wf[i] = wf[i] - step * mf[i] / (vf[i].squareRoot() / bc2 + 1e-3)
            }
        }
        let differ = { (a: [Float], b: [Float]) in zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count }
        #expect(differ(big.data, wf) == 0)
        #expect(differ(bigAdam.first?.data ?? [], mf) == 0 && differ(bigAdam.second?.data ?? [], vf) == 0)
        #expect(bigAdam.second!.largestMagnitude.isFinite)
        // Every SGD variant on the large tensor: the scalar Float roundings of the textbook updates, bit for
        // bit, and the step's summary is what a separate pass over the results finds.
        for (momentum, nesterov, decay): (Float, Bool, Float) in [(0, false, 0), (0, false, 0.01), (0.9, false, 0),
                                                                 (0.9, true, 0), (0.9, true, 0.01)] {
            var sgd = Optimizer.sgd(learningRate: 0.05, momentum: momentum, nesterov: nesterov, weightDecay: decay)
            var w = Tensor.normal([n], rng: &rng)
            var (wf, bf) = (w.data, [Float]())
            for t in 0..<3 {
                let g = Tensor.normal([n], rng: &rng)
                let summary = sgd.step(&w, gradient: g)
                let lr: Float = 0.05
                var gf = g.data
                if decay != 0 { for i in 0..<n { gf[i] += decay * wf[i] } }
                if momentum == 0 {
                    for i in 0..<n { wf[i] += -lr * gf[i] }
                } else {
                    bf = t == 0 ? gf : (0..<n).map { momentum * bf[$0] + gf[$0] }
                    for i in 0..<n {
                        if nesterov {
                            wf[i] += -lr * gf[i]
                            wf[i] += -lr * momentum * bf[i]
                        } else {
                            wf[i] += -lr * bf[i]
                        }
                    }
                }
                #expect(differ(w.data, wf) == 0 && differ(sgd.first?.data ?? [], bf) == 0,
                        "SGD μ \(momentum) Nesterov \(nesterov) decay \(decay), step \(t)")
                #expect(summary.largestWeight == w.largestMagnitude && summary.stateIsFinite)
            }
        }
        // The summary flags what the trainer's divergence checks look for: a NaN gradient entry makes the
        // largest weight NaN, an overflowing one Adam's second moment infinite.
        var probe = Optimizer.sgd(learningRate: 0.1, momentum: 0.9)
        var pw = Tensor.normal([n], rng: &rng)
        var bad = Tensor.normal([n], rng: &rng)
        bad.data[n - 2] = .nan
        #expect(probe.step(&pw, gradient: bad).largestWeight.isNaN)
        var overflow = Optimizer.adam(learningRate: 0.01)
        bad.data[n - 2] = 3e38
        let o = overflow.step(&pw, gradient: bad)
        #expect(!o.stateIsFinite && !overflow.isFinite)
        // SGD with momentum: buf = μ buf + g.
        var sgd = Optimizer.sgd(learningRate: 0.1, momentum: 0.5)
        w = w0
        var buf = [Double](repeating: 0, count: 12)
        wd = doubles(w0)
        for (t, g) in grads.enumerated() {
            sgd.step(&w, gradient: g)
            for i in 0..<12 {
                buf[i] = t == 0 ? Double(g.data[i]) : 0.5 * buf[i] + Double(g.data[i])
                wd[i] -= 0.1 * buf[i]
            }
        }
        #expect(zip(doubles(w), wd).allSatisfy { abs($0 - $1) < 1e-6 })
        // Export / restore round trip.
        let state = adam.exportState()
        var other = Optimizer.adam(learningRate: 0.01, beta1: 0.8, beta2: 0.9, epsilon: 1e-3)
        try other.restoreState(tensors: state.tensors, metadata: state.metadata, weightShape: [3, 4])
        #expect(other == adam)
    }
}
