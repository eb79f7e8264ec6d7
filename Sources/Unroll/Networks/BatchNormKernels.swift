import UnrollCore

/// Batch normalisation over every dimension but the second (`[B, C]` or `[B, C, H, W]`).
extension NetworkKernels {
    /// Training: x̂ = (x − mean)/√(var + ε) with the batch's mean and biased variance per channel, and the
    /// running statistics move by `momentum` towards the mean and the unbiased variance (PyTorch).
    /// Evaluation: the running statistics normalise. Writes y = γ·x̂ + β over x (its input is needed by
    /// nothing else, and a copy would be one more activation held at the peak); returns x̂ and 1/√(var + ε).
    static func batchNormForward(_ x: inout Tensor, gamma: Tensor, beta: Tensor, runningMean: inout Tensor,
                                 runningVariance: inout Tensor, epsilon: Float, momentum: Float,
                                 training: Bool) -> (normalized: Tensor, inverseStd: [Float]) {
        let (batch, channels) = (x.shape[0], x.shape[1])
        let plane = x.count / Swift.max(1, batch * channels), n = batch * plane
        precondition(!training || n > 1, "batchNorm: training needs more than one value per channel, got input \(x.shape)")
        var mean = [Float](repeating: 0, count: channels), inverseStd = mean
        var xhat = Tensor(zeros: x.shape)
        x.data.withUnsafeMutableBufferPointer { xp in
            for c in 0..<channels {
                if training {
                    var s = 0.0
                    for b in 0..<batch {
                        let row = xp.baseAddress! + (b * channels + c) * plane
                        for i in 0..<plane { s += Double(row[i]) }
                    }
                    let m = s / Double(n)
                    var ss = 0.0
                    for b in 0..<batch {
                        let row = xp.baseAddress! + (b * channels + c) * plane
                        for i in 0..<plane { let d = Double(row[i]) - m; ss += d * d }
                    }
                    let variance = ss / Double(n)
                    mean[c] = Float(m)
                    inverseStd[c] = Float(1 / (variance + Double(epsilon)).squareRoot())
                    let mo = Double(momentum)
                    runningMean.data[c] = Float((1 - mo) * Double(runningMean.data[c]) + mo * m)
                    runningVariance.data[c] = Float((1 - mo) * Double(runningVariance.data[c])
                                                    + mo * variance * Double(n) / Double(n - 1))
                } else {
                    mean[c] = runningMean.data[c]
                    inverseStd[c] = Float(1 / (Double(runningVariance.data[c]) + Double(epsilon)).squareRoot())
                }
            }
            gamma.data.withUnsafeBufferPointer { gp in
                beta.data.withUnsafeBufferPointer { bp in
                    xhat.data.withUnsafeMutableBufferPointer { hp in
                        for b in 0..<batch {
                            for c in 0..<channels {
                                let o = (b * channels + c) * plane
                                let (m, s, g, be) = (mean[c], inverseStd[c], gp[c], bp[c])
                                for i in o..<(o + plane) {
                                    let h = (xp[i] - m) * s
                                    hp[i] = h
                                    xp[i] = g * h + be
                                }
                            }
                        }
                    }
                }
            }
        }
        return (xhat, inverseStd)
    }

    /// Adds ∂/∂γ = Σ gy·x̂ and ∂/∂β = Σ gy, and writes ∂/∂x over gy: in training (batch statistics)
    /// γ/σ · (gy − mean(gy) − x̂·mean(gy·x̂)), in evaluation γ/σ · gy.
    static func batchNormBackward(normalized xhat: Tensor, inverseStd: [Float], gamma: Tensor, gradient gy: inout Tensor,
                                  training: Bool, gammaGradient: inout Tensor, betaGradient: inout Tensor) {
        precondition(gy.shape == xhat.shape, "batchNorm backward: output gradient \(gy.shape), expected \(xhat.shape)")
        let (batch, channels) = (gy.shape[0], gy.shape[1])
        let plane = gy.count / Swift.max(1, batch * channels), n = Double(batch * plane)
        gy.data.withUnsafeMutableBufferPointer { gp in
            xhat.data.withUnsafeBufferPointer { hp in
                for c in 0..<channels {
                    var sg = 0.0, sgh = 0.0
                    for b in 0..<batch {
                        let o = (b * channels + c) * plane
                        for i in o..<(o + plane) {
                            sg += Double(gp[i])
                            sgh += Double(gp[i]) * Double(hp[i])
                        }
                    }
                    gammaGradient.data[c] += Float(sgh)
                    betaGradient.data[c] += Float(sg)
                    let scale = gamma.data[c] * inverseStd[c]
                    let (mg, mgh) = training ? (Float(sg / n), Float(sgh / n)) : (0, 0)
                    for b in 0..<batch {
                        let o = (b * channels + c) * plane
                        for i in o..<(o + plane) { gp[i] = scale * (gp[i] - mg - hp[i] * mgh) }
                    }
                }
            }
        }
    }
}
