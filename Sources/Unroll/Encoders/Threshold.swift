import CUnrollSupport
import Foundation
import UnrollCore

/// The proximal step of an unrolled layer.
public enum Threshold: String, CaseIterable, Equatable, Sendable {
    /// Two-sided soft threshold S_b(v) = sign(v)·max(|v| − b, 0), b = λα (the lasso's prox).
    case soft
    /// One-sided, non-negative: max(v − b, 0), b = λα (non-negative lasso; PUDLE's MNIST model).
    case nonNegative
    /// Hard threshold v·1{|v| > τ} (IHT). τ is used as given, NOT multiplied by α (PUDLE's AEhard).
    case hard

    /// Whether the layer threshold is λ·α (soft kinds) or τ itself (hard).
    public var scalesWithStep: Bool { self != .hard }
}

/// The penalty λ of the soft thresholds, or the hard threshold τ: one value for all atoms or one per atom.
/// A per-layer schedule λ_t = λ·β^(t−1) is applied on top by passing β to the encoder call.
public enum Lambda: Equatable, Sendable {
    case scalar(Float)
    /// One value per atom (length = the operator's `atoms`).
    case perAtom([Float])

    /// The value for each of `atoms` atoms.
    public func values(atoms: Int) -> [Float] {
        switch self {
        case let .scalar(v): return [Float](repeating: v, count: atoms)
        case let .perAtom(v): return v
        }
    }

    /// All values (one for `.scalar`).
    public var allValues: [Float] {
        switch self {
        case let .scalar(v): return [v]
        case let .perAtom(v): return v
        }
    }
}

extension Threshold {
    /// z ← θ(v) for codes laid out `[batch, atoms, positions]` with one threshold per atom.
    /// Hot loop: raw pointers, no allocation, branch-free bodies so it vectorises (codes are about half
    /// zeros in early layers, where a branch per entry would mispredict constantly).
    func apply(_ v: Tensor, thresholds b: [Float], positions: Int, into z: inout Tensor) {
        precondition(v.count == z.count && b.count * positions > 0 && v.count % (b.count * positions) == 0,
                     "threshold: codes \(v.shape) vs \(b.count) atoms × \(positions) positions")
        switch self {
        case .soft: Self.map(v, b, positions, &z, Self.soft)
        case .nonNegative: Self.map(v, b, positions, &z, Self.nonNegative)
        case .hard: Self.map(v, b, positions, &z, Self.hard)
        }
    }

    // The three maps, shared by the whole-tensor form above and the row form of the fast path so that
    // both give bit-identical codes.
    @inline(__always) static func soft(_ x: Float, _ t: Float) -> Float { x - min(max(x, -t), t) }
    @inline(__always) static func nonNegative(_ x: Float, _ t: Float) -> Float { max(x - t, 0) }
    @inline(__always) static func hard(_ x: Float, _ t: Float) -> Float { abs(x) > t ? x : 0 }

    /// One sample's row (dense dictionary: one position per atom): z[j] = θ(v[j]; b[j]) for j < n,
    /// and the sorted indices of z's non-zeros into `support`. Returns their number. The loop is C's
    /// (`unroll_threshold_row`, at the CPU's vector width); its lane maps equal the scalar ones above bit
    /// for bit on finite input (selections by comparison and one subtraction).
    @inline(__always)
    func applyRow(_ v: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int,
                  _ z: UnsafeMutablePointer<Float>, _ support: UnsafeMutablePointer<Int32>) -> Int {
        let kind: Int32 = switch self {
        case .soft: 0
        case .nonNegative: 1
        case .hard: 2
        }
        return unroll_threshold_row(kind, n, v, b, z, support)
    }

    /// z[i, j, q] = f(v[i, j, q], b[j]).
    @inline(__always)
    private static func map(_ v: Tensor, _ b: [Float], _ positions: Int, _ z: inout Tensor,
                            _ f: (Float, Float) -> Float) {
        let atoms = b.count, perSample = atoms * positions, batch = v.count / perSample
        v.data.withUnsafeBufferPointer { pv in
            z.data.withUnsafeMutableBufferPointer { pz in
                b.withUnsafeBufferPointer { pb in
                    if positions == 1 {
                        for i in 0..<batch {
                            let o = i * atoms
                            for j in 0..<atoms { pz[o + j] = f(pv[o + j], pb[j]) }
                        }
                    } else {
                        for i in 0..<batch {
                            for j in 0..<atoms {
                                let t = pb[j], o = (i * atoms + j) * positions
                                for q in o..<(o + positions) { pz[q] = f(pv[q], t) }
                            }
                        }
                    }
                }
            }
        }
    }
}
