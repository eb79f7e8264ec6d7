import Foundation
import UnrollCore

/// `unroll bench gemm`: Float32 n×n×n GEMM through our BLAS seam against NumPy's `matmul` on the same
/// sizes and thread count, in the same run. The target is ≥ 85 % of NumPy.
///
/// NumPy runs in one `bench/gemm_numpy.py --serve` process and the repeats alternate (ours, NumPy,
/// NumPy, ours, …) with a short pause between products, so that load from other processes on a shared
/// machine falls on both sides alike and neither library's idle-spinning BLAS threads slow the other.
enum GemmBenchmark {
    static let `case` = BenchmarkCase(
        name: "gemm",
        summary: "sgemm n×n×n (default 2000) through BLAS.sgemm vs NumPy float32 matmul (bench/gemm_numpy.py), interleaved",
        run: { try run($0) })

    /// Pause before each timed product: OpenBLAS threads spin for a while after a call before sleeping.
    static let pause: UInt32 = 200_000

    static func run(_ o: BenchOptions) throws -> BenchReport {
        let n = o.size ?? 2000
        let flops = 2 * Double(n) * Double(n) * Double(n)
        var rng = Random(seed: 0)
        let a = Tensor.normal([n, n], rng: &rng), b = Tensor.normal([n, n], rng: &rng)
        var c = [Float](repeating: 0, count: n * n)
        var report = BenchReport(benchmark: "gemm", threads: o.threads, repeats: o.repeats)
        var row = BenchRow(name: "sgemm \(n)×\(n)×\(n)", unit: "GFLOP/s", ours: .nan, oursLabel: "Unroll")

        // The peer starts first (import, data, warm-up) and waits for commands.
        var peer: PythonPeer.Session?
        do {
            let s = try PythonPeer.Session("gemm_numpy.py", ["--size", "\(n)", "--threads", "\(o.threads)", "--serve"],
                                           options: o, environment: [:], interactive: true)
            let hello = try s.readLine()
            guard hello == "ready" else { throw BenchError("gemm_numpy.py said '\(hello)' instead of 'ready'") }
            peer = s
        } catch {
            report.notes.append("NumPy peer unavailable: \(error)")
        }

        var ours: [Double] = [], theirs: [Double] = []
        var peerError: Error?
        a.data.withUnsafeBufferPointer { ap in
            b.data.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    let (pa, pb, pc) = (ap.baseAddress!, bp.baseAddress!, cp.baseAddress!)
                    let product = {
                        BLAS.sgemm(transA: false, transB: false, m: n, n: n, k: n, alpha: 1, a: pa, lda: n,
                                   b: pb, ldb: n, beta: 0, c: pc, ldc: n)
                    }
                    product()   // warm-up: thread start-up and page faults on C
                    for r in 0..<o.repeats {
                        for side in (r % 2 == 0 ? [0, 1] : [1, 0]) {
                            usleep(pause)
                            if side == 0 {
                                ours.append(Stopwatch.seconds(product))
                            } else if let s = peer, peerError == nil {
                                do {
                                    try s.send("run")
                                    guard let t = Double(try s.readLine()) else { throw BenchError("gemm_numpy.py answered a non-number") }
                                    theirs.append(t)
                                } catch { peerError = error }
                            }
                        }
                    }
                }
            }
        }
        row.ours = flops / Stopwatch.median(ours) / 1e9
        report.details["ours: seconds per product"] = ours.map { String(format: "%.4f", $0) }.joined(separator: " ")
        report.details["ours: best GFLOP/s"] = String(format: "%.1f", flops / (ours.min() ?? .nan) / 1e9)
        report.details["ours: BLAS"] = "\(MachineInfo.openBLASConfig() ?? "system BLAS") (core \(MachineInfo.openBLASCore() ?? "?"), \(BLAS.threads) threads)"

        if let s = peer {
            do {
                if let e = peerError { throw e }
                try? s.send("quit")
                let info = try s.finish()
                let g = flops / Stopwatch.median(theirs) / 1e9
                row.peer = g
                row.peerLabel = "NumPy"
                row.ratio = row.ours / g
                row.ratioLabel = "ours/NumPy"
                if let v = info["numpy"] as? String { report.details["peer: NumPy"] = v }
                if let v = info["blas"] as? String {
                    let core = (info["core"] as? String).map { $0.isEmpty ? "" : " (core \($0))" } ?? ""
                    report.details["peer: BLAS"] = v + core
                }
                report.details["peer: seconds per product"] = theirs.map { String(format: "%.4f", $0) }.joined(separator: " ")
                report.details["peer: best GFLOP/s"] = String(format: "%.1f", flops / (theirs.min() ?? .nan) / 1e9)
                // Paired ratios (same moment, same load): their spread shows how much the machine drifted.
                let paired = zip(ours, theirs).map { $1 / $0 }
                report.details["paired ratios ours/NumPy"] = paired.map { String(format: "%.2f", $0) }.joined(separator: " ")
            } catch {
                report.notes.append("NumPy peer failed: \(error)")
            }
        }
        row.target = BenchTargets.gemmOfNumPy
        report.rows.append(row)
        return report
    }
}
