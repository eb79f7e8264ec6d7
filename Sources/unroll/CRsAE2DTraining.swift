import Foundation
import Unroll
import UnrollCore
import UnrollIO

/// `unroll train --model conv2d --family crsae --data FOLDER …`: a CRsAE denoiser (crsae §6.2).
///
/// The model is saved as a conv2d model: FISTA at step 1/L with the thresholds b_c themselves, tied (H)
/// or untied (H, We, Wd as dictionary, analysis and synthesis), the EM λ_c and σ, shift-averaged denoising.
struct CRsAE2DTraining {
    let o: Train

    func run() throws {
        let c = o.conv
        let steps = o.steps ?? 1000
        guard steps >= 0 else { throw CLIError("--steps must be ≥ 0, got \(steps)") }
        var config = CRsAE2DConfig()
        config.atoms = o.atoms ?? 64
        config.kernel = c.kernel ?? 7
        config.stride = c.stride ?? 5
        config.cropSize = c.crop ?? 127
        config.sigma = try parseSigma(c.sigma ?? "20/255", option: "--sigma")
        config.layers = o.layers ?? 30
        config.lipschitz = c.lipschitz
        config.guardLipschitz = c.guardLipschitz
        config.lambdaMean = c.lambdaMean
        config.lambdaRate = c.delta
        config.tying = c.untied ? .untied : .tied
        config.bias = c.bias.bias
        config.learningRate = o.lr ?? 0.003
        config.epsilon = o.eps
        config.batchSize = o.batch.size ?? 1
        config.target = c.target
        config.flips = !c.noFlips
        config.normalize = !o.noNormalize
        config.seed = o.seed
        if let e = c.evalEvery, e < 1 { throw CLIError("--eval-every must be ≥ 1, got \(e)") }
        try inContext("--family crsae") { try config.validate() }

        let train = try ImageFolder.load(o.data, option: "--data")
        let test = try c.testImages.map { try ImageFolder.load($0, option: "--test-images") }
        try inContext("--data") {
            try DenoisingImages.validate(train.map(\.image), what: "training image", names: train.map(\.name), minimumSide: config.kernel)
        }
        if let test {
            try inContext("--test-images") {
                try DenoisingImages.validate(test.map(\.image), what: "test image", names: test.map(\.name), minimumSide: config.kernel)
            }
        }
        var trainer = try inContext("--family crsae") { try CRsAE2DTrainer(images: train.map(\.image), config: config) }
        let run = try TrainingRun(output: o.output, resume: o.resume, checkpointEvery: o.checkpointEvery)
        func evaluate(_ network: CRsAE2DNetwork) throws -> Denoiser.Evaluation? {
            guard let test else { return nil }
            return try network.evaluate(clean: test.map(\.image), sigma: config.sigma, seed: o.seed &+ 1, shiftAverage: true)
        }
        let label = "crsae \(config.tying.rawValue) \(config.bias.name)"
        let clock = ContinuousClock.now
        let last = try run.run(&trainer, steps: steps, label: "train " + label,
                               columns: ["rec", "density", "mean_lambda", "mean_threshold"],
                               fields: { r in [CSV.format(r.reconstruction), CSV.format(r.density), CSV.format(Double(r.meanLambda)),
                                               CSV.format(Double(r.meanThreshold))] },
                               detail: { r in String(format: "rec %.3g, density %.3f, λ %.3g", r.reconstruction, r.density, r.meanLambda) },
                               evaluateEvery: c.evalEvery, evaluate: { try evaluate($0.network)?.meanDenoised },
                               save: { t, history in
                                   try save(t)
                                   try writeCurve(history.plot(title: "unroll train " + label, series: ["rec"]), in: o.output)
                               })
        guard run.job.isRoot else { return }
        let file = "model.safetensors"
        var summary = "\(label): step \(trainer.step)"
        if let r = last { summary += String(format: ", rec %.4g, code density %.3f, mean λ %.3g", r.reconstruction, r.density, r.meanLambda) }
        if let ev = try evaluate(trainer.network) {
            summary += String(format: "; test PSNR (averaged over the %d shifts) %.2f dB (noisy %.2f dB, gain %.2f dB) with peak 1, %.2f dB (noisy %.2f dB) with peak = max of the clean image, on %d images",
                              config.stride * config.stride, ev.meanDenoised, ev.meanNoisy, ev.gain, ev.meanDenoisedCleanMax,
                              ev.meanNoisyCleanMax, ev.scores.count)
        }
        summary += String(format: ", %.1f s; wrote %@/%@, checkpoint.safetensors, atoms.png, curve.png, log.csv", secondsSince(clock), o.output, file)
        summary += run.job.summary(seconds: secondsSince(clock))
        print(summary)
    }

    /// Writes the model and the atoms image.
    func save(_ trainer: CRsAE2DTrainer) throws {
        let net = trainer.network, config = trainer.config
        let info = [
            "training.family": "crsae", "training.bias": config.bias.name, "training.tying": config.tying.rawValue,
            "training.step": String(trainer.step), "training.seed": String(o.seed), "training.sigma": config.sigma.description,
            "training.crop": String(config.cropSize), "training.target": config.target.rawValue,
            "training.learning_rate": config.learningRate.description, "training.lipschitz": net.lipschitz.description,
            "training.lambda_mean": config.lambdaMean.description, "training.delta": config.lambdaRate.description,
            "data.folder": o.data,
        ]
        let name = "model.safetensors"
        var em: EMLambda?
        if case .em = config.bias { em = EMLambda(lambdas: trainer.lambdas, sigma: config.sigma) }
        try inContext("writing the model") {
            let model = try net.autoencoder(height: config.cropSize, width: config.cropSize, em: em)
            try ModelFile(model: .conv2d(model), info: info).write(to: o.output + "/" + name)
        }
        let k = net.kernel
        try inContext("writing atoms.png") {
            try AtomGrid(atomHeight: k, atomWidth: k, scale: max(1, 48 / k))
                .writePNG(net.decoderFilters.reshaped([net.atoms, k * k]), to: o.output + "/atoms.png")
        }
    }
}
