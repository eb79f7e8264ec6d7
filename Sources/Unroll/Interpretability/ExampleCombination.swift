import Foundation
import UnrollCore

/// PUDLE's Theorem 5.1 (reference §1.5): at a stationary point of
///
///     ½‖X − DZ‖² + λ‖Z‖₁ + ω/2‖D‖²        (paper layout: X m×n, Z p×n, D m×p)
///
/// the dictionary is a linear combination of the training examples, D = X G⁻¹ Zᵀ with
/// G = ZᵀZ + ωI_n; equivalently (push-through identity) D = X Zᵀ (ZZᵀ + ωI_p)⁻¹, the p×p form used here.
///
/// In this package's layout (samples as rows, atoms as rows) X is `[n, m]`, Z is `[n, p]`, W = Dᵀ is
/// `[p, m]`, and the implied dictionary is
///
///     W̃ = (ZᵀZ + ωI_p)⁻¹ Zᵀ X    (p×p form)   =   Zᵀ (ZZᵀ + ωI_n)⁻¹ X    (n×n form).
///
/// From the same factorisation:
/// - atom j's contributions from every training example, c_j = G⁻¹ Z[:, j] = Z A⁻¹ e_j (length n,
///   with A = ZᵀZ + ωI_p), so that W̃_j = Σ_k c_jk x_k;
/// - for a new example with code ẑ, the coefficients β = G⁻¹ Z ẑ = Z A⁻¹ ẑ over the training set, so that
///   its reconstruction by W̃ is ẑᵀW̃ = Σ_k β_k x_k;
/// - the code similarity cos(z_k, ẑ) to every training example (the paper's baseline).
///
/// Everything is in Double: one Cholesky factor of A (solves, never an inverse).
public struct ExampleCombination: Sendable {
    public let examples: Int
    public let atoms: Int
    public let signalSize: Int
    public let omega: Double
    /// X, `[n, m]`.
    public let signals: Tensor
    /// Z in Double, `[n, p]` row-major.
    let codes: [Double]
    /// Non-zero positions of each code row (codes are sparse: the products below run over these).
    let support: [[Int]]
    /// Cholesky factor of A = ZᵀZ + ωI_p.
    let factor: Cholesky

    /// X `[n, m]` and its codes Z `[n, p]`. Throws for ω ≤ 0 (or not finite), mismatched rows,
    /// NaN/Inf, or an empty set.
    public init(signals: Tensor, codes: Tensor, omega: Double) throws {
        guard codes.rank == 2 else { throw UnrollError.shapeMismatch("codes must be [examples, atoms], got shape \(codes.shape)") }
        guard !codes.hasNonFinite else { throw UnrollError.nonFinite("training codes contain NaN or Inf") }
        try self.init(signals: signals, codes: codes.data.map(Double.init), atoms: codes.cols, omega: omega)
    }

    /// As above with the codes already in Double (`[n, p]` row-major, `atoms` = p).
    public init(signals: Tensor, codes: [Double], atoms p: Int, omega: Double) throws {
        guard omega.isFinite, omega > 0 else {
            throw UnrollError.invalidArgument("ω (the dictionary's ridge weight) must be finite and > 0, got \(omega)")
        }
        guard signals.rank == 2, signals.rows >= 1, signals.cols >= 1 else {
            throw UnrollError.shapeMismatch("training signals must be a non-empty [examples, signal size] matrix, got shape \(signals.shape)")
        }
        guard !signals.hasNonFinite else { throw UnrollError.nonFinite("training signals contain NaN or Inf") }
        let n = signals.rows
        guard p >= 1, codes.count == n * p else {
            throw UnrollError.shapeMismatch("codes must be [\(n), atoms] for \(n) training signals, got \(codes.count) values for \(p) atoms")
        }
        guard codes.allSatisfy(\.isFinite) else { throw UnrollError.nonFinite("training codes contain NaN or Inf") }
        examples = n
        atoms = p
        signalSize = signals.cols
        self.omega = omega
        self.signals = signals
        self.codes = codes
        support = (0..<n).map { k in (0..<p).filter { codes[k * p + $0] != 0 } }
        factor = try Cholesky(Self.codeGram(codes, support: support, atoms: p, omega: omega), size: p)
    }

    /// A = ZᵀZ + ωI_p (lower triangle filled; the upper mirrored), over each row's non-zeros.
    static func codeGram(_ z: [Double], support: [[Int]], atoms p: Int, omega: Double) -> [Double] {
        var a = [Double](repeating: 0, count: p * p)
        for (k, s) in support.enumerated() {
            for u in s {
                let zu = z[k * p + u]
                for v in s where v <= u { a[u * p + v] += zu * z[k * p + v] }
            }
        }
        for u in 0..<p {
            a[u * p + u] += omega
            for v in 0..<u { a[v * p + u] = a[u * p + v] }
        }
        return a
    }

    // MARK: the implied dictionary

    /// ZᵀX, `[p, m]` in Double.
    func codesTransposedTimesSignals() -> [Double] {
        let p = atoms, m = signalSize
        var r = [Double](repeating: 0, count: p * m)
        signals.data.withUnsafeBufferPointer { x in
            for (k, s) in support.enumerated() {
                for u in s {
                    let zu = codes[k * p + u]
                    for c in 0..<m { r[u * m + c] += zu * Double(x[k * m + c]) }
                }
            }
        }
        return r
    }

    /// W̃ = (ZᵀZ + ωI)⁻¹ZᵀX in Double, `[p, m]` row-major.
    public func impliedWeights() -> [Double] {
        factor.solve(codesTransposedTimesSignals(), columns: signalSize)
    }

    /// W̃ = (ZᵀZ + ωI)⁻¹ZᵀX, `[p, m]` (atoms as rows; D̃ = W̃ᵀ = X G⁻¹ Zᵀ in the paper's layout).
    public func impliedDictionary() -> Tensor {
        Tensor(shape: [atoms, signalSize], data: impliedWeights().map(Float.init))
    }

    /// The n×n form W̃ = Zᵀ(ZZᵀ + ωI_n)⁻¹X, in Double `[p, m]`: the theorem as stated (G = ZᵀZ + ωI in
    /// the paper's layout). Costs n³/3 for the factor: for checks on small n.
    public func impliedWeightsByExamples() throws -> [Double] {
        let n = examples, p = atoms, m = signalSize
        var g = [Double](repeating: 0, count: n * n)
        codes.withUnsafeBufferPointer { z in
            for k in 0..<n {
                for l in 0...k {
                    var s = 0.0
                    for u in support[k] { s += z[k * p + u] * z[l * p + u] }
                    g[k * n + l] = s
                    g[l * n + k] = s
                }
                g[k * n + k] += omega
            }
        }
        let x = signals.data.map(Double.init)
        let y = try Cholesky(g, size: n).solve(x, columns: m)      // G⁻¹X, [n, m]
        var w = [Double](repeating: 0, count: p * m)
        for (k, s) in support.enumerated() {
            for u in s {
                let zu = codes[k * p + u]
                for c in 0..<m { w[u * m + c] += zu * y[k * m + c] }
            }
        }
        return w
    }

    // MARK: contributions of the training examples

    /// Z·u for u of length p: one value per training example.
    func codesTimes(_ u: [Double]) -> [Double] {
        let p = atoms
        return support.enumerated().map { k, s in s.reduce(0.0) { $0 + codes[k * p + $1] * u[$1] } }
    }

    /// c_j = G⁻¹Z[:, j] = Z(ZᵀZ + ωI)⁻¹e_j: the weight of every training example in atom j of W̃
    /// (W̃_j = Σ_k c_jk x_k). Throws for j out of range.
    public func atomContributions(_ j: Int) throws -> [Double] {
        guard (0..<atoms).contains(j) else {
            throw UnrollError.invalidArgument("atom index must be in 0..<\(atoms), got \(j)")
        }
        var e = [Double](repeating: 0, count: atoms)
        e[j] = 1
        return codesTimes(factor.solve(e))
    }

    /// β = G⁻¹Zẑ = Z(ZᵀZ + ωI)⁻¹ẑ for a new example with code ẑ (length p): ẑᵀW̃ = Σ_k β_k x_k.
    public func coefficients(code: [Float]) throws -> [Double] {
        guard code.count == atoms else {
            throw UnrollError.shapeMismatch("a new example's code needs \(atoms) values (one per atom), got \(code.count)")
        }
        guard code.allSatisfy(\.isFinite) else { throw UnrollError.nonFinite("the new example's code contains NaN or Inf") }
        return codesTimes(factor.solve(code.map(Double.init)))
    }

    /// Σ_k w_k x_k (length m) for one weight per training example.
    public func combine(_ weights: [Double]) -> [Double] {
        precondition(weights.count == examples, "combine: \(weights.count) weights for \(examples) examples")
        let m = signalSize
        var out = [Double](repeating: 0, count: m)
        signals.data.withUnsafeBufferPointer { x in
            for k in 0..<examples where weights[k] != 0 {
                let w = weights[k]
                for c in 0..<m { out[c] += w * Double(x[k * m + c]) }
            }
        }
        return out
    }

    /// Σ_{k ∈ indices} w_k x_k: the estimate from a chosen subset (the figures' top-k).
    public func combine(_ weights: [Double], only indices: [Int]) -> [Double] {
        var w = [Double](repeating: 0, count: examples)
        for k in indices { w[k] = weights[k] }
        return combine(w)
    }

    /// cos(z_k, ẑ) for every training example k (0 where either code is zero).
    public func codeSimilarity(code: [Float]) throws -> [Double] {
        guard code.count == atoms else {
            throw UnrollError.shapeMismatch("a new example's code needs \(atoms) values (one per atom), got \(code.count)")
        }
        let p = atoms
        let zhat = code.map(Double.init)
        let zn = zhat.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return support.enumerated().map { k, s in
            var dot = 0.0, norm = 0.0
            for u in s {
                let v = codes[k * p + u]
                dot += v * zhat[u]
                norm += v * v
            }
            return zn > 0 && norm > 0 ? dot / (zn * norm.squareRoot()) : 0
        }
    }

    /// Training-example code k as Float (length p).
    public func code(_ k: Int) -> [Float] {
        (0..<atoms).map { Float(codes[k * atoms + $0]) }
    }

    // MARK: helpers

    /// ẑᵀW for weights W `[p, m]` (Double row-major): the decoding of one code, in Double.
    public static func decode(_ code: [Float], weights w: [Double], signalSize m: Int) -> [Double] {
        var out = [Double](repeating: 0, count: m)
        for (u, z) in code.enumerated() where z != 0 {
            for c in 0..<m { out[c] += Double(z) * w[u * m + c] }
        }
        return out
    }

    /// ‖a − b‖/‖b‖ (NaN if b = 0).
    public static func relativeDifference(_ a: [Double], _ b: [Double]) -> Double {
        precondition(a.count == b.count, "relativeDifference: lengths \(a.count) and \(b.count)")
        var num = 0.0, den = 0.0
        for i in a.indices {
            num += (a[i] - b[i]) * (a[i] - b[i])
            den += b[i] * b[i]
        }
        return den > 0 ? (num / den).squareRoot() : .nan
    }

    /// The indices of the k largest values of `score` (descending), and of the k smallest.
    public static func extremes(_ score: [Double], k: Int) -> (largest: [Int], smallest: [Int]) {
        let order = score.indices.sorted { score[$0] != score[$1] ? score[$0] > score[$1] : $0 < $1 }
        let kk = min(k, order.count)
        return (Array(order.prefix(kk)), Array(order.suffix(kk).reversed()))
    }
}
