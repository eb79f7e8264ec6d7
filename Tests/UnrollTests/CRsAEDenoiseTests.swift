import Foundation
import Testing
import Unroll
import UnrollCore
import UnrollExperiments
import UnrollIO

/// CRsAE 2-D denoising: gradients against finite differences, the s² shift averaging against a naive
/// loop, the EM λ update against its closed form, and bad input.
@Suite struct CRsAEDenoiseTests {
    /// A small network (3 filters 3×3, stride 2, T 5, L 4) on a batch of two 9×8 images (8 does not fit
    /// the stride: the padded path), thresholds that leave the codes partly sparse.
    static func smallProblem(_ tying: CRsAE2DNetwork.Tying, seed: UInt64 = 4) throws -> (CRsAE2DNetwork, Tensor, Tensor) {
        var rng = Random(seed: seed)
        var net = try CRsAE2DNetwork(atoms: 3, kernel: 3, stride: 2, layers: 5, lipschitz: 4, tying: tying,
                                     threshold: 0.05, rng: &rng)
        if tying == .untied {   // make the three banks differ
            for i in 1..<3 { net.filters[i].add(Tensor.normal(net.filters[i].shape, rng: &rng), scaledBy: 0.3) }
        }
        net.thresholds = [0.04, 0.07, 0.1]
        let x = Tensor.normal([2, 9, 8], rng: &rng)
        let target = Tensor.normal([2, 9, 8], rng: &rng)
        return (net, x, target)
    }

    /// ½Σ‖x̂ − target‖²/B in Double.
    static func loss(_ net: CRsAE2DNetwork, _ x: Tensor, _ target: Tensor) throws -> Double {
        let rec = try net.forward(x, record: false).reconstruction
        var s = 0.0
        for i in 0..<rec.count { let d = Double(rec.data[i]) - Double(target.data[i]); s += d * d }
        return 0.5 * s / Double(x.rows)
    }

    /// Central differences (f(ε) − f(−ε))/2ε at ε = 1e-3, 3e-4, 1e-4: the soft threshold's kinks make
    /// a large ε cross some, float round-off spoils a small one, so a test takes the best of the three.
    static func centralDifferences(_ f: (Float) throws -> Double) rethrows -> [Double] {
        try [Float(1e-3), 3e-4, 1e-4].map { eps in (try f(eps) - f(-eps)) / Double(2 * eps) }
    }

    /// The smallest relative difference between `analytic` and the differences.
    static func closest(_ fd: [Double], _ analytic: Double) -> Double {
        fd.map { abs($0 - analytic) / max(1, abs($0)) }.min()!
    }

    @Test(arguments: CRsAE2DNetwork.Tying.allCases)
    func filterAndThresholdGradientsMatchFiniteDifferences(_ tying: CRsAE2DNetwork.Tying) throws {
        let (net, x, target) = try Self.smallProblem(tying)
        let (codes, rec, trace) = try net.forward(x)
        let zeros = codes.zeroCount()
        #expect(zeros > codes.count / 10 && zeros < codes.count * 9 / 10, "codes should be partly sparse, \(zeros) of \(codes.count) zero")
        var r = rec
        r.add(target, scaledBy: -1)
        let g = try net.backward(trace!, codeGradient: nil, reconstructionGradient: (1 / Float(x.rows)) * r)
        #expect(g.filters.count == net.filters.count)
        var rng = Random(seed: 9)
        // Each bank along two random directions.
        for bank in net.filters.indices {
            for _ in 0..<2 {
                var d = Tensor.normal(net.filters[bank].shape, rng: &rng)
                d = Float(1 / d.squaredNorm().squareRoot()) * d   // unit direction
                let fd = try Self.centralDifferences { eps in
                    var moved = net
                    moved.filters[bank].add(d, scaledBy: eps)
                    return try Self.loss(moved, x, target)
                }
                var analytic = 0.0
                for i in 0..<d.count { analytic += Double(d.data[i]) * Double(g.filters[bank].data[i]) }
                #expect(Self.closest(fd, analytic) <= 2e-3, "\(tying) bank \(bank): FD \(fd) vs backward \(analytic)")
            }
        }
        try Self.expectThresholdGradients(g.thresholds, net, x, target, "\(tying)")
    }

    /// Every ∂/∂b_c against central differences.
    static func expectThresholdGradients(_ analytic: [Float], _ net: CRsAE2DNetwork, _ x: Tensor, _ target: Tensor, _ label: String) throws {
        for c in 0..<net.atoms {
            let fd = try centralDifferences { eps in
                var moved = net
                moved.thresholds[c] += eps
                return try loss(moved, x, target)
            }
            #expect(closest(fd, Double(analytic[c])) <= 2e-3, "\(label) ∂/∂b_\(c): FD \(fd) vs backward \(analytic[c])")
        }
    }

    /// Per-layer thresholds b_c·G_{t,c}: ∂/∂G_{t,c} for every layer and filter, and ∂/∂b_c through the gains.
    @Test(arguments: CRsAE2DNetwork.Tying.allCases)
    func layerGainGradientsMatchFiniteDifferences(_ tying: CRsAE2DNetwork.Tying) throws {
        var (net, x, target) = try Self.smallProblem(tying)
        var rng = Random(seed: 11)
        net.layerGains = Tensor(shape: [net.layers, net.atoms], data: (0..<(net.layers * net.atoms)).map { _ in Float(0.5 + rng.uniform()) })
        let (_, rec, trace) = try net.forward(x)
        var r = rec
        r.add(target, scaledBy: -1)
        let g = try net.backward(trace!, codeGradient: nil, reconstructionGradient: (1 / Float(x.rows)) * r)
        let dG = try #require(g.layerGains)
        #expect(dG.shape == [net.layers, net.atoms])
        var moving = 0
        for i in 0..<dG.count {
            let fd = try Self.centralDifferences { eps in
                var moved = net
                moved.layerGains!.data[i] += eps
                return try Self.loss(moved, x, target)
            }
            if abs(dG.data[i]) > 1e-4 { moving += 1 }
            #expect(Self.closest(fd, Double(dG.data[i])) <= 2e-3, "\(tying) ∂/∂G[\(i)]: FD \(fd) vs backward \(dG.data[i])")
        }
        #expect(moving > dG.count / 2, "most gains should move the loss: \(moving) of \(dG.count)")
        try Self.expectThresholdGradients(g.thresholds, net, x, target, "\(tying) with gains")
        // Gains of 1 are the network without gains.
        var ones = net
        ones.layerGains = Tensor(repeating: 1, shape: [net.layers, net.atoms])
        var none = net
        none.layerGains = nil
        #expect(try ones.forward(x, record: false).reconstruction == none.forward(x, record: false).reconstruction)
    }

    /// A batch encoded in parts of its samples (`UnrolledEncoder.sampleParts`: 3 parts of 5 crops, so
    /// uneven) gives the codes and every gradient of the one loop over the batch (the decoder's through
    /// the merged trace's last layer).
    @Test(arguments: CRsAE2DNetwork.Tying.allCases)
    func samplePartsGiveTheOneLoopsCodesAndGradients(_ tying: CRsAE2DNetwork.Tying) throws {
        var (net, _, _) = try Self.smallProblem(tying)
        var rng = Random(seed: 12)
        net.layerGains = Tensor(shape: [net.layers, net.atoms], data: (0..<(net.layers * net.atoms)).map { _ in Float(0.5 + rng.uniform()) })
        let x = Tensor.normal([5, 9, 8], rng: &rng), target = Tensor.normal([5, 9, 8], rng: &rng)
        func run(workers: Int) throws -> (Tensor, CRsAE2DNetwork.Gradients) {
            try Parallel.withWorkers(workers) {
                let (codes, rec, trace) = try net.forward(x)
                var r = rec
                r.add(target, scaledBy: -1)
                let g = try net.backward(trace!, codeGradient: nil, reconstructionGradient: 0.2 * r)
                return (codes, g)
            }
        }
        let (codes1, g1) = try run(workers: 1)
        let (codes3, g3) = try run(workers: 3)
        func close(_ a: Tensor, _ b: Tensor, _ what: String) {
            let scale = max(a.data.map(abs).max() ?? 0, 1e-6)
            let worst = zip(a.data, b.data).map { abs($0 - $1) }.max() ?? 0
            #expect(a.shape == b.shape && worst <= 1e-5 * scale, "\(tying) \(what): differs by \(worst) (scale \(scale))")
        }
        #expect(codes1.zeroCount() > 0 && codes1.zeroCount() < codes1.count, "codes should be partly sparse")
        close(codes1, codes3, "codes")
        for b in g1.filters.indices { close(g1.filters[b], g3.filters[b], "bank \(b)'s gradient") }
        close(Tensor(shape: [net.atoms], data: g1.thresholds), Tensor(shape: [net.atoms], data: g3.thresholds), "threshold gradient")
        close(try #require(g1.layerGains), try #require(g3.layerGains), "layer gains' gradient")
    }

    @Test func lambdaLossGradientThroughTheEncoderMatchesFiniteDifferences() throws {
        let (base, x, _) = try Self.smallProblem(.tied, seed: 5)
        let sigma: Float = 0.5
        let prior = GammaPriorLambda(priorMean: 2, rate: 3, pooling: .batchMean)
        let lambdas: [Float] = [0.6, 1.0, 1.4]
        func lossOf(_ l: [Float]) throws -> Double {
            var net = base
            net.thresholds = net.emThresholds(lambdas: l, sigma: sigma)
            let codes = try net.forward(x, record: false).codes
            return prior.negativeLogPosterior(codes: codes, lambdas: l)
        }
        var net = base
        net.thresholds = net.emThresholds(lambdas: lambdas, sigma: sigma)
        let (codes, _, trace) = try net.forward(x)
        let g = try CRsAE2DModel.lambdaLossGradient(network: net, trace: trace!, codes: codes, lambdas: lambdas,
                                                      sigma: sigma, prior: prior)
        var throughSeen = false
        for c in 0..<3 {
            let fds = try Self.centralDifferences { eps in
                var moved = lambdas
                moved[c] += eps
                return try lossOf(moved)
            }
            #expect(Self.closest(fds, Double(g[c])) <= 2e-3, "∂L_λ/∂λ_\(c): FD \(fds) vs \(g[c])")
            let fd = fds[1]
            // The codes-held-fixed derivative differs: the encoder term matters.
            let (sums, ne) = GammaPriorLambda.l1PerAtom(codes, atoms: 3)
            let fixed = sums[c] / Double(x.rows) + Double(prior.rate) - (Double(ne) + Double(prior.shape) - 1) / Double(lambdas[c])
            if abs(fixed - fd) > 1e-2 * max(1, abs(fd)) { throughSeen = true }
        }
        #expect(throughSeen, "the through-encoder term should change the λ gradient")
    }

    /// numpy's "reflect" by folding (written apart from the library's modular form).
    static func mirror(_ i: Int, _ n: Int) -> Int {
        var j = i
        while j < 0 || j >= n { j = j < 0 ? -j : 2 * (n - 1) - j }
        return j
    }

    @Test func shiftAveragingEqualsANaiveLoopOverShiftedCopies() throws {
        var rng = Random(seed: 21)
        let net = try CRsAE2DNetwork(atoms: 4, kernel: 4, stride: 3, layers: 4, lipschitz: 6, tying: .tied,
                                     threshold: 0.02, rng: &rng)
        let (h, w, s, k) = (11, 13, 3, 4)
        let image = Tensor.uniform([h, w], rng: &rng)
        let fast = try net.denoise(image, shiftAverage: true, chunk: 4)
        // Naive: each shift (i, j) alone, padded s + i above and s + j left, to the documented common size.
        func side(_ n: Int) -> Int { var p = n + 3 * s - 1; while (p - k) % s != 0 { p += 1 }; return p }
        let (ph, pw) = (side(h), side(w))
        #expect((ph - k) % s == 0 && ph - h - (2 * s - 1) >= s, "bottom padding ≥ s for every shift")
        var sum = [Double](repeating: 0, count: h * w)
        for i in 0..<s {
            for j in 0..<s {
                var padded = [Float](repeating: 0, count: ph * pw)
                for r in 0..<ph { for c in 0..<pw { padded[r * pw + c] = image[Self.mirror(r - s - i, h), Self.mirror(c - s - j, w)] } }
                let rec = try net.forward(Tensor(shape: [1, ph, pw], data: padded), record: false).reconstruction
                for r in 0..<h { for c in 0..<w { sum[r * w + c] += Double(rec.data[(r + s + i) * pw + c + s + j]) } }
            }
        }
        var maxDiff = 0.0
        for q in 0..<(h * w) { maxDiff = max(maxDiff, abs(sum[q] / Double(s * s) - Double(fast.data[q]))) }
        #expect(maxDiff < 1e-5, "shift average differs from the naive loop by \(maxDiff)")
        // Shift averaging is not the single pass (the strided encoder is not shift-invariant) …
        let plain = try net.denoise(image, shiftAverage: false)
        #expect(zip(plain.data, fast.data).contains { abs($0 - $1) > 1e-4 })
        // … and with stride 1 there is nothing to average.
        let unit = try CRsAE2DNetwork(filters: net.filters, thresholds: net.thresholds, stride: 1, layers: 4, lipschitz: 40)
        #expect(try unit.denoise(image, shiftAverage: true) == unit.denoise(image, shiftAverage: false))
        // A model that names its shift phases averages those: phase 0 alone is the naive loop's (0, 0) copy.
        let one = try net.autoencoder(height: h, width: w, shifts: .grid(1))
        let single = try Denoiser.denoise(image, model: one)
        var naive = [Float](repeating: 0, count: ph * pw)
        for r in 0..<ph { for c in 0..<pw { naive[r * pw + c] = image[Self.mirror(r - s, h), Self.mirror(c - s, w)] } }
        let rec = try net.forward(Tensor(shape: [1, ph, pw], data: naive), record: false).reconstruction
        var diff: Float = 0
        for r in 0..<h { for c in 0..<w { diff = max(diff, abs(single.data[r * w + c] - rec.data[(r + s) * pw + c + s])) } }
        #expect(diff < 1e-5, "one phase differs from the unshifted copy by \(diff)")
        #expect(try Denoiser.denoise(image, model: one, shifts: .grid(3), chunk: 4) == fast, "--shift-phases overrides the model's")
    }

    /// The shifts are shared out among the workers (whole rounds of one copy per worker alone, then the
    /// rest side by side) and their windows summed in shift order: when the workers divide the copies
    /// the average is the one worker's to the bit, otherwise only the leftover copies' split products can
    /// differ; a group that fails fails the call.
    @Test func shiftAveragingIsTheSameForAnyNumberOfWorkers() throws {
        func groups(_ n: Int, _ w: Int) -> [[[Int]]] {
            Denoiser.shiftGroups(n, workers: w).map { $0.map { [$0.shifts.lowerBound, $0.shifts.upperBound, $0.workers] } }
        }
        #expect(groups(9, 1) == [[[0, 9, 1]]])
        #expect(groups(9, 2) == [[[0, 4, 1], [4, 8, 1]], [[8, 9, 2]]])
        #expect(groups(9, 3) == [[[0, 3, 1], [3, 6, 1], [6, 9, 1]]])
        #expect(groups(9, 4) == [[[0, 2, 1], [2, 4, 1], [4, 6, 1], [6, 8, 1]], [[8, 9, 4]]])
        #expect(groups(4, 6) == [[[0, 1, 2], [1, 2, 2], [2, 3, 1], [3, 4, 1]]])
        var rng = Random(seed: 22)
        let net = try CRsAE2DNetwork(atoms: 4, kernel: 4, stride: 3, layers: 4, lipschitz: 6, tying: .untied,
                                     threshold: 0.02, rng: &rng)
        let image = Tensor.uniform([14, 12], rng: &rng)
        let one = try Parallel.withWorkers(1) { try net.denoise(image, shiftAverage: true, chunk: 2) }
        for workers in [2, 3, 4, 9, 12] {
            let many = try Parallel.withWorkers(workers) { try net.denoise(image, shiftAverage: true, chunk: 2) }
            if 9 % workers == 0 {
                #expect(many == one, "\(workers) workers")
            } else {
                let worst = zip(many.data, one.data).map { abs($0 - $1) }.max() ?? 0
                #expect(many.shape == one.shape && worst <= 1e-5, "\(workers) workers: differs by \(worst)")
            }
        }
        struct Failed: Error {}
        var calls = 0
        #expect(throws: Failed.self) {
            try Parallel.withWorkers(1) {
                try Denoiser.averageOverShifts(image, stride: 3, kernel: 4, chunk: 2) { copies in
                    calls += 1
                    if calls == 3 { throw Failed() }
                    return copies
                }
            }
        }
        #expect(throws: Failed.self) {
            try Parallel.withWorkers(3) {
                try Denoiser.averageOverShifts(image, stride: 3, kernel: 4, chunk: 2) { copies in
                    if copies.shape[0] == 1 { throw Failed() }
                    return copies
                }
            }
        }
    }

    @Test func emClosedFormOnAHandMadeCode() throws {
        // Two examples, two filters, 2×2 code maps (Ne = 4): ‖x_0‖₁ = 3 and 1, ‖x_1‖₁ = 0 and 4.
        let codes = Tensor(shape: [2, 2, 2, 2], data: [1, -2, 0, 0, /**/ 0, 0, 0, 0,
                                                      0, 0.5, 0, -0.5, /**/ 1, 1, -1, 1])
        let prior = GammaPriorLambda(priorMean: 20, rate: 100, pooling: .batchMean)
        let lambdas = prior.update(codes: codes, atoms: 2)
        // (Ne + r − 1)/(mean_b ‖x_c‖₁ + δ), r = δλ̄ = 2000
        #expect(abs(lambdas[0] - Float(2003.0 / (2.0 + 100))) < 1e-4)
        #expect(abs(lambdas[1] - Float(2003.0 / (2.0 + 100))) < 1e-4)
        let skewed = Tensor(shape: [1, 2, 2, 2], data: [3, 0, 0, 0, 0, 0, 0, 0])
        let l2 = prior.update(codes: skewed, atoms: 2)
        #expect(abs(l2[0] - Float(2003.0 / 103)) < 1e-4 && abs(l2[1] - Float(2003.0 / 100)) < 1e-4)
        // The thresholds the EM model sets: λσ²/L.
        var rng = Random(seed: 1)
        let net = try CRsAE2DNetwork(atoms: 2, kernel: 3, stride: 2, layers: 2, lipschitz: 10, tying: .tied, threshold: 0, rng: &rng)
        let b = net.emThresholds(lambdas: l2, sigma: 20.0 / 255)
        #expect(abs(b[0] - l2[0] * Float(20.0 / 255 * 20.0 / 255) / 10) < 1e-7)
    }

    @Test func badInputIsRejected() throws {
        let images = [Tensor(zeros: [20, 20])]
        var c = CRsAE2DConfig()
        c.atoms = 2; c.kernel = 3; c.stride = 2; c.layers = 2; c.cropSize = 9
        var bad = c
        bad.sigma = -0.1
        #expect(throws: UnrollError.self) { try CRsAE2DTrainer(images: images, config: bad) }
        bad = c
        bad.lambdaMean = -20
        #expect(throws: UnrollError.self) { try CRsAE2DTrainer(images: images, config: bad) }
        bad = c
        bad.lambdaRate = -1
        #expect(throws: UnrollError.self) { try CRsAE2DTrainer(images: images, config: bad) }
        bad = c
        bad.cropSize = 2
        #expect(throws: UnrollError.self) { try CRsAE2DTrainer(images: images, config: bad) }
        #expect(throws: UnrollError.self) { try CRsAE2DTrainer(images: [Tensor(zeros: [2, 2])], config: c) }
        var rng = Random(seed: 2)
        let net = try CRsAE2DNetwork(atoms: 2, kernel: 3, stride: 2, layers: 2, lipschitz: 10, tying: .tied, threshold: 0.1, rng: &rng)
        #expect(throws: UnrollError.self) { try net.denoise(Tensor(zeros: [2, 5]), shiftAverage: true) }
        #expect(throws: UnrollError.self) { try net.evaluate(clean: [Tensor(zeros: [8, 8])], sigma: -1, seed: 0, shiftAverage: false) }
        #expect(throws: UnrollError.self) {
            try CRsAE2DNetwork(filters: net.filters, thresholds: [0.1, -0.1], stride: 2, layers: 2, lipschitz: 10)
        }
    }

    @Test(arguments: [CRsAE2DBias.em(form: .closedForm), .em(form: .backprop), .freeBias, .fixed])
    func aFewStepsOnSmoothImagesLowerTheLossAndKeepλPositive(_ bias: CRsAE2DBias) throws {
        // Smooth synthetic images (sums of a few sinusoids), 4 filters 5×5, stride 2, T 6.
        var rng = Random(seed: 4)
        let images = (0..<3).map { k -> Tensor in
            var t = Tensor(zeros: [40, 40])
            for r in 0..<40 { for c in 0..<40 { t[r, c] = 0.5 + 0.3 * Float(sin(Double(r + 3 * k) / 4) * cos(Double(c) / 5)) } }
            return t
        }
        var c = CRsAE2DConfig()
        c.atoms = 4; c.kernel = 5; c.stride = 2; c.layers = 6; c.cropSize = 21; c.batchSize = 2
        c.sigma = 0.1; c.lambdaMean = 2; c.lambdaRate = 1; c.learningRate = 0.02; c.bias = bias; c.lipschitz = 8
        c.tying = bias == .freeBias ? .untied : .tied
        c.seed = rng.next()
        var trainer = try CRsAE2DTrainer(images: images, config: c)
        var first = 0.0, last = 0.0
        for step in 1...40 {
            let r = try trainer.trainStep()
            if step <= 5 { first += r.reconstruction }
            if step > 35 { last += r.reconstruction }
        }
        #expect(last < first, "\(bias.name): loss of the last 5 steps \(last) vs the first 5 \(first)")
        // λ > 0 for EM (the loss has −log λ); a free bias may reach 0.
        #expect(trainer.lambdas.allSatisfy { $0.isFinite && (bias == .freeBias ? $0 >= 0 : $0 > 0) })
        if bias == .fixed { #expect(trainer.lambdas == [Float](repeating: 2, count: 4)) }
        if bias == .em(form: .closedForm) { #expect(trainer.lambdas != [Float](repeating: 2, count: 4)) }
    }

    /// A CRsAE 2-D trainer restored from a mid-run checkpoint continues bit for bit (every bias form:
    /// λ, the thresholds and a guarded L are state beside the filters); other settings are refused.
    @Test(arguments: [CRsAE2DBias.em(form: .closedForm), .em(form: .backprop), .freeBias, .fixed])
    func aCheckpointContinuesBitForBit(_ bias: CRsAE2DBias) throws {
        let images = [Self.image(40, 40), Self.image(40, 40, phase: 1)]
        var c = CRsAE2DConfig()
        c.atoms = 4; c.kernel = 5; c.stride = 2; c.layers = 4; c.cropSize = 21; c.sigma = 0.1; c.lambdaMean = 2
        c.lipschitz = 0.8; c.guardLipschitz = true; c.bias = bias; c.learningRateStep = 2; c.tying = bias == .fixed ? .untied : .tied
        c.layerThresholds = bias == .freeBias || bias == .em(form: .backprop)
        var trainer = try CRsAE2DTrainer(images: images, config: c)
        for _ in 0..<3 { try trainer.trainStep() }
        let saved = trainer.checkpoint()
        for _ in 0..<3 { try trainer.trainStep() }
        var resumed = try CRsAE2DTrainer(images: images, config: c)
        try resumed.restore(saved)
        for _ in 0..<3 { try resumed.trainStep() }
        #expect(resumed.network == trainer.network && resumed.lambdas == trainer.lambdas && resumed.step == 6, "\(bias.name)")
        #expect(resumed.optimizers == trainer.optimizers)
        if c.layerThresholds {
            let gains = try #require(trainer.network.layerGains)
            #expect(gains.data.contains { $0 != 1 }, "\(bias.name): the layer gains should have learned")
        }
        var other = c
        other.sigma = 0.2
        var mismatched = try CRsAE2DTrainer(images: images, config: other)
        #expect(throws: UnrollError.self) { try mismatched.restore(saved) }
    }

    @Test func lipschitzGuardKeepsLAboveTheOperatorNorm() throws {
        let images = [Self.image(40, 40), Self.image(40, 40, phase: 1)]
        var c = CRsAE2DConfig()
        c.atoms = 6; c.kernel = 5; c.stride = 2; c.layers = 4; c.cropSize = 21; c.lipschitz = 0.5; c.tying = .untied
        var guarded = c
        guarded.guardLipschitz = true
        var a = try CRsAE2DTrainer(images: images, config: c), b = try CRsAE2DTrainer(images: images, config: guarded)
        for _ in 0..<3 { try a.trainStep(); try b.trainStep() }
        #expect(a.network.lipschitz == 0.5)
        let bound = try b.network.estimatedLipschitz(side: 64, iterations: 200, seed: 99)
        #expect(bound > 0.5 && b.network.lipschitz >= 0.97 * bound, "L \(b.network.lipschitz) vs ‖H‖‖We‖ \(bound)")
        // Untied: the bound is √(‖H‖²‖We‖²); tied banks give ‖H‖².
        var h = b.network
        h.filters = [h.filters[0]]
        let hh = try h.estimatedLipschitz(side: 64, iterations: 200, seed: 99)
        h.filters = [b.network.filters[1]]
        let we = try h.estimatedLipschitz(side: 64, iterations: 200, seed: 99)
        #expect(abs(bound - (hh * we).squareRoot()) < 1e-3 * bound)
    }

    /// A smooth test image with some edges, values in [0, 1].
    static func image(_ h: Int, _ w: Int, phase: Double = 0) -> Tensor {
        var t = Tensor(zeros: [h, w])
        for r in 0..<h {
            for c in 0..<w {
                let v = 0.5 + 0.3 * sin(Double(r) / 5 + phase) * cos(Double(c) / 7) + (c > w / 2 ? 0.15 : -0.15)
                t[r, c] = Float(min(1, max(0, v)))
            }
        }
        return t
    }

    /// The paper's ordering EM λ > fixed λ, at the small scale's settings cut to 400 steps on the shared
    /// images (measured 28.24 against 27.41 dB, noisy input 21.81 dB).
    @Test(.needsSharedData) func emBeatsAFixedLambda() throws {
        func folder(_ name: String) throws -> [Tensor] {
            let dir = sharedData + "/images/" + name
            return try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.lowercased().hasSuffix(".png") }.sorted()
                .map { try PNG.readGray(dir + "/" + $0) }
        }
        var s = CRsAEDenoiseExperiment.settings(.small)
        s.steps = 400
        s.runs = [.init(.tied, .em(form: .closedForm)), .init(.tied, .fixed)]
        let t = try Parallel.withWorkers(1) {
            try CRsAEDenoiseExperiment.run(s, train: folder("train"), test: folder("test"), scale: "small").table
        }
        let noisy = try #require(t.measured(["encoder": .string("noisy input")]))
        let em = try #require(t.measured(["encoder": .string("tied"), "bias": .string("em")]))
        let fixed = try #require(t.measured(["encoder": .string("tied"), "bias": .string("fixed")]))
        #expect(em > fixed + 0.4 && fixed > noisy + 4, "em \(em), fixed \(fixed), noisy \(noisy) dB")
    }

    @Test func tinyExperimentReportsEveryRowBesideThePaper() throws {
        var s = CRsAEDenoiseExperiment.settings(.tiny)
        s.steps = 4
        s.logEvery = 2
        s.runs = [.init(.tied, .em(form: .closedForm)), .init(.untied, .freeBias)]
        let result = try CRsAEDenoiseExperiment.run(s, train: [Self.image(50, 60)], test: [Self.image(61, 45, phase: 2)], scale: "tiny")
        let t = result.table
        #expect(t.experiment == "crsae-denoise" && t.rows.count == 3)
        #expect(t.rows[0]["encoder"] == .string("noisy input"))
        #expect(t.rows(where: ["encoder": .string("tied"), "bias": .string("em")]).first?.paper == 29.30)
        #expect(t.rows(where: ["encoder": .string("untied"), "bias": .string("free-bias")]).first?.paper == 29.92)
        #expect(t.rows.allSatisfy { $0.measured?.isFinite == true })
        #expect(result.curves.first?.x == [2, 4])
        #expect(t.json().hasPrefix("{\"experiment\": \"crsae-denoise\", \"scale\": \"tiny\", \"rows\": ["))
        // The centre crop is the middle of the image.
        let crop = CRsAEDenoiseExperiment.centreCrop(Self.image(61, 45), side: 20)
        #expect(crop.shape == [20, 20] && crop[0, 0] == Self.image(61, 45)[20, 12])
    }

    /// `unroll reproduce crsae-denoise --scale tiny --json` on a folder of PNGs given by $UNROLL_IMAGES.
    @Test(.needsCLI) func reproduceCLIPrintsOneJSONTable() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("unroll-crsae-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        for (sub, size) in [("train", (60, 70)), ("test", (50, 52))] {
            let folder = dir.appendingPathComponent("images/" + sub)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try PNG.write(Raster(gray: Self.image(size.0, size.1)), to: folder.appendingPathComponent("a.png").path)
        }
        let path = try #require(CLITests.binary, "the unroll binary was not found next to the tests")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["reproduce", "crsae-denoise", "--scale", "tiny", "--json", "--quiet", "--steps", "3",
                             "--methods", "tied-em,tied-fixed", "--output", dir.appendingPathComponent("out").path]
        var env = ProcessInfo.processInfo.environment
        env["UNROLL_IMAGES"] = dir.appendingPathComponent("images").path
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let o = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "reproduce crsae-denoise failed: \(e)")
        let lines = o.split(separator: "\n")
        #expect(lines.count == 1)
        let json = try JSONSerialization.jsonObject(with: Data(o.utf8)) as? [String: Any]
        #expect(json?["experiment"] as? String == "crsae-denoise")
        #expect(json?["scale"] as? String == "tiny")
        #expect((json?["rows"] as? [[String: Any]])?.count == 3)
    }

    /// `unroll denoise` reads tied and untied CRsAE models. Without shift averaging, the tied model's
    /// output equals the generic FISTA encoder over its filters with the thresholds b_c themselves,
    /// built here from the file's tensors; with it (the default), the output differs and still denoises.
    @Test(.needsCLI) func denoiseReadsTiedAndUntiedCRsAEModels() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("unroll-crsae-cli-\(UUID().uuidString)")
        let images = dir.appendingPathComponent("train")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try PNG.write(Raster(gray: DenoisingTests.image(40, 40)), to: images.appendingPathComponent("a.png").path)
        try PNG.write(Raster(gray: DenoisingTests.image(30, 34, phase: 1)), to: dir.appendingPathComponent("ref.png").path)
        let common = ["train", "--model", "conv2d", "--family", "crsae", "--data", images.path, "--atoms", "4", "--kernel", "5",
                      "--stride", "2", "--crop", "17", "--layers", "6", "--steps", "5", "--sigma", "0.1", "--lipschitz", "4"]
        try CLITests.ok(common + ["--output", "tied"], in: dir)
        try CLITests.ok(common + ["--untied", "--output", "untied"], in: dir)
        let noisy = ["--input", "ref.png", "--clean", "ref.png", "--add-noise", "0.1", "--seed", "3"]
        let once = try CLITests.ok(["denoise", "--model", "tied/model.safetensors"] + noisy + ["--no-shift-average", "--output", "once.png"], in: dir)
        let averaged = try CLITests.ok(["denoise", "--model", "tied/model.safetensors"] + noisy + ["--output", "avg.png"], in: dir)
        let untied = try CLITests.ok(["denoise", "--model", "untied/model.safetensors"] + noisy + ["--output", "untied.png"], in: dir)
        for out in [once, averaged, untied] { #expect(out.stdout.contains("PSNR"), "\(out.stdout)") }

        let file = try Safetensors.read(dir.appendingPathComponent("tied/model.safetensors").path)
        let w = try #require(file["dictionary"]?.tensor)
        let alpha = try #require(file.metadata["encoder.step"].flatMap(Float.init))
        #expect(file.metadata["encoder.lambda_role"] == "threshold" && file.metadata["model.shift_average"] == "true")
        let thresholds = try #require(file["lambda"]?.tensor).data
        try CLITests.ok(["denoise", "--model", "tied/model.safetensors", "--input", "ref.png", "--no-shift-average", "--output", "plain.png"], in: dir)
        let input = try PNG.readGray(dir.appendingPathComponent("ref.png").path)
        let op = try Convolution2DDictionary(filters: w, stride: 2, height: 30, width: 34)
        let encoder = UnrolledEncoder(layers: 6, algorithm: .fista, lambda: .perAtom(thresholds), step: .fixed(alpha), lambdaIsPenalty: false)
        let expected = try Denoiser.denoise(input, dictionary: op, encoder: encoder)
        let got = try PNG.readGray(dir.appendingPathComponent("plain.png").path)
        let worst = zip(got.data, expected.data).map { abs($0 - min(1, max(0, $1))) }.max() ?? 1
        #expect(worst <= 1.01 / 255, "tied CRsAE through `denoise` vs the generic FISTA encoder: max |Δ| \(worst)")
        let (a, b) = (try PNG.readGray(dir.appendingPathComponent("avg.png").path), try PNG.readGray(dir.appendingPathComponent("once.png").path))
        #expect(zip(a.data, b.data).contains { abs($0 - $1) > 1.5 / 255 }, "shift averaging changed nothing")
    }
}
