import ArgumentParser
import Foundation
import Unroll
import UnrollCore
import UnrollIO

/// `unroll encode`: sparse codes of data under a trained model.
struct Encode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sparse codes for data under a model trained by `unroll train`.",
        discussion: """
            Runs the model's unrolled encoder (its algorithm, T, λ or τ, α and threshold) on every row \
            of --data ([n, m], samples as rows; extra axes are flattened) and writes the codes Z \
            [n, p] as .npy (or as array Z of an .npz). Prints the fraction of zero entries and the \
            relative reconstruction error ‖X − Z·W‖_F / ‖X‖_F.

            Example:
              unroll encode --model run/model.safetensors --data data.npz --output codes.npy
            """)

    @Option(help: ArgumentHelp("A model.safetensors written by `unroll train`.", valueName: "file"))
    var model: String
    @Option(help: ArgumentHelp("Signals [n, m], samples as rows (an npz's array X by default).", valueName: "file[:array]"))
    var data: String
    @Option(name: .shortAndLong, help: ArgumentHelp("Output codes, .npy (or .npz with array Z).", valueName: "file"))
    var output: String
    @Option(parsing: .unconditional, help: "Use this many layers instead of the model's T.")
    var layers: Int?

    func run() throws {
        let saved = try ModelFile.read(model, option: "--model")
        guard case let .dense(file) = saved.model else {
            throw saved.mismatch(model, option: "--model", wanted: "`unroll encode` reads dense models")
        }
        var encoder = file.encoder
        if let t = layers { encoder.layers = t }
        try inContext("--layers") { try encoder.validate(for: file.dictionary) }
        let x = try ArrayInput.matrix(ArrayReference(data), option: "--data", defaults: ["X"]).tensor
        let m = file.dictionary.signalSize
        guard x.cols == m else {
            throw CLIError("shape mismatch: --data \(data) has rows of \(x.cols) values, but the model's atoms have length m = \(m)")
        }
        let lower = output.lowercased()
        guard lower.hasSuffix(".npy") || lower.hasSuffix(".npz") else {
            throw CLIError("--output \(output): expected a .npy or .npz file name")
        }

        // Batches of rows keep the encoder's working memory bounded.
        let start = ContinuousClock.now
        let chunk = 4096
        var codes = [Float]()
        codes.reserveCapacity(x.rows * file.dictionary.atoms)
        let progress = ProgressBar(total: x.rows, label: "encode")
        for lo in stride(from: 0, to: x.rows, by: chunk) {
            let part = x.rows(lo..<min(x.rows, lo + chunk))
            codes += try inContext("encode") { try encoder.encode(part, with: file.dictionary, beta: file.beta) }.data
            progress.update(min(x.rows, lo + chunk))
        }
        progress.finish()
        let z = Tensor(shape: [x.rows, file.dictionary.atoms], data: codes)
        try inContext("--output") {
            if lower.hasSuffix(".npz") { try Npz.write([("Z", z)], to: output) } else { try Npy.write(z, to: output) }
        }

        var residual = file.dictionary.apply(z)
        residual.add(x, scaledBy: -1)
        let xNorm = x.squaredNorm()
        let relative = xNorm > 0 ? (residual.squaredNorm() / xNorm).squareRoot() : 0
        let zeros = Double(z.zeroCount()) / Double(max(1, z.count))
        let perRow = Double(z.count - z.zeroCount()) / Double(max(1, z.rows))
        let seconds = secondsSince(start)
        let lambda: String
        switch encoder.lambda {
        case let .scalar(v): lambda = (encoder.threshold == .hard ? "τ " : "λ ") + CSV.format(v)
        case .perAtom: lambda = "per-atom λ"
        }
        let alpha = try encoder.stepSize(for: file.dictionary)
        print("encoded \(x.rows) signals with \(file.dictionary.atoms) atoms (\(encoder.algorithm.rawValue), T \(encoder.layers), "
            + "\(ThresholdChoice(encoder.threshold).rawValue) \(lambda), α \(fmt(Double(alpha)))) in \(String(format: "%.2f", seconds)) s: "
            + "zeros \(String(format: "%.1f", 100 * zeros))% (\(String(format: "%.2f", perRow)) non-zeros per row), "
            + "reconstruction error ‖X − ZW‖/‖X‖ = \(fmt(relative)); wrote \(output) [\(z.rows), \(z.cols)]")
    }
}
