import UnrollCore

/// A feed-forward stack of `NetworkLayer`s with hand-written backward passes (batch first).
///
/// `forward` caches what `backward` needs; `backward` then ADDS each parameter's gradient into
/// `gradients` (call `zeroGradients` between steps) and returns the gradient with respect to the input.
/// `backward` uses up the caches: each layer's is released once its gradients are computed, so a copy
/// of the network made after a step (the trainer keeps one) holds no activations. The convolutions'
/// scratch lives for one `forward` or `backward` call: networks that run one after the other (an
/// encoder, then a decoder) do not each hold one.
/// Batch norm layers also keep running statistics, updated by training-mode forward passes.
public struct Network: Sendable {
    public let layers: [NetworkLayer]
    /// All trainable tensors in layer order (each layer's weight, then its bias / β).
    public var parameters: [Tensor]
    /// ∂loss/∂parameters, same shapes and order, accumulated by `backward`.
    public private(set) var gradients: [Tensor]
    /// Per layer: batch norm's running mean and variance, empty for other layers.
    public private(set) var runningStatistics: [[Tensor]]

    /// Every batch norm's running mean and variance in layer order, as one list (shapes kept).
    public var flatRunningStatistics: [Tensor] {
        get { runningStatistics.flatMap { $0 } }
        set {
            var next = newValue.makeIterator()
            for l in runningStatistics.indices {
                for k in runningStatistics[l].indices {
                    guard let t = next.next(), t.shape == runningStatistics[l][k].shape else {
                        preconditionFailure("flatRunningStatistics: the new list does not match the network's")
                    }
                    runningStatistics[l][k] = t
                }
            }
        }
    }
    /// Index into `parameters` of each layer's first tensor.
    public let parameterOffsets: [Int]

    private var caches: [LayerCache]

    /// What `backward` needs from the last `forward` of one layer.
    struct LayerCache: Sendable {
        var input: Tensor?
        var output: Tensor?
        /// Batch norm: x̂ and 1/σ per channel.
        var normalized: Tensor?
        var inverseStd: [Float] = []
        /// Reshape / flatten: the input's shape.
        var inputShape: [Int]?
        var training = false
    }

    /// A network of `layers` in order, initialised like PyTorch (parameters drawn layer by layer from `rng`).
    public init(_ layers: NetworkLayer..., rng: inout Random) {
        self.init(layers, rng: &rng)
    }

    /// A network of `layers` in order, initialised like PyTorch (parameters drawn layer by layer from `rng`).
    public init(_ layers: [NetworkLayer], rng: inout Random) {
        let all = layers
        for layer in all {
            if let problem = layer.problem { preconditionFailure("Network: \(problem)") }
        }
        self.layers = all
        var params: [Tensor] = [], offsets: [Int] = [], stats: [[Tensor]] = []
        for layer in all {
            offsets.append(params.count)
            params += layer.initialParameters(rng: &rng)
            if case let .batchNorm(f, _, _) = layer {
                stats.append([Tensor(zeros: [f]), Tensor(repeating: 1, shape: [f])])
            } else {
                stats.append([])
            }
        }
        parameters = params
        gradients = params.map { Tensor(zeros: $0.shape) }
        runningStatistics = stats
        parameterOffsets = offsets
        caches = Array(repeating: LayerCache(), count: all.count)
    }

    /// Linear layers `sizes[0] → sizes[1] → …` with a ReLU between them, and after the last one iff
    /// `finalActivation`.
    public static func mlp(sizes: [Int], finalActivation: Bool, rng: inout Random) -> Network {
        precondition(sizes.count >= 2, "Network.mlp needs at least an input and an output size, got \(sizes)")
        var layers: [NetworkLayer] = []
        for i in 0..<(sizes.count - 1) {
            layers.append(.linear(inputs: sizes[i], outputs: sizes[i + 1]))
            if i < sizes.count - 2 || finalActivation { layers.append(.relu) }
        }
        return Network(layers, rng: &rng)
    }

    /// Number of trainable scalars.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    public mutating func zeroGradients() {
        // New arrays: the old ones are usually shared with the last step's evaluation, and zeroing them
        // in place would copy them first.
        for i in gradients.indices { gradients[i].data = [Float](repeating: 0, count: gradients[i].count) }
    }

    /// The network's output; `training` selects batch statistics (and updates the running ones) in batch norm.
    public mutating func forward(_ input: Tensor, training: Bool) -> Tensor {
        forward(input, training: training, caching: true)
    }

    /// Without `caching`, no layer keeps what a backward would need, so only the tensors of the layer
    /// being run are alive (evaluation of thousands of samples at once).
    private mutating func forward(_ input: Tensor, training: Bool, caching: Bool) -> Tensor {
        precondition(parameters.count == gradients.count
                     && zip(parameters, gradients).allSatisfy { $0.shape == $1.shape },
                     "Network: parameters were replaced by tensors of other shapes")
        var x = input, workspace = ConvWorkspace()
        for i in layers.indices {
            forwardLayer(i, &x, training: training, caching: caching, workspace: &workspace)
        }
        return x
    }

    /// Back-propagates `outputGradient` (shaped like the last `forward`'s output) through the cached
    /// forward pass: adds to `gradients` and returns ∂/∂input.
    public mutating func backward(_ outputGradient: Tensor) -> Tensor {
        backward(outputGradient, inputGradient: true)
    }

    /// `backward` for when ∂/∂input is not wanted: a first Linear layer then skips that product.
    public mutating func accumulateParameterGradients(_ outputGradient: Tensor) {
        _ = backward(outputGradient, inputGradient: false)
    }

    /// Evaluation-mode output (batch norm uses its running statistics) without touching this network's
    /// caches, and without caching anything for a backward.
    public func predict(_ input: Tensor) -> Tensor {
        var copy = self
        return copy.forward(input, training: false, caching: false)
    }

    /// A training pass (`forward(training: true)`, cached for `backward`), or else `predict`: what a model
    /// runs for a step or for an evaluation that no backward follows.
    public mutating func run(_ input: Tensor, training: Bool) -> Tensor {
        training ? forward(input, training: true) : predict(input)
    }

    private mutating func backward(_ outputGradient: Tensor, inputGradient: Bool) -> Tensor {
        var g = outputGradient, workspace = ConvWorkspace()
        for i in layers.indices.reversed() {
            backwardLayer(i, &g, inputGradient: inputGradient || i > 0, workspace: &workspace)
        }
        return g
    }

    // MARK: one layer

    /// Replaces `x` by the layer's output. Element-wise layers and batch norm write over their input when
    /// nothing else holds it (a layer caches its input only when its backward reads it).
    private mutating func forwardLayer(_ i: Int, _ x: inout Tensor, training: Bool, caching: Bool, workspace: inout ConvWorkspace) {
        let p = parameterOffsets[i]
        var cache = LayerCache()
        cache.training = training
        switch layers[i] {
        case let .linear(inputs, outputs):
            precondition(x.rank >= 2 && x.cols == inputs, "Network layer \(i): linear(\(inputs)→\(outputs)) got input \(x.shape)")
            cache.input = x
            x = NetworkKernels.linearForward(x, weight: parameters[p], bias: parameters[p + 1])
        case .relu:
            x.mapInPlace { Swift.max($0, 0) }
            cache.output = x
        case .sigmoid:
            NetworkKernels.sigmoid(&x)
            cache.output = x
        case let .reshape(shape):
            precondition(x.rank >= 1 && x.cols == shape.reduce(1, *), "Network layer \(i): cannot reshape \(x.shape) to [B] + \(shape)")
            cache.inputShape = x.shape
            x = x.reshaped([x.rows] + shape)
        case .flatten:
            cache.inputShape = x.shape
            x = x.reshaped([x.rows, x.cols])
        case let .conv2d(_, _, _, stride, padding):
            cache.input = x
            x = NetworkKernels.conv2dForward(x, weight: parameters[p], bias: parameters[p + 1],
                                             stride: stride, padding: padding, workspace: &workspace)
        case let .convTranspose2d(_, _, _, stride, padding, outputPadding):
            cache.input = x
            x = NetworkKernels.convTranspose2dForward(x, weight: parameters[p], bias: parameters[p + 1], stride: stride,
                                                      padding: padding, outputPadding: outputPadding, workspace: &workspace)
        case let .batchNorm(features, epsilon, momentum):
            precondition(x.rank >= 2 && x.shape[1] == features, "Network layer \(i): batchNorm(\(features)) got input \(x.shape)")
            var mean = runningStatistics[i][0], variance = runningStatistics[i][1]
            runningStatistics[i] = []  // so the kernel updates unshared buffers
            let r = NetworkKernels.batchNormForward(&x, gamma: parameters[p], beta: parameters[p + 1],
                                                    runningMean: &mean, runningVariance: &variance,
                                                    epsilon: epsilon, momentum: momentum, training: training)
            runningStatistics[i] = [mean, variance]
            cache.normalized = r.normalized
            cache.inverseStd = r.inverseStd
        }
        caches[i] = caching ? cache : LayerCache()
    }

    /// Replaces the layer's output gradient `gy` by its input gradient and releases the layer's cache.
    /// Without `inputGradient`, layers that can skip ∂/∂input leave an empty tensor.
    private mutating func backwardLayer(_ i: Int, _ gy: inout Tensor, inputGradient: Bool, workspace: inout ConvWorkspace) {
        let p = parameterOffsets[i]
        let cache = caches[i]
        caches[i] = LayerCache()
        // The layer's weight and bias gradients, moved out of the array while the kernel adds to them.
        var gw = Tensor(zeros: []), gb = Tensor(zeros: [])
        let hasParameters = !layers[i].parameterShapes.isEmpty
        if hasParameters {
            swap(&gw, &gradients[p])
            swap(&gb, &gradients[p + 1])
        }
        defer {
            if hasParameters {
                swap(&gw, &gradients[p])
                swap(&gb, &gradients[p + 1])
            }
        }
        switch layers[i] {
        case .linear:
            guard let x = cache.input else { preconditionFailure("Network.backward before forward (layer \(i))") }
            gy = NetworkKernels.linearBackward(x, weight: parameters[p], outputGradient: gy, weightGradient: &gw,
                                               biasGradient: &gb, inputGradient: inputGradient)
        case .relu:
            guard let y = cache.output else { preconditionFailure("Network.backward before forward (layer \(i))") }
            gy.update(with: y) { $1 > 0 ? $0 : 0 }
        case .sigmoid:
            guard let y = cache.output else { preconditionFailure("Network.backward before forward (layer \(i))") }
            gy.update(with: y) { $0 * $1 * (1 - $1) }
        case .reshape, .flatten:
            guard let shape = cache.inputShape else { preconditionFailure("Network.backward before forward (layer \(i))") }
            gy = gy.reshaped(shape)
        case let .conv2d(_, _, kernel, stride, padding):
            guard let x = cache.input else { preconditionFailure("Network.backward before forward (layer \(i))") }
            gy = NetworkKernels.conv2dBackward(x, weight: parameters[p], outputGradient: gy, kernel: kernel,
                                               stride: stride, padding: padding, weightGradient: &gw,
                                               biasGradient: &gb, workspace: &workspace)
        case let .convTranspose2d(_, _, _, stride, padding, _):
            guard let x = cache.input else { preconditionFailure("Network.backward before forward (layer \(i))") }
            gy = NetworkKernels.convTranspose2dBackward(x, weight: parameters[p], outputGradient: gy,
                                                        stride: stride, padding: padding, weightGradient: &gw,
                                                        biasGradient: &gb, workspace: &workspace)
        case .batchNorm:
            guard let xhat = cache.normalized else { preconditionFailure("Network.backward before forward (layer \(i))") }
            NetworkKernels.batchNormBackward(normalized: xhat, inverseStd: cache.inverseStd, gamma: parameters[p],
                                             gradient: &gy, training: cache.training,
                                             gammaGradient: &gw, betaGradient: &gb)
        }
    }

    // MARK: checkpoints

    /// The parameters' `state_dict` names (`<prefix><layer index>.weight`, `.bias`), in `parameters` order.
    public func parameterNames(prefix: String) -> [String] {
        layers.enumerated().flatMap { i, layer in layer.parameterNames.map { "\(prefix)\(i).\($0)" } }
    }

    /// The batch-norm running statistics under their `state_dict` names (the state beside the parameters).
    public func exportRunningStatistics(prefix: String) -> [String: Tensor] {
        exportState(prefix: prefix).filter { $0.key.hasSuffix(".running_mean") || $0.key.hasSuffix(".running_var") }
    }

    /// Parameters and batch-norm running statistics under PyTorch `state_dict` names:
    /// `<prefix><layer index>.weight`, `.bias`, `.running_mean`, `.running_var`.
    public func exportState(prefix: String) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (i, layer) in layers.enumerated() {
            for (k, name) in layer.parameterNames.enumerated() {
                out["\(prefix)\(i).\(name)"] = parameters[parameterOffsets[i] + k]
            }
            if runningStatistics[i].count == 2 {
                out["\(prefix)\(i).running_mean"] = runningStatistics[i][0]
                out["\(prefix)\(i).running_var"] = runningStatistics[i][1]
            }
        }
        return out
    }

    /// Restores what `exportState` wrote for the same architecture; throws `UnrollError.invalidCheckpoint`
    /// (naming the tensor) when one is missing, misshapen or non-finite, and then changes nothing.
    public mutating func restoreState(_ tensors: [String: Tensor], prefix: String) throws {
        func take(_ name: String, shape: [Int]) throws -> Tensor {
            guard let t = tensors[prefix + name] else {
                throw UnrollError.invalidCheckpoint("network tensor \(prefix)\(name) is missing")
            }
            guard t.shape == shape else {
                throw UnrollError.invalidCheckpoint("network tensor \(prefix)\(name) has shape \(t.shape), expected \(shape)")
            }
            guard !t.hasNonFinite else {
                throw UnrollError.invalidCheckpoint("network tensor \(prefix)\(name) holds NaN or infinity")
            }
            return t
        }
        var params = parameters, stats = runningStatistics
        for (i, layer) in layers.enumerated() {
            for (k, name) in layer.parameterNames.enumerated() {
                let j = parameterOffsets[i] + k
                params[j] = try take("\(i).\(name)", shape: params[j].shape)
            }
            if stats[i].count == 2 {
                stats[i][0] = try take("\(i).running_mean", shape: stats[i][0].shape)
                stats[i][1] = try take("\(i).running_var", shape: stats[i][1].shape)
            }
        }
        parameters = params
        runningStatistics = stats
    }
}
