import ArgumentParser
import Foundation
import Unroll
import UnrollCore
import UnrollIO

/// The options `unroll encode` and `unroll eval` share.
struct ModelRunOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Unrolled models: use this many layers instead of the model's T.")
    var layers: Int?
    @Option(help: "Unrolled models: stop each sample once its code changes by at most this between layers (‖z_t − z_{t−1}‖ ≤ tol·‖z_t‖); --layers is then the cap (default: every sample runs all layers).")
    var tolerance: Float?
    @Option(help: "VSC models: draws per signal (default: the model's).")
    var samples: Int?
    @Flag(help: "Dense models with a soft threshold and one λ (no decay): the exact lasso codes at the model's λ (the homotopy path), the limit of the encoder as its layers grow, instead of running the layers.")
    var exact = false
    @Option(help: "Seed of the draws (VSC models' samples, eval's added noise).")
    var seed: UInt64 = 0

    func validate() throws {
        if let s = samples, s < 1 { throw ValidationError("--samples must be ≥ 1, got \(s)") }
        if exact && (layers != nil || tolerance != nil) { throw ValidationError("--exact computes the lasso minimum: it takes no --layers or --tolerance") }
    }
}

/// Any model file run on data, for `unroll encode` and `unroll eval`: the signals as the model takes
/// them, their codes and the decoded signals (the signals' shape). What `--data` holds depends on the
/// model: rows of a matrix (dense, vsc-linear, vsc-conv: images as rows of 784 values in [0, 1]), a
/// recording samples × channels (conv1d), images (conv2d: a PNG/PGM, or an array [H, W] or [B, H, W]).
struct ModelRun {
    var signals: Tensor
    var codes: Tensor
    var reconstruction: Tensor
    /// Signals in the batch (rows, recordings, images).
    var count: Int
    /// "400 signals of 20 values", for messages.
    var what: String

    static func run(_ file: ModelFile, model path: String, data: String, options: ModelRunOptions) throws -> ModelRun {
        let (layers, samples, seed, tolerance) = (options.layers, options.samples, options.seed, options.tolerance)
        for (name, given) in [("--layers", layers != nil), ("--tolerance", tolerance != nil)] where given {
            if case .vsc = file.model { throw CLIError("\(name) does not apply to \(file.described) (its encoder is a network)") }
        }
        if samples != nil {
            guard case .vsc = file.model else { throw CLIError("--samples applies to VSC models only; \(path) holds \(file.described)") }
        }
        if options.exact {
            guard case .dense = file.model else { throw CLIError("--exact applies to dense models only; \(path) holds \(file.described)") }
        }
        switch file.model {
        case let .dense(m):
            let source = try rows(data, for: m)
            let x = source as? Tensor ?? source.rows(0..<source.rowCount)
            let model = try overriding(m, layers: layers, tolerance: tolerance)
            // Batches of rows keep the encoder's working memory bounded.
            let chunk = 4096
            var codes = [Float]()
            codes.reserveCapacity(x.rows * m.atoms)
            let progress = ProgressBar(total: x.rows, label: "encode")
            for lo in stride(from: 0, to: x.rows, by: chunk) {
                let rows = x.rows(lo..<min(x.rows, lo + chunk))
                codes += try inContext(options.exact ? "--exact" : "encode") {
                    try options.exact ? model.exactLassoCodes(rows) : model.encode(rows)
                }.data
                progress.update(min(x.rows, lo + chunk))
            }
            progress.finish()
            let z = Tensor(shape: [x.rows, m.atoms], data: codes)
            return ModelRun(signals: x, codes: z, reconstruction: model.decoder.apply(z), count: x.rows,
                            what: "\(x.rows) signals of \(x.cols) values")
        case let .conv1d(m):
            let recording = try SpikeRecordingFile.read(data, option: "--data").signal
            guard recording.shape[0] == m.dictionary.channels else {
                throw CLIError("--data \(data) has \(recording.shape[0]) channel(s), the model's filters \(m.dictionary.channels)")
            }
            let model = try overriding(m, layers: layers, tolerance: tolerance)
            let z = try inContext("encode") { try model.encode(recording: recording) }
            let x̂ = model.decoder.apply(z.reshaped([1] + z.shape)).reshaped(recording.shape)
            return ModelRun(signals: recording, codes: z, reconstruction: x̂, count: 1,
                            what: "a recording of \(recording.shape[1]) samples × \(recording.shape[0]) channel(s)")
        case let .conv2d(m):
            let x = try images(data)
            let model = try overriding(m, layers: layers, tolerance: tolerance)
            let (z, x̂) = try inContext("encode") { try model.reconstruct(x) }
            return ModelRun(signals: x, codes: z, reconstruction: x̂, count: x.shape[0],
                            what: "\(x.shape[0]) image(s) of \(x.shape[2])×\(x.shape[1])")
        case let .vsc(v):
            let x = try ArrayInput.matrix(ArrayReference(data), option: "--data", defaults: ["X"]).tensor
            var rng = Random(seed: seed)
            let (z, x̂) = try inContext("--data \(data) with --model \(path)") { try v.encode(x, samples: samples, rng: &rng) }
            return ModelRun(signals: x, codes: z, reconstruction: x̂, count: x.rows,
                            what: v.generator == .conv ? "\(x.rows) images of 28×28" : "\(x.rows) signals of \(x.cols) values")
        }
    }

    /// The rows of `data` for a dense model (checked against its atoms' length); a float32 `.npy` is
    /// mapped, so a rank of a distributed encoding reads only its rows.
    static func rows(_ data: String, for m: UnrolledAutoencoder<DenseDictionary>) throws -> any RowSource {
        let x = try ArrayInput.rowSource(ArrayReference(data), option: "--data", defaults: ["X"])
        guard x.valuesPerRow == m.dictionary.signalSize else {
            throw CLIError("shape mismatch: --data \(data) has rows of \(x.valuesPerRow) values, but the model's atoms have length m = \(m.dictionary.signalSize)")
        }
        return x
    }

    /// The model with T replaced by `layers` (checked), and each sample stopped at `tolerance` when given.
    static func overriding<Op: DictionaryOperator>(_ m: UnrolledAutoencoder<Op>, layers: Int?, tolerance: Float? = nil) throws
        -> UnrolledAutoencoder<Op>
    {
        var m = m
        if let tol = tolerance {
            guard tol.isFinite, tol >= 0 else { throw CLIError("--tolerance must be finite and ≥ 0, got \(tol)") }
            m.encoder.tolerance = tol
            m.encoder.stopsPerSample = true
        }
        if let t = layers {
            m.encoder.layers = t
            try inContext("--layers") { try m.encoder.validate(for: m.dictionary) }
        }
        return m
    }

    /// Images `[B, H, W]` from a PNG/PGM file or an array `[H, W]` / `[B, H, W]`.
    static func images(_ data: String) throws -> Tensor {
        let lower = data.lowercased()
        if lower.hasSuffix(".png") || lower.hasSuffix(".pgm") {
            let image = try ImageFolder.readImage(data, option: "--data")
            return image.reshaped([1] + image.shape)
        }
        let (name, t, _) = try ArrayInput.load(ArrayReference(data), option: "--data", defaults: ["images", "X"])
        guard t.rank == 2 || t.rank == 3, t.count > 0 else {
            throw CLIError("--data \(data): a conv2d model takes images [H, W] or [B, H, W]; array '\(name)' has shape \(t.shape)")
        }
        if t.hasNonFinite { throw CLIError("--data \(data): array '\(name)' contains NaN or Inf") }
        return t.rank == 2 ? t.reshaped([1] + t.shape) : t
    }

    // MARK: measures

    /// ‖x − x̂‖_F / ‖x‖_F.
    var relativeError: Double {
        let n = signals.squaredNorm()
        return n > 0 ? ((signals - reconstruction).squaredNorm() / n).squareRoot() : 0
    }

    var meanSquaredError: Double { (signals - reconstruction).squaredNorm() / Double(max(1, signals.count)) }
    var zeroFraction: Double { Double(codes.zeroCount()) / Double(max(1, codes.count)) }
    var nonZerosPerSignal: Double { Double(codes.count - codes.zeroCount()) / Double(max(1, count)) }

    /// The lasso objective per signal, ½‖x − D z‖² + Σ λ_j |z_j|, for a tied model whose λ is a penalty.
    static func lassoObjective<Op: DictionaryOperator>(_ m: UnrolledAutoencoder<Op>, _ run: ModelRun) -> Double? {
        guard m.isTied, m.encoder.lambdaIsPenalty, m.encoder.threshold != .hard else { return nil }
        let lambdas = m.encoder.lambda.values(atoms: m.atoms).map { Double($0) }
        let perAtom = run.codes.count / max(1, run.count * m.atoms)
        var l1 = 0.0
        run.codes.data.withUnsafeBufferPointer { z in
            for i in 0..<z.count { l1 += lambdas[(i / perAtom) % m.atoms] * Double(abs(z[i])) }
        }
        return (0.5 * (run.signals - run.reconstruction).squaredNorm() + l1) / Double(max(1, run.count))
    }
}
