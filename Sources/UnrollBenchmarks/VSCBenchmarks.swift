import Foundation
import Unroll
import UnrollCore

/// `unroll bench vsc-linear | vsc-conv`: one training step of variational sparse coding, as
/// `Trainer.trainStep()` runs it, beside a PyTorch peer (`TrainingStepCase`) that reads our batch and every
/// weight; each side draws its own samples, so only the first step's losses are compared, loosely.
///
/// * `vsc-linear` (vsc §4): thresholded Laplacian samples, fixed λ 0.25, J 20, max-ELBO aggregation, MLP
///   encoder 256 → 512 → 1024 → 512 → 256, Nesterov SGD under the one-cycle schedule, Φ by its own step
///   (`bench/vsc_linear_torch.py`);
/// * `vsc-conv` (vsc §5, the `small` scale of `reproduce vsc-fmnist`): Fashion-MNIST's convolutional encoder
///   and decoder (widths 64, 128) with batch norm, 64 latents, thresholded Laplacian samples (λ 0.23), J 4,
///   batch 64, Adam (`bench/vsc_conv_torch.py`).
enum VSCBenchmarks {
    static let linearCase = BenchmarkCase(
        name: "vsc-linear",
        summary: "one VSC linear-generator step (thresholded Laplacian, J 20, MLP encoder 256-512-1024-512-256, 256 latents, --size signals, default 100) vs PyTorch (bench/vsc_linear_torch.py)",
        run: { try runLinear($0) })

    static let convCase = BenchmarkCase(
        name: "vsc-conv",
        summary: "one VSC DNN-generator step (Fashion-MNIST networks 64/128 with batch norm, 64 latents, thresholded Laplacian, J 4, --size images, default 64) vs PyTorch (bench/vsc_conv_torch.py)",
        run: { try runConv($0) })

    /// Uniform images in [0, 1] stand in for Fashion-MNIST (the step's cost does not depend on them).
    static func runConv(_ o: BenchOptions) throws -> BenchReport {
        let family = VariationalFamily.thresholdedLaplacian
        var config = NetworkGeneratorConfig(variational: VariationalConfig(family: family, threshold: NetworkGeneratorConfig.defaultThreshold(for: family),
                                                                           samples: 4))
        config.batchSize = o.size ?? 64
        guard config.batchSize >= 2 else { throw BenchError("vsc-conv: --size must be ≥ 2 (batch norm)") }
        var rng = Random(seed: 4)
        let data = Tensor.uniform([config.batchSize, NetworkGeneratorModel.pixels], rng: &rng)
        var trainer = try NetworkGeneratorTrainer(data: data, config: config)
        let model = trainer.model, v = config.variational
        let scalar = { (x: Float) in Tensor(shape: [], data: [x]) }
        let setting = "\(config.batchSize) images 28×28 (uniform, one batch), encoder Conv 1-\(config.channels[0])-\(config.channels[0])-\(config.channels[1])-\(config.channels[1]) "
            + "with batch norm and heads of \(config.latents) latents, \(v.samples) thresholded Laplacian draws per image (λ \(v.threshold.lambda)), "
            + "decoder ConvT back to 28×28 with batch norm and a sigmoid on all draws, KL weight \(config.klWeight), max-ELBO aggregation, "
            + "Adam (β \(config.beta1), \(config.beta2), weight decay \(config.weightDecay), one-cycle); one step = encoder + draws + decoder + losses + "
            + "backward + Adam; the same batch every step"
        let inputs = [("x", data)] + Array(zip(model.parameterNames, model.parameters)) + [
            ("samples", scalar(Float(v.samples))), ("lam", scalar(v.threshold.lambda)), ("prior", scalar(v.priorSpread)),
            ("kl_weight", scalar(config.klWeight)), ("spread_warmup", scalar(NetworkGeneratorConfig.warmup)),
            ("lr", scalar(trainer.optimizers[0].learningRate)), ("beta1", scalar(config.beta1)), ("beta2", scalar(config.beta2)),
            ("weight_decay", scalar(config.weightDecay))]
        return try TrainingStepCase(
            name: "vsc-conv", row: "VSC step \(config.batchSize)×784 J \(v.samples)", setting: setting, script: "vsc_conv_torch.py",
            inputs: inputs,
            step: {
                let r = try trainer.trainStep()
                return (r.loss, r.nonZero)
            },
            encodeOnly: nil, target: BenchTargets.otherSteps, ownDraws: 0.05).run(o)
    }

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
            encodeOnly: nil, target: BenchTargets.otherSteps, ownDraws: 0.05).run(o)
    }
}
