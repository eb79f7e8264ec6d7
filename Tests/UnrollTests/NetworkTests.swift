import Foundation
import Testing
import Unroll
import UnrollCore

/// Network layers against central finite differences of a Double loss Σ r·y and against naive loops;
/// the optimizers' Nesterov and weight-decay variants against the update formulas; the one-cycle schedule.
@Suite struct NetworkTests {
    /// Σ r·y in Double.
    static func loss(_ net: Network, _ x: Tensor, _ r: Tensor, training: Bool) -> Double {
        var n = net
        let y = n.forward(x, training: training)
        precondition(y.shape == r.shape)
        return zip(y.data, r.data).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }

    /// ‖a − b‖ / max(‖b‖, 1e-2): relative, but a gradient that is exactly zero (a bias before batch
    /// norm) is compared in absolute terms against the differences' Float rounding noise.
    static func relativeError(_ a: [Double], _ b: [Double]) -> Double {
        let d = zip(a, b).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
        let n = b.reduce(0.0) { $0 + $1 * $1 }.squareRoot()
        return d / max(n, 1e-2)
    }

    /// Checks ∂(Σ r·y)/∂x and ∂/∂(every parameter) of `net` at `x` against central differences.
    static func checkGradients(_ net: Network, input x: Tensor, step h: Float = 1e-2, tolerance: Double = 1e-2,
                               training: Bool = true, seed: UInt64 = 99, _ label: String) {
        var rng = Random(seed: seed)
        var n = net
        let y = n.forward(x, training: training)
        let r = Tensor.normal(y.shape, rng: &rng)
        n.zeroGradients()
        _ = n.forward(x, training: training)
        let gx = n.backward(r)
        #expect(gx.shape == x.shape, "\(label): input gradient shape \(gx.shape) vs \(x.shape)")
        #expect(gx.norm() > 1e-2, "\(label): the input gradient is (almost) zero, so the check would be vacuous")
        // Input.
        var fdx = [Double](repeating: 0, count: x.count)
        for i in 0..<x.count {
            var xp = x, xm = x
            xp.data[i] += h
            xm.data[i] -= h
            fdx[i] = (loss(net, xp, r, training: training) - loss(net, xm, r, training: training)) / Double(2 * h)
        }
        let ex = relativeError(doubles(gx), fdx)
        #expect(ex < tolerance, "\(label): input gradient relative error \(ex)")
        // Parameters.
        for j in net.parameters.indices {
            var fd = [Double](repeating: 0, count: net.parameters[j].count)
            for i in fd.indices {
                var np = net, nm = net
                np.parameters[j].data[i] += h
                nm.parameters[j].data[i] -= h
                fd[i] = (loss(np, x, r, training: training) - loss(nm, x, r, training: training)) / Double(2 * h)
            }
            let e = relativeError(doubles(n.gradients[j]), fd)
            #expect(e < tolerance, "\(label): parameter \(j) \(net.parameters[j].shape) gradient relative error \(e)")
        }
    }

    // MARK: dense layers

    @Test func linearForwardIsXWTransposePlusBias() {
        var rng = Random(seed: 1)
        var net = Network(.linear(inputs: 5, outputs: 3), rng: &rng)
        let x = Tensor.normal([4, 5], rng: &rng)
        let y = net.forward(x, training: true)
        let (w, b) = (net.parameters[0], net.parameters[1])
        #expect(w.shape == [3, 5] && b.shape == [3] && y.shape == [4, 3])
        for r in 0..<4 {
            for o in 0..<3 {
                var s = Double(b.data[o])
                for i in 0..<5 { s += Double(x[r, i]) * Double(w[o, i]) }
                #expect(abs(Double(y[r, o]) - s) < 1e-5)
            }
        }
    }

    @Test func mlpHasTheRequestedLayersAndPyTorchInitialisation() {
        var rng = Random(seed: 2)
        let net = Network.mlp(sizes: [16, 32, 8], finalActivation: false, rng: &rng)
        #expect(net.layers == [.linear(inputs: 16, outputs: 32), .relu, .linear(inputs: 32, outputs: 8)])
        let withFinal = Network.mlp(sizes: [16, 32, 8], finalActivation: true, rng: &rng)
        #expect(withFinal.layers.last == .relu && withFinal.layers.count == 4)
        #expect(net.parameters.map(\.shape) == [[32, 16], [32], [8, 32], [8]])
        #expect(net.parameterCount == 32 * 16 + 32 + 8 * 32 + 8)
        // U(−1/√fanIn, 1/√fanIn) for weights and biases: inside the bound, and spread over it.
        for (j, fanIn) in [16, 16, 32, 32].enumerated() {
            let bound = 1 / Float(fanIn).squareRoot(), t = net.parameters[j]
            #expect(t.data.allSatisfy { abs($0) <= bound })
            #expect(t.max() > 0.7 * bound && t.min() < -0.7 * bound)
        }
    }

    @Test func linearReluSigmoidAndMLPMatchFiniteDifferences() {
        var rng = Random(seed: 3)
        let x = Tensor.normal([4, 6], rng: &rng)
        Self.checkGradients(Network(.linear(inputs: 6, outputs: 5), rng: &rng), input: x, "linear")
        // Inputs kept ≥ 0.1 away from ReLU's kink.
        let away = x.map { $0 >= 0 ? $0 + 0.1 : $0 - 0.1 }
        Self.checkGradients(Network(.relu, rng: &rng), input: away, "relu")
        Self.checkGradients(Network(.sigmoid, rng: &rng), input: x.map { 3 * $0 }, "sigmoid")
        Self.checkGradients(Network.mlp(sizes: [6, 8, 7, 3], finalActivation: false, rng: &rng), input: x, step: 1e-3, "mlp")
        Self.checkGradients(Network([.linear(inputs: 6, outputs: 4), .sigmoid, .linear(inputs: 4, outputs: 2)], rng: &rng),
                            input: x, "linear-sigmoid-linear")
    }

    @Test func backwardAccumulatesAndZeroGradientsClears() {
        var rng = Random(seed: 4)
        var net = Network.mlp(sizes: [3, 4, 2], finalActivation: false, rng: &rng)
        let x = Tensor.normal([5, 3], rng: &rng), g = Tensor.normal([5, 2], rng: &rng)
        _ = net.forward(x, training: true)
        _ = net.backward(g)
        let once = net.gradients
        _ = net.forward(x, training: true)
        _ = net.backward(g)
        for (a, b) in zip(net.gradients, once) {
            #expect(zip(a.data, b.data).allSatisfy { abs($0 - 2 * $1) <= 1e-6 * max(1, abs($1)) })
        }
        #expect(once.contains { $0.norm() > 0 })
        net.zeroGradients()
        #expect(net.gradients.allSatisfy { $0.norm() == 0 })
        // Parameter gradients alone (no ∂/∂input) are the same.
        _ = net.forward(x, training: true)
        net.accumulateParameterGradients(g)
        #expect(net.gradients == once)
        // predict is evaluation mode and leaves the caches alone.
        let y = net.forward(x, training: true)
        #expect(net.predict(x) == y)
        _ = net.backward(g)
        #expect(zip(net.gradients, once).allSatisfy { zip($0.data, $1.data).allSatisfy { abs($0 - 2 * $1) <= 1e-6 * max(1, abs($1)) } })
    }

    /// The layers write over their inputs and gradients where nothing else holds them: the caller's
    /// tensors, and a copy of the network taken before a step, must not change.
    @Test func inPlaceLayersLeaveCallersTensorsAndCopiesAlone() {
        var rng = Random(seed: 12)
        var net = Network([.relu, .batchNorm(features: 3), .sigmoid, .conv2d(inChannels: 3, outChannels: 2, kernel: 2),
                           .batchNorm(features: 2), .relu], rng: &rng)
        let x = Tensor.normal([4, 3, 5, 5], rng: &rng), g = Tensor.normal([4, 2, 4, 4], rng: &rng)
        let (xBefore, gBefore) = (x.data, g.data)
        let saved = net
        let y = net.forward(x, training: true)
        let gx = net.backward(g)
        #expect(x.data == xBefore && g.data == gBefore)
        // The copy taken before the step computes the same step.
        var again = saved
        #expect(again.forward(x, training: true) == y)
        #expect(again.backward(g) == gx)
        #expect(again.gradients == net.gradients)
        #expect(x.data.contains { $0 < 0 } && gx.norm() > 0)
    }

    // MARK: convolutions

    /// PyTorch conv2d (cross-correlation, zero padding) plus bias by direct loops.
    static func naiveConv2d(_ x: Tensor, _ w: Tensor, _ b: Tensor, stride s: Int, padding p: Int) -> Tensor {
        let (batch, cin, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (cout, k) = (w.shape[0], w.shape[2])
        let ho = (h + 2 * p - k) / s + 1, wo = (wd + 2 * p - k) / s + 1
        var y = Tensor(zeros: [batch, cout, ho, wo])
        for n in 0..<batch {
            for o in 0..<cout {
                for i in 0..<ho {
                    for j in 0..<wo {
                        var acc = Double(b.data[o])
                        for c in 0..<cin {
                            for ki in 0..<k {
                                for kj in 0..<k {
                                    let (r, q) = (i * s - p + ki, j * s - p + kj)
                                    if r < 0 || r >= h || q < 0 || q >= wd { continue }
                                    acc += Double(x.data[((n * cin + c) * h + r) * wd + q])
                                        * Double(w.data[((o * cin + c) * k + ki) * k + kj])
                                }
                            }
                        }
                        y.data[((n * cout + o) * ho + i) * wo + j] = Float(acc)
                    }
                }
            }
        }
        return y
    }

    /// PyTorch conv_transpose2d (weight `[in, out, k, k]`) plus bias by scattering each input pixel.
    static func naiveConvTranspose2d(_ x: Tensor, _ w: Tensor, _ b: Tensor, stride s: Int, padding p: Int,
                                     outputPadding op: Int) -> Tensor {
        let (batch, cin, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (cout, k) = (w.shape[1], w.shape[2])
        let ho = (h - 1) * s - 2 * p + k + op, wo = (wd - 1) * s - 2 * p + k + op
        var acc = [Double](repeating: 0, count: batch * cout * ho * wo)
        for n in 0..<batch {
            for o in 0..<cout {
                for i in 0..<(ho * wo) { acc[(n * cout + o) * ho * wo + i] = Double(b.data[o]) }
            }
            for c in 0..<cin {
                for i in 0..<h {
                    for j in 0..<wd {
                        let v = Double(x.data[((n * cin + c) * h + i) * wd + j])
                        for o in 0..<cout {
                            for ki in 0..<k {
                                for kj in 0..<k {
                                    let (r, q) = (i * s - p + ki, j * s - p + kj)
                                    if r < 0 || r >= ho || q < 0 || q >= wo { continue }
                                    acc[((n * cout + o) * ho + r) * wo + q] += v * Double(w.data[((c * cout + o) * k + ki) * k + kj])
                                }
                            }
                        }
                    }
                }
            }
        }
        return Tensor(shape: [batch, cout, ho, wo], data: acc.map { Float($0) })
    }

    static func maxDifference(_ a: Tensor, _ b: Tensor) -> Float {
        precondition(a.shape == b.shape, "\(a.shape) vs \(b.shape)")
        return zip(a.data, b.data).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    @Test func convolutionLayersMatchNaiveLoops() {
        var rng = Random(seed: 5)
        let x = Tensor.normal([2, 3, 7, 6], rng: &rng)
        for (s, p) in [(1, 1), (2, 1), (2, 0)] {
            var net = Network(.conv2d(inChannels: 3, outChannels: 4, kernel: 3, stride: s, padding: p), rng: &rng)
            let y = net.forward(x, training: true)
            let ref = Self.naiveConv2d(x, net.parameters[0], net.parameters[1], stride: s, padding: p)
            #expect(Self.maxDifference(y, ref) < 1e-5, "conv2d s \(s) p \(p)")
        }
        let codes = Tensor.normal([2, 3, 4, 3], rng: &rng)
        for (s, p, op) in [(2, 1, 0), (2, 1, 1), (1, 0, 0), (3, 1, 2)] {
            var net = Network(.convTranspose2d(inChannels: 3, outChannels: 2, kernel: 4, stride: s, padding: p, outputPadding: op),
                              rng: &rng)
            let y = net.forward(codes, training: true)
            #expect(y.shape == [2, 2, (4 - 1) * s - 2 * p + 4 + op, (3 - 1) * s - 2 * p + 4 + op])
            let ref = Self.naiveConvTranspose2d(codes, net.parameters[0], net.parameters[1], stride: s, padding: p, outputPadding: op)
            #expect(Self.maxDifference(y, ref) < 1e-5, "convTranspose2d s \(s) p \(p) op \(op)")
        }
        // PyTorch's fan-in for ConvTranspose2d is weight.size(1)·k·k = out·k·k.
        let wide = Network(.convTranspose2d(inChannels: 1, outChannels: 8, kernel: 2), rng: &rng)
        let bound = 1 / Float(8 * 2 * 2).squareRoot()
        #expect(wide.parameters[0].data.allSatisfy { abs($0) <= bound } && wide.parameters[0].max() > 0.5 * bound)
    }

    @Test func convolutionLayersMatchFiniteDifferences() {
        var rng = Random(seed: 6)
        let x = Tensor.normal([2, 2, 5, 5], rng: &rng)
        Self.checkGradients(Network(.conv2d(inChannels: 2, outChannels: 3, kernel: 3, stride: 1, padding: 1), rng: &rng),
                            input: x, "conv2d s1 p1")
        Self.checkGradients(Network(.conv2d(inChannels: 2, outChannels: 3, kernel: 3, stride: 2, padding: 1), rng: &rng),
                            input: x, "conv2d s2 p1")
        let codes = Tensor.normal([2, 3, 3, 3], rng: &rng)
        Self.checkGradients(Network(.convTranspose2d(inChannels: 3, outChannels: 2, kernel: 4, stride: 2, padding: 1),
                                    rng: &rng), input: codes, "convTranspose2d s2 p1")
        Self.checkGradients(Network(.convTranspose2d(inChannels: 3, outChannels: 2, kernel: 3, stride: 2, padding: 1,
                                                     outputPadding: 1), rng: &rng), input: codes, "convTranspose2d s2 p1 op1")
    }

    // MARK: batch norm

    /// A batch-norm network with non-trivial γ and β.
    static func batchNormNetwork(features: Int, rng: inout Random) -> Network {
        var net = Network(.batchNorm(features: features), rng: &rng)
        net.parameters[0] = Tensor.uniform([features], 0.5, 1.5, rng: &rng)
        net.parameters[1] = Tensor.normal([features], rng: &rng)
        return net
    }

    @Test func batchNormMatchesFiniteDifferencesInTrainingAndEvaluation() {
        var rng = Random(seed: 7)
        let dense = Tensor.normal([6, 3], mean: 1, std: 2, rng: &rng)
        let images = Tensor.normal([3, 2, 3, 2], mean: -1, std: 0.5, rng: &rng)
        Self.checkGradients(Self.batchNormNetwork(features: 3, rng: &rng), input: dense, step: 1e-2, "batchNorm 2-D")
        Self.checkGradients(Self.batchNormNetwork(features: 2, rng: &rng), input: images, step: 1e-2, "batchNorm 4-D")
        var trained = Self.batchNormNetwork(features: 2, rng: &rng)
        _ = trained.forward(images, training: true)
        Self.checkGradients(trained, input: images, training: false, "batchNorm 4-D evaluation")
    }

    @Test func batchNormNormalisesAndTracksRunningStatisticsLikePyTorch() {
        var rng = Random(seed: 8)
        var net = Self.batchNormNetwork(features: 2, rng: &rng)
        let (gamma, beta) = (net.parameters[0], net.parameters[1])
        let x = Tensor.normal([3, 2, 2, 2], mean: 2, std: 3, rng: &rng)
        let y = net.forward(x, training: true)
        var rm = [Double](repeating: 0, count: 2), rv = [Double](repeating: 1, count: 2)
        for c in 0..<2 {
            let values = (0..<3).flatMap { b in (0..<4).map { Double(x.data[(b * 2 + c) * 4 + $0]) } }
            let mean = values.reduce(0, +) / 12
            let biased = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / 12
            for b in 0..<3 {
                for i in 0..<4 {
                    let k = (b * 2 + c) * 4 + i
                    let expected = Double(gamma.data[c]) * (Double(x.data[k]) - mean) / (biased + 1e-5).squareRoot() + Double(beta.data[c])
                    #expect(abs(Double(y.data[k]) - expected) < 1e-4)
                }
            }
            rm[c] = 0.9 * 0 + 0.1 * mean
            rv[c] = 0.9 * 1 + 0.1 * biased * 12 / 11
            #expect(abs(Double(net.runningStatistics[0][0].data[c]) - rm[c]) < 1e-5)
            #expect(abs(Double(net.runningStatistics[0][1].data[c]) - rv[c]) < 1e-4)
        }
        // Evaluation normalises with the running statistics and leaves them alone.
        let z = net.forward(x, training: false)
        for k in 0..<x.count {
            let c = (k / 4) % 2
            let expected = Double(gamma.data[c]) * (Double(x.data[k]) - rm[c]) / (rv[c] + 1e-5).squareRoot() + Double(beta.data[c])
            #expect(abs(Double(z.data[k]) - expected) < 1e-4)
        }
        #expect(abs(Double(net.runningStatistics[0][0].data[0]) - rm[0]) < 1e-5)
    }

    // MARK: composed network and checkpoints

    static func composedLayers() -> [NetworkLayer] {
        [.conv2d(inChannels: 1, outChannels: 3, kernel: 3, stride: 2, padding: 1), .batchNorm(features: 3), .relu,
         .flatten, .linear(inputs: 3 * 3 * 3, outputs: 4), .batchNorm(features: 4), .sigmoid,
         .linear(inputs: 4, outputs: 2 * 2 * 2), .reshape([2, 2, 2]),
         .convTranspose2d(inChannels: 2, outChannels: 1, kernel: 3, stride: 2, padding: 1, outputPadding: 1), .sigmoid]
    }

    @Test func composedNetworkMatchesFiniteDifferences() {
        var rng = Random(seed: 9)
        var net = Network(Self.composedLayers(), rng: &rng)
        // β = ±4 keeps the ReLU inputs (|x̂| < 3 here) away from the kink, which central differences
        // cannot cross; channel 1 is cut off entirely, so the mask has both values.
        net.parameters[3] = Tensor(shape: [3], data: [4, -4, 4])
        let x = Tensor.normal([6, 1, 5, 5], rng: &rng)
        var probe = net
        #expect(probe.forward(x, training: true).shape == [6, 1, 4, 4])
        Self.checkGradients(net, input: x, step: 1e-2, "conv-BN-ReLU-linear-BN-sigmoid-linear-reshape-convT-sigmoid")
        // Batch norm in training removes any constant shift, so the biases before it get no gradient.
        probe.zeroGradients()
        _ = probe.forward(x, training: true)
        _ = probe.backward(Tensor(repeating: 1, shape: [6, 1, 4, 4]))
        #expect(probe.gradients[1].norm() < 1e-5 && probe.gradients[5].norm() < 1e-5)
        #expect(probe.gradients[0].norm() > 1e-3 && probe.gradients[4].norm() > 1e-3)
    }

    @Test func exportRestoreRoundTripAndBadCheckpoints() throws {
        var rng = Random(seed: 10)
        var net = Network(Self.composedLayers(), rng: &rng)
        let x = Tensor.normal([4, 1, 5, 5], rng: &rng)
        _ = net.forward(x, training: true)  // moves the running statistics away from (0, 1)
        let state = net.exportState(prefix: "encoder.")
        #expect(state["encoder.0.weight"]?.shape == [3, 1, 3, 3] && state["encoder.1.running_var"]?.shape == [3])
        #expect(state.count == 6 * 2 + 2 * 2)  // six layers with weight and bias, two with running statistics
        var other = Network(Self.composedLayers(), rng: &rng)
        try other.restoreState(state, prefix: "encoder.")
        #expect(other.parameters == net.parameters && other.runningStatistics == net.runningStatistics)
        let restoredOutput = other.forward(x, training: false), originalOutput = net.forward(x, training: false)
        #expect(restoredOutput == originalOutput)
        var missing = state
        missing["encoder.5.running_mean"] = nil
        #expect(throws: UnrollError.self) { try other.restoreState(missing, prefix: "encoder.") }
        var misshapen = state
        misshapen["encoder.4.weight"] = Tensor(zeros: [4, 26])
        let before = other.parameters
        #expect(throws: UnrollError.self) { try other.restoreState(misshapen, prefix: "encoder.") }
        #expect(other.parameters == before)
        #expect(throws: UnrollError.self) { try other.restoreState(state, prefix: "decoder.") }
    }

    // MARK: optimizers and schedule

    @Test func nesterovSGDAndWeightDecayFollowPyTorchRules() throws {
        var rng = Random(seed: 11)
        let w0 = Tensor.normal([2, 3], rng: &rng)
        let grads = (0..<3).map { _ in Tensor.normal([2, 3], rng: &rng) }
        let (lr, mu, wd) = (0.1, 0.9, 0.01)
        var sgd = Optimizer.sgd(learningRate: Float(lr), momentum: Float(mu), nesterov: true, weightDecay: Float(wd))
        try sgd.validate()
        var w = w0
        var ref = doubles(w0), buf = [Double](repeating: 0, count: 6)
        for (t, g) in grads.enumerated() {
            sgd.step(&w, gradient: g)
            for i in 0..<6 {
                let gi = Double(g.data[i]) + wd * ref[i]
                buf[i] = t == 0 ? gi : mu * buf[i] + gi
                ref[i] -= lr * (gi + mu * buf[i])
            }
        }
        #expect(zip(doubles(w), ref).allSatisfy { abs($0 - $1) < 1e-5 })
        // Nesterov differs from heavy-ball momentum after the first step.
        var heavy = Optimizer.sgd(learningRate: Float(lr), momentum: Float(mu), weightDecay: Float(wd))
        var wh = w0
        for g in grads { heavy.step(&wh, gradient: g) }
        #expect(Self.maxDifference(wh, w) > 1e-3)

        // Adam with L2 weight decay folded into the gradient before the moments.
        let (b1, b2, eps, alr) = (0.5, 0.999, 1e-8, 3e-2)
        var adam = Optimizer.adam(learningRate: Float(alr), beta1: Float(b1), beta2: Float(b2), epsilon: Float(eps),
                                  weightDecay: 0.5)
        try adam.validate()
        w = w0
        ref = doubles(w0)
        var m = [Double](repeating: 0, count: 6), v = m
        for (t, g) in grads.enumerated() {
            adam.step(&w, gradient: g)
            for i in 0..<6 {
                let gi = Double(g.data[i]) + 0.5 * ref[i]
                m[i] = b1 * m[i] + (1 - b1) * gi
                v[i] = b2 * v[i] + (1 - b2) * gi * gi
                let mh = m[i] / (1 - pow(b1, Double(t + 1))), vh = v[i] / (1 - pow(b2, Double(t + 1)))
                ref[i] -= alr * mh / (vh.squareRoot() + eps)
            }
        }
        #expect(zip(doubles(w), ref).allSatisfy { abs($0 - $1) < 1e-5 })
        var plainAdam = Optimizer.adam(learningRate: Float(alr), beta1: Float(b1), beta2: Float(b2), epsilon: Float(eps))
        var wp = w0
        for g in grads { plainAdam.step(&wp, gradient: g) }
        #expect(Self.maxDifference(wp, w) > 1e-3)

        // Checkpoint round trip keeps the new settings' state; the metadata names them.
        let state = sgd.exportState(prefix: "o.")
        #expect(state.metadata["o.nesterov"] == "true" && state.metadata["o.weight_decay"] == "0.01")
        var restored = Optimizer.sgd(learningRate: Float(lr), momentum: Float(mu), nesterov: true, weightDecay: Float(wd))
        try restored.restoreState(tensors: state.tensors, metadata: state.metadata, weightShape: [2, 3], prefix: "o.")
        #expect(restored == sgd)
    }

    @Test func badOptimizerSettingsAreRejected() {
        let bad: [Optimizer] = [
            .sgd(learningRate: 0.1, weightDecay: -1e-4),
            .adam(learningRate: 1e-3, weightDecay: .nan),
            .sgd(learningRate: 0.1, momentum: 0, nesterov: true),
            .sgd(learningRate: 0.1, momentum: 1, nesterov: true),
        ]
        for o in bad { #expect(throws: UnrollError.self) { try o.validate() } }
        #expect((try? Optimizer.adam(learningRate: 1e-3, beta1: 0.5, weightDecay: 1e-5).validate()) != nil)
        let schedules = [OneCycleSchedule(maxLearningRate: 0, totalSteps: 10), OneCycleSchedule(maxLearningRate: 0.1, totalSteps: 0),
                         OneCycleSchedule(maxLearningRate: 0.1, totalSteps: 10, warmupFraction: 1)]
        for s in schedules { #expect(throws: UnrollError.self) { try s.validate() } }
    }

    @Test func oneCycleScheduleWarmsUpLinearlyThenDecaysByCosine() throws {
        let lr = 0.01, total = 1000
        let s = OneCycleSchedule(maxLearningRate: Float(lr), totalSteps: total)
        try s.validate()
        #expect(s.warmupSteps == 50)
        let start = lr / 25, end = lr / 25 / 1e4
        func close(_ a: Float, _ b: Double) -> Bool { abs(Double(a) - b) <= 1e-6 * b }
        #expect(close(s.learningRate(step: 0), start + (lr - start) / 50))
        #expect(close(s.learningRate(step: 24), start + (lr - start) * 25 / 50))
        #expect(close(s.learningRate(step: 49), lr))  // end of the warm-up
        let mid = 50 + 475  // halfway through the decay: the mean of lr and the end
        #expect(close(s.learningRate(step: mid - 1), (lr + end) / 2))
        #expect(close(s.learningRate(step: total - 1), end))
        #expect(close(s.learningRate(step: total + 5), end))
        // Monotone up, then monotone down.
        let rates = (0..<total).map { s.learningRate(step: $0) }
        #expect(zip(rates[0..<49], rates[1..<50]).allSatisfy { $0 < $1 })
        #expect(zip(rates[49..<(total - 1)], rates[50..<total]).allSatisfy { $0 >= $1 })
    }

    @Test func networkOptimizerStepsEveryTensor() throws {
        var rng = Random(seed: 12)
        var net = Network.mlp(sizes: [4, 5, 3], finalActivation: false, rng: &rng)
        let x = Tensor.normal([6, 4], rng: &rng)
        _ = net.forward(x, training: true)
        _ = net.backward(Tensor.normal([6, 3], rng: &rng))
        let before = net.parameters
        var opt = NetworkOptimizer(.sgd(learningRate: 0.5, momentum: 0.9, nesterov: true), for: net)
        opt.learningRate = 0.2
        try opt.validate()
        opt.step(&net)
        for j in before.indices {
            // First Nesterov step: w − lr·(1 + μ)·g.
            let expected = before[j].zipWith(net.gradients[j]) { $0 - 0.2 * 1.9 * $1 }
            #expect(Self.maxDifference(net.parameters[j], expected) < 1e-6)
        }
        let state = opt.exportState(prefix: "opt.")
        var other = NetworkOptimizer(.sgd(learningRate: 0.2, momentum: 0.9, nesterov: true), for: net)
        try other.restoreState(tensors: state.tensors, metadata: state.metadata, shapes: net.parameters.map(\.shape), prefix: "opt.")
        #expect(other == opt)
    }
}
