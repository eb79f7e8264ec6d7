import Foundation
import UnrollCore

/// How the step α of the unrolled layers is chosen.
public enum StepSize: Equatable, Sendable {
    /// A fixed α > 0 (PUDLE: 0.2 on the synthetic problems, 0.1 for images, 1 for MNIST).
    case fixed(Float)
    /// α = 1/L with L = ‖D‖₂² estimated by `iterations` power iterations from `seed`, recomputed
    /// for the current weights on every call (deterministic: the same weights give the same α).
    /// α is treated as a constant in the backward pass (no gradient through L).
    case inverseLipschitz(iterations: Int = 100, seed: UInt64 = 0)
}

/// Unrolled ISTA or FISTA: T layers from z₀ = 0, each a gradient step on ½‖x − Dz‖² followed by a
/// threshold (layer 3 of the design). The dictionary operator is the only weight.
///
///     ISTA   z_t = θ_t(z_{t−1} − α Dᵀ(D z_{t−1} − x))
///     FISTA  z_t = θ_t(y_t − α Dᵀ(D y_t − x)),  y_1 = 0,
///            y_{t+1} = z_t + μ_t (z_t − z_{t−1}),  μ_t = (s_t − 1)/s_{t+1},  s_1 = 1, s_{t+1} = (1 + √(1 + 4s_t²))/2
///
/// with θ_t the `threshold` at b_t = λ·β^(t−1)·α (soft kinds) or τ·β^(t−1) (hard). β = 1 (the
/// default of every call) is a constant λ; a trainer can lower β over training (PUDLE's AEdecay).
///
/// `forward` also returns an `EncoderTrace`, which `backward` consumes to give ∂L/∂W for a loss L of the
/// final codes. See docs/gradients.md for the derivation.
public struct UnrolledEncoder: Equatable, Sendable {
    public enum Algorithm: String, CaseIterable, Equatable, Sendable { case ista, fista }

    /// T, the number of layers (the iteration cap when `tolerance` is set).
    public var layers: Int
    public var algorithm: Algorithm
    public var threshold: Threshold
    /// λ of the soft thresholds (threshold λα), or τ of the hard threshold; scalar or per atom.
    public var lambda: Lambda
    public var step: StepSize
    /// When set, stop early once ‖z_t − z_{t−1}‖_F ≤ tolerance·‖z_t‖_F over the batch (an iterative
    /// solver rather than a fixed network; used by the alternating-minimisation baseline).
    public var tolerance: Float?
    /// With `tolerance`, stop every sample on its own: once its code changed by at most `tolerance`
    /// (relative) it is final, and the later layers skip it (inference only: `encode` and `solve`).
    public var stopsPerSample = false
    /// Soft kinds: λ is the lasso penalty and the layer threshold λα (PUDLE, the default), or λ is the
    /// threshold itself (CRsAE's per-filter biases b_c). The hard threshold's τ is always the threshold.
    public var lambdaIsPenalty: Bool
    /// Learned factors G_{t,j} ≥ 0 on the thresholds, `[layers, atoms]`: layer t's threshold of atom j is
    /// the above times G_{t,j} (CSCNet-style per-layer thresholds). nil: every factor is 1.
    public var layerGains: Tensor?

    public init(layers: Int, algorithm: Algorithm = .ista, threshold: Threshold = .soft,
                lambda: Lambda, step: StepSize, tolerance: Float? = nil, lambdaIsPenalty: Bool = true,
                layerGains: Tensor? = nil) {
        self.layerGains = layerGains
        self.layers = layers
        self.algorithm = algorithm
        self.threshold = threshold
        self.lambda = lambda
        self.step = step
        self.tolerance = tolerance
        self.lambdaIsPenalty = lambdaIsPenalty
    }

    /// Upper bounds on the work settings may ask for (a mistyped or hostile value must not hang a run).
    public static let maxLayers = 100_000
    public static let maxPowerIterations = 100_000

    /// Checks the settings that do not depend on an operator.
    public func validate() throws {
        if layers < 1 { throw UnrollError.invalidArgument("encoder layers T must be ≥ 1, got \(layers)") }
        if layers > Self.maxLayers { throw UnrollError.invalidArgument("encoder layers T must be ≤ \(Self.maxLayers), got \(layers)") }
        let name = threshold == .hard ? "hard threshold τ" : "encoder λ"
        for v in lambda.allValues where !(v.isFinite && v >= 0) {
            throw UnrollError.invalidArgument("\(name) must be finite and ≥ 0, got \(v)")
        }
        if case let .perAtom(v) = lambda, v.isEmpty {
            throw UnrollError.invalidArgument("per-atom \(name) needs one value per atom, got none")
        }
        switch step {
        case let .fixed(a):
            if !(a.isFinite && a > 0) { throw UnrollError.invalidArgument("encoder step α must be finite and > 0, got \(a)") }
        case let .inverseLipschitz(iterations, _):
            if iterations < 1 || iterations > Self.maxPowerIterations {
                throw UnrollError.invalidArgument("power iterations for α = 1/L must be in 1…\(Self.maxPowerIterations), got \(iterations)")
            }
        }
        if let tol = tolerance, !(tol.isFinite && tol >= 0) {
            throw UnrollError.invalidArgument("encoder tolerance must be finite and ≥ 0, got \(tol)")
        }
        if let g = layerGains {
            guard g.rank == 2, g.shape[0] == layers, g.shape[1] >= 1 else {
                throw UnrollError.shapeMismatch("layer gains must be [layers \(layers), atoms], got \(g.shape)")
            }
            guard g.data.allSatisfy({ $0.isFinite && $0 >= 0 }) else { throw UnrollError.invalidArgument("layer gains must be finite and ≥ 0") }
        }
    }

    /// Checks the settings against an operator (per-atom λ length).
    public func validate<Op: DictionaryOperator>(for op: Op) throws {
        try validate()
        if case let .perAtom(v) = lambda, v.count != op.atoms {
            throw UnrollError.shapeMismatch("per-atom λ has \(v.count) values but the dictionary has \(op.atoms) atoms")
        }
        if let g = layerGains, g.shape[1] != op.atoms {
            throw UnrollError.shapeMismatch("layer gains have \(g.shape[1]) atoms but the dictionary has \(op.atoms)")
        }
    }

    /// The step α these settings give for `op` (throws if 1/L is requested for a zero dictionary).
    public func stepSize<Op: DictionaryOperator>(for op: Op) throws -> Float {
        switch step {
        case let .fixed(a): return a
        case let .inverseLipschitz(iterations, seed):
            var rng = Random(seed: seed)
            let l = op.lipschitz(iterations: iterations, rng: &rng)
            guard l.isFinite, l > 0 else {
                throw UnrollError.invalidArgument("cannot set α = 1/L: the dictionary's ‖D‖₂² estimate is \(l)")
            }
            return 1 / l
        }
    }

    /// The codes z_T for a batch of signals (no trace kept). `analysis`: an untied encoder's separate
    /// analysis operator E (v = y − α Eᵀ(D y − x)); nil = tied (E = D).
    public func encode<Op: DictionaryOperator>(_ signals: Tensor, with op: Op, analysis: Op? = nil,
                                               beta: Float = 1) throws -> Tensor {
        try run(signals, op, analysis: analysis, beta: beta, record: false).codes
    }

    /// The codes z_T and the trace `backward` (or `EncoderTrace.gradients`) needs.
    public func forward<Op: DictionaryOperator>(_ signals: Tensor, with op: Op, analysis: Op? = nil,
                                                beta: Float = 1) throws -> (codes: Tensor, trace: EncoderTrace) {
        let r = try run(signals, op, analysis: analysis, beta: beta, record: true)
        return (r.codes, r.trace!)
    }

    /// Codes to the tolerance (the encoder as an iterative solver) and the iterations used.
    public func solve<Op: DictionaryOperator>(_ signals: Tensor, with op: Op) throws -> (codes: Tensor, iterations: Int) {
        let r = try run(signals, op, analysis: nil, beta: 1, record: false)
        return (r.codes, r.iterations)
    }

    /// ∂L/∂W through all layers, for ∂L/∂z_T = `codeGradient` (the gradient of the loss with respect to
    /// the returned codes). The decoder's own direct term is not included: the caller adds it
    /// (see `GradientMode.evaluate`).
    public func backward(_ trace: EncoderTrace, codeGradient: Tensor) -> Tensor {
        trace.backward(codeGradient: codeGradient)
    }

    // MARK: the layer loop

    /// Encodes with flush-to-zero on (denormals in the layer loops cost a microcode assist each),
    /// restoring the caller's setting afterwards. A tied encoder runs the operator's own loop when it has
    /// one (`unrolledLoop`: the dense dictionary's sparsity-aware fast path); every other case runs the
    /// generic layer loop over the operator's `makeLayerKernel`.
    func run<Op: DictionaryOperator>(_ signals: Tensor, _ op: Op, analysis: Op? = nil, beta: Float, record: Bool) throws
        -> (codes: Tensor, trace: EncoderTrace?, alpha: Float, iterations: Int)
    {
        try FlushDenormals.with(true) {
            try validate(for: op)
            if record && stopsPerSample && tolerance != nil {
                throw UnrollError.invalidArgument("per-sample stopping is for inference: a trace for the backward needs the same layers for every sample")
            }
            guard beta.isFinite, beta >= 0 else {
                throw UnrollError.invalidArgument("λ decay β must be finite and ≥ 0, got \(beta)")
            }
            if let analysis, analysis.weights.shape != op.weights.shape {
                throw UnrollError.shapeMismatch("the analysis operator's weights \(analysis.weights.shape) differ from the dictionary's \(op.weights.shape)")
            }
            let codeShape = try op.codeShape(signalShape: signals.shape)
            let alpha = try stepSize(for: op)
            let schedule = LayerSchedule(layers: layers, fista: algorithm == .fista, threshold: threshold,
                                         base: lambda.values(atoms: op.atoms), beta: beta, alpha: alpha,
                                         scaledByStep: threshold.scalesWithStep && lambdaIsPenalty, gains: layerGains?.data ?? [])
            if analysis == nil, let own = op.unrolledLoop(signals, encoder: self, schedule: schedule, alpha: alpha,
                                                           codeShape: codeShape, record: record) {
                return (own.codes, own.trace, alpha, own.iterations)
            }
            func kernel(_ signals: Tensor) -> any UnrolledLayerKernel {
                analysis.map { GenericLayerKernel(operator: op, analysis: $0, signals: signals, record: record) }
                    ?? op.makeLayerKernel(signals: signals, record: record)
            }
            let positions = op.positions(codeShape: codeShape)
            // Small codes: each part of the samples through every layer alone (`sampleParts`).
            guard let parts = sampleParts(codeShape) else {
                return genericLoop(kernel(signals), positions: positions, atoms: op.atoms,
                                   schedule: schedule, alpha: alpha, codeShape: codeShape, record: record)
            }
            return inParts(parts, signals, codeShape: codeShape) { rows, shape in
                genericLoop(kernel(rows), positions: positions, atoms: op.atoms,
                            schedule: schedule, alpha: alpha, codeShape: shape, record: record)
            }
        }
    }

    typealias LoopResult = (codes: Tensor, trace: EncoderTrace?, alpha: Float, iterations: Int)

    /// `loop(rows, codeShape)` on `parts` parts of the batch's samples, in parallel, each with one worker;
    /// the codes and traces put together in sample order.
    private func inParts(_ parts: Int, _ signals: Tensor, codeShape: [Int], _ loop: (Tensor, [Int]) -> LoopResult) -> LoopResult {
        let ranges = (0..<parts).map { p in (codeShape[0] * p / parts)..<(codeShape[0] * (p + 1) / parts) }
        var results = [LoopResult?](repeating: nil, count: parts)
        results.withUnsafeMutableBufferPointer { out in
            Parallel.forEachPart(parts, parts: parts) { p, _ in
                Parallel.serially {
                    var shape = codeShape
                    shape[0] = ranges[p].count
                    out[p] = loop(signals.rows(ranges[p]), shape)
                }
            }
        }
        let done = results.map { $0! }
        var codes = Tensor(zeros: codeShape)
        codes.data.withUnsafeMutableBufferPointer { c in
            var o = 0
            for r in done {
                r.codes.data.withUnsafeBufferPointer { (c.baseAddress! + o).update(from: $0.baseAddress!, count: $0.count) }
                o += r.codes.count
            }
        }
        let traces = done.compactMap(\.trace)
        let trace = traces.count == parts ? EncoderTrace(parts: traces, rows: ranges, codeShape: codeShape) : nil
        return (codes, trace, done[0].alpha, done.map(\.iterations).max()!)
    }

    /// Samples this many parts for the generic loop, or nil for one loop over the batch.
    ///
    /// The layer loop's products are split over the workers one product at a time, and each split is a
    /// parallel region whose helper joins about 40 µs after it starts. When a sample's codes are small
    /// (a training crop: 175 filters × 17² positions), a product takes about as long, and a 4-crop
    /// step at two threads ran only 1.3× faster than at one. Then each part runs all the layers for its
    /// own samples (one region for the forward, one for the backward), as the batch's samples do not
    /// meet inside the encoder. Not with a tolerance over the whole batch, which couples them.
    /// At one worker the batch runs as one loop, as before; with parts, the products have other shapes,
    /// so their sums round differently in the last bits (as when a product is split), the same at every run.
    private func sampleParts(_ codeShape: [Int]) -> Int? {
        let rows = codeShape[0], perSample = codeShape.dropFirst().reduce(1, *)
        let parts = min(Parallel.workers, rows)
        guard parts > 1, perSample <= Self.smallSampleCodes, tolerance == nil || stopsPerSample else { return nil }
        return parts
    }

    /// Code entries per sample up to which a batch is split by samples (`sampleParts`); larger codes (a
    /// whole image) make products long enough to split one by one, without the parts' imbalance.
    static let smallSampleCodes = 1 << 18

    private func genericLoop(_ kernel: any UnrolledLayerKernel, positions: Int, atoms: Int, schedule: LayerSchedule,
                             alpha: Float, codeShape: [Int], record: Bool)
        -> (codes: Tensor, trace: EncoderTrace?, alpha: Float, iterations: Int)
    {
        let fista = algorithm == .fista
        let perSample = codeShape.dropFirst().reduce(1, *)

        var v = Tensor(zeros: codeShape)
        var z = Tensor(zeros: codeShape)
        var zPrev = Tensor(zeros: codeShape)
        var y = Tensor(zeros: fista ? codeShape : [0])
        var b = [Float](repeating: 0, count: atoms)
        let history = record ? CodeHistory(rows: codeShape[0], width: perSample) : nil
        var used = 0
        // Per-sample stopping (as DenseUnrolledEngine's): a converged row keeps its code from then on.
        let rows = codeShape[0]
        let sampleTolerance = stopsPerSample ? tolerance : nil
        var done = [Bool](repeating: false, count: sampleTolerance == nil ? 0 : rows)
        var final = Tensor(zeros: sampleTolerance == nil ? [0] : codeShape)

        for t in 1...layers {
            b.withUnsafeMutableBufferPointer { schedule.thresholds(layer: t, into: $0.baseAddress!) }
            if t == 1 {
                kernel.gradientStep(layer: t, from: nil, alpha: alpha, into: &v)
            } else {
                kernel.gradientStep(layer: t, from: fista ? y : z, alpha: alpha, into: &v)
            }
            swap(&z, &zPrev)   // zPrev = z_{t−1}
            threshold.apply(v, thresholds: b, positions: positions, into: &z)
            if let history { z.data.withUnsafeBufferPointer { history.append(dense: $0.baseAddress!) } }
            used = t
            if fista { Self.extrapolate(z, zPrev, schedule.momentum[t - 1], into: &y) }
            if let tol = sampleTolerance {
                for i in 0..<rows where !done[i] {
                    let range = (i * perSample)..<((i + 1) * perSample)
                    if Self.relativeChange(z, zPrev, in: range) <= Double(tol) {
                        done[i] = true
                        final.data.replaceSubrange(range, with: z.data[range])
                    }
                }
                if !done.contains(false) { break }
            } else if let tol = tolerance, Self.relativeChange(z, zPrev, in: 0..<z.count) <= Double(tol) { break }
        }
        let trace = history.map {
            EncoderTrace(layers: used, codeShape: codeShape, alpha: alpha, schedule: schedule, history: $0,
                         backend: .kernel(kernel))
        }
        for i in 0..<done.count where done[i] {
            let range = (i * perSample)..<((i + 1) * perSample)
            z.data.replaceSubrange(range, with: final.data[range])
        }
        return (z, trace, alpha, used)
    }

    /// y = z + μ(z − zPrev)
    private static func extrapolate(_ z: Tensor, _ zPrev: Tensor, _ mu: Float, into y: inout Tensor) {
        z.data.withUnsafeBufferPointer { pz in
            zPrev.data.withUnsafeBufferPointer { pp in
                y.data.withUnsafeMutableBufferPointer { py in
                    for i in 0..<pz.count { py[i] = pz[i] + mu * (pz[i] - pp[i]) }
                }
            }
        }
    }

    /// ‖z − zPrev‖ / ‖z‖ over the entries `range` (0 when both are zero).
    private static func relativeChange(_ z: Tensor, _ zPrev: Tensor, in range: Range<Int>) -> Double {
        z.data.withUnsafeBufferPointer { pz in
            zPrev.data.withUnsafeBufferPointer { pp in
                var d = 0.0, n = 0.0
                for i in range {
                    let a = Double(pz[i]), e = a - Double(pp[i])
                    d += e * e
                    n += a * a
                }
                if d == 0 { return 0 }
                return n > 0 ? (d / n).squareRoot() : .infinity
            }
        }
    }
}
