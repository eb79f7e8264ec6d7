import Foundation
import UnrollCore

/// Settings of variational sparse coding with a DNN generator on 28×28 images (Fashion-MNIST, vsc §5):
/// a convolutional encoder with linear heads, a transposed-convolution decoder ending in a sigmoid,
/// per-pixel MSE, the same families / KL / thresholds / sample aggregation as the linear generator,
/// and every weight trained by Adam under the one-cycle schedule.
public struct NetworkGeneratorConfig: Equatable, Sendable {
    public var variational: VariationalConfig
    public var latents: Int = 64
    /// Channel widths (narrow, wide) of the encoder 1→a→a→b→b and decoder b→b→a→a→1: (64, 128) in the paper.
    public var channels: [Int] = [64, 128]
    public var batchSize: Int = 512
    public var epochs: Int = 300
    /// Adam: peak learning rate of the one-cycle schedule, betas and L2 weight decay (PyTorch's).
    public var learningRate: Float = 3e-4
    public var beta1: Float = 0.5
    public var beta2: Float = 0.999
    public var weightDecay: Float = 1e-5
    /// Weight of Σ_latents KL in the per-sample loss mean_px(x − x̂)² + w·KL.
    public var klWeight: Float = 0.01
    public var aggregation: SampleAggregation = .max
    /// Spike-and-slab temperature: ×`temperatureDecay` per step, floored at `temperatureFloor` (0.005 for DNNs).
    public var temperatureDecay: Float = 0.9995
    public var temperatureFloor: Float = 0.005
    public var seed: UInt64 = 0

    /// The DNN scripts run the Laplace / slab warm-up at 1 from the start (vsc §2), so there is none here.
    public static let warmup: Float = 1

    public init(variational: VariationalConfig) { self.variational = variational }

    /// The fixed thresholds of the Fashion-MNIST runs: 10 % prior sparsity, λ = 0.52 (Gauss), 0.23 (Laplace).
    public static func defaultThreshold(for family: VariationalFamily) -> ThresholdKind {
        .fixed(family.isLaplacian ? 0.23 : 0.52)
    }

    public func validate() throws {
        try variational.validate()
        guard latents >= 1, channels.count == 2, channels.allSatisfy({ $0 >= 1 }) else {
            throw UnrollError.invalidArgument("latents must be ≥ 1 and channels two widths ≥ 1, got \(latents) and \(channels)")
        }
        guard batchSize >= 2, epochs >= 1 else {
            throw UnrollError.invalidArgument("batch size must be ≥ 2 (batch norm) and epochs ≥ 1, got \(batchSize) and \(epochs)")
        }
        guard temperatureFloor.isFinite, temperatureFloor > 0, temperatureDecay > 0, temperatureDecay <= 1 else {
            throw UnrollError.invalidArgument("temperature floor must be > 0 and decay in (0, 1], got \(temperatureFloor) and \(temperatureDecay)")
        }
        guard klWeight.isFinite, klWeight >= 0 else { throw UnrollError.invalidArgument("KL weight must be finite and ≥ 0, got \(klWeight)") }
        try Optimizer.adam(learningRate: learningRate, beta1: beta1, beta2: beta2, weightDecay: weightDecay).validate()
    }

    /// The spike-and-slab temperature at `step`.
    public func temperature(step: Int) -> Float {
        max(temperatureFloor, Float(pow(Double(temperatureDecay), Double(step))))
    }

    /// These settings with the temperature schedule of the reference's run (300 epochs of 60 000 / 512,
    /// i.e. 35 100 steps; floored after ~10 600) compressed to the same fraction of a run of `steps`.
    public func compressingSchedules(steps: Int) -> NetworkGeneratorConfig {
        let fraction = Double(steps) / 35_100
        guard fraction < 1 else { return self }
        var c = self
        c.temperatureDecay = Float(pow(0.9995, 1 / max(fraction, 1e-9)))
        return c
    }
}

/// The encoder and decoder of vsc §5 for 28×28 single-channel images, with channel widths (a, b):
///
/// encoder  Conv(1→a, k4 s2 p1) 28→14, Conv(a→a, k4 s2 p1) 14→7, Conv(a→b, k4 s1 p0) 7→4,
///          Conv(b→b, k4 s2 p0) 4→1, each + BatchNorm + ReLU, flattened to b features;
/// decoder  Linear(z→b) + ReLU viewed as b×1×1, ConvT(b→b, k4 s2 p0) 1→4, ConvT(b→a, k4 s1 p0) 4→7,
///          ConvT(a→a, k4 s2 p1) 7→14, each + BatchNorm + ReLU, then ConvT(a→1, k4 s2 p1) 14→28 + Sigmoid.
///
/// The reference names the strides and paddings but not every kernel size; kernel 4 everywhere (as in
/// its CelebA networks) is the choice that gives exactly 1×1 features and 28×28 outputs, the decoder
/// mirroring the encoder. The ReLU after the first Linear follows the CelebA decoder.
public enum FashionNetworks {
    public static let side = 28

    public static func encoder(channels: [Int], rng: inout Random) -> Network {
        let (a, b) = (channels[0], channels[1])
        return Network([
            .conv2d(inChannels: 1, outChannels: a, kernel: 4, stride: 2, padding: 1), .batchNorm(features: a), .relu,
            .conv2d(inChannels: a, outChannels: a, kernel: 4, stride: 2, padding: 1), .batchNorm(features: a), .relu,
            .conv2d(inChannels: a, outChannels: b, kernel: 4, stride: 1, padding: 0), .batchNorm(features: b), .relu,
            .conv2d(inChannels: b, outChannels: b, kernel: 4, stride: 2, padding: 0), .batchNorm(features: b), .relu,
            .flatten,
        ], rng: &rng)
    }

    public static func decoder(latents: Int, channels: [Int], rng: inout Random) -> Network {
        let (a, b) = (channels[0], channels[1])
        return Network([
            .linear(inputs: latents, outputs: b), .reshape([b, 1, 1]), .relu,
            .convTranspose2d(inChannels: b, outChannels: b, kernel: 4, stride: 2, padding: 0), .batchNorm(features: b), .relu,
            .convTranspose2d(inChannels: b, outChannels: a, kernel: 4, stride: 1, padding: 0), .batchNorm(features: a), .relu,
            .convTranspose2d(inChannels: a, outChannels: a, kernel: 4, stride: 2, padding: 1), .batchNorm(features: a), .relu,
            .convTranspose2d(inChannels: a, outChannels: 1, kernel: 4, stride: 2, padding: 1), .sigmoid,
        ], rng: &rng)
    }
}

/// VSC with a decoder network as the generator: the encoder (a conv trunk and one linear head per
/// encoder output, as `LinearGeneratorModel`'s heads) and the decoder. Images are rows `[n, 784]` in [0, 1].
/// Sampling (`drawCodes`), the per-sample losses and the aggregation are the linear generator's.
public struct NetworkGeneratorModel: Sendable {
    public var encoder: Network
    /// Heads in `EncoderOutputs` order (see `LinearGeneratorModel.heads`).
    public var heads: [Network]
    public var decoder: Network

    /// The batch-norm running statistics of the encoder, the heads and the decoder, in that order.
    var runningStatistics: [Tensor] {
        get { ([encoder] + heads + [decoder]).flatMap(\.flatRunningStatistics) }
        set {
            var offset = 0
            func take(_ network: inout Network) {
                let n = network.flatRunningStatistics.count
                network.flatRunningStatistics = Array(newValue[offset..<(offset + n)])
                offset += n
            }
            take(&encoder)
            for h in heads.indices { take(&heads[h]) }
            take(&decoder)
        }
    }
    public let variational: VariationalConfig
    public let latents: Int
    /// The training settings (the loss's weights and schedules read them).
    public let config: NetworkGeneratorConfig
    public static let pixels = FashionNetworks.side * FashionNetworks.side

    /// PyTorch-default initialisation of every layer (encoder, heads, decoder, in that order from `rng`).
    public init(config: NetworkGeneratorConfig, rng: inout Random) {
        encoder = FashionNetworks.encoder(channels: config.channels, rng: &rng)
        heads = EncoderHeads.make(features: config.channels[1], latents: config.latents, variational: config.variational, rng: &rng)
        decoder = FashionNetworks.decoder(latents: config.latents, channels: config.channels, rng: &rng)
        variational = config.variational
        latents = config.latents
        self.config = config
    }

    /// The encoder's outputs for images `[n, 784]`.
    public mutating func encode(_ x: Tensor, training: Bool) -> EncoderOutputs {
        let side = FashionNetworks.side
        let h = encoder.run(x.reshaped([x.rows, 1, side, side]), training: training)
        return EncoderHeads.forward(&heads, h, variational: variational, training: training)
    }

    /// Backpropagates ∂L/∂outputs of the last `encode` into the encoder's and heads' gradients.
    mutating func backwardEncoder(_ g: EncoderOutputs) {
        encoder.accumulateParameterGradients(EncoderHeads.backward(&heads, g, variational: variational))
    }

    /// Decoded images `[n, 784]` of codes `[n, latents]`.
    public mutating func decode(_ z: Tensor, training: Bool) -> Tensor {
        decoder.run(z, training: training).reshaped([z.rows, Self.pixels])
    }

    public mutating func zeroGradients() {
        encoder.zeroGradients()
        for i in heads.indices { heads[i].zeroGradients() }
        decoder.zeroGradients()
    }

    /// Every trainable tensor (encoder, heads, decoder) and the matching gradients.
    public var parameters: [Tensor] {
        get { encoder.parameters + heads.flatMap(\.parameters) + decoder.parameters }
        set {
            var offset = encoder.parameters.count
            encoder.parameters = Array(newValue[0..<offset])
            for i in heads.indices {
                let k = heads[i].parameters.count
                heads[i].parameters = Array(newValue[offset..<(offset + k)])
                offset += k
            }
            decoder.parameters = Array(newValue[offset...])
        }
    }
    public var gradients: [Tensor] { encoder.gradients + heads.flatMap(\.gradients) + decoder.gradients }

    /// Samples `samples` codes per image, decodes them all and scores each by mean_px(x − x̂)² + klWeight·KL.
    public mutating func sample(_ x: Tensor, samples: Int, klWeight: Float, temperature: Float, training: Bool,
                                rng: inout Random)
        -> (outputs: EncoderOutputs, draw: VariationalDraw, decoded: Tensor, losses: [Double]) {
        var config = variational
        config.samples = samples
        let outputs = encode(x, training: training)
        let draw = drawCodes(outputs, config: config, warmup: NetworkGeneratorConfig.warmup, temperature: temperature, rng: &rng)
        let decoded = decode(draw.codes, training: training)
        let losses = SampleLosses.losses(signals: x, decoded: decoded, samples: samples, kl: draw.kl, klWeight: klWeight)
        return (outputs, draw, decoded, losses)
    }

    /// Adds the gradient of loss = (1/B) Σ_bj w_bj L_bj (w from `aggregation`, held fixed) with respect to
    /// every weight (decoder, then through the straight-through codes into heads and encoder).
    /// Returns the loss, the selected samples' mean per-pixel MSE and KL, and the non-zero fraction of all draws.
    public mutating func accumulateGradients(_ x: Tensor, samples: Int, klWeight: Float, aggregation: SampleAggregation,
                                             temperature: Float, rng: inout Random)
        -> (loss: Double, reconstruction: Double, kl: Double, nonZero: Double) {
        let (n, m) = (x.rows, Self.pixels)
        let s = sample(x, samples: samples, klWeight: klWeight, temperature: temperature, training: true, rng: &rng)
        let w = aggregation.weights(losses: s.losses, data: n, samples: samples)
        let (loss, reconstruction) = SampleLosses.weightedSums(losses: s.losses, weights: w, samples: samples,
                                                              kl: s.draw.kl, klWeight: klWeight)
        let weighted = SampleLosses.weightedResiduals(signals: x, decoded: s.decoded, weights: w, samples: samples)
        let side = FashionNetworks.side
        let imageGradient = ((-2 / Float(n * m)) * weighted).reshaped([n * samples, 1, side, side])
        let codesGradient = decoder.backward(imageGradient)
        var g = s.draw.backward(codesGradient: codesGradient)
        g.add(s.draw.klGradient(weights: [Float](repeating: 1 / Float(n), count: n), klWeight: klWeight))
        backwardEncoder(g)
        return (loss / Double(n), reconstruction / Double(n), s.draw.kl.reduce(0, +) / Double(n),
                CodeStatistics.nonZeroFraction(zeros: s.draw.codeZeros, of: s.draw.codes.count))
    }

    /// Test measures in evaluation mode (batch-norm running statistics): each image's code is the one
    /// `aggregation` picks among `samples` draws (max-ELBO: the best of J, as the reference evaluates),
    /// decoded. `batchSize` images at a time bound the memory (J·batchSize decodes).
    public mutating func evaluate(_ x: Tensor, samples: Int, klWeight: Float, aggregation: SampleAggregation = .max,
                                  temperature: Float, batchSize: Int = 100, keep: Int = 0, rng: inout Random)
        -> ImageReconstructionReport {
        precondition(x.rank == 2 && x.cols == Self.pixels && batchSize >= 1, "evaluate: images must be [n, \(Self.pixels)]")
        var squared = 0.0, nonZero = 0.0
        var kept: [Float] = [], keptCodes: [Float] = []
        var start = 0
        while start < x.rows {
            let batch = x.rows(start..<min(x.rows, start + batchSize))
            let s = sample(batch, samples: samples, klWeight: klWeight, temperature: temperature, training: false, rng: &rng)
            let w = aggregation.weights(losses: s.losses, data: batch.rows, samples: samples)
            let z = LinearGeneratorModel.combine(s.draw.codes, weights: w, data: batch.rows, samples: samples)
            // max-ELBO: the selected draw's own decoding; other aggregations decode the combined code.
            let r = aggregation == .max
                ? LinearGeneratorModel.combine(s.decoded, weights: w, data: batch.rows, samples: samples)
                : decode(z, training: false)
            squared += (r - batch).squaredNorm()
            nonZero += Double(z.count - z.zeroCount())
            if kept.count < keep * Self.pixels {
                let rows = min(batch.rows, keep - kept.count / Self.pixels)
                kept += r.rows(0..<rows).data
                keptCodes += z.rows(0..<rows).data
            }
            start += batch.rows
        }
        let k = kept.count / Self.pixels
        return ImageReconstructionReport(mse: squared / Double(x.count), nonZero: nonZero / Double(x.rows * latents),
                                         reconstructions: Tensor(shape: [k, Self.pixels], data: kept),
                                         codes: Tensor(shape: [k, latents], data: keptCodes))
    }
}

/// Test measures of a VSC model with a decoder network.
public struct ImageReconstructionReport: Sendable {
    /// Mean per-pixel squared error over all test images (images in [0, 1]).
    public var mse: Double
    /// Fraction of non-zero code entries.
    public var nonZero: Double
    /// The first `keep` reconstructions `[k, 784]` and their codes.
    public var reconstructions: Tensor
    public var codes: Tensor
}

extension NetworkGeneratorConfig {
    /// The settings as checkpoint metadata (`vsc.*`, `vsc.generator` = conv).
    public var metadata: [String: String] {
        var meta = variational.metadata
        meta["vsc.generator"] = "conv"
        meta["vsc.latents"] = String(latents)
        meta["vsc.channels"] = channels.map(String.init).joined(separator: ",")
        meta["vsc.batch_size"] = String(batchSize)
        meta["vsc.epochs"] = String(epochs)
        meta["vsc.learning_rate"] = learningRate.description
        meta["vsc.beta1"] = beta1.description
        meta["vsc.beta2"] = beta2.description
        meta["vsc.weight_decay"] = weightDecay.description
        meta["vsc.kl_weight"] = klWeight.description
        meta["vsc.aggregation"] = aggregation.rawValue
        meta["vsc.temperature_decay"] = temperatureDecay.description
        meta["vsc.temperature_floor"] = temperatureFloor.description
        meta["vsc.seed"] = String(seed)
        return meta
    }

    /// The settings `metadata` wrote.
    public init(metadata meta: [String: String]) throws {
        guard try meta.required("vsc.generator") == "conv" else {
            throw UnrollError.invalidCheckpoint("metadata vsc.generator is '\(meta["vsc.generator"]!)', expected 'conv'")
        }
        self.init(variational: try VariationalConfig(metadata: meta))
        let channels = try meta.required("vsc.channels").split(separator: ",").map { Int($0) }
        guard channels.count == 2, !channels.contains(nil) else {
            throw UnrollError.invalidCheckpoint("metadata vsc.channels is not two integers")
        }
        self.channels = channels.map { $0! }
        latents = try meta.number("vsc.latents", Int.self)
        batchSize = try meta.number("vsc.batch_size", Int.self)
        epochs = try meta.number("vsc.epochs", Int.self)
        learningRate = try meta.number("vsc.learning_rate", Float.self)
        beta1 = try meta.number("vsc.beta1", Float.self)
        beta2 = try meta.number("vsc.beta2", Float.self)
        weightDecay = try meta.number("vsc.weight_decay", Float.self)
        klWeight = try meta.number("vsc.kl_weight", Float.self)
        aggregation = try meta.choice("vsc.aggregation", SampleAggregation.self)
        temperatureDecay = try meta.number("vsc.temperature_decay", Float.self)
        temperatureFloor = try meta.number("vsc.temperature_floor", Float.self)
        seed = try meta.number("vsc.seed", UInt64.self)
    }
}
