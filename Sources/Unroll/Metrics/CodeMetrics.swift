import UnrollCore

/// Distances between estimated codes and true codes, both `[n, p]` (codes as rows).
public enum CodeMetrics {
    /// PUDLE's code error: mean over rows of ‖z_i − z*_i‖₂.
    public static func meanError(_ z: Tensor, _ reference: Tensor) -> Double {
        precondition(z.shape == reference.shape, "code error needs equal shapes, got \(z.shape) and \(reference.shape)")
        let (n, p) = (z.rows, z.cols)
        if n == 0 { return 0 }
        var total = 0.0
        for i in 0..<n {
            var s = 0.0
            for j in 0..<p {
                let d = Double(z.data[i * p + j]) - Double(reference.data[i * p + j])
                s += d * d
            }
            total += s.squareRoot()
        }
        return total / Double(n)
    }

    /// Support recovery: an entry counts as non-zero when its magnitude exceeds `tolerance`
    /// (in both the estimate and the reference).
    public static func supportRecovery(_ z: Tensor, _ reference: Tensor, tolerance: Float = 0) -> SupportRecovery {
        precondition(z.shape == reference.shape, "support recovery needs equal shapes, got \(z.shape) and \(reference.shape)")
        let (n, p) = (z.rows, z.cols)
        var tp = 0, predicted = 0, actual = 0, exact = 0
        for i in 0..<n {
            var same = true
            for j in 0..<p {
                let a = abs(z.data[i * p + j]) > tolerance, b = abs(reference.data[i * p + j]) > tolerance
                if a { predicted += 1 }
                if b { actual += 1 }
                if a && b { tp += 1 }
                if a != b { same = false }
            }
            if same { exact += 1 }
        }
        return SupportRecovery(truePositives: tp, predicted: predicted, actual: actual,
                               exactRows: exact, rows: n)
    }
}

/// Counts behind support precision and recall (all entries of all rows pooled).
public struct SupportRecovery: Equatable, Sendable {
    /// Entries non-zero in both.
    public let truePositives: Int
    /// Entries non-zero in the estimate.
    public let predicted: Int
    /// Entries non-zero in the reference.
    public let actual: Int
    /// Rows whose estimated support equals the true support exactly.
    public let exactRows: Int
    public let rows: Int

    /// truePositives / predicted (1 when both supports are empty, 0 when only the estimate's is).
    public var precision: Double {
        predicted > 0 ? Double(truePositives) / Double(predicted) : (actual == 0 ? 1 : 0)
    }

    /// truePositives / actual (1 when the reference support is empty).
    public var recall: Double { actual > 0 ? Double(truePositives) / Double(actual) : 1 }

    /// Fraction of rows with exactly the true support (1 for no rows).
    public var exactFraction: Double { rows > 0 ? Double(exactRows) / Double(rows) : 1 }
}
