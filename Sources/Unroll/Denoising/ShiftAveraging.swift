import Foundation
import UnrollCore

/// CRsAE's s² shift averaging for strided 2-D models (reference crsae §2, the peer's `split_image`),
/// used by `Denoiser.denoise(_:model:shiftAverage:)`: a strided encoder sees only one phase of the
/// image against its code grid, so the image is reflect-padded s² times, shifted by (i, j) ∈ [0, s)²,
/// each copy is encoded and decoded, cropped back to the image, and the s² reconstructions are averaged.
///
/// Copy (i, j) has s + i rows reflected above the image and s + j columns on the left (every phase
/// of the grid once, with at least s pixels of context on each side), and is padded at the
/// bottom/right (reflected) to the common size P = the smallest P ≥ H + 3s − 1 with (P − K) % s = 0,
/// so every copy fits the stride exactly and all copies share one batch.
extension Denoiser {
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

    /// The mean of the s² reconstructions of the shifted copies of `noisy` `[H, W]`, `chunk` copies
    /// per call of `reconstruct` (`[B, P, P]` → `[B, P, P]`).
    static func averageOverShifts(_ noisy: Tensor, stride: Int, kernel: Int, chunk: Int,
                                  reconstruct: (Tensor) throws -> Tensor) throws -> Tensor {
        let (h, w) = (noisy.shape[0], noisy.shape[1])
        let s = stride
        let pw = shiftPaddedSide(w, stride: s, kernel: kernel), ph = shiftPaddedSide(h, stride: s, kernel: kernel)
        let shifts = (0..<s).flatMap { i in (0..<s).map { j in (i, j) } }
        var sum = [Double](repeating: 0, count: h * w)
        for start in Swift.stride(from: 0, to: shifts.count, by: max(1, chunk)) {
            let part = Array(shifts[start..<min(shifts.count, start + max(1, chunk))])
            let rec = try reconstruct(shiftedCopies(noisy, shifts: part, stride: s, kernel: kernel))
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
}
