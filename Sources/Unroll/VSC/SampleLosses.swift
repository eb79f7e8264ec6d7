import UnrollCore

/// The per-sample reconstruction loss shared by every VSC generator (linear dictionary or decoder
/// network): L_bj = mean_px(x_b − x̂_bj)² + klWeight·KL_b, for J decoded samples per signal.
enum SampleLosses {
    /// L_bj (row b·J + j) for signals `x` [B, m] and decoded samples [B·J, m].
    static func losses(signals x: Tensor, decoded: Tensor, samples: Int, kl: [Double], klWeight: Float) -> [Double] {
        let (n, m) = (x.rows, x.cols)
        precondition(decoded.rows == n * samples && decoded.count == n * samples * m && kl.count == n,
                     "sample losses: \(n) signals × \(samples) samples of \(m) pixels, got \(decoded.shape) and \(kl.count) KLs")
        var losses = [Double](repeating: 0, count: n * samples)
        decoded.data.withUnsafeBufferPointer { d in
            x.data.withUnsafeBufferPointer { xs in
                losses.withUnsafeMutableBufferPointer { losses in
                    nonisolated(unsafe) let losses = losses
                    // Each loss is one sequential sum; signals are independent, so they share the workers.
                    Parallel.forEachChunk(n, minPerPart: max(1, (1 << 16) / max(1, samples * m))) { signals in
                        for b in signals {
                            for j in 0..<samples {
                                let row = (b * samples + j) * m
                                var s = 0.0
                                for k in 0..<m {
                                    let r = Double(d[row + k] - xs[b * m + k])
                                    s += r * r
                                }
                                losses[b * samples + j] = s / Double(m) + Double(klWeight) * kl[b]
                            }
                        }
                    }
                }
            }
        }
        return losses
    }

    /// Σ_bj w_bj L_bj and Σ_bj w_bj (L_bj − klWeight·KL_b) (the weighted loss and reconstruction error, not yet / B).
    static func weightedSums(losses: [Double], weights: [Float], samples: Int, kl: [Double], klWeight: Float)
        -> (loss: Double, reconstruction: Double) {
        var loss = 0.0, reconstruction = 0.0
        for i in weights.indices where weights[i] != 0 {
            loss += Double(weights[i]) * losses[i]
            reconstruction += Double(weights[i]) * (losses[i] - Double(klWeight) * kl[i / samples])
        }
        return (loss, reconstruction)
    }

    /// Rows w_bj (x_b − x̂_bj) [B·J, m]: ∂loss/∂x̂_bj = −(2 / (B m))·this for loss = (1/B) Σ w L.
    static func weightedResiduals(signals x: Tensor, decoded: Tensor, weights: [Float], samples: Int) -> Tensor {
        let (n, m) = (x.rows, x.cols)
        precondition(decoded.count == n * samples * m, "weighted residuals: \(n) × \(samples) samples of \(m), got \(decoded.shape)")
        // Written into a new array: `decoded` is still the caller's, so writing over it would copy it first.
        let r = [Float].written(counts: [n * samples * m]) { out in
            x.data.withUnsafeBufferPointer { xs in
                decoded.data.withUnsafeBufferPointer { d in
                    nonisolated(unsafe) let r = out[0]
                    Parallel.forEachChunk(n, minPerPart: max(1, (1 << 16) / max(1, samples * m))) { signals in
                        for b in signals {
                            for j in 0..<samples {
                                let row = (b * samples + j) * m, wb = weights[b * samples + j]
                                for k in 0..<m { r[row + k] = wb * (xs[b * m + k] - d[row + k]) }
                            }
                        }
                    }
                }
            }
        }
        return Tensor(shape: [n * samples, m], data: r[0])
    }
}
