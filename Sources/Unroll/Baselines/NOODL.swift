import UnrollCore

// NOODL (Rambhatla, Li & Haupt, ICLR 2019) as PUDLE's `train_dl_compare_baselines.py` runs it
// (grad_method "g_noodl", reference §1.3):
//
//     z = stopgrad(IHT encoder: hard threshold τ = 0.1, α = 0.2, T = 100, from z₀ = 0)
//     G = mean_b[(D z_b − x_b) sign(z_b)ᵀ] / B        ← the batch mean, then divided by B once more
//     D ← D − η G,  η = 20;  normalise the atoms
//
// We keep the double division by B so the published step size means the same thing; in the
// atoms-as-rows layout G = (1/B²)·sign(Z)ᵀ(ZW − X). The original MATLAB NOODL differs (codes
// initialised by thresholding Dᵀy, IHT run to convergence, step η_A/p on the plain sum) — that
// variant is not implemented here.

extension GradientMode {
    /// NOODL's direction (1/B²)·∂/∂W⟨r, D·sign(Z)⟩ = (1/B²)·sign(Z)ᵀ·R for a dense dictionary.
    func noodlDirection<Op: DictionaryOperator>(residual: Tensor, codes: Tensor, operator op: Op) -> Tensor {
        let b = Float(codes.rows)
        let signs = codes.map { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }
        return (1 / (b * b)) * op.weightGradient(residual: residual, codes: signs)
    }
}

extension TrainerConfig {
    /// NOODL as PUDLE ran it: ISTA with a hard threshold τ (0.1), step α (0.2), T layers (100) from 0,
    /// the `noodl` update direction, and plain SGD with learning rate η (20); atoms normalised every step.
    public static func noodl(tau: Float = 0.1, alpha: Float = 0.2, layers: Int = 100, eta: Float = 20,
                             batchSize: Int?, shuffle: Bool = true, seed: UInt64 = 0) -> TrainerConfig {
        TrainerConfig(
            encoder: UnrolledEncoder(layers: layers, algorithm: .ista, threshold: .hard,
                                     lambda: .scalar(tau), step: .fixed(alpha)),
            mode: .noodl, optimizer: .sgd(learningRate: eta),
            batchSize: batchSize, shuffle: shuffle, seed: seed, normalizeAtoms: true)
    }
}
