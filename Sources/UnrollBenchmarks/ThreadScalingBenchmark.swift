import Foundation

/// `unroll bench threads`: every timed case at 1 thread and at `--threads`, ours only, and the speed-up.
enum ThreadScalingBenchmark {
    /// The cases timed in seconds, each with the size it runs at here (nil: its default).
    static let cases: [(name: String, size: Int?)] = [
        ("pudle-fig5", nil), ("pudle-theory", nil), ("encode", 2000), ("conv-denoise", nil),
        ("crsae-denoise", nil), ("spikes", nil), ("vsc-linear", nil), ("vsc-conv", nil),
    ]

    static let `case` = BenchmarkCase(
        name: "threads",
        summary: "speed-up from 1 thread to --threads of every step case and encode (2000 signals), ours only: "
            + "each case at 1 thread, then at --threads, medians of --repeats",
        run: { try run($0) })

    static func run(_ o: BenchOptions) throws -> BenchReport {
        var report = BenchReport(benchmark: "threads", threads: o.threads, repeats: o.repeats)
        guard o.threads > 1 else { throw BenchError("bench threads compares 1 thread with --threads; give --threads ≥ 2") }
        for c in cases {
            var options = o
            options.runPeer = false
            options.size = c.size
            options.threads = 1
            let one = try Benchmarks.run(c.name, options: options)
            options.threads = o.threads
            let many = try Benchmarks.run(c.name, options: options)
            // encode prints its T 100 time twice (beside PyTorch and beside scikit-learn): one row per measurement.
            var seen: Set<Double> = []
            for row in many.rows where row.unit == "s" && seen.insert(row.ours).inserted {
                guard let single = one.rows.first(where: { $0.name == row.name && $0.unit == "s" }) else { continue }
                report.rows.append(BenchRow(name: "\(c.name): \(row.name)", unit: "s", ours: row.ours,
                                            oursLabel: "\(o.threads) threads", peer: single.ours, peerLabel: "1 thread",
                                            ratio: single.ours / row.ours, ratioLabel: "× (1 thread / \(o.threads))",
                                            target: o.threads == 2 && BenchTargets.twoThreadCases.contains(c.name) ? BenchTargets.twoThreads : nil))
            }
        }
        report.details["protocol"] = "each case runs its own protocol (warm-up, pauses, medians) at 1 thread and right after "
            + "at \(o.threads); no peer runs; encode at 2000 signals"
        return report
    }
}
