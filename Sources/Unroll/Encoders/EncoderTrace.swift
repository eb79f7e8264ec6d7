import UnrollCore

/// What one forward pass of `UnrolledEncoder` keeps for its backward pass.
///
/// The backward needs, per layer t, the threshold's mask 1{z_t ≠ 0} (the derivative of every
/// threshold kind on its support; the hard threshold's jump contributes no term) and the layer input
/// y_t (for the weight gradient), plus the FISTA momentum coefficients μ_t. All of these follow from
/// the layer outputs z_1 … z_T: y_t = z_{t−1} (ISTA) or z_{t−1} + μ_{t−1}(z_{t−1} − z_{t−2}) (FISTA).
/// So the trace stores the z_t, compactly: per layer a bitmask of the non-zeros and their values
/// (`CodeHistory`), not T dense code matrices.
public struct EncoderTrace {
    /// Layers actually run (T, or fewer when the encoder's tolerance stopped it early).
    public let layers: Int
    /// Shape of one layer's code batch.
    public let codeShape: [Int]
    /// The step α used.
    public let alpha: Float
    public let algorithm: UnrolledEncoder.Algorithm
    /// FISTA's μ_t for t = 1 … layers (empty for ISTA).
    public let momentum: [Float]
    /// z_1 … z_T.
    let history: CodeHistory
    let schedule: LayerSchedule
    let backend: Backend

    /// Who runs the backward pass.
    enum Backend {
        /// The generic layer loop with an operator's layer kernel (which accumulates ∂L/∂W).
        case kernel(any UnrolledLayerKernel)
        /// The dense dictionary's fast path, with the signals of the forward pass.
        case dense(DenseUnrolledEngine, signals: Tensor)
        /// A batch encoded in parts of its samples (`UnrolledEncoder.sampleParts`): each part's trace and rows.
        case parts([EncoderTrace], rows: [Range<Int>])
    }

    init(layers: Int, codeShape: [Int], alpha: Float, schedule: LayerSchedule, history: CodeHistory, backend: Backend) {
        self.layers = layers
        self.codeShape = codeShape
        self.alpha = alpha
        self.algorithm = schedule.fista ? .fista : .ista
        self.momentum = Array(schedule.momentum.prefix(layers))
        self.schedule = schedule
        self.history = history
        self.backend = backend
    }

    /// The trace of a batch encoded in parts: `history` holds the parts' layers one after the other.
    init(parts: [EncoderTrace], rows: [Range<Int>], codeShape: [Int]) {
        let first = parts[0]
        let history = CodeHistory(rows: codeShape[0], width: first.history.width)
        for t in 1...first.layers { history.append(concatenating: parts.map { $0.history.layers[t - 1] }) }
        self.init(layers: first.layers, codeShape: codeShape, alpha: first.alpha, schedule: first.schedule,
                  history: history, backend: .parts(parts, rows: rows))
    }

    /// z_t (t = 1 … layers) as a tensor.
    public func layerCodes(_ t: Int) -> Tensor {
        precondition(t >= 1 && t <= layers, "layer \(t) out of 1...\(layers)")
        return history.dense(layer: t).reshaped(codeShape)
    }

    /// Bytes held for the codes of all layers (masks, offsets, non-zero values). The dense equivalent is
    /// 4·layers·(entries of `codeShape`).
    public var storedCodeBytes: Int { history.bytes }

    /// What the dense fast path did (nil for the generic layer loop).
    public var fastPath: FastPathReport? {
        guard case let .dense(engine, _) = backend else { return nil }
        return FastPathReport(form: engine.form.rawValue, forwardDense: engine.forwardDense,
                              forwardLayersInRuns: engine.forwardLayersInRuns,
                              backwardDense: engine.backwardDense, backwardWeightTerms: engine.backwardWeightTerms,
                              backwardLayersInRuns: engine.backwardLayersInRuns,
                              backwardTermsInRowBlocks: engine.backwardTermsInRowBlocks)
    }

    /// ∂L/∂W summed over the layers, given ∂L/∂z_T (tied encoders).
    func backward(codeGradient: Tensor) -> Tensor {
        gradients(codeGradient: codeGradient).weights!
    }

    /// The gradients of a loss L of z_T, given ∂L/∂z_T: with respect to the weights (`weights`; untied,
    /// the residual operator's and the analysis operator's separately) and to the per-atom λ (`lambda`;
    /// the generic layer loop only: the dense fast path gives nil).
    ///
    /// Going back from t = T: a_t = ∂L/∂z_t (complete), g_t = 1{z_t ≠ 0} ⊙ a_t = ∂L/∂v_t, the layer adds
    /// its weight term and gives ∂L/∂y_t, which flows to z_{t−1} (ISTA), or to z_{t−1} with
    /// weight 1 + μ_{t−1} and to z_{t−2} with weight −μ_{t−1} (FISTA). Layer t's threshold b_{t,j} =
    /// λ_j·β^(t−1)·scale moves z_t by −sign(z_t) on its support (soft and non-negative; the hard
    /// threshold's jump has no such term), so ∂L/∂λ_j = −Σ_t β^(t−1)·scale·G_{t,j}·Σ sign(z_t)·a_t over atom j
    /// (G: the layer gains, 1 without), and ∂L/∂G_{t,j} = −λ_j·β^(t−1)·scale·Σ sign(z_t)·a_t.
    public func gradients(codeGradient: Tensor, weights: Bool = true, lambda: Bool = false) -> EncoderGradients {
        precondition(codeGradient.shape == codeShape,
                     "code gradient shape \(codeGradient.shape) differs from the codes' \(codeShape)")
        return FlushDenormals.with(true) {
            switch backend {
            case let .kernel(kernel):
                return kernelBackward(kernel, codeGradient: codeGradient, weights: weights, lambda: lambda)
            case let .dense(engine, signals):
                guard weights else { return EncoderGradients(weights: nil, analysis: nil, lambda: nil) }
                let w = engine.backward(history: history, signals: signals, schedule: schedule, alpha: alpha,
                                        codeGradient: codeGradient)
                return EncoderGradients(weights: w, analysis: nil, lambda: nil)
            case let .parts(traces, rows):
                var results = [EncoderGradients?](repeating: nil, count: traces.count)
                results.withUnsafeMutableBufferPointer { out in
                    Parallel.forEachPart(traces.count, parts: traces.count) { p, _ in
                        Parallel.serially {
                            out[p] = traces[p].gradients(codeGradient: codeGradient.rows(rows[p]), weights: weights, lambda: lambda)
                        }
                    }
                }
                return EncoderGradients(summing: results.map { $0! })
            }
        }
    }

    /// The generic backward: dense tensors per layer, the kernel does the products. For small codes (a
    /// one-crop step, whose products are too short to split one by one) the weight and λ terms go to a
    /// lane beside the chain of input gradients (`Parallel.withLane`).
    private func kernelBackward(_ kernel: any UnrolledLayerKernel, codeGradient: Tensor, weights: Bool,
                                lambda: Bool) -> EncoderGradients {
        let n = codeShape.reduce(1, *)
        let sums = Parallel.withLane(beside: n <= UnrolledEncoder.smallSampleCodes) { lane in
            kernelBackward(kernel, codeGradient: codeGradient, weights: weights, lambda: lambda, n: n, lane: lane)
        }
        return sums()
    }

    private func kernelBackward(_ kernel: any UnrolledLayerKernel, codeGradient: Tensor, weights: Bool,
                                lambda: Bool, n: Int, lane: Lane) -> () -> EncoderGradients {
        let fista = algorithm == .fista
        kernel.resetAccumulation()
        let atoms = schedule.base.count
        let positions = atoms > 0 ? n / codeShape[0] / atoms : 0
        var lambdaGradient = [Double](repeating: 0, count: lambda ? atoms : 0)
        let gains = !schedule.gains.isEmpty
        var gainGradient = [Double](repeating: 0, count: lambda && gains ? schedule.gains.count : 0)

        var a = codeGradient                              // a_t
        var aPartial = Tensor(zeros: codeShape)           // FISTA: part of a_{t−1} already known
        var g = Tensor(zeros: codeShape)
        var y = Tensor(zeros: codeShape)
        var dy = Tensor(zeros: codeShape)
        // z_t, z_{t−1}, decoded once each as the loop moves down.
        var zt = layerCodes(layers)
        var z1: Tensor? = layers >= 2 ? layerCodes(layers - 1) : nil

        for t in stride(from: layers, through: 1, by: -1) {
            // g_t = mask_t ⊙ a_t (bit select: branch-free, so it vectorises)
            zt.data.withUnsafeBufferPointer { pz in
                a.data.withUnsafeBufferPointer { pa in
                    g.data.withUnsafeMutableBufferPointer { pg in
                        for i in 0..<n {
                            let keep: UInt32 = pz[i] != 0 ? .max : 0
                            pg[i] = Float(bitPattern: pa[i].bitPattern & keep)
                        }
                    }
                }
            }
            if lambda && schedule.threshold != .hard {
                let factor = Double(schedule.thresholdFactor(layer: t))
                lane.run { [zt, g] in
                    zt.data.withUnsafeBufferPointer { pz in
                        g.data.withUnsafeBufferPointer { pg in
                            self.signedSums(layer: t, z: pz.baseAddress!, g: pg.baseAddress!, positions: positions) { q, s in
                                let j = q % atoms
                                lambdaGradient[j] += factor * Double(self.schedule.gain(layer: t, atom: j)) * s
                                if gains { gainGradient[(t - 1) * atoms + j] += factor * Double(self.schedule.base[j]) * s }
                            }
                        }
                    }
                }
            }
            if t == 1 {
                kernel.backwardStep(layer: t, g: g, y: nil, alpha: alpha, inputGradient: &dy, wantInputGradient: false,
                                    accumulate: weights, lane: lane)
                break
            }
            let z2: Tensor? = t >= 3 ? layerCodes(t - 2) : nil
            // y_t from the stored outputs, as the forward formed it
            let mu = schedule.inputMomentum(layer: t)
            z1!.data.withUnsafeBufferPointer { p1 in
                y.data.withUnsafeMutableBufferPointer { py in
                    if !fista {
                        py.baseAddress!.update(from: p1.baseAddress!, count: n)
                    } else if let z2 {
                        z2.data.withUnsafeBufferPointer { p2 in
                            for i in 0..<n { py[i] = p1[i] + mu * (p1[i] - p2[i]) }
                        }
                    } else {                                 // z_0 = 0
                        for i in 0..<n { py[i] = p1[i] + mu * (p1[i] - 0) }
                    }
                }
            }
            kernel.backwardStep(layer: t, g: g, y: y, alpha: alpha, inputGradient: &dy, wantInputGradient: true,
                                accumulate: weights, lane: lane)
            if !fista {
                swap(&a, &dy)                            // a_{t−1} = ∂L/∂y_t
            } else {
                // a_{t−1} = aPartial + (1 + μ) dy ; new aPartial (for z_{t−2}) = −μ dy
                a.data.withUnsafeMutableBufferPointer { pa in
                    aPartial.data.withUnsafeMutableBufferPointer { pp in
                        dy.data.withUnsafeBufferPointer { pd in
                            for i in 0..<n {
                                pa[i] = pp[i] + (1 + mu) * pd[i]
                                pp[i] = -mu * pd[i]
                            }
                        }
                    }
                }
            }
            zt = z1!
            z1 = z2
        }
        // The sums are read once the lane is done (when `withLane` has returned): its tasks add to them.
        return {
            EncoderGradients(weights: weights ? kernel.accumulatedWeightGradient() : nil,
                             analysis: weights ? kernel.accumulatedAnalysisGradient() : nil,
                             lambda: lambda ? lambdaGradient.map { Float($0) } : nil,
                             layerGains: lambda && gains ? Tensor(shape: [self.schedule.layers, atoms], data: gainGradient.map { Float($0) }) : nil)
        }
    }
}

extension EncoderTrace {
    /// For each block q of `positions` consecutive code entries (one atom of one sample) that holds a
    /// non-zero of z_t: `body(q, s)` with s = −Σ sign(z)·g over the block's non-zeros, summed in index
    /// order, blocks in increasing q. Walks the set bits of layer t's mask instead of testing every
    /// entry: at the densities of image codes (10–40 %) a branch per entry mispredicted on a large
    /// share of them, and the blocks without a non-zero (s = +0) add nothing.
    @inline(__always)
    func signedSums(layer t: Int, z: UnsafePointer<Float>, g: UnsafePointer<Float>, positions: Int,
                    _ body: (Int, Double) -> Void) {
        let codes = history.layers[t - 1], (words, width) = (history.words, history.width)
        for r in 0..<history.rows {
            let mask = codes.mask + r * words, (zr, gr) = (z + r * width, g + r * width)
            var (block, blockEnd, s) = (-1, 0, 0.0)
            for k in 0..<words {
                var bits = mask[k]
                while bits != 0 {
                    let i = k << 6 | bits.trailingZeroBitCount
                    bits &= bits &- 1
                    if i >= blockEnd {
                        if block >= 0 { body(r * (width / positions) + block, s) }
                        block = i / positions
                        blockEnd = (block + 1) * positions
                        s = 0
                    }
                    // −sign(z)·g as g with z's sign bit flipped in: no branch on the sign either.
                    s -= Double(Float(bitPattern: gr[i].bitPattern ^ (zr[i].bitPattern & 0x8000_0000)))
                }
            }
            if block >= 0 { body(r * (width / positions) + block, s) }
        }
    }
}

/// What `EncoderTrace.gradients` returns.
public struct EncoderGradients {
    /// ∂L/∂W of the operator inside the residual (tied: the only one); nil when not asked for.
    public var weights: Tensor?
    /// ∂L/∂E of an untied encoder's analysis operator; nil when tied or not asked for.
    public var analysis: Tensor?
    /// ∂L/∂λ_j per atom; nil when not asked for (or on the dense fast path).
    public var lambda: [Float]?
    /// ∂L/∂G_{t,j} `[layers, atoms]` of the encoder's layer gains, with `lambda` when it has gains.
    public var layerGains: Tensor? = nil
}

extension EncoderGradients {
    /// The gradients of a batch from those of its parts, added in part order (λ's in double precision).
    init(summing parts: [EncoderGradients]) {
        func sum(_ terms: [Tensor?]) -> Tensor? {
            guard var total = terms.first ?? nil else { return nil }
            for t in terms.dropFirst() { total.add(t!) }
            return total
        }
        var lambda: [Float]?
        if let first = parts[0].lambda {
            var s = [Double](repeating: 0, count: first.count)
            for p in parts { for (j, v) in p.lambda!.enumerated() { s[j] += Double(v) } }
            lambda = s.map { Float($0) }
        }
        self.init(weights: sum(parts.map(\.weights)), analysis: sum(parts.map(\.analysis)), lambda: lambda,
                  layerGains: sum(parts.map(\.layerGains)))
    }
}
