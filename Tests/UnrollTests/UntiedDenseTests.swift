import Foundation
import Testing
import Unroll
import UnrollCore
import UnrollIO

/// A variant no paper here needs, as a parameter only (`TrainerConfig.untied`): dense PUDLE with a
/// learned analysis bank E in the encoder, v = y − α Eᵀ(D y − x). No new type: the one loop, the one
/// trainer and the one model file carry it.
@Suite struct UntiedDenseTests {
    static func problem() throws -> (x: Tensor, d: DenseDictionary, config: TrainerConfig) {
        var rng = Random(seed: 12)
        var w = Tensor.normal([8, 6], rng: &rng)
        w.normalizeRows()
        let x = Tensor.normal([40, 6], rng: &rng)
        var config = TrainerConfig(encoder: UnrolledEncoder(layers: 5, lambda: .scalar(0.05), step: .fixed(0.2)),
                                   mode: .leastSquares, optimizer: .adam(learningRate: 1e-2), batchSize: 10)
        config.untied = true
        return (x, try DenseDictionary(weights: w), config)
    }

    /// ∂L/∂E along random directions equals central differences of the loss.
    @Test func analysisGradientMatchesFiniteDifferences() throws {
        let (x, d, config) = try Self.problem()
        var rng = Random(seed: 5)
        var e = d
        e.weights.add(Tensor.normal(d.weights.shape, std: 0.1, rng: &rng))
        func loss(_ bank: DenseDictionary) throws -> Double {
            try GradientMode.leastSquares.evaluate(signals: x, operator: d, analysis: bank, encoder: config.encoder).losses.loss
        }
        let g = try #require(try GradientMode.leastSquares.evaluate(signals: x, operator: d, analysis: e, encoder: config.encoder).analysisGradient)
        for _ in 0..<3 {
            let v = Tensor.normal(d.weights.shape, rng: &rng)
            // Small steps: the thresholds make the loss piecewise smooth (at h = 1e-2 the difference
            // quotient is 6 % off, at 3e-4 it agrees to 1e-3), and Float rounding bounds h from below.
            let h: Float = 3e-4
            var plus = e, minus = e
            plus.weights.add(v, scaledBy: h)
            minus.weights.add(v, scaledBy: -h)
            let fd = (try loss(plus) - loss(minus)) / (2 * Double(h))
            var analytic = 0.0
            for (a, b) in zip(g.data, v.data) { analytic += Double(a) * Double(b) }
            #expect(abs(fd - analytic) <= 2e-3 * abs(analytic) + 1e-4, "directional derivative \(analytic) vs finite differences \(fd)")
        }
        #expect(try GradientMode.leastSquares.evaluate(signals: x, operator: d, encoder: config.encoder).analysisGradient == nil)
    }

    /// The untied model trains, resumes bit for bit, and round-trips through the model file.
    @Test func trainsResumesAndSaves() throws {
        let (x, d, config) = try Self.problem()
        var trainer = try DictionaryTrainer(dictionary: d, data: x, config: config)
        #expect(trainer.model.parameterNames == ["dictionary", "analysis"])
        var losses: [Double] = []
        try trainer.train(steps: 8) { losses.append($0.loss) }
        let saved = trainer.checkpoint()
        try trainer.train(steps: 52) { losses.append($0.loss) }
        let (first, last) = (losses.prefix(8).reduce(0.0, +), losses.suffix(8).reduce(0.0, +))
        #expect(last < 0.9 * first, "loss \(first) → \(last) over 8 steps each")
        #expect(trainer.model.analysis!.weights != trainer.dictionary.weights)
        var resumed = try DictionaryTrainer(dictionary: d, data: x, config: config)
        try resumed.restore(saved)
        try resumed.train(steps: 52)
        #expect(resumed.model.analysis == trainer.model.analysis && resumed.dictionary == trainer.dictionary)

        let model = try trainer.model.autoencoder(afterSteps: trainer.step)
        let dir = NSTemporaryDirectory() + "unroll-untied-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ModelFile(model: .dense(model)).write(to: dir)
        guard case let .dense(back) = try ModelFile.read(dir).model else { Issue.record("kind"); return }
        #expect(back.analysis == model.analysis && !back.isTied)
        #expect(try back.encode(x) == model.encoder.encode(x, with: model.dictionary, analysis: model.analysis))

        var decoderOnly = config
        decoderOnly.mode = .decoder
        #expect(throws: UnrollError.self) { try DictionaryTrainer(dictionary: d, data: x, config: decoderOnly) }
    }
}
