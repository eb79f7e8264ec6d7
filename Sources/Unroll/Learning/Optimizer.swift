import CUnrollSupport
import Foundation
import UnrollCore

/// A first-order optimizer for one weight tensor: SGD (optionally with momentum, optionally Nesterov) or
/// Adam, with the same update rules as PyTorch's `torch.optim.SGD` (dampening 0) and `torch.optim.Adam`,
/// including their L2 `weight_decay` (g ← g + wd·w before the momentum / moments).
///
/// Its state (moment buffers and step count) is exported as named tensors plus string metadata for
/// checkpoints, and restored bit-exactly.
public struct Optimizer: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        /// buf ← μ·buf + g (buf = g on the first step); w ← w − lr·buf. μ = 0 is plain SGD.
        /// Nesterov: w ← w − lr·(g + μ·buf) instead (needs μ > 0).
        case sgd(momentum: Float, nesterov: Bool = false)
        /// m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
        /// w ← w − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε).
        /// PUDLE uses ε = 1e-8 for the theory runs and 1e-3 for the baselines and denoising.
        case adam(beta1: Float, beta2: Float, epsilon: Float)
    }

    public var kind: Kind
    public var learningRate: Float
    /// L2 penalty folded into the gradient (PyTorch's `weight_decay`): g ← g + wd·w. 0 disables it.
    public var weightDecay: Float = 0
    /// Updates taken so far (Adam's t).
    public private(set) var steps: Int = 0
    /// SGD momentum buffer, or Adam's first moment m.
    public private(set) var first: Tensor?
    /// Adam's second moment v.
    public private(set) var second: Tensor?

    public init(_ kind: Kind, learningRate: Float, weightDecay: Float = 0) {
        self.kind = kind
        self.learningRate = learningRate
        self.weightDecay = weightDecay
    }

    public static func sgd(learningRate: Float, momentum: Float = 0, nesterov: Bool = false,
                           weightDecay: Float = 0) -> Optimizer {
        Optimizer(.sgd(momentum: momentum, nesterov: nesterov), learningRate: learningRate, weightDecay: weightDecay)
    }

    public static func adam(learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999,
                            epsilon: Float = 1e-8, weightDecay: Float = 0) -> Optimizer {
        Optimizer(.adam(beta1: beta1, beta2: beta2, epsilon: epsilon), learningRate: learningRate, weightDecay: weightDecay)
    }

    /// Checks the hyper-parameters (thrown `UnrollError.invalidArgument`).
    public func validate() throws {
        guard learningRate.isFinite, learningRate > 0 else {
            throw UnrollError.invalidArgument("learning rate must be finite and > 0, got \(learningRate)")
        }
        guard weightDecay.isFinite, weightDecay >= 0 else {
            throw UnrollError.invalidArgument("weight decay must be finite and ≥ 0, got \(weightDecay)")
        }
        switch kind {
        case let .sgd(momentum, nesterov):
            guard momentum.isFinite, momentum >= 0, momentum < 1 else {
                throw UnrollError.invalidArgument("SGD momentum must be in [0, 1), got \(momentum)")
            }
            guard !nesterov || momentum > 0 else {
                throw UnrollError.invalidArgument("Nesterov SGD needs a momentum > 0, got \(momentum)")
            }
        case let .adam(b1, b2, eps):
            guard b1.isFinite, b1 >= 0, b1 < 1 else {
                throw UnrollError.invalidArgument("Adam β1 must be in [0, 1), got \(b1)")
            }
            guard b2.isFinite, b2 >= 0, b2 < 1 else {
                throw UnrollError.invalidArgument("Adam β2 must be in [0, 1), got \(b2)")
            }
            guard eps.isFinite, eps > 0 else {
                throw UnrollError.invalidArgument("Adam ε must be finite and > 0, got \(eps)")
            }
        }
    }

    /// Whether the moment buffers hold only finite values (an overflowing gradient makes Adam's v infinite).
    public var isFinite: Bool {
        !(first?.hasNonFinite ?? false) && !(second?.hasNonFinite ?? false)
    }

    /// Forgets the moments and the step count.
    public mutating func reset() {
        steps = 0
        first = nil
        second = nil
    }

    /// What a step wrote, for the trainer's divergence checks without another pass over the tensors.
    public struct StepSummary: Equatable, Sendable {
        /// The largest magnitude among the updated weights: NaN when one is NaN, ∞ when one is infinite.
        public var largestWeight: Float
        /// Whether the moment buffers hold only finite values (an overflowing gradient makes Adam's v infinite).
        public var stateIsFinite: Bool
    }

    /// One update of `weights` along `gradient` (same shape).
    ///
    /// The step writes new weight and moment arrays instead of updating them in place: the trainer keeps
    /// the previous ones (a failed step loses nothing), so in place would first copy them.
    @discardableResult
    public mutating func step(_ weights: inout Tensor, gradient: Tensor) -> StepSummary {
        precondition(weights.shape == gradient.shape, "optimizer: weights \(weights.shape) vs gradient \(gradient.shape)")
        steps += 1
        let lr = learningRate, n = weights.count
        var w1 = [Float](), m1 = [Float](), v1 = [Float]()
        var largest: (weight: UInt32, state: UInt32) = (0, 0)
        switch kind {
        case let .sgd(momentum, nesterov):
            let buffered = momentum != 0, decay = weightDecay, m0 = first?.data
            (w1, m1, _, largest) = Self.update(weights.data, gradient.data, m0, nil, count: n, outputs: buffered ? 2 : 1) {
                o, w, g, m, _, wOut, mOut, _, lw, ls in
                unroll_sgd_update(o.count, w + o.lowerBound, g + o.lowerBound, m.map { $0 + o.lowerBound }, decay, momentum,
                                  nesterov, -lr, -lr * momentum, wOut + o.lowerBound, mOut.map { $0 + o.lowerBound }, lw, ls)
            }
            if buffered { first = Tensor(shape: weights.shape, data: m1) }
        case let .adam(b1, b2, eps):
            let t = Double(steps)
            let bc1 = 1 - pow(Double(b1), t), bc2 = 1 - pow(Double(b2), t)
            let stepSize = Float(Double(lr) / bc1), bc2Sqrt = Float(bc2.squareRoot())
            let (c1, c2) = (1 - b1, 1 - b2)
            var decayed = gradient
            if weightDecay != 0 { decayed.add(weights, scaledBy: weightDecay) }
            let zeros = first == nil ? [Float](repeating: 0, count: n) : []
            let (m0, v0) = (first?.data ?? zeros, second?.data ?? zeros)
            (w1, m1, v1, largest) = Self.update(weights.data, decayed.data, m0, v0, count: n, outputs: 3) {
                o, w, g, m, v, wOut, mOut, vOut, lw, ls in
                unroll_adam_update(o.count, w + o.lowerBound, g + o.lowerBound, m! + o.lowerBound, v! + o.lowerBound,
                                   b1, c1, b2, c2, stepSize, bc2Sqrt, eps,
                                   wOut + o.lowerBound, mOut! + o.lowerBound, vOut! + o.lowerBound, lw, ls)
            }
            first = Tensor(shape: weights.shape, data: m1)
            second = Tensor(shape: weights.shape, data: v1)
        }
        weights.data = w1
        return StepSummary(largestWeight: Float(bitPattern: largest.weight),
                           stateIsFinite: Float(bitPattern: largest.state).isFinite)
    }

    /// Runs an update kernel over `count` elements in parts on the workers, writing `outputs` new arrays
    /// (the weights, then the first and second moments; empty when not written), and returns them with the
    /// largest magnitudes the parts reported (bit patterns, as the kernels give them).
    private static func update(
        _ w: [Float], _ g: [Float], _ m: [Float]?, _ v: [Float]?, count n: Int, outputs: Int,
        _ kernel: (Range<Int>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>?, UnsafePointer<Float>?,
                   UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?,
                   UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<UInt32>) -> Void
    ) -> (w: [Float], m: [Float], v: [Float], largest: (weight: UInt32, state: UInt32)) {
        guard n > 0 else { return ([], [], [], (0, 0)) }
        func pointer(_ a: [Float]?, _ body: (UnsafePointer<Float>?) -> Void) {
            guard let a else { return body(nil) }
            a.withUnsafeBufferPointer { body($0.baseAddress) }
        }
        let parts = max(1, min(Parallel.workers, n / (1 << 16)))
        var largest = [UInt32](repeating: 0, count: 2 * parts)
        let out = [Float].written(counts: (0..<3).map { $0 < outputs ? n : 0 }) { out in
            pointer(w) { w in pointer(g) { g in pointer(m) { m in pointer(v) { v in
                largest.withUnsafeMutableBufferPointer { slots in
                    nonisolated(unsafe) let (w, g, m, v, slots) = (w!, g!, m, v, slots)
                    // nil for a moment not written (an empty buffer may still have an address).
                    nonisolated(unsafe) let (wOut, mOut, vOut) = (out[0].baseAddress!, outputs > 1 ? out[1].baseAddress : nil,
                                                                  outputs > 2 ? out[2].baseAddress : nil)
                    Parallel.forEachPart(n, parts: parts) { part, range in
                        kernel(range, w, g, m, v, wOut, mOut, vOut, slots.baseAddress! + 2 * part,
                               slots.baseAddress! + 2 * part + 1)
                    }
                }
            } } } }
        }
        let weight = stride(from: 0, to: 2 * parts, by: 2).map { largest[$0] }.max()!
        let state = stride(from: 1, to: 2 * parts, by: 2).map { largest[$0] }.max()!
        return (out[0], out[1], out[2], (weight, state))
    }

    // MARK: checkpoint state

    /// The state as named tensors (`<prefix>first`, `<prefix>second` when present) and metadata
    /// (`<prefix>kind`, `<prefix>steps`, `<prefix>learning_rate`, `<prefix>weight_decay` and the kind's
    /// hyper-parameters).
    public func exportState(prefix: String = "optimizer.") -> (tensors: [String: Tensor], metadata: [String: String]) {
        var tensors: [String: Tensor] = [:]
        if let first { tensors[prefix + "first"] = first }
        if let second { tensors[prefix + "second"] = second }
        var meta: [String: String] = [prefix + "steps": String(steps), prefix + "learning_rate": learningRate.description,
                                      prefix + "weight_decay": weightDecay.description]
        switch kind {
        case let .sgd(momentum, nesterov):
            meta[prefix + "kind"] = "sgd"
            meta[prefix + "momentum"] = momentum.description
            meta[prefix + "nesterov"] = String(nesterov)
        case let .adam(b1, b2, eps):
            meta[prefix + "kind"] = "adam"
            meta[prefix + "beta1"] = b1.description
            meta[prefix + "beta2"] = b2.description
            meta[prefix + "epsilon"] = eps.description
        }
        return (tensors, meta)
    }

    /// Restores the moments and step count written by `exportState` into an optimizer of the same kind
    /// (hyper-parameters stay as configured). Throws `UnrollError.invalidCheckpoint` on a mismatch.
    public mutating func restoreState(tensors: [String: Tensor], metadata: [String: String],
                                      weightShape: [Int], prefix: String = "optimizer.") throws {
        let kindName: String
        switch kind {
        case .sgd: kindName = "sgd"
        case .adam: kindName = "adam"
        }
        guard let saved = metadata[prefix + "kind"], saved == kindName else {
            throw UnrollError.invalidCheckpoint("\(prefix)kind is \(metadata[prefix + "kind"] ?? "missing"), expected \(kindName)")
        }
        guard let s = metadata[prefix + "steps"].flatMap({ Int($0) }), s >= 0 else {
            throw UnrollError.invalidCheckpoint("\(prefix)steps is missing or not a non-negative integer")
        }
        func tensor(_ name: String) throws -> Tensor? {
            guard let t = tensors[prefix + name] else { return nil }
            guard t.shape == weightShape else {
                throw UnrollError.invalidCheckpoint("\(prefix)\(name) has shape \(t.shape), expected \(weightShape)")
            }
            return t
        }
        let f = try tensor("first"), sec = try tensor("second")
        if case .adam = kind, s > 0, f == nil || sec == nil {
            throw UnrollError.invalidCheckpoint("Adam state after \(s) steps needs \(prefix)first and \(prefix)second")
        }
        steps = s
        first = f
        second = sec
    }
}
