import Foundation
import UnrollCore

/// How well a set of codes explains validation signals through a dictionary Φ, with the
/// variational sparse coding paper's measures (vsc §4).
public struct SparseCodeReport: Equatable, Sendable {
    public var method: String
    /// mean over entries of (x − zΦ)².
    public var reconstructionMSE: Double
    /// Fraction of non-zero code entries.
    public var nonZero: Double
    /// Mean per signal of ½‖x − zΦ‖² + λ‖z‖₁ (λ = 20 in the reference).
    public var objective: Double
    /// Multi-information of the discretised codes, bits.
    public var multiInformation: Double
    /// Share of latents whose KL is ≤ 1e-2 on ≥ 95 % of signals (nil for a MAP method).
    public var posteriorCollapse: Double?
    /// Share of latents whose |z| is ≤ 1e-2 on ≥ 95 % of signals.
    public var coefficientCollapse: Double

    /// The measures of codes `z` `[n, latents]` for signals `x` `[n, pixels]`.
    public init(method: String, signals x: Tensor, codes z: Tensor, dictionary: Tensor, lambda: Float,
                latentKL: Tensor? = nil) {
        self.method = method
        let residual = x - z.matmul(dictionary)
        reconstructionMSE = residual.squaredNorm() / Double(max(x.count, 1))
        nonZero = CodeStatistics.nonZeroFraction(z)
        objective = CodeStatistics.sparseCodingObjective(signals: x, codes: z, dictionary: dictionary, lambda: lambda)
        multiInformation = CodeStatistics.multiInformation(z)
        posteriorCollapse = latentKL.map { CodeStatistics.collapsedFraction($0) }
        coefficientCollapse = CodeStatistics.collapsedFraction(z)
    }

    /// FISTA (the MAP reference) on ½‖x − zΦ‖² + λ‖z‖₁ with step 1/L, from zero, for at most
    /// `iterations` iterations (stopping when the relative change of the codes is below `tolerance`).
    public static func fista(signals x: Tensor, dictionary: Tensor, lambda: Float, iterations: Int = 500,
                             tolerance: Float = 1e-4) throws -> (codes: Tensor, report: SparseCodeReport) {
        let op = try DenseDictionary(weights: dictionary)
        let encoder = UnrolledEncoder(layers: iterations, algorithm: .fista, lambda: .scalar(lambda),
                                      step: .inverseLipschitz(), tolerance: tolerance)
        let z = try encoder.encode(x, with: op)
        return (z, SparseCodeReport(method: "FISTA", signals: x, codes: z, dictionary: dictionary, lambda: lambda))
    }
}

extension LinearGeneratorModel {
    /// Encodes `x` in batches with `samples` draws each, keeps the code chosen by `aggregation`
    /// (max-ELBO in the reference), and reports its measures at `lambda`.
    public mutating func evaluate(_ x: Tensor, samples: Int = 20, klWeight: Float, lambda: Float = 20,
                                  aggregation: SampleAggregation = .max, temperature: Float, batchSize: Int = 500,
                                  rng: inout Random) -> (codes: Tensor, report: SparseCodeReport) {
        var codes = [Float](), kls = [Float]()
        var start = 0
        while start < x.rows {
            let rows = x.rows(start..<min(start + batchSize, x.rows))
            let s = sample(rows, samples: samples, klWeight: klWeight, warmup: 1, temperature: temperature,
                           training: false, rng: &rng)
            let w = aggregation.weights(losses: s.losses, data: rows.rows, samples: samples)
            codes += Self.combine(s.draw.codes, weights: w, data: rows.rows, samples: samples).data
            kls += s.draw.latentKL.data
            start += batchSize
        }
        let z = Tensor(shape: [x.rows, latents], data: codes)
        let report = SparseCodeReport(method: variational.label, signals: x, codes: z, dictionary: dictionary,
                                      lambda: lambda, latentKL: Tensor(shape: [x.rows, latents], data: kls))
        return (z, report)
    }

    /// Signal-to-noise ratio of the stochastic gradients on `x` (vsc §4, Fig. 4): `passes` independent
    /// draws of `samples` codes per signal; per parameter |mean| / std over the passes, averaged over
    /// parameters with a non-zero std. Returns the encoder's and the dictionary's.
    public mutating func gradientSNR(_ x: Tensor, samples: Int, passes: Int, klWeight: Float,
                                     aggregation: SampleAggregation = .max, temperature: Float,
                                     rng: inout Random) -> (encoder: Double, dictionary: Double) {
        precondition(passes >= 2, "gradient SNR needs ≥ 2 passes")
        var encoder = Moments(count: gradients.reduce(0) { $0 + $1.count })
        var dictionaryMoments = Moments(count: dictionary.count)
        for _ in 0..<passes {
            zeroGradients()
            let g = accumulateGradients(x, samples: samples, klWeight: klWeight, aggregation: aggregation,
                                        warmup: 1, temperature: temperature, rng: &rng)
            encoder.add(gradients.flatMap(\.data))
            dictionaryMoments.add(g.dictionaryDirection.data)
        }
        zeroGradients()
        return (encoder.meanSNR, dictionaryMoments.meanSNR)
    }
}

/// Running sums for per-entry mean and standard deviation.
struct Moments {
    var sum: [Double], squares: [Double], n = 0
    init(count: Int) { sum = [Double](repeating: 0, count: count); squares = sum }
    mutating func add(_ v: [Float]) {
        for i in v.indices {
            let x = Double(v[i])
            sum[i] += x
            squares[i] += x * x
        }
        n += 1
    }
    /// Mean over entries with a positive std of |mean| / std (population std, as NumPy's default).
    var meanSNR: Double {
        var total = 0.0, used = 0
        for i in sum.indices {
            let mean = sum[i] / Double(n)
            let variance = squares[i] / Double(n) - mean * mean
            guard variance > 1e-30 * max(1, mean * mean) else { continue }
            total += abs(mean) / variance.squareRoot()
            used += 1
        }
        return used > 0 ? total / Double(used) : .nan
    }
}
