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
            try evaluateFlushed(input: input, target: target, operator: op, encoder: encoder, beta: beta)
        }
    }
}
