import UnrollCore

/// Which direction the dictionary moves along in one training step (PUDLE §1.2, plus NOODL's update).
///
/// Losses are averaged over the batch and summed over coordinates, with B the batch size:
///   rec   = ½ Σ_i ‖x_i − D z_i‖² / B
///   lasso = rec + Σ_i Σ_j λ_j |z_ij| / B      (λ = the encoder's λ, per atom if given; not β-decayed)
public enum GradientMode: String, CaseIterable, Equatable, Sendable {
    /// g_dec: codes held fixed (no backprop through the encoder), lasso loss;
    /// g = ∂lasso/∂W = (1/B)·Zᵀ(ZW − X) for a dense dictionary.
    case decoder
    /// g_ae-lasso: the lasso loss backpropagated through all T layers and the decoder.
    case lasso
    /// g_ae-ls: the reconstruction loss only, backpropagated through all T layers and the decoder.
    case leastSquares
    /// NOODL's update direction as PUDLE implemented it (not a gradient): codes fixed,
    /// G = (1/B²)·sign(Z)ᵀ(ZW − X) — the mean over the batch, divided by B once more (reference §1.3).
    /// Use with plain SGD at learning rate η (PUDLE: 20); see `TrainerConfig.noodl`.
    case noodl

    /// Whether this mode backpropagates through the encoder (needs the trace).
    public var throughEncoder: Bool { self == .lasso || self == .leastSquares }
}

/// Loss values of one batch (Double).
public struct LossBreakdown: Equatable, Sendable {
    /// The mode's objective: rec + penalty for `decoder` and `lasso`, rec for `leastSquares` and `noodl`.
    public var loss: Double
    /// ½ Σ‖x − x̂‖² / B.
    public var reconstruction: Double
    /// Mean ℓ1 norm of the codes, Σ|z| / B (not weighted by λ).
    public var l1: Double
    /// The λ-weighted penalty Σ λ_j |z_ij| / B.
    public var penalty: Double
}

/// The result of `GradientMode.evaluate`.
public struct GradientResult {
    public var losses: LossBreakdown
    /// ∂L/∂weights in the operator's weight layout (for `noodl`, its update direction).
    public var gradient: Tensor
    /// The encoder's output z_T for the batch.
    public var codes: Tensor
    /// The step α the encoder used.
    public var alpha: Float
    /// ∂L/∂E of an untied encoder's analysis bank (nil when tied).
    public var analysisGradient: Tensor?
}

extension GradientMode {
    /// Encodes `signals`, evaluates this mode's loss and its gradient with respect to `op.weights`.
    /// `beta` is the λ decay of the encoder layers (1 = none). Runs with denormals flushed to zero
    /// (restoring the caller's setting afterwards).
    /// `analysis`: an untied encoder's bank E (its gradient comes back in `analysisGradient`).
    public func evaluate<Op: DictionaryOperator>(
        signals: Tensor, operator op: Op, analysis: Op? = nil, encoder: UnrolledEncoder, beta: Float = 1
    ) throws -> GradientResult {
        try FlushDenormals.with(true) {
            try evaluateFlushed(input: signals, target: signals, operator: op, analysis: analysis, encoder: encoder, beta: beta)
        }
    }

    /// z = encoder(input), r = D z − target: the loss compares the decoded codes with `target`
    /// (the signals themselves, or the clean images of a denoising batch).
    func evaluateFlushed<Op: DictionaryOperator>(
        input signals: Tensor, target: Tensor, operator op: Op, analysis: Op? = nil, encoder: UnrolledEncoder, beta: Float
    ) throws -> GradientResult {
        let batch = signals.rows
        guard batch >= 1 else { throw UnrollError.invalidArgument("a batch needs at least one signal") }
        let invB = 1 / Float(batch)

        if analysis != nil && !throughEncoder {
            throw UnrollError.invalidArgument("an untied encoder's bank has a gradient only through the encoder (lasso, least-squares)")
        }
        let (codes, trace, alpha, _) = try encoder.run(signals, op, analysis: analysis, beta: beta, record: throughEncoder)
        var residual = op.apply(codes)
        residual.add(target, scaledBy: -1)               // r = D z − target

        let lambdas = encoder.lambda.values(atoms: op.atoms)
        let positions = op.positions(codeShape: codes.shape)
        let rec = 0.5 * residual.squaredNorm() / Double(batch)
        let (l1, penalty) = Self.l1Terms(codes, lambdas: lambdas, positions: positions)
        let losses = LossBreakdown(
            loss: (self == .decoder || self == .lasso) ? rec + penalty / Double(batch) : rec,
            reconstruction: rec, l1: l1 / Double(batch), penalty: penalty / Double(batch))

        var gradient: Tensor
        var analysisGradient: Tensor?
        switch self {
        case .decoder:
            gradient = invB * op.weightGradient(residual: residual, codes: codes)
        case .noodl:
            gradient = noodlDirection(residual: residual, codes: codes, operator: op)
        case .lasso, .leastSquares:
            // ∂L/∂z_T = Dᵀr/B (+ λ sign(z_T)/B for the lasso), then through the layers.
            var codeGradient = invB * op.adjoint(residual)
            if self == .lasso {
                Self.addSignTerm(codes, lambdas: lambdas, positions: positions, scale: invB, into: &codeGradient)
            }
            let g = trace!.gradients(codeGradient: codeGradient)
            gradient = g.weights!
            analysisGradient = g.analysis
            gradient.add(op.weightGradient(residual: residual, codes: codes), scaledBy: invB)
        }
        return GradientResult(losses: losses, gradient: gradient, codes: codes, alpha: alpha, analysisGradient: analysisGradient)
    }

    /// The decoder gradient for given codes: (1/B)·∂/∂W ½Σ‖x − Dz‖² = (1/B)·Zᵀ(ZW − X) for a dense
    /// dictionary. With converged lasso codes this is PUDLE's reference ĝ; with the true codes, g*.
    public static func decoderGradient<Op: DictionaryOperator>(signals: Tensor, codes: Tensor, operator op: Op) -> Tensor {
        var residual = op.apply(codes)
        residual.add(signals, scaledBy: -1)
        return (1 / Float(max(1, codes.rows))) * op.weightGradient(residual: residual, codes: codes)
    }

    /// (Σ|z|, Σ λ_j|z_ij|) over the batch, in Double.
    static func l1Terms(_ z: Tensor, lambdas: [Float], positions: Int) -> (Double, Double) {
        let atoms = lambdas.count, perSample = atoms * positions
        guard perSample > 0 else { return (0, 0) }
        return z.data.withUnsafeBufferPointer { p in
            var plain = 0.0, weighted = 0.0
            for i in 0..<(z.count / perSample) {
                for j in 0..<atoms {
                    var s = 0.0
                    let start = i * perSample + j * positions
                    for q in start..<(start + positions) { s += Double(abs(p[q])) }
                    plain += s
                    weighted += Double(lambdas[j]) * s
                }
            }
            return (plain, weighted)
        }
    }

    /// g += scale·λ_j·sign(z) (zero where z = 0).
    static func addSignTerm(_ z: Tensor, lambdas: [Float], positions: Int, scale: Float, into g: inout Tensor) {
        let atoms = lambdas.count, perSample = atoms * positions
        guard perSample > 0 else { return }
        z.data.withUnsafeBufferPointer { pz in
            g.data.withUnsafeMutableBufferPointer { pg in
                for i in 0..<(z.count / perSample) {
                    for j in 0..<atoms {
                        let w = scale * lambdas[j], start = i * perSample + j * positions
                        for q in start..<(start + positions) where pz[q] != 0 {
                            pg[q] += pz[q] > 0 ? w : -w
                        }
                    }
                }
            }
        }
    }
}
