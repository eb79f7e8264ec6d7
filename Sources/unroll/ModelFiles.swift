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
