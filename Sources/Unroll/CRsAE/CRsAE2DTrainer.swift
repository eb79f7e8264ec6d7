import Foundation
import UnrollCore

/// How a CRsAE 2-D model sets its per-filter thresholds b_c (reference crsae §4, §5).
public enum CRsAE2DBias: Equatable, Sendable {
    /// λ_c by the EM M-step with a Gamma prior (b_c = λ_c σ²/L), either the closed form after every
    /// step (`GammaPriorLambda.update`, batch-mean pooling), or Adam on the λ-loss
    /// Σ_c [λ_c (mean_b‖x_T,c‖₁ + δ) − (Ne + r − 1) log λ_c] backpropagated through the encoder
    /// (x_T depends on λ), the peer's second backprop stage — without its quirks (crsae §7): only the
    /// λ-loss drives λ, and the codes are those of the step's forward pass.
    case em(form: EMForm)
    /// The conventional baseline: b_c learned by the reconstruction loss, with the filters (no prior, no σ).
    case freeBias
    /// b_c = λ̄σ²/L throughout.
    case fixed

    public enum EMForm: String, CaseIterable, Equatable, Sendable { case closedForm = "closed-form", backprop }

    public var name: String {
        switch self {
        case let .em(form): return form == .closedForm ? "em" : "em-backprop"
        case .freeBias: return "free-bias"
        case .fixed: return "fixed"
        }
    }
}

/// Settings of CRsAE 2-D denoising (crsae §6.2: 64 filters 7×7, stride 5, T 30 FISTA, L 10,
/// σ 20/255, λ̄ 20, δ 100, Adam ε 1e-3 (filter lr: see `learningRate`), lr 0.1 on λ, batch 1, loss against the
/// clean crop, fresh noise every step).
public struct CRsAE2DConfig: Equatable, Sendable {
    public var atoms = 64
    public var kernel = 7
    public var stride = 5
    public var layers = 30
    public var lipschitz: Float = 10
    public var sigma: Float = 20.0 / 255
    /// λ̄: the Gamma prior's mean and every model's initial λ (initial threshold λ̄σ²/L).
    public var lambdaMean: Float = 20
    /// δ: the Gamma prior's rate (shape r = δλ̄).
    public var lambdaRate: Float = 100
    public var tying: CRsAE2DNetwork.Tying = .tied
    public var bias: CRsAE2DBias = .em(form: .closedForm)
    /// Adam's rate on the filters. The peer's 0.01 is on the pixel-mean MSE, whose gradients are
    /// ~10⁻⁴ of ours (½Σ over a 127² crop) and so of the order of ε = 1e-3, which damps its steps;
    /// on our loss 0.01 is too large (training loss after 600 steps: 62 vs 18 at 0.003 and 24 at 0.001).
    public var learningRate: Float = 0.003
    /// The learning rate is multiplied by `learningRateGamma` every `learningRateStep` steps (nil: constant).
    public var learningRateStep: Int?
    public var learningRateGamma: Float = 0.7
    /// Adam lr of λ in the EM backprop form.
    public var lambdaLearningRate: Float = 0.1
    public var epsilon: Float = 1e-3
    /// 127 = 25·5 + 7 − 5 fits stride 5 and 7×7 filters exactly (the peer crops 128 and pads).
    public var cropSize = 127
    public var batchSize = 1
    public var target: DenoisingTarget = .clean
    public var flips = true
    /// Random transposes of the crops too (with the flips: all eight rotations and reflections).
    public var rotations = false
    /// A noise-adaptive model: each crop's σ drawn uniformly from this range (nil: every crop at
    /// `sigma`). Each crop pair is scaled by σ/σ_crop before the network, so the thresholds are learned
    /// for the reference σ = `sigma` and scale with the noise (`UnrolledAutoencoder.atNoise`). The
    /// loss of a crop, so measured in units of its noise, is weighted by σ_crop/σ (1/σ_crop in pixel
    /// units): a denoiser's MSE grows about as σ (BM3D on the test images: ×3.75 from σ 15 to 50/255),
    /// so every noise level then counts about alike in PSNR instead of the lowest σ dominating.
    public var noiseRange: ClosedRange<Float>?
    /// Train through the shift average (CSCNet): each crop is reflect-padded and encoded at this many
    /// of the s² shifts (random, drawn from the seed and step; s² = all), and the loss is taken on the
    /// mean of their reconstructions, as the model denoises. 0: the crop is encoded once, unshifted.
    public var shiftsPerCrop = 0
    /// Learn a factor G_{t,c} on every layer's threshold of every filter (CSCNet's per-layer thresholds;
    /// `CRsAE2DNetwork.layerGains`), started at 1, by the reconstruction loss with the same Adam as the
    /// filters. The thresholds stay b_c·G_{t,c}, so a noise-adaptive model still scales them all with σ.
    public var layerThresholds = false
    /// The shifts the model denoises with (and is validated and tested with). A denoising setting: it
    /// does not change training, so a checkpoint resumes with another value.
    public var denoiseShifts: ShiftSet = .all
    /// The non-local stage the model ends its denoising with (`NonLocalMeans`; nil: none), a denoising
    /// setting as `denoiseShifts` is. It needs the noise σ, so a noise range or the EM bias.
    public var denoiseNonLocal: NonLocalMeans?
    public var normalize = true
    /// After every step, raise L to 1.05·‖H‖₂‖We‖₂ (power iteration on a 64×64 image) when the
    /// learned filters outgrow it; the EM/fixed thresholds λσ²/L follow. The learned filters do outgrow
    /// L = 10 (‖H‖₂² ≈ 13–18 after 200 steps), and with a fixed L FISTA can then diverge (seen with the EM
    /// backprop form: one step's loss 10⁵× the others, after which training did not recover).
    /// false (default) = the peer's fixed L.
    public var guardLipschitz = false
    public var seed: UInt64 = 0

    public init() {}

    public var prior: GammaPriorLambda { GammaPriorLambda(priorMean: lambdaMean, rate: lambdaRate, pooling: .batchMean) }

    public func validate() throws {
        try DenoisingImages.validateSigma(sigma)
        guard lambdaMean.isFinite, lambdaMean > 0 else { throw UnrollError.invalidArgument("CRsAE λ̄ (prior mean, initial λ) must be finite and > 0, got \(lambdaMean)") }
        try prior.validate()
        guard atoms >= 1, kernel >= 1 else { throw UnrollError.invalidArgument("CRsAE needs ≥ 1 filters of size ≥ 1, got \(atoms) of \(kernel)×\(kernel)") }
        guard stride >= 1, layers >= 1 else { throw UnrollError.invalidArgument("CRsAE stride and layers must be ≥ 1, got \(stride) and \(layers)") }
        guard lipschitz.isFinite, lipschitz > 0 else { throw UnrollError.invalidArgument("CRsAE L must be finite and > 0, got \(lipschitz)") }
        for (name, v) in [("learning rate", learningRate), ("λ learning rate", lambdaLearningRate), ("Adam ε", epsilon)] {
            guard v.isFinite, v > 0 else { throw UnrollError.invalidArgument("CRsAE \(name) must be finite and > 0, got \(v)") }
        }
        if let s = learningRateStep, s < 1 { throw UnrollError.invalidArgument("CRsAE learning-rate step must be ≥ 1, got \(s)") }
        guard learningRateGamma.isFinite, learningRateGamma > 0, learningRateGamma <= 1 else {
            throw UnrollError.invalidArgument("CRsAE learning-rate γ must be in (0, 1], got \(learningRateGamma)")
        }
        guard cropSize >= kernel else { throw UnrollError.invalidArgument("crop size \(cropSize) is smaller than the \(kernel)×\(kernel) filters") }
        guard batchSize >= 1 else { throw UnrollError.invalidArgument("CRsAE batch size must be ≥ 1, got \(batchSize)") }
        if let r = noiseRange {
            guard r.lowerBound.isFinite, r.upperBound.isFinite, r.lowerBound > 0, sigma > 0 else {
                throw UnrollError.invalidArgument("a noise-adaptive model needs a σ range above 0 and a reference σ > 0, got \(r) and \(sigma)")
            }
            if case .em = bias {
                throw UnrollError.invalidArgument("the EM thresholds λσ²/L follow one σ; a noise range needs the free bias or fixed thresholds")
            }
        }
        try denoiseShifts.validate()
        var isEM = false
        if case .em = bias { isEM = true }
        if denoiseNonLocal != nil, noiseRange == nil, !isEM {
            throw UnrollError.invalidArgument("a non-local stage needs the noise σ at denoising time: train over a noise range (noise-adaptive) or with the EM bias")
        }
        guard (0...stride * stride).contains(shiftsPerCrop) else {
            throw UnrollError.invalidArgument("shifts per crop must be in 0...\(stride * stride) (s²), got \(shiftsPerCrop)")
        }
    }
}

/// One CRsAE 2-D step's numbers.
public struct CRsAE2DRecord: StepEvaluation {
    /// ½Σ‖target − x̂‖²/B before the update (the loss).
    public var reconstruction: Double
    public var loss: Double {
        get { reconstruction }
        set { reconstruction = newValue }
    }
    /// Fraction of non-zero codes.
    public var density: Double
    /// Mean threshold b_c after the step.
    public var meanThreshold: Float = 0
    /// Mean λ_c after the step (EM and fixed; b_c L/σ² for the free bias).
    public var meanLambda: Float = 0
    /// L after the step.
    public var lipschitz: Float = 0
    public var gradients: [Tensor]
    /// The EM λ update's statistics of the batch's z_T: Σ‖z_c‖₁ per filter, then the samples (summed
    /// over the workers of a data-parallel run).
    public var pooledSums: [Double]
    /// Code positions per filter and sample.
    var positions: Int
}

/// CRsAE's 2-D denoiser as a `Trainable` model. Per step: the forward pass on a batch of noisy
/// crops, the reconstruction loss against the clean (or noisy) crop backpropagated through the
/// layers to the filter banks (and to b_c for the free bias, to λ for the EM backprop form); after
/// the optimizers, unit-norm filters, the optional guard on L, and the λ stage of the EM model.
/// `CRsAE2DTrainer` is the one trainer over it and random crops; it checkpoints and resumes.
public struct CRsAE2DModel: Trainable {
    public private(set) var network: CRsAE2DNetwork
    public private(set) var lambdas: [Float]
    public let config: CRsAE2DConfig

    /// The trained model as the one model value (`CRsAE2DNetwork.autoencoder`): with the EM state
    /// for the EM bias, noise-adaptive around `config.sigma` when trained over a noise range.
    public func autoencoder(height: Int, width: Int) throws -> UnrolledAutoencoder<Convolution2DDictionary> {
        var em: EMLambda?
        if case .em = config.bias { em = EMLambda(lambdas: lambdas, sigma: config.sigma) }
        return try network.autoencoder(height: height, width: width, em: em, adaptiveSigma: config.noiseRange == nil ? nil : config.sigma,
                                       shifts: config.denoiseShifts, nonLocal: config.denoiseNonLocal)
    }

    /// Random unit-norm filters from `config.seed`, λ = λ̄ and the thresholds it gives.
    public init(config: CRsAE2DConfig) throws {
        try config.validate()
        var initRng = Random(seed: config.seed)
        let lambda0 = config.lambdaMean
        let b0 = lambda0 * config.sigma * config.sigma / config.lipschitz
        self.network = try CRsAE2DNetwork(atoms: config.atoms, kernel: config.kernel, stride: config.stride, layers: config.layers,
                                          lipschitz: config.lipschitz, tying: config.tying, threshold: b0, rng: &initRng)
        if config.layerThresholds { network.layerGains = Tensor(repeating: 1, shape: [config.layers, config.atoms]) }
        self.lambdas = [Float](repeating: lambda0, count: config.atoms)
        self.config = config
    }

    /// The banks, then b (free bias) or λ (EM backprop) when a gradient trains them, then the layer gains.
    public var parameters: [Tensor] {
        get {
            var p = network.filters
            switch config.bias {
            case .freeBias: p.append(Tensor(shape: [network.atoms], data: network.thresholds))
            case .em(.backprop): p.append(Tensor(shape: [network.atoms], data: lambdas))
            default: break
            }
            if let g = network.layerGains { p.append(g) }
            return p
        }
        set {
            let banks = network.filters.count
            network.filters = Array(newValue[0..<banks])
            switch config.bias {
            case .freeBias: network.thresholds = newValue[banks].data
            case .em(.backprop): lambdas = newValue[banks].data
            default: break
            }
            if network.layerGains != nil { network.layerGains = newValue.last! }
        }
    }

    public var parameterNames: [String] {
        var names = network.filters.count == 1 ? ["filters"] : ["H", "We", "Wd"]
        switch config.bias {
        case .freeBias: names.append("thresholds")
        case .em(.backprop): names.append("lambda")
        default: break
        }
        if network.layerGains != nil { names.append("layer_gains") }
        return names
    }

    /// Adam on the banks (and on b for the free bias) at the learning rate, on λ at the λ rate; the
    /// step decay applies to the banks and the free bias.
    var optimizers: (optimizers: [Optimizer], scheduled: [Bool]) {
        let adam = Optimizer.adam(learningRate: config.learningRate, epsilon: config.epsilon)
        var o = [Optimizer](repeating: adam, count: network.filters.count), s = [Bool](repeating: true, count: o.count)
        switch config.bias {
        case .freeBias: o.append(adam); s.append(true)
        case .em(.backprop): o.append(.adam(learningRate: config.lambdaLearningRate, epsilon: config.epsilon)); s.append(false)
        default: break
        }
        if network.layerGains != nil { o.append(adam); s.append(true) }
        return (o, s)
    }

    /// The gradient of the λ-loss Σ_c [λ_c (mean_b‖x_T,c‖₁ + δ) − (Ne + r − 1) log λ_c] with respect to λ,
    /// x_T = the encoder output of `trace` (which depends on λ through b_c = λ_c σ²/L).
    public static func lambdaLossGradient(network: CRsAE2DNetwork, trace: CRsAE2DNetwork.Trace, codes: Tensor,
                                          lambdas: [Float], sigma: Float, prior: GammaPriorLambda) throws -> [Float] {
        let atoms = lambdas.count, batch = codes.rows
        let (sums, ne) = GammaPriorLambda.l1PerAtom(codes, atoms: atoms)
        // ∂/∂x_T of Σ_c λ_c mean_b ‖x_c‖₁ = λ_c sign(x)/B, then through the layers to b_c, times ∂b/∂λ = σ²/L.
        let positions = codes.cols / atoms
        var seed = Tensor(zeros: codes.shape)
        codes.data.withUnsafeBufferPointer { pz in
            seed.data.withUnsafeMutableBufferPointer { ps in
                for i in 0..<pz.count where pz[i] != 0 {
                    let w = lambdas[(i / positions) % atoms] / Float(batch)
                    ps[i] = pz[i] > 0 ? w : -w
                }
            }
        }
        let through = try network.backward(trace, codeGradient: seed, reconstructionGradient: nil, filterGradients: false).thresholds
        let r = Double(prior.shape), d = Double(prior.rate), scale = Double(sigma * sigma / network.lipschitz)
        return (0..<atoms).map { c in
            let direct = sums[c] / Double(batch) + d - (Double(ne) + r - 1) / Double(lambdas[c])
            return Float(direct + scale * Double(through[c]))
        }
    }

    /// The shifts each of `crops` crops is encoded at in this step (`shiftsPerCrop` of the s², without
    /// repeats, from the seed and the step; empty when the model trains unshifted).
    func shiftsOfCrops(_ crops: Int, step: Int) -> [[(Int, Int)]] {
        let s = config.stride, k = config.shiftsPerCrop
        guard k > 0 else { return [] }
        let all = (0..<s).flatMap { i in (0..<s).map { j in (i, j) } }
        if k == all.count { return [[(Int, Int)]](repeating: all, count: crops) }
        var rng = Random(seed: config.seed &+ 2).derived([UInt64(step)])
        return (0..<crops).map { _ in
            var pool = all
            for m in 0..<k { pool.swapAt(m, m + rng.int(below: pool.count - m)) }
            return Array(pool[0..<k])
        }
    }

    public func evaluate(_ batch: CropBatches.Batch, step: Int) throws -> CRsAE2DRecord {
        var noisy = batch.noisy, target = config.target == .clean ? batch.clean : batch.noisy
        let n = noisy.rows
        if config.noiseRange != nil {
            let scale = batch.sigmas.map { config.sigma / $0 }
            noisy.scaleRows(by: scale)
            target.scaleRows(by: scale)
        }
        let shifts = shiftsOfCrops(n, step: step)
        let input = shifts.isEmpty ? noisy : Denoiser.shiftedCopies(of: noisy, shifts: shifts, stride: config.stride, kernel: config.kernel)
        let (codes, copies, trace) = try network.forward(input, record: true)
        let side = (noisy.shape[1], noisy.shape[2])
        var residual = shifts.isEmpty ? copies : Denoiser.meanOfWindows(copies, shifts: shifts, height: side.0, width: side.1, stride: config.stride)
        residual.add(target, scaledBy: -1)
        // Over a noise range each crop's loss weighs σ_crop/σ (see `noiseRange`), applied as √w on the
        // residual for the loss and again for its gradient.
        let weights = config.noiseRange == nil ? nil : batch.sigmas.map { ($0 / config.sigma).squareRoot() }
        if let weights { residual.scaleRows(by: weights) }
        let rec = 0.5 * residual.squaredNorm() / Double(n)
        guard rec.isFinite else { throw UnrollError.diverged(step: step, reason: "the reconstruction loss is \(rec)") }
        residual = (1 / Float(n)) * residual
        if let weights { residual.scaleRows(by: weights) }
        if !shifts.isEmpty {
            residual = Denoiser.spreadToWindows(residual, shifts: shifts, paddedHeight: copies.shape[1], paddedWidth: copies.shape[2], stride: config.stride)
        }
        let grads = try network.backward(trace!, codeGradient: nil, reconstructionGradient: residual)
        var gradients = grads.filters
        switch config.bias {
        case .freeBias: gradients.append(Tensor(shape: [network.atoms], data: grads.thresholds))
        case .em(.backprop):
            let g = try Self.lambdaLossGradient(network: network, trace: trace!, codes: codes, lambdas: lambdas,
                                                sigma: config.sigma, prior: config.prior)
            gradients.append(Tensor(shape: [network.atoms], data: g))
        default: break
        }
        if let g = grads.layerGains { gradients.append(g) }
        let (l1, positions) = GammaPriorLambda.l1PerAtom(codes, atoms: network.atoms)
        return CRsAE2DRecord(reconstruction: rec, density: 1 - Double(codes.zeroCount()) / Double(max(1, codes.count)),
                             gradients: gradients, pooledSums: l1 + [Double(codes.rows)], positions: positions)
    }

    public mutating func finishStep(_ e: inout CRsAE2DRecord, step: Int) throws {
        if config.normalize { network.normalize() }
        if var g = network.layerGains {
            g.data = g.data.map { max(0, $0) }
            network.layerGains = g
        }
        if config.guardLipschitz {
            let bound = try network.estimatedLipschitz(side: 64, iterations: 20, seed: UInt64(step))
            if bound.isFinite, bound > network.lipschitz { network.lipschitz = 1.05 * bound }
        }
        switch config.bias {
        case .fixed:
            break
        case .freeBias:
            network.thresholds = network.thresholds.map { max(0, $0) }
            let toLambda = network.lipschitz / max(config.sigma * config.sigma, .leastNormalMagnitude)
            lambdas = network.thresholds.map { $0 * toLambda }
        case .em(.closedForm):
            lambdas = config.prior.update(l1Sums: Array(e.pooledSums.dropLast()), positions: e.positions,
                                          samples: Int(e.pooledSums.last!.rounded()))
        case .em(.backprop):
            lambdas = lambdas.map { max($0, 1e-3) }   // λ > 0 (the loss has −log λ)
        }
        if config.bias != .freeBias { network.thresholds = network.emThresholds(lambdas: lambdas, sigma: config.sigma) }
        if lambdas.contains(where: { !$0.isFinite }) || network.thresholds.contains(where: { !$0.isFinite }) {
            throw UnrollError.diverged(step: step, reason: "λ or the thresholds are not finite")
        }
        e.meanThreshold = network.thresholds.reduce(0, +) / Float(network.atoms)
        e.meanLambda = lambdas.reduce(0, +) / Float(lambdas.count)
        e.lipschitz = network.lipschitz
    }

    /// The run's settings (a checkpoint resumes only the same run).
    var settings: [String: String] {
        let c = config
        return ["crsae.atoms": String(c.atoms), "crsae.kernel": String(c.kernel), "crsae.stride": String(c.stride),
                "crsae.layers": String(c.layers), "crsae.tying": c.tying.rawValue, "crsae.bias": c.bias.name,
                "crsae.sigma": c.sigma.description, "crsae.lambda_mean": c.lambdaMean.description,
                "crsae.delta": c.lambdaRate.description, "crsae.crop": String(c.cropSize), "crsae.batch": String(c.batchSize),
                "crsae.target": c.target.rawValue, "crsae.flips": String(c.flips), "crsae.normalize": String(c.normalize),
                "crsae.guard_lipschitz": String(c.guardLipschitz), "crsae.seed": String(c.seed)]
            .merging(extraSettings) { a, _ in a }
    }

    /// Settings added later, recorded only when not at their default so earlier checkpoints resume.
    private var extraSettings: [String: String] {
        var e: [String: String] = [:]
        if config.rotations { e["crsae.rotations"] = "true" }
        if let r = config.noiseRange { e["crsae.noise_range"] = "\(r.lowerBound.description):\(r.upperBound.description)" }
        if config.shiftsPerCrop > 0 { e["crsae.shifts"] = String(config.shiftsPerCrop) }
        if config.layerThresholds { e["crsae.layer_thresholds"] = "true" }
        return e
    }

    /// λ, the thresholds and L (which the guard may raise) beside the settings.
    public func exportState() -> TrainerCheckpoint {
        var meta = settings
        meta["crsae.lipschitz"] = network.lipschitz.description
        return TrainerCheckpoint(tensors: ["crsae.lambda": Tensor(shape: [lambdas.count], data: lambdas),
                                           "crsae.thresholds": Tensor(shape: [network.atoms], data: network.thresholds)],
                                 metadata: meta)
    }

    public mutating func restoreState(_ c: TrainerCheckpoint) throws {
        for (key, value) in settings.sorted(by: { $0.key < $1.key }) where c.metadata[key] != value {
            throw UnrollError.invalidCheckpoint("\(key) is \(c.metadata[key] ?? "missing"), this run's is \(value)")
        }
        let settings = settings
        for key in c.metadata.keys.sorted() where key.hasPrefix("crsae.") && settings[key] == nil && !c.tensors.keys.contains(key) && key != "crsae.lipschitz" {
            throw UnrollError.invalidCheckpoint("\(key) is \(c.metadata[key]!), this run has none")
        }
        guard let l = c.tensors["crsae.lambda"], l.shape == [network.atoms], let b = c.tensors["crsae.thresholds"],
              b.shape == [network.atoms], !l.hasNonFinite, !b.hasNonFinite, b.data.allSatisfy({ $0 >= 0 }) else {
            throw UnrollError.invalidCheckpoint("crsae.lambda and crsae.thresholds must be [\(network.atoms)], finite, thresholds ≥ 0")
        }
        guard let lip = c.metadata["crsae.lipschitz"].flatMap(Float.init), lip.isFinite, lip > 0 else {
            throw UnrollError.invalidCheckpoint("crsae.lipschitz is missing or not > 0")
        }
        lambdas = l.data
        network.thresholds = b.data
        network.lipschitz = lip
    }
}

/// Trains a CRsAE 2-D denoiser: the one trainer over `CRsAE2DModel` and random noisy crops (the
/// crops' generator seeded by seed + 1, the filters' by seed).
public typealias CRsAE2DTrainer = Trainer<CRsAE2DModel, CropBatches>

extension Trainer where Model == CRsAE2DModel {
    /// The model's optimizers and learning-rate schedule over any stream of crop batches.
    public init(model: CRsAE2DModel, stream: Stream) throws {
        let (optimizers, scheduled) = model.optimizers, config = model.config
        try self.init(model: model, stream: stream, optimizers: optimizers,
                      schedule: config.learningRateStep.map { .stepDecay(every: $0, gamma: config.learningRateGamma) } ?? .constant,
                      scheduled: scheduled)
    }
}

extension Trainer where Model == CRsAE2DModel, Stream == CropBatches {
    public init(images: [Tensor], config: CRsAE2DConfig) throws {
        let model = try CRsAE2DModel(config: config)
        try DenoisingImages.validate(images, what: "training image", minimumSide: config.kernel)
        let sampler = try DenoisingSampler(images: images, cropSize: config.cropSize, sigmas: config.noiseRange ?? config.sigma...config.sigma,
                                           flips: config.flips, rotations: config.rotations)
        try self.init(model: model, stream: CropBatches(sampler: sampler, batchSize: config.batchSize, seed: config.seed &+ 1))
    }

    public var network: CRsAE2DNetwork { model.network }
    public var lambdas: [Float] { model.lambdas }
    public var config: CRsAE2DConfig { model.config }
    public var sampler: DenoisingSampler { stream.sampler }
}
