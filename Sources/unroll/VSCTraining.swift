import ArgumentParser
import Foundation
import Unroll
import UnrollCore
import UnrollIO

/// The settings of a VSC run, whichever command spelled them (`unroll train --model vsc`, or the
/// older `unroll vsc train`), and the two generators' configurations built from them.
struct VSCRunSettings {
    var family: VariationalFamily
    /// λ learned per datum and latent under a Gamma prior (mean `lambda`), else fixed at `lambda`.
    var learnThreshold: Bool
    var lambda: Float?
    var samples: Int
    var aggregation: SampleAggregation
    var hidden: [Int]
    var klWeight: Float
    var epochs: Int
    var batch: Int?
    var learningRate: Float?
    var seed: UInt64

    func validate() throws {
        if learnThreshold && !family.isThresholded {
            throw CLIError("a learned threshold (--learn-threshold, or --threshold gamma) applies to thresholded families only")
        }
    }

    private func thresholdKind(default d: ThresholdKind?) throws -> ThresholdKind? {
        try validate()
        guard learnThreshold else { return lambda.map { .fixed($0) } ?? d }
        return .gamma(priorMean: lambda ?? VariationalConfig.defaultThreshold(for: family).lambda)
    }

    /// The linear generator on `patches` training patches of `side`×`side` (one atom per pixel unless `latents`).
    func linear(side: Int, patches: Int, latents: Int?) throws -> LinearGeneratorConfig {
        var c = LinearGeneratorConfig(variational: VariationalConfig(family: family, threshold: try thresholdKind(default: nil), samples: samples))
        c.hidden = hidden
        c.latents = latents ?? side * side
        c.batchSize = batch ?? 100
        c.epochs = epochs
        c.learningRate = learningRate ?? 0.01
        c.klWeight = klWeight
        c.aggregation = aggregation
        c.seed = seed
        try c.validate()
        return c.compressingSchedules(steps: epochs * (patches / c.batchSize), epochs: epochs)
    }

    /// The network generator of vsc §5 on `images` training images.
    func network(latents: Int, images: Int) throws -> NetworkGeneratorConfig {
        let kind = try thresholdKind(default: NetworkGeneratorConfig.defaultThreshold(for: family))
        var c = NetworkGeneratorConfig(variational: VariationalConfig(family: family, threshold: kind, samples: samples))
        c.latents = latents
        c.batchSize = batch ?? 512
        c.epochs = epochs
        c.learningRate = learningRate ?? 3e-4
        c.klWeight = klWeight
        c.aggregation = aggregation
        c.seed = seed
        try c.validate()
        guard images >= c.batchSize else { throw CLIError("--train-size \(images) is smaller than --batch \(c.batchSize)") }
        return c.compressingSchedules(steps: epochs * (images / c.batchSize))
    }
}

/// The options of `unroll train --model vsc` that other models do not have.
struct VSCTrainOptions: ParsableArguments {
    @Option(help: "vsc: the generator, linear (a dictionary on whitened patches of the --data images) or conv (the network of vsc §5 on the Fashion-MNIST IDX files in --data).")
    var generator: GeneratorChoice = .linear
    @Option(help: "vsc: the posterior family, \(FamilyChoice.allCases.map(\.rawValue).joined(separator: ", ")).")
    var posterior: FamilyChoice = .thresholdedLaplacian
    @Flag(name: .customLong("learn-threshold"), help: "vsc: learn λ per datum and latent (Gamma prior with mean --lambda) instead of fixing it.")
    var learnThreshold = false
    @Option(help: "vsc: samples J per datum.")
    var samples: Int = 20
    @Option(help: "vsc: aggregation of the J samples, max (max-ELBO), average or importance-weighted.")
    var aggregation: String = "max"
    @Option(help: "vsc linear: encoder hidden widths, comma-separated.")
    var hidden: String = "512,1024,512,256"
    @Option(name: .customLong("kl-weight"), parsing: .unconditional, help: "vsc: KL weight.")
    var klWeight: Float = 0.01
    @Option(help: "vsc linear: training patches.")
    var patches: Int = 20_000
    @Option(help: "vsc linear: validation patches.")
    var validation: Int = 4_000
    @Option(help: "vsc linear: patch side (pixels).")
    var side: Int = 16
    @Option(name: .customLong("train-size"), help: "vsc conv: training images (the first n; default all).")
    var trainSize: Int?
    @Option(name: .customLong("test-size"), help: "vsc conv: test images (the first n of t10k; default all).")
    var testSize: Int?

    static let names: Set = ["--generator", "--posterior", "--learn-threshold", "--samples", "--aggregation", "--hidden", "--kl-weight",
                             "--patches", "--validation", "--side", "--train-size", "--test-size"]

    func validate() throws {
        guard samples >= 1 else { throw ValidationError("--samples must be ≥ 1, got \(samples)") }
        guard SampleAggregation(rawValue: aggregation) != nil else {
            throw ValidationError("--aggregation must be one of \(SampleAggregation.allCases.map(\.rawValue).joined(separator: ", ")); got '\(aggregation)'")
        }
        _ = try parseIntList(hidden, "--hidden", minimum: 1)
        guard patches >= 1, validation >= 1 else { throw ValidationError("--patches and --validation must be ≥ 1") }
        guard side >= 2 else { throw ValidationError("--side must be ≥ 2, got \(side)") }
        if let n = trainSize, n < 2 { throw ValidationError("--train-size must be ≥ 2, got \(n)") }
        if let n = testSize, n < 1 { throw ValidationError("--test-size must be ≥ 1, got \(n)") }
    }
}

extension Train {
    /// `--model vsc`: either generator into the folder, through the shared run (checkpoint every
    /// --checkpoint-every steps, --resume, log.csv, curve.png); the report of `vsc eval` at the end.
    func vscTraining() throws {
        let v = vsc, epochCount = epochs ?? 10
        guard epochCount >= 1 else { throw CLIError("--epochs must be ≥ 1, got \(epochCount)") }
        let settings = VSCRunSettings(family: v.posterior.family, learnThreshold: v.learnThreshold, lambda: lambda, samples: v.samples,
                                      aggregation: SampleAggregation(rawValue: v.aggregation)!,
                                      hidden: try parseIntList(v.hidden, "--hidden", minimum: 1)!, klWeight: v.klWeight,
                                      epochs: epochCount, batch: batch.size, learningRate: lr, seed: seed)
        try settings.validate()
        // Under mpirun every rank trains its share of each batch; rank 0 alone reports.
        let job = try Distributed.current(), root = job.isRoot, clock = ContinuousClock.now
        do {
            switch v.generator {
            case .linear:
                var rng = Random(seed: seed)
                let images = try ImageFolder.load(data, option: "--data").map(\.image)
                let patches = try inContext("--data \(data)") {
                    try WhitenedPatches(images: images, side: v.side, train: v.patches, validation: v.validation, rng: &rng)
                }
                var trainer = try LinearGeneratorTrainer(data: patches.train, config: try settings.linear(side: v.side, patches: v.patches, latents: atoms))
                try runVSC(&trainer, epochs: epochCount, label: "vsc linear") { t in
                    try AtomGrid(atomHeight: v.side, atomWidth: v.side, scale: 2).writePNG(t.model.dictionary, to: output + "/atoms.png")
                }
                if root { try VSCEval.report(model: trainer.model, step: trainer.step, patches: patches, atoms: nil) }
            case .conv:
                let images = try FashionOptions.load(folder: data, trainSize: v.trainSize, testSize: v.testSize)
                var trainer = try NetworkGeneratorTrainer(data: images.train, config: try settings.network(latents: atoms ?? 64, images: images.train.rows))
                try runVSC(&trainer, epochs: epochCount, label: "vsc conv") { _ in }
                if root { try VSCFashion.report(trainer.model, step: trainer.step, test: images.test, reconstructions: output + "/reconstructions.png") }
            }
        } catch let e as UnrollError {
            throw CLIError(e.description)
        }
        if root && job.size > 1 { print("trained \(output)/model.safetensors" + job.summary(seconds: secondsSince(clock))) }
    }

    private func runVSC<M: VSCGenerator>(_ trainer: inout Trainer<M, RowBatches>, epochs: Int, label: String,
                                         figures: (Trainer<M, RowBatches>) throws -> Void) throws {
        let run = try TrainingRun(output: output, resume: resume, checkpointEvery: checkpointEvery)
        try run.run(&trainer, steps: epochs * trainer.stream.stepsPerEpoch, label: "train " + label,
                    columns: ["epoch", "loss", "rec", "kl", "non_zero"],
                    fields: { r in [String(r.epoch), CSV.format(r.loss), CSV.format(r.reconstruction), CSV.format(r.kl), CSV.format(r.nonZero)] },
                    detail: { r in String(format: "loss %.4f, non-zero %.1f%%", r.loss, 100 * r.nonZero) },
                    save: { t, history in
                        try VSCModelFile.write(t, to: run.modelPath)
                        try inContext("writing atoms.png") { try figures(t) }
                        try writeCurve(history.plot(title: "unroll train " + label, series: ["loss", "rec", "kl"]), in: output)
                    })
    }
}
