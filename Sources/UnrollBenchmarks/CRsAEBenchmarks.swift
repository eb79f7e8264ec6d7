import Foundation
import Unroll
import UnrollCore

/// `unroll bench crsae-denoise` and `unroll bench spikes`: one training step of each CRsAE model, as its
/// trainer runs it (`Trainer.trainStep()` over the same batch every step), beside a PyTorch peer written
/// from the equations (reference crsae §2–§6) that reads the same inputs (`TrainingStepCase`).
enum CRsAEBenchmarks {

    static let denoiseCase = BenchmarkCase(
        name: "crsae-denoise",
        summary: "one CRsAE 2-D denoising step (64 filters 7×7 s5, untied, T 30 FISTA, EM λ, 127² crop --size, batch 1) vs PyTorch (bench/crsae_denoise_torch.py)",
        run: { try runDenoise($0) })

    static let spikesCase = BenchmarkCase(
        name: "spikes",
        summary: "one CRsAE spike-sorting step (tetrode at 10 kHz: 3 filters × 4 channels × 25 taps, --size windows of 1000 samples, default 32, T 50 FISTA, EM λ, σ update) vs PyTorch (bench/spikes_torch.py)",
        run: { try runSpikes($0) })

    static func scalar(_ x: Float) -> Tensor { Tensor(shape: [], data: [x]) }

    /// Crop batches that are the same batch every step (the timed step without its sampling).
    struct RepeatedCrops: BatchStream {
        let batch: CropBatches.Batch
        var epoch: Int { 0 }
        mutating func next() -> CropBatches.Batch { batch }
        mutating func adopt(_ generator: Random) {}
        func exportState(into checkpoint: inout TrainerCheckpoint) {}
        mutating func restoreState(_ checkpoint: TrainerCheckpoint) throws {}
        static func examples(in batch: CropBatches.Batch) -> Int { CropBatches.examples(in: batch) }
        static func shard(_ batch: CropBatches.Batch, worker: Int, of workers: Int) -> CropBatches.Batch {
            CropBatches.shard(batch, worker: worker, of: workers)
        }
    }

    /// CRsAE's 2-D denoiser (crsae §6.2, `CRsAE2DConfig` defaults, untied): a synthetic piecewise-smooth
    /// crop and its noise, the model's own random unit-norm banks and λ = λ̄.
    static func runDenoise(_ o: BenchOptions) throws -> BenchReport {
        var config = CRsAE2DConfig()
        config.tying = .untied
        config.cropSize = o.size ?? 127
        let size = config.cropSize
        guard size >= config.kernel else { throw BenchError("crsae-denoise: --size must be ≥ \(config.kernel) (the filter side), got \(size)") }
        let model = try CRsAE2DModel(config: config)
        var rng = Random(seed: 1)
        let clean = ConvDenoiseBenchmark.syntheticImage(size: size, rng: &rng).reshaped([1, size, size])
        let noisy = DenoisingImages.addNoise(clean, sigma: config.sigma, rng: &rng)
        var trainer = try Trainer(model: model, stream: RepeatedCrops(batch: (noisy, clean, [config.sigma])))
        let net = model.network, c = config
        let setting = "\(c.atoms) filters \(c.kernel)×\(c.kernel), stride \(c.stride), untied (H, We, Wd), \(size)×\(size) crop, batch 1, "
            + "σ \(Int((c.sigma * 255).rounded()))/255, FISTA T \(c.layers), L \(c.lipschitz), thresholds λ_c σ²/L, EM λ (λ̄ \(c.lambdaMean), δ \(c.lambdaRate)), "
            + "Adam lr \(c.learningRate) ε \(c.epsilon); one step = encode + ½‖x − Wd z_T‖² + backward to the three banks + Adam + normalise + EM λ; "
            + "the same crop and noise every step"
        return try TrainingStepCase(
            name: "crsae-denoise", row: "untied EM step \(size)² T \(c.layers)", setting: setting, script: "crsae_denoise_torch.py",
            inputs: [("clean", clean.reshaped([size, size])), ("noisy", noisy.reshaped([size, size])),
                     ("H", net.filters[0]), ("We", net.filters[1]), ("Wd", net.filters[2]),
                     ("lambdas", Tensor(shape: [c.atoms], data: model.lambdas)),
                     ("stride", scalar(Float(c.stride))), ("layers", scalar(Float(c.layers))), ("lipschitz", scalar(c.lipschitz)),
                     ("sigma", scalar(c.sigma)), ("lambda_mean", scalar(c.lambdaMean)), ("delta", scalar(c.lambdaRate)),
                     ("lr", scalar(c.learningRate)), ("eps", scalar(c.epsilon))],
            step: {
                let r = try trainer.trainStep()
                return (r.reconstruction, r.density)
            },
            encodeOnly: { _ = try trainer.model.network.forward(noisy, record: false) },
            target: BenchTargets.otherSteps).run(o)
    }

    /// CRsAE's spike sorting (crsae §6.1, `SpikeTrainingSettings`): a simulated tetrode recording at 10 kHz
    /// (3 neurons, 2.5 ms templates), `--size` windows of 1000 samples as one batch, random unit-norm
    /// filters, λ from Donoho's rule at the recording's robust σ with a Gamma prior (δ 500) around it,
    /// α = 1/L recomputed for the filters every step, Adam lr 0.01 ε 1e-3 (constant), σ ← 0.99σ + 0.01·rms.
    static func runSpikes(_ o: BenchOptions) throws -> BenchReport {
        let count = o.size ?? 32, window = 1000
        var rc = SpikeRecordingConfig()
        rc.channels = 4
        rc.duration = Double(count * window) / rc.samplingRate
        var rng = Random(seed: 0)
        let recording = try SpikeSimulation.record(rc, filters: SpikeSimulation.filters(rc, rng: &rng), rng: &rng)
        let windows = try SpikeSimulation.windows(recording.signal, length: window)
        guard windows.rows == count else { throw BenchError("spikes: expected \(count) windows, the recording gave \(windows.rows)") }
        let settings = SpikeTrainingSettings(epochs: 1)
        var config = settings.training
        config.learningRateDecay = 1
        let (atoms, k) = (rc.neurons, rc.filterLength)
        let sigma0 = SpikeSimulation.robustSigma(recording.signal)
        let lambda0 = GammaPriorLambda.donoho(atoms: atoms, positions: window - k + 1, sigma: sigma0)
        config.lambdaPrior = GammaPriorLambda(priorMean: lambda0, rate: settings.priorRate)
        let dictionary = Convolution1DDictionary(filters: atoms, channels: rc.channels, length: k, rng: &rng)
        let lambdas = [Float](repeating: lambda0, count: atoms)
        let model = try CRsAEModel(dictionary: dictionary, lambdas: lambdas, sigma: sigma0, config: config)
        var trainer = try Trainer(model: model, stream: RowBatches(data: windows, batchSize: count, shuffle: false, seed: 0),
                                  optimizers: [.adam(learningRate: config.learningRate, epsilon: config.epsilon)])
        let setting = "tetrode (\(rc.channels) channels) at \(Int(rc.samplingRate)) Hz, \(atoms) filters of \(k) taps, \(count) windows of \(window) samples "
            + "(one batch), FISTA T \(config.layers), α = 1/‖H‖₂² recomputed every step, thresholds λ_c σ² α, EM λ (λ̄ \(String(format: "%.3g", lambda0)) "
            + "by Donoho's rule at σ \(String(format: "%.3g", sigma0)), δ \(settings.priorRate)), σ ← 0.99σ + 0.01·rms(y − Hz), Adam lr \(config.learningRate) "
            + "ε \(config.epsilon) (constant); one step = α + encode + ½‖y − Hz_T‖² + backward + Adam + normalise + EM λ + σ"
        return try TrainingStepCase(
            name: "spikes", row: "CRsAE step \(count)×\(window) T \(config.layers)", setting: setting, script: "spikes_torch.py",
            inputs: [("windows", windows), ("filters", dictionary.weights), ("lambdas", Tensor(shape: [atoms], data: lambdas)),
                     ("sigma", scalar(sigma0)), ("lambda_mean", scalar(lambda0)), ("delta", scalar(settings.priorRate)),
                     ("layers", scalar(Float(config.layers))), ("lr", scalar(config.learningRate)), ("eps", scalar(config.epsilon)),
                     ("sigma_smoothing", scalar(config.sigmaSmoothing ?? 1))],
            step: {
                let r = try trainer.trainStep()
                return (r.reconstruction, r.density)
            },
            encodeOnly: { _ = try trainer.encoder.encode(windows, with: trainer.dictionary) },
            target: BenchTargets.otherSteps).run(o)
    }
}
