import CUnrollSupport
import Foundation
import Testing
import Unroll
import UnrollCore

/// The denoiser's non-local stage: a direct sum in Double, the limits of h, the exponential it uses, the
/// bits at one and two workers, its place in `Denoiser.denoise`, and bad input.
@Suite struct NonLocalMeansTests {
    /// Index i reflected into 0..<n without repeating the edge (numpy's "reflect"), by walking.
    static func reflect(_ i: Int, _ n: Int) -> Int {
        if n == 1 { return 0 }
        var i = i
        while i < 0 || i >= n { i = i < 0 ? -i : 2 * (n - 1) - i }
        return i
    }

    /// û(p) by its definition, in Double, one pixel and one offset at a time (reflect padding by index).
    static func direct(_ u: Tensor, f: Int, d: Int, h: Double) -> [Double] {
        let (rows, cols) = (u.shape[0], u.shape[1])
        func at(_ i: Int, _ j: Int) -> Double { Double(u[reflect(i, rows), reflect(j, cols)]) }
        var out = [Double](repeating: 0, count: rows * cols)
        for i in 0..<rows {
            for j in 0..<cols {
                var (num, den) = (0.0, 0.0)
                for dy in -d...d {
                    for dx in -d...d {
                        var s = 0.0
                        for ki in -f...f { for kj in -f...f { let e = at(i + ki, j + kj) - at(i + dy + ki, j + dx + kj); s += e * e } }
                        let w = exp(-s / (Double((2 * f + 1) * (2 * f + 1)) * h * h))
                        num += w * at(i + dy, j + dx)
                        den += w
                    }
                }
                out[i * cols + j] = num / den
            }
        }
        return out
    }

    @Test(arguments: [(1, 2, 13, 17), (3, 4, 21, 9), (0, 1, 5, 6), (2, 5, 4, 40)])
    func matchesTheDirectSum(_ f: Int, _ d: Int, _ rows: Int, _ cols: Int) throws {
        var rng = Random(seed: UInt64(f * 100 + d))
        // A smooth image plus noise, so the weights span many orders of magnitude.
        var u = Tensor.normal([rows, cols], rng: &rng)
        for i in 0..<rows { for j in 0..<cols { u[i, j] = 0.5 + 0.3 * Float(sin(Double(i) / 3) * cos(Double(j) / 4)) + 0.05 * u[i, j] } }
        let sigma: Float = 0.05, nlm = try NonLocalMeans(strength: 0.8, patchRadius: f, searchRadius: d)
        let ours = try nlm.apply(u, sigma: sigma), reference = Self.direct(u, f: f, d: d, h: Double(0.8 * sigma))
        let worst = zip(ours.data, reference).map { abs(Double($0) - $1) / max(abs($1), 1e-3) }.max()!
        #expect(worst < 2e-5, "f \(f) d \(d) \(rows)×\(cols): worst relative difference \(worst)")
    }

    /// h → ∞: every weight 1, the mean of the (reflect-padded) window; h → 0: only the centre counts.
    @Test func limitsOfTheWidth() throws {
        var rng = Random(seed: 3)
        let u = Tensor.uniform([11, 14], rng: &rng)
        let wide = try NonLocalMeans(strength: 1e6, patchRadius: 1, searchRadius: 2).apply(u, sigma: 1)
        let mean = Self.direct(u, f: 0, d: 2, h: 1e12)
        #expect(zip(wide.data, mean).allSatisfy { abs(Double($0) - $1) < 1e-5 })
        let narrow = try NonLocalMeans(strength: 1e-6, patchRadius: 1, searchRadius: 2).apply(u, sigma: 1)
        #expect(zip(narrow.data, u.data).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) })
        let flat = Tensor(repeating: 0.375, shape: [9, 9])
        #expect(try NonLocalMeans(strength: 0.1).apply(flat, sigma: 0.1).data.allSatisfy { abs($0 - 0.375) < 1e-6 })
    }

    /// The weights' exponential: within 3e-7 relative of e^x on [−87, 0], and e^−87 below.
    @Test func exponentialIsAccurate() {
        var worst = 0.0
        for k in 0...87_000 {
            let x = -Float(k) / 1000, e = Double(unroll_nonlocal_exp(x)), exact = exp(Double(x))
            worst = max(worst, abs(e - exact) / exact)
        }
        #expect(worst < 3e-7, "worst relative error \(worst)")
        #expect(unroll_nonlocal_exp(-1e30) == unroll_nonlocal_exp(-87) && unroll_nonlocal_exp(0) == 1)
    }

    /// Each pixel depends on the image alone, so the bands' split over workers does not change a bit.
    @Test func sameBitsAtOneAndTwoWorkers() throws {
        var rng = Random(seed: 5)
        let u = Tensor.uniform([53, 37], rng: &rng), nlm = try NonLocalMeans(strength: 0.2)
        let one = try Parallel.withWorkers(1) { try nlm.apply(u, sigma: 0.3) }
        let two = try Parallel.withWorkers(2) { try nlm.apply(u, sigma: 0.3) }
        #expect(one.data == two.data)
    }

    /// `Denoiser.denoise` with the stage is the stage applied to its estimate without it, at the σ the
    /// noise-adaptive model is set for; without that σ it says so.
    @Test func denoiseEndsWithTheStage() throws {
        var rng = Random(seed: 7)
        let net = try CRsAE2DNetwork(atoms: 3, kernel: 3, stride: 2, layers: 4, lipschitz: 4, tying: .untied, threshold: 0.05, rng: &rng)
        let noisy = Tensor.uniform([15, 12], rng: &rng)
        let nlm = try NonLocalMeans(strength: 0.5, patchRadius: 1, searchRadius: 3)
        let plain = try net.autoencoder(height: 15, width: 12, adaptiveSigma: 0.1).atNoise(0.2)
        var staged = plain
        staged.nonLocal = nlm
        let expected = try nlm.apply(try Denoiser.denoise(noisy, model: plain), sigma: 0.2)
        #expect(try Denoiser.denoise(noisy, model: staged).data == expected.data)
        var fixed = try net.autoencoder(height: 15, width: 12)
        fixed.nonLocal = nlm
        #expect(throws: UnrollError.self) { try Denoiser.denoise(noisy, model: fixed) }
    }

    /// Training records the stage only where the denoiser will know σ: a noise range or the EM bias.
    @Test func trainingNeedsTheNoiseForTheStage() throws {
        var config = CRsAE2DConfig()
        config.bias = .freeBias
        config.denoiseNonLocal = try NonLocalMeans(strength: 0.1)
        #expect(throws: UnrollError.self) { try config.validate() }
        config.noiseRange = (5.0 / 255)...(55.0 / 255)
        try config.validate()
        config.noiseRange = nil
        config.bias = .em(form: .closedForm)
        try config.validate()
    }

    @Test func badInputGetsClearErrors() throws {
        for (strength, f, d) in [(Float(0), 3, 11), (-1, 3, 11), (.nan, 3, 11), (.infinity, 3, 11), (0.1, -1, 11), (0.1, 3, 0), (0.1, 65, 11)] {
            #expect(throws: UnrollError.self) { try NonLocalMeans(strength: strength, patchRadius: f, searchRadius: d) }
        }
        for (patch, window) in [(6, 23), (7, 1), (7, 22), (131, 23), (7, 131), (-1, 23)] {
            #expect(throws: UnrollError.self) { try NonLocalMeans(strength: 0.1, patchSide: patch, windowSide: window) }
        }
        #expect(try NonLocalMeans(strength: 0.1, patchSide: 5, windowSide: 15) == NonLocalMeans(strength: 0.1, patchRadius: 2, searchRadius: 7))
        let nlm = try NonLocalMeans(strength: 0.1)
        #expect(throws: UnrollError.self) { try nlm.apply(Tensor(zeros: [2, 3, 4]), sigma: 0.1) }
        #expect(throws: UnrollError.self) { try nlm.apply(Tensor(zeros: [3, 4]), sigma: 0) }
        #expect(throws: UnrollError.self) { try nlm.apply(Tensor(shape: [1, 2], data: [0, .nan]), sigma: 0.1) }
        #expect(throws: UnrollError.self) { try NonLocalMeans(strength: 1e-30).apply(Tensor(zeros: [3, 4]), sigma: 1e-10) }
    }
}
