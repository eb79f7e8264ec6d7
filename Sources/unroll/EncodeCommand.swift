import ArgumentParser
import Foundation
import Unroll
import UnrollCore
import UnrollIO

/// `unroll encode`: the codes of data under any model file.
struct Encode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sparse codes of data under a trained model (any kind).",
        discussion: """
            Runs the model's encoder on --data and writes the codes as .npy (or as array Z of an .npz). \
            What --data holds depends on the model: dense and vsc-linear, a matrix [n, m] with samples \
            as rows (an npz's array X by default); vsc-conv, 28×28 images in [0, 1] as rows of 784; \
            conv1d, a recording samples × channels (.npy, or .npz with "signal"), coded as [C, samples − K + 1] \
            in exact chunks; conv2d, a PNG/PGM image or an array [H, W] or [B, H, W], coded as [B, C, Ho, Wo]. \
            Prints the share of zero codes and the relative reconstruction error ‖X − X̂‖_F / ‖X‖_F.

            Example:
              unroll encode --model run/model.safetensors --data data.npz --output codes.npy
            """)

    @Option(help: ArgumentHelp("A model file (`unroll train`, `spikes train`, `vsc train`).", valueName: "file"))
    var model: String
    @Option(help: ArgumentHelp("The data (see above).", valueName: "file[:array]"))
    var data: String
    @Option(name: .shortAndLong, help: ArgumentHelp("Output codes, .npy (or .npz with array Z).", valueName: "file"))
    var output: String
    @OptionGroup var encoding: ModelRunOptions
    @OptionGroup var threading: ThreadOptions

    func run() throws { try threading.run { try execute() } }

    private func execute() throws {
        let lower = output.lowercased()
        guard lower.hasSuffix(".npy") || lower.hasSuffix(".npz") else {
            throw CLIError("--output \(output): expected a .npy or .npz file name")
        }
        let file = try ModelFile.read(model, option: "--model")
        let start = ContinuousClock.now
        let r = try ModelRun.run(file, model: model, data: data, options: encoding)
        let seconds = secondsSince(start)
        try inContext("--output") {
            if lower.hasSuffix(".npz") { try Npz.write([("Z", r.codes)], to: output) } else { try Npy.write(r.codes, to: output) }
        }
        print("encoded \(r.what) with \(file.described) (\(Self.encoderSummary(file))) in \(String(format: "%.2f", seconds)) s: "
            + "zeros \(String(format: "%.1f", 100 * r.zeroFraction))% (\(String(format: "%.2f", r.nonZerosPerSignal)) non-zeros per signal), "
            + "reconstruction error ‖X − X̂‖/‖X‖ = \(fmt(r.relativeError)); wrote \(output) \(r.codes.shape)")
    }

    /// "ista, T 15, soft λ 0.1, α 0.2" for autoencoders; the family for VSC.
    static func encoderSummary(_ file: ModelFile) -> String {
        func summary<Op: DictionaryOperator>(_ m: UnrolledAutoencoder<Op>) -> String {
            let e = m.encoder
            let name = e.threshold == .hard ? "τ" : (e.lambdaIsPenalty ? "λ" : "threshold")
            let lambda: String
            switch e.lambda {
            case let .scalar(v): lambda = "\(name) " + CSV.format(v)
            case let .perAtom(v): lambda = "per-atom \(name) \(CSV.format(v.min() ?? 0))…\(CSV.format(v.max() ?? 0))"
            }
            let alpha = (try? e.stepSize(for: m.dictionary)).map { "α " + fmt(Double($0)) } ?? "α ?"
            return "\(e.algorithm.rawValue), T \(e.layers), \(ThresholdChoice(e.threshold).rawValue) \(lambda), \(alpha)"
                + (m.isTied ? "" : ", untied") + (m.beta == 1 ? "" : ", β \(CSV.format(m.beta))")
        }
        switch file.model {
        case let .dense(m): return summary(m)
        case let .conv1d(m): return summary(m)
        case let .conv2d(m): return summary(m)
        case let .vsc(v): return v.state.metadata["vsc.family"] ?? "variational"
        }
    }
}
