import Foundation
import Unroll
import UnrollCore
import UnrollIO

/// A trained dense model on disk (`model.safetensors`): the dictionary W `[p, m]` (atoms as rows,
/// X ≈ Z·W), the per-atom λ as a tensor when there is one, and the encoder settings as metadata, so
/// `unroll encode` runs the same network. Written atomically; no timings or dates in it, so the same
/// run gives the same bytes.
struct ModelFile {
    static let format = "unroll-model/1"
    static let layout = "atoms as rows p×m (X ≈ Z·W)"

    var dictionary: DenseDictionary
    var encoder: UnrolledEncoder
    /// The λ decay β the encoder used at the end of training (1 = none).
    var beta: Float
    /// Everything else, for information (training settings, data shape, step).
    var info: [String: String]

    func metadata() throws -> [String: String] {
        var meta = info
        meta["format"] = Self.format
        meta["model.kind"] = "dense-dictionary"
        meta["layout"] = Self.layout
        meta["atoms"] = String(dictionary.atoms)
        meta["signal_size"] = String(dictionary.signalSize)
        meta["encoder.algorithm"] = encoder.algorithm.rawValue
        meta["encoder.layers"] = String(encoder.layers)
        meta["encoder.threshold"] = ThresholdChoice(encoder.threshold).rawValue
        switch encoder.lambda {
        case let .scalar(v): meta["encoder.lambda"] = v.description
        case .perAtom: meta["encoder.lambda"] = "per-atom (tensor lambda)"
        }
        switch encoder.step {
        case let .fixed(a):
            meta["encoder.step"] = a.description
        case let .inverseLipschitz(iterations, seed):
            meta["encoder.step"] = "auto"
            meta["encoder.power_iterations"] = String(iterations)
            meta["encoder.power_seed"] = String(seed)
        }
        meta["encoder.alpha"] = try encoder.stepSize(for: dictionary).description
        if let tol = encoder.tolerance { meta["encoder.tolerance"] = tol.description } else { meta["encoder.tolerance"] = nil }
        meta["encoder.beta"] = beta.description
        return meta
    }

    func write(to path: String) throws {
        var tensors: [(name: String, tensor: Tensor)] = [("W", dictionary.weights)]
        if case let .perAtom(v) = encoder.lambda { tensors.append(("lambda", Tensor(shape: [v.count], data: v))) }
        try Safetensors.write(tensors, metadata: try metadata(), to: path)
    }

    /// Reads a model written by `write`; every error names the file and the missing or bad entry.
    static func read(_ path: String) throws -> ModelFile {
        let file = try inContext("--model") { try Safetensors.read(path) }
        let meta = file.metadata
        func fail(_ what: String) -> CLIError { CLIError("--model \(path): \(what) (is it a model.safetensors written by `unroll train`?)") }
        guard meta["model.kind"] == "dense-dictionary" else {
            throw fail("metadata model.kind is \(meta["model.kind"].map { "'\($0)'" } ?? "missing"), expected 'dense-dictionary'")
        }
        guard let w = file["W"]?.tensor else { throw fail("no tensor 'W'") }
        let dictionary = try inContext("--model \(path): tensor W") { try DenseDictionary(weights: w) }
        func value(_ key: String) throws -> String {
            guard let v = meta[key] else { throw fail("metadata \(key) is missing") }
            return v
        }
        guard let algorithm = UnrolledEncoder.Algorithm(rawValue: try value("encoder.algorithm")) else {
            throw fail("metadata encoder.algorithm is '\(meta["encoder.algorithm"]!)', expected ista or fista")
        }
        guard let layers = Int(try value("encoder.layers")) else { throw fail("metadata encoder.layers is not an integer") }
        guard let threshold = ThresholdChoice(rawValue: try value("encoder.threshold"))?.threshold else {
            throw fail("metadata encoder.threshold is '\(meta["encoder.threshold"]!)', expected soft, non-negative or hard")
        }
        let lambda: Lambda
        if let t = file["lambda"]?.tensor {
            lambda = .perAtom(t.data)
        } else if let v = Float(try value("encoder.lambda")) {
            lambda = .scalar(v)
        } else {
            throw fail("metadata encoder.lambda is not a number and there is no tensor 'lambda'")
        }
        let stepText = try value("encoder.step")
        let step: StepSize
        if stepText == "auto" {
            step = .inverseLipschitz(iterations: Int(meta["encoder.power_iterations"] ?? "") ?? 100,
                                     seed: UInt64(meta["encoder.power_seed"] ?? "") ?? 0)
        } else if let a = Float(stepText) {
            step = .fixed(a)
        } else {
            throw fail("metadata encoder.step is '\(stepText)', expected a number or auto")
        }
        let tolerance = meta["encoder.tolerance"].flatMap(Float.init)
        let beta = meta["encoder.beta"].flatMap(Float.init) ?? 1
        let encoder = UnrolledEncoder(layers: layers, algorithm: algorithm, threshold: threshold,
                                      lambda: lambda, step: step, tolerance: tolerance)
        try inContext("--model \(path)") { try encoder.validate(for: dictionary) }
        return ModelFile(dictionary: dictionary, encoder: encoder, beta: beta, info: meta)
    }
}

/// A trainer checkpoint on disk (`checkpoint.safetensors`): the trainer's tensors and metadata plus
/// the CLI's own `cli.*` settings, which `--resume` compares with the new command line.
enum CheckpointFile {
    static func write(_ checkpoint: TrainerCheckpoint, extra: [String: String], to path: String) throws {
        let tensors = checkpoint.tensors.keys.sorted().map { (name: $0, tensor: checkpoint.tensors[$0]!) }
        try Safetensors.write(tensors, metadata: checkpoint.metadata.merging(extra) { _, new in new }, to: path)
    }

    static func read(_ path: String) throws -> TrainerCheckpoint {
        let file = try inContext("--resume") { try Safetensors.read(path) }
        var tensors: [String: Tensor] = [:]
        for (name, array) in file.tensors { tensors[name] = array.tensor }
        return TrainerCheckpoint(tensors: tensors, metadata: file.metadata)
    }
}
