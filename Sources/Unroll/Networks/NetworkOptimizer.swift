import UnrollCore

/// One `Optimizer` per parameter tensor of a `Network` (all with the same settings).
public struct NetworkOptimizer: Equatable, Sendable {
    public var optimizers: [Optimizer]

    /// Copies of `template` for each of `network`'s parameters.
    public init(_ template: Optimizer, for network: Network) {
        optimizers = Array(repeating: template, count: network.parameters.count)
    }

    /// Copies of `template` for `count` tensors.
    public init(_ template: Optimizer, count: Int) {
        optimizers = Array(repeating: template, count: count)
    }

    /// The learning rate of every optimizer (set by a schedule before each step).
    public var learningRate: Float {
        get { optimizers.first?.learningRate ?? 0 }
        set { for i in optimizers.indices { optimizers[i].learningRate = newValue } }
    }

    public func validate() throws {
        for o in optimizers { try o.validate() }
    }

    /// Whether every optimizer's moments are finite.
    public var isFinite: Bool { optimizers.allSatisfy(\.isFinite) }

    /// One update of every tensor along its gradient.
    public mutating func step(_ parameters: inout [Tensor], gradients: [Tensor]) {
        precondition(parameters.count == optimizers.count && gradients.count == optimizers.count,
                     "NetworkOptimizer: \(optimizers.count) optimizers, \(parameters.count) parameters, \(gradients.count) gradients")
        for i in optimizers.indices {
            optimizers[i].step(&parameters[i], gradient: gradients[i])
        }
    }

    /// One update of the network's parameters along its accumulated gradients.
    public mutating func step(_ network: inout Network) {
        var p = network.parameters
        step(&p, gradients: network.gradients)
        network.parameters = p
    }

    /// Every optimizer's state under `<prefix><index>.`.
    public func exportState(prefix: String) -> (tensors: [String: Tensor], metadata: [String: String]) {
        var tensors: [String: Tensor] = [:], metadata: [String: String] = [:]
        for (i, o) in optimizers.enumerated() {
            let s = o.exportState(prefix: "\(prefix)\(i).")
            tensors.merge(s.tensors) { a, _ in a }
            metadata.merge(s.metadata) { a, _ in a }
        }
        return (tensors, metadata)
    }

    /// Restores what `exportState` wrote, for parameters of the given shapes.
    public mutating func restoreState(tensors: [String: Tensor], metadata: [String: String], shapes: [[Int]],
                                      prefix: String) throws {
        precondition(shapes.count == optimizers.count, "NetworkOptimizer: \(optimizers.count) optimizers, \(shapes.count) shapes")
        var restored = optimizers
        for i in restored.indices {
            try restored[i].restoreState(tensors: tensors, metadata: metadata, weightShape: shapes[i], prefix: "\(prefix)\(i).")
        }
        optimizers = restored
    }
}
