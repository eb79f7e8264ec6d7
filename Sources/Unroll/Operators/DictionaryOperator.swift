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
/// `makeLayerKernel(signals:)` (the dense dictionary uses its Gram matrix), otherwise the generic
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

    /// The per-layer work of unrolled (F)ISTA for these weights and this signal batch.
    /// Optional: the default is `GenericLayerKernel`, built from the members above.
    func makeLayerKernel(signals: Tensor) -> any UnrolledLayerKernel
}

extension DictionaryOperator {
    public func makeLayerKernel(signals: Tensor) -> any UnrolledLayerKernel {
        GenericLayerKernel(operator: self, signals: signals)
    }

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
/// the gradient step v = y − α(DᵀD y − Dᵀx) and its backward pass.
///
/// A kernel is created per forward pass (`DictionaryOperator.makeLayerKernel`), kept in the
/// `EncoderTrace`, and reused by the backward pass, which accumulates the layers' contributions to
/// ∂L/∂W inside it. It is a class because it caches (Dᵀx, the Gram matrix) and accumulates.
public protocol UnrolledLayerKernel: AnyObject {
    /// v ← y − α(DᵀD y − Dᵀx). `y == nil` stands for y = 0 (then v = α Dᵀx). `v` has the code shape.
    func gradientStep(from y: Tensor?, alpha: Float, into v: inout Tensor)

    /// Backward through v = y − α(DᵀD y − Dᵀx) given g = ∂L/∂v (y nil = 0): accumulates the
    /// contribution ∂L/∂W = −α[∂/∂W⟨g, DᵀD y⟩ − ∂/∂W⟨g, Dᵀx⟩] and, when `wantInputGradient`,
    /// writes ∂L/∂y = g − α DᵀD g into `inputGradient` (same shape as g).
    func backwardStep(g: Tensor, y: Tensor?, alpha: Float, inputGradient: inout Tensor, wantInputGradient: Bool)

    /// Clears the accumulated weight gradient (a backward pass starts with this).
    func resetAccumulation()

    /// The weight gradient accumulated by `backwardStep` since the last reset.
    func accumulatedWeightGradient() -> Tensor
}

/// The layer kernel for any operator, from `apply`, `adjoint` and `weightGradient`:
/// forward v = y − α(adjoint(apply(y)) − c) with c = adjoint(x) cached, and backward
///   ∂L/∂W += −α[ weightGradient(residual: apply(y) − x, codes: g) + weightGradient(residual: apply(g), codes: y) ],
///   ∂L/∂y  = g − α adjoint(apply(g)).
/// (⟨g, Dᵀr⟩ = ⟨Dg, r⟩, so W enters through both D in DᵀD y and Dᵀ in Dᵀ(Dy − x).)
public final class GenericLayerKernel<Op: DictionaryOperator>: UnrolledLayerKernel {
    let op: Op
    let signals: Tensor
    let dataTerm: Tensor   // Dᵀx
    var gradient: Tensor?

    public init(operator op: Op, signals: Tensor) {
        self.op = op
        self.signals = signals
        self.dataTerm = op.adjoint(signals)
    }

    public func gradientStep(from y: Tensor?, alpha: Float, into v: inout Tensor) {
        guard let y else {
            v = alpha * dataTerm
            return
        }
        v = y
        v.add(op.adjoint(op.apply(y)), scaledBy: -alpha)
        v.add(dataTerm, scaledBy: alpha)
    }

    public func backwardStep(g: Tensor, y: Tensor?, alpha: Float, inputGradient: inout Tensor,
                             wantInputGradient: Bool) {
        var contribution: Tensor
        let dg = (y != nil || wantInputGradient) ? op.apply(g) : nil
        if let y {
            var residual = op.apply(y)
            residual.add(signals, scaledBy: -1)
            contribution = op.weightGradient(residual: residual, codes: g)
            contribution.add(op.weightGradient(residual: dg!, codes: y))
            contribution = (-alpha) * contribution
        } else {
            // y = 0: v = α Dᵀx, so only the data term depends on W.
            contribution = alpha * op.weightGradient(residual: signals, codes: g)
        }
        if wantInputGradient {
            inputGradient = g
            inputGradient.add(op.adjoint(dg!), scaledBy: -alpha)
        }
        if gradient == nil {
            gradient = contribution
        } else {
            gradient!.add(contribution)
        }
    }

    public func resetAccumulation() { gradient = nil }

    public func accumulatedWeightGradient() -> Tensor {
        gradient ?? Tensor(zeros: op.weights.shape)
    }
}
