import UnrollCore

/// One layer of a feed-forward network; batch first (dense `[B, features]`, images `[B, C, H, W]`).
///
/// Parameters use PyTorch's layouts and default initialisation, so weights can be exchanged with
/// `torch.nn` modules: `Linear` weight `[outputs, inputs]`, `Conv2d` weight `[out, in, k, k]`,
/// `ConvTranspose2d` weight `[in, out, k, k]`, each followed by a bias `[out]`; `BatchNorm` γ, β `[features]`.
public enum NetworkLayer: Hashable, Sendable {
    /// y = x·Wᵀ + b on `[B, inputs]` (a `[B, C, H, W]` input with C·H·W = inputs is flattened).
    case linear(inputs: Int, outputs: Int)
    case relu
    case sigmoid
    /// Cross-correlation with zero padding and a bias (`torch.nn.Conv2d`), square kernel.
    case conv2d(inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0)
    /// The adjoint of `conv2d` plus a bias (`torch.nn.ConvTranspose2d`): an `H × W` input gives
    /// `(H − 1)·stride − 2·padding + kernel + outputPadding` rows (and columns).
    case convTranspose2d(inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                         outputPadding: Int = 0)
    /// Batch normalisation over every dimension but the second (`BatchNorm1d` on `[B, F]`,
    /// `BatchNorm2d` on `[B, C, H, W]`): biased batch variance in training, running statistics
    /// (momentum 0.1, unbiased variance) in evaluation, then the affine γ·x̂ + β.
    case batchNorm(features: Int, epsilon: Float = 1e-5, momentum: Float = 0.1)
    /// Views each sample with a new shape, e.g. `[256, 2, 2]` after a Linear layer (`[B] + shape`).
    case reshape([Int])
    /// Views each sample as one row: `[B, C, H, W]` → `[B, C·H·W]`.
    case flatten

    /// The shapes of the layer's trainable tensors, in order.
    public var parameterShapes: [[Int]] {
        switch self {
        case let .linear(i, o): return [[o, i], [o]]
        case .relu, .sigmoid, .reshape, .flatten: return []
        case let .conv2d(i, o, k, _, _): return [[o, i, k, k], [o]]
        case let .convTranspose2d(i, o, k, _, _, _): return [[i, o, k, k], [o]]
        case let .batchNorm(f, _, _): return [[f], [f]]
        }
    }

    /// The parameter names in `exportState` (PyTorch's).
    var parameterNames: [String] {
        switch self {
        case .batchNorm, .linear, .conv2d, .convTranspose2d: return ["weight", "bias"]
        default: return []
        }
    }

    /// PyTorch's default initial values: weights and biases U(−1/√fanIn, 1/√fanIn) with fanIn =
    /// `weight.size(1)·k·k` (for ConvTranspose2d that is out·k·k, as in PyTorch); batch norm γ = 1, β = 0.
    func initialParameters(rng: inout Random) -> [Tensor] {
        let shapes = parameterShapes
        switch self {
        case .batchNorm(let f, _, _):
            return [Tensor(repeating: 1, shape: [f]), Tensor(zeros: [f])]
        case .linear, .conv2d, .convTranspose2d:
            let fanIn = shapes[0].dropFirst().reduce(1, *)
            let bound = Float(1 / Double(Swift.max(1, fanIn)).squareRoot())
            return shapes.map { Tensor.uniform($0, -bound, bound, rng: &rng) }
        default:
            return []
        }
    }

    /// What is wrong with the layer's settings, or nil.
    public var problem: String? {
        switch self {
        case let .linear(i, o):
            if i < 1 || o < 1 { return "linear layer sizes must be ≥ 1, got \(i) → \(o)" }
        case .relu, .sigmoid, .flatten:
            break
        case let .conv2d(i, o, k, s, p):
            if i < 1 || o < 1 || k < 1 || s < 1 || p < 0 {
                return "conv2d needs channels, kernel and stride ≥ 1 and padding ≥ 0, got in \(i) out \(o) k \(k) s \(s) p \(p)"
            }
        case let .convTranspose2d(i, o, k, s, p, op):
            if i < 1 || o < 1 || k < 1 || s < 1 || p < 0 || op < 0 || op >= s {
                return "convTranspose2d needs channels, kernel and stride ≥ 1, padding ≥ 0 and 0 ≤ output padding < stride, got in \(i) out \(o) k \(k) s \(s) p \(p) op \(op)"
            }
        case let .batchNorm(f, eps, m):
            if f < 1 || !(eps > 0) || !eps.isFinite || !(m >= 0 && m <= 1) {
                return "batchNorm needs features ≥ 1, ε > 0 and momentum in [0, 1], got \(f), \(eps), \(m)"
            }
        case let .reshape(shape):
            if shape.isEmpty || shape.contains(where: { $0 < 1 }) { return "reshape needs positive dimensions, got \(shape)" }
        }
        return nil
    }
}
