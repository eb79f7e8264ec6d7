import Foundation
import Unroll
import UnrollCore

/// `unroll bench pudle-fig5 | pudle-theory | encode`: PUDLE's settings (reference §3-§4, issue 4), ours timed
/// beside the PyTorch reference `bench/pudle_torch.py` (and scikit-learn's `sparse_encode` for `encode`)
/// in the same invocation, same thread count, flush-to-zero on for both.
///
/// * training cases: one `DictionaryTrainer.trainStep()` (encode T = 100 layers, the mode's loss and
///   gradient, Adam, atom normalisation) per gradient mode, timed `repeats` times after one warm-up step,
///   on synthetic data drawn as in reference §2 (`SyntheticDictionaryData`, one sign per example);
/// * `encode`: `UnrolledEncoder.encode` of 10 000 fig5-sized signals (`--size` changes the count).
///
/// Each side draws its own data from the same distribution (different generators), so the work is the
/// same in kind and size, not bit for bit; the losses are printed to show the problems match.
/// The fig5 data hold only the batches the timed steps use, on both sides.
enum PudleBenchmarks {
    /// One of PUDLE's training settings.
    struct Setting {
        let name: String
        let data: SyntheticDictionaryConfig
        /// Examples per step; nil = the full data set.
        let batch: Int?
        let adamEpsilon: Float
        /// The speed-up over PyTorch asked of g_ae-ls / g_ae-lasso on this setting, and of g_dec (nil: none).
        var target: BenchTarget? = nil
        var decoderTarget: BenchTarget? = nil
    }

    static let layers = 100
    static let lambda: Float = 0.2, alpha: Float = 0.2, learningRate: Float = 1e-3

    /// Reference §4: m 1000, p 1500, s 10, δ 0.005, batch 50, Adam ε 1e-3.
    static let fig5 = Setting(
        name: "pudle-fig5",
        data: SyntheticDictionaryConfig(signalSize: 1000, atomCount: 1500, exampleCount: 0, sparsity: 10,
                                        signs: .sharedPerExample, initNoise: 0.005),
        batch: 50, adamEpsilon: 1e-3, target: BenchTargets.fig5Autoencoder, decoderTarget: BenchTargets.fig5Decoder)
    /// Reference §3: m 50, p 100, n 10 000 full batch, s 5, δ 0.1, Adam ε 1e-8.
    static let theory = Setting(name: "pudle-theory", data: .pudleTheory, batch: nil, adamEpsilon: 1e-8,
                                target: BenchTargets.theory, decoderTarget: BenchTargets.theory)

    static let fig5Case = BenchmarkCase(
        name: "pudle-fig5",
        summary: "one PUDLE training step (m 1000, p 1500, batch 50, T 100) per gradient mode vs PyTorch (bench/pudle_torch.py), with peak RSS",
        run: { try runTraining(fig5, $0) })
    static let theoryCase = BenchmarkCase(
        name: "pudle-theory",
        summary: "one PUDLE training step (m 50, p 100, n 10000 full batch, T 100) per gradient mode vs PyTorch",
        run: { try runTraining(theory, $0) })
    static let encodeCase = BenchmarkCase(
        name: "encode",
        summary: "inference: 10000 fig5 signals (--size) through T = 100 ISTA layers vs PyTorch and scikit-learn sparse_encode (lasso_cd); to the lasso minimum (homotopy; ISTA to a per-sample tolerance 1e-4 beside it) vs SPAMS lasso (bench/spams_encode.py)",
        run: { try runEncode($0) })

    /// The modes, by their CLI names, with the paper's names.
    static let modes: [(name: String, mode: GradientMode, paper: String)] = [
        ("decoder", .decoder, "g_dec"), ("lasso", .lasso, "g_ae-lasso"), ("least-squares", .leastSquares, "g_ae-ls"),
    ]

    /// The `encode` case's per-sample tolerance for "to the lasso minimum".
    static let encodeTolerance: Float = 1e-4

    static var encoder: UnrolledEncoder {
        UnrolledEncoder(layers: layers, algorithm: .ista, threshold: .soft, lambda: .scalar(lambda), step: .fixed(alpha))
    }

    static func selectedModes(_ o: BenchOptions) throws -> [(name: String, mode: GradientMode, paper: String)] {
        guard let m = o.mode else { return modes }
        guard let found = modes.first(where: { $0.name == m }) else {
            throw BenchError("unknown --mode '\(m)'; expected one of: \(modes.map(\.name).joined(separator: ", "))")
        }
        return [found]
    }

    // MARK: interleaved timing

    /// Pause before each timed unit, so that the other side's idle-spinning BLAS/OpenMP threads have gone to sleep.
    static let pause: UInt32 = 200_000

    /// One side of a comparison: a label and a closure that runs one timed unit and returns its seconds.
    struct Side {
        var label: String
        var run: () throws -> Double
        var times: [Double] = []
        var error: Error?
    }

    /// `repeats` rounds; in each, every side runs once, in an order that rotates from round to round, so that
    /// load from other processes falls on all sides alike. A side that throws stops (its error is kept).
    /// `o.warmEach`: each timed unit directly follows an untimed one on the same side. After the pause the
    /// machine's caches hold other work: a fig5 g_dec step took 41 ms right after a 0.2 s pause and 28 ms
    /// after one untimed step (2026-12-06). The report notes how its units were timed.
    static func interleave(_ sides: inout [Side], _ o: BenchOptions, _ report: inout BenchReport) {
        let (repeats, warmEach) = (o.repeats, o.warmEach)
        let note = "timing: each timed unit directly follows an untimed one on the same side (--warm-each)"
        if warmEach && !report.notes.contains(note) { report.notes.append(note) }
        for r in 0..<repeats {
            for k in 0..<sides.count {
                let i = (k + r) % sides.count
                guard sides[i].error == nil else { continue }
                usleep(pause)
                do {
                    if warmEach { _ = try sides[i].run() }
                    sides[i].times.append(try sides[i].run())
                } catch { sides[i].error = error }
            }
        }
    }

    /// Starts `script --serve` and waits for its "ready" (it sets up and warms up first).
    static func startPeer(_ script: String, _ arguments: [String], _ o: BenchOptions) throws -> PythonPeer.Session {
        let s = try PythonPeer.Session(script, arguments + ["--serve", "--json"], options: o, environment: [:], interactive: true)
        let hello = try s.readLine()
        guard hello == "ready" else { throw BenchError("\(script) said '\(hello)' instead of 'ready'") }
        return s
    }

    /// One timed unit of a serving peer: its own measurement of the unit, in seconds.
    static func peerUnit(_ s: PythonPeer.Session) throws -> Double {
        try s.send("run")
        let answer = try s.readLine()
        guard let t = Double(answer) else { throw BenchError("\(s.script) answered '\(answer)' instead of seconds") }
        return t
    }

    /// Ends a serving peer and returns its JSON summary.
    static func stopPeer(_ s: PythonPeer.Session) throws -> [String: Any] {
        try? s.send("quit")
        return try s.finish()
    }

    // MARK: training steps

    static func runTraining(_ s: Setting, _ o: BenchOptions) throws -> BenchReport {
        var report = BenchReport(benchmark: s.name, threads: o.threads, repeats: o.repeats)
        let batchText = s.batch.map { "batch \($0)" } ?? "full batch \(s.data.exampleCount)"
        report.details["setting"] = "m \(s.data.signalSize), p \(s.data.atomCount), s \(s.data.sparsity), \(batchText), T \(layers), "
            + "λ = α = \(lambda), δ \(s.data.initNoise), Adam lr \(learningRate) ε \(s.adamEpsilon); one step = encode + loss + gradient + Adam + normalise"
        let (density, path) = try codeDensity(s, o)
        report.details["ours: code density at layers 1 / 10 / 50 / 100, mean over the layers"] = density
        report.details["ours: dense layers"] = path
        var memory: [BenchRow] = []
        var peerVersion: String?
        for m in try selectedModes(o) {
            // The peer first (import, data, warm-up step), then ours, then the timed steps alternate.
            var peer: PythonPeer.Session?
            if o.runPeer {
                do {
                    peer = try startPeer("pudle_torch.py", ["--case", s.name, "--mode", m.name, "--threads", "\(o.threads)",
                                                            "--warmup", "1", "--repeats", "\(o.repeats)"], o)
                } catch {
                    report.notes.append("PyTorch peer unavailable for \(m.name): \(error)")
                }
            }

            let resettable = ResidentMemory.resetPeak()
            let baseline = ResidentMemory.current()
            var trainer = try makeTrainer(s, mode: m.mode, steps: 1 + o.repeats * (o.warmEach ? 2 : 1), layers: o.denseLayers)
            var loss = Double.nan
            let step: () throws -> Double = {
                try FlushDenormals.with(true) {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    loss = try trainer.trainStep().loss
                    return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
                }
            }
            _ = try step()   // warm-up
            var sides = [Side(label: "ours", run: step)]
            if let p = peer { sides.append(Side(label: "PyTorch", run: { try peerUnit(p) })) }
            interleave(&sides, o, &report)
            if let e = sides[0].error { throw e }
            let peakMB = resettable ? ResidentMemory.peak() : ResidentMemory.lifetimePeak()

            let ours = sides[0].times, oursMedian = Stopwatch.median(ours)
            var row = BenchRow(name: "\(m.paper) (\(m.name)) step", unit: "s", ours: oursMedian, oursLabel: "Unroll",
                               target: m.mode == .decoder ? s.decoderTarget : s.target)
            var mem = BenchRow(name: "\(m.paper) peak RSS", unit: "MB", ours: peakMB ?? .nan, oursLabel: "Unroll", target: BenchTargets.peakRSS)
            report.details["\(m.name): ours: seconds per step"] = seconds(ours)
            report.details["\(m.name): ours: loss at the last step"] = String(format: "%.5g", loss)
            if let p = peakMB, let b = baseline {
                report.details["\(m.name): ours: RSS before the problem / peak (MB)"] = String(format: "%.0f / %.0f", b, p)
            }
            if let p = peer {
                do {
                    if let e = sides[1].error { throw e }
                    let info = try stopPeer(p)
                    let theirs = sides[1].times, median = Stopwatch.median(theirs)
                    row.peer = median
                    row.peerLabel = "PyTorch"
                    row.ratio = median / oursMedian
                    row.ratioLabel = "× (torch/ours)"
                    report.details["\(m.name): peer: seconds per step"] = seconds(theirs)
                    report.details["\(m.name): paired speed-ups torch/ours"] =
                        zip(ours, theirs).map { String(format: "%.2f", $1 / $0) }.joined(separator: " ")
                    if let l = info["loss"] as? Double { report.details["\(m.name): peer: loss at the last step"] = String(format: "%.5g", l) }
                    if let pk = info["peak_rss_mb"] as? Double {
                        mem.peer = pk
                        mem.peerLabel = "PyTorch"
                        mem.ratio = (peakMB ?? .nan) / pk
                        mem.ratioLabel = "ours/torch"
                        if let b = info["baseline_rss_mb"] as? Double {
                            report.details["\(m.name): peer: RSS after import torch / peak (MB)"] = String(format: "%.0f / %.0f", b, pk)
                        }
                    }
                    peerVersion = (info["torch"] as? String).map { v in
                        (info["omp_wait_policy"] as? String).map { $0.isEmpty ? v : "\(v), OMP_WAIT_POLICY=\($0)" } ?? v
                    }
                } catch {
                    report.notes.append("PyTorch peer failed for \(m.name): \(error)")
                }
            }
            report.rows.append(row)
            memory.append(mem)
        }
        report.rows += memory
        report.notes.append("peak RSS: whole process; ours = high-water mark since that mode's problem was built "
            + "(VmHWM reset through /proc/self/clear_refs), PyTorch's = ru_maxrss of its own process, including ~0.5 GB for import torch")
        if let r = ResidentMemory.lifetimePeak() {
            report.details["ours: getrusage ru_maxrss over the whole invocation (MB)"] = String(format: "%.0f", r)
        }
        if let v = peerVersion { report.details["peer: torch"] = v + " (set_num_threads(\(o.threads)), set_flush_denormal(True))" }
        return report
    }

    static let straightforwardLayers = "straightforward (dense products in every layer)"

    /// Records the straightforward path when the options ask for it (cases without a trace to show it).
    static func noteLayers(_ o: BenchOptions, _ report: inout BenchReport) {
        if !o.denseLayers.fastPath { report.details["ours: dense layers"] = straightforwardLayers }
    }

    /// A trainer of `s` in `mode` on the data its first `steps` steps use (synthetic, seed 0).
    static func makeTrainer(_ s: Setting, mode: GradientMode, steps: Int, layers policy: DenseLayerPolicy) throws -> DictionaryTrainer<DenseDictionary> {
        var config = s.data
        if let b = s.batch { config.exampleCount = b * steps }   // just the batches the steps use
        let data = try SyntheticDictionaryData(config, seed: 0)
        let trainerConfig = TrainerConfig(
            encoder: encoder, mode: mode, optimizer: .adam(learningRate: learningRate, epsilon: s.adamEpsilon),
            batchSize: s.batch, shuffle: false, seed: 0)
        var dictionary = try DenseDictionary(weights: data.initialDictionary)
        dictionary.layerPolicy = policy
        return try DictionaryTrainer(dictionary: dictionary, data: data.signals, config: trainerConfig)
    }

    // MARK: scaling

    static let scalingCase = BenchmarkCase(
        name: "scaling",
        summary: "how a PUDLE fig5 g_ae-ls step (T 100) grows with the work: seconds per step vs batch size, vs p (m = 2p/3), vs threads (ours only)",
        run: { try runScaling($0) })

    /// Ours only (the ratios to PyTorch are the fig5 case's): the median of `repeats` steps after a warm-up,
    /// for the fig5 setting with one quantity changed at a time; each row's ratio is its time over the
    /// first row of its group.
    static func runScaling(_ o: BenchOptions) throws -> BenchReport {
        var report = BenchReport(benchmark: "scaling", threads: o.threads, repeats: o.repeats)
        report.details["setting"] = "fig5 (m 1000, p 1500, s 10, batch 50) with one of batch, p (m = 2p/3) or threads changed; g_ae-ls, T \(layers), "
            + "λ = α = \(lambda), Adam; \(o.threads) threads unless the row says; the ratio is the row's time over its group's first"
        noteLayers(o, &report)
        func stepSeconds(_ s: Setting, threads: Int) throws -> Double {
            try Parallel.withWorkers(threads) {
                var trainer = try makeTrainer(s, mode: .leastSquares, steps: 1 + o.repeats, layers: o.denseLayers)
                _ = try FlushDenormals.with(true) { try trainer.trainStep() }
                let times = try (0..<o.repeats).map { _ in
                    try FlushDenormals.with(true) {
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        _ = try trainer.trainStep()
                        return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
                    }
                }
                return Stopwatch.median(times)
            }
        }
        func setting(batch: Int, p: Int) -> Setting {
            var data = fig5.data
            data.atomCount = p
            data.signalSize = 2 * p / 3
            return Setting(name: "scaling", data: data, batch: batch, adamEpsilon: fig5.adamEpsilon)
        }
        let groups: [(String, [(String, Setting, Int)])] = [
            ("batch", [10, 50, 200].map { ("batch \($0), p 1500", setting(batch: $0, p: 1500), o.threads) }),
            ("p", [500, 1000, 1500].map { ("p \($0), m \(2 * $0 / 3), batch 50", setting(batch: 50, p: $0), o.threads) }),
            ("threads", Array(Set([1, 2, o.threads])).sorted().map { ("\($0) thread\($0 == 1 ? "" : "s"), batch 50, p 1500", setting(batch: 50, p: 1500), $0) }),
        ]
        for (_, rows) in groups {
            var first: Double?
            for (name, s, threads) in rows {
                let t = try stepSeconds(s, threads: threads)
                first = first ?? t
                report.rows.append(BenchRow(name: name, unit: "s", ours: t, oursLabel: "Unroll", ratio: t / first!, ratioLabel: "× the group's first"))
            }
        }
        return report
    }

    /// The fraction of non-zero codes per layer of the encoder at the setting's initial dictionary, which decides
    /// what working on the non-zeros can save: "d₁ / d₁₀ / d₅₀ / d₁₀₀, mean"; and which path ran the layers.
    static func codeDensity(_ s: Setting, _ o: BenchOptions) throws -> (density: String, path: String) {
        var config = s.data
        if let b = s.batch { config.exampleCount = b * (1 + o.repeats) }
        let data = try SyntheticDictionaryData(config, seed: 0)
        var dictionary = try DenseDictionary(weights: data.initialDictionary)
        dictionary.layerPolicy = o.denseLayers
        let trace = try FlushDenormals.with(true) { try encoder.forward(data.signals, with: dictionary).trace }
        let density = (1...trace.layers).map { t in
            let z = trace.layerCodes(t)
            return Double(z.count - z.zeroCount()) / Double(z.count)
        }
        let picked = [1, 10, 50, 100].filter { $0 <= density.count }.map { String(format: "%.3f", density[$0 - 1]) }
        return (picked.joined(separator: " / ") + String(format: ", %.3f", density.reduce(0, +) / Double(density.count)),
                trace.fastPath.map { "fast path (\($0.form) form)" } ?? straightforwardLayers)
    }

    // MARK: encode

    static func runEncode(_ o: BenchOptions) throws -> BenchReport {
        let n = o.size ?? 10_000
        var report = BenchReport(benchmark: "encode", threads: o.threads, repeats: o.repeats)
        var torch: PythonPeer.Session?, sklearn: PythonPeer.Session?, spams: PythonPeer.Session?
        if o.runPeer {
            let common = ["--samples", "\(n)", "--threads", "\(o.threads)", "--warmup", "1", "--repeats", "\(o.repeats)"]
            do { torch = try startPeer("pudle_torch.py", ["--case", "encode"] + common, o) } catch {
                report.notes.append("PyTorch peer unavailable: \(error)")
            }
            do { sklearn = try startPeer("sklearn_encode.py", common, o) } catch {
                report.notes.append("scikit-learn peer unavailable: \(error)")
            }
            do { spams = try startPeer("spams_encode.py", common, o) } catch {
                report.notes.append("SPAMS peer unavailable: \(error)")
            }
        }

        var config = fig5.data
        config.exampleCount = n
        let data = try SyntheticDictionaryData(config, seed: 0)
        var dictionary = try DenseDictionary(weights: data.initialDictionary)
        dictionary.layerPolicy = o.denseLayers
        let enc = encoder
        // The lasso solved per sample: ISTA until each code changes by ≤ `encodeTolerance` (cap 10·T).
        var solver = encoder
        solver.layers = 10 * layers
        solver.tolerance = encodeTolerance
        solver.stopsPerSample = true
        var codes = Tensor(zeros: [0]), solved = Tensor(zeros: [0])
        _ = try enc.encode(data.signals.rows(0..<min(n, 500)), with: dictionary)   // warm-up
        // The peer's process runs the T-layer encode alone, and ours runs two more solvers and a reference
        // later. So one T-layer encode before them, with the high-water mark reset once the data are built
        // (as in the training cases), gives the peak to compare.
        var peakOfOneEncode: Double?
        if ResidentMemory.resetPeak() {
            let before = ResidentMemory.current()
            _ = try FlushDenormals.with(true) { try enc.encode(data.signals, with: dictionary) }
            peakOfOneEncode = ResidentMemory.peak()
            if let b = before, let p = peakOfOneEncode {
                report.details["ours: RSS with the data built / peak of one T-layer encode (MB)"] = String(format: "%.0f / %.0f", b, p)
            }
        }
        func timed(_ encode: @escaping () throws -> Void) -> () throws -> Double {
            {
                try FlushDenormals.with(true) {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    try encode()
                    return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
                }
            }
        }
        var exact = Tensor(zeros: [0]), homotopyReport: LassoHomotopy.Report?
        let homotopy = LassoHomotopy(lambda: lambda)
        var sides = [Side(label: "ours", run: timed { codes = try enc.encode(data.signals, with: dictionary) }),
                     Side(label: "ours to tolerance", run: timed { solved = try solver.encode(data.signals, with: dictionary) }),
                     Side(label: "ours exact", run: timed { (exact, homotopyReport) = try homotopy.encode(data.signals, with: dictionary) })]
        if let p = torch { sides.append(Side(label: "PyTorch", run: { try peerUnit(p) })) }
        if let p = sklearn { sides.append(Side(label: "scikit-learn", run: { try peerUnit(p) })) }
        if let p = spams { sides.append(Side(label: "SPAMS", run: { try peerUnit(p) })) }
        interleave(&sides, o, &report)
        if let e = sides[0].error ?? sides[1].error ?? sides[2].error { throw e }

        let ours = sides[0].times, oursMedian = Stopwatch.median(ours)
        let exactMedian = Stopwatch.median(sides[2].times)
        func lassoObjective(_ z: Tensor) -> Double {
            var residual = z.matmul(dictionary.weights)
            residual.add(data.signals, scaledBy: -1)
            return (0.5 * residual.squaredNorm() + Double(lambda) * Double(z.l1Norm())) / Double(n)
        }
        let objective = lassoObjective(codes), solvedObjective = lassoObjective(solved), exactObjective = lassoObjective(exact)
        // The minimum to compare with: ISTA at 10·T layers from the T-layer codes' settings (untimed).
        var reference = encoder
        reference.layers = 10 * layers
        let minimum = lassoObjective(try reference.encode(data.signals, with: dictionary))
        report.details["ours: lasso objective gap to \(10 * layers) ISTA layers, T \(layers) / to tolerance \(encodeTolerance)"] =
            String(format: "%.2e / %.2e", (objective - minimum) / minimum, (solvedObjective - minimum) / minimum)
        report.details["ours to tolerance: seconds per encode"] = seconds(sides[1].times)
        report.details["ours exact (homotopy): seconds per encode"] = seconds(sides[2].times)
        report.details["ours exact (homotopy): objective gap to \(10 * layers) ISTA layers, signals exact / solved by the encoder, events per signal"] =
            String(format: "%.2e, ", (exactObjective - minimum) / minimum) + (homotopyReport.map {
                "\($0.exact) / \($0.solvedByEncoder), " + String(format: "%.1f", Double($0.events) / Double(n)) } ?? "?")
        report.details["setting"] = "\(n) signals, m 1000, p 1500, s 10, δ 0.005 (codes from W₀), T \(layers), λ = α = \(lambda)"
        noteLayers(o, &report)
        report.details["ours: seconds per encode"] = seconds(ours)
        report.details["ours: mean ½‖x − zW‖² + λ‖z‖₁, non-zeros per code"] =
            String(format: "%.5g, %.1f", objective, Double(codes.count - codes.zeroCount()) / Double(n))
        report.details["ours: peak RSS (MB, process lifetime)"] = ResidentMemory.lifetimePeak().map { String(format: "%.0f", $0) } ?? "?"

        var torchRow = BenchRow(name: "encode \(n) × T \(layers)", unit: "s", ours: oursMedian, oursLabel: "Unroll")
        var sklearnRow = BenchRow(name: "encode \(n) (lasso)", unit: "s", ours: oursMedian, oursLabel: "Unroll")
        var spamsRow = BenchRow(name: "encode \(n) to the lasso minimum", unit: "s", ours: exactMedian, oursLabel: "Unroll, homotopy")
        // Ours: one T-layer encode with the data built (the signals and the output codes included); PyTorch's: its process.
        var memoryRow = BenchRow(name: "encode \(n) × T \(layers) peak RSS", unit: "MB", ours: peakOfOneEncode ?? .nan, oursLabel: "Unroll",
                                 target: BenchTargets.peakRSS)
        for side in sides.dropFirst(3) {
            let session = side.label == "PyTorch" ? torch! : side.label == "SPAMS" ? spams! : sklearn!
            do {
                if let e = side.error { throw e }
                let info = try stopPeer(session)
                // Every side encodes the same number of signals (--samples n), so the times compare as they are.
                let theirs = side.times, median = Stopwatch.median(theirs)
                func peer(_ row: inout BenchRow, _ label: String, _ ratioLabel: String) {
                    (row.peer, row.peerLabel, row.ratio, row.ratioLabel) = (median, label, median / row.ours, ratioLabel)
                }
                func peerObjective(_ key: String, digits: Int = 5) {
                    if let obj = info["objective"] as? Double, let nz = info["nonzeros_per_code"] as? Double {
                        report.details[key] = String(format: "%.\(digits)g, %.1f", obj, nz)
                    }
                }
                let prefix = side.label == "PyTorch" ? "torch" : side.label == "SPAMS" ? "spams" : "sklearn"
                report.details["\(prefix): seconds per encode"] = seconds(theirs)
                switch side.label {
                case "PyTorch":
                    peer(&torchRow, "PyTorch", "× (torch/ours)")
                    peerObjective("torch: mean ½‖x − Dz‖² + λ‖z‖₁, non-zeros per code")
                    if let v = info["torch"] as? String {
                        let policy = (info["omp_wait_policy"] as? String).map { $0.isEmpty ? "" : ", OMP_WAIT_POLICY=\($0)" } ?? ""
                        report.details["torch: version"] = v + policy
                    }
                    if let pk = info["peak_rss_mb"] as? Double, let ours = peakOfOneEncode {
                        (memoryRow.peer, memoryRow.peerLabel, memoryRow.ratio, memoryRow.ratioLabel) = (pk, "PyTorch", ours / pk, "ours/torch")
                    }
                case "SPAMS":
                    peer(&spamsRow, "SPAMS lasso (LARS)", "× (SPAMS/ours)")
                    peerObjective("spams: mean ½‖x − Da‖² + λ‖a‖₁ (its own data), non-zeros per code", digits: 7)
                    report.details["spams: version, settings"] = "\((info["spams"] as? String) ?? "?"), lasso(lambda1=\(lambda), mode=2), "
                        + "\((info["dtype"] as? String) ?? "?"), numThreads \(o.threads)"
                default:
                    peer(&sklearnRow, "scikit-learn lasso_cd", "× (sklearn/ours)")
                    peerObjective("sklearn: mean ½‖x − zD‖² + λ‖z‖₁, non-zeros per code")
                    let version = (info["sklearn"] as? String) ?? "?", dtype = (info["dtype"] as? String) ?? "?"
                    report.details["sklearn: version, settings"] =
                        "\(version), sparse_encode(algorithm='lasso_cd', alpha=\(lambda)), \(dtype), n_jobs \(o.threads)"
                }
            } catch {
                report.notes.append("\(side.label) peer failed: \(error)")
            }
        }
        torchRow.target = BenchTargets.encodeOfPyTorch
        spamsRow.target = BenchTargets.encodeOfSPAMS
        report.rows = [torchRow, sklearnRow, spamsRow, memoryRow]
        report.notes.append("scikit-learn solves the lasso to its tolerance (coordinate descent, tol 1e-8) while the network "
            + "stops after T = \(layers) layers; compare the objectives in the details. Each side draws its own data.")
        return report
    }

    static func seconds(_ t: [Double]) -> String { t.map { String(format: "%.4f", $0) }.joined(separator: " ") }
}
