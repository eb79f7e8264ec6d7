import Foundation
import UnrollCore

/// A 1-D convolutional dictionary (CRsAE's H): C filters over `channels` input channels, each of length K,
/// stored as `weights` of shape `[C, channels, K]` (PyTorch's conv1d layout).
///
/// Signals are `[batch, channels, N]`, codes `[batch, C, N − K + 1]` (one code entry per filter and shift):
///
///     apply(z)   = H z  = Σ_c h_c ∗ z_c            full convolution, length N   (`convTranspose1d`)
///     adjoint(r) = Hᵀ r = (Σ_ch h_c,ch ⋆ r_ch)_c   "valid" correlation, length N − K + 1 (`conv1d`)
///
/// A multichannel filter (a tetrode's four channels, say) is one atom: it is normalised over all its
/// channels and taps together, and its code is shared by the channels.
public struct Convolution1DDictionary: DictionaryOperator, Equatable {
    /// `[C, channels, K]`. Assigning a tensor of another shape is a programming error (traps).
    public var weights: Tensor {
        didSet {
            precondition(weights.shape == oldValue.shape,
                         "Convolution1DDictionary weights must keep shape \(oldValue.shape), got \(weights.shape)")
        }
    }

    /// Wraps `weights` (`[C, channels, K]`). Throws for another rank, an empty dimension, or NaN/Inf.
    public init(weights: Tensor) throws {
        guard weights.rank == 3, weights.shape.allSatisfy({ $0 > 0 }) else {
            throw UnrollError.shapeMismatch("1-D convolutional dictionary must be [filters, channels, length], got shape \(weights.shape)")
        }
        guard !weights.hasNonFinite else {
            throw UnrollError.nonFinite("1-D convolutional dictionary weights contain NaN or Inf")
        }
        self.weights = weights
    }

    /// C random filters (Gaussian taps, each filter scaled to unit norm), as CRsAE initialises them.
    public init(filters: Int, channels: Int = 1, length: Int, rng: inout Random) {
        precondition(filters > 0 && channels > 0 && length > 0, "Convolution1DDictionary needs positive sizes")
        var d = try! Convolution1DDictionary(weights: Tensor.normal([filters, channels, length], rng: &rng))
        d.normalize()
        self = d
    }

    /// Number of filters C.
    public var atoms: Int { weights.shape[0] }
    /// Input channels (1 for a single electrode, 4 for a tetrode).
    public var channels: Int { weights.shape[1] }
    /// Filter length K.
    public var filterLength: Int { weights.shape[2] }

    public func codeShape(signalShape: [Int]) throws -> [Int] {
        guard signalShape.count == 3, signalShape[1] == channels, signalShape[2] >= filterLength else {
            throw UnrollError.shapeMismatch("signals must be [batch, \(channels), N ≥ \(filterLength)] for \(channels)-channel filters of length \(filterLength), got \(signalShape)")
        }
        return [signalShape[0], atoms, signalShape[2] - filterLength + 1]
    }

    public func signalShape(codeShape: [Int]) throws -> [Int] {
        guard codeShape.count == 3, codeShape[1] == atoms, codeShape[2] >= 1 else {
            throw UnrollError.shapeMismatch("codes must be [batch, \(atoms), positions ≥ 1] for \(atoms) filters, got \(codeShape)")
        }
        return [codeShape[0], channels, codeShape[2] + filterLength - 1]
    }

    /// H z: the full convolution of every code row with its filter, summed over filters.
    public func apply(_ codes: Tensor) -> Tensor {
        codes.convTranspose1d(weights, outputLength: codes.shape[2] + filterLength - 1)
    }

    /// Hᵀ r: the valid correlation of the signals with every filter.
    public func adjoint(_ signals: Tensor) -> Tensor {
        signals.conv1d(weights)
    }

    /// ∂/∂H ⟨r, H z⟩ = ∂/∂H ⟨Hᵀ r, z⟩: the correlation of the residual with the codes, `[C, channels, K]`.
    public func weightGradient(residual: Tensor, codes: Tensor) -> Tensor {
        Tensor.conv1dFilterGradient(input: residual, outputGradient: codes, kernelSize: filterLength)
    }

    /// Scales every filter (all its channels and taps together) to unit ℓ2 norm; zero filters stay zero.
    public mutating func normalize() {
        let per = channels * filterLength
        var w = weights
        w.data.withUnsafeMutableBufferPointer { p in
            for c in 0..<atoms {
                var s = 0.0
                for i in (c * per)..<((c + 1) * per) { s += Double(p[i]) * Double(p[i]) }
                guard s > 0 else { continue }
                let inv = Float(1 / s.squareRoot())
                for i in (c * per)..<((c + 1) * per) { p[i] *= inv }
            }
        }
        weights = w
    }

    /// ‖H‖₂² for signals of ANY length: the largest eigenvalue of the C×C matrix
    /// G(ω) = Σ_ch ĥ_c,ch(ω)* ĥ_c',ch(ω) over a grid of frequencies (H is a block-Toeplitz operator whose
    /// norm² is sup_ω λ_max G(ω); finite lengths are bounded by it). Each λ_max is found by `iterations`
    /// power iterations from a start drawn from `rng`; the grid has 64·K points, so the estimate does not
    /// depend on the signal length and chunked encoding uses the same step as one pass.
    public func lipschitz(iterations: Int, rng: inout Random) -> Float {
        let (cN, chN, k) = (atoms, channels, filterLength)
        let grid = max(256, 64 * k)
        let start = (0..<(2 * cN)).map { _ in rng.normal() }
        var best = 0.0
        var re = [Double](repeating: 0, count: cN * chN), im = re
        var gRe = [Double](repeating: 0, count: cN * cN), gIm = gRe
        weights.data.withUnsafeBufferPointer { w in
            for f in 0...(grid / 2) {
                let omega = 2 * Double.pi * Double(f) / Double(grid)
                // ĥ_c,ch(ω) = Σ_k h[k] e^{−iωk}
                for u in 0..<(cN * chN) {
                    var a = 0.0, b = 0.0
                    for t in 0..<k {
                        let h = Double(w[u * k + t])
                        a += h * cos(omega * Double(t))
                        b -= h * sin(omega * Double(t))
                    }
                    re[u] = a
                    im[u] = b
                }
                for c in 0..<cN {
                    for d in 0..<cN {
                        var a = 0.0, b = 0.0
                        for ch in 0..<chN {
                            let (xr, xi) = (re[c * chN + ch], -im[c * chN + ch])   // conj(ĥ_c)
                            let (yr, yi) = (re[d * chN + ch], im[d * chN + ch])
                            a += xr * yr - xi * yi
                            b += xr * yi + xi * yr
                        }
                        gRe[c * cN + d] = a
                        gIm[c * cN + d] = b
                    }
                }
                best = max(best, Self.largestEigenvalue(gRe, gIm, n: cN, start: start, iterations: max(1, iterations)))
            }
        }
        return Float(best)
    }

    /// λ_max of a Hermitian positive semi-definite n×n matrix (real and imaginary parts row-major):
    /// the largest Rayleigh quotient seen over `iterations` power iterations (n is small, so they are cheap).
    private static func largestEigenvalue(_ aRe: [Double], _ aIm: [Double], n: Int, start: [Double], iterations: Int) -> Double {
        if n == 1 { return aRe[0] }
        var vr = Array(start[0..<n]), vi = Array(start[n..<(2 * n)])
        var rayleigh = 0.0
        for _ in 0..<iterations {
            var norm = 0.0
            for i in 0..<n { norm += vr[i] * vr[i] + vi[i] * vi[i] }
            norm = norm.squareRoot()
            guard norm > 0 else { return 0 }
            for i in 0..<n { vr[i] /= norm; vi[i] /= norm }
            var wr = [Double](repeating: 0, count: n), wi = wr
            for i in 0..<n {
                for j in 0..<n {
                    let (ar, ai) = (aRe[i * n + j], aIm[i * n + j])
                    wr[i] += ar * vr[j] - ai * vi[j]
                    wi[i] += ar * vi[j] + ai * vr[j]
                }
            }
            var q = 0.0   // Re(v* A v)
            for i in 0..<n { q += vr[i] * wr[i] + vi[i] * wi[i] }
            rayleigh = max(rayleigh, q)
            vr = wr
            vi = wi
        }
        return rayleigh
    }
}
