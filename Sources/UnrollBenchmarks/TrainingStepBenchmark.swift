import Foundation
import Unroll
import UnrollCore
import UnrollIO

/// What the training-step cases share (`conv-denoise`, `crsae-denoise`, `spikes`): one step of one of our
/// trainers beside a PyTorch peer written from the paper's equations (`bench/*_torch.py`), in the same
/// invocation and thread count. We write the step's inputs (data and initial parameters) to an .npz that
/// the peer reads (`--inputs`), so both sides start from the same numbers and their per-step losses must
/// agree to float32 rounding (printed in the details as a check). Every timed step re-uses the same data
/// on both sides; the sampling a real run does per step costs microseconds and is not timed.
struct TrainingStepCase {
    var name: String
    /// The table row, e.g. "g_ae-ls step 129² T 15".
    var row: String
    var setting: String
    var script: String
    /// Written to the .npz the peer reads.
    var inputs: [(String, Tensor)]
    /// One step: its loss before the update and the code density.
    var step: () throws -> (loss: Double, density: Double)
    /// The encoder alone (T layers, no trace) at the current parameters, for where the time goes.
    var encodeOnly: (() throws -> Void)?
    /// How many times faster than PyTorch ours should be.
    var target: BenchTarget
    /// Models that sample (VSC) draw their own random numbers on each side: then only the first step's
    /// losses are compared (same model, same data, different draws), to this relative tolerance.
    var ownDraws: Double? = nil

    func run(_ o: BenchOptions) throws -> BenchReport {
        var report = BenchReport(benchmark: name, threads: o.threads, repeats: o.repeats)
        report.details["setting"] = setting

        // The peer first (import, inputs, warm-up step), then ours, then the timed steps alternate.
        var peer: PythonPeer.Session?
        let file = NSTemporaryDirectory() + "unroll-\(name)-\(getpid())-\(UInt64.random(in: 0..<UInt64.max)).npz"
        defer { try? FileManager.default.removeItem(atPath: file) }
        if o.runPeer {
            do {
                try Npz.write(inputs, to: file)
                peer = try PudleBenchmarks.startPeer(script, [
                    "--inputs", file, "--threads", "\(o.threads)", "--warmup", "1", "--repeats", "\(o.repeats)"], o)
            } catch {
                report.notes.append("PyTorch peer unavailable: \(error)")
            }
        }

        let resettable = ResidentMemory.resetPeak()
        var losses: [Double] = [], density = Double.nan
        let timed: () throws -> Double = {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let r = try step()
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
            losses.append(r.loss)
            density = r.density
            return seconds
        }
        _ = try timed()   // warm-up
        var sides = [PudleBenchmarks.Side(label: "ours", run: timed)]
        if let s = peer { sides.append(PudleBenchmarks.Side(label: "PyTorch", run: { try PudleBenchmarks.peerUnit(s) })) }
        PudleBenchmarks.interleave(&sides, o, &report)
        if let e = sides[0].error { throw e }
        let peakMB = resettable ? ResidentMemory.peak() : ResidentMemory.lifetimePeak()

        let ours = sides[0].times, oursMedian = Stopwatch.median(ours)
        var row = BenchRow(name: row, unit: "s", ours: oursMedian, oursLabel: "Unroll", target: target)
        var memory = BenchRow(name: "peak RSS", unit: "MB", ours: peakMB ?? .nan, oursLabel: "Unroll", target: BenchTargets.peakRSS)
        report.details["ours: seconds per step"] = PudleBenchmarks.seconds(ours)
        if let encodeOnly {
            let times = (0..<o.repeats).map { _ in Stopwatch.seconds { _ = try? FlushDenormals.with(true) { try encodeOnly() } } }
            report.details["ours: encode only (T layers, no trace), median s"] = String(format: "%.4f", Stopwatch.median(times))
        }
        report.details["ours: losses per step (warm-up first)"] = losses.map { String(format: "%.6g", $0) }.joined(separator: " ")
        report.details["ours: code density at the last step"] = String(format: "%.3f", density)
        if let s = peer {
            do {
                if let e = sides[1].error { throw e }
                let info = try PudleBenchmarks.stopPeer(s)
                let theirs = sides[1].times, median = Stopwatch.median(theirs)
                row.peer = median
                row.peerLabel = "PyTorch"
                row.ratio = median / oursMedian
                row.ratioLabel = "× (torch/ours)"
                report.details["peer: seconds per step"] = PudleBenchmarks.seconds(theirs)
                report.details["paired speed-ups torch/ours"] = zip(ours, theirs).map { String(format: "%.2f", $1 / $0) }.joined(separator: " ")
                if let l = info["losses"] as? [Double] {
                    report.details["peer: losses per step (warm-up first)"] = l.map { String(format: "%.6g", $0) }.joined(separator: " ")
                    let n = min(l.count, losses.count, ownDraws == nil ? .max : 1)
                    if n > 0 {
                        let diff = (0..<n).map { abs(l[$0] - losses[$0]) / max(abs(losses[$0]), 1e-30) }.max()!
                        let tolerance = ownDraws ?? 1e-3
                        report.details[ownDraws == nil ? "max relative loss difference ours vs peer, same inputs"
                                       : "relative difference of the first step's loss ours vs peer (same model and data, own draws)"] = String(format: "%.1e", diff)
                        if diff > tolerance { report.notes.append(String(format: "the two sides' losses differ by %.1e (relative): they do not compute the same step", diff)) }
                    }
                }
                if let dn = info["density"] as? Double { report.details["peer: code density at the last step"] = String(format: "%.3f", dn) }
                if let pk = info["peak_rss_mb"] as? Double {
                    (memory.peer, memory.peerLabel, memory.ratio, memory.ratioLabel) = (pk, "PyTorch, incl. import torch", (peakMB ?? .nan) / pk, "ours/torch")
                }
                if let v = info["torch"] as? String {
                    let policy = (info["omp_wait_policy"] as? String).map { $0.isEmpty ? "" : ", OMP_WAIT_POLICY=\($0)" } ?? ""
                    report.details["peer: torch"] = v + policy + " (set_num_threads(\(o.threads)), set_flush_denormal(True))"
                }
            } catch {
                report.notes.append("PyTorch peer failed: \(error)")
            }
        }
        report.rows = [row, memory]
        return report
    }
}
