import Foundation
import UnrollCore

/// `unroll bench ftz`: the cost of denormals, and what flush-to-zero saves.
///
/// 1. A 100-layer ISTA-like loop z ← S_b(γ·z + η·x) over 2¹⁶ values (γ = 0.5, η = 10⁻³; cache-resident,
///    so memory does not hide the arithmetic). The codes start at x (normal floats near 3·10⁻³⁷) and shrink
///    by half per layer toward the fixed point ηx/(1 − γ) ≈ 6·10⁻⁴⁰, so after a few layers nearly every
///    value and every product η·x is denormal — what the tail of an unrolled network's backward pass
///    looks like. This is our own Swift loop, compiled like the rest of the package.
/// 2. OpenBLAS sgemm 1000³ with a denormal left operand (every product denormal), for comparison.
/// Each timed with flush-to-zero on and off on the same data, interleaved.
enum FlushToZeroBenchmark {
    static let `case` = BenchmarkCase(
        name: "ftz",
        summary: "100-layer soft-threshold loop whose values become denormal, flush-to-zero on vs off",
        run: { try run($0) })

    static let layers = 100
    static let gamma: Float = 0.5, eta: Float = 1e-3
    /// Threshold 2⁻¹³⁶ ≈ 1.1·10⁻⁴¹: itself denormal, so with denormals-are-zero it reads as 0.
    static let threshold: Float = .leastNormalMagnitude / 1024

    /// The layers over one chunk; each worker owns its slice for all layers (no synchronisation needed).
    static func layersLoop(z: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, range: Range<Int>) {
        let (g, e, b) = (gamma, eta, threshold)
        for _ in 0..<layers {
            for i in range { z[i] = Tensor.soft(g * z[i] + e * x[i], b) }
        }
    }

    static func run(_ o: BenchOptions) throws -> BenchReport {
        let n = o.size ?? (1 << 16)
        var rng = Random(seed: 0)
        // Normal (not denormal) inputs, so denormals-are-zero alone cannot zero them: x ∈ ±[1.5, 4.5]·10⁻³⁷.
        let x = (0..<n).map { _ in Float(rng.uniform(1.5, 4.5) * 1e-37) * rng.sign() }
        var z = x
        var denormalFraction = 0.0, flushedNonZero = 0

        func timeOnce(flush: Bool) -> Double {
            z = x
            return x.withUnsafeBufferPointer { xp in
                z.withUnsafeMutableBufferPointer { zp in
                    let (xb, zb) = (xp.baseAddress!, zp.baseAddress!)
                    return FlushDenormals.with(flush) {
                        Stopwatch.seconds {
                            Parallel.forEachChunk(n, minPerPart: 4096) { layersLoop(z: zb, x: xb, range: $0) }
                        }
                    }
                }
            }
        }

        _ = timeOnce(flush: false)   // warm-up (page faults, thread pool)
        denormalFraction = Double(z.filter { $0.isSubnormal }.count) / Double(n)
        _ = timeOnce(flush: true)
        flushedNonZero = z.filter { $0 != 0 }.count
        var on: [Double] = [], off: [Double] = []
        for _ in 0..<o.repeats {   // interleaved, so load changes hit both alike
            on.append(timeOnce(flush: true))
            off.append(timeOnce(flush: false))
        }
        let (tOn, tOff) = (Stopwatch.median(on) * 1e3, Stopwatch.median(off) * 1e3)
        var report = BenchReport(benchmark: "ftz", threads: o.threads, repeats: o.repeats)
        report.rows.append(BenchRow(name: "soft-threshold, \(layers) layers × \(n)", unit: "ms", ours: tOn, oursLabel: "flush on",
                                    peer: tOff, peerLabel: "flush off", ratio: tOff / tOn, ratioLabel: "off/on"))
        report.details["loop: denormal fraction after the last layer (flush off)"] = String(format: "%.3f", denormalFraction)
        report.details["loop: non-zeros after the last layer (flush on)"] = "\(flushedNonZero)"
        report.details["loop: flush on: ms per run"] = on.map { String(format: "%.2f", $0 * 1e3) }.joined(separator: " ")
        report.details["loop: flush off: ms per run"] = off.map { String(format: "%.2f", $0 * 1e3) }.joined(separator: " ")
        report.details["loop: ns per element-layer (on / off)"] = String(format: "%.3f / %.3f", tOn * 1e6 / Double(n * layers), tOff * 1e6 / Double(n * layers))
        report.rows.append(gemmRow(o))
        return report
    }

    /// sgemm with A's entries ~10⁻⁴¹ (denormal) times a normal B, so products, sums and C are denormal too:
    /// flush on vs off in the calling thread (OpenBLAS's own threads keep whatever they started with).
    static func gemmRow(_ o: BenchOptions) -> BenchRow {
        let n = 1000
        var rng = Random(seed: 1)
        let a = Tensor.normal([n, n], rng: &rng).map { $0 * Float.leastNormalMagnitude / 1024 }
        let b = Tensor.normal([n, n], rng: &rng)
        var c = [Float](repeating: 0, count: n * n)
        var on: [Double] = [], off: [Double] = []
        a.data.withUnsafeBufferPointer { ap in
            b.data.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    let (pa, pb, pc) = (ap.baseAddress!, bp.baseAddress!, cp.baseAddress!)
                    let product = {
                        BLAS.sgemm(transA: false, transB: false, m: n, n: n, k: n, alpha: 1, a: pa, lda: n,
                                   b: pb, ldb: n, beta: 0, c: pc, ldc: n)
                    }
                    product()
                    for _ in 0..<o.repeats {
                        on.append(FlushDenormals.with(true) { Stopwatch.seconds(product) })
                        off.append(FlushDenormals.with(false) { Stopwatch.seconds(product) })
                    }
                }
            }
        }
        let (tOn, tOff) = (Stopwatch.median(on) * 1e3, Stopwatch.median(off) * 1e3)
        return BenchRow(name: "sgemm \(n)³, denormal A (OpenBLAS)", unit: "ms", ours: tOn, oursLabel: "flush on",
                        peer: tOff, peerLabel: "flush off", ratio: tOff / tOn, ratioLabel: "off/on")
    }
}
