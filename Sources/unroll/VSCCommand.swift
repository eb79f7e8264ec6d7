import ArgumentParser
import Foundation
import Unroll
import UnrollCore
import UnrollIO

/// `unroll vsc train|eval`: variational sparse coding with learned thresholding (Fallah & Rozell 2022)
/// with a linear generator on whitened natural-image patches.
struct VSC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vsc",
        abstract: "Variational sparse coding: train an encoder and a dictionary on whitened image patches, evaluate them.",
        discussion: """
        Families: gaussian, laplacian, thresholded-gaussian, thresholded-laplacian (the method), spike-and-slab; \
        thresholded families take --threshold fixed (λ, default 0.52 Gauss / 0.25 Laplace) or gamma (λ learned per \
        datum and latent, Gamma prior with mean --lambda).

        `vsc train` is the older spelling of `unroll train --model vsc` (the same model, byte for byte; \
        there --family is --posterior, --threshold gamma is --learn-threshold, and the output is a folder \
        with a checkpoint, a log and figures).

        Example:
          unroll train --model vsc --data IMAGE_FOLDER --posterior thresholded-laplacian --epochs 10 --output run
          unroll vsc eval --model run/model.safetensors --images IMAGE_FOLDER
        """,
        subcommands: [VSCTrain.self, VSCEval.self])
}

enum FamilyChoice: String, CaseIterable, ExpressibleByArgument {
    case gaussian, laplacian
    case thresholdedGaussian = "thresholded-gaussian"
    case thresholdedLaplacian = "thresholded-laplacian"
    case spikeAndSlab = "spike-and-slab"

    var family: VariationalFamily {
        switch self {
        case .gaussian: return .gaussian
        case .laplacian: return .laplacian
        case .thresholdedGaussian: return .thresholdedGaussian
        case .thresholdedLaplacian: return .thresholdedLaplacian
        case .spikeAndSlab: return .spikeAndSlab
        }
    }
}

enum ThresholdKindChoice: String, CaseIterable, ExpressibleByArgument { case fixed, gamma }

/// Patch data options shared by train and eval.
struct PatchOptions: ParsableArguments {
    @Option(help: "Folder of PNG images to cut patches from (default: images/train of the shared data).")
    var images: String?
    @Option(help: "Training patches.") var patches: Int = 20_000
    @Option(help: "Validation patches.") var validation: Int = 4_000
    @Option(help: "Patch side (pixels); the dictionary has side² atoms.") var side: Int = 16
    @Option(help: "Seed of the patch positions, the initialisation and every sample.") var seed: UInt64 = 0

    func validate() throws {
        guard patches >= 1, validation >= 1 else { throw ValidationError("--patches and --validation must be ≥ 1") }
        guard side >= 2 else { throw ValidationError("--side must be ≥ 2, got \(side)") }
    }

    func load() throws -> WhitenedPatches {
        let folder = images ?? SharedData.folder + "/images/train"
        let loaded = try ImageFolder.load(folder, option: "--images").map(\.image)
        var rng = Random(seed: seed)
        return try inContext("--images \(folder)") {
            try WhitenedPatches(images: loaded, side: side, train: patches, validation: validation, rng: &rng)
        }
    }
}

struct VSCTrain: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train",
        abstract: "Train a variational sparse-coding encoder and a linear dictionary on whitened patches.")

    @OptionGroup var data: PatchOptions
    @Option(help: "Variational family: \(FamilyChoice.allCases.map(\.rawValue).joined(separator: ", ")).")
    var family: FamilyChoice = .thresholdedLaplacian
    @Option(help: "Threshold of thresholded families: fixed or gamma (learned).") var threshold: ThresholdKindChoice = .fixed
    @Option(help: "Fixed λ, or the Gamma prior's mean (default 0.52 Gauss, 0.25 Laplace).") var lambda: Float?
    @Option(help: "Samples J per datum.") var samples: Int = 20
    @Option(help: "Aggregation of the J samples: max (max-ELBO), average or importance-weighted.")
    var aggregation: String = "max"
    @Option(help: "Epochs.") var epochs: Int = 10
    @Option(name: [.customLong("batch"), .customLong("batch-size")], help: "Examples per step (default 100 linear, 512 conv; --batch-size is the old spelling).")
    var batchSize: Int?
    @Option(help: "Encoder hidden widths, comma-separated.") var hidden: String = "512,1024,512,256"
    @Option(name: [.customLong("lr"), .customLong("learning-rate")], help: "Peak learning rate of the one-cycle schedule (default: linear 0.01, SGD with Nesterov momentum 0.9 on the encoder; conv 3e-4, Adam on every weight; --learning-rate is the old spelling).")
    var learningRate: Float?
    @Option(help: "KL weight.") var klWeight: Float = 0.01
    @Option(help: "Output model (.safetensors), rewritten atomically after every epoch.") var output: String = "vsc.safetensors"
    @Option(help: "Continue from this model file (same settings; the run continues bit for bit).") var resume: String?
    @Option(help: "Write the learned atoms as a PNG grid.") var atoms: String?
    @OptionGroup var threading: ThreadOptions
    @Flag(help: "No progress lines.") var quiet = false
    @Option(help: "Generator: linear (dictionary on whitened patches) or conv (the DNN of vsc §5 on Fashion-MNIST).")
    var generator: GeneratorChoice = .linear
    @OptionGroup var fashion: FashionOptions

    func validate() throws {
        guard samples >= 1 else { throw ValidationError("--samples must be ≥ 1, got \(samples)") }
        guard epochs >= 1, (batchSize ?? 1) >= 1 else { throw ValidationError("--epochs and --batch must be ≥ 1") }
        guard SampleAggregation(rawValue: aggregation) != nil else {
            throw ValidationError("--aggregation must be one of \(SampleAggregation.allCases.map(\.rawValue).joined(separator: ", ")); got '\(aggregation)'")
        }
        _ = try parseIntList(hidden, "--hidden", minimum: 1)
    }

    /// The settings in the words of `unroll train --model vsc`.
    var settings: VSCRunSettings {
        get throws {
            VSCRunSettings(family: family.family, learnThreshold: threshold == .gamma, lambda: lambda, samples: samples,
                           aggregation: SampleAggregation(rawValue: aggregation)!, hidden: try parseIntList(hidden, "--hidden", minimum: 1)!,
                           klWeight: klWeight, epochs: epochs, batch: batchSize, learningRate: learningRate, seed: data.seed)
        }
    }

    func config() throws -> LinearGeneratorConfig { try settings.linear(side: data.side, patches: data.patches, latents: nil) }

    func run() throws {
        if generator == .conv { return try VSCFashion.train(self) }
        try threading.run { try execute() }
    }

    private func execute() throws {
        let lock = try inContext("--output") { try RunLock(model: output) }
        defer { withExtendedLifetime(lock) {} }
        do {
            let patches = try data.load()
            let config = try config()
            var trainer = try LinearGeneratorTrainer(data: patches.train, config: config)
            if let resume {
                let saved = try VSCModelFile.state(LinearGeneratorModel.self, resume, option: "--resume")
                try inContext("--resume \(resume)") { try trainer.restore(saved) }
            }
            let log = quiet ? nil : { (line: String) in FileHandle.standardError.write(Data((line + "\n").utf8)) }
            log?("vsc train: \(config.variational.label), \(patches.train.rows) patches \(data.side)×\(data.side), J \(samples), \(epochs) epochs")
            let bar = ProgressBar(total: epochs * (patches.train.rows / config.batchSize), label: "vsc", enabled: !quiet && isatty(STDERR_FILENO) != 0)
            let start = ContinuousClock.now
            while trainer.epoch < epochs {
                var loss = 0.0, nonZero = 0.0, count = 0
                try trainer.train(epochs: 1) { r in
                    loss += r.loss
                    nonZero += r.nonZero
                    count += 1
                    bar.update(r.step, detail: String(format: "loss %.4f", r.loss))
                }
                try VSCModelFile.write(trainer, to: output)
                bar.finish()
                log?(String(format: "epoch %d/%d: loss %.4f, non-zero %.1f%%, %.0f s", trainer.epoch, epochs,
                            loss / Double(max(count, 1)), 100 * nonZero / Double(max(count, 1)), secondsSince(start)))
            }
            try VSCEval.report(model: trainer.model, step: trainer.step, patches: patches, atoms: atoms)
            print("wrote \(output)")
        } catch let e as UnrollError {
            throw CLIError(e.description)
        }
    }
}

struct VSCEval: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "eval",
        abstract: "Evaluate a trained model on validation patches beside FISTA on its dictionary.")

    @OptionGroup var data: PatchOptions
    @Option(help: "Model written by `unroll vsc train`.") var model: String
    @Option(help: "Write the learned atoms as a PNG grid.") var atoms: String?
    @Option(help: "Forward passes per gradient-SNR estimate on one validation batch of 100 (0 = skip; the reference: 1000).")
    var snrPasses: Int = 0
    @OptionGroup var threading: ThreadOptions
    /// Conv models (`vsc train --generator conv`) are evaluated on Fashion-MNIST's test images.
    @OptionGroup var fashion: FashionOptions

    func run() throws {
        if VSCModelFile.isConv(model) { return try VSCFashion.eval(model: model, fashion: fashion, threading: threading) }
        try threading.run { try execute() }
    }

    private func execute() throws {
        do {
            let (trained, step) = try VSCModelFile.read(LinearGeneratorModel.self, model)
            let patches = try data.load()
            guard patches.validation.cols == trained.pixels else {
                throw CLIError("--side \(data.side) gives \(patches.validation.cols)-pixel patches; the model's atoms have \(trained.pixels) pixels")
            }
            guard snrPasses == 0 || snrPasses >= 2 else { throw CLIError("--snr-passes must be 0 or ≥ 2, got \(snrPasses)") }
            try Self.report(model: trained, step: step, patches: patches, atoms: atoms, snrPasses: snrPasses)
        } catch let e as UnrollError {
            throw CLIError(e.description)
        }
    }

    /// Prints the validation measures of the model and of FISTA on its dictionary (λ = 20).
    static func report(model trained: LinearGeneratorModel, step: Int, patches: WhitenedPatches, atoms: String?, snrPasses: Int = 0) throws {
        var model = trained
        let config = model.config
        var rng = Random(seed: config.seed &+ 1)
        let ours = model.evaluate(patches.validation, samples: config.variational.samples,
                                  klWeight: config.klWeight,
                                  temperature: config.temperature(step: step), rng: &rng).report
        let fista = try SparseCodeReport.fista(signals: patches.validation, dictionary: model.dictionary, lambda: 20).report
        print("validation (\(patches.validation.rows) patches)     \(ours.method.padding(toLength: 22, withPad: " ", startingAt: 0))  FISTA (same Φ)")
        func line(_ name: String, _ a: Double?, _ b: Double?) {
            let f = { (v: Double?) in v.map { String(format: "%12.4g", $0) } ?? String(repeating: " ", count: 11) + "—" }
            print(name.padding(toLength: 36, withPad: " ", startingAt: 0) + f(a) + "            " + f(b))
        }
        line("reconstruction MSE", ours.reconstructionMSE, fista.reconstructionMSE)
        line("non-zero %", 100 * ours.nonZero, 100 * fista.nonZero)
        line("objective ½‖x−zΦ‖² + 20‖z‖₁", ours.objective, fista.objective)
        line("multi-information (bits)", ours.multiInformation, fista.multiInformation)
        line("posterior collapse %", ours.posteriorCollapse.map { 100 * $0 }, nil)
        line("coefficient collapse %", 100 * ours.coefficientCollapse, 100 * fista.coefficientCollapse)
        if snrPasses > 0 {
            let batch = patches.validation.rows(0..<min(100, patches.validation.rows))
            for j in Set([1, config.variational.samples]).sorted() {
                var snrRng = Random(seed: config.seed &+ 2)
                let snr = model.gradientSNR(batch, samples: j, passes: snrPasses, klWeight: config.klWeight,
                                            aggregation: config.aggregation,
                                            temperature: config.temperature(step: step), rng: &snrRng)
                print("gradient SNR, J = \(j), \(snrPasses) passes: encoder \(String(format: "%.4g", snr.encoder)), dictionary \(String(format: "%.4g", snr.dictionary))")
            }
        }
        if let atoms {
            try PNG.write(AtomGrid(atomHeight: patches.side, atomWidth: patches.side, scale: 2).render(model.dictionary), to: atoms)
            print("wrote \(atoms)")
        }
    }
}
