import Foundation
import UnrollCore

/// Initial dictionary estimate by the pairwise method of Arora, Ge, Ma & Moitra ("Simple, efficient,
/// and neural algorithms for sparse coding", COLT 2015, Algorithm 3), as PUDLE's
/// `find_initial_estimate.py` uses it (without its peeking at the true codes to skip pairs).
///
/// For random pairs of samples u, v it forms M_uv = mean_i ⟨x_i,u⟩⟨x_i,v⟩ x_i x_iᵀ (over the other
/// samples). When u and v share exactly one atom a, M_uv ≈ c·a aᵀ plus smaller terms, so its top
/// singular vector estimates ±a. A pair is used when σ₁ is large and σ₂ small, and its vector is kept
/// when it is farther than `separation` (sin-distance) from every atom kept so far. It stops at p atoms
/// or after `maxPairs` pairs.
///
/// Scale. The paper states σ₁ ≥ Ω(s/p) and σ₂ < O*(s/(p log p)) for codes whose non-zeros have unit
/// second moment, E[z² | z ≠ 0] = 1, and u, v are samples of the same model. Here the data are brought
/// to that scale: with unit atoms and independent zero-mean signs E‖x‖² = s·κ, κ = E[z² | z ≠ 0], so
/// κ = mean‖x_i‖²/s is estimated and M is divided by κ³ (dividing x, u and v by √κ divides
/// (xᵀu)(xᵀv)xxᵀ by κ³). For a pair sharing atom a, then
/// σ₁ ≈ (s/p)·(E z⁴/κ²)·z̃_u z̃_v with z̃ = z/√κ; for U[1,2] amplitudes E z⁴/κ² = 1.14 and z̃ ≈ 1.
///
/// Thresholds used: σ₁ ≥ `sigma1Scale`·s/p and σ₂ < `sigma2Scale`·s/(p ln p), defaults 1 and 2.5. The
/// paper's σ₂ constant (1) rejects nearly every pair at practical sizes, because the other atoms of u
/// and v leave σ₂ ≈ 0.4–0.6·s/p (measured at m 30, p 40, s 3 and m 50, p 100, s 5); 2.5 admits the
/// better half of the pairs that share one atom. See `removeGaussianPart` for the other change needed
/// at these sizes. Singular values are |eigenvalues| of the symmetric M, found by block power
/// iteration (see `topTwo`).
public struct AroraInitialization: Sendable {
    /// Atoms wanted, p.
    public var atomCount: Int
    /// Non-zeros per code, s (sets the scale κ and the thresholds).
    public var sparsity: Int
    /// Accept a pair when σ₁ ≥ sigma1Scale·s/p (on the κ-normalised M).
    public var sigma1Scale: Double = 1
    /// … and σ₂ < sigma2Scale·s/(p ln p). The paper's constant is 1 (see the type's notes for 2.5).
    public var sigma2Scale: Double = 2.5
    /// Keep a candidate only when its sin-distance to every kept atom exceeds this; nil = 2/ln p
    /// (PUDLE's `scale_dist * 1/log(p)` with scale_dist 2).
    public var separation: Double? = nil
    /// Stop after this many pairs even if fewer than p atoms were found; nil = 100·p.
    public var maxPairs: Int? = nil
    /// Use at most this many samples (a random subset) to form M_uv; cost per pair is O(samples·m²).
    public var maxSamples: Int? = nil
    /// Subtract the part of M_uv a Gaussian x with the same second moments Σ would give,
    /// (uᵀΣv)Σ + Σu vᵀΣ + Σv uᵀΣ, leaving the fourth-cumulant part Σ_j c_j⟨a_j,u⟩⟨a_j,v⟩ a_j a_jᵀ.
    /// Not in the paper. Without it, at m 30, p 40, s 3 the rank-2 terms Σu vᵀΣ (norm ≈ (s/p)²‖W*W*ᵀ‖²‖u‖‖v‖,
    /// measured σ₁ ≈ 4–5·s/p) swamp the atom term ≈ s/p, and no pair passes the σ₂ test.
    public var removeGaussianPart: Bool = true
    /// A candidate that passes the tests but lies within `separation` of a kept atom is averaged into
    /// it (sign-aligned) instead of being dropped; averaging reduces each estimate's noise.
    public var mergeDuplicates: Bool = true
    /// Refinement steps after the pairwise search, each a fourth-cumulant (kurtosis) power step on
    /// every kept atom a: a ← normalise(mean ⟨x,a⟩³x − 3(aᵀΣa)Σa) (FastICA's update). For sparse
    /// codes the fourth cumulant is Σ_j c_j a_j⊗a_j⊗a_j⊗a_j with c_j > 0, so the step pulls each
    /// estimate towards its nearest atom (cubic convergence). Not in the paper; 0 = the plain method.
    public var refinementSteps: Int = 0
    /// Block power iterations for σ₁, σ₂ (at most), and the relative change of both below which
    /// they count as converged.
    public var powerIterations: Int = 300
    public var tolerance: Double = 1e-5

    public init(atomCount p: Int, sparsity s: Int) {
        self.atomCount = p
        self.sparsity = s
    }

    public struct Result: Sendable {
        /// The atoms found, `[k, m]` with k ≤ p, unit norm, arbitrary signs, in the order found.
        public let atoms: Tensor
        public let pairsTried: Int
        /// Pairs that passed both singular-value tests (kept or rejected as duplicates).
        public let pairsPassed: Int
        /// κ = mean‖x‖²/s, the estimated second moment of a non-zero code entry.
        public let amplitudeScale: Double
        /// The σ₁, σ₂ and separation thresholds used (on the κ-normalised M).
        public let sigma1Threshold: Double
        public let sigma2Threshold: Double
        public let separation: Double

        /// A full `[p, m]` dictionary: the atoms found, then (if fewer than p) unit-normalised samples
        /// drawn at random from `x` to fill the rest.
        public func dictionary(atomCount p: Int, fillingFrom x: Tensor, rng: inout Random) -> Tensor {
            let k = Swift.min(atoms.rows, p)
            if k == p { return atoms.rows(0..<p) }
            let m = atoms.shape[1]
            var fill = x.gatherRows((0..<(p - k)).map { _ in rng.int(below: x.rows) })
            fill.normalizeRows()
            return Tensor(shape: [p, m], data: Array(atoms.data[0..<(k * m)]) + fill.data)
        }
    }

    /// Runs the method on signals `x` `[n, m]` (samples as rows).
    public func run(on x: Tensor, rng: inout Random) throws -> Result {
        let p = atomCount, s = sparsity
        guard p >= 2 else { throw SyntheticDataError("Arora initialisation needs at least 2 atoms, got \(p)") }
        guard s >= 1 && s <= p else { throw SyntheticDataError("Arora initialisation needs sparsity in 1...\(p), got \(s)") }
        guard x.rank == 2, x.rows >= 3, x.shape[1] >= 2 else {
            throw SyntheticDataError("Arora initialisation needs signals [n ≥ 3, m ≥ 2], got \(x.shape)")
        }
        guard !x.hasNonFinite else { throw SyntheticDataError("Arora initialisation: signals contain NaN or infinity") }
        if let ms = maxSamples, ms < 3 { throw SyntheticDataError("maxSamples must be at least 3, got \(ms)") }
        if let mp = maxPairs, mp < 0 { throw SyntheticDataError("maxPairs must be non-negative, got \(mp)") }
        guard powerIterations >= 1, refinementSteps >= 0, sigma1Scale.isFinite, sigma2Scale.isFinite,
              (separation ?? 0).isFinite else {
            throw SyntheticDataError("Arora initialisation: powerIterations ≥ 1, refinementSteps ≥ 0 and finite thresholds needed")
        }

        // Samples that form M (a random subset when capped).
        var data = x
        if let cap = maxSamples, cap < x.rows { data = x.gatherRows(Array(rng.permutation(x.rows).prefix(cap))) }
        let (n, m) = (data.shape[0], data.shape[1])

        let kappa = data.squaredNorm() / Double(n) / Double(s)
        guard kappa > 0 else { throw SyntheticDataError("Arora initialisation: signals are all zero") }
        let logP = log(Double(p))
        let t1 = sigma1Scale * Double(s) / Double(p)
        let t2 = sigma2Scale * Double(s) / (Double(p) * logP)
        let sep = separation ?? 2 / logP
        let pairLimit = maxPairs ?? 100 * p

        // Second moments Σ = XᵀX/n, for the Gaussian-part correction and the refinement.
        let sigma = (1 / Float(n)) * data.matmul(data, transposeSelf: true)

        var kept: [[Float]] = []
        var sums: [[Double]] = []   // sign-aligned sums of the candidates merged into each kept atom
        var tried = 0, passed = 0
        var weights = [Float](repeating: 0, count: n)
        var scaled = data
        while kept.count < p && tried < pairLimit {
            tried += 1
            let iu = rng.int(below: n)
            var iv = rng.int(below: n - 1)
            if iv >= iu { iv += 1 }
            let u = data.rows(iu..<(iu + 1)), v = data.rows(iv..<(iv + 1))
            // w_i = ⟨x_i,u⟩⟨x_i,v⟩, leaving u and v themselves out of the mean.
            let xu = data.matmul(u, transposeOther: true), xv = data.matmul(v, transposeOther: true)
            let norm = Float(1 / (Double(n - 2) * kappa * kappa * kappa))
            for i in 0..<n { weights[i] = xu.data[i] * xv.data[i] * norm }
            weights[iu] = 0
            weights[iv] = 0
            data.data.withUnsafeBufferPointer { src in
                scaled.data.withUnsafeMutableBufferPointer { dst in
                    for i in 0..<n {
                        let w = weights[i]
                        for j in 0..<m { dst[i * m + j] = w * src[i * m + j] }
                    }
                }
            }
            var mat = data.matmul(scaled, transposeSelf: true)    // [m, m] symmetric
            if removeGaussianPart {
                // M − [(uᵀΣv)Σ + Σu(Σv)ᵀ + Σv(Σu)ᵀ]/κ³: what M would be for Gaussian x with the same Σ.
                let su = sigma.matvec(u.reshaped([m])), sv = sigma.matvec(v.reshaped([m]))
                var uSv = 0.0
                for j in 0..<m { uSv += Double(u.data[j]) * Double(sv.data[j]) }
                let c = Float(1 / (kappa * kappa * kappa)), a = Float(uSv) * c
                for i in 0..<m {
                    for j in 0..<m {
                        mat.data[i * m + j] -= a * sigma.data[i * m + j]
                            + c * (su.data[i] * sv.data[j] + sv.data[i] * su.data[j])
                    }
                }
            }
            let (sigma1, sigma2, top) = topTwo(mat, rng: &rng)
            guard sigma1 >= t1 else { continue }
            guard sigma2 < t2 else { continue }
            passed += 1
            let candidate = top.data
            var nearest = -1, nearestSin = Double.infinity, nearestSign = 1.0
            for (k, atom) in kept.enumerated() {
                var c = 0.0
                for j in 0..<m { c += Double(atom[j]) * Double(candidate[j]) }
                let sin = (1 - Swift.min(1, c * c)).squareRoot()
                if sin < nearestSin { (nearest, nearestSin, nearestSign) = (k, sin, c < 0 ? -1 : 1) }
            }
            if nearestSin > sep {
                kept.append(candidate)
                sums.append(candidate.map(Double.init))
            } else if mergeDuplicates {
                for j in 0..<m { sums[nearest][j] += nearestSign * Double(candidate[j]) }
                let norm = sums[nearest].reduce(0) { $0 + $1 * $1 }.squareRoot()
                kept[nearest] = sums[nearest].map { Float($0 / norm) }
            }
        }
        var atoms = Tensor(shape: [kept.count, m], data: kept.flatMap { $0 })
        for _ in 0..<refinementSteps { atoms = Self.cumulantPowerStep(atoms, data: data, sigma: sigma) }
        return Result(atoms: atoms, pairsTried: tried, pairsPassed: passed, amplitudeScale: kappa,
                      sigma1Threshold: t1, sigma2Threshold: t2, separation: sep)
    }

    /// The two largest |eigenvalues| of a symmetric matrix (its top singular values) and the unit
    /// eigenvector of the largest, by block power iteration (subspace iteration on a few vectors with
    /// Rayleigh–Ritz). Plain power iteration plus deflation is not enough here: when σ₂/σ₁ ≈ 0.8 the
    /// top vector is still unconverged after hundreds of steps and deflating with it inflates σ₂.
    private func topTwo(_ mat: Tensor, rng: inout Random) -> (Double, Double, Tensor) {
        let m = mat.shape[0], b = Swift.min(m, 6)
        var q = Tensor.normal([b, m], rng: &rng)
        orthonormalizeRows(&q)
        var previous = [Double](repeating: .nan, count: 2)
        var ritz: (values: [Double], vectors: [[Double]]) = ([], [])
        for iteration in 1...powerIterations {
            q = q.matmul(mat)               // rows: (M qᵢ)ᵀ, M symmetric
            orthonormalizeRows(&q)
            if iteration % 5 == 0 || iteration == powerIterations {
                // Rayleigh–Ritz on span(Q): H = Q M Qᵀ.
                let h = q.matmul(mat).matmul(q, transposeOther: true)
                ritz = Self.symmetricEigen(h.data.map(Double.init), n: b)
                let top2 = [abs(ritz.values[0]), b > 1 ? abs(ritz.values[1]) : 0]
                let converged = zip(top2, previous).allSatisfy { abs($0 - $1) <= tolerance * Swift.max(top2[0], 1e-30) }
                previous = top2
                if converged { break }
            }
        }
        var vector = [Float](repeating: 0, count: m)
        for k in 0..<b { for j in 0..<m { vector[j] += Float(ritz.vectors[0][k]) * q.data[k * m + j] } }
        let norm = vector.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
        if norm > 0 { vector = vector.map { $0 / norm } }
        return (previous[0], previous[1], Tensor(shape: [m], data: vector))
    }

    /// One cumulant power step for every row of `atoms` `[k, m]` (see `refinementSteps`).
    static func cumulantPowerStep(_ atoms: Tensor, data: Tensor, sigma: Tensor) -> Tensor {
        let (k, m, n) = (atoms.shape[0], atoms.shape[1], data.shape[0])
        if k == 0 { return atoms }
        let proj = data.matmul(atoms, transposeOther: true).map { $0 * $0 * $0 }   // [n, k]: ⟨x_i,a⟩³
        var next = (1 / Float(n)) * proj.matmul(data, transposeSelf: true)        // [k, m]
        let sa = atoms.matmul(sigma)                                               // rows: (Σa)ᵀ
        for r in 0..<k {
            var aSa: Float = 0
            for j in 0..<m { aSa += atoms.data[r * m + j] * sa.data[r * m + j] }
            for j in 0..<m { next.data[r * m + j] -= 3 * aSa * sa.data[r * m + j] }
        }
        next.normalizeRows()
        return next
    }

    /// Modified Gram–Schmidt on the rows (a row that collapses is replaced by a coordinate vector).
    private func orthonormalizeRows(_ q: inout Tensor) {
        let (b, m) = (q.shape[0], q.shape[1])
        for i in 0..<b {
            for k in 0..<i {
                var c: Float = 0
                for j in 0..<m { c += q.data[i * m + j] * q.data[k * m + j] }
                for j in 0..<m { q.data[i * m + j] -= c * q.data[k * m + j] }
            }
            var norm: Float = 0
            for j in 0..<m { norm += q.data[i * m + j] * q.data[i * m + j] }
            norm = norm.squareRoot()
            if norm > 1e-20 {
                for j in 0..<m { q.data[i * m + j] /= norm }
            } else {
                for j in 0..<m { q.data[i * m + j] = j == i ? 1 : 0 }
            }
        }
    }

    /// Eigenvalues (sorted by decreasing magnitude) and eigenvectors (as arrays of length n) of a small
    /// symmetric n×n matrix, by cyclic Jacobi rotations.
    static func symmetricEigen(_ matrix: [Double], n: Int) -> (values: [Double], vectors: [[Double]]) {
        var a = matrix
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        for _ in 0..<100 {
            var off = 0.0, total = 0.0
            for i in 0..<n { for j in 0..<n { total += a[i * n + j] * a[i * n + j]; if i != j { off += a[i * n + j] * a[i * n + j] } } }
            if off <= 1e-30 * Swift.max(total, 1e-300) { break }
            for p in 0..<n {
                for r in (p + 1)..<Swift.max(p + 1, n) where a[p * n + r] != 0 {
                    let theta = (a[r * n + r] - a[p * n + p]) / (2 * a[p * n + r])
                    let t = (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {   // A ← A·J
                        let akp = a[k * n + p], akr = a[k * n + r]
                        a[k * n + p] = c * akp - s * akr
                        a[k * n + r] = s * akp + c * akr
                    }
                    for k in 0..<n {   // A ← Jᵀ·A
                        let apk = a[p * n + k], ark = a[r * n + k]
                        a[p * n + k] = c * apk - s * ark
                        a[r * n + k] = s * apk + c * ark
                    }
                    for k in 0..<n {   // V ← V·J
                        let vkp = v[k * n + p], vkr = v[k * n + r]
                        v[k * n + p] = c * vkp - s * vkr
                        v[k * n + r] = s * vkp + c * vkr
                    }
                }
            }
        }
        let order = (0..<n).sorted { abs(a[$0 * n + $0]) > abs(a[$1 * n + $1]) }
        return (order.map { a[$0 * n + $0] }, order.map { k in (0..<n).map { v[$0 * n + k] } })
    }
}
