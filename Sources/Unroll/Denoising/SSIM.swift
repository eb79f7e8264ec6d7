import Foundation
import UnrollCore

/// Mean structural similarity (Wang, Bovik, Sheikh & Simoncelli 2004) of an image estimate against the
/// clean image, both `[H, W]` in [0, 1] (the estimate clamped first, as for `PSNR`): local means,
/// variances and covariance under an 11×11 Gaussian window (σ 1.5), C1 = (0.01)², C2 = (0.03)²,
///
///     SSIM = (2μₓμᵧ + C1)(2σₓᵧ + C2) / ((μₓ² + μᵧ² + C1)(σₓ² + σᵧ² + C2)),
///
/// averaged over the positions where the window lies inside the image. These are scikit-image's
/// `structural_similarity(…, data_range=1, gaussian_weights=True, sigma=1.5,
/// use_sample_covariance=False)` settings, which crop the same 5-pixel border.
public enum SSIM {
    /// The window's half-width (scikit-image: int(3.5·1.5 + 0.5)).
    public static let radius = 5

    public static func mean(_ estimate: Tensor, clean: Tensor) -> Double {
        precondition(estimate.shape == clean.shape && clean.rank == 2, "SSIM: estimate \(estimate.shape), clean \(clean.shape)")
        let (h, w, r) = (clean.shape[0], clean.shape[1], radius)
        precondition(h > 2 * r && w > 2 * r, "SSIM needs images larger than \(2 * r + 1) pixels per side")
        let g: [Double] = {
            let raw = (-r...r).map { exp(-Double($0 * $0) / (2 * 1.5 * 1.5)) }
            let total = raw.reduce(0, +)
            return raw.map { $0 / total }
        }()
        let x = estimate.data.map { Double(min(max($0, 0), 1)) }, y = clean.data.map(Double.init)
        // The five weighted local sums, separably: along rows (valid columns), then along columns.
        let fields = [x, y, zip(x, x).map(*), zip(y, y).map(*), zip(x, y).map(*)]
        let (hv, wv) = (h - 2 * r, w - 2 * r)
        let local: [[Double]] = fields.map { f in
            var rows = [Double](repeating: 0, count: h * wv)
            for i in 0..<h {
                for j in 0..<wv {
                    var s = 0.0
                    for t in 0...(2 * r) { s += g[t] * f[i * w + j + t] }
                    rows[i * wv + j] = s
                }
            }
            var out = [Double](repeating: 0, count: hv * wv)
            for i in 0..<hv {
                for j in 0..<wv {
                    var s = 0.0
                    for t in 0...(2 * r) { s += g[t] * rows[(i + t) * wv + j] }
                    out[i * wv + j] = s
                }
            }
            return out
        }
        let (c1, c2) = (0.01 * 0.01, 0.03 * 0.03)
        var total = 0.0
        for q in 0..<(hv * wv) {
            let (mx, my) = (local[0][q], local[1][q])
            let (vx, vy, cxy) = (local[2][q] - mx * mx, local[3][q] - my * my, local[4][q] - mx * my)
            total += ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        }
        return total / Double(hv * wv)
    }
}
