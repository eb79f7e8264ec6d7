import UnrollCore

/// Any model Unroll trains, as the library reads and writes it (`ModelFile` in UnrollIO): an unrolled
/// autoencoder over one of the three operators, or a variational sparse-coding model.
public enum UnrollModel: Sendable {
    case dense(UnrolledAutoencoder<DenseDictionary>)
    case conv1d(UnrolledAutoencoder<Convolution1DDictionary>)
    case conv2d(UnrolledAutoencoder<Convolution2DDictionary>)
    /// VSC keeps its encoder network and variational family as its own model; its state is the
    /// trainer's checkpoint (`LinearGeneratorModel(checkpoint:)` / `NetworkGeneratorModel(checkpoint:)`
    /// rebuild the model from it, the trainers' `restore` continue it).
    case vsc(VSCModel)

    /// The `model.kind` of the file: dense, conv1d, conv2d, vsc-linear or vsc-conv.
    public var kind: String {
        switch self {
        case .dense: return "dense"
        case .conv1d: return "conv1d"
        case .conv2d: return "conv2d"
        case let .vsc(m): return "vsc-" + m.generator.rawValue
        }
    }
}

/// A variational sparse-coding model: which generator, and the trainer's tensors and settings.
public struct VSCModel: Sendable {
    public enum Generator: String, CaseIterable, Sendable { case linear, conv }
    public var generator: Generator
    public var state: TrainerCheckpoint

    public init(generator: Generator, state: TrainerCheckpoint) {
        self.generator = generator
        self.state = state
    }
}
