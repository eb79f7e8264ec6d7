import UnrollCore

/// The encoder's linear heads (one per `EncoderOutputs` field the family uses) on the trunk's features.
enum EncoderHeads {
    /// Heads in `EncoderOutputs` order: mean, log-scale, then α and β logits (learned threshold) or
    /// the spike logit (spike-and-slab).
    static func make(features: Int, latents: Int, variational v: VariationalConfig, rng: inout Random) -> [Network] {
        let count = 2 + (v.learnsThreshold ? 2 : 0) + (v.family == .spikeAndSlab ? 1 : 0)
        return (0..<count).map { _ in Network(.linear(inputs: features, outputs: latents), rng: &rng) }
    }

    static func forward(_ heads: inout [Network], _ h: Tensor, variational v: VariationalConfig, training: Bool) -> EncoderOutputs {
        var out = [Tensor]()
        for i in heads.indices { out.append(heads[i].run(h, training: training)) }
        var result = EncoderOutputs(mean: out[0], logScale: out[1])
        if v.learnsThreshold {
            result.alphaLogit = out[2]
            result.betaLogit = out[3]
        }
        if v.family == .spikeAndSlab { result.spikeLogit = out[2] }
        return result
    }

    /// Backpropagates ∂L/∂outputs through the heads' last `forward`; returns ∂L/∂features.
    static func backward(_ heads: inout [Network], _ g: EncoderOutputs, variational v: VariationalConfig) -> Tensor {
        var parts = [g.mean, g.logScale]
        if v.learnsThreshold { parts += [g.alphaLogit!, g.betaLogit!] }
        if v.family == .spikeAndSlab { parts.append(g.spikeLogit!) }
        var features: Tensor?
        for i in heads.indices {
            let gi = heads[i].backward(parts[i])
            if features == nil { features = gi } else { features!.add(gi) }
        }
        return features!
    }
}

extension EncoderOutputs {
    /// Adds `other` head by head (heads absent on either side stay as they are).
    mutating func add(_ other: EncoderOutputs) {
        mean.add(other.mean)
        logScale.add(other.logScale)
        if let o = other.alphaLogit { alphaLogit?.add(o) }
        if let o = other.betaLogit { betaLogit?.add(o) }
        if let o = other.spikeLogit { spikeLogit?.add(o) }
    }
}
