import CUnrollSupport
import UnrollCore

/// A non-local means (Buades, Coll & Morel 2005) of a denoised image, the denoiser's last stage: each pixel
/// becomes the mean of the pixels around it in a (2d+1)² search window, weighted by how alike their
/// (2f+1)² patches are,
///
///     û(p) = Σ_o w(p, o) u(p + o) / Σ_o w(p, o),   w(p, o) = exp(−‖u(P_p) − u(P_{p+o})‖² / ((2f+1)² h²)),
///
/// with h = `strength`·σ for noise of σ, and the image reflect-padded (numpy's "reflect") at its edges.
/// The weights come from the estimate itself, not from the noisy input: the convolutional model leaves
/// a small error that differs between patches which are alike, and the mean over them removes it
/// (docs/denoising.md measures it on the held-out images; averaging the noisy pixels instead lost
/// 0.16–4.9 dB there). It is the model's one non-local step: the filters see 11×11 pixels, the search
/// window 2d + f + 1 on each side.
public struct NonLocalMeans: Equatable, Sendable {
    /// h/σ: the weights' width in units of the input's noise σ.
    public var strength: Float
    /// f: patches of (2f+1)² pixels.
    public var patchRadius: Int
    /// d: offsets in [−d, d]².
    public var searchRadius: Int

    /// The shipped models' patch (7×7) and window (23×23).
    public static let defaultPatchRadius = 3, defaultSearchRadius = 11

    /// Throws unless strength > 0 and finite, f ≥ 0 and d ≥ 1 (both ≤ 64).
    public init(strength: Float, patchRadius: Int = defaultPatchRadius, searchRadius: Int = defaultSearchRadius) throws {
        guard strength.isFinite, strength > 0 else {
            throw UnrollError.invalidArgument("the non-local means' strength h/σ must be finite and > 0, got \(strength)")
        }
        guard (0...64).contains(patchRadius), (1...64).contains(searchRadius) else {
            throw UnrollError.invalidArgument("the non-local means needs a patch radius in 0...64 and a search radius in 1...64, got \(patchRadius) and \(searchRadius)")
        }
        self.strength = strength
        self.patchRadius = patchRadius
        self.searchRadius = searchRadius
    }

    /// The same from the sides in pixels, as the model file, the CLI and the C API give them: odd, the
    /// patch 1…129 and the window 3…129.
    public init(strength: Float, patchSide: Int, windowSide: Int) throws {
        guard patchSide % 2 == 1, windowSide % 2 == 1, (1...129).contains(patchSide), (3...129).contains(windowSide) else {
            throw UnrollError.invalidArgument("the non-local means' patch and window sides must be odd, the patch 1…129 and the window 3…129, got \(patchSide) and \(windowSide)")
        }
        try self.init(strength: strength, patchRadius: patchSide / 2, searchRadius: windowSide / 2)
    }

    public var patchSide: Int { 2 * patchRadius + 1 }
    public var windowSide: Int { 2 * searchRadius + 1 }

    /// "7×7 patches, 23×23 window, h = 0.1σ", for `unroll info` and the reports.
    public var description: String {
        "\(patchSide)×\(patchSide) patches, \(windowSide)×\(windowSide) window, h = \(strength)σ"
    }

    /// Rows per part: a band's buffers (about 2·(rows + f)·width floats) stay in a core's cache.
    static let bandRows = 16

    /// The filtered `[H, W]` image for noise of `sigma` (> 0), split over the workers in bands of rows.
    /// Every pixel's value depends only on the image, so the bits do not depend on the worker count.
    public func apply(_ image: Tensor, sigma: Float) throws -> Tensor {
        guard image.shape.count == 2, image.shape[0] >= 1, image.shape[1] >= 1 else {
            throw UnrollError.shapeMismatch("the non-local means takes one [H, W] image, got \(image.shape)")
        }
        guard sigma.isFinite, sigma > 0 else { throw UnrollError.invalidArgument("noise σ must be finite and > 0, got \(sigma)") }
        if image.hasNonFinite { throw UnrollError.nonFinite("the image for the non-local means contains NaN or Inf") }
        let (h, w) = (image.shape[0], image.shape[1])
        let (f, d) = (patchRadius, searchRadius), r = f + d
        let (ph, pw) = (h + 2 * r, w + 2 * r)
        let rows = (0..<ph).map { Denoiser.reflect($0 - r, h) }, cols = (0..<pw).map { Denoiser.reflect($0 - r, w) }
        var padded = [Float](repeating: 0, count: ph * pw)
        image.data.withUnsafeBufferPointer { u in
            for i in 0..<ph {
                let row = rows[i] * w
                for j in 0..<pw { padded[i * pw + j] = u[row + cols[j]] }
            }
        }
        let hh = strength * sigma
        let scale = 1 / (Float((2 * f + 1) * (2 * f + 1)) * hh * hh)
        guard scale.isFinite else { throw UnrollError.invalidArgument("the non-local means' h = \(hh) is too small for Float") }
        var out = [Float](repeating: 0, count: h * w)
        let bands = (h + Self.bandRows - 1) / Self.bandRows
        let scratchCount = (2 * Self.bandRows + 2 * f) * (w + 2 * f) + (2 * Self.bandRows + 1) * w
        padded.withUnsafeBufferPointer { p in
            out.withUnsafeMutableBufferPointer { o in
                nonisolated(unsafe) let (p, o) = (p, o)
                Parallel.forEachPart(bands, parts: Parallel.workers) { _, range in
                    var scratch = [Float](repeating: 0, count: scratchCount)
                    scratch.withUnsafeMutableBufferPointer { s in
                        for band in range {
                            let row0 = band * Self.bandRows, row1 = min(h, row0 + Self.bandRows)
                            unroll_nonlocal_means_rows(p.baseAddress!, w, Int32(f), Int32(d), scale, row0, row1, o.baseAddress!, s.baseAddress!)
                        }
                    }
                }
            }
        }
        return Tensor(shape: [h, w], data: out)
    }
}
