import UnrollCore

/// Distances between a learned dictionary and the true one. Dictionaries are `[atoms, m]`
/// (atoms as rows); every metric first scales each atom of both to unit ℓ2 norm (zero atoms stay 0).
public enum DictionaryMetrics {
    /// PUDLE's plotted metric: ‖Ŵ − Ŵ*‖_F / ‖Ŵ*‖_F with Ŵ, Ŵ* the atom-normalised dictionaries,
    /// atom i compared with atom i: no permutation, no sign matching. Shapes must agree.
    public static func relativeFrobeniusError(_ w: Tensor, _ reference: Tensor) -> Double {
        precondition(w.rank == 2 && w.shape == reference.shape,
                     "relative error needs equal [atoms, m] shapes, got \(w.shape) and \(reference.shape)")
        let (p, m) = (w.shape[0], w.shape[1])
        let a = unitRows(w), b = unitRows(reference)
        var diff = 0.0, ref = 0.0
        for e in 0..<(p * m) {
            diff += (a[e] - b[e]) * (a[e] - b[e])
            ref += b[e] * b[e]
        }
        return ref > 0 ? (diff / ref).squareRoot() : (diff > 0 ? .infinity : 0)
    }

    /// Matches the atoms of `w` to those of `reference` one-to-one (Hungarian algorithm on the cost
    /// 1 − |⟨ŵ_i, ŵ*_j⟩|), fixes each pair's sign, and measures the matched pairs. With different
    /// atom counts, min(k, p) pairs are formed and the surplus atoms are left out.
    public static func matchAtoms(_ w: Tensor, to reference: Tensor) -> AtomMatching {
        precondition(w.rank == 2 && reference.rank == 2 && w.shape[1] == reference.shape[1],
                     "matching needs [atoms, m] dictionaries with equal m, got \(w.shape) and \(reference.shape)")
        let (k, p, m) = (w.shape[0], reference.shape[0], w.shape[1])
        var wn = w, rn = reference
        wn.normalizeRows()
        rn.normalizeRows()
        let gram = wn.matmul(rn, transposeOther: true)   // [k, p] inner products
        // Non-finite inner products (a diverged dictionary) cost more than any real pair (≤ 1).
        let cost = gram.data.map { $0.isFinite ? 1 - Double(abs($0)) : 2 }
        let assignment = Hungarian.assignment(cost: cost, rows: k, cols: p)

        let a = unitRows(w), b = unitRows(reference)
        var pairs: [(atom: Int, reference: Int)] = []
        for (i, j) in assignment.enumerated() where j >= 0 { pairs.append((i, j)) }
        pairs.sort { $0.reference < $1.reference }

        var signs: [Float] = [], sines: [Double] = [], diff = 0.0
        for (i, j) in pairs {
            var c = 0.0
            for e in 0..<m { c += a[i * m + e] * b[j * m + e] }
            let sign: Double = c < 0 ? -1 : 1
            // The sine from the residual of the projection: exact near 0, unlike √(1 − c²).
            var orth = 0.0, d = 0.0
            for e in 0..<m {
                let x = a[i * m + e], y = b[j * m + e]
                orth += (x - c * y) * (x - c * y)
                d += (sign * x - y) * (sign * x - y)
            }
            let atomNorm = (0..<m).reduce(0.0) { $0 + a[i * m + $1] * a[i * m + $1] }
            // A zero atom is at distance 1 from everything.
            sines.append(atomNorm > 0 ? Swift.min(1, orth.squareRoot()) : 1)
            signs.append(Float(sign))
            diff += d
        }
        var refSquared = 0.0
        for (_, j) in pairs { for e in 0..<m { refSquared += b[j * m + e] * b[j * m + e] } }
        let relative = refSquared > 0 ? (diff / refSquared).squareRoot() : (diff > 0 ? .infinity : 0)
        return AtomMatching(atoms: pairs.map(\.atom), references: pairs.map(\.reference), signs: signs,
                            sinDistances: sines, relativeFrobeniusError: relative, referenceCount: p)
    }

    /// Rows scaled to unit norm, in Double.
    static func unitRows(_ t: Tensor) -> [Double] {
        let (r, c) = (t.shape[0], t.shape[1])
        var out = t.data.map(Double.init)
        for i in 0..<r {
            var s = 0.0
            for j in 0..<c { s += out[i * c + j] * out[i * c + j] }
            if s > 0 {
                let inv = 1 / s.squareRoot()
                for j in 0..<c { out[i * c + j] *= inv }
            }
        }
        return out
    }
}

/// The result of `DictionaryMetrics.matchAtoms`: pairs (learned atom `atoms[t]`, true atom
/// `references[t]`), sorted by the true atom's index, with the sign that aligns them.
public struct AtomMatching: Equatable, Sendable {
    /// Row of the learned dictionary in pair t.
    public let atoms: [Int]
    /// Row of the reference (true) dictionary in pair t (ascending).
    public let references: [Int]
    /// sign(⟨w_atom, w*_reference⟩) for each pair (+1 when the inner product is 0).
    public let signs: [Float]
    /// √(1 − ⟨ŵ, ŵ*⟩²) for each pair (0 = same line, 1 = orthogonal).
    public let sinDistances: [Double]
    /// ‖sign·ŵ − ŵ*‖_F / ‖ŵ*‖_F over the matched pairs (after permutation and sign fixing).
    public let relativeFrobeniusError: Double
    /// Number of atoms in the reference dictionary.
    public let referenceCount: Int

    public var meanSinDistance: Double {
        sinDistances.isEmpty ? 0 : sinDistances.reduce(0, +) / Double(sinDistances.count)
    }

    public var maxSinDistance: Double { sinDistances.max() ?? 0 }

    /// Number of true atoms matched within sin-distance `threshold`.
    public func recoveredCount(within threshold: Double) -> Int {
        sinDistances.reduce(0) { $1 <= threshold ? $0 + 1 : $0 }
    }

    /// The learned dictionary rearranged to line up with the reference: row j is the sign-fixed,
    /// unit-normalised atom matched to true atom j (a zero row where none was matched).
    public func aligned(_ w: Tensor) -> Tensor {
        let m = w.shape[1]
        var out = Tensor(zeros: [referenceCount, m])
        var unit = w
        unit.normalizeRows()
        for t in 0..<atoms.count {
            for e in 0..<m { out.data[references[t] * m + e] = signs[t] * unit.data[atoms[t] * m + e] }
        }
        return out
    }
}
