import Foundation
import Testing
import Unroll
import UnrollCore
import UnrollIO

/// The PyTorch peers of `unroll bench crsae-denoise` and `unroll bench spikes` (`bench/crsae_denoise_torch.py`,
/// `bench/spikes_torch.py`): each passes its self-test and, on the same tiny inputs, computes in float64 the
/// same loss, gradients and state after one step as our model's step (evaluate, Adam, finishStep: what the
/// trainer runs). Skipped when python3 or torch is missing; the bench cases themselves run without a peer.
@Suite struct CRsAEBenchTests {
    static func scalar(_ x: Float) -> Tensor { Tensor(shape: [], data: [x]) }

    /// `script --selftest --check inputs`: the self-test must pass; the last line is the step's JSON.
    static func peerStep(_ script: String, inputs: [(String, Tensor)]) throws -> [String: Any] {
        let dir = try CLITests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("inputs.npz").path
        try Npz.write(inputs, to: file)
        let (status, text) = try ConvDenoiseBenchTests.peer(script, ["--selftest", "--check", file])
        #expect(status == 0 && text.contains("all checks passed"), "\(script) --selftest failed:\n\(text)")
        let last = try #require(text.split(separator: "\n").last)
        return try #require(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
    }

    /// max |a − b| ≤ tol · max |b|, and b not all zero.
    static func close(_ ours: [Float], _ peer: Any?, tol: Float, _ what: String) throws {
        let theirs = try #require(peer as? [Double], "\(what) missing").map { Float($0) }
        try #require(theirs.count == ours.count, "\(what): \(theirs.count) values, ours \(ours.count)")
        let scale = theirs.map(abs).max()!
        let diff = zip(ours, theirs).map { abs($0 - $1) }.max()!
        #expect(scale > 0 && diff <= tol * scale, "\(what) differs by \(diff) (max \(scale))")
    }

    /// Runs a model's step as the trainer does, without the trainer's stream.
    static func step<M: Trainable>(_ model: inout M, _ batch: M.Batch, optimizers: [Optimizer]) throws -> M.Evaluation {
        var e = try model.evaluate(batch, step: 1)
        var p = model.parameters, o = optimizers
        for i in p.indices { o[i].step(&p[i], gradient: e.gradients[i]) }
        model.parameters = p
        try model.finishStep(&e, step: 1)
        return e
    }

    /// Untied CRsAE 2-D with the EM λ: a size that does not fit the stride, batch 2.
    @Test(.enabled(if: ConvDenoiseBenchTests.torchInstalled)) func crsaeDenoisePeerComputesOurStep() throws {
        var c = CRsAE2DConfig()
        (c.atoms, c.kernel, c.stride, c.layers, c.lipschitz) = (3, 3, 2, 4, 6)
        (c.sigma, c.lambdaMean, c.lambdaRate, c.learningRate) = (0.3, 1, 2, 0.01)
        (c.tying, c.cropSize) = (.untied, 12)
        var model = try CRsAE2DModel(config: c)
        var rng = Random(seed: 4)
        let clean = Tensor.uniform([2, 12, 11], rng: &rng)
        let noisy = DenoisingImages.addNoise(clean, sigma: 0.1, rng: &rng)
        // Distinct banks, so a mixed-up role shows.
        model.parameters = (0..<3).map { _ in
            var w = Tensor.normal([3, 9], rng: &rng)
            w.normalizeRows()
            return w.reshaped([3, 1, 3, 3])
        }
        let before = model
        let e = try Self.step(&model, (noisy, clean, [c.sigma, c.sigma]),
                              optimizers: [Optimizer](repeating: .adam(learningRate: c.learningRate, epsilon: c.epsilon), count: 3))
        let banks = before.network.filters
        let peer = try Self.peerStep("crsae_denoise_torch.py", inputs: [
            ("clean", clean), ("noisy", noisy), ("H", banks[0]), ("We", banks[1]), ("Wd", banks[2]),
            ("lambdas", Tensor(shape: [3], data: before.lambdas)), ("stride", Self.scalar(2)), ("layers", Self.scalar(4)),
            ("lipschitz", Self.scalar(6)), ("sigma", Self.scalar(c.sigma)), ("lambda_mean", Self.scalar(c.lambdaMean)),
            ("delta", Self.scalar(c.lambdaRate)), ("lr", Self.scalar(c.learningRate)), ("eps", Self.scalar(c.epsilon))])
        let loss = try #require(peer["loss"] as? Double)
        #expect(abs(e.reconstruction - loss) <= 1e-5 * loss, "loss ours \(e.reconstruction) vs torch \(loss)")
        let grads = try #require(peer["gradients"] as? [[Double]])
        let after = try #require(peer["banks_after"] as? [[Double]])
        try #require(grads.count == 3 && after.count == 3)
        for (i, name) in ["H", "We", "Wd"].enumerated() {
            try Self.close(e.gradients[i].data, grads[i], tol: 1e-4, "gradient of \(name)")
            try Self.close(model.network.filters[i].data, after[i], tol: 1e-5, "\(name) after the step")
        }
        try Self.close(model.lambdas, peer["lambdas_after"], tol: 1e-5, "λ after the EM step")
        #expect(model.lambdas != before.lambdas)
    }

    /// CRsAE on a 2-channel 1-D signal: α from the filters, the EM λ and the σ update.
    @Test(.enabled(if: ConvDenoiseBenchTests.torchInstalled)) func spikesPeerComputesOurStep() throws {
        var rng = Random(seed: 9)
        let dictionary = Convolution1DDictionary(filters: 2, channels: 2, length: 5, rng: &rng)
        let windows = Tensor.normal([3, 2, 40], rng: &rng)
        var c = CRsAEConfig()
        (c.layers, c.batchSize, c.learningRate, c.sigmaSmoothing) = (4, 3, 0.01, 0.9)
        c.step = .inverseLipschitz(iterations: 50, seed: 0)
        c.lambdaPrior = GammaPriorLambda(priorMean: 3, rate: 2)
        let sigma: Float = 0.5, lambdas: [Float] = [3, 2]
        var model = try CRsAEModel(dictionary: dictionary, lambdas: lambdas, sigma: sigma, config: c)
        var stream = RowBatches(data: windows, batchSize: 3, shuffle: false, seed: 0)
        let batch = stream.next()
        let e = try Self.step(&model, batch, optimizers: [.adam(learningRate: c.learningRate, epsilon: c.epsilon)])
        let peer = try Self.peerStep("spikes_torch.py", inputs: [
            ("windows", windows), ("filters", dictionary.weights), ("lambdas", Tensor(shape: [2], data: lambdas)),
            ("sigma", Self.scalar(sigma)), ("lambda_mean", Self.scalar(3)), ("delta", Self.scalar(2)), ("layers", Self.scalar(4)),
            ("lr", Self.scalar(c.learningRate)), ("eps", Self.scalar(c.epsilon)), ("sigma_smoothing", Self.scalar(0.9))])
        let loss = try #require(peer["loss"] as? Double)
        #expect(abs(e.reconstruction - loss) <= 1e-5 * loss, "loss ours \(e.reconstruction) vs torch \(loss)")
        let alpha = try #require(peer["alpha"] as? Double)
        #expect(abs(Double(e.alpha) - alpha) <= 1e-5 * alpha, "α ours \(e.alpha) vs torch \(alpha)")
        try Self.close(e.gradients[0].data, peer["gradient"], tol: 1e-4, "gradient")
        try Self.close(model.dictionary.weights.data, peer["filters_after"], tol: 1e-5, "filters after the step")
        try Self.close(model.lambdas, peer["lambdas_after"], tol: 1e-5, "λ after the EM step")
        let sigmaAfter = try #require(peer["sigma_after"] as? Double)
        #expect(abs(Double(model.sigma) - sigmaAfter) <= 1e-5 * sigmaAfter && model.sigma != sigma, "σ ours \(model.sigma) vs torch \(sigmaAfter)")
    }

    /// Both cases run without their peer, and their steps lower the loss on the repeated batch.
    @Test(.needsCLI, arguments: [("crsae-denoise", "32"), ("spikes", "4")])
    func benchStepsRunWithoutPeer(_ name: String, _ size: String) throws {
        let dir = try CLITests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLITests.ok(["bench", name, "--no-peer", "--repeats", "3", "--size", size, "--json"], in: dir)
        let report = try #require(((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["reports"] as? [[String: Any]])?.first)
        #expect(report["benchmark"] as? String == name)
        let details = try #require(report["details"] as? [String: String])
        let losses = try #require(details["ours: losses per step (warm-up first)"]).split(separator: " ").compactMap { Double($0) }
        #expect(losses.count == 4 && losses.allSatisfy { $0.isFinite && $0 > 0 })
        #expect(losses.last! < losses.first!, "\(name): losses \(losses)")
    }
}
