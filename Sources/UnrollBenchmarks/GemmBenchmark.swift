import Foundation
import UnrollCore

/// `unroll bench gemm`: Float32 n×n×n GEMM through our BLAS seam against NumPy's `matmul` on the same
/// sizes and thread count, in the same run. The target is ≥ 85 % of NumPy.
enum GemmBenchmark {
    static let `case` = BenchmarkCase(
        name: "gemm",
        summary: "sgemm n×n×n (default 2000) through BLAS.sgemm vs NumPy float32 matmul (bench/gemm_numpy.py)",
        run: { try run($0) })

    static let target = 0.85

    static func run(_ o: BenchOptions) throws -> BenchReport {
        let n = o.size ?? 2000
        let flops = 2 * Double(n) * Double(n) * Double(n)
        var rng = Random(seed: 0)
        let a = Tensor.normal([n, n], rng: &rng), b = Tensor.normal([n, n], rng: &rng)
        var c = [Float](repeating: 0, count: n * n)
        var times: [Double] = []
        a.data.withUnsafeBufferPointer { ap in
            b.data.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    let (pa, pb, pc) = (ap.baseAddress!, bp.baseAddress!, cp.baseAddress!)
                    let product = {
                        BLAS.sgemm(transA: false, transB: false, m: n, n: n, k: n, alpha: 1, a: pa, lda: n,
                                   b: pb, ldb: n, beta: 0, c: pc, ldc: n)
                    }
                    product()   // warm-up: thread start-up and page faults on C
                    for _ in 0..<o.repeats { times.append(Stopwatch.seconds(product)) }
                }
            }
        }
        let ours = flops / Stopwatch.median(times) / 1e9
        var report = BenchReport(benchmark: "gemm", threads: o.threads, repeats: o.repeats)
        report.details["ours: seconds per product"] = times.map { String(format: "%.4f", $0) }.joined(separator: " ")
        report.details["ours: best GFLOP/s"] = String(format: "%.1f", flops / (times.min() ?? .nan) / 1e9)
        report.details["ours: BLAS"] = "\(MachineInfo.openBLASConfig() ?? "system BLAS") (core \(MachineInfo.openBLASCore() ?? "?"), \(BLAS.threads) threads)"

        var row = BenchRow(name: "sgemm \(n)×\(n)×\(n)", unit: "GFLOP/s", ours: ours, oursLabel: "Unroll")
        do {
            let peer = try PythonPeer.run("gemm_numpy.py", ["--size", "\(n)", "--threads", "\(o.threads)", "--repeats", "\(o.repeats)"],
                                          options: o)
            if let g = peer["gflops"] as? Double {
                row.peer = g
                row.peerLabel = "NumPy"
                row.ratio = ours / g
                row.ratioLabel = "ours/NumPy"
            }
            if let v = peer["numpy"] as? String { report.details["peer: NumPy"] = v }
            if let v = peer["blas"] as? String {
                let core = (peer["core"] as? String).map { $0.isEmpty ? "" : " (core \($0))" } ?? ""
                report.details["peer: BLAS"] = v + core
            }
            if let t = peer["times"] as? [Double] {
                report.details["peer: seconds per product"] = t.map { String(format: "%.4f", $0) }.joined(separator: " ")
                report.details["peer: best GFLOP/s"] = String(format: "%.1f", flops / (t.min() ?? .nan) / 1e9)
            }
        } catch {
            report.notes.append("NumPy peer unavailable: \(error)")
        }
        report.rows.append(row)
        if let r = row.ratio, r < target {
            report.notes.append(String(format: "ours is %.0f %% of NumPy, below the %.0f %% target (see docs/performance.md)", 100 * r, 100 * target))
        }
        return report
    }
}
