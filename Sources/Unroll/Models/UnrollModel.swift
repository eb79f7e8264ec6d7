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

extension VSCModel {
    /// The code length and the signal length (vsc-conv: 28×28 images).
    public func sizes() throws -> (latents: Int, pixels: Int) {
        (try state.count("vsc.latents"), generator == .conv ? NetworkGeneratorModel.pixels : try state.count("vsc.pixels"))
    }

    /// Codes `[n, latents]` of rows `x` and their reconstructions, as `unroll encode` and Python give
    /// them: each row's code is the one the model's aggregation picks among `samples` draws (default:
    /// the model's own count) from `rng`; vsc-conv rows are 28×28 images in [0, 1].
    public func encode(_ x: Tensor, samples: Int? = nil, rng: inout Random) throws -> (codes: Tensor, reconstruction: Tensor) {
        let step = try state.count("trainer.step")
        guard x.rank == 2, x.rows >= 1 else { throw UnrollError.shapeMismatch("expected rows of signals, got shape \(x.shape)") }
        if let samples, samples < 1 { throw UnrollError.invalidArgument("samples must be ≥ 1, got \(samples)") }
        switch generator {
        case .linear:
            var model = try LinearGeneratorModel(checkpoint: state)
            guard x.cols == model.pixels else {
                throw UnrollError.shapeMismatch("rows of \(x.cols) values; the model's atoms have \(model.pixels) pixels")
            }
            let c = model.config
            let z = model.infer(x, samples: samples ?? c.variational.samples, klWeight: c.klWeight, aggregation: c.aggregation,
                                temperature: c.temperature(step: step), rng: &rng)
            return (z, z.matmul(model.dictionary))
        case .conv:
            var model = try NetworkGeneratorModel(checkpoint: state)
            let pixels = NetworkGeneratorModel.pixels
            guard x.cols == pixels else {
                throw UnrollError.shapeMismatch("rows of \(x.cols) values; the model takes 28×28 images as rows of \(pixels)")
            }
            let c = model.config
            let r = model.evaluate(x, samples: samples ?? c.variational.samples, klWeight: c.klWeight, aggregation: c.aggregation,
                                   temperature: c.temperature(step: step), keep: x.rows, rng: &rng)
            return (r.codes, r.reconstructions)
        }
    }
}
