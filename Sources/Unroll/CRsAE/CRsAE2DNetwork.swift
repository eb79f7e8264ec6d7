import Foundation
import UnrollCore

/// CRsAE's 2-D denoising network (reference crsae §2, §6.2): T FISTA layers with step 1/L and a
/// two-sided ReLU of one threshold b_c per filter, then a linear decoder,
///
///     v_t = y_t + (1/L)·Weᵀ(x − H y_t),   z_t = S_b(v_t),   y_{t+1} = z_t + μ_t (z_t − z_{t−1}),   y_1 = 0
///     x̂   = Wd z_T
///
/// with three filter banks of C filters K×K at stride s (`Convolution2DDictionary` geometry: codes
/// cover every pixel, bottom/right zero-padded when the size does not fit the stride).
/// **Tied** (`filters.count == 1`): H = We = Wd, CRsAE proper. **Untied** (`filters.count == 3`):
/// H, We and Wd are separate parameters (the peer's `CRsAE2DUntied*`, all initialised to the same H).
///
/// The thresholds are the layer's biases b_c themselves: CRsAE's EM model sets b_c = λ_c σ²/L
/// (`thresholds(lambdas:sigma:)`), the free-bias baseline learns b_c directly.
/// `backward` gives the gradients of a loss of z_T with respect to every bank and to every b_c
/// (the latter is what the free bias and the backprop form of the EM λ update need).
public struct CRsAE2DNetwork: Equatable, Sendable {
    public enum Tying: String, CaseIterable, Equatable, Sendable { case tied, untied }

    /// `[H]` (tied) or `[H, We, Wd]` (untied), each `[C, 1, K, K]`.
    public var filters: [Tensor]
    /// b_c ≥ 0, one per filter.
    public var thresholds: [Float]
    /// Learned per-layer factors G_{t,c} ≥ 0 `[layers, C]`: layer t thresholds filter c at b_c·G_{t,c}
    /// (CSCNet's per-layer thresholds; nil: b_c in every layer).
    public var layerGains: Tensor?
    public let stride: Int
    public let layers: Int
    /// L (CRsAE: a fixed 10); the step is 1/L. It must bound ‖H‖₂‖We‖₂ for FISTA to converge
    /// (`CRsAE2DConfig.guardLipschitz` can raise it when learned filters outgrow it).
    public var lipschitz: Float {
        didSet { precondition(lipschitz.isFinite && lipschitz > 0, "CRsAE L must be finite and > 0, got \(lipschitz)") }
    }

    public var tying: Tying { filters.count == 1 ? .tied : .untied }
    public var atoms: Int { filters[0].shape[0] }
    public var kernel: Int { filters[0].shape[2] }
    public var alpha: Float { 1 / lipschitz }
    /// H (the operator inside the residual), We (the encoder's correlation), Wd (the decoder).
    public var residualFilters: Tensor { filters[0] }
    public var encoderFilters: Tensor { filters.count == 1 ? filters[0] : filters[1] }
    public var decoderFilters: Tensor { filters.count == 1 ? filters[0] : filters[2] }

    /// Throws for bad shapes, NaN/Inf, negative thresholds, stride/layers < 1, L ≤ 0.
    public init(filters: [Tensor], thresholds: [Float], stride: Int, layers: Int, lipschitz: Float, layerGains: Tensor? = nil) throws {
        guard filters.count == 1 || filters.count == 3 else {
            throw UnrollError.invalidArgument("a CRsAE 2-D network has 1 filter bank (tied) or 3 (untied: H, We, Wd), got \(filters.count)")
        }
        let shape = filters[0].shape
        guard shape.count == 4, shape[1] == 1, shape[2] == shape[3], shape[0] >= 1, shape[2] >= 1 else {
            throw UnrollError.shapeMismatch("CRsAE filters must be [C, 1, K, K], got \(shape)")
        }
        for f in filters {
            guard f.shape == shape else { throw UnrollError.shapeMismatch("CRsAE filter banks differ in shape: \(f.shape) vs \(shape)") }
            if f.hasNonFinite { throw UnrollError.nonFinite("CRsAE filters contain NaN or Inf") }
        }
        guard thresholds.count == shape[0] else {
            throw UnrollError.shapeMismatch("CRsAE needs one threshold per filter (\(shape[0])), got \(thresholds.count)")
        }
        guard thresholds.allSatisfy({ $0.isFinite && $0 >= 0 }) else { throw UnrollError.invalidArgument("CRsAE thresholds must be finite and ≥ 0") }
        guard stride >= 1 else { throw UnrollError.invalidArgument("CRsAE stride must be ≥ 1, got \(stride)") }
        guard layers >= 1 else { throw UnrollError.invalidArgument("CRsAE layers T must be ≥ 1, got \(layers)") }
        guard lipschitz.isFinite, lipschitz > 0 else { throw UnrollError.invalidArgument("CRsAE L must be finite and > 0, got \(lipschitz)") }
        if let g = layerGains {
            guard g.shape == [layers, shape[0]] else { throw UnrollError.shapeMismatch("CRsAE layer gains must be [\(layers), \(shape[0])], got \(g.shape)") }
            guard g.data.allSatisfy({ $0.isFinite && $0 >= 0 }) else { throw UnrollError.invalidArgument("CRsAE layer gains must be finite and ≥ 0") }
        }
        self.layerGains = layerGains
        self.filters = filters
        self.thresholds = thresholds
        self.stride = stride
        self.layers = layers
        self.lipschitz = lipschitz
    }

    /// Random unit-norm filters (Gaussian, CRsAE's init); untied copies the same bank three times.
    public init(atoms c: Int, kernel k: Int, stride: Int, layers: Int, lipschitz: Float, tying: Tying,
                threshold: Float, rng: inout Random) throws {
        guard c >= 1, k >= 1 else { throw UnrollError.invalidArgument("need ≥ 1 filters of size ≥ 1, got \(c) of \(k)×\(k)") }
        var w = Tensor.normal([c, 1, k, k], rng: &rng)
        Convolution2DDictionary.normalizeFilters(&w)
        try self.init(filters: tying == .tied ? [w] : [w, w, w], thresholds: [Float](repeating: threshold, count: c),
                      stride: stride, layers: layers, lipschitz: lipschitz)
    }

    /// b_c = λ_c σ²/L, the EM model's thresholds.
    public func emThresholds(lambdas: [Float], sigma: Float) -> [Float] {
        lambdas.map { $0 * sigma * sigma / lipschitz }
    }

    /// The operators of the three roles for `height`×`width` images.
    func operators(height: Int, width: Int) throws -> (h: Convolution2DDictionary, we: Convolution2DDictionary, wd: Convolution2DDictionary) {
        let h = try Convolution2DDictionary(filters: residualFilters, stride: stride, height: height, width: width)
        if filters.count == 1 { return (h, h, h) }
        return (h, try Convolution2DDictionary(filters: encoderFilters, stride: stride, height: height, width: width),
                try Convolution2DDictionary(filters: decoderFilters, stride: stride, height: height, width: width))
    }

    /// The encoder: T FISTA layers of step 1/L whose per-filter thresholds are the biases b_c themselves.
    public var encoder: UnrolledEncoder {
        UnrolledEncoder(layers: layers, algorithm: .fista, threshold: .soft, lambda: .perAtom(thresholds),
                        step: .fixed(alpha), lambdaIsPenalty: false, layerGains: layerGains)
    }

    /// The network as the one model value: D = H, E = We and the decoder Wd (untied), this encoder,
    /// the EM state or the adaptive σ when given, and CRsAE's shift-averaged denoising; set for
    /// `height`×`width` images (resized per image when used).
    public func autoencoder(height: Int, width: Int, em: EMLambda? = nil, adaptiveSigma: Float? = nil,
                            shifts: ShiftSet = .all, nonLocal: NonLocalMeans? = nil) throws -> UnrolledAutoencoder<Convolution2DDictionary> {
        let ops = try operators(height: height, width: width)
        return try UnrolledAutoencoder(dictionary: ops.h, analysis: filters.count == 1 ? nil : ops.we,
                                       synthesis: filters.count == 1 ? nil : ops.wd, encoder: encoder, em: em, shiftAverage: true,
                                       shifts: shifts, adaptiveSigma: adaptiveSigma, nonLocal: nonLocal)
    }

    /// The reconstruction of a noisy `[H, W]` image (not clamped), with or without the s² shift average.
    public func denoise(_ noisy: Tensor, shiftAverage: Bool, chunk: Int = 5) throws -> Tensor {
        try DenoisingImages.validate([noisy], what: "image", minimumSide: kernel)
        return try Denoiser.denoise(noisy, model: autoencoder(height: noisy.shape[0], width: noisy.shape[1]),
                                    shiftAverage: shiftAverage, chunk: chunk)
    }

    /// Noisy copies of `images` from `seed`, denoised and scored (`Denoiser.evaluate`).
    public func evaluate(clean images: [Tensor], sigma: Float, seed: UInt64, shiftAverage: Bool) throws -> Denoiser.Evaluation {
        try DenoisingImages.validate(images, what: "test image", minimumSide: kernel)
        return try Denoiser.evaluate(clean: images, sigma: sigma, seed: seed,
                                     model: autoencoder(height: images[0].shape[0], width: images[0].shape[1]), shiftAverage: shiftAverage)
    }

    /// What `forward` keeps for `backward`.
    public struct Trace {
        var encoder: EncoderTrace
        var height: Int
        var width: Int
    }

    /// z_T and x̂ = Wd z_T for images `[B, H, W]` (any size ≥ K), with the trace when `record`.
    /// The encoder is the one unrolled loop (`UnrolledEncoder`), untied through its analysis operator.
    public func forward(_ images: Tensor, record: Bool = true) throws -> (codes: Tensor, reconstruction: Tensor, trace: Trace?) {
        guard images.rank == 3, images.count > 0 else {
            throw UnrollError.shapeMismatch("CRsAE input must be images [batch, height, width], got \(images.shape)")
        }
        if images.hasNonFinite { throw UnrollError.nonFinite("CRsAE input images contain NaN or Inf") }
        let (ht, wd) = (images.shape[1], images.shape[2])
        let ops = try operators(height: ht, width: wd)
        let analysis = filters.count == 1 ? nil : ops.we
        if !record {
            let codes = try encoder.encode(images, with: ops.h, analysis: analysis)
            return (codes, ops.wd.apply(codes), nil)
        }
        let (codes, trace) = try encoder.forward(images, with: ops.h, analysis: analysis)
        return (codes, ops.wd.apply(codes), Trace(encoder: trace, height: ht, width: wd))
    }

    /// Gradients of a loss ℓ(z_T, x̂).
    public struct Gradients {
        /// ∂ℓ/∂ each bank, in the order of `filters` (tied: the sum of the three roles' terms).
        public var filters: [Tensor]
        /// ∂ℓ/∂b_c.
        public var thresholds: [Float]
        /// ∂ℓ/∂G_{t,c} when the network has layer gains.
        public var layerGains: Tensor?
    }

    /// Backward through the layers for ∂ℓ/∂z_T = `codeGradient` and, optionally, ∂ℓ/∂x̂ =
    /// `reconstructionGradient` (which adds Wd's own term and Wdᵀ(∂ℓ/∂x̂) to the code gradient).
    /// With `filterGradients` false only the threshold gradients are computed (the λ-loss needs no
    /// filter terms), which skips the weight products.
    public func backward(_ trace: Trace, codeGradient: Tensor?, reconstructionGradient: Tensor?,
                         filterGradients: Bool = true) throws -> Gradients {
        let ops = try operators(height: trace.height, width: trace.width)
        return FlushDenormals.with(true) {
            let last = trace.encoder.layerCodes(trace.encoder.layers)
            var a = codeGradient ?? Tensor(zeros: last.shape)
            var dWd = Tensor(zeros: residualFilters.shape)
            if let gx = reconstructionGradient {
                a.add(ops.wd.adjoint(gx))
                if filterGradients { dWd = ops.wd.weightGradient(residual: gx, codes: last) }
            }
            let g = trace.encoder.gradients(codeGradient: a, weights: filterGradients, lambda: true)
            let dH = g.weights ?? Tensor(zeros: residualFilters.shape)
            let banks: [Tensor]
            if filters.count == 1 {
                var sum = dH
                sum.add(dWd)
                banks = [sum]
            } else {
                banks = [dH, g.analysis ?? Tensor(zeros: residualFilters.shape), dWd]
            }
            return Gradients(filters: banks, thresholds: g.lambda!, layerGains: g.layerGains)
        }
    }

    /// Unit-norm filters in every bank.
    public mutating func normalize() {
        for i in filters.indices { Convolution2DDictionary.normalizeFilters(&filters[i]) }
    }

    /// ‖H‖₂² (tied) or ‖H‖₂‖We‖₂ (untied) by power iteration on a `side`×`side` image: the
    /// quantity L must bound (to compare with L; ‖D‖₂² barely depends on the size for large images).
    public func estimatedLipschitz(side: Int = 64, iterations: Int = 50, seed: UInt64 = 0) throws -> Float {
        let n = max(side, kernel)
        func normSquared(_ w: Tensor) throws -> Float {
            var rng = Random(seed: seed)
            return try Convolution2DDictionary(filters: w, stride: stride, height: n, width: n).lipschitz(iterations: iterations, rng: &rng)
        }
        let h = try normSquared(residualFilters)
        return filters.count == 1 ? h : (h * (try normSquared(encoderFilters))).squareRoot()
    }
}
