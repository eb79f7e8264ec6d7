import CUnrollSupport
import UnrollCore
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif

/// Memory owned by an object and addressed by pointers in the fast path's hot loops (no copy-on-write
/// or exclusivity checks, stable addresses across parallel workers). For trivial types only.
final class Buffer<Element> {
    let base: UnsafeMutablePointer<Element>
    let count: Int

    init(_ count: Int, repeating value: Element) {
        self.count = count
        base = malloc(max(1, count) * MemoryLayout<Element>.stride)!.bindMemory(to: Element.self, capacity: max(1, count))
        base.initialize(repeating: value, count: max(1, count))
    }

    /// Zero-filled storage from calloc: pages never written stay unmapped, so a large accumulator of
    /// which only some rows are touched costs only those rows.
    init(zeros count: Int) {
        self.count = count
        base = calloc(max(1, count), MemoryLayout<Element>.stride)!.bindMemory(to: Element.self, capacity: max(1, count))
    }

    deinit { free(base) }

    /// Element `i · stride` onwards (one row, one part's scratch).
    @inline(__always)
    func row(_ i: Int, _ stride: Int) -> UnsafeMutablePointer<Element> { base + i * stride }

    func fill(_ value: Element) { base.update(repeating: value, count: count) }

    func copy() -> Buffer {
        let c = Buffer(zeros: count)
        c.base.update(from: base, count: count)
        return c
    }
}

/// The fast path's inner loops on one row: contiguous multiply-adds over rows of G or W, and gathers.
/// Index arithmetic uses wrapping operators (`&+`, `&*`): the indices come from supports bounded by the
/// matrix sizes, and the overflow checks were measurable in these loops.
enum RowKernels {
    /// Rows at least this long are streamed whole (BLAS saxpy, or `unroll_add_scaled_rows` for several
    /// terms); shorter ones by our SIMD loops, which for short rows keep a block of the output in registers.
    /// (Measured: p = 100 rows, register blocking ~1.7× faster than saxpy; p = 1500 rows, register
    /// blocking ~8× slower — its scattered 128-byte reads defeat the prefetcher.)
    static let streamingRow = 256

    /// y[0..<n] += a·x[0..<n].
    @inline(__always)
    static func axpy(_ n: Int, _ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        if n >= streamingRow {
            BLAS.saxpy(n, a, x, y)
            return
        }
        let av = SIMD8<Float>(repeating: a)
        let xr = UnsafeRawPointer(x), yr = UnsafeMutableRawPointer(y)
        var t = 0
        while t &+ 8 <= n {
            let o = t &* 4
            let v = yr.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                + av * xr.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
            yr.storeBytes(of: v, toByteOffset: o, as: SIMD8<Float>.self)
            t &+= 8
        }
        while t < n {
            y[t] += a * x[t]
            t &+= 1
        }
    }

    /// out[0..<n] += Σ_q coef[q]·rows[index[q]·stride ..< +n]: the product of one sparse row with a
    /// dense matrix (rows of G or W). Short rows: 32 output columns at a time stay in registers while
    /// every term adds its slice; long rows: streamed four terms per pass over `out`, each term one fused
    /// multiply-add (the roundings of the one saxpy per term this replaced).
    @inline(__always)
    static func scatterRows(_ n: Int, _ out: UnsafeMutablePointer<Float>, _ rows: UnsafePointer<Float>, stride: Int,
                            _ index: UnsafePointer<Int32>, _ coef: UnsafePointer<Float>, _ terms: Int) {
        if n >= streamingRow {
            unroll_add_scaled_rows(Int32(n), out, rows, stride, index, coef, Int32(terms))
            return
        }
        typealias V = SIMD8<Float>
        let o = UnsafeMutableRawPointer(out)
        var j = 0
        while j + 32 <= n {
            let b = 4 &* j
            var a0 = o.loadUnaligned(fromByteOffset: b, as: V.self)
            var a1 = o.loadUnaligned(fromByteOffset: b &+ 32, as: V.self)
            var a2 = o.loadUnaligned(fromByteOffset: b &+ 64, as: V.self)
            var a3 = o.loadUnaligned(fromByteOffset: b &+ 96, as: V.self)
            for q in 0..<terms {
                let c = V(repeating: coef[q])
                let r = UnsafeRawPointer(rows + (Int(index[q]) &* stride &+ j))
                a0 += c * r.loadUnaligned(fromByteOffset: 0, as: V.self)
                a1 += c * r.loadUnaligned(fromByteOffset: 32, as: V.self)
                a2 += c * r.loadUnaligned(fromByteOffset: 64, as: V.self)
                a3 += c * r.loadUnaligned(fromByteOffset: 96, as: V.self)
            }
            o.storeBytes(of: a0, toByteOffset: b, as: V.self)
            o.storeBytes(of: a1, toByteOffset: b &+ 32, as: V.self)
            o.storeBytes(of: a2, toByteOffset: b &+ 64, as: V.self)
            o.storeBytes(of: a3, toByteOffset: b &+ 96, as: V.self)
            j &+= 32
        }
        while j + 8 <= n {
            var a = o.loadUnaligned(fromByteOffset: 4 &* j, as: V.self)
            for q in 0..<terms {
                a += V(repeating: coef[q]) * UnsafeRawPointer(rows + (Int(index[q]) &* stride &+ j)).loadUnaligned(as: V.self)
            }
            o.storeBytes(of: a, toByteOffset: 4 &* j, as: V.self)
            j &+= 8
        }
        while j < n {
            var a = out[j]
            for q in 0..<terms { a += coef[q] * rows[Int(index[q]) &* stride &+ j] }
            out[j] = a
            j &+= 1
        }
    }

    /// Σ_q coef[q]·row[index[q]] (one entry of a sparse row times a dense matrix, gathered).
    @inline(__always)
    static func gather(_ row: UnsafePointer<Float>, _ index: UnsafePointer<Int32>, _ coef: UnsafePointer<Float>,
                       _ terms: Int) -> Float {
        var (s0, s1): (Float, Float) = (0, 0)
        var q = 0
        while q &+ 2 <= terms {
            s0 += coef[q] * row[Int(index[q])]
            s1 += coef[q &+ 1] * row[Int(index[q &+ 1])]
            q &+= 2
        }
        if q < terms { s0 += coef[q] * row[Int(index[q])] }
        return s0 + s1
    }

    /// 1 when x is not ±0, else 0, without a branch (a float `!= 0` compiles to one, which mispredicts
    /// on data that are a few tens of per cent non-zero).
    @inline(__always)
    static func isNonZero(_ x: Float) -> Int {
        Int(truncatingIfNeeded: ((x.bitPattern & 0x7fff_ffff) &+ 0x7fff_ffff) >> 31)
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
