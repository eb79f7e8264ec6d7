import Foundation
import Unroll
import UnrollCore
import UnrollIO

// The CLI's side of the library's `ModelFile`: read a model for an option, and ask for the kind a
// command needs, with one line naming the kind found when it is another.

extension ModelFile {
    /// Reads any model file (`unroll-model/2` or version 1) given to `option`.
    static func read(_ path: String, option: String) throws -> ModelFile {
        try inContext(option) { try ModelFile.read(path) }
    }

    /// Writes the model atomically; errors name `option`.
    func write(to path: String, option: String) throws {
        try inContext("\(option) \(path)") { try write(to: path) }
    }

    /// What the file holds, for messages ("a conv2d model").
    var described: String { "a \(model.kind) model" }

    func mismatch(_ path: String, option: String, wanted: String) -> CLIError {
        CLIError("\(option) \(path) holds \(described); \(wanted)")
    }

    /// What `unroll info` prints about the model, a line per aspect.
    var summary: [String] {
        func banks<Op: DictionaryOperator>(_ m: UnrolledAutoencoder<Op>, _ geometry: String) -> [String] {
            let banks = ["dictionary"] + (m.analysis == nil ? [] : ["analysis"]) + (m.synthesis == nil ? [] : ["synthesis"])
            var lines = ["model: \(model.kind), \(m.isTied ? "tied (one bank)" : "untied (\(banks.joined(separator: ", ")))"), "
                         + "\(m.atoms) atoms, weights \(m.dictionary.weights.shape)\(geometry)"]
            lines.append("encoder: " + Encode.encoderSummary(self)
                         + (m.encoder.tolerance.map { ", stops at relative change \(CSV.format($0))" } ?? ""))
            if let em = m.em {
                lines.append("EM λ: \(CSV.format(em.lambdas.min() ?? 0))…\(CSV.format(em.lambdas.max() ?? 0)) per atom, σ \(CSV.format(em.sigma))")
            }
            if let s = m.adaptiveSigma {
                lines.append("noise-adaptive: the thresholds are for σ \(CSV.format(s)) (\(String(format: "%.3g", s * 255))/255) and scale with the input's σ")
            }
            return lines
        }
        var lines: [String]
        switch model {
        case let .dense(m): lines = banks(m, " (atoms as rows p×m, X ≈ Z·W)")
        case let .conv1d(m): lines = banks(m, " (filters × channels × length)")
        case let .conv2d(m):
            lines = banks(m, ", stride \(m.dictionary.stride), trained on \(m.dictionary.width)×\(m.dictionary.height) (resized to each image)")
            if m.shiftAverage && m.dictionary.stride > 1 {
                lines.append("denoising: the mean of the encodings of " + m.shifts.describe(stride: m.dictionary.stride))
            }
            if let n = m.nonLocal { lines.append("denoising, last stage: a non-local means of the estimate, " + n.description) }
            if let c = m.collaborative { lines.append("denoising, mixed in at the end: " + c.description) }
        case let .vsc(v):
            let meta = v.state.metadata
            lines = ["model: \(model.kind), " + ["vsc.family", "vsc.threshold", "vsc.latents", "vsc.pixels", "vsc.hidden", "vsc.samples"]
                .compactMap { k in meta[k].map { "\(k.dropFirst(4)) \($0)" } }.joined(separator: ", ")]
        }
        for key in info.keys.sorted() { lines.append("\(key): \(info[key]!)") }
        return lines
    }

    func conv2d(_ path: String, option: String = "--model") throws -> UnrolledAutoencoder<Convolution2DDictionary> {
        guard case let .conv2d(m) = model else {
            throw mismatch(path, option: option, wanted: "this command needs a conv2d model (`unroll train --model conv2d`)")
        }
        return m
    }

    func spikes(_ path: String, option: String = "--model") throws -> SpikeModel {
        guard case let .conv1d(m) = model else {
            throw mismatch(path, option: option, wanted: "this command needs a spikes model (`unroll spikes train`)")
        }
        return try inContext("\(option) \(path)") { try SpikeModel(m) }
    }

    func vsc(_ generator: VSCModel.Generator, _ path: String, option: String = "--model") throws -> TrainerCheckpoint {
        guard case let .vsc(m) = model, m.generator == generator else {
            throw mismatch(path, option: option, wanted: "this command needs a vsc-\(generator.rawValue) model (`unroll vsc train\(generator == .conv ? " --generator conv" : "")`)")
        }
        return m.state
    }
}

/// The VSC models, whose model file holds their trainer's state (so `--resume` continues from it).
protocol VSCGenerator: Trainable where Batch == RowBatches.Batch, Evaluation == VSCStepRecord<Self> {
    static var generator: VSCModel.Generator { get }
    init(checkpoint: TrainerCheckpoint) throws
}

extension LinearGeneratorModel: VSCGenerator {
    static var generator: VSCModel.Generator { .linear }
}

extension NetworkGeneratorModel: VSCGenerator {
    static var generator: VSCModel.Generator { .conv }
}

/// A VSC model on disk: the library's model file (`vsc-linear`, `vsc-conv`), written atomically.
enum VSCModelFile {
    static func write<M: VSCGenerator>(_ trainer: Trainer<M, RowBatches>, to path: String) throws {
        try ModelFile(model: .vsc(VSCModel(generator: M.generator, state: trainer.checkpoint()))).write(to: path, option: "--output")
    }

    /// The trainer's state in the file (what `--resume` restores).
    static func state<M: VSCGenerator>(_ type: M.Type, _ path: String, option: String = "--model") throws -> TrainerCheckpoint {
        try ModelFile.read(path, option: option).vsc(M.generator, path, option: option)
    }

    /// The trained model and the step training stood at.
    static func read<M: VSCGenerator>(_ type: M.Type, _ path: String, option: String = "--model") throws -> (model: M, step: Int) {
        let s = try state(type, path, option: option)
        return try inContext("\(option) \(path)") { (try M(checkpoint: s), try s.count("trainer.step")) }
    }

    /// Whether `path` holds a conv model (false for other kinds and unreadable files, which the linear reader reports).
    static func isConv(_ path: String) -> Bool {
        (try? ModelFile.read(path))?.model.kind == "vsc-conv"
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
