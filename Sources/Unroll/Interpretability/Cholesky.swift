import Foundation

/// The Cholesky factor A = L·Lᵀ of a symmetric positive-definite matrix, in Double, and solves with it.
/// Small and dependency-free (no LAPACK): the interpretability systems are p×p (p ≤ a few thousand) or,
/// for the n×n form, n×n with n small.
///
/// Matrices are flat row-major `[Double]`; a right-hand side with k columns is `[size, k]`.
public struct Cholesky: Sendable {
    public let size: Int
    /// L, lower triangle row-major (the upper triangle is zero).
    public private(set) var lower: [Double]

    /// Factors `matrix` (`size × size`, row-major; only its lower triangle is read).
    /// Throws when the matrix is not positive definite (a pivot ≤ 0 or not finite).
    public init(_ matrix: [Double], size n: Int) throws {
        guard n >= 1, matrix.count == n * n else {
            throw UnrollError.shapeMismatch("Cholesky needs a square matrix of \(n)×\(n) = \(n * n) values, got \(matrix.count)")
        }
        var l = [Double](repeating: 0, count: n * n)
        try l.withUnsafeMutableBufferPointer { lp in
            try matrix.withUnsafeBufferPointer { a in
                for i in 0..<n {
                    for j in 0...i {
                        // s = a_ij − Σ_{k<j} l_ik l_jk (both rows contiguous)
                        var s = a[i * n + j]
                        for k in 0..<j { s -= lp[i * n + k] * lp[j * n + k] }
                        if i == j {
                            guard s > 0, s.isFinite else {
                                throw UnrollError.invalidArgument("matrix is not positive definite (pivot \(i) is \(s))")
                            }
                            lp[i * n + i] = s.squareRoot()
                        } else {
                            lp[i * n + j] = s / lp[j * n + j]
                        }
                    }
                }
            }
        }
        size = n
        lower = l
    }

    /// A⁻¹·B for B `[size, columns]` (row-major): forward then backward substitution, row operations
    /// on contiguous rows of B.
    public func solve(_ b: [Double], columns k: Int) -> [Double] {
        let n = size
        precondition(k >= 1 && b.count == n * k, "Cholesky.solve: right-hand side needs \(n)×\(k) values, got \(b.count)")
        var x = b
        lower.withUnsafeBufferPointer { l in
            x.withUnsafeMutableBufferPointer { xp in
                // L·Y = B
                for i in 0..<n {
                    for j in 0..<i {
                        let f = l[i * n + j]
                        if f == 0 { continue }
                        for c in 0..<k { xp[i * k + c] -= f * xp[j * k + c] }
                    }
                    let d = 1 / l[i * n + i]
                    for c in 0..<k { xp[i * k + c] *= d }
                }
                // Lᵀ·X = Y
                for i in stride(from: n - 1, through: 0, by: -1) {
                    for j in (i + 1)..<n {
                        let f = l[j * n + i]
                        if f == 0 { continue }
                        for c in 0..<k { xp[i * k + c] -= f * xp[j * k + c] }
                    }
                    let d = 1 / l[i * n + i]
                    for c in 0..<k { xp[i * k + c] *= d }
                }
            }
        }
        return x
    }

    /// A⁻¹·b for one vector.
    public func solve(_ b: [Double]) -> [Double] { solve(b, columns: 1) }
}
