import UnrollCore

/// What a denoising network's output is compared with in the loss.
public enum DenoisingTarget: String, CaseIterable, Sendable {
    /// The clean image (supervised; PUDLE's and CRsAE's denoising runs).
    case clean
    /// The noisy input itself (unsupervised dictionary learning on noisy data).
    case noisy
}

extension GradientMode {
    /// `evaluate(signals:operator:encoder:beta:)` with the encoder's input and the loss target apart:
    /// z = encoder(input), r = D z − target, and the mode's loss and gradient of
    ///   rec = ½ Σ‖target − D z‖² / B  (+ Σ λ|z| / B for `decoder` and `lasso`).
    /// The backward pass through the layers uses the trace of the encoder run on `input`.
    /// With target = input this is `evaluate(signals:…)`. `noodl` is not a gradient and is refused.
    public func evaluate<Op: DictionaryOperator>(
        input: Tensor, target: Tensor, operator op: Op, encoder: UnrolledEncoder, beta: Float = 1
    ) throws -> GradientResult {
        guard self != .noodl else { throw UnrollError.invalidArgument("the noodl update has no denoising form; use decoder, lasso or least-squares") }
        guard input.shape == target.shape else {
            throw UnrollError.shapeMismatch("denoising input \(input.shape) and target \(target.shape) differ in shape")
        }
        return try FlushDenormals.with(true) {
            let batch = input.rows
            guard batch >= 1 else { throw UnrollError.invalidArgument("a batch needs at least one signal") }
            let invB = 1 / Float(batch)
            let (codes, trace, alpha) = try encoder.run(input, op, beta: beta, record: throughEncoder)
            var residual = op.apply(codes)
            residual.add(target, scaledBy: -1)               // r = D z − target

            let lambdas = encoder.lambda.values(atoms: op.atoms)
            let positions = op.positions(codeShape: codes.shape)
            let rec = 0.5 * residual.squaredNorm() / Double(batch)
            let (l1, penalty) = Self.l1Terms(codes, lambdas: lambdas, positions: positions)
            let losses = LossBreakdown(
                loss: (self == .decoder || self == .lasso) ? rec + penalty / Double(batch) : rec,
                reconstruction: rec, l1: l1 / Double(batch), penalty: penalty / Double(batch))

            var gradient = invB * op.weightGradient(residual: residual, codes: codes)
            if throughEncoder {
                var codeGradient = invB * op.adjoint(residual)
                if self == .lasso {
                    Self.addSignTerm(codes, lambdas: lambdas, positions: positions, scale: invB, into: &codeGradient)
                }
                gradient.add(encoder.backward(trace!, codeGradient: codeGradient))
            }
            return GradientResult(losses: losses, gradient: gradient, codes: codes, alpha: alpha)
        }
    }
}
