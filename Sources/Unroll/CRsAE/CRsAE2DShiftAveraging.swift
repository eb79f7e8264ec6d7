import Foundation
import UnrollCore

/// Whole-image denoising with a CRsAE 2-D network, plain or with CRsAE's s² shift averaging
/// (reference crsae §2, the peer's `split_image`): a strided encoder sees only one phase of the
/// image against its code grid, so the image is reflect-padded s² times, shifted by (i, j) ∈ [0, s)²,
/// each copy is encoded and decoded, cropped back to the image, and the s² reconstructions are averaged.
///
/// Copy (i, j) has s + i rows reflected above the image and s + j columns on the left (every phase
/// of the grid once, with at least s pixels of context on each side), and is padded at the
/// bottom/right (reflected) to the common size P = the smallest P ≥ H + 3s − 1 with (P − K) % s = 0,
/// so every copy fits the stride exactly and all copies share one batch.
extension CRsAE2DNetwork {
    /// The padded side for an image side `n` (see the type comment).
    public static func shiftPaddedSide(_ n: Int, stride s: Int, kernel k: Int) -> Int {
        var p = max(n + 3 * s - 1, k)
        while (p - k) % s != 0 { p += 1 }
        return p
    }

    /// Index `i` reflected into 0..<n without repeating the edge (numpy's "reflect"; any i).
    static func reflect(_ i: Int, _ n: Int) -> Int {
        if n == 1 { return 0 }
        let period = 2 * (n - 1)
        var r = i % period
        if r < 0 { r += period }
        return r < n ? r : period - r
    }

    /// The shifted, reflect-padded copies of `image` [H, W] for shifts `shifts` (row-major pairs).
    static func shiftedCopies(_ image: Tensor, shifts: [(Int, Int)], stride s: Int, kernel k: Int) -> Tensor {
        let (h, w) = (image.shape[0], image.shape[1])
        let (ph, pw) = (shiftPaddedSide(h, stride: s, kernel: k), shiftPaddedSide(w, stride: s, kernel: k))
        var out = Tensor(zeros: [shifts.count, ph, pw])
        let cols = (0..<pw).map { $0 }
        image.data.withUnsafeBufferPointer { src in
            out.data.withUnsafeMutableBufferPointer { dst in
                for (b, (i, j)) in shifts.enumerated() {
                    let colIndex = cols.map { reflect($0 - (s + j), w) }
                    for r in 0..<ph {
                        let row = reflect(r - (s + i), h) * w, o = (b * ph + r) * pw
                        for c in 0..<pw { dst[o + c] = src[row + colIndex[c]] }
                    }
                }
            }
        }
        return out
    }

    /// The reconstruction of a noisy `[H, W]` image (not clamped). With `shiftAverage` (and stride > 1)
    /// the mean of the s² shifted reconstructions, encoded `chunk` copies at a time; otherwise one pass
    /// over the image itself.
    public func denoise(_ noisy: Tensor, shiftAverage: Bool, chunk: Int = 5) throws -> Tensor {
        try DenoisingImages.validate([noisy], what: "image", minimumSide: kernel)
        let (h, w) = (noisy.shape[0], noisy.shape[1])
        guard shiftAverage, stride > 1 else {
            return try forward(noisy.reshaped([1, h, w]), record: false).reconstruction.reshaped([h, w])
        }
        let s = stride
        let pw = Self.shiftPaddedSide(w, stride: s, kernel: kernel), ph = Self.shiftPaddedSide(h, stride: s, kernel: kernel)
        let shifts = (0..<s).flatMap { i in (0..<s).map { j in (i, j) } }
        var sum = [Double](repeating: 0, count: h * w)
        for start in Swift.stride(from: 0, to: shifts.count, by: max(1, chunk)) {
            let part = Array(shifts[start..<min(shifts.count, start + max(1, chunk))])
            let copies = Self.shiftedCopies(noisy, shifts: part, stride: s, kernel: kernel)
            let rec = try forward(copies, record: false).reconstruction
            rec.data.withUnsafeBufferPointer { p in
                for (b, (i, j)) in part.enumerated() {
                    for r in 0..<h {
                        let o = (b * ph + r + s + i) * pw + s + j
                        for c in 0..<w { sum[r * w + c] += Double(p[o + c]) }
                    }
                }
            }
        }
        let inv = 1 / Double(shifts.count)
        return Tensor(shape: [h, w], data: sum.map { Float($0 * inv) })
    }

    /// Adds N(0, σ²) noise to each clean image (from `seed`: the same noisy set for every model),
    /// denoises it and scores it (both PSNR peaks).
    public func evaluate(clean images: [Tensor], sigma: Float, seed: UInt64, shiftAverage: Bool) throws -> Denoiser.Evaluation {
        try DenoisingImages.validateSigma(sigma)
        try DenoisingImages.validate(images, what: "test image", minimumSide: kernel)
        var rng = Random(seed: seed)
        var scores: [Denoiser.Score] = []
        for clean in images {
            let noisy = DenoisingImages.addNoise(clean, sigma: sigma, rng: &rng)
            scores.append(Denoiser.Score(noisy: noisy, denoised: try denoise(noisy, shiftAverage: shiftAverage), clean: clean))
        }
        return Denoiser.Evaluation(scores: scores)
    }
}
