import UnrollCore

/// A dense dictionary stored atoms-as-rows: `weights` W has shape `[p, m]` (p atoms of length m),
/// decoding is X̂ = Z·W and the adjoint is R·Wᵀ. In the papers' notation D = Wᵀ (m × p).
public struct DenseDictionary: DictionaryOperator, Equatable {
    /// p random unit-norm Gaussian atoms of length m drawn from `seed` (`unroll train --atoms P --seed S`
    /// and the Python estimators draw the same).
    public static func random(atoms p: Int, signalSize m: Int, seed: UInt64) -> DenseDictionary {
        var rng = Random(seed: seed)
        var initRng = rng.split()
        return DenseDictionary(atoms: p, signalSize: m, rng: &initRng)
    }

    /// W, `[p, m]`. Assigning a tensor of another shape is a programming error (traps).
    public var weights: Tensor {
        didSet {
            precondition(weights.shape == oldValue.shape,
                         "DenseDictionary weights must keep shape \(oldValue.shape), got \(weights.shape)")
        }
    }

    /// How unrolled encoders run this dictionary: by default the sparsity-aware fast path with every
    /// choice left to its cost model (see `DenseLayerPolicy`).
    public var layerPolicy: DenseLayerPolicy = .automatic

    /// Wraps `weights` (`[p, m]`, atoms as rows). Throws for a non-matrix, an empty one, or NaN/Inf.
    public init(weights: Tensor) throws {
        guard weights.rank == 2, weights.shape[0] > 0, weights.shape[1] > 0 else {
            throw UnrollError.shapeMismatch("dense dictionary must be a non-empty [atoms, signal size] matrix, got shape \(weights.shape)")
        }
        guard !weights.hasNonFinite else {
            throw UnrollError.nonFinite("dense dictionary weights contain NaN or Inf")
        }
        self.weights = weights
    }

    /// p random atoms of length m: Gaussian entries, each atom scaled to unit norm.
    public init(atoms p: Int, signalSize m: Int, rng: inout Random) {
        precondition(p > 0 && m > 0, "DenseDictionary needs p > 0 and m > 0")
        var w = Tensor.normal([p, m], rng: &rng)
        w.normalizeRows()
        self.weights = w
    }

    /// Number of atoms p.
    public var atoms: Int { weights.shape[0] }
    /// Atom length m (signal dimension).
    public var signalSize: Int { weights.shape[1] }

    public func codeShape(signalShape: [Int]) throws -> [Int] {
        guard signalShape.count == 2, signalShape[1] == signalSize else {
            throw UnrollError.shapeMismatch("signals must be [batch, \(signalSize)] for a dictionary with atoms of length \(signalSize), got \(signalShape)")
        }
        return [signalShape[0], atoms]
    }

    public func signalShape(codeShape: [Int]) throws -> [Int] {
        guard codeShape.count == 2, codeShape[1] == atoms else {
            throw UnrollError.shapeMismatch("codes must be [batch, \(atoms)] for a dictionary of \(atoms) atoms, got \(codeShape)")
        }
        return [codeShape[0], signalSize]
    }

    /// Z·W; over the non-zeros only when the codes are sparse enough (`LayerCostModel.prefersDense`).
    public func apply(_ codes: Tensor) -> Tensor {
        Self.isSparse(codes) ? codes.sparseMatmul(weights) : codes.matmul(weights)
    }

    public func adjoint(_ signals: Tensor) -> Tensor {
        signals.matmul(weights, transposeOther: true)
    }

    /// Zᵀ·R, `[p, m]`.
    public func weightGradient(residual: Tensor, codes: Tensor) -> Tensor {
        Self.isSparse(codes) ? codes.sparseTransposedMatmul(residual) : codes.matmul(residual, transposeSelf: true)
    }

    /// Whether products with these codes are cheaper on the non-zeros.
    private static func isSparse(_ codes: Tensor) -> Bool {
        guard codes.rank == 2, codes.count > 0 else { return false }
        return !LayerCostModel.prefersDense(nonZeros: codes.count - codes.zeroCount(), rows: codes.rows, inner: codes.cols)
    }

    public mutating func normalize() {
        weights.normalizeRows()
    }

    public func lipschitz(iterations: Int, rng: inout Random) -> Float {
        powerIteration(codeShape: [1, atoms], iterations: iterations, rng: &rng)
    }

    public func makeLayerKernel(signals: Tensor, record: Bool) -> any UnrolledLayerKernel {
        GramLayerKernel(weights: weights, signals: signals)
    }

    /// Samples per chunk when encoding without a trace: the workspaces of one chunk (a few code
    /// matrices of `chunk × p`) stay in the last-level cache across all the layers.
    static func inferenceChunk(atoms p: Int) -> Int { max(256, (1 << 20) / max(1, p)) }

    /// The sparsity-aware fast path (`DenseUnrolledEngine`), unless `layerPolicy` turns it off.
    public func unrolledLoop(_ signals: Tensor, encoder: UnrolledEncoder, schedule: LayerSchedule, alpha: Float,
                             codeShape: [Int], record: Bool) -> (codes: Tensor, trace: EncoderTrace?, iterations: Int)? {
        guard layerPolicy.fastPath else { return nil }
        let (batch, p, layers) = (signals.rows, atoms, encoder.layers)
        let chunk = max(1, layerPolicy.inferenceChunk ?? Self.inferenceChunk(atoms: p))
        // Samples are independent, so inference (no trace, no batch-wide stopping rule) runs in chunks.
        let perSample = encoder.stopsPerSample && encoder.tolerance != nil
        if !record && (encoder.tolerance == nil || perSample) && batch > chunk {
            let engine = DenseUnrolledEngine(weights: weights, policy: layerPolicy, batch: chunk,
                                             layers: layers, training: false)
            var codes = Tensor(zeros: codeShape)
            var iterations = 0
            for start in stride(from: 0, to: batch, by: chunk) {
                let end = min(batch, start + chunk)
                let part = engine.forward(signals.rows(start..<end), schedule: schedule, alpha: alpha,
                                          tolerance: encoder.tolerance, perSample: perSample, record: false)
                iterations = max(iterations, part.layers)
                codes.data.withUnsafeMutableBufferPointer { pc in
                    part.codes.data.withUnsafeBufferPointer { pp in
                        (pc.baseAddress! + start * p).update(from: pp.baseAddress!, count: pp.count)
                    }
                }
            }
            return (codes, nil, iterations)
        }
        let engine = DenseUnrolledEngine(weights: weights, policy: layerPolicy, batch: batch,
                                         layers: layers, training: record)
        let r = engine.forward(signals, schedule: schedule, alpha: alpha, tolerance: encoder.tolerance, perSample: perSample,
                               record: record)
        let trace = r.history.map {
            EncoderTrace(layers: r.layers, codeShape: codeShape, alpha: alpha, schedule: schedule, history: $0,
                         backend: .dense(engine, signals: signals))
        }
        return (r.codes, trace, r.layers)
    }
}

/// The dense dictionary's straightforward layer kernel in Gram form (the generic layer loop uses it when
/// `layerPolicy.fastPath` is off; the fast path is `DenseUnrolledEngine`), with G = W·Wᵀ (`[p, p]`) and C = X·Wᵀ cached:
///   forward   v = y − α(y·G − C)
///   backward  ∂L/∂y = g − α g·G, and the layer's weight term
///             −α[gᵀ(yW − X) + yᵀ(gW)] = −α(gᵀy + yᵀg)·W + α gᵀX
/// is accumulated as A = Σ α gᵀy (`[p, p]`) and S = Σ α g (`[B, p]`), so that at the end
/// ∂L/∂W = −(A + Aᵀ)·W + Sᵀ·X: two products per layer, both on codes (sparse after a few layers).
public final class GramLayerKernel: UnrolledLayerKernel {
    let weights: Tensor
    let signals: Tensor
    let gram: Tensor
    let dataTerm: Tensor
    var codeOuter: Tensor      // A = Σ α gᵀy
    var codeSum: Tensor        // S = Σ α g

    public init(weights: Tensor, signals: Tensor) {
        let p = weights.shape[0]
        self.weights = weights
        self.signals = signals
        var g = Tensor(zeros: [p, p])
        GEMM.gemm(weights, weights, transposeB: true, into: &g)
        gram = g
        var c = Tensor(zeros: [signals.rows, p])
        GEMM.gemm(signals, weights, transposeB: true, into: &c)
        dataTerm = c
        codeOuter = Tensor(zeros: [p, p])
        codeSum = Tensor(zeros: [signals.rows, p])
    }

    public func gradientStep(layer t: Int, from y: Tensor?, alpha: Float, into v: inout Tensor) {
        if v.shape != dataTerm.shape { v = Tensor(zeros: dataTerm.shape) }
        guard let y else {
            GEMM.copy(dataTerm, into: &v)
            v.mapInPlace { alpha * $0 }
            return
        }
        GEMM.copy(y, into: &v)
        GEMM.axpy(alpha, dataTerm, &v)
        GEMM.gemm(y, gram, alpha: -alpha, beta: 1, into: &v)
    }

    public func backwardStep(layer t: Int, g: Tensor, y: Tensor?, alpha: Float, inputGradient: inout Tensor,
                             wantInputGradient: Bool, accumulate: Bool, lane: Lane) {
        if accumulate {
            lane.run { [self] in
                GEMM.axpy(alpha, g, &codeSum)
                if let y { GEMM.gemm(g, transposeA: true, y, alpha: alpha, beta: 1, into: &codeOuter) }
            }
        }
        if wantInputGradient {
            if inputGradient.shape != g.shape { inputGradient = Tensor(zeros: g.shape) }
            GEMM.copy(g, into: &inputGradient)
            GEMM.gemm(g, gram, alpha: -alpha, beta: 1, into: &inputGradient)
        }
    }

    public func resetAccumulation() {
        codeOuter.mapInPlace { _ in 0 }
        codeSum.mapInPlace { _ in 0 }
    }

    public func accumulatedWeightGradient() -> Tensor {
        let symmetric = codeOuter + codeOuter.transposed()
        var dW = Tensor(zeros: weights.shape)
        GEMM.gemm(symmetric, weights, alpha: -1, beta: 0, into: &dW)
        GEMM.gemm(codeSum, transposeA: true, signals, alpha: 1, beta: 1, into: &dW)
        return dW
    }
}
