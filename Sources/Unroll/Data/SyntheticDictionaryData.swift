import Foundation
import UnrollCore

/// A synthetic dictionary-learning problem with its ground truth, generated from one seed.
///
/// Shapes follow the project convention (samples and atoms as rows):
/// `dictionary` W* `[p, m]`, `codes` Z* (n rows of p, s non-zeros each), `signals` X `[n, m]`
/// with X = Z*·W* + noise, `initialDictionary` W₀ `[p, m]`.
public struct SyntheticDictionaryData: Sendable {
    public let config: SyntheticDictionaryConfig
    /// W* `[p, m]`: N(0,1)/√m entries, each atom (row) scaled to unit ℓ2 norm.
    public let dictionary: Tensor
    /// Z*: s non-zeros per row, support uniform without replacement.
    public let codes: SyntheticCodes
    /// X `[n, m]` = Z*·W* (+ Gaussian noise when `config.snrDB` is set).
    public let signals: Tensor
    /// Standard deviation of the added noise (0 without noise).
    public let noiseStd: Float
    /// W₀ `[p, m]` = normalise(W* + δ·N(0,1)), δ = `config.initNoise` ("init close").
    public let initialDictionary: Tensor

    /// Rows are filled in blocks of this many, each block from its own stream derived from the
    /// seed, so the result does not depend on how many cores run the work.
    static let block = 512

    /// Generates the problem. Four independent streams are split off `rng` (dictionary, codes,
    /// noise, init), so e.g. changing the SNR or δ leaves W* and Z* unchanged.
    public init(_ config: SyntheticDictionaryConfig, rng: inout Random) throws {
        try config.validate()
        self.config = config
        let (m, p, n) = (config.signalSize, config.atomCount, config.exampleCount)
        var dictRng = rng.split(), codeRng = rng.split(), noiseRng = rng.split(), initRng = rng.split()

        var w = Tensor.normal([p, m], std: 1 / Float(m).squareRoot(), rng: &dictRng)
        w.normalizeRows()
        dictionary = w

        codes = Self.drawCodes(config, seed: codeRng.next())
        var x = codes.times(w)

        if let snr = config.snrDB, n > 0 {
            let power = x.squaredNorm() / Double(x.count)
            let std = Float((power / pow(10, snr / 10)).squareRoot())
            Self.addNoise(&x, std: std, seed: noiseRng.next())
            noiseStd = std
        } else {
            noiseStd = 0
        }
        signals = x

        var w0 = w
        if config.initNoise > 0 { w0.add(Tensor.normal([p, m], std: config.initNoise, rng: &initRng)) }
        w0.normalizeRows()
        initialDictionary = w0
    }

    /// Convenience: the same from a seed.
    public init(_ config: SyntheticDictionaryConfig, seed: UInt64) throws {
        var rng = Random(seed: seed)
        try self.init(config, rng: &rng)
    }

    private static func blockRandom(_ seed: UInt64, _ b: Int) -> Random {
        Random(seed: seed ^ (UInt64(b) &* 0x9E37_79B9_7F4A_7C15))
    }

    private static func drawCodes(_ config: SyntheticDictionaryConfig, seed: UInt64) -> SyntheticCodes {
        let (n, p, s) = (config.exampleCount, config.atomCount, config.sparsity)
        var indices = [Int](repeating: 0, count: n * s)
        var values = [Float](repeating: 0, count: n * s)
        let blocks = (n + block - 1) / block
        indices.withUnsafeMutableBufferPointer { idx in
            values.withUnsafeMutableBufferPointer { val in
                Parallel.forEachChunk(blocks) { range in
                    for b in range {
                        var r = blockRandom(seed, b)
                        for i in (b * block)..<min(n, (b + 1) * block) {
                            let support = r.sample(s, from: p).sorted()
                            let shared = config.signs == .sharedPerExample ? r.sign() : 1
                            for (k, j) in support.enumerated() {
                                let magnitude: Float
                                switch config.amplitude {
                                case let .uniform(low, high): magnitude = Float(r.uniform(Double(low), Double(high)))
                                case let .gaussian(mean, std): magnitude = Float(r.normal(mean: Double(mean), std: Double(std)))
                                }
                                let sign = config.signs == .independent ? r.sign() : shared
                                idx[i * s + k] = j
                                val[i * s + k] = sign * magnitude
                            }
                        }
                    }
                }
            }
        }
        return SyntheticCodes(rows: n, cols: p, perRow: s, indices: indices, values: values)
    }

    private static func addNoise(_ x: inout Tensor, std: Float, seed: UInt64) {
        let (n, m) = (x.shape[0], x.shape[1])
        let blocks = (n + block - 1) / block
        x.data.withUnsafeMutableBufferPointer { xp in
            Parallel.forEachChunk(blocks) { range in
                for b in range {
                    var r = blockRandom(seed, b)
                    for e in (b * block * m)..<(min(n, (b + 1) * block) * m) {
                        xp[e] += std * Float(r.normal())
                    }
                }
            }
        }
    }
}
