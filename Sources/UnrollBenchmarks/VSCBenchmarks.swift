import Foundation
import Unroll
import UnrollCore

/// `unroll bench vsc-linear`: one training step of variational sparse coding with a linear generator
/// (vsc §4: thresholded Laplacian samples, fixed λ 0.25, J 20 samples, max-ELBO aggregation, MLP encoder
/// 256 → 512 → 1024 → 512 → 256, Nesterov SGD under the one-cycle schedule, Φ by its own step), as
/// `Trainer.trainStep()` runs it, beside `bench/vsc_linear_torch.py` (`TrainingStepCase`). The peer reads
/// our batch, encoder weights and Φ; each side draws its own samples, so only the first step's losses
/// are compared, loosely.
enum VSCBenchmarks {
    static let target = 3.0

    static let linearCase = BenchmarkCase(
        name: "vsc-linear",
        summary: "one VSC linear-generator step (thresholded Laplacian, J 20, MLP encoder 256-512-1024-512-256, 256 latents, --size signals, default 100) vs PyTorch (bench/vsc_linear_torch.py)",
        run: { try runLinear($0) })

    /// Gaussian signals stand in for whitened 16×16 patches (unit variance per pixel, as whitening leaves them).
    static func runLinear(_ o: BenchOptions) throws -> BenchReport {
        var config = LinearGeneratorConfig(variational: VariationalConfig(family: .thresholdedLaplacian))
        config.batchSize = o.size ?? 100
        let pixels = 256
        var rng = Random(seed: 3)
        let data = Tensor.normal([config.batchSize, pixels], rng: &rng)
        var trainer = try LinearGeneratorTrainer(data: data, config: config)
        let model = trainer.model, v = config.variational
        let scalar = { (x: Float) in Tensor(shape: [], data: [x]) }
        let setting = "\(config.batchSize) signals of \(pixels) (Gaussian, one batch), MLP encoder \(([pixels] + config.hidden).map(String.init).joined(separator: "-")) "
            + "with mean and log-scale heads of \(config.latents) latents, \(v.samples) thresholded Laplacian samples per signal (λ \(v.threshold.lambda), "
            + "warm-up \(config.warmup(step: 0))), KL weight \(config.klWeight) to Laplace(0, \(v.priorSpread)), max-ELBO aggregation, Nesterov SGD "
            + "(momentum \(config.momentum), one-cycle), Φ ← Φ + η(direction − 2ρΦ) (η \(config.dictionaryRate), ρ \(config.frobenius)); "
            + "one step = encoder + draws + decode + losses + backward + SGD + Φ; the same batch every step"
        let inputs = [("x", data), ("dictionary", model.dictionary)] + Array(zip(model.parameterNames, model.parameters)) + [
            ("samples", scalar(Float(v.samples))), ("lam", scalar(v.threshold.lambda)), ("prior", scalar(v.priorSpread)),
            ("kl_weight", scalar(config.klWeight)), ("spread_warmup", scalar(config.warmup(step: 0))),
            ("lr", scalar(trainer.optimizers[0].learningRate)), ("momentum", scalar(config.momentum)),
            ("eta", scalar(config.dictionaryRate)), ("rho", scalar(config.frobenius))]
        return try TrainingStepCase(
            name: "vsc-linear", row: "VSC step \(config.batchSize)×\(pixels) J \(v.samples)", setting: setting, script: "vsc_linear_torch.py",
            inputs: inputs,
            step: {
                let r = try trainer.trainStep()
                return (r.loss, r.nonZero)
            },
            encodeOnly: nil, target: target, targetIssue: "issue 16", ownDraws: 0.05).run(o)
    }
}
