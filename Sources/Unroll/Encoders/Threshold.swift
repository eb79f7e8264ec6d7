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
    /// and the sorted indices of z's non-zeros into `support`. Returns their number.
    /// Eight lanes at a time; the indices are collected only from blocks with a non-zero, so a row that
    /// is 99 % zeros costs about one comparison per eight entries. The lane maps equal the scalar ones
    /// above bit for bit on finite input (selections by comparison and one subtraction).
    @inline(__always)
    func applyRow(_ v: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int,
                  _ z: UnsafeMutablePointer<Float>, _ support: UnsafeMutablePointer<Int32>) -> Int {
        // (Comparisons and `replacing` rather than pointwiseMin/Max, which are not inlined.)
        switch self {
        case .soft:
            return Self.mapRow(v, b, n, z, support, Self.soft) { x, t in
                x - x.replacing(with: t, where: x .> t).replacing(with: -t, where: x .< -t)   // x − clamp(x, −t, t)
            }
        case .nonNegative:
            return Self.mapRow(v, b, n, z, support, Self.nonNegative) { x, t in
                let d = x - t
                return d.replacing(with: 0, where: d .< 0)
            }
        case .hard:
            return Self.mapRow(v, b, n, z, support, Self.hard) { x, t in
                SIMD8(repeating: 0).replacing(with: x, where: (x .> t) .| (x .< -t))   // |x| > t
            }
        }
    }

    @inline(__always)
    private static func mapRow(_ v: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int,
                               _ z: UnsafeMutablePointer<Float>, _ support: UnsafeMutablePointer<Int32>,
                               _ f: (Float, Float) -> Float, _ f8: (SIMD8<Float>, SIMD8<Float>) -> SIMD8<Float>) -> Int {
        let (vr, br, zr) = (UnsafeRawPointer(v), UnsafeRawPointer(b), UnsafeMutableRawPointer(z))
        var c = 0, j = 0
        while j &+ 8 <= n {
            let y = f8(vr.loadUnaligned(fromByteOffset: 4 &* j, as: SIMD8<Float>.self),
                       br.loadUnaligned(fromByteOffset: 4 &* j, as: SIMD8<Float>.self))
            zr.storeBytes(of: y, toByteOffset: 4 &* j, as: SIMD8<Float>.self)
            if any(y .!= 0) {
                // Branch-free within the block (dense-ish rows would mispredict a branch per lane):
                // always write the index, advance when the value's bits are not ±0.
                let bits = UnsafeRawPointer(z + j).assumingMemoryBound(to: UInt32.self)
                for l in 0..<8 {
                    support[c] = Int32(truncatingIfNeeded: j &+ l)
                    c &+= Int(truncatingIfNeeded: ((bits[l] & 0x7fff_ffff) &+ 0x7fff_ffff) >> 31)
                }
            }
            j &+= 8
        }
        while j < n {
            z[j] = f(v[j], b[j])
            if z[j] != 0 {
                support[c] = Int32(truncatingIfNeeded: j)
                c &+= 1
            }
            j &+= 1
        }
        return c
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
