import ArgumentParser
import Foundation
import Unroll
import UnrollCore
import UnrollIO

/// Which model `unroll train` learns.
enum TrainModelChoice: String, CaseIterable, ExpressibleByArgument {
    case dense, conv1d, conv2d, vsc
}

/// Which convolutional denoiser `unroll train --model conv2d` learns.
enum Conv2DFamily: String, CaseIterable, ExpressibleByArgument {
    /// PUDLE: unrolled ISTA, one λ, --gradient decoder/lasso/least-squares.
    case pudle
    /// CRsAE: FISTA autoencoder with per-filter thresholds λ_c σ²/L (EM λ, free bias or fixed).
    case crsae
}

/// How a CRsAE model sets its thresholds (`--bias`).
enum CRsAEBiasChoice: String, CaseIterable, ExpressibleByArgument {
    case em
    case emBackprop = "em-backprop"
    case freeBias = "free-bias"
    case fixed

    var bias: CRsAE2DBias {
        switch self {
        case .em: return .em(form: .closedForm)
        case .emBackprop: return .em(form: .backprop)
        case .freeBias: return .freeBias
        case .fixed: return .fixed
        }
    }
}

/// The options of `unroll train --model conv2d` that the dense model does not have.
struct Conv2DTrainOptions: ParsableArguments {
    @Option(help: "conv2d: pudle (unrolled ISTA, PUDLE Table 1) or crsae (FISTA autoencoder with thresholds λ_c σ²/L, CRsAE).")
    var family: Conv2DFamily = .pudle
    @Option(help: "conv2d: filter side K (default 9; crsae 7).")
    var kernel: Int?
    @Option(help: "conv2d: stride (default 4; crsae 5).")
    var stride: Int?
    @Option(help: "conv2d: side of the random training crops (default 129; crsae 127).")
    var crop: Int?
    @Option(help: ArgumentHelp("conv2d: noise σ in [0, 1] units, e.g. 0.1 or 25/255 (default 25/255; crsae 20/255).", valueName: "σ"))
    var sigma: String?
    @Option(help: "crsae: the thresholds: em (EM λ per filter, closed form), em-backprop (EM λ by Adam through the encoder), free-bias (trained by the reconstruction loss) or fixed.")
    var bias: CRsAEBiasChoice = .em
    @Flag(help: "dense: learn a separate analysis bank E in the encoder (v = y − α Eᵀ(Dy − x)); crsae: separate encoder and decoder filters (H, We, Wd) instead of one tied bank.")
    var untied = false
    @Option(name: .customLong("lambda-mean"), parsing: .unconditional, help: "crsae: λ̄, the Gamma prior's mean and the initial λ.")
    var lambdaMean: Float = 20
    @Option(parsing: .unconditional, help: "crsae: δ, the Gamma prior's rate.")
    var delta: Float = 100
    @Option(parsing: .unconditional, help: "crsae: L (the step is 1/L, the threshold λσ²/L).")
    var lipschitz: Float = 10
    @Flag(name: .customLong("guard-lipschitz"), help: "crsae: raise L to 1.05‖H‖‖We‖ whenever the learned filters outgrow it (else FISTA can diverge).")
    var guardLipschitz = false
    @Option(help: "conv2d: loss target, clean (supervised) or noisy (unsupervised).")
    var target: DenoisingTarget = .clean
    @Option(name: .customLong("test-images"), help: ArgumentHelp("conv2d: a folder of PNGs to report the test PSNR on (whole images).", valueName: "dir"))
    var testImages: String?
    @Option(name: .customLong("eval-every"), help: "conv2d: with --test-images, also evaluate every N steps.")
    var evalEvery: Int?
    @Flag(name: .customLong("no-flips"), help: "conv2d: no random horizontal/vertical flips of the crops.")
    var noFlips = false
    @Flag(help: "crsae: random transposes of the crops too (with the flips: all eight rotations and reflections).")
    var rotations = false
    @Option(name: .customLong("sigma-range"), help: ArgumentHelp(
        "crsae: a noise-adaptive model: each crop's σ drawn uniformly from LOW:HIGH (e.g. 5/255:55/255); the thresholds are learned for --sigma and scale with σ, and `unroll denoise --sigma` sets them for the input.",
        valueName: "low:high"))
    var sigmaRange: String?
    @Option(help: "crsae: train through the shift average: each crop encoded at N random shifts of the s² (s² = all), the loss on their mean (0: unshifted).")
    var shifts: Int = 0
    /// crsae: the shifts the model denoises with, in its validation and test scores too (recorded in the
    /// model; `unroll denoise` can override them).
    @OptionGroup var denoiseShifts: ShiftOptions
    /// crsae: the non-local stage the model ends its denoising with (recorded in the model).
    @OptionGroup var denoiseNonLocal: NonLocalOptions
    @Flag(name: .customLong("layer-thresholds"), help: "crsae: learn a factor on every layer's threshold of every filter (per-layer thresholds, CSCNet-style), started at 1.")
    var layerThresholds = false
    @Option(name: .customLong("hold-out"), help: ArgumentHelp("crsae: leave this image of --data out of training (repeatable) and report the mean PSNR of the held-out images (validation) every --eval-every steps, keeping the best model so far as best.safetensors, and at the end.", valueName: "name.png"))
    var holdOut: [String] = []
    @Option(name: .customLong("lr-step"), help: "crsae: multiply the learning rate by --lr-gamma every N steps.")
    var lrStep: Int?
    @Option(name: .customLong("lr-gamma"), help: "crsae: the learning-rate factor of --lr-step.")
    var lrGamma: Float = 0.7
}

extension DenoisingTarget: ExpressibleByArgument {}

/// `unroll train --model conv2d --data FOLDER …`: a convolutional dictionary for denoising.
struct Conv2DTraining {
    let o: Train

    func run() throws {
        let c = o.conv
        if c.family == .crsae { return try CRsAE2DTraining(o: o).run() }
        let (kernel, stride, crop) = (c.kernel ?? 9, c.stride ?? 4, c.crop ?? 129)
        let steps = o.steps ?? 1000
        guard steps >= 0 else { throw CLIError("--steps must be ≥ 0, got \(steps)") }
        let sigma = try parseSigma(c.sigma ?? "25/255", option: "--sigma")
        guard kernel >= 1 else { throw CLIError("--kernel must be ≥ 1, got \(kernel)") }
        guard stride >= 1 else { throw CLIError("--stride must be ≥ 1, got \(stride)") }
        guard crop >= kernel else { throw CLIError("--crop \(crop) is smaller than the --kernel \(kernel)") }
        if let e = c.evalEvery, e < 1 { throw CLIError("--eval-every must be ≥ 1, got \(e)") }
        let mode: GradientMode
        switch o.gradient {
        case .decoder, .lasso, .leastSquares: mode = o.gradient.mode
        default: throw CLIError("--model conv2d trains with --gradient decoder, lasso or least-squares")
        }
        let threshold = (o.threshold ?? .soft).threshold
        if threshold != .hard && o.tau != nil { throw CLIError("--tau is the hard threshold; use --threshold hard") }
        if threshold == .hard && o.lambda != nil { throw CLIError("the hard threshold uses --tau, not --lambda") }
        let value = threshold == .hard ? (o.tau ?? 0.05) : (o.lambda ?? 0.16)
        guard case let .fixed(alpha) = (o.step ?? StepChoice(.fixed(0.1))).step else {
            throw CLIError("--model conv2d takes a fixed --step α (PUDLE: 0.1), not auto")
        }
        let encoder = UnrolledEncoder(layers: o.layers ?? 15, algorithm: (o.encoder ?? .ista).algorithm,
                                      threshold: threshold, lambda: .scalar(value), step: .fixed(alpha))
        let lr = o.lr ?? 1e-4
        let optimizer: Optimizer = (o.optimizer ?? .adam) == .adam
            ? .adam(learningRate: lr, beta1: o.beta1, beta2: o.beta2, epsilon: o.eps)
            : .sgd(learningRate: lr, momentum: o.momentum)
        let config = DenoisingConfig(encoder: encoder, mode: mode, optimizer: optimizer, sigma: sigma, cropSize: crop,
                                     batchSize: o.batch.size ?? 1, target: c.target, flips: !c.noFlips,
                                     normalizeFilters: !o.noNormalize, seed: o.seed)
        let train = try ImageFolder.load(o.data, option: "--data")
        let test = try c.testImages.map { try ImageFolder.load($0, option: "--test-images") }
        try inContext("--data") {
            try DenoisingImages.validate(train.map(\.image), what: "training image", names: train.map(\.name), minimumSide: kernel)
        }
        if let test {
            try inContext("--test-images") {
                try DenoisingImages.validate(test.map(\.image), what: "test image", names: test.map(\.name), minimumSide: kernel)
            }
        }
        var rng = Random(seed: o.seed)
        let initial = try inContext("--model conv2d") {
            try Convolution2DDictionary(filters: o.atoms ?? 64, kernel: kernel, stride: stride, height: crop, width: crop, rng: &rng)
        }
        var trainer = try inContext("--model conv2d") { try DenoisingTrainer(dictionary: initial, images: train.map(\.image), config: config) }
        let run = try TrainingRun(output: o.output, resume: o.resume, checkpointEvery: o.checkpointEvery)
        func evaluate(_ dictionary: Convolution2DDictionary) throws -> Denoiser.Evaluation? {
            guard let test else { return nil }
            return try Denoiser.evaluate(clean: test.map(\.image), sigma: sigma, seed: o.seed &+ 1, dictionary: dictionary, encoder: encoder)
        }
        let clock = ContinuousClock.now
        let last = try run.run(&trainer, steps: steps, label: "train conv2d", columns: ["loss", "rec", "l1", "density"],
                               fields: { r in [CSV.format(r.loss), CSV.format(r.reconstruction), CSV.format(r.l1), CSV.format(r.density)] },
                               detail: { r in String(format: "rec %.3g, density %.3f", r.reconstruction, r.density) },
                               evaluateEvery: c.evalEvery,
                               evaluate: { try evaluate($0.dictionary)?.meanDenoised },
                               save: { t, history in
                                   try save(t, encoder: encoder, sigma: sigma)
                                   try writeCurve(history.plot(title: "unroll train conv2d (\(mode.paperName))", series: ["loss", "rec", "l1"]), in: o.output)
                               })
        guard run.job.isRoot else { return }
        var summary = "\(mode.paperName) conv2d: step \(trainer.step)"
        if let r = last { summary += String(format: ", rec %.4g, code density %.3f", r.reconstruction, r.density) }
        if let ev = try evaluate(trainer.dictionary) {
            summary += String(format: "; test PSNR %.2f dB (noisy %.2f dB, gain %.2f dB) with peak 1, %.2f dB (noisy %.2f dB) with peak = max of the clean image, on %d images",
                              ev.meanDenoised, ev.meanNoisy, ev.gain, ev.meanDenoisedCleanMax, ev.meanNoisyCleanMax, ev.scores.count)
        }
        summary += String(format: ", %.1f s; wrote %@/model.safetensors, checkpoint.safetensors, atoms.png, curve.png, log.csv",
                          secondsSince(clock), o.output)
        summary += run.job.summary(seconds: secondsSince(clock))
        print(summary)
    }

    func save(_ trainer: DenoisingTrainer, encoder: UnrolledEncoder, sigma: Float) throws {
        let info = [
            "training.gradient": o.gradient.rawValue, "training.step": String(trainer.step), "training.seed": String(o.seed),
            "training.sigma": sigma.description, "training.crop": String(o.conv.crop ?? 129), "training.target": o.conv.target.rawValue,
            "training.learning_rate": trainer.config.optimizer.learningRate.description, "data.folder": o.data,
        ]
        try inContext("writing the model") {
            try ModelFile(model: .conv2d(try UnrolledAutoencoder(dictionary: trainer.dictionary, encoder: encoder)), info: info)
                .write(to: o.output + "/model.safetensors")
        }
        let k = trainer.dictionary.kernel
        try inContext("writing atoms.png") {
            try AtomGrid(atomHeight: k, atomWidth: k, scale: max(1, 48 / k))
                .writePNG(trainer.dictionary.weights.reshaped([trainer.dictionary.atoms, k * k]), to: o.output + "/atoms.png")
        }
    }
}

/// Writes a run's curve.png.
func writeCurve(_ plot: LinePlot, in folder: String) throws {
    try inContext("writing curve.png") { try plot.writePNG(to: folder + "/curve.png") }
}
