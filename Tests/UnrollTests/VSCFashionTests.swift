import Foundation
import Testing
import Unroll
import UnrollCore
import UnrollIO

/// VSC with the DNN generator of vsc §5: the decoder path's gradients against finite differences,
/// the 28×28 shapes, a checkpoint's bit-exact continuation, and (with the shared data) training on a
/// Fashion-MNIST subset, the CLI and the tiny reproduction.
@Suite struct VSCFashionTests {
    /// Narrow networks (2 and 3 channels) so that finite differences stay cheap.
    static func smallConfig(_ v: VariationalConfig, latents: Int = 3, samples: Int = 2,
                            aggregation: SampleAggregation = .average) -> NetworkGeneratorConfig {
        var c = NetworkGeneratorConfig(variational: v)
        c.variational.samples = samples
        c.latents = latents
        c.channels = [2, 3]
        c.batchSize = 3
        c.epochs = 2
        c.aggregation = aggregation
        return c
    }

    /// The loss (1/B) Σ w L with the same draws each call (same seed), and the model's gradients.
    static func lossAndGradients(_ model: NetworkGeneratorModel, _ x: Tensor, _ c: NetworkGeneratorConfig)
        -> (loss: Double, gradients: [Tensor]) {
        var m = model
        var rng = Random(seed: 17)
        m.zeroGradients()
        let r = m.accumulateGradients(x, samples: c.variational.samples, klWeight: c.klWeight,
                                      aggregation: c.aggregation, temperature: 1, rng: &rng)
        return (r.loss, m.gradients)
    }

    @Test func networksMap28x28ToOneByOneFeaturesAndBack() {
        var rng = Random(seed: 1)
        var encoder = FashionNetworks.encoder(channels: [4, 6], rng: &rng)
        var decoder = FashionNetworks.decoder(latents: 5, channels: [4, 6], rng: &rng)
        let h = encoder.forward(Tensor.uniform([2, 1, 28, 28], rng: &rng), training: true)
        #expect(h.shape == [2, 6])
        let y = decoder.forward(Tensor.normal([3, 5], rng: &rng), training: true)
        #expect(y.shape == [3, 1, 28, 28])
        #expect(y.data.allSatisfy { $0 > 0 && $0 < 1 })  // sigmoid output
    }

    /// Central differences of the loss along random directions through every whole tensor in
    /// `indices`, against the analytic gradient (decoder weights get theirs through the decoder's
    /// backward; encoder weights through the decoder's input gradient, the codes and the heads).
    static func checkFiniteDifferences(_ c: NetworkGeneratorConfig, tensors: (NetworkGeneratorModel) -> Range<Int>,
                                       label: String) {
        var rng = Random(seed: 3)
        let model = NetworkGeneratorModel(config: c, rng: &rng)
        let x = Tensor.uniform([3, 784], rng: &rng)
        let base = lossAndGradients(model, x, c)
        for t in tensors(model) {
            let pairs = directionalDifferences(at: model.parameters[t], gradient: base.gradients[t], h: 5e-4, seed: UInt64(t)) { theta in
                var m = model
                var ps = m.parameters
                ps[t] = theta
                m.parameters = ps
                return lossAndGradients(m, x, c).loss
            }
            for (fd, analytic) in pairs {
                #expect(abs(fd - analytic) <= 1e-4 + 0.02 * abs(analytic),
                        "\(label) tensor \(t) \(model.parameters[t].shape): fd \(fd) vs analytic \(analytic), loss \(base.loss)")
            }
        }
    }

    /// The decoder path: every decoder tensor, with a thresholded family and max-ELBO selection (the
    /// codes do not depend on decoder weights, so the loss is smooth in them).
    @Test func decoderGradientsMatchFiniteDifferences() {
        let c = Self.smallConfig(VariationalConfig(family: .thresholdedGaussian, threshold: .fixed(0.3)), aggregation: .max)
        Self.checkFiniteDifferences(c, tensors: { m in
            let first = m.encoder.parameters.count + m.heads.reduce(0) { $0 + $1.parameters.count }
            return first..<(first + m.decoder.parameters.count)
        }, label: "decoder")
    }

    /// Through the decoder into the codes, heads and encoder, for the families whose draw is smooth
    /// in the heads (the thresholded families' encoder gradient is straight-through, see `VSCLinearTests`).
    @Test(arguments: [VariationalConfig(family: .gaussian), VariationalConfig(family: .laplacian)])
    func encoderGradientsThroughTheDecoderMatchFiniteDifferences(_ v: VariationalConfig) {
        let c = Self.smallConfig(v)
        Self.checkFiniteDifferences(c, tensors: { m in 0..<(m.encoder.parameters.count + m.heads.reduce(0) { $0 + $1.parameters.count }) },
                                    label: "encoder")
    }

    @Test func aCheckpointContinuesBitForBit() throws {
        var rng = Random(seed: 9)
        let x = Tensor.uniform([6, 784], rng: &rng)
        for v in [VariationalConfig(family: .thresholdedLaplacian, threshold: .fixed(0.23)), VariationalConfig(family: .spikeAndSlab)] {
            var trainer = try NetworkGeneratorTrainer(data: x, config: Self.smallConfig(v))
            try trainer.train(epochs: 1)
            let saved = trainer.checkpoint()
            try trainer.train(epochs: 1)
            var resumed = try NetworkGeneratorTrainer(data: x, config: Self.smallConfig(v))
            try resumed.restore(saved)
            try resumed.train(epochs: 1)
            #expect(resumed.model.parameters == trainer.model.parameters)
            #expect(resumed.model.encoder.runningStatistics == trainer.model.encoder.runningStatistics)
            #expect(resumed.step == trainer.step && resumed.epoch == 2 && resumed.optimizers == trainer.optimizers)
            // The model alone, as `vsc eval` reads it, is the trained one.
            #expect(try NetworkGeneratorModel(checkpoint: trainer.checkpoint()).parameters == trainer.model.parameters)
            let files = [trainer, resumed].map { ModelFile(model: .vsc(VSCModel(generator: .conv, state: $0.checkpoint()))).contents() }
            #expect(files[0].metadata == files[1].metadata && files[0].tensors.map(\.name) == files[1].tensors.map(\.name)
                    && zip(files[0].tensors, files[1].tensors).allSatisfy { $0.tensor == $1.tensor })
            var other = try NetworkGeneratorTrainer(data: x, config: Self.smallConfig(VariationalConfig(family: .gaussian)))
            #expect(throws: UnrollError.self) { try other.restore(saved) }
            // A damaged checkpoint is refused, naming what is wrong.
            for (key, value) in [("vsc.aggregation", "median"), ("vsc.family", "cauchy"), ("trainer.examples", "7"), ("trainer.rng", "x")] {
                var bad = saved
                bad.metadata[key] = value
                // (A checkpoint alone sizes the trainer from its own trainer.examples; restoring checks it against the data.)
                let error = #expect(throws: UnrollError.self) {
                    if key == "trainer.examples" || key == "trainer.rng" { try trainer.restore(bad) } else { _ = try NetworkGeneratorModel(checkpoint: bad) }
                }
                #expect(error.map { "\($0)".contains(key) } == true, "\(key): \(String(describing: error))")
            }
        }
        // Bad settings and data are refused.
        var c = Self.smallConfig(VariationalConfig(family: .gaussian))
        c.channels = [2]
        #expect(throws: UnrollError.self) { try NetworkGeneratorTrainer(data: Tensor(zeros: [6, 784]), config: c) }
        let gaussian = Self.smallConfig(VariationalConfig(family: .gaussian))
        #expect(throws: UnrollError.self) { try NetworkGeneratorTrainer(data: Tensor(zeros: [6, 783]), config: gaussian) }
        #expect(throws: UnrollError.self) { try NetworkGeneratorTrainer(data: Tensor(zeros: [2, 784]), config: gaussian) }
        var nan = Tensor(zeros: [6, 784])
        nan.data[5] = .nan
        #expect(throws: UnrollError.self) { try NetworkGeneratorTrainer(data: nan, config: gaussian) }
    }

    static let fashion = sharedData + "/fashion-mnist"
    static var hasFashion: Bool { FileManager.default.fileExists(atPath: fashion + "/train-images-idx3-ubyte.gz") }

    static func loadFashion(train: Int, test: Int) throws -> (train: Tensor, test: Tensor) {
        func images(_ file: String, _ n: Int) throws -> Tensor {
            let a = try IDX.read(fashion + "/" + file)
            return a.tensor.reshaped([a.shape[0], 784]).rows(0..<n).map { $0 / 255 }
        }
        return (try images("train-images-idx3-ubyte.gz", train), try images("t10k-images-idx3-ubyte.gz", test))
    }

    /// A few hundred Adam steps of narrow networks on 1 000 Fashion-MNIST images lower the test MSE
    /// from the untrained decoder's (≈ 0.17, a grey 0.5 image) to well below the mean image's (≈ 0.09).
    @Test(.enabled(if: hasFashion, "needs Fashion-MNIST in $UNROLL_DATA/fashion-mnist (default ../shared/data)"))
    func trainingOnAFashionSubsetLowersTheTestMSE() throws {
        let data = try Self.loadFashion(train: 1000, test: 200)
        var c = NetworkGeneratorConfig(variational: VariationalConfig(family: .thresholdedGaussian, threshold: .fixed(0.52), samples: 2))
        c.latents = 16
        c.channels = [8, 16]
        c.batchSize = 25
        c.epochs = 6
        c.learningRate = 3e-3
        var trainer = try NetworkGeneratorTrainer(data: data.train, config: c)
        var untrained = trainer.model
        var rng = Random(seed: 1)
        let before = untrained.evaluate(data.test, samples: 4, klWeight: c.klWeight, temperature: 1, rng: &rng)
        try trainer.train(epochs: c.epochs)
        var model = trainer.model
        rng = Random(seed: 1)
        let after = model.evaluate(data.test, samples: 4, klWeight: c.klWeight, temperature: 1, keep: 3, rng: &rng)
        // The best constant image (the training mean) as the bar to clear.
        var meanImage = [Double](repeating: 0, count: 784)
        for i in 0..<data.train.rows { for k in 0..<784 { meanImage[k] += Double(data.train[i, k]) / Double(data.train.rows) } }
        var meanMSE = 0.0
        for i in 0..<data.test.rows { for k in 0..<784 { meanMSE += pow(Double(data.test[i, k]) - meanImage[k], 2) } }
        meanMSE /= Double(data.test.count)
        #expect(before.mse > 0.12, "untrained MSE \(before.mse)")
        #expect(after.mse < 0.6 * meanMSE, "trained MSE \(after.mse), mean image \(meanMSE), untrained \(before.mse)")
        #expect(after.nonZero > 0 && after.nonZero < 1)
        #expect(after.reconstructions.shape == [3, 784])
    }

    /// A fake Fashion-MNIST folder (random images) at `<dir>/shared/data/fashion-mnist`, found by the CLI
    /// as `../shared/data` from `<dir>/work` (unless $UNROLL_DATA points elsewhere).
    static func fakeFashion(in dir: URL, train: Int, test: Int) throws -> URL {
        let folder = dir.appendingPathComponent("shared/data/fashion-mnist")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var rng = Random(seed: 8)
        for (name, n) in [("train", train), ("t10k", test)] {
            let pixels = (0..<(n * 784)).map { _ in UInt8(rng.int(below: 256)) }
            try Data(IDX.encode(uint8: pixels, shape: [n, 28, 28]))
                .write(to: folder.appendingPathComponent("\(name)-images-idx3-ubyte.gz"))
            try Data(IDX.encode(uint8: (0..<n).map { UInt8($0 % 10) }, shape: [n]))
                .write(to: folder.appendingPathComponent("\(name)-labels-idx1-ubyte.gz"))
        }
        let work = dir.appendingPathComponent("work")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        return folder
    }

    /// `vsc train --generator conv` writes a model that `vsc eval` reads and `--resume` continues;
    /// `reproduce vsc-fmnist --scale tiny --json` prints every family at every z beside the paper.
    @Test(.needsCLI) func cliTrainEvalResumeAndTinyReproduction() throws {
        let dir = try CLITests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let folder = try Self.fakeFashion(in: dir, train: 128, test: 64)
        let work = dir.appendingPathComponent("work")
        let train = ["vsc", "train", "--generator", "conv", "--data", folder.path, "--train-size", "64", "--test-size", "16",
                     "--latents", "8", "--batch-size", "32", "--samples", "2", "--output", "m.safetensors", "--quiet"]
        let first = try CLITests.ok(train + ["--epochs", "1", "--reconstructions", "r.png"], in: work)
        #expect(first.stdout.contains("test MSE per pixel") && first.stdout.contains("non-zero"), "\(first.stdout)")
        #expect(FileManager.default.fileExists(atPath: work.appendingPathComponent("r.png").path))
        // `unroll train --model vsc` is the same training into a folder, which info, encode and eval read.
        try CLITests.ok(["train", "--model", "vsc", "--generator", "conv", "--data", folder.path, "--train-size", "64", "--test-size", "16",
                         "--atoms", "8", "--batch", "32", "--samples", "2", "--epochs", "1", "--output", "run"], in: work)
        let model = "run/model.safetensors"
        #expect(try Data(contentsOf: work.appendingPathComponent(model)) == Data(contentsOf: work.appendingPathComponent("m.safetensors")))
        #expect(try CLITests.ok(["info", model], in: work).stdout.contains("model: vsc-conv,"))
        var rng = Random(seed: 8)
        try Npy.write(Tensor.uniform([5, 784], rng: &rng), to: work.appendingPathComponent("x.npy").path)
        try CLITests.ok(["encode", "--model", model, "--data", "x.npy", "--output", "z.npy"], in: work)
        #expect(try Npy.read(work.appendingPathComponent("z.npy").path).tensor.shape == [5, 8])
        let evaluated = try CLITests.ok(["eval", "--model", model, "--data", "x.npy", "--json"], in: work)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(evaluated.stdout.utf8)) as? [String: Any])
        #expect(report["kind"] as? String == "vsc-conv" && (report["relative_error"] as? Double).map { $0 > 0 && $0.isFinite } == true)
        let resumed = try CLITests.ok(train + ["--epochs", "2", "--resume", "m.safetensors"], in: work)
        #expect(resumed.stdout.contains("wrote m.safetensors"))
        let eval = try CLITests.ok(["vsc", "eval", "--model", "m.safetensors", "--data", folder.path, "--test-size", "16"], in: work)
        #expect(eval.stdout.contains("test MSE per pixel"), "\(eval.stdout)")
        let bad = try CLITests.run(train + ["--epochs", "3", "--family", "gaussian", "--resume", "m.safetensors"], in: work)
        #expect(bad.status != 0 && bad.stderr.contains("vsc.family"), "\(bad.stderr)")
        let big = try CLITests.run(train + ["--epochs", "1", "--train-size", "500"], in: work)
        #expect(big.status != 0 && big.stderr.contains("--train-size"), "\(big.stderr)")

        let r = try CLITests.ok(["reproduce", "vsc-fmnist", "--scale", "tiny", "--json", "--quiet", "--output", "out"], in: work)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let rows = try #require(json["rows"] as? [[String: Any]])
        #expect(rows.count == 5 * 3 * 3)  // families × z × (MSE ×125, per pixel, non-zero %)
        let paper = rows.first { $0["method"] as? String == "Thresh Gaussian" && $0["z"] as? Int == 64 && $0["metric"] as? String == "MSE ×125" }
        #expect(paper?["paper"] as? Double == 3.027)
        #expect(FileManager.default.fileExists(atPath: work.appendingPathComponent("out/reconstructions_z64.png").path))
    }
}
