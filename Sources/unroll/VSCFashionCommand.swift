import ArgumentParser
import Foundation
import Unroll
import UnrollCore
import UnrollIO

/// `unroll vsc train|eval --generator conv`: VSC with the DNN generator of vsc §5 on Fashion-MNIST.
/// `VSCTrain` and `VSCEval` hand conv runs to the functions here.

enum GeneratorChoice: String, CaseIterable, ExpressibleByArgument { case linear, conv }

/// Fashion-MNIST options shared by conv train and eval.
struct FashionOptions: ParsableArguments {
    @Option(help: "conv: folder with Fashion-MNIST's IDX files (default: fashion-mnist of the shared data).")
    var data: String?
    @Option(help: "conv: training images (the first n of the 60 000; default all).") var trainSize: Int?
    @Option(help: "conv: test images (the first n of t10k; default all 10 000).") var testSize: Int?
    @Option(help: "conv: latents z.") var latents: Int = 64
    @Option(help: "conv: write test images beside their reconstructions as a PNG.") var reconstructions: String?

    func validate() throws {
        if let n = trainSize, n < 2 { throw ValidationError("--train-size must be ≥ 2, got \(n)") }
        if let n = testSize, n < 1 { throw ValidationError("--test-size must be ≥ 1, got \(n)") }
        guard latents >= 1 else { throw ValidationError("--latents must be ≥ 1, got \(latents)") }
    }

    var folder: String { data ?? SharedData.folder + "/fashion-mnist" }

    /// Train and test images `[n, 784]` in [0, 1], cut to the requested sizes.
    func load() throws -> (train: Tensor, test: Tensor) { try Self.load(folder: folder, trainSize: trainSize, testSize: testSize) }

    static func load(folder: String, trainSize: Int?, testSize: Int?) throws -> (train: Tensor, test: Tensor) {
        let images = try ExplainData.fashion(folder)
        func cut(_ x: Tensor, _ n: Int?, _ option: String) throws -> Tensor {
            guard let n else { return x }
            guard n <= x.rows else { throw CLIError("\(option) \(n): \(folder) has only \(x.rows) images") }
            return x.rows(0..<n)
        }
        return (try cut(images.train, trainSize, "--train-size"), try cut(images.test, testSize, "--test-size"))
    }
}

enum VSCFashion {
    /// `vsc train --generator conv`.
    static func train(_ o: VSCTrain) throws { try o.threading.run { try trainConv(o) } }

    private static func trainConv(_ o: VSCTrain) throws {
        let lock = try inContext("--output") { try RunLock(model: o.output) }
        defer { withExtendedLifetime(lock) {} }
        do {
            let images = try o.fashion.load()
            let c = try o.settings.network(latents: o.fashion.latents, images: images.train.rows)
            var trainer = try NetworkGeneratorTrainer(data: images.train, config: c)
            if let resume = o.resume {
                let saved = try VSCModelFile.state(NetworkGeneratorModel.self, resume, option: "--resume")
                try inContext("--resume \(resume)") { try trainer.restore(saved) }
            }
            let log = o.quiet ? nil : { (line: String) in FileHandle.standardError.write(Data((line + "\n").utf8)) }
            log?("vsc train: \(c.variational.label), conv generator, z \(c.latents), \(images.train.rows) Fashion-MNIST images, J \(o.samples), batch \(c.batchSize), \(o.epochs) epochs")
            let bar = ProgressBar(total: o.epochs * (images.train.rows / c.batchSize), label: "vsc", enabled: !o.quiet && isatty(STDERR_FILENO) != 0)
            let start = ContinuousClock.now
            while trainer.epoch < o.epochs {
                var loss = 0.0, mse = 0.0, nonZero = 0.0, count = 0
                try trainer.train(epochs: 1) { r in
                    loss += r.loss
                    mse += r.reconstruction
                    nonZero += r.nonZero
                    count += 1
                    bar.update(r.step, detail: String(format: "loss %.4f", r.loss))
                }
                try VSCModelFile.write(trainer, to: o.output)
                bar.finish()
                let k = Double(max(count, 1))
                log?(String(format: "epoch %d/%d: loss %.4f, train MSE %.4f, non-zero %.1f%%, %.0f s", trainer.epoch, o.epochs,
                            loss / k, mse / k, 100 * nonZero / k, secondsSince(start)))
            }
            try report(trainer.model, step: trainer.step, test: images.test, reconstructions: o.fashion.reconstructions)
            print("wrote \(o.output)")
        } catch let e as UnrollError {
            throw CLIError(e.description)
        }
    }

    /// `vsc eval --model <conv model>`.
    static func eval(model: String, fashion: FashionOptions, threading: ThreadOptions) throws {
        try threading.run { try evalConv(model: model, fashion: fashion) }
    }

    private static func evalConv(model: String, fashion: FashionOptions) throws {
        do {
            let (trained, step) = try VSCModelFile.read(NetworkGeneratorModel.self, model)
            try report(trained, step: step, test: try fashion.load().test, reconstructions: fashion.reconstructions)
        } catch let e as UnrollError {
            throw CLIError(e.description)
        }
    }

    /// Prints test MSE per pixel (J draws, max-ELBO as the reference evaluates) and % non-zero.
    static func report(_ trained: NetworkGeneratorModel, step: Int, test: Tensor, reconstructions: String?) throws {
        var model = trained
        let config = model.config
        var rng = Random(seed: config.seed &+ 1)
        let r = model.evaluate(test, samples: config.variational.samples, klWeight: config.klWeight,
                               aggregation: config.aggregation,
                               temperature: config.temperature(step: step), keep: 16, rng: &rng)
        print("test (\(test.rows) images, J \(config.variational.samples), \(config.aggregation.rawValue)): \(config.variational.label), z \(model.latents)")
        print(String(format: "test MSE per pixel            %.5f   (×125 = %.3f, the reference's scale)", r.mse, 125 * r.mse))
        print(String(format: "non-zero %%                    %.2f", 100 * r.nonZero))
        if let reconstructions {
            try PNG.write(panel(test: test, report: r, title: "\(config.variational.label), z \(model.latents)"), to: reconstructions)
            print("wrote \(reconstructions)")
        }
    }

    /// Test images (top of each pair) and their reconstructions.
    static func panel(test: Tensor, report r: ImageReconstructionReport, title: String) -> Raster {
        var items: [ImagePanel.Item] = []
        for i in 0..<r.reconstructions.rows {
            items.append(.init(test.rows(i..<(i + 1)).reshaped([28, 28]), caption: "test"))
            items.append(.init(r.reconstructions.rows(i..<(i + 1)).reshaped([28, 28]), caption: "recon"))
        }
        return ImagePanel(scale: 2, columns: 8, gap: 6, title: title).render(items)
    }
}
