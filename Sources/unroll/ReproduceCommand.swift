import ArgumentParser
import Foundation
import Unroll
import UnrollCore
import UnrollExperiments
import UnrollIO

/// `unroll reproduce <experiment>`: runs a paper experiment, prints our table beside the paper's numbers,
/// and writes the table (JSON and text) and the curves (CSV + PNG) to the output folder. The folder is
/// rewritten after every finished configuration, so a long run that is stopped keeps its finished part.
struct Reproduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a paper experiment and print our numbers beside the paper's.",
        discussion: """
        Experiments — PUDLE (Tolooshams & Ba 2022):
          theory         §3: g_dec vs g_ae-lasso vs g_ae-ls learning D (T ∈ {25, 50, 100}, 600 full-batch epochs)
          gradients      §3: distances of the three gradients to the converged-lasso and true-code gradients, t = 1…100
          fig5           §4: g_ae-ls (soft, λ decay, hard threshold) vs NOODL on m 1000, p 1500, n 50 000
          interpret      §5: Theorem 5.1, the dictionary as a combination of training images (digits, Fashion-MNIST)
          table1         §5: image denoising with a convolutional dictionary (PUDLE Table 1; images from $UNROLL_IMAGES/{train,test}, default ../shared/data/images)
        CRsAE (Tolooshams et al. 2021):
          spikes         §6: spike sorting on simulated recordings (template error, miss vs false alarm, time vs a convex solver)
          crsae-denoise  §6.2: image denoising, EM-learned λ vs free bias vs fixed λ, tied and untied (images as table1)
        Variational sparse coding (Fallah & Rozell 2022):
          vsc-linear     §4: the variational families with a linear generator on whitened patches ($UNROLL_IMAGES/train), beside FISTA
          vsc-fmnist     §5: the families with the DNN generator on Fashion-MNIST, z ∈ {20, 64, 256}, test MSE beside the paper's (×125 scale)
        Scales: tiny (seconds), small (minutes; vsc-linear about two hours), paper (the published setting; theory and fig5 take hours).
        Progress goes to stderr; with --json stdout holds exactly one JSON object.
        """)

    enum Experiment: String, ExpressibleByArgument, CaseIterable {
        case theory, gradients, fig5, interpret, table1, spikes
        case crsaeDenoise = "crsae-denoise"
        case vscLinear = "vsc-linear"
        case vscFashion = "vsc-fmnist"
    }

    @Argument(help: "Experiment: theory, gradients, fig5, interpret, table1, spikes, crsae-denoise, vsc-linear or vsc-fmnist.")
    var experiment: Experiment

    @Option(help: "Scale: tiny, small or paper.")
    var scale: String = "small"

    @Flag(help: "Print one JSON object {experiment, scale, rows, notes, info} instead of the table.")
    var json = false

    @Option(help: "Folder for table.json, table.txt and the curves (CSV + PNG); default reproduce-<experiment>-<scale>.")
    var output: String?

    @OptionGroup var threading: ThreadOptions

    @Option(help: "Seed of the data and the shuffling.")
    var seed: UInt64 = 0

    @Option(help: "theory: only these T (comma-separated), e.g. 100.")
    var layers: String?

    @Option(help: "fig5: only these sparsities s (comma-separated), e.g. 10,20.")
    var sparsity: String?

    @Option(help: "Only these methods (comma-separated). theory: dec, ae-lasso, ae-ls; fig5: ae-ls, ae-ls-decay, ae-ls-ht, noodl; table1: dec, ae-ls, ae-ls-ht, ae-lasso (@value for one λ/τ); crsae-denoise: tied-em, tied-em-backprop, tied-free-bias, tied-fixed, untied-… likewise; vsc-linear: gaussian, laplacian, spike-and-slab, thresholded-gaussian, thresholded-laplacian, thresholded-gaussian-gamma, thresholded-laplacian-gamma; vsc-fmnist: gaussian, laplacian, thresholded-gaussian, thresholded-laplacian, spike-and-slab.")
    var methods: String?

    @Option(help: "Override the length: epochs (theory, spikes, vsc-linear, vsc-fmnist), iterations (fig5), largest t (gradients), steps per run (table1, crsae-denoise).")
    var steps: Int?

    @Flag(help: "crsae-denoise: raise L to 1.05‖H‖‖We‖ whenever the learned filters outgrow it (else L stays the paper's 10).")
    var guardLipschitz = false
    @Flag(help: "No progress lines on stderr.")
    var quiet = false

    func validate() throws {
        guard ReproductionScale(rawValue: scale) != nil else {
            throw ValidationError("--scale must be one of tiny, small, paper; got '\(scale)'")
        }
        if let s = steps, s < 1 { throw ValidationError("--steps must be ≥ 1, got \(s)") }
        if layers != nil && experiment != .theory { throw ValidationError("--layers applies to theory only") }
        if sparsity != nil && experiment != .fig5 { throw ValidationError("--sparsity applies to fig5 only") }
        if methods != nil && experiment == .gradients { throw ValidationError("--methods applies to theory and fig5 only") }
        _ = try parseIntList(layers, "--layers", minimum: 1)
        _ = try parseIntList(sparsity, "--sparsity", minimum: 1)
    }

    func run() throws { try threading.run { try execute() } }

    private func execute() throws {
        let scaleValue = ReproductionScale(rawValue: scale)!
        let folder = output ?? "reproduce-\(experiment.rawValue)-\(scale)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let quiet = self.quiet
        let callbacks = ReproductionCallbacks(
            progress: quiet ? nil : { line in Self.stderr("[\(Self.clock())] " + line) },
            partial: { partial in
                do { try Self.write(partial, to: folder) } catch { Self.stderr("warning: could not write partial results: \(error)") }
            })

        let result: ReproductionResult
        do {
            switch experiment {
            case .theory:
                var s = TheoryExperiment.settings(scaleValue)
                s.seed = seed
                if let t = try parseIntList(layers, "--layers", minimum: 1) { s.layers = t }
                if let e = steps { s.epochs = e }
                if let names = methods {
                    s.modes = try parseChoices(names, "--methods",
                                               [GradientMode.decoder, .lasso, .leastSquares].map { ($0.paperName, $0) })
                }
                result = try TheoryExperiment.run(s, scale: scale, callbacks: callbacks)
            case .gradients:
                var s = GradientsExperiment.settings(scaleValue)
                s.seed = seed
                if let t = steps {
                    s.maxLayers = t
                    s.reportedLayers = s.reportedLayers.filter { $0 <= t }
                    if !s.reportedLayers.contains(t) { s.reportedLayers.append(t) }
                }
                result = try GradientsExperiment.run(s, scale: scale, callbacks: callbacks)
            case .fig5:
                var s = Fig5Experiment.settings(scaleValue)
                s.seed = seed
                if let v = try parseIntList(sparsity, "--sparsity", minimum: 1) { s.sparsities = v }
                if let i = steps { s.iterations = i }
                if let names = methods {
                    s.methods = try parseChoices(names, "--methods", Fig5Experiment.Method.allCases.map { ($0.rawValue, $0) })
                }
                result = try Fig5Experiment.run(s, scale: scale, callbacks: callbacks)
            case .interpret:
                result = try InterpretReproduce.run(scale: scaleValue, seed: seed, folder: folder, callbacks: callbacks)
            case .table1:
                result = try Table1Reproduce.run(scale: scaleValue, seed: seed, steps: steps, methods: methods, callbacks: callbacks)
            case .spikes:
                result = try SpikesReproduce.run(scale: scaleValue, seed: seed, steps: steps, callbacks: callbacks)
            case .crsaeDenoise:
                result = try CRsAEDenoiseReproduce.run(scale: scaleValue, seed: seed, steps: steps, methods: methods,
                                                       guardLipschitz: guardLipschitz, callbacks: callbacks)
            case .vscLinear:
                result = try VSCLinearReproduce.run(scale: scaleValue, seed: seed, steps: steps, methods: methods,
                                                    folder: folder, callbacks: callbacks)
            case .vscFashion:
                result = try VSCFashionReproduce.run(scale: scaleValue, seed: seed, steps: steps, methods: methods,
                                                     folder: folder, callbacks: callbacks)
            }
        } catch let e as UnrollError {
            throw ValidationError(e.description)
        } catch let e as SyntheticDataError {
            throw ValidationError(e.description)
        }
        try Self.write(result, to: folder)
        if json {
            print(result.table.json())
        } else {
            print(result.table.text())
            print("wrote \(folder)/table.json, table.txt, " + result.curves.map { "\($0.name).csv/.png" }.joined(separator: ", "))
        }
    }

    /// table.json, table.txt, and `<curve>.csv` + `<curve>.png` per curve set.
    static func write(_ result: ReproductionResult, to folder: String) throws {
        try AtomicFile.write(result.table.json() + "\n", to: folder + "/table.json")
        try AtomicFile.write(result.table.text() + "\n", to: folder + "/table.txt")
        for curve in result.curves {
            let header = [curve.xLabel] + curve.series.map(\.name)
            let rows = curve.x.indices.map { i in [curve.x[i]] + curve.series.map { $0.y[i] } }
            try CSV.write(header: header, rows: rows, to: "\(folder)/\(curve.name).csv")
            var plot = LinePlot(title: curve.title, xLabel: curve.xLabel, yLabel: curve.yLabel,
                                yScale: curve.logY ? .log10 : .linear)
            for s in curve.series { plot.add(s.name, x: curve.x, y: s.y) }
            try PNG.write(plot.render(), to: "\(folder)/\(curve.name).png")
        }
    }

    static func stderr(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    static func clock() -> String {
        let f = DateFormatter()
        f.dateFormat = "HH:mm:ss"
        return f.string(from: Date())
    }
}

