import UnrollCore

/// Memory owned by an object and addressed by pointers in the fast path's hot loops (no copy-on-write
/// or exclusivity checks, stable addresses across parallel workers). For trivial types only.
final class Buffer<Element> {
    let base: UnsafeMutablePointer<Element>
    let count: Int

    init(_ count: Int, repeating value: Element) {
        self.count = count
        base = .allocate(capacity: max(1, count))
        base.initialize(repeating: value, count: max(1, count))
    }

    deinit { base.deallocate() }

    /// Element `i · stride` onwards (one row, one part's scratch).
    @inline(__always)
    func row(_ i: Int, _ stride: Int) -> UnsafeMutablePointer<Element> { base + i * stride }

    func fill(_ value: Element) { base.update(repeating: value, count: count) }
}

/// The fast path's inner loops on one row: contiguous multiply-adds over rows of G or W, and gathers.
enum RowKernels {
    /// y[0..<n] += a·x[0..<n], eight lanes at a time.
    @inline(__always)
    static func axpy(_ n: Int, _ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        let av = SIMD8<Float>(repeating: a)
        let xr = UnsafeRawPointer(x), yr = UnsafeMutableRawPointer(y)
        var t = 0
        while t + 16 <= n {
            let o = t &* 4
            let y0 = yr.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                + av * xr.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
            let y1 = yr.loadUnaligned(fromByteOffset: o + 32, as: SIMD8<Float>.self)
                + av * xr.loadUnaligned(fromByteOffset: o + 32, as: SIMD8<Float>.self)
            yr.storeBytes(of: y0, toByteOffset: o, as: SIMD8<Float>.self)
            yr.storeBytes(of: y1, toByteOffset: o + 32, as: SIMD8<Float>.self)
            t += 16
        }
        while t < n {
            y[t] += a * x[t]
            t += 1
        }
    }

    /// out[0..<n] += Σ_q coef[q]·rows[index[q]·stride ..< +n]: the product of one sparse row with a
    /// dense matrix (rows of G or W), done as one row update per non-zero.
    @inline(__always)
    static func scatterRows(_ n: Int, _ out: UnsafeMutablePointer<Float>, _ rows: UnsafePointer<Float>, stride: Int,
                            _ index: UnsafePointer<Int32>, _ coef: UnsafePointer<Float>, _ terms: Int) {
        for q in 0..<terms { axpy(n, coef[q], rows + Int(index[q]) * stride, out) }
    }

    /// Σ_q coef[q]·row[index[q]] (one entry of a sparse row times a dense matrix, gathered).
    @inline(__always)
    static func gather(_ row: UnsafePointer<Float>, _ index: UnsafePointer<Int32>, _ coef: UnsafePointer<Float>,
                       _ terms: Int) -> Float {
        var (s0, s1): (Float, Float) = (0, 0)
        var q = 0
        while q + 2 <= terms {
            s0 += coef[q] * row[Int(index[q])]
            s1 += coef[q + 1] * row[Int(index[q + 1])]
            q += 2
        }
        if q < terms { s0 += coef[q] * row[Int(index[q])] }
        return s0 + s1
    }

    /// Merges two sorted index lists into their sorted union; `flags[q]` gets bit 1 when out[q] came from
    /// `a` and bit 2 when from `b`. Returns the union's size.
    @inline(__always)
    static func union(_ a: UnsafePointer<Int32>, _ na: Int, _ b: UnsafePointer<Int32>, _ nb: Int,
                      _ out: UnsafeMutablePointer<Int32>, _ flags: UnsafeMutablePointer<UInt8>) -> Int {
        var (i, j, n) = (0, 0, 0)
        while i < na && j < nb {
            let (x, y) = (a[i], b[j])
            if x == y {
                out[n] = x; flags[n] = 3; i += 1; j += 1
            } else if x < y {
                out[n] = x; flags[n] = 1; i += 1
            } else {
                out[n] = y; flags[n] = 2; j += 1
            }
            n += 1
        }
        while i < na { out[n] = a[i]; flags[n] = 1; i += 1; n += 1 }
        while j < nb { out[n] = b[j]; flags[n] = 2; j += 1; n += 1 }
        return n
    }
}
