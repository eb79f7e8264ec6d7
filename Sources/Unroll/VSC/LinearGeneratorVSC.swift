import CUnrollSupport
import Foundation
import UnrollCore

/// Settings of variational sparse coding with a linear generator x ≈ z·Φ (vsc §4): an MLP encoder
/// trained by SGD with Nesterov momentum under a one-cycle schedule, and a dictionary Φ updated by
/// its own SGD step on the selected samples (no renormalisation; a Frobenius penalty instead).
public struct LinearGeneratorConfig: Equatable, Sendable {
    public var variational: VariationalConfig
    /// Widths of the encoder's hidden layers (ReLU after each), then linear heads.
    public var hidden: [Int] = [512, 1024, 512, 256]
    /// Number of dictionary atoms (latents); the reference's dictionary is complete (256 for 16×16).
    public var latents: Int = 256
    public var batchSize: Int = 100
    public var epochs: Int = 300
    /// Peak encoder learning rate of the one-cycle schedule; Nesterov momentum.
    public var learningRate: Float = 0.01
    public var momentum: Float = 0.9
    /// Weight of Σ_latents KL in the per-sample loss mean_px(x − zΦ)² + w·KL.
    public var klWeight: Float = 0.01
    /// Dictionary SGD rate η, multiplied by `dictionaryDecay` after every epoch.
    public var dictionaryRate: Float = 0.5
    public var dictionaryDecay: Float = 0.99
    /// Frobenius penalty ρ‖Φ‖²_F on the dictionary (its gradient 2ρΦ).
    public var frobenius: Float = 1e-4
    public var aggregation: SampleAggregation = .max
    /// Laplace / slab warm-up of the sample spread: `warmupStart` until step `warmupDelay`, then
    /// + `warmupRate` per step, capped at 1.
    public var warmupStart: Float = 0.1
    public var warmupDelay: Int = 1500
    public var warmupRate: Float = 2e-4
    /// Spike-and-slab temperature: ×`temperatureDecay` per step, floored at `temperatureFloor`.
    public var temperatureDecay: Float = 0.9995
    public var temperatureFloor: Float = 0.5
    public var seed: UInt64 = 0

    public init(variational: VariationalConfig) { self.variational = variational }

    public func validate() throws {
        try variational.validate()
        func positive(_ name: String, _ v: Float) throws {
            guard v.isFinite, v > 0 else { throw UnrollError.invalidArgument("\(name) must be finite and > 0, got \(v)") }
        }
        try positive("learning rate", learningRate)
        try positive("dictionary rate", dictionaryRate)
        try positive("dictionary decay", dictionaryDecay)
        try positive("temperature floor", temperatureFloor)
        guard hidden.allSatisfy({ $0 >= 1 }), latents >= 1 else {
            throw UnrollError.invalidArgument("encoder widths and latents must be ≥ 1, got \(hidden) and \(latents)")
        }
        guard batchSize >= 1, epochs >= 1 else {
            throw UnrollError.invalidArgument("batch size and epochs must be ≥ 1, got \(batchSize) and \(epochs)")
        }
        for (name, v) in [("momentum", momentum), ("KL weight", klWeight), ("Frobenius penalty", frobenius),
                          ("warm-up start", warmupStart), ("warm-up rate", warmupRate)] where !(v.isFinite && v >= 0) {
            throw UnrollError.invalidArgument("\(name) must be finite and ≥ 0, got \(v)")
        }
    }

    /// The Laplace / slab warm-up factor at `step` (0-based).
    public func warmup(step: Int) -> Float {
        step < warmupDelay ? warmupStart : min(1, warmupStart + warmupRate * Float(step - warmupDelay))
    }

    /// These settings with the per-step schedules of the reference's 240 000-step run (warm-up held
    /// for 1500 steps then done by 6000, temperature floored by ~1400 steps, η × 0.99 per epoch over
    /// 300 epochs) compressed to the same fractions of a shorter run of `steps` steps in `epochs` epochs.
    public func compressingSchedules(steps: Int, epochs: Int) -> LinearGeneratorConfig {
        let fraction = Double(steps) / 240_000
        guard fraction < 1 else { return self }
        var c = self
        c.warmupDelay = Int((1500 * fraction).rounded())
        c.warmupRate = Float(0.9 / max(1, 4500 * fraction))
        c.temperatureDecay = Float(pow(0.9995, 1 / max(fraction, 1e-9)))
        c.dictionaryDecay = Float(pow(0.99, 300 / Double(max(epochs, 1))))
        return c
    }

    /// The spike-and-slab temperature at `step`.
    public func temperature(step: Int) -> Float {
        max(temperatureFloor, Float(pow(Double(temperatureDecay), Double(step))))
    }
}

/// The encoder (an MLP trunk and one linear head per encoder output) and the dictionary Φ
/// `[latents, pixels]` (atoms as rows, so x̂ = z·Φ).
public struct LinearGeneratorModel: Sendable {
    public var trunk: Network
    /// Heads in `EncoderOutputs` order: mean, log-scale, then α and β logits (learned threshold)
    /// or the spike logit (spike-and-slab).
    public var heads: [Network]
    public var dictionary: Tensor
    public let variational: VariationalConfig
    /// The training settings (the loss's weights and schedules read them).
    public let config: LinearGeneratorConfig

    /// PyTorch-default encoder initialisation; Φ ~ N(0, 1) with unit-norm atoms (normalised once).
    public init(pixels: Int, config: LinearGeneratorConfig, rng: inout Random) {
        let sizes = [pixels] + config.hidden
        trunk = Network.mlp(sizes: sizes, finalActivation: true, rng: &rng)
        let width = sizes.last!
        heads = EncoderHeads.make(features: width, latents: config.latents, variational: config.variational, rng: &rng)
        var phi = Tensor.normal([config.latents, pixels], rng: &rng)
        phi.normalizeRows()
        dictionary = phi
        variational = config.variational
        self.config = config
    }

    public var pixels: Int { dictionary.cols }
    public var latents: Int { dictionary.rows }

    /// The encoder's outputs for signals `[n, pixels]`.
    public mutating func encode(_ x: Tensor, training: Bool) -> EncoderOutputs {
        let h = trunk.run(x, training: training)
        return EncoderHeads.forward(&heads, h, variational: variational, training: training)
    }

    /// Backpropagates ∂L/∂outputs (as returned by `encode`'s last call) into the encoder's gradients.
    public mutating func backward(_ g: EncoderOutputs) {
        trunk.accumulateParameterGradients(EncoderHeads.backward(&heads, g, variational: variational))
    }

    public mutating func zeroGradients() {
        trunk.zeroGradients()
        for i in heads.indices { heads[i].zeroGradients() }
    }

    /// Every encoder parameter tensor (trunk, then heads), and the matching gradients.
    public var parameters: [Tensor] {
        get { trunk.parameters + heads.flatMap(\.parameters) }
        set {
            var offset = trunk.parameters.count
            trunk.parameters = Array(newValue[0..<offset])
            for i in heads.indices {
                let k = heads[i].parameters.count
                heads[i].parameters = Array(newValue[offset..<(offset + k)])
                offset += k
            }
        }
    }
    public var gradients: [Tensor] { trunk.gradients + heads.flatMap(\.gradients) }

    /// Samples `samples` codes per signal and scores each by the per-sample loss
    /// mean_px(x − zΦ)² + klWeight·KL; returns the draw, the decoded signals `[n·J, pixels]` and
    /// the losses (row b·J + j).
    public mutating func sample(_ x: Tensor, samples: Int, klWeight: Float, warmup: Float, temperature: Float,
                                training: Bool, rng: inout Random)
        -> (outputs: EncoderOutputs, draw: VariationalDraw, decoded: Tensor, losses: [Double]) {
        var config = variational
        config.samples = samples
        let outputs = encode(x, training: training)
        let draw = drawCodes(outputs, config: config, warmup: warmup, temperature: temperature, rng: &rng)
        let decoded = Self.decode(draw.codes, dictionary, zeros: draw.codeZeros)
        let losses = SampleLosses.losses(signals: x, decoded: decoded, samples: samples, kl: draw.kl, klWeight: klWeight)
        return (outputs, draw, decoded, losses)
    }

    /// Draws `samples` codes per signal of `x` `[B, pixels]`, weights them by `aggregation`, and adds
    /// the gradient of loss = (1/B) Σ_bj w_bj L_bj with respect to the encoder to `gradients`.
    /// Returns the loss, the selected samples' mean reconstruction error and KL, the non-zero
    /// fraction of all draws, and Φ's update direction (1/B) Σ_bj w_bj z_bjᵀ(x_b − z_bj Φ) (the
    /// negative loss gradient up to the factor 2/m, as in the reference's manual step).
    public mutating func accumulateGradients(_ x: Tensor, samples: Int, klWeight: Float, aggregation: SampleAggregation,
                                             warmup: Float, temperature: Float, rng: inout Random)
        -> (loss: Double, reconstruction: Double, kl: Double, nonZero: Double, dictionaryDirection: Tensor) {
        let (n, m) = (x.rows, pixels)
        let s = sample(x, samples: samples, klWeight: klWeight, warmup: warmup, temperature: temperature,
                       training: true, rng: &rng)
        let w = aggregation.weights(losses: s.losses, data: n, samples: samples)
        let (loss, reconstruction) = SampleLosses.weightedSums(losses: s.losses, weights: w, samples: samples,
                                                              kl: s.draw.kl, klWeight: klWeight)
        // ∂loss/∂x̂_bj = −(2 w_bj / (B m))(x_b − x̂_bj); `weighted` holds w_bj (x_b − x̂_bj).
        let weighted = SampleLosses.weightedResiduals(signals: x, decoded: s.decoded, weights: w, samples: samples)
        let codesGradient = Self.codesGradient(weighted, weights: w, dictionary: dictionary, scale: -2 / Float(n * m))
        var g = s.draw.backward(codesGradient: codesGradient)
        g.add(s.draw.klGradient(weights: [Float](repeating: 1 / Float(n), count: n), klWeight: klWeight))
        backward(g)
        let direction = (1 / Float(n)) * s.draw.codes.matmul(weighted, transposeSelf: true)
        return (loss / Double(n), reconstruction / Double(n), s.draw.kl.reduce(0, +) / Double(n),
                CodeStatistics.nonZeroFraction(zeros: s.draw.codeZeros, of: s.draw.codes.count), direction)
    }

    /// codes·Φ. Thresholded draws are mostly zeros (92 % in the vsc §4 setting), so each row adds only
    /// its non-zero atoms, each as one fused multiply-add per entry in k order: the sum OpenBLAS's kernels
    /// form for the dense product (a zero term adds nothing to it while Φ is finite), so the result is the
    /// same bit for bit (tested). `zeros`, the codes' zero entries, is counted when not given.
    public static func decode(_ codes: Tensor, _ dictionary: Tensor, zeros: Int? = nil) -> Tensor {
        let (n, d, m) = (codes.rows, codes.cols, dictionary.cols)
        precondition(dictionary.rows == d, "decode: codes \(codes.shape) · dictionary \(dictionary.shape)")
        guard n > 0, m > 0, codes.count - (zeros ?? codes.zeroCount()) < codes.count / 4 else { return codes.matmul(dictionary) }
        var out = [Float](repeating: 0, count: n * m)
        codes.data.withUnsafeBufferPointer { z in
            dictionary.data.withUnsafeBufferPointer { phi in
                out.withUnsafeMutableBufferPointer { out in
                    nonisolated(unsafe) let out = out
                    Parallel.forEachChunk(n, minPerPart: max(1, (1 << 16) / max(1, m))) { range in
                        var index = [Int32](repeating: 0, count: d), coef = [Float](repeating: 0, count: d)
                        for i in range {
                            var terms = 0
                            for k in 0..<d where z[i * d + k] != 0 {
                                index[terms] = Int32(k)
                                coef[terms] = z[i * d + k]
                                terms += 1
                            }
                            unroll_add_scaled_rows(Int32(m), out.baseAddress! + i * m, phi.baseAddress!, m, index, coef, Int32(terms))
                        }
                    }
                }
            }
        }
        return Tensor(shape: [n, m], data: out)
    }

    /// scale·weighted·Φᵀ, the gradient with respect to every draw's code. Draws of weight 0 (all but one
    /// per signal under max-ELBO aggregation) have zero rows, so only the others are multiplied. Each row
    /// of an OpenBLAS product is summed the same way whatever the other rows, so the result is the full
    /// product's bit for bit (tested; zero rows up to the sign of zero), for a twentieth of the work.
    public static func codesGradient(_ weighted: Tensor, weights: [Float], dictionary: Tensor, scale: Float) -> Tensor {
        let selected = weights.indices.filter { weights[$0] != 0 }
        guard selected.count < weights.count else { return scale * weighted.matmul(dictionary, transposeOther: true) }
        var g = Tensor(zeros: [weighted.rows, dictionary.rows])
        guard !selected.isEmpty else { return g }
        let rows = scale * weighted.gatherRows(selected).matmul(dictionary, transposeOther: true)
        let d = g.cols
        for (q, i) in selected.enumerated() { g.data.replaceSubrange((i * d)..<((i + 1) * d), with: rows.data[(q * d)..<((q + 1) * d)]) }
        return g
    }

    /// The code of each signal chosen by `aggregation` among `samples` draws (the maximum-ELBO draw
    /// for `.max`; the weighted mean of the draws otherwise), `[n, latents]`.
    public mutating func infer(_ x: Tensor, samples: Int, klWeight: Float, aggregation: SampleAggregation = .max,
                               temperature: Float, rng: inout Random) -> Tensor {
        let s = sample(x, samples: samples, klWeight: klWeight, warmup: 1, temperature: temperature,
                       training: false, rng: &rng)
        let w = aggregation.weights(losses: s.losses, data: x.rows, samples: samples)
        return Self.combine(s.draw.codes, weights: w, data: x.rows, samples: samples)
    }

    /// Σ_j w_bj z_bj for every datum b.
    static func combine(_ codes: Tensor, weights: [Float], data n: Int, samples: Int) -> Tensor {
        let d = codes.cols
        var out = [Float](repeating: 0, count: n * d)
        codes.data.withUnsafeBufferPointer { z in
            for b in 0..<n {
                for j in 0..<samples where weights[b * samples + j] != 0 {
                    let w = weights[b * samples + j], row = (b * samples + j) * d
                    for k in 0..<d { out[b * d + k] += w * z[row + k] }
                }
            }
        }
        return Tensor(shape: [n, d], data: out)
    }
}


extension LinearGeneratorConfig {
    /// The settings as checkpoint metadata (`vsc.*`).
    public var metadata: [String: String] {
        var meta = variational.metadata
        meta["vsc.hidden"] = hidden.map(String.init).joined(separator: ",")
        meta["vsc.latents"] = String(latents)
        meta["vsc.batch_size"] = String(batchSize)
        meta["vsc.epochs"] = String(epochs)
        meta["vsc.learning_rate"] = learningRate.description
        meta["vsc.momentum"] = momentum.description
        meta["vsc.kl_weight"] = klWeight.description
        meta["vsc.dictionary_rate"] = dictionaryRate.description
        meta["vsc.dictionary_decay"] = dictionaryDecay.description
        meta["vsc.frobenius"] = frobenius.description
        meta["vsc.aggregation"] = aggregation.rawValue
        meta["vsc.warmup_start"] = warmupStart.description
        meta["vsc.warmup_delay"] = String(warmupDelay)
        meta["vsc.warmup_rate"] = warmupRate.description
        meta["vsc.temperature_decay"] = temperatureDecay.description
        meta["vsc.temperature_floor"] = temperatureFloor.description
        meta["vsc.seed"] = String(seed)
        return meta
    }

    /// The settings `metadata` wrote.
    public init(metadata meta: [String: String]) throws {
        self.init(variational: try VariationalConfig(metadata: meta))
        let hidden = try meta.required("vsc.hidden").split(separator: ",").map { Int($0) }
        guard !hidden.contains(nil) else { throw UnrollError.invalidCheckpoint("metadata vsc.hidden is not a list of integers") }
        self.hidden = hidden.map { $0! }
        latents = try meta.number("vsc.latents", Int.self)
        batchSize = try meta.number("vsc.batch_size", Int.self)
        epochs = try meta.number("vsc.epochs", Int.self)
        learningRate = try meta.number("vsc.learning_rate", Float.self)
        momentum = try meta.number("vsc.momentum", Float.self)
        klWeight = try meta.number("vsc.kl_weight", Float.self)
        dictionaryRate = try meta.number("vsc.dictionary_rate", Float.self)
        dictionaryDecay = try meta.number("vsc.dictionary_decay", Float.self)
        frobenius = try meta.number("vsc.frobenius", Float.self)
        aggregation = try meta.choice("vsc.aggregation", SampleAggregation.self)
        warmupStart = try meta.number("vsc.warmup_start", Float.self)
        warmupDelay = try meta.number("vsc.warmup_delay", Int.self)
        warmupRate = try meta.number("vsc.warmup_rate", Float.self)
        temperatureDecay = try meta.number("vsc.temperature_decay", Float.self)
        temperatureFloor = try meta.number("vsc.temperature_floor", Float.self)
        seed = try meta.number("vsc.seed", UInt64.self)
    }
}
