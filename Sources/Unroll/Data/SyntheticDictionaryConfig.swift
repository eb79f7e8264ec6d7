/// Parameters of a synthetic dictionary-learning problem with ground truth (PUDLE §2, `xDzDataset`):
/// a Gaussian dictionary W* with unit-norm atoms, s-sparse codes Z*, signals X = Z*·W* (+ noise),
/// and an initial dictionary W₀ close to W*.
///
/// Every variant is a value here (amplitude law, sign rule, noise, init distance), not a new type.
public struct SyntheticDictionaryConfig: Equatable, Sendable {
    /// How the magnitudes of the s non-zero entries of a code are drawn.
    public enum Amplitude: Equatable, Sendable {
        /// |z| ~ U[low, high] (PUDLE's "uniform", default [1, 2]).
        case uniform(low: Float, high: Float)
        /// z ~ N(mean, std), then multiplied by the sign (PUDLE's "subgaussian").
        case gaussian(mean: Float, std: Float)
    }

    /// How the signs of the non-zero entries are drawn.
    public enum Signs: Equatable, Sendable {
        /// An independent fair ±1 for every non-zero entry (the textbook model; default).
        case independent
        /// One fair ±1 per example, shared by its s non-zeros: what PUDLE's code does
        /// (`(rand(1) > 0.5)*2 - 1` broadcast over the code). Use it to reproduce their runs.
        case sharedPerExample
    }

    /// Signal dimension m (atom length).
    public var signalSize: Int
    /// Number of atoms p.
    public var atomCount: Int
    /// Number of examples n.
    public var exampleCount: Int
    /// Non-zeros per code s.
    public var sparsity: Int
    public var amplitude: Amplitude
    public var signs: Signs
    /// Additive white Gaussian noise at this SNR in dB (signal power = mean of X² over the whole
    /// clean dataset); `nil` means no noise.
    public var snrDB: Double?
    /// δ in W₀ = normalise(W* + δ·N(0,1)); the expected relative error of W₀ is about δ√m.
    public var initNoise: Float

    public init(signalSize m: Int, atomCount p: Int, exampleCount n: Int, sparsity s: Int,
                amplitude: Amplitude = .uniform(low: 1, high: 2), signs: Signs = .independent,
                snrDB: Double? = nil, initNoise: Float = 0.1) {
        self.signalSize = m
        self.atomCount = p
        self.exampleCount = n
        self.sparsity = s
        self.amplitude = amplitude
        self.signs = signs
        self.snrDB = snrDB
        self.initNoise = initNoise
    }

    /// PUDLE's theory setting (§3): m 50, p 100, n 10 000, s 5, U[1,2] amplitudes, one sign per
    /// example (their code's rule), no noise, δ = 0.1.
    public static var pudleTheory: SyntheticDictionaryConfig {
        SyntheticDictionaryConfig(signalSize: 50, atomCount: 100, exampleCount: 10_000, sparsity: 5,
                                  signs: .sharedPerExample, initNoise: 0.1)
    }

    /// Checks every field; the error names the field and what was expected.
    public func validate() throws {
        func fail(_ message: String) -> SyntheticDataError { SyntheticDataError(message) }
        if signalSize < 1 { throw fail("signal size m must be at least 1, got \(signalSize)") }
        if atomCount < 1 { throw fail("atom count p must be at least 1, got \(atomCount)") }
        if exampleCount < 0 { throw fail("example count n must be non-negative, got \(exampleCount)") }
        if sparsity < 0 || sparsity > atomCount {
            throw fail("sparsity s must be in 0...p = 0...\(atomCount), got \(sparsity)")
        }
        switch amplitude {
        case let .uniform(low, high):
            if !(low.isFinite && high.isFinite && low <= high) {
                throw fail("uniform amplitude needs finite low ≤ high, got [\(low), \(high)]")
            }
        case let .gaussian(mean, std):
            if !(mean.isFinite && std.isFinite && std >= 0) {
                throw fail("gaussian amplitude needs finite mean and std ≥ 0, got mean \(mean), std \(std)")
            }
        }
        if let snr = snrDB, !snr.isFinite { throw fail("SNR in dB must be finite, got \(snr)") }
        if !(initNoise.isFinite && initNoise >= 0) {
            throw fail("init noise δ must be finite and ≥ 0, got \(initNoise)")
        }
    }
}

/// Invalid synthetic-data or initialisation parameters (user input).
public struct SyntheticDataError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
