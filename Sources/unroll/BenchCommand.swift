import ArgumentParser
import Foundation
import UnrollBenchmarks
import UnrollCore

/// `unroll bench <case>`: timings of our kernels beside their peers (NumPy, later PyTorch) in the same run.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure kernels against their Python peers (bench/*.py).",
        discussion: "Cases:\n" + Benchmarks.all.map { "  \($0.name): \($0.summary)" }.joined(separator: "\n")
            + "\n  all: every case above")

    @Argument(help: "Benchmark case (\(Benchmarks.all.map(\.name).joined(separator: ", ")), or all).")
    var name: String

    @OptionGroup var threading: ThreadOptions

    @Option(help: "Timed repetitions; numbers are medians.")
    var repeats: Int = 5

    @Option(help: "Problem size where the case has one (gemm: n of an n×n×n product, default 2000; ftz: values, default 65536; encode: signals, default 10000; conv-denoise: crop side, default 129; crsae-denoise: crop side, default 127; spikes: windows of 1000 samples, default 32).")
    var size: Int?

    @Option(help: "Gradient mode of the pudle-* cases: decoder, lasso or least-squares (default: all three).")
    var mode: String?

    @Option(name: .customLong("dense-layers"), help: "pudle-*, scaling and encode: how the dense dictionary runs its layers: fast (the sparsity-aware engine, the default) or straightforward (dense products in every layer, the path the tests check the fast one against).")
    var denseLayers: String = "fast"

    @Flag(name: .customLong("no-peer"), help: "Skip the Python peers; print our numbers only.")
    var noPeer = false

    @Flag(name: .customLong("warm-each"), help: "Step and encode cases: run one untimed unit on each side right before each timed one (the steady state of back-to-back steps; by default each timed unit follows a 0.2 s pause).")
    var warmEach = false

    @Option(help: "Python interpreter for the peer scripts.")
    var python: String = "python3"

    @Option(help: "Folder with the peer scripts (default: bench/ in the working directory or the package).")
    var scripts: String?

    @Option(help: "denoise: folder of PNG test images (default: $UNROLL_IMAGES/test, else the shared data's images/test).")
    var data: String?

    @Option(help: "denoise: the conv2d model to run (default: the shipped ones, each for its range of σ).")
    var model: String?

    @Option(help: "denoise: write a panel per image and σ into this folder (centre crop: clean, noisy, ours, BM3D, and both errors ×4).")
    var panels: String?
    @OptionGroup var shifts: ShiftOptions
    @OptionGroup var nonLocal: NonLocalOptions
    @OptionGroup var collaborative: CollaborativeOptions

    @Flag(help: "Print one JSON object instead of tables.")
    var json = false

    func validate() throws {
        guard name == "all" || Benchmarks.named(name) != nil else {
            throw ValidationError("unknown benchmark '\(name)'; expected one of: \(Benchmarks.all.map(\.name).joined(separator: ", ")), all")
        }
        guard repeats >= 1 else { throw ValidationError("--repeats must be ≥ 1, got \(repeats)") }
        if let s = size, s < 1 { throw ValidationError("--size must be ≥ 1, got \(s)") }
        if let m = mode, !["decoder", "lasso", "least-squares"].contains(m) {
            throw ValidationError("--mode must be decoder, lasso or least-squares, got '\(m)'")
        }
        guard ["fast", "straightforward"].contains(denseLayers) else {
            throw ValidationError("--dense-layers must be fast or straightforward, got '\(denseLayers)'")
        }
        if denseLayers != "fast" && !(name.hasPrefix("pudle-") || ["scaling", "encode", "all"].contains(name)) {
            throw ValidationError("--dense-layers applies to the pudle-*, scaling and encode cases, not to '\(name)'")
        }
    }

    func run() throws {
        let shiftSet = try shifts.set()
        let givesNonLocal = nonLocal.strength != nil || nonLocal.patch != nil || nonLocal.window != nil
        if (data != nil || model != nil || panels != nil || shiftSet != nil || givesNonLocal || collaborative.given) && name != "denoise" {
            throw CLIError("--data, --model, --panels, --shift-phases, --shift-lattice, the --non-local and --collaborative options apply to the denoise case only, not to '\(name)'")
        }
        // The denoise case's images, read by the CLI's one image-folder reader (under `all`, a missing
        // folder leaves the case to say what it needs).
        let folder = data ?? (ProcessInfo.processInfo.environment["UNROLL_IMAGES"] ?? SharedData.folder + "/images") + "/test"
        var images: [String: Tensor]?
        if name == "denoise" {
            images = Dictionary(uniqueKeysWithValues: try ImageFolder.load(folder, option: "--data").map { ($0.name, $0.image) })
        } else if name == "all" {
            images = (try? ImageFolder.load(folder, option: "--data")).map { Dictionary(uniqueKeysWithValues: $0.map { ($0.name, $0.image) }) }
        }
        let denoisers = try model.map { ([$0], [Float]()) } ?? (name == "denoise" || name == "all" ? ShippedDenoiser.files() : ([], []))
        var options = BenchOptions(threads: threading.threads, repeats: repeats, size: size, python: python, scriptDirectory: scripts,
                                   mode: mode, runPeer: !noPeer, images: images, data: folder, models: denoisers.0, switchingAt: denoisers.1, panels: panels, shifts: shiftSet,
                                   stages: { [nonLocal, collaborative] in
                                       $0.nonLocal = try nonLocal.setting(replacing: $0.nonLocal)
                                       $0.collaborative = try collaborative.setting(replacing: $0.collaborative)
                                   }, warmEach: warmEach)
        options.denseLayers = denseLayers == "straightforward" ? .straightforward : .automatic
        let names = name == "all" ? Benchmarks.all.map(\.name) : [name]
        var reports: [BenchReport] = []
        for n in names {
            do {
                reports.append(try Benchmarks.run(n, options: options))
            } catch let e as BenchError {
                throw ValidationError(e.description)
            }
            if !json {
                if reports.count > 1 { print("") }
                print(reports.last!.table())
            }
        }
        if json {
            print(try Benchmarks.json(reports))
        } else {
            print("")
            for (k, v) in MachineInfo.summary().sorted(by: { $0.key < $1.key }) { print("\(k): \(v)") }
        }
    }
}
