import UnrollCore

/// Batch normalisation over every dimension but the second (`[B, C]` or `[B, C, H, W]`).
///
/// Each channel's sums run in Double over the batch, then the plane, in that order. Channels are
/// independent: they are shared out over the workers, and four at a time go through the lanes of one
/// `SIMD4<Double>` (a lane adds exactly as a scalar does), so four dependency chains overlap where one
/// waited on each add. The sums, and so the results, are those of one channel at a time.
extension NetworkKernels {
    /// Runs `body(c0, lanes)` for the groups of ≤ 4 channels, groups split over the workers when the
    /// tensor is large enough to pay for the hand-off.
    private static func channelGroups(_ channels: Int, valuesPerChannel: Int, _ body: (Int, Int) -> Void) {
        let groups = (channels + 3) / 4
        Parallel.forEachChunk(groups, minPerPart: Swift.max(1, (1 << 16) / Swift.max(1, 4 * valuesPerChannel))) { range in
            for group in range { body(4 * group, Swift.min(4, channels - 4 * group)) }
        }
    }

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
        let mo = Double(momentum)
        x.data.withUnsafeMutableBufferPointer { xb in
        xhat.data.withUnsafeMutableBufferPointer { hb in
        mean.withUnsafeMutableBufferPointer { mb in
        inverseStd.withUnsafeMutableBufferPointer { sb in
        runningMean.data.withUnsafeMutableBufferPointer { rmb in
        runningVariance.data.withUnsafeMutableBufferPointer { rvb in
        gamma.data.withUnsafeBufferPointer { gp in
        beta.data.withUnsafeBufferPointer { bp in
            let (xp, hp, mp, sp, rm, rv) = (xb.baseAddress!, hb.baseAddress!, mb.baseAddress!, sb.baseAddress!,
                                            rmb.baseAddress!, rvb.baseAddress!)
            channelGroups(channels, valuesPerChannel: n) { c0, lanes in
                // Lane j reads channel c0 + j, or the group's last channel when j ≥ lanes.
                let step = (0..<4).map { Swift.min($0, lanes - 1) * plane }
                let (d1, d2, d3) = (step[1], step[2], step[3])
                func load(_ p: UnsafeMutablePointer<Float>, _ k: Int) -> SIMD4<Double> {
                    SIMD4(Double(p[k]), Double(p[k + d1]), Double(p[k + d2]), Double(p[k + d3]))
                }
                if training {
                    var s = SIMD4<Double>(repeating: 0)
                    for b in 0..<batch {
                        let o = (b * channels + c0) * plane
                        for i in o..<(o + plane) { s += load(xp, i) }
                    }
                    let m = s / Double(n)
                    var ss = SIMD4<Double>(repeating: 0)
                    for b in 0..<batch {
                        let o = (b * channels + c0) * plane
                        for i in o..<(o + plane) { let d = load(xp, i) - m; ss += d * d }
                    }
                    let variance = ss / Double(n)
                    for j in 0..<lanes {
                        let c = c0 + j
                        mp[c] = Float(m[j])
                        sp[c] = Float(1 / (variance[j] + Double(epsilon)).squareRoot())
                        rm[c] = Float((1 - mo) * Double(rm[c]) + mo * m[j])
                        rv[c] = Float((1 - mo) * Double(rv[c]) + mo * variance[j] * Double(n) / Double(n - 1))
                    }
                } else {
                    for c in c0..<(c0 + lanes) {
                        mp[c] = rm[c]
                        sp[c] = Float(1 / (Double(rv[c]) + Double(epsilon)).squareRoot())
                    }
                }
                for b in 0..<batch {
                    for c in c0..<(c0 + lanes) {
                        let o = (b * channels + c) * plane
                        let (m, s, g, be) = (mp[c], sp[c], gp[c], bp[c])
                        for i in o..<(o + plane) {
                            let h = (xp[i] - m) * s
                            hp[i] = h
                            xp[i] = g * h + be
                        }
                    }
                }
            }
        }}}}}}}}
        return (xhat, inverseStd)
    }

    /// Adds ∂/∂γ = Σ gy·x̂ and ∂/∂β = Σ gy, and writes ∂/∂x over gy: in training (batch statistics)
    /// γ/σ · (gy − mean(gy) − x̂·mean(gy·x̂)), in evaluation γ/σ · gy.
    static func batchNormBackward(normalized xhat: Tensor, inverseStd: [Float], gamma: Tensor, gradient gy: inout Tensor,
                                  training: Bool, gammaGradient: inout Tensor, betaGradient: inout Tensor) {
        precondition(gy.shape == xhat.shape, "batchNorm backward: output gradient \(gy.shape), expected \(xhat.shape)")
        let (batch, channels) = (gy.shape[0], gy.shape[1])
        let plane = gy.count / Swift.max(1, batch * channels), n = Double(batch * plane)
        gy.data.withUnsafeMutableBufferPointer { gb in
        xhat.data.withUnsafeBufferPointer { hb in
        gammaGradient.data.withUnsafeMutableBufferPointer { ggb in
        betaGradient.data.withUnsafeMutableBufferPointer { gbb in
        gamma.data.withUnsafeBufferPointer { gammaP in
        inverseStd.withUnsafeBufferPointer { sp in
            let (gp, hp, gg, gbeta) = (gb.baseAddress!, hb.baseAddress!, ggb.baseAddress!, gbb.baseAddress!)
            channelGroups(channels, valuesPerChannel: batch * plane) { c0, lanes in
                let step = (0..<4).map { Swift.min($0, lanes - 1) * plane }
                let (d1, d2, d3) = (step[1], step[2], step[3])
                var sg = SIMD4<Double>(repeating: 0), sgh = SIMD4<Double>(repeating: 0)
                for b in 0..<batch {
                    let o = (b * channels + c0) * plane
                    for i in o..<(o + plane) {
                        let g = SIMD4(Double(gp[i]), Double(gp[i + d1]), Double(gp[i + d2]), Double(gp[i + d3]))
                        let h = SIMD4(Double(hp[i]), Double(hp[i + d1]), Double(hp[i + d2]), Double(hp[i + d3]))
                        sg += g
                        sgh += g * h
                    }
                }
                for j in 0..<lanes {
                    let c = c0 + j
                    gg[c] += Float(sgh[j])
                    gbeta[c] += Float(sg[j])
                    let scale = gammaP[c] * sp[c]
                    let (mg, mgh) = training ? (Float(sg[j] / n), Float(sgh[j] / n)) : (0, 0)
                    for b in 0..<batch {
                        let o = (b * channels + c) * plane
                        for i in o..<(o + plane) { gp[i] = scale * (gp[i] - mg - hp[i] * mgh) }
                    }
                }
            }
        }}}}}}
    }
}
