import ArgumentParser
import Foundation
import Unroll
import UnrollCore
import UnrollIO

/// `unroll synth`: a synthetic dictionary-learning problem with its ground truth, as one .npz.
struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate synthetic sparse-coding data with a known dictionary (PUDLE's setting).",
        discussion: """
            Writes one .npz with four float32 arrays:
              X       [n, m]  signals, one per row: X = Z_true·D_true (+ noise)
              D_true  [p, m]  the true dictionary, ATOMS AS ROWS (unit norm)
              Z_true  [n, p]  the true codes, s non-zeros per row, support uniform at random
              D_init  [p, m]  an initial dictionary, atoms as rows
            D_true has Gaussian entries and unit-norm atoms. D_init is normalise(D_true + δ·N(0,1)) \
            (--init close) or the pairwise estimate of Arora et al. from X (--init arora; atoms the \
            method does not find are filled with normalised random signals, and the atoms are \
            permuted and sign-flipped to line up with D_true). \
            The printed relative error is ‖D_init − D_true‖_F / ‖D_true‖_F with atoms normalised \
            and no permutation (PUDLE's metric).

            Example (PUDLE's theory setting, as its code generates it):
              unroll synth --m 50 --p 100 --n 10000 --s 5 --signs per-example --delta 0.1 --seed 0 --output data.npz
            """)

    @Option(help: "Signal size (atom length).")
    var m: Int = 50
    @Option(help: "Number of atoms.")
    var p: Int = 100
    @Option(help: "Number of examples.")
    var n: Int = 10_000
    @Option(help: "Non-zeros per code.")
    var s: Int = 5
    @Option(help: "Code amplitudes: uniform:LOW,HIGH (magnitudes, then a random sign) or gaussian:MEAN,STD.")
    var amplitude: String = "uniform:1,2"
    @Option(help: "Signs of the non-zeros: per-entry (independent) or per-example (one sign shared by an example's non-zeros, as PUDLE's code does).")
    var signs: SignChoice = .perEntry
    @Option(name: .customLong("snr-db"), parsing: .unconditional, help: "Add white Gaussian noise at this SNR in dB (default: no noise).")
    var snrDB: Double?
    @Option(parsing: .unconditional, help: "δ of --init close: D_init = normalise(D_true + δ·N(0,1)); the initial error is roughly δ√m.")
    var delta: Float = 0.1
    @Option(name: .customLong("init"), help: "Initial dictionary: close (D_true plus noise δ) or arora (estimated from X by Arora et al.'s pairwise method).")
    var initialization: InitChoice = .close
    @Option(help: "Random seed (the same seed gives the same file).")
    var seed: UInt64 = 0
    @Option(name: .shortAndLong, help: "Output .npz file.")
    var output: String

    enum SignChoice: String, CaseIterable, ExpressibleByArgument {
        case perEntry = "per-entry"
        case perExample = "per-example"
    }

    enum InitChoice: String, CaseIterable, ExpressibleByArgument { case close, arora }

    static func parseAmplitude(_ text: String) throws -> SyntheticDictionaryConfig.Amplitude {
        let parts = text.split(separator: ":", maxSplits: 1)
        let numbers = parts.count == 2 ? parts[1].split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) } : []
        guard parts.count == 2, numbers.count == 2, let a = numbers[0], let b = numbers[1] else {
            throw CLIError("--amplitude '\(text)': expected uniform:LOW,HIGH or gaussian:MEAN,STD, e.g. uniform:1,2")
        }
        switch parts[0].lowercased() {
        case "uniform": return .uniform(low: a, high: b)
        case "gaussian": return .gaussian(mean: a, std: b)
        default: throw CLIError("--amplitude '\(text)': unknown law '\(parts[0])', expected uniform or gaussian")
        }
    }

    func run() throws {
        let config = SyntheticDictionaryConfig(
            signalSize: m, atomCount: p, exampleCount: n, sparsity: s, amplitude: try Self.parseAmplitude(amplitude),
            signs: signs == .perEntry ? .independent : .sharedPerExample, snrDB: snrDB, initNoise: delta)
        try inContext("invalid synthetic data settings") { try config.validate() }
        guard n >= 1 else { throw CLIError("--n must be ≥ 1, got \(n)") }
        var rng = Random(seed: seed)
        let data = try inContext("synth") { try SyntheticDictionaryData(config, rng: &rng) }

        var initial = data.initialDictionary
        var initNote = "close, δ = \(delta)"
        if initialization == .arora {
            var arora = AroraInitialization(atomCount: p, sparsity: s)
            arora.maxSamples = min(n, 5000)
            arora.refinementSteps = 3
            var aroraRng = rng.split()
            let result = try inContext("--init arora") { try arora.run(on: data.signals, rng: &aroraRng) }
            let estimate = result.dictionary(atomCount: p, fillingFrom: data.signals, rng: &aroraRng)
            // The method returns atoms in arbitrary order and sign; line them up with D_true (a relabelling
            // that does not change the learning problem) so the unmatched error metric means something.
            initial = DictionaryMetrics.matchAtoms(estimate, to: data.dictionary).aligned(estimate)
            let found = min(result.atoms.rows, p)
            initNote = "arora: \(found) of \(p) atoms found in \(result.pairsTried) pairs"
                + (found < p ? ", \(p - found) filled with normalised random signals" : "")
                + ", permuted and sign-flipped to line up with D_true"
        }

        try inContext("--output") {
            try Npz.write([("X", data.signals), ("D_true", data.dictionary), ("Z_true", data.codes.dense()),
                           ("D_init", initial)], to: output)
        }
        let error = DictionaryMetrics.relativeFrobeniusError(initial, data.dictionary)
        let matched = DictionaryMetrics.matchAtoms(initial, to: data.dictionary)
        let amp: String
        switch config.amplitude {
        case let .uniform(a, b): amp = "|z| ~ U[\(CSV.format(a)), \(CSV.format(b))]"
        case let .gaussian(mu, sd): amp = "z ~ N(\(CSV.format(mu)), \(CSV.format(sd))²)"
        }
        let noise = snrDB.map { "SNR \(CSV.format($0)) dB (noise std \(String(format: "%.4g", data.noiseStd)))" } ?? "no noise"
        print("wrote \(output): X [\(n), \(m)], D_true [\(p), \(m)], Z_true [\(n), \(p)], D_init [\(p), \(m)] (atoms as rows); "
            + "s = \(s), \(amp), \(signs.rawValue) signs, \(noise); D_init \(initNote); "
            + "initial error ‖D_init − D_true‖/‖D_true‖ = \(fmt(error)) (matched mean sin \(fmt(matched.meanSinDistance)))")
    }
}

/// Four significant digits.
func fmt(_ x: Double) -> String {
    guard x.isFinite else { return x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf") }
    return String(format: "%.4g", x)
}
