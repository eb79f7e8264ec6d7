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
    public init(filters: [Tensor], thresholds: [Float], stride: Int, layers: Int, lipschitz: Float) throws {
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

    /// FISTA's μ_t = (s_t − 1)/s_{t+1}, s_1 = 1, for t = 1 … T.
    static func momentum(layers: Int) -> [Float] {
        var s = 1.0, out: [Float] = []
        for _ in 0..<layers {
            let next = (1 + (1 + 4 * s * s).squareRoot()) / 2
            out.append(Float((s - 1) / next))
            s = next
        }
        return out
    }

    /// What `forward` keeps for `backward`.
    public struct Trace {
        /// z_1 … z_T.
        var codes: [Tensor]
        var signals: Tensor
        var height: Int
        var width: Int
    }

    /// z_T and x̂ = Wd z_T for images `[B, H, W]` (any size ≥ K), with the trace when `record`.
    public func forward(_ images: Tensor, record: Bool = true) throws -> (codes: Tensor, reconstruction: Tensor, trace: Trace?) {
        guard images.rank == 3, images.count > 0 else {
            throw UnrollError.shapeMismatch("CRsAE input must be images [batch, height, width], got \(images.shape)")
        }
        if images.hasNonFinite { throw UnrollError.nonFinite("CRsAE input images contain NaN or Inf") }
        let (ht, wd) = (images.shape[1], images.shape[2])
        let ops = try operators(height: ht, width: wd)
        return FlushDenormals.with(true) {
            let mu = Self.momentum(layers: layers)
            let dataTerm = alpha * ops.we.adjoint(images)          // (1/L) Weᵀ x
            let positions = ops.h.codeHeight * ops.h.codeWidth
            var z = Tensor(zeros: dataTerm.shape), zPrev = z, y = z, v = z
            var history: [Tensor] = []
            for t in 1...layers {
                if t == 1 {
                    v = dataTerm
                } else {
                    // v = y + (1/L) Weᵀ(x − H y)
                    var r = images
                    r.add(ops.h.apply(y), scaledBy: -1)
                    v = y
                    v.add(ops.we.adjoint(r), scaledBy: alpha)
                }
                swap(&z, &zPrev)
                Threshold.soft.apply(v, thresholds: thresholds, positions: positions, into: &z)
                if record { history.append(z) }
                Self.extrapolate(z, zPrev, mu[t - 1], into: &y)
            }
            let trace = record ? Trace(codes: history, signals: images, height: ht, width: wd) : nil
            return (z, ops.wd.apply(z), trace)
        }
    }

    /// y = z + μ(z − zPrev)
    static func extrapolate(_ z: Tensor, _ zPrev: Tensor, _ mu: Float, into y: inout Tensor) {
        z.data.withUnsafeBufferPointer { pz in
            zPrev.data.withUnsafeBufferPointer { pp in
                y.data.withUnsafeMutableBufferPointer { py in
                    for i in 0..<pz.count { py[i] = pz[i] + mu * (pz[i] - pp[i]) }
                }
            }
        }
    }

    /// Gradients of a loss ℓ(z_T, x̂).
    public struct Gradients {
        /// ∂ℓ/∂ each bank, in the order of `filters` (tied: the sum of the three roles' terms).
        public var filters: [Tensor]
        /// ∂ℓ/∂b_c.
        public var thresholds: [Float]
    }

    /// Backward through the layers for ∂ℓ/∂z_T = `codeGradient` and, optionally, ∂ℓ/∂x̂ =
    /// `reconstructionGradient` (which adds Wd's own term and Wdᵀ(∂ℓ/∂x̂) to the code gradient).
    /// With `filterGradients` false only the threshold gradients are computed (the λ-loss needs no
    /// filter terms), which skips the weight products.
    public func backward(_ trace: Trace, codeGradient: Tensor?, reconstructionGradient: Tensor?,
                         filterGradients: Bool = true) throws -> Gradients {
        let ops = try operators(height: trace.height, width: trace.width)
        return FlushDenormals.with(true) {
            let mu = Self.momentum(layers: layers)
            let last = trace.codes[layers - 1]
            let n = last.count, positions = ops.h.codeHeight * ops.h.codeWidth
            var a = codeGradient ?? Tensor(zeros: last.shape)
            var dWd = Tensor(zeros: residualFilters.shape), dWe = dWd, dH = dWd
            if let gx = reconstructionGradient {
                a.add(ops.wd.adjoint(gx))
                if filterGradients { dWd = ops.wd.weightGradient(residual: gx, codes: last) }
            }
            var dB = [Double](repeating: 0, count: atoms)
            var aPartial = Tensor(zeros: last.shape), g = aPartial, y = aPartial
            for t in Swift.stride(from: layers, through: 1, by: -1) {
                let zt = trace.codes[t - 1]
                // g = 1{z_t ≠ 0}·a = ∂ℓ/∂v_t; ∂z/∂b = −sign(z) on the support.
                zt.data.withUnsafeBufferPointer { pz in
                    a.data.withUnsafeBufferPointer { pa in
                        g.data.withUnsafeMutableBufferPointer { pg in
                            for i in 0..<n { pg[i] = pz[i] != 0 ? pa[i] : 0 }
                            for q in 0..<(n / positions) {
                                var s = 0.0
                                for i in (q * positions)..<((q + 1) * positions) where pz[i] != 0 {
                                    s -= pz[i] > 0 ? Double(pg[i]) : -Double(pg[i])
                                }
                                dB[q % atoms] += s
                            }
                        }
                    }
                }
                if t == 1 {
                    // v_1 = (1/L) Weᵀx
                    if filterGradients { dWe.add(ops.we.weightGradient(residual: trace.signals, codes: g), scaledBy: alpha) }
                    break
                }
                // y_t from the stored outputs, as the forward formed it (z_0 = 0).
                let z1 = trace.codes[t - 2], m = mu[t - 2]
                z1.data.withUnsafeBufferPointer { p1 in
                    y.data.withUnsafeMutableBufferPointer { py in
                        if t >= 3 {
                            trace.codes[t - 3].data.withUnsafeBufferPointer { p2 in
                                for i in 0..<n { py[i] = p1[i] + m * (p1[i] - p2[i]) }
                            }
                        } else {
                            for i in 0..<n { py[i] = p1[i] * (1 + m) }
                        }
                    }
                }
                // v = y + α Weᵀ e, e = x − H y: ∂We += α ∂⟨e, We g⟩; ∂e = α We g; ∂H −= ∂⟨α We g, H y⟩.
                let q = alpha * ops.we.apply(g)
                if filterGradients {
                    var e = trace.signals
                    e.add(ops.h.apply(y), scaledBy: -1)
                    dWe.add(ops.we.weightGradient(residual: e, codes: g), scaledBy: alpha)
                    dH.add(ops.h.weightGradient(residual: q, codes: y), scaledBy: -1)
                }
                var dy = g
                dy.add(ops.h.adjoint(q), scaledBy: -1)
                // y_t = z_{t−1} + m(z_{t−1} − z_{t−2}): a_{t−1} = aPartial + (1 + m) dy; aPartial ← −m dy.
                a.data.withUnsafeMutableBufferPointer { pa in
                    aPartial.data.withUnsafeMutableBufferPointer { pp in
                        dy.data.withUnsafeBufferPointer { pd in
                            for i in 0..<n {
                                pa[i] = pp[i] + (1 + m) * pd[i]
                                pp[i] = -m * pd[i]
                            }
                        }
                    }
                }
            }
            let banks: [Tensor]
            if filters.count == 1 {
                var sum = dH
                sum.add(dWe)
                sum.add(dWd)
                banks = [sum]
            } else {
                banks = [dH, dWe, dWd]
            }
            return Gradients(filters: banks, thresholds: dB.map { Float($0) })
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
