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
        config.rotations = c.rotations
        config.noiseRange = try c.sigmaRange.map(Self.parseRange)
        if config.noiseRange != nil, c.sigma == nil { config.sigma = 25.0 / 255 }
        config.shiftsPerCrop = c.shifts
        config.layerThresholds = c.layerThresholds
        config.denoiseShifts = try c.denoiseShifts.set() ?? .all
        config.denoiseNonLocal = try c.denoiseNonLocal.setting(replacing: nil)
        config.learningRateStep = c.lrStep
        config.learningRateGamma = c.lrGamma
        config.normalize = !o.noNormalize
        config.seed = o.seed
        if let e = c.evalEvery, e < 1 { throw CLIError("--eval-every must be ≥ 1, got \(e)") }
        try inContext("--family crsae") { try config.validate() }

        var train = try ImageFolder.load(o.data, option: "--data")
        var validation: [(name: String, image: Tensor)] = []
        for name in c.holdOut {
            guard let i = train.firstIndex(where: { $0.name == name }) else {
                throw CLIError("--hold-out \(name): no such image in --data \(o.data) (it has \(train.map(\.name).joined(separator: ", ")))")
            }
            validation.append(train.remove(at: i))
            guard !train.isEmpty else { throw CLIError("--hold-out \(name): nothing is left to train on") }
        }
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
        /// Whole images with noise of σ (from the seed), denoised at σ (a noise-adaptive model set for it).
        func score(_ model: CRsAE2DModel, _ images: [(name: String, image: Tensor)], sigma: Float) throws -> Denoiser.Evaluation {
            let m = try Denoiser.model(model.autoencoder(height: images[0].image.shape[0], width: images[0].image.shape[1]), forNoise: sigma).model
            return try Denoiser.evaluate(clean: images.map(\.image), sigma: sigma, seed: o.seed &+ 1, model: m)
        }
        func evaluate(_ model: CRsAE2DModel) throws -> Denoiser.Evaluation? {
            guard let test else { return nil }
            return try score(model, test, sigma: config.sigma)
        }
        /// The best validation PSNR so far and its step (a resumed run continues from best.safetensors's).
        var best = (psnr: -Double.infinity, step: 0)
        if o.resume, !validation.isEmpty, let file = try? ModelFile.read(o.output + "/best.safetensors"),
           let psnr = file.info["training.validation_psnr"].flatMap(Double.init), let step = file.info["training.step"].flatMap(Int.init) {
            best = (psnr, step)
        }
        /// The σ the hold-out images are scored at: the training σ, or the range's ends and the reference
        /// (once each: a range of one σ is that σ).
        let validationSigmas = (config.noiseRange.map { [$0.lowerBound, config.sigma, $0.upperBound] } ?? [config.sigma])
            .reduce(into: [Float]()) { if !$0.contains($1) { $0.append($1) } }
        let label = "crsae \(config.tying.rawValue) \(config.bias.name)"
        let clock = ContinuousClock.now
        let last = try run.run(&trainer, steps: steps, label: "train " + label,
                               columns: ["rec", "density", "mean_lambda", "mean_threshold"],
                               fields: { r in [CSV.format(r.reconstruction), CSV.format(r.density), CSV.format(Double(r.meanLambda)),
                                               CSV.format(Double(r.meanThreshold))] },
                               detail: { r in String(format: "rec %.3g, density %.3f, λ %.3g", r.reconstruction, r.density, r.meanLambda) },
                               evaluateEvery: c.evalEvery,
                               evaluate: { t in
                                   guard !validation.isEmpty else { return try evaluate(t.model)?.meanDenoised }
                                   let psnr = try score(t.model, validation, sigma: config.sigma).meanDenoised
                                   if psnr > best.psnr {
                                       best = (psnr, t.step)
                                       try save(t, as: "best.safetensors", validation: best)
                                   }
                                   return psnr
                               },
                               evaluationColumn: validation.isEmpty ? "test_psnr" : "validation_psnr",
                               save: { t, history in
                                   try save(t)
                                   try writeCurve(history.plot(title: "unroll train " + label, series: ["rec"]), in: o.output)
                               })
        guard run.job.isRoot else { return }
        let file = "model.safetensors"
        var summary = "\(label): step \(trainer.step)"
        if let r = last { summary += String(format: ", rec %.4g, code density %.3f, mean λ %.3g", r.reconstruction, r.density, r.meanLambda) }
        if !validation.isEmpty {
            let scores = try validationSigmas.map { try score(trainer.model, validation, sigma: $0).meanDenoised }
            // The end of the run is a candidate for the best model too (scored at the training σ).
            if let last = zip(validationSigmas, scores).first(where: { $0.0 == config.sigma })?.1, last > best.psnr {
                best = (last, trainer.step)
                try save(trainer, as: "best.safetensors", validation: best)
            }
            let psnr = zip(validationSigmas, scores).map { String(format: "%.2f dB at σ %.3g/255", $1, $0 * 255) }
            summary += "; validation (\(validation.map(\.name).joined(separator: ", ")), held out) " + psnr.joined(separator: ", ")
            if best.step > 0 { summary += String(format: "; best validation %.2f dB at step %d (best.safetensors)", best.psnr, best.step) }
        }
        let shiftsAveraged = config.denoiseShifts.count(stride: config.stride)
        if let ev = try evaluate(trainer.model) {
            summary += String(format: "; test PSNR (averaged over the %d shifts) %.2f dB (noisy %.2f dB, gain %.2f dB) with peak 1, %.2f dB (noisy %.2f dB) with peak = max of the clean image, on %d images",
                              shiftsAveraged, ev.meanDenoised, ev.meanNoisy, ev.gain, ev.meanDenoisedCleanMax,
                              ev.meanNoisyCleanMax, ev.scores.count)
        }
        summary += String(format: ", %.1f s; wrote %@/%@, checkpoint.safetensors, atoms.png, curve.png, log.csv", secondsSince(clock), o.output, file)
        summary += run.job.summary(seconds: secondsSince(clock))
        print(summary)
    }

    /// The settings added for CSCNet-class training, recorded when used.
    private var provenance: [String: String] {
        let c = o.conv
        var p: [String: String] = [:]
        if let r = c.sigmaRange { p["training.sigma_range"] = r }
        if c.rotations { p["training.rotations"] = "true" }
        if c.shifts > 0 { p["training.shifts"] = String(c.shifts) }
        if c.layerThresholds { p["training.layer_thresholds"] = "true" }
        if !c.holdOut.isEmpty { p["training.hold_out"] = c.holdOut.joined(separator: ",") }
        if let s = c.lrStep { p["training.lr_step"] = String(s); p["training.lr_gamma"] = c.lrGamma.description }
        return p
    }

    /// `LOW:HIGH`, each a σ such as 5/255.
    static func parseRange(_ text: String) throws -> ClosedRange<Float> {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw CLIError("--sigma-range '\(text)': expected LOW:HIGH, e.g. 5/255:55/255") }
        let (low, high) = (try parseSigma(String(parts[0]), option: "--sigma-range"), try parseSigma(String(parts[1]), option: "--sigma-range"))
        guard low > 0, low <= high else { throw CLIError("--sigma-range '\(text)': need 0 < LOW ≤ HIGH") }
        return low...high
    }

    /// Writes the model (`name`; with its validation PSNR when given) and, for model.safetensors, the atoms image.
    func save(_ trainer: CRsAE2DTrainer, as name: String = "model.safetensors", validation: (psnr: Double, step: Int)? = nil) throws {
        let net = trainer.network, config = trainer.config
        let info = [
            "training.family": "crsae", "training.bias": config.bias.name, "training.tying": config.tying.rawValue,
            "training.step": String(trainer.step), "training.seed": String(o.seed), "training.sigma": config.sigma.description,
            "training.crop": String(config.cropSize), "training.target": config.target.rawValue,
            "training.learning_rate": config.learningRate.description, "training.lipschitz": net.lipschitz.description,
            "training.lambda_mean": config.lambdaMean.description, "training.delta": config.lambdaRate.description,
            "data.folder": o.data,
        ].merging(provenance) { a, _ in a }
            .merging(validation.map { ["training.validation_psnr": String(format: "%.4f", $0.psnr)] } ?? [:]) { a, _ in a }
        try inContext("writing the model") {
            let model = try trainer.model.autoencoder(height: config.cropSize, width: config.cropSize)
            try ModelFile(model: .conv2d(model), info: info).write(to: o.output + "/" + name)
        }
        guard name == "model.safetensors" else { return }
        let k = net.kernel
        try inContext("writing atoms.png") {
            try AtomGrid(atomHeight: k, atomWidth: k, scale: max(1, 48 / k))
                .writePNG(net.decoderFilters.reshaped([net.atoms, k * k]), to: o.output + "/atoms.png")
        }
    }
}
