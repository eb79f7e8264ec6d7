import Foundation

/// How the J codes sampled per datum are combined into one loss (vsc §2, `sample_method`).
///
/// `weights` turns per-sample losses L[b, j] (row b·J + j) into per-datum weights over j that sum to 1;
/// the training loss is Σ_b (1/B) Σ_j w[b, j] L[b, j], with w held constant (not differentiated).
public enum SampleAggregation: String, CaseIterable, Sendable {
    /// Max-ELBO: a one-hot weight on the sample with the smallest loss (the paper's choice).
    case max
    /// Standard VI: 1/J for every sample.
    case average
    /// Self-normalised importance weights softmax(−L) over the J samples of a datum.
    case importanceWeighted = "importance-weighted"
}

extension SampleAggregation {
    /// Weights [B·J], row b·J + j, from the losses [B·J] (same layout). A NaN loss is never picked
    /// by `.max` unless all of the datum's losses are NaN, and gets weight 0 in `.importanceWeighted`.
    public func weights(losses: [Double], data: Int, samples: Int) -> [Float] {
        precondition(data >= 0 && samples >= 1 && losses.count == data * samples,
                     "aggregation needs \(data)·\(samples) losses, got \(losses.count)")
        var w = [Float](repeating: 0, count: losses.count)
        for b in 0..<data {
            let row = b * samples
            switch self {
            case .average:
                for j in 0..<samples { w[row + j] = 1 / Float(samples) }
            case .max:
                // NaN compares false, so it never replaces a number; a leading NaN is replaced by any number.
                var best = 0
                for j in 1..<samples where losses[row + j] < losses[row + best] || losses[row + best].isNaN {
                    best = j
                }
                w[row + best] = 1
            case .importanceWeighted:
                let finite = (0..<samples).map { losses[row + $0] }.filter { !$0.isNaN }
                guard let smallest = finite.min() else {
                    for j in 0..<samples { w[row + j] = 1 / Float(samples) }
                    continue
                }
                var e = [Double](repeating: 0, count: samples), total = 0.0
                for j in 0..<samples where !losses[row + j].isNaN {
                    e[j] = exp(smallest - losses[row + j])
                    total += e[j]
                }
                for j in 0..<samples { w[row + j] = Float(e[j] / total) }
            }
        }
        return w
    }
}
