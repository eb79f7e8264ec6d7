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
    }
}

/// One CRsAE 2-D step's numbers.
public struct CRsAE2DRecord: Sendable {
    public var step: Int
    /// ½Σ‖target − x̂‖²/B before the update.
    public var reconstruction: Double
    /// Fraction of non-zero codes.
    public var density: Double
    /// Mean threshold b_c after the step.
    public var meanThreshold: Float
    /// Mean λ_c after the step (EM and fixed; b_c L/σ² for the free bias).
    public var meanLambda: Float
    /// L after the step.
    public var lipschitz: Float
    public var seconds: Double
}

/// Trains a CRsAE 2-D denoiser. Per step: a batch of noisy crops (`DenoisingSampler`), the forward
/// pass, the reconstruction loss against the clean (or noisy) crop backpropagated through the layers
/// to the filter banks (and to b_c for the free bias), Adam, unit-norm filters; then the λ stage of
/// the EM model. Divergence throws `UnrollError.diverged` and leaves the trainer at its last good state.
public struct CRsAE2DTrainer {
    public private(set) var network: CRsAE2DNetwork
    /// λ_c (EM, fixed); for the free bias the equivalent b_c L/σ².
    public private(set) var lambdas: [Float]
    public let config: CRsAE2DConfig
    public let sampler: DenoisingSampler
    public private(set) var step = 0
    private var filterOptimizers: [Optimizer]
    private var biasOptimizer: Optimizer
    private var rng: Random

    public init(images: [Tensor], config: CRsAE2DConfig) throws {
        try config.validate()
        try DenoisingImages.validate(images, what: "training image", minimumSide: config.kernel)
        self.sampler = try DenoisingSampler(images: images, cropSize: config.cropSize, sigma: config.sigma, flips: config.flips)
        var initRng = Random(seed: config.seed)
        let lambda0 = config.lambdaMean
        let b0 = lambda0 * config.sigma * config.sigma / config.lipschitz
        self.network = try CRsAE2DNetwork(atoms: config.atoms, kernel: config.kernel, stride: config.stride, layers: config.layers,
                                          lipschitz: config.lipschitz, tying: config.tying, threshold: b0, rng: &initRng)
        self.lambdas = [Float](repeating: lambda0, count: config.atoms)
        self.config = config
        let adam = Optimizer.adam(learningRate: config.learningRate, epsilon: config.epsilon)
        self.filterOptimizers = [Optimizer](repeating: adam, count: network.filters.count)
        self.biasOptimizer = config.bias == .freeBias ? adam
            : .adam(learningRate: config.lambdaLearningRate, epsilon: config.epsilon)
        self.rng = Random(seed: config.seed &+ 1)
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

    @discardableResult
    public mutating func trainStep() throws -> CRsAE2DRecord {
        let t0 = ContinuousClock.now
        let thisStep = step + 1
        var nextRng = rng
        let (noisy, clean) = sampler.next(batch: config.batchSize, rng: &nextRng)
        let target = config.target == .clean ? clean : noisy
        let batch = noisy.rows

        let (codes, reconstruction, trace) = try network.forward(noisy, record: true)
        var residual = reconstruction
        residual.add(target, scaledBy: -1)
        let rec = 0.5 * residual.squaredNorm() / Double(batch)
        guard rec.isFinite else { throw UnrollError.diverged(step: thisStep, reason: "the reconstruction loss is \(rec)") }
        let grads = try network.backward(trace!, codeGradient: nil, reconstructionGradient: (1 / Float(batch)) * residual)
        if grads.filters.contains(where: \.hasNonFinite) || grads.thresholds.contains(where: { !$0.isFinite }) {
            throw UnrollError.diverged(step: thisStep, reason: "the gradient contains NaN or Inf")
        }

        var net = network
        var optimizers = filterOptimizers
        for i in net.filters.indices { optimizers[i].step(&net.filters[i], gradient: grads.filters[i]) }
        if config.normalize { net.normalize() }
        if net.filters.contains(where: \.hasNonFinite) {
            throw UnrollError.diverged(step: thisStep, reason: "the updated filters contain NaN or Inf")
        }
        if config.guardLipschitz {
            let bound = try net.estimatedLipschitz(side: 64, iterations: 20, seed: UInt64(thisStep))
            if bound.isFinite, bound > net.lipschitz { net.lipschitz = 1.05 * bound }
        }
        var biasOpt = biasOptimizer
        var newLambdas = lambdas
        let toLambda = net.lipschitz / max(config.sigma * config.sigma, .leastNormalMagnitude)
        switch config.bias {
        case .fixed:
            break
        case .freeBias:
            var b = Tensor(shape: [net.atoms], data: net.thresholds)
            biasOpt.step(&b, gradient: Tensor(shape: [net.atoms], data: grads.thresholds))
            net.thresholds = b.data.map { max(0, $0) }
            newLambdas = net.thresholds.map { $0 * toLambda }
        case .em(.closedForm):
            newLambdas = config.prior.update(codes: codes, atoms: net.atoms)
        case .em(.backprop):
            let g = try Self.lambdaLossGradient(network: network, trace: trace!, codes: codes, lambdas: lambdas,
                                                sigma: config.sigma, prior: config.prior)
            var l = Tensor(shape: [net.atoms], data: lambdas)
            biasOpt.step(&l, gradient: Tensor(shape: [net.atoms], data: g))
            newLambdas = l.data.map { max($0, 1e-3) }   // λ > 0 (the loss has −log λ)
        }
        if config.bias != .freeBias { net.thresholds = net.emThresholds(lambdas: newLambdas, sigma: config.sigma) }
        if newLambdas.contains(where: { !$0.isFinite }) || net.thresholds.contains(where: { !$0.isFinite }) {
            throw UnrollError.diverged(step: thisStep, reason: "λ or the thresholds are not finite")
        }

        network = net
        lambdas = newLambdas
        filterOptimizers = optimizers
        biasOptimizer = biasOpt
        rng = nextRng
        step = thisStep
        if let every = config.learningRateStep, step % every == 0 {
            for i in filterOptimizers.indices { filterOptimizers[i].learningRate *= config.learningRateGamma }
            if config.bias == .freeBias { biasOptimizer.learningRate *= config.learningRateGamma }
        }
        return CRsAE2DRecord(step: step, reconstruction: rec,
                             density: 1 - Double(codes.zeroCount()) / Double(max(1, codes.count)),
                             meanThreshold: network.thresholds.reduce(0, +) / Float(network.atoms),
                             meanLambda: lambdas.reduce(0, +) / Float(lambdas.count), lipschitz: network.lipschitz,
                             seconds: secondsSince(t0))
    }
}
