import Testing
import UnrollCore

/// Largest |a − b| / max(1, |b|) over the elements (Float32 results against Double references).
func maxRelativeError(_ a: [Float], _ b: [Double]) -> Double {
    precondition(a.count == b.count, "length \(a.count) vs \(b.count)")
    var worst = 0.0
    for i in a.indices { worst = max(worst, abs(Double(a[i]) - b[i]) / max(1, abs(b[i]))) }
    return worst
}

func maxRelativeError(_ a: Tensor, _ b: Tensor) -> Double {
    #expect(a.shape == b.shape)
    return maxRelativeError(a.data, b.data.map(Double.init))
}

/// ⟨a, b⟩ accumulated in Double.
func dot(_ a: Tensor, _ b: Tensor) -> Double {
    precondition(a.count == b.count)
    var s = 0.0
    for i in 0..<a.count { s += Double(a.data[i]) * Double(b.data[i]) }
    return s
}

/// A matrix with about `density` of its entries non-zero (normal values), the rest exactly zero.
func sparseNormal(_ shape: [Int], density: Double, rng: inout Random) -> Tensor {
    var t = Tensor(zeros: shape)
    for i in 0..<t.count where rng.uniform() < density { t.data[i] = Float(rng.normal()) }
    return t
}
