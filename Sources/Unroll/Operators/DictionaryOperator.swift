import UnrollCore

/// A dictionary as a linear operator D from codes to signals, with its adjoint and the gradient
/// with respect to its weights (layer 2 of the design).
///
/// Batches are first: a batch of codes has shape `codeShape(signalShape:)` and a batch of signals
/// `signalShape(codeShape:)`, both with the batch as their first dimension. Inside one sample the
/// codes are laid out atom-major (`atoms` blocks of `positions` entries), so a per-atom value
/// (a threshold λ_j, say) applies to a contiguous run of entries: a dense dictionary has one position
/// per atom, a convolutional one has one per shift.
///
/// The unrolled encoders, their backward pass and the trainer are written once against this protocol.
/// A conforming type implements the required members; it may also provide a faster
/// `makeLayerKernel(signals:record:)` (the dense dictionary uses its Gram matrix), otherwise the generic
/// kernel built from `apply`, `adjoint` and `weightGradient` is used.
public protocol DictionaryOperator: Sendable {
    /// The learned parameters (dense: `[p, m]`, atoms as rows). Setting keeps the shape.
    var weights: Tensor { get set }

    /// Number of atoms (filters).
    var atoms: Int { get }

    /// The code-batch shape for a signal batch of `signalShape`; throws `UnrollError.shapeMismatch`
    /// when the signals do not fit the dictionary.
    func codeShape(signalShape: [Int]) throws -> [Int]

    /// The signal-batch shape a code batch of `codeShape` decodes to (throws when it does not fit).
    func signalShape(codeShape: [Int]) throws -> [Int]

    /// Decode: D z for every code in the batch (dense: X̂ = Z·W).
    func apply(_ codes: Tensor) -> Tensor

    /// Adjoint: Dᵀ r for every signal in the batch (dense: R·Wᵀ).
    func adjoint(_ signals: Tensor) -> Tensor

    /// ∂/∂weights of ⟨residual, apply(codes)⟩, summed over the batch (dense: Zᵀ·R, shape `[p, m]`).
    func weightGradient(residual: Tensor, codes: Tensor) -> Tensor

    /// Scales every atom (row of a dense dictionary, filter of a convolutional one) to unit ℓ2 norm.
    mutating func normalize()

    /// An estimate of ‖D‖₂² (the Lipschitz constant of the lasso's smooth part) by power iteration
    /// on DᵀD from a random start drawn from `rng`; the same seed gives the same estimate.
    func lipschitz(iterations: Int, rng: inout Random) -> Float

    /// The per-layer work of unrolled (F)ISTA for these weights and this signal batch; `record`: a
    /// backward pass will follow (the kernel may keep what it would otherwise recompute).
    /// Optional: the default is `GenericLayerKernel`, built from the members above.
    func makeLayerKernel(signals: Tensor, record: Bool) -> any UnrolledLayerKernel

    /// All T layers of a tied encoder at once, when the operator has a loop faster than the generic
    /// layer-by-layer one (dense: the sparsity-aware `DenseUnrolledEngine`). Optional: the default,
    /// nil, runs the generic loop over `makeLayerKernel`.
    func unrolledLoop(_ signals: Tensor, encoder: UnrolledEncoder, schedule: LayerSchedule, alpha: Float,
                      codeShape: [Int], record: Bool) -> (codes: Tensor, trace: EncoderTrace?, iterations: Int)?

    /// The same weights set for signals of `signalShape` (batch first). Optional: an operator whose
    /// geometry depends on the signal size (a 2-D convolution is set for one image size) returns a
    /// resized copy; the default returns `self`, and `codeShape` reports a mismatch.
    func adapted(toSignalShape signalShape: [Int]) throws -> Self
}

extension DictionaryOperator {
    public func makeLayerKernel(signals: Tensor, record: Bool) -> any UnrolledLayerKernel {
        GenericLayerKernel(operator: self, signals: signals, record: record)
    }

    public func adapted(toSignalShape signalShape: [Int]) throws -> Self { self }

    public func unrolledLoop(_ signals: Tensor, encoder: UnrolledEncoder, schedule: LayerSchedule, alpha: Float,
                             codeShape: [Int], record: Bool) -> (codes: Tensor, trace: EncoderTrace?, iterations: Int)? { nil }

    /// Power iteration on DᵀD for a single code of shape `[1, …]` (`codeShape`), as a building block
    /// for `lipschitz(iterations:rng:)`. Returns the Rayleigh quotient ‖D u‖² of the final unit vector
    /// (a lower bound that converges to ‖D‖₂²).
    public func powerIteration(codeShape: [Int], iterations: Int, rng: inout Random) -> Float {
        var u = Tensor.normal(codeShape, rng: &rng)
        func normalized(_ t: Tensor) -> Tensor {
            let n = t.squaredNorm().squareRoot()
            return n > 0 ? Float(1 / n) * t : t
        }
        u = normalized(u)
        for _ in 0..<max(0, iterations) {
            u = normalized(adjoint(apply(u)))
        }
        return Float(apply(u).squaredNorm())
    }

    /// Number of code entries per atom in one sample (1 for a dense dictionary).
    func positions(codeShape: [Int]) -> Int {
        let perSample = codeShape.dropFirst().reduce(1, *)
        return atoms > 0 ? perSample / atoms : 0
    }
}

/// The per-layer work of an unrolled (F)ISTA network for fixed weights W and a fixed signal batch x:
/// the gradient step v = y − α(DᵀD y − Dᵀx) and its backward pass. An untied network has a separate
/// analysis operator E in the correlation, v = y − α(EᵀD y − Eᵀx) (`GenericLayerKernel(operator:analysis:)`).
///
/// A kernel is created per forward pass (`DictionaryOperator.makeLayerKernel`), kept in the
/// `EncoderTrace`, and reused by the backward pass, which accumulates the layers' contributions to
/// ∂L/∂W inside it. It is a class because it caches (Dᵀx, the Gram matrix) and accumulates.
public protocol UnrolledLayerKernel: AnyObject {
    /// Layer t's v ← y − α(DᵀD y − Dᵀx). `y == nil` stands for y = 0 (then v = α Dᵀx). `v` has the code shape.
    func gradientStep(layer t: Int, from y: Tensor?, alpha: Float, into v: inout Tensor)

    /// Backward through layer t's v = y − α(DᵀD y − Dᵀx) given g = ∂L/∂v (y nil = 0), y as the forward
    /// had it: when `accumulate`, adds the contribution ∂L/∂W = −α[∂/∂W⟨g, DᵀD y⟩ − ∂/∂W⟨g, Dᵀx⟩] (work
    /// that may go to `lane`: nothing in the backward waits for it) and, when `wantInputGradient`, writes
    /// ∂L/∂y = g − α DᵀD g into `inputGradient` (same shape as g).
    func backwardStep(layer t: Int, g: Tensor, y: Tensor?, alpha: Float, inputGradient: inout Tensor,
                      wantInputGradient: Bool, accumulate: Bool, lane: Lane)

    /// Clears the accumulated weight gradient (a backward pass starts with this).
    func resetAccumulation()

    /// The weight gradient accumulated by `backwardStep` since the last reset (untied: the residual
    /// operator D's).
    func accumulatedWeightGradient() -> Tensor

    /// Untied kernels: the analysis operator E's accumulated gradient; nil when tied.
    func accumulatedAnalysisGradient() -> Tensor?
}

extension UnrolledLayerKernel {
    public func accumulatedAnalysisGradient() -> Tensor? { nil }
}

/// The layer kernel for any operator, from `apply`, `adjoint` and `weightGradient`, tied (E = D) or
/// untied (a separate analysis operator E, CRsAE's untied banks):
/// forward v = y − α(Eᵀ(D y) − c) with c = Eᵀx cached, and backward
///   ∂L/∂E += −α weightGradient_E(residual: D y − x, codes: g),
///   ∂L/∂D += −α weightGradient_D(residual: E g, codes: y),
///   ∂L/∂y  = g − α Dᵀ(E g)
/// (⟨g, Eᵀr⟩ = ⟨Eg, r⟩); tied, both terms go to the one W. At y = 0 only E's data term remains.
/// Recording, the forward keeps each layer's D y for the backward's residual D y − x: the layer's
/// backward runs four operator products instead of five, for a signal-sized tensor kept per layer.
public final class GenericLayerKernel<Op: DictionaryOperator>: UnrolledLayerKernel {
    let op: Op
    let analysis: Op?
    let signals: Tensor
    let dataTerm: Tensor   // Eᵀx
    var gradient: Tensor?
    var analysisGradient: Tensor?
    let record: Bool
    /// D y_t by layer t, kept by a recording forward.
    var synthesized: [Int: Tensor] = [:]

    public init(operator op: Op, analysis: Op? = nil, signals: Tensor, record: Bool = false) {
        self.op = op
        self.analysis = analysis
        self.signals = signals
        self.record = record
        self.dataTerm = (analysis ?? op).adjoint(signals)
    }

    public func gradientStep(layer t: Int, from y: Tensor?, alpha: Float, into v: inout Tensor) {
        guard let y else {
            v = alpha * dataTerm
            return
        }
        // v = (y − α·EᵀDy) + α·Eᵀx in one pass into v's own storage (the two-pass form's roundings).
        let dy = op.apply(y)
        if record { synthesized[t] = dy }
        let e = (analysis ?? op).adjoint(dy)
        if v.shape != y.shape { v = Tensor(zeros: y.shape) }
        let minusAlpha = -alpha
        v.data.withUnsafeMutableBufferPointer { pv in
            y.data.withUnsafeBufferPointer { py in
                e.data.withUnsafeBufferPointer { pe in
                    dataTerm.data.withUnsafeBufferPointer { pc in
                        for i in 0..<pv.count {
                            let t = py[i] + minusAlpha * pe[i]
                            pv[i] = t + alpha * pc[i]
                        }
                    }
                }
            }
        }
    }

    public func backwardStep(layer t: Int, g: Tensor, y: Tensor?, alpha: Float, inputGradient: inout Tensor,
                             wantInputGradient: Bool, accumulate: Bool, lane: Lane) {
        let e = analysis ?? op
        let dg = (y != nil || wantInputGradient) ? e.apply(g) : nil
        if accumulate {
            // The weight terms: two of the layer's four products, which the rest of the backward never reads.
            let dy = y.map { synthesized[t] ?? op.apply($0) }
            lane.run { [self] in
                if let y, var residual = dy {
                    residual.add(signals, scaledBy: -1)
                    var analysisTerm = e.weightGradient(residual: residual, codes: g)
                    let residualTerm = op.weightGradient(residual: dg!, codes: y)
                    if analysis == nil {
                        analysisTerm.add(residualTerm)
                        Self.accumulate((-alpha) * analysisTerm, into: &gradient)
                    } else {
                        Self.accumulate((-alpha) * analysisTerm, into: &analysisGradient)
                        Self.accumulate((-alpha) * residualTerm, into: &gradient)
                    }
                } else {
                    // y = 0: v = α Eᵀx, so only the data term depends on the weights (E's).
                    let term = alpha * e.weightGradient(residual: signals, codes: g)
                    if analysis == nil { Self.accumulate(term, into: &gradient) } else { Self.accumulate(term, into: &analysisGradient) }
                }
            }
        }
        if wantInputGradient {
            inputGradient = g
            inputGradient.add(op.adjoint(dg!), scaledBy: -alpha)
        }
    }

    private static func accumulate(_ term: Tensor, into sum: inout Tensor?) {
        if sum == nil { sum = term } else { sum!.add(term) }
    }

    public func resetAccumulation() {
        gradient = nil
        analysisGradient = nil
    }

    public func accumulatedWeightGradient() -> Tensor {
        gradient ?? Tensor(zeros: op.weights.shape)
    }

    public func accumulatedAnalysisGradient() -> Tensor? {
        analysis.map { analysisGradient ?? Tensor(zeros: $0.weights.shape) }
    }
}
