import Foundation
import Unroll
import UnrollCore
import UnrollExperiments

/// `unroll reproduce table1`: loads the image folders and runs `Table1Experiment`.
/// Images: `$UNROLL_IMAGES/train` and `$UNROLL_IMAGES/test` (default: `images/` of `SharedData.folder`).
/// `--methods` picks runs: `dec`, `ae-ls`, `ae-ls-ht`, `ae-lasso` (all their λ/τ), or one value with
/// `@`, e.g. `dec@0.16,ae-ls@0.16`. `--steps` overrides the training steps per run.
enum Table1Reproduce {
    static func run(scale: ReproductionScale, seed: UInt64, steps: Int?, methods: String?,
                    callbacks: ReproductionCallbacks) throws -> ReproductionResult {
        let root = ProcessInfo.processInfo.environment["UNROLL_IMAGES"] ?? SharedData.folder + "/images"
        var s = Table1Experiment.settings(scale)
        s.seed = seed
        if let n = steps {
            s.steps = n
            if let e = s.evaluateEvery, e >= n { s.evaluateEvery = nil }
        }
        if let methods { s.runs = try selectRuns(methods, from: scale == .tiny ? Table1Experiment.paperRuns : s.runs) }
        let train = try ImageFolder.load(root + "/train", option: "table1 training images ($UNROLL_IMAGES/train)").map(\.image)
        let test = try ImageFolder.load(root + "/test", option: "table1 test images ($UNROLL_IMAGES/test)").map(\.image)
        return try Table1Experiment.run(s, train: train, test: test, scale: scale.rawValue, callbacks: callbacks)
    }

    static func selectRuns(_ text: String, from all: [Table1Experiment.Run]) throws -> [Table1Experiment.Run] {
        var out: [Table1Experiment.Run] = []
        for item in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            let parts = item.split(separator: "@").map(String.init)
            let known = Set(Table1Experiment.paperRuns.map(\.name))
            guard let name = parts.first, known.contains(name), parts.count <= 2 else {
                throw CLIError("--methods: unknown table1 run '\(item)'; expected dec, ae-ls, ae-ls-ht or ae-lasso, optionally with @value (e.g. ae-ls@0.16)")
            }
            if parts.count == 2 {
                guard let v = Float(parts[1]), v >= 0 else { throw CLIError("--methods: '\(item)': the value after @ must be a number ≥ 0") }
                let template = Table1Experiment.paperRuns.first { $0.name == name }!
                out.append(Table1Experiment.Run(template.mode, template.threshold, v))
            } else {
                out += all.filter { $0.name == name }
            }
        }
        return out
    }
}
