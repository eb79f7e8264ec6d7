/// Element-wise maps and reductions. Loops run over raw buffers so they vectorise.
extension Tensor {
    /// Applies `f` to every element in place.
    @inlinable
    public mutating func mapInPlace(_ f: (Float) -> Float) {
        data.withUnsafeMutableBufferPointer { p in
            for i in p.indices { p[i] = f(p[i]) }
        }
    }

    @inlinable
    public func map(_ f: (Float) -> Float) -> Tensor {
        var out = self
        out.mapInPlace(f)
        return out
    }

    /// Combines two tensors of one shape element by element.
    @inlinable
    public func zipWith(_ other: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
        var out = self
        out.update(with: other, f)
        return out
    }

    /// self[i] = f(self[i], other[i]) in place: `zipWith` without the new tensor.
    @inlinable
    public mutating func update(with other: Tensor, _ f: (Float, Float) -> Float) {
        precondition(shape == other.shape, "shapes differ: \(shape) vs \(other.shape)")
        data.withUnsafeMutableBufferPointer { o in
            other.data.withUnsafeBufferPointer { b in
                for i in o.indices { o[i] = f(o[i], b[i]) }
            }
        }
    }

    public static func + (a: Tensor, b: Tensor) -> Tensor { a.zipWith(b, +) }
    public static func - (a: Tensor, b: Tensor) -> Tensor { a.zipWith(b, -) }
    public static func * (a: Tensor, b: Tensor) -> Tensor { a.zipWith(b, *) }
    public static func * (s: Float, a: Tensor) -> Tensor { a.map { s * $0 } }

    /// self += alpha · other
    public mutating func add(_ other: Tensor, scaledBy alpha: Float = 1) {
        precondition(shape == other.shape, "shapes differ: \(shape) vs \(other.shape)")
        data.withUnsafeMutableBufferPointer { y in
            other.data.withUnsafeBufferPointer { x in
                for i in y.indices { y[i] += alpha * x[i] }
            }
        }
    }

    // MARK: thresholds

    /// Two-sided soft threshold S_b(v) = sign(v)·max(|v| − b, 0).
    public func softThreshold(_ b: Float) -> Tensor { map { Tensor.soft($0, b) } }
    /// One-sided (non-negative) soft threshold max(v − b, 0).
    public func relu(bias b: Float = 0) -> Tensor { map { Swift.max($0 - b, 0) } }
    /// Hard threshold: v where |v| > τ, else 0.
    public func hardThreshold(_ tau: Float) -> Tensor { map { abs($0) > tau ? $0 : 0 } }

    @inlinable @inline(__always)
    public static func soft(_ v: Float, _ b: Float) -> Float {
        v > b ? v - b : (v < -b ? v + b : 0)
    }

    // MARK: reductions

    public func sum() -> Float { data.withUnsafeBufferPointer { Tensor.sum($0) } }
    public func mean() -> Float { count == 0 ? 0 : sum() / Float(count) }
    public func min() -> Float { data.min() ?? 0 }
    public func max() -> Float { data.max() ?? 0 }

    /// Sum of squares, accumulated in Double so large tensors keep their precision.
    public func squaredNorm() -> Double {
        data.withUnsafeBufferPointer { p in
            var s = 0.0
            for v in p { s += Double(v) * Double(v) }
            return s
        }
    }
    /// Frobenius / ℓ2 norm.
    public func norm() -> Float { Float(squaredNorm().squareRoot()) }
    /// ℓ1 norm.
    public func l1Norm() -> Float {
        data.withUnsafeBufferPointer { p in
            var s = 0.0
            for v in p { s += Double(abs(v)) }
            return Float(s)
        }
    }
    /// Number of exactly-zero elements.
    public func zeroCount() -> Int { data.reduce(0) { $1 == 0 ? $0 + 1 : $0 } }
    /// Whether any element is NaN or ±∞ (checked on every parameter and gradient of every training step).
    public var hasNonFinite: Bool { !largestMagnitude.isFinite }

    /// Whether both tensors' elements are the same storage (so, while one is kept alive, neither can have
    /// been written since they were copied from each other).
    public func sharesStorage(with other: Tensor) -> Bool {
        data.withUnsafeBufferPointer { a in
            other.data.withUnsafeBufferPointer { b in a.baseAddress == b.baseAddress && a.count == b.count }
        }
    }

    /// max |x| over the elements (0 when empty); NaN when one is NaN, ∞ when one is infinite and none NaN.
    /// With the sign bit cleared, the bit patterns of floats order as their magnitudes do (NaN's above
    /// ∞'s above every finite one), so this is an integer maximum, which vectorises.
    /// Large tensors (the weights and moments checked every step) are split over the workers.
    public var largestMagnitude: Float {
        data.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: UInt32.self) { bits in
                let parts = Swift.max(1, Swift.min(Parallel.workers, bits.count / Self.elementsPerPart))
                var largest = [UInt32](repeating: 0, count: parts)
                largest.withUnsafeMutableBufferPointer { out in
                    nonisolated(unsafe) let out = out
                    Parallel.forEachPart(bits.count, parts: parts) { part, range in
                        var m: UInt32 = 0
                        for i in range { m = Swift.max(m, bits[i] & 0x7fff_ffff) }
                        out[part] = m
                    }
                }
                return Float(bitPattern: largest.max() ?? 0)
            }
        }
    }

    /// Elements below which a pass over a tensor runs on one thread (a parallel region costs ~40 µs here).
    static let elementsPerPart = 1 << 19

    @inlinable
    static func sum(_ p: UnsafeBufferPointer<Float>) -> Float {
        var s = 0.0
        for v in p { s += Double(v) }
        return Float(s)
    }

    // MARK: normalisation

    /// ℓ2 norm of each row.
    public func rowNorms() -> [Float] {
        let (r, c) = (rows, cols)
        var norms = [Float](repeating: 0, count: r)
        data.withUnsafeBufferPointer { p in
            norms.withUnsafeMutableBufferPointer { out in
                nonisolated(unsafe) let out = out
                // Each row's sum runs in order (its rounding does not depend on the split).
                Parallel.forEachChunk(r, minPerPart: Swift.max(1, Self.elementsPerPart / Swift.max(1, c))) { range in
                    for i in range {
                        var s: Float = 0
                        for j in 0..<c { s += p[i * c + j] * p[i * c + j] }
                        out[i] = s.squareRoot()
                    }
                }
            }
        }
        return norms
    }

    /// ℓ2 norm of each column of a matrix.
    public func columnNorms() -> [Float] {
        precondition(rank == 2, "columnNorms needs a matrix, got \(shape)")
        let (r, c) = (shape[0], shape[1])
        var acc = [Float](repeating: 0, count: c)
        data.withUnsafeBufferPointer { p in
            for i in 0..<r { for j in 0..<c { acc[j] += p[i * c + j] * p[i * c + j] } }
        }
        return acc.map { $0.squareRoot() }
    }

    /// Scales every row to unit ℓ2 norm (rows of zeros stay zero).
    public mutating func normalizeRows() {
        let c = cols, norms = rowNorms()
        data.withUnsafeMutableBufferPointer { p in
            nonisolated(unsafe) let p = p
            Parallel.forEachChunk(norms.count, minPerPart: Swift.max(1, Self.elementsPerPart / Swift.max(1, c))) { range in
                for i in range where norms[i] > 0 {
                    let s = 1 / norms[i]
                    for j in 0..<c { p[i * c + j] *= s }
                }
            }
        }
    }

    /// Multiplies row i (the first axis) by `factors[i]`.
    public mutating func scaleRows(by factors: [Float]) {
        precondition(factors.count == rows, "scaleRows: \(factors.count) factors for \(rows) rows")
        let c = cols
        data.withUnsafeMutableBufferPointer { p in
            for i in 0..<factors.count { for j in 0..<c { p[i * c + j] *= factors[i] } }
        }
    }

    /// Scales every column of a matrix to unit ℓ2 norm (zero columns stay zero).
    public mutating func normalizeColumns() {
        let c = shape[1], inv = columnNorms().map { $0 > 0 ? 1 / $0 : 0 }
        data.withUnsafeMutableBufferPointer { p in
            for i in 0..<shape[0] { for j in 0..<c { p[i * c + j] *= inv[j] } }
        }
    }
}
