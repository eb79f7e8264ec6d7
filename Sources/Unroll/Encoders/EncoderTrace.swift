import UnrollCore

/// What one forward pass of `UnrolledEncoder` keeps for its backward pass.
///
/// The backward needs, per layer t, the threshold's mask 1{z_t ≠ 0} (the derivative of every
/// threshold kind on its support; the hard threshold's jump contributes no term) and the layer input
/// y_t (for the weight gradient), plus the FISTA momentum coefficients μ_t and the operator's layer
/// kernel. All of these follow from the layer outputs z_1 … z_T: y_t = z_{t−1} (ISTA) or
/// (1 + μ_{t−1}) z_{t−1} − μ_{t−1} z_{t−2} (FISTA). So the trace stores z_t, which are sparse after the
/// first layers; a sparse store changes only `layerCodes` and the mask loop.
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
    /// z_1 … z_T, concatenated.
    let codes: [Float]
    /// The operator's layer kernel (caches for these weights and signals; accumulates ∂L/∂W).
    let kernel: any UnrolledLayerKernel

    init(layers: Int, codeShape: [Int], alpha: Float, algorithm: UnrolledEncoder.Algorithm,
         momentum: [Float], codes: [Float], kernel: any UnrolledLayerKernel) {
        self.layers = layers
        self.codeShape = codeShape
        self.alpha = alpha
        self.algorithm = algorithm
        self.momentum = momentum
        self.codes = codes
        self.kernel = kernel
    }

    /// z_t (t = 1 … layers) as a tensor.
    public func layerCodes(_ t: Int) -> Tensor {
        precondition(t >= 1 && t <= layers, "layer \(t) out of 1...\(layers)")
        let n = codeShape.reduce(1, *)
        return Tensor(shape: codeShape, data: Array(codes[((t - 1) * n)..<(t * n)]))
    }

    /// ∂L/∂W summed over the layers, given ∂L/∂z_T.
    ///
    /// Going back from t = T: a_t = ∂L/∂z_t (complete), g_t = 1{z_t ≠ 0} ⊙ a_t = ∂L/∂v_t, the kernel adds
    /// layer t's weight term and gives ∂L/∂y_t, which flows to z_{t−1} (ISTA), or to z_{t−1} with
    /// weight 1 + μ_{t−1} and to z_{t−2} with weight −μ_{t−1} (FISTA).
    func backward(codeGradient: Tensor) -> Tensor {
        FlushDenormals.with(true) { backwardLoop(codeGradient: codeGradient) }
    }

    private func backwardLoop(codeGradient: Tensor) -> Tensor {
        precondition(codeGradient.shape == codeShape,
                     "code gradient shape \(codeGradient.shape) differs from the codes' \(codeShape)")
        let n = codeShape.reduce(1, *)
        let fista = algorithm == .fista
        kernel.resetAccumulation()

        var a = codeGradient                              // a_t
        var aPartial = Tensor(zeros: codeShape)           // FISTA: part of a_{t−1} already known
        var g = Tensor(zeros: codeShape)
        var y = Tensor(zeros: codeShape)
        var dy = Tensor(zeros: codeShape)

        codes.withUnsafeBufferPointer { zs in
            for t in stride(from: layers, through: 1, by: -1) {
                let zt = zs.baseAddress! + (t - 1) * n
                // g_t = mask_t ⊙ a_t (bit select: branch-free, so it vectorises)
                a.data.withUnsafeBufferPointer { pa in
                    g.data.withUnsafeMutableBufferPointer { pg in
                        for i in 0..<n {
                            let keep: UInt32 = zt[i] != 0 ? .max : 0
                            pg[i] = Float(bitPattern: pa[i].bitPattern & keep)
                        }
                    }
                }
                if t == 1 {
                    kernel.backwardStep(g: g, y: nil, alpha: alpha, inputGradient: &dy, wantInputGradient: false)
                    break
                }
                // y_t from the stored outputs
                let z1 = zs.baseAddress! + (t - 2) * n
                let mu = fista ? momentum[t - 2] : 0
                y.data.withUnsafeMutableBufferPointer { py in
                    if mu == 0 {
                        py.baseAddress!.update(from: z1, count: n)
                    } else if t == 2 {                       // z_0 = 0
                        for i in 0..<n { py[i] = (1 + mu) * z1[i] }
                    } else {
                        let z2 = zs.baseAddress! + (t - 3) * n
                        for i in 0..<n { py[i] = (1 + mu) * z1[i] - mu * z2[i] }
                    }
                }
                kernel.backwardStep(g: g, y: y, alpha: alpha, inputGradient: &dy, wantInputGradient: true)
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
            }
        }
        return kernel.accumulatedWeightGradient()
    }
}
