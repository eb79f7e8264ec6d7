import ArgumentParser
import Foundation
import Unroll
import UnrollCore
import UnrollExperiments
import UnrollIO

/// `unroll explain atoms|example`: PUDLE's Theorem 5.1 on the digits or Fashion-MNIST (classes 0–4):
/// trains the ω-regularised model to its stationary point, then shows atoms and test images as
/// combinations of training images.
struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Explain a learned dictionary by its training examples (PUDLE Theorem 5.1).",
        discussion: """
            Trains a dense model with non-negative codes on classes 0–4 of the data set by exact \
            alternating minimisation of ½‖X − ZW‖² + λ‖Z‖₁ + ω/2‖W‖² (to a relative change of 1e-6), \
            where the dictionary is exactly W̃ = (ZᵀZ + ωI)⁻¹ZᵀX, a combination of the training images. \
            See docs/interpretability.md.

            Examples:
              unroll explain atoms --dataset digits --scale small --output explain
              unroll explain example --dataset fashion --scale tiny --index 0,7
            """,
        subcommands: [ExplainAtoms.self, ExplainExample.self])

    /// Options shared by both verbs.
    struct Common: ParsableArguments {
        @Option(help: "Data set: digits or fashion.")
        var dataset: String = "digits"
        @Option(help: "Scale of the training (tiny, small or paper), as in `unroll reproduce interpret`.")
        var scale: String = "small"
        @Option(help: "Training images per class (overrides the scale's).")
        var perClass: Int?
        @Option(name: .customLong("p"), help: "Atoms p (overrides the scale's).")
        var atomCount: Int?
        @Option(help: "λ of the non-negative lasso (overrides the scale's).")
        var lambda: Double?
        @Option(help: "ω, the ridge weight on W (overrides the scale's).")
        var omega: Double?
        @Option(help: "Training images shown per side (most / least contributing).")
        var top: Int = 4
        @Option(name: .shortAndLong, help: "Folder for the PNG figures.")
        var output: String = "explain"
        @Option(help: "Folder holding digits/ and fashion-mnist/ (default $UNROLL_DATA or ../shared/data).")
        var dataDir: String?
        @Option(help: "Seed of the subset and the initial dictionary.")
        var seed: UInt64 = 0
        @OptionGroup var threading: ThreadOptions
        @Flag(help: "No progress lines on stderr.")
        var quiet = false

        func validate() throws {
            guard ExplainData.Name(rawValue: dataset) != nil else { throw ValidationError("--dataset must be digits or fashion, got '\(dataset)'") }
            guard ReproductionScale(rawValue: scale) != nil else { throw ValidationError("--scale must be one of tiny, small, paper; got '\(scale)'") }
            if let v = perClass, v < 1 { throw ValidationError("--per-class must be ≥ 1, got \(v)") }
            if let v = atomCount, v < 1 { throw ValidationError("--p must be ≥ 1, got \(v)") }
            if let v = lambda, !(v.isFinite && v >= 0) { throw ValidationError("--lambda must be finite and ≥ 0, got \(v)") }
            if let v = omega, !(v.isFinite && v > 0) { throw ValidationError("--omega must be finite and > 0, got \(v)") }
            guard top >= 1 else { throw ValidationError("--top must be ≥ 1, got \(top)") }
        }

        /// Loads the data, trains the model, and reports its gap.
        func model() throws -> InterpretModel { try threading.run { try trainModel() } }

        private func trainModel() throws -> InterpretModel {
            let name = ExplainData.Name(rawValue: dataset)!
            let full = try ExplainData.load(name, folder: dataDir ?? ExplainData.defaultFolder)
            var s = InterpretExperiment.settings(ReproductionScale(rawValue: scale)!, dataset: dataset)
            s.seed = seed
            if let v = perClass { s.trainPerClass = v }
            if let v = atomCount { s.atoms = v }
            if let v = lambda { s.lambda = v }
            if let v = omega { s.omega = v }
            var rng = Random(seed: seed)
            let images = try unrollErrors { try full.subset(classes: s.classes, trainPerClass: s.trainPerClass, testPerClass: s.testPerClass, rng: &rng) }
            let quiet = self.quiet
            let (model, training) = try unrollErrors {
                try InterpretExperiment.trainModel(images, s, progress: quiet ? nil : { Reproduce.stderr("[\(Reproduce.clock())] " + $0) })
            }
            print("\(dataset): \(images.train.rows) training and \(images.test.rows) test images, p \(s.atoms), λ \(s.lambda), ω \(s.omega)")
            print("alternating minimisation: \(training.rounds) rounds, converged \(training.converged), last ΔW \(explainFormat(training.dictionaryChange)), ΔZ \(explainFormat(training.codeChange))")
            print("‖W − X G⁻¹Zᵀ‖/‖W‖ = \(explainFormat(model.gap))")
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            return model
        }
    }
}

/// Runs `body`, turning the library's errors into one-line CLI errors.
func unrollErrors<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as UnrollError { throw CLIError(e.description) }
}

/// `unroll explain atoms`.
struct ExplainAtoms: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "atoms",
        abstract: "Atoms as combinations of training images: the atom, its estimate X c_j, the most and least contributing images.")

    @OptionGroup var common: Explain.Common
    @Option(help: "Atom indices (comma-separated); default the --count atoms of highest code energy.")
    var atoms: String?
    @Option(help: "How many atoms when --atoms is not given.")
    var count: Int = 3

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be ≥ 1, got \(count)") }
        _ = try parseIntList(atoms, "--atoms", minimum: 0)
    }

    func run() throws {
        let model = try common.model()
        let chosen = try parseIntList(atoms, "--atoms", minimum: 0) ?? Array(model.atomsByEnergy().prefix(count))
        let list = try unrollErrors { try chosen.map { try model.explainAtom($0, top: common.top) } }
        for a in list {
            print("atom \(a.atom): ‖W_j − X c_j‖/‖W_j‖ = \(explainFormat(a.gap)); most: "
                + a.most.map { String(format: "#%d (label %d) %+.3f", $0.index, $0.label, $0.weight) }.joined(separator: ", "))
        }
        let paths = try ExplainFigures.write(atoms: list, examples: [], data: model.data, to: common.output)
        print("wrote " + paths.joined(separator: ", "))
    }
}

/// `unroll explain example`.
struct ExplainExample: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "example",
        abstract: "Test images as combinations of training images: β = G⁻¹Zẑ, reconstruction = Σ β_k x_k.")

    @OptionGroup var common: Explain.Common
    @Option(help: "Test image indices in the subset (comma-separated); default the first of classes 0, 1, 2.")
    var index: String?
    @Option(help: "Terms (largest |β|) in the shown estimate.")
    var terms: Int = 200
    @Option(help: "k of the same-class share of the top-k |β|.")
    var share: Int = 20

    func validate() throws {
        guard terms >= 1 else { throw ValidationError("--terms must be ≥ 1, got \(terms)") }
        guard share >= 1 else { throw ValidationError("--share must be ≥ 1, got \(share)") }
        _ = try parseIntList(index, "--index", minimum: 0)
    }

    func run() throws {
        let model = try common.model()
        let labels = model.data.testLabels
        let chosen = try parseIntList(index, "--index", minimum: 0) ?? [0, 1, 2].compactMap { labels.firstIndex(of: $0) }
        let list = try unrollErrors { try chosen.map { try model.explainExample($0, top: common.top, estimateTerms: terms) } }
        for e in list {
            let top = ExampleCombination.extremes(e.beta.map(abs), k: share).largest
            let same = Double(top.filter { e.trainLabels[$0] == e.label }.count) / Double(max(1, top.count))
            print("test \(e.testIndex) (label \(e.label)): ‖ẑW̃ − Σβx‖/‖ẑW̃‖ = \(explainFormat(e.identityError)), "
                + "‖ẑW − ẑW̃‖/‖ẑW‖ = \(explainFormat(e.modelGap)), same label in top \(top.count) |β|: \(explainFormat(same)); most: "
                + e.most.map { String(format: "#%d (label %d) %+.3f", $0.index, $0.label, $0.weight) }.joined(separator: ", "))
        }
        let paths = try ExplainFigures.write(atoms: [], examples: list, data: model.data, to: common.output)
        print("wrote " + paths.joined(separator: ", "))
    }
}

/// `unroll reproduce interpret`: both data sets, the table, the figures and the similarity histograms.
enum InterpretReproduce {
    static func run(scale: ReproductionScale, seed: UInt64, folder: String, callbacks: ReproductionCallbacks) throws -> ReproductionResult {
        let dataFolder = ExplainData.defaultFolder
        var inputs: [(LabeledImages, InterpretExperiment.Settings)] = []
        for name in ExplainData.Name.allCases {
            callbacks.progress?("loading \(name.rawValue) from \(dataFolder)")
            var s = InterpretExperiment.settings(scale, dataset: name.rawValue)
            s.seed = seed
            inputs.append((try ExplainData.load(name, folder: dataFolder), s))
        }
        let outcome = try InterpretExperiment.run(inputs, scale: scale.rawValue, callbacks: callbacks)
        for d in outcome.datasets {
            let paths = try ExplainFigures.write(atoms: d.atoms, examples: d.examples, data: d.model.data, to: folder)
            callbacks.progress?("wrote " + paths.joined(separator: ", "))
        }
        return outcome.result
    }
}


/// Four significant digits, plain or scientific by magnitude.
private func explainFormat(_ v: Double) -> String {
    guard v.isFinite else { return v.isNaN ? "nan" : (v > 0 ? "inf" : "-inf") }
    if v == 0 { return "0" }
    let a = abs(v)
    return a >= 1e-3 && a < 1e5 ? String(format: "%.4g", v) : String(format: "%.3e", v)
}
