import Foundation
import UnrollCore

/// Olshausen–Field whitening of natural images: the Fourier transform is multiplied by
/// R(f) = f · exp(−(f / f₀)⁴), which flattens the 1/f amplitude spectrum of natural scenes (the
/// ramp f) and rolls off the noisy highest frequencies (f₀ = 0.4 cycles per pixel, Olshausen's
/// 0.4·N cycles per picture for an N×N image). Frequencies are in cycles per pixel, so images
/// need not be square.
public enum Whitening {
    /// The whitening filter at frequency `f` (cycles per pixel).
    public static func response(_ f: Double, cutoff: Double = 0.4) -> Double {
        f * exp(-pow(f / cutoff, 4))
    }

    /// `image` `[height, width]` filtered circularly by `response`. The mean (f = 0) is removed.
    public static func whiten(_ image: Tensor, cutoff: Double = 0.4) -> Tensor {
        precondition(image.shape.count == 2, "whiten: expected [height, width], got \(image.shape)")
        let (h, w) = (image.shape[0], image.shape[1])
        // A separable DFT by matrix products: X̂ = E_h · X · E_w with E = C − iS.
        let (ch, sh) = dftMatrices(h), (cw, sw) = dftMatrices(w)
        let ar = image.matmul(cw), ai = -1 * image.matmul(sw)
        var br = ch.matmul(ar) + sh.matmul(ai)
        var bi = ch.matmul(ai) - sh.matmul(ar)
        var gain = [Float](repeating: 0, count: h * w)
        for u in 0..<h {
            let fu = signedFrequency(u, h)
            for v in 0..<w {
                let fv = signedFrequency(v, w)
                gain[u * w + v] = Float(response((fu * fu + fv * fv).squareRoot(), cutoff: cutoff))
            }
        }
        let filter = Tensor(shape: [h, w], data: gain)
        br = br * filter
        bi = bi * filter
        // Inverse: x = Re(E_h* · B · E_w*) / (h w), E* = C + iS.
        let gr = ch.matmul(br) - sh.matmul(bi)
        let gi = ch.matmul(bi) + sh.matmul(br)
        return (1 / Float(h * w)) * (gr.matmul(cw) - gi.matmul(sw))
    }

    /// Frequency of DFT index `k` of `n` in cycles per sample, in [−½, ½).
    static func signedFrequency(_ k: Int, _ n: Int) -> Double {
        Double(k <= (n - 1) / 2 ? k : k - n) / Double(n)
    }

    /// cos and sin of 2π jk/n, `[n, n]`; the angle is reduced mod n in integers for accuracy.
    static func dftMatrices(_ n: Int) -> (cos: Tensor, sin: Tensor) {
        var c = [Float](repeating: 0, count: n * n), s = c
        for j in 0..<n {
            for k in 0..<n {
                let angle = 2 * Double.pi * Double((j * k) % n) / Double(n)
                c[j * n + k] = Float(cos(angle))
                s[j * n + k] = Float(sin(angle))
            }
        }
        return (Tensor(shape: [n, n], data: c), Tensor(shape: [n, n], data: s))
    }
}

/// Square patches of whitened images, z-scored per pixel, as the linear-generator data of
/// variational sparse coding (Olshausen-style 16×16 patches).
public struct WhitenedPatches: Sendable {
    /// Training patches `[n, side²]`, z-scored.
    public var train: Tensor
    /// Validation patches `[n, side²]`, z-scored with the training statistics.
    public var validation: Tensor
    public var side: Int
    /// Per-pixel mean and standard deviation of the raw training patches (the z-scoring).
    public var mean: [Float]
    public var std: [Float]

    /// Whitens every image, then draws `train + validation` patch positions uniformly over all
    /// patches of all images (a position's chance is proportional to its image's patch count), so the
    /// split is by patch, as in the reference; `rng` makes the draw reproducible.
    public init(images: [Tensor], side: Int = 16, train: Int, validation: Int, cutoff: Double = 0.4,
                rng: inout Random) throws {
        guard side >= 2 else { throw UnrollError.invalidArgument("patch side \(side): expected ≥ 2") }
        guard train >= 2, validation >= 1 else {
            throw UnrollError.invalidArgument("patches: need ≥ 2 training and ≥ 1 validation patches, got \(train) and \(validation)")
        }
        guard !images.isEmpty else { throw UnrollError.invalidArgument("patches: no images") }
        for (i, image) in images.enumerated() {
            guard image.shape.count == 2, image.shape[0] >= side, image.shape[1] >= side else {
                throw UnrollError.shapeMismatch("image \(i) has shape \(image.shape): expected [height, width], both ≥ the patch side \(side)")
            }
            guard !image.hasNonFinite else { throw UnrollError.nonFinite("image \(i) contains NaN or infinite values") }
        }
        let whitened = images.map { Whitening.whiten($0, cutoff: cutoff) }
        let counts = whitened.map { ($0.shape[0] - side + 1) * ($0.shape[1] - side + 1) }
        let total = counts.reduce(0, +)
        let n = train + validation
        let dim = side * side
        var data = [Float](repeating: 0, count: n * dim)
        for r in 0..<n {
            var index = rng.int(below: total), image = 0
            while index >= counts[image] { index -= counts[image]; image += 1 }
            let x = whitened[image], cols = x.shape[1] - side + 1
            let (top, left) = (index / cols, index % cols)
            for i in 0..<side {
                for j in 0..<side {
                    data[r * dim + i * side + j] = x.data[(top + i) * x.shape[1] + left + j]
                }
            }
        }
        var mean = [Float](repeating: 0, count: dim), std = mean
        for k in 0..<dim {
            var s = 0.0, s2 = 0.0
            for r in 0..<train { let v = Double(data[r * dim + k]); s += v; s2 += v * v }
            let m = s / Double(train)
            mean[k] = Float(m)
            std[k] = Float(max(s2 / Double(train) - m * m, 1e-12).squareRoot())
        }
        for r in 0..<n {
            for k in 0..<dim { data[r * dim + k] = (data[r * dim + k] - mean[k]) / std[k] }
        }
        self.train = Tensor(shape: [train, dim], data: Array(data[0..<(train * dim)]))
        self.validation = Tensor(shape: [validation, dim], data: Array(data[(train * dim)...]))
        self.side = side
        self.mean = mean
        self.std = std
    }
}
