import UnrollCore

// PUDLE's Algorithm 1, the classical alternating-minimisation baseline:
//
//     repeat:  Z ← argmin_Z lasso(X, W, Z)    by FISTA from 0 until the relative change of the batch's
//                                               codes is below `tolerance` (or `maxIterations`)
//              W ← optimizer step along g_dec = (1/B)·Zᵀ(ZW − X)      (codes held fixed)
//              normalise the atoms
//
// It is the trainer's `decoder` mode with an encoder that runs to convergence instead of a fixed T.

extension TrainerConfig {
    /// Alternating minimisation (PUDLE's Algorithm 1): FISTA to `tolerance` (at most `maxIterations`),
    /// then a g_dec step with `optimizer`, then atom normalisation.
    public static func alternatingMinimization(
        lambda: Lambda, step: StepSize = .inverseLipschitz(), tolerance: Float = 1e-4,
        maxIterations: Int = 1000, threshold: Threshold = .soft, optimizer: Optimizer,
        batchSize: Int?, shuffle: Bool = true, seed: UInt64 = 0
    ) -> TrainerConfig {
        TrainerConfig(
            encoder: UnrolledEncoder(layers: maxIterations, algorithm: .fista, threshold: threshold,
                                     lambda: lambda, step: step, tolerance: tolerance),
            mode: .decoder, optimizer: optimizer,
            batchSize: batchSize, shuffle: shuffle, seed: seed, normalizeAtoms: true)
    }
}
