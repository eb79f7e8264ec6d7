import Foundation
import UnrollCore

/// Peak signal-to-noise ratio of an image estimate, in dB:
///
///     PSNR = 20·log10(peak) − 10·log10(mse),  mse = mean((clamp(x̂, 0, 1) − x)²)
///
/// The estimate is clamped to [0, 1] first (PUDLE and CRsAE do the same). Two peaks are in use:
/// `.one` (the usual definition for images in [0, 1]) and `.cleanMax` = max(x), which PUDLE's and
/// CRsAE's code use; it is lower (by 20·log10(1/max x) dB) for images that never reach white.
public enum PSNR {
    public enum Peak: String, CaseIterable, Sendable {
        case one
        case cleanMax
    }

    /// PSNR of `estimate` against `clean` (same number of pixels). +inf when they are equal after clamping.
    public static func value(_ estimate: Tensor, clean: Tensor, peak: Peak = .one) -> Double {
        precondition(estimate.count == clean.count && clean.count > 0,
                     "PSNR: estimate has \(estimate.count) pixels, clean image \(clean.count)")
        var sum = 0.0, top = -Double.infinity
        estimate.data.withUnsafeBufferPointer { e in
            clean.data.withUnsafeBufferPointer { c in
                for i in 0..<c.count {
                    let d = Double(min(max(e[i], 0), 1)) - Double(c[i])
                    sum += d * d
                    top = max(top, Double(c[i]))
                }
            }
        }
        let mse = sum / Double(clean.count)
        let p = peak == .one ? 1.0 : top
        return 20 * log10(p) - 10 * log10(mse)
    }
}
