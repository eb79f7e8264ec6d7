import Foundation
import Unroll
import UnrollCore
import UnrollIO

/// `unroll bench conv-denoise`: one training step of PUDLE's image-denoising network (Table 1, reference §5)
/// beside the PyTorch reference `bench/conv_denoise_torch.py`, in the same invocation and thread count.
///
/// The network: 64 filters 9×9, stride 4 (`Convolution2DDictionary`), unrolled ISTA T = 15, α = 0.1, soft
/// threshold λα with λ = 0.16; g_ae-ls (½‖x_clean − D z_T‖² backpropagated through the T layers), Adam lr 1e-4
/// ε 1e-3, then every filter scaled to unit norm. One 129×129 crop (`--size`), batch 1, σ = 25/255.
///
/// One step is what `DenoisingTrainer.trainStep()` runs (`GradientMode.evaluate(input:target:…)`, Adam,
/// normalise) without the crop sampling: every step re-uses one clean crop (a synthetic piecewise-smooth image)
/// and one draw of noise; the peer reads the crops and the initial filters (`TrainingStepCase`).
enum ConvDenoiseBenchmark {
    static let `case` = BenchmarkCase(
        name: "conv-denoise",
        summary: "one PUDLE Table 1 denoising step (64 filters 9×9 s4, T 15, g_ae-ls, 129² crop --size, batch 1) vs PyTorch (bench/conv_denoise_torch.py)",
        run: { try run($0) })

    static let filters = 64, kernel = 9, stride = 4, layers = 15
    static let alpha: Float = 0.1, lambda: Float = 0.16, sigma: Float = 25.0 / 255
    static let learningRate: Float = 1e-4, epsilon: Float = 1e-3

    static var encoder: UnrolledEncoder {
        UnrolledEncoder(layers: layers, algorithm: .ista, threshold: .soft, lambda: .scalar(lambda), step: .fixed(alpha))
    }

    /// A piecewise-smooth image in [0, 1]: a ramp, 12 rectangles and 6 discs of random intensity
    /// (the peer's `synthetic_image` recipe, our generator).
    static func syntheticImage(size s: Int, rng: inout Random) -> Tensor {
        func u(_ a: Double = 0, _ b: Double = 1) -> Float { Float(rng.uniform(a, b)) }
        var img = [Float](repeating: 0, count: s * s)
        let gx = u(-0.2, 0.2), gy = u(-0.2, 0.2)
        let coord = { (i: Int) in Float(i) / Float(s) - 0.5 }
        for i in 0..<s { for j in 0..<s { img[i * s + j] = 0.5 + gx * coord(j) + gy * coord(i) } }
        for _ in 0..<12 {
            let top = Int(u() * Float(s)), left = Int(u() * Float(s))
            let h = 2 + Int(u() * Float(s) / 3), w = 2 + Int(u() * Float(s) / 3), v = u(-0.3, 0.3)
            for i in top..<min(s, top + h) { for j in left..<min(s, left + w) { img[i * s + j] += v } }
        }
        for _ in 0..<6 {
            let ci = u(-0.5, 0.5), cj = u(-0.5, 0.5), r = u(0.03, 0.2), v = u(-0.3, 0.3)
            for i in 0..<s {
                for j in 0..<s {
                    let di = coord(i) - ci, dj = coord(j) - cj
                    if di * di + dj * dj < r * r { img[i * s + j] += v }
                }
            }
        }
        return Tensor(shape: [s, s], data: img.map { min(max($0, 0), 1) })
    }

    /// The crop (clean and noisy, `[1, S, S]`) and the initial dictionary, all from `seed`.
    struct Problem {
        var clean: Tensor
        var noisy: Tensor
        var dictionary: Convolution2DDictionary
    }

    static func problem(size: Int, seed: UInt64) throws -> Problem {
        var rng = Random(seed: seed)
        let clean = syntheticImage(size: size, rng: &rng).reshaped([1, size, size])
        let noisy = DenoisingImages.addNoise(clean, sigma: sigma, rng: &rng)
        let d = try Convolution2DDictionary(filters: filters, kernel: kernel, stride: stride, height: size, width: size, rng: &rng)
        return Problem(clean: clean, noisy: noisy, dictionary: d)
    }

    /// The trained state and one step of `DenoisingTrainer` (minus the sampling).
    struct Training {
        var dictionary: Convolution2DDictionary
        var optimizer = Optimizer.adam(learningRate: ConvDenoiseBenchmark.learningRate, epsilon: ConvDenoiseBenchmark.epsilon)

        /// One g_ae-ls step; the loss before the update and the code density.
        mutating func step(_ p: Problem) throws -> (loss: Double, density: Double) {
            let r = try GradientMode.leastSquares.evaluate(input: p.noisy, target: p.clean, operator: dictionary,
                                                           encoder: ConvDenoiseBenchmark.encoder)
            var w = dictionary.weights
            optimizer.step(&w, gradient: r.gradient)
            dictionary.weights = w
            dictionary.normalize()
            return (r.losses.loss, 1 - Double(r.codes.zeroCount()) / Double(max(1, r.codes.count)))
        }
    }

    static func run(_ o: BenchOptions) throws -> BenchReport {
        let size = o.size ?? 129
        guard size >= kernel else { throw BenchError("conv-denoise: --size must be ≥ \(kernel) (the filter side), got \(size)") }
        let p = try problem(size: size, seed: 0)
        var training = Training(dictionary: p.dictionary)
        let setting = "\(filters) filters \(kernel)×\(kernel), stride \(stride), \(size)×\(size) crop"
            + (p.dictionary.fitsExactly ? "" : " (zero-padded to \(p.dictionary.paddedHeight)² inside the operator)")
            + ", batch 1, σ 25/255, ISTA T \(layers), α \(alpha), λ \(lambda), g_ae-ls, Adam lr \(learningRate) ε \(epsilon), "
            + "unit-norm filters; one step = encode + loss + backward through the layers + Adam + normalise; the same crop and noise every step"
        return try TrainingStepCase(
            name: "conv-denoise", row: "g_ae-ls step \(size)² T \(layers)", setting: setting, script: "conv_denoise_torch.py",
            inputs: [("clean", p.clean.reshaped([size, size])), ("noisy", p.noisy.reshaped([size, size])), ("filters", p.dictionary.weights)],
            step: { try training.step(p) },
            encodeOnly: { _ = try encoder.encode(p.noisy, with: training.dictionary) },
            target: BenchTargets.convDenoise).run(o)
    }
}
