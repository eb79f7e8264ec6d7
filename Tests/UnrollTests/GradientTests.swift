import Testing
import Unroll
import UnrollCore

/// The three gradient modes against central finite differences of an independent Double
/// implementation, and against their closed forms.
@Suite struct GradientTests {
    static let (m, p, batch, layers, alpha) = (6, 9, 3, 6, Float(0.1))

    enum LambdaForm: CaseIterable { case scalar, perAtom, schedule }

    struct Case {
        var w: Tensor, x: Tensor
        var encoder: UnrolledEncoder
        var beta: Float
        var reference: ReferenceUnrolled
    }

    /// A small problem for one combination whose pre-activations all stay ≥ 2e-3 away from the
    /// threshold's kink (so central differences never cross it) and whose codes are partly sparse.
    static func makeCase(_ threshold: Threshold, _ algorithm: UnrolledEncoder.Algorithm, _ form: LambdaForm) -> Case {
        let base: Float = threshold == .hard ? 0.08 : 0.4
        let lambda: Lambda
        switch form {
        case .scalar, .schedule: lambda = .scalar(base)
        case .perAtom: lambda = .perAtom((0..<p).map { base * (0.5 + Float($0) / Float(p - 1)) })
        }
        let beta: Float = form == .schedule ? 0.8 : 1
        let encoder = UnrolledEncoder(layers: layers, algorithm: algorithm, threshold: threshold,
                                      lambda: lambda, step: .fixed(alpha))
        for seed in UInt64(1)... {
            var rng = Random(seed: seed)
            var w = Tensor.normal([p, m], rng: &rng)
            w.normalizeRows()
            let x = Tensor.normal([batch, m], rng: &rng)
            let ref = ReferenceUnrolled(p: p, m: m, batch: batch, layers: layers, alpha: Double(alpha),
                                        threshold: threshold, fista: algorithm == .fista,
                                        lambdas: lambda.values(atoms: p).map(Double.init), beta: Double(beta))
            let (z, margin) = ref.forward(w: doubles(w), x: doubles(x))
            let zeros = z.filter { $0 == 0 }.count
            if margin > 2e-3 && zeros >= z.count / 4 && zeros <= 3 * z.count / 4 {
                return Case(w: w, x: x, encoder: encoder, beta: beta, reference: ref)
            }
        }
        fatalError("unreachable")
    }

    @Test func everyModeThresholdEncoderAndLambdaFormMatchesFiniteDifferences() throws {
        for mode in [GradientMode.decoder, .lasso, .leastSquares] {
            for threshold in Threshold.allCases {
                for algorithm in UnrolledEncoder.Algorithm.allCases {
                    for form in LambdaForm.allCases {
                        let c = Self.makeCase(threshold, algorithm, form)
                        let fd = c.reference.finiteDifferenceGradient(mode, w: doubles(c.w), x: doubles(c.x))
                        let label = "\(mode) \(threshold) \(algorithm) \(form)"
                        // Both the dense Gram kernel and the generic kernel (the convolutional path).
                        let dense = try DenseDictionary(weights: c.w)
                        let results = [
                            try mode.evaluate(signals: c.x, operator: dense, encoder: c.encoder, beta: c.beta),
                            try mode.evaluate(signals: c.x, operator: GenericDense(inner: dense), encoder: c.encoder, beta: c.beta),
                        ]
                        let refLoss = c.reference.modeLoss(mode, w: doubles(c.w), x: doubles(c.x),
                                                           fixedCodes: c.reference.forward(w: doubles(c.w), x: doubles(c.x)).z)
                        for (k, r) in results.enumerated() {
                            let err = relativeDifference(doubles(r.gradient), fd)
                            #expect(err < 1e-3, "\(label) kernel \(k): relative gradient error \(err)")
                            #expect(abs(r.losses.loss - refLoss) < 1e-5 * max(1, refLoss), "\(label): loss \(r.losses.loss) vs \(refLoss)")
                        }
                    }
                }
            }
        }
    }

    @Test func decoderGradientIsTheClosedForm() throws {
        var rng = Random(seed: 11)
        let w = Tensor.normal([12, 8], rng: &rng), x = Tensor.normal([5, 8], rng: &rng)
        let op = try DenseDictionary(weights: w)
        let enc = UnrolledEncoder(layers: 10, algorithm: .fista, lambda: .scalar(0.3), step: .inverseLipschitz())
        let r = try GradientMode.decoder.evaluate(signals: x, operator: op, encoder: enc)
        let z = r.codes
        #expect(relativeDifference(doubles(GradientMode.decoderGradient(signals: x, codes: z, operator: op)),
                                   doubles(r.gradient)) < 1e-6)
        // (1/B) Zᵀ(ZW − X) by loops
        for j in 0..<12 {
            for k in 0..<8 {
                var s = 0.0
                for i in 0..<5 {
                    var res = -Double(x[i, k])
                    for l in 0..<12 { res += Double(z[i, l]) * Double(w[l, k]) }
                    s += Double(z[i, j]) * res
                }
                #expect(abs(Double(r.gradient[j, k]) - s / 5) < 1e-5)
            }
        }
    }

    @Test func noodlDirectionDividesTheBatchMeanByBAgain() throws {
        var rng = Random(seed: 12)
        let w = Tensor.normal([7, 5], rng: &rng), x = Tensor.normal([4, 5], rng: &rng)
        let op = try DenseDictionary(weights: w)
        let enc = UnrolledEncoder(layers: 30, threshold: .hard, lambda: .scalar(0.1), step: .fixed(0.2))
        let r = try GradientMode.noodl.evaluate(signals: x, operator: op, encoder: enc)
        let z = r.codes
        #expect(z.zeroCount() > 0 && z.zeroCount() < z.count)
        for j in 0..<7 {
            for k in 0..<5 {
                var s = 0.0
                for i in 0..<4 {
                    var res = -Double(x[i, k])
                    for l in 0..<7 { res += Double(z[i, l]) * Double(w[l, k]) }
                    s += Double(z[i, j] > 0 ? 1 : (z[i, j] < 0 ? -1 : 0)) * res
                }
                #expect(abs(Double(r.gradient[j, k]) - s / 16) < 1e-5)
            }
        }
        #expect(r.losses.loss == r.losses.reconstruction)
    }

    /// Reference §3: as T grows, g_ae-lasso and g_dec both approach ĝ, the lasso gradient at the
    /// converged codes; g_ae-ls does not.
    @Test func manyLayersBringLassoAndDecoderGradientsToTheConvergedReference() throws {
        var rng = Random(seed: 13)
        let (m, p, b) = (20, 10, 4)     // p < m: a strongly convex lasso, fast linear convergence
        var w = Tensor.normal([p, m], rng: &rng)
        w.normalizeRows()
        var z0 = Tensor(zeros: [b, p])
        for i in 0..<b { for j in rng.sample(3, from: p) { z0[i, j] = rng.sign() * Float(rng.uniform(1, 2)) } }
        let x = z0.matmul(w) + 0.05 * Tensor.normal([b, m], rng: &rng)
        let op = try DenseDictionary(weights: w)
        let alpha = 1 / op.lipschitz(iterations: 200, rng: &rng)
        let lam: Float = 0.2

        // ĝ from Double ISTA run to convergence (independent code).
        let ref = ReferenceUnrolled(p: p, m: m, batch: b, layers: 3000, alpha: Double(alpha), threshold: .soft,
                                    fista: true, lambdas: [Double](repeating: Double(lam), count: p))
        let zHat = ref.forward(w: doubles(w), x: doubles(x)).z
        var gHat = [Double](repeating: 0, count: p * m)
        for j in 0..<p {
            for k in 0..<m {
                for i in 0..<b {
                    var res = -Double(x[i, k])
                    for l in 0..<p { res += zHat[i * p + l] * Double(w[l, k]) }
                    gHat[j * m + k] += zHat[i * p + j] * res / Double(b)
                }
            }
        }
        func gradient(_ mode: GradientMode, layers: Int) throws -> [Double] {
            let enc = UnrolledEncoder(layers: layers, lambda: .scalar(lam), step: .fixed(alpha))
            return doubles(try mode.evaluate(signals: x, operator: op, encoder: enc).gradient)
        }
        let norm = relativeDifference(gHat, [Double](repeating: 0, count: gHat.count)) // ‖ĝ‖
        let shortDec = relativeDifference(try gradient(.decoder, layers: 3), gHat)
        let longDec = relativeDifference(try gradient(.decoder, layers: 800), gHat)
        let longLasso = relativeDifference(try gradient(.lasso, layers: 800), gHat)
        let longLS = relativeDifference(try gradient(.leastSquares, layers: 800), gHat)
        #expect(norm > 0.01)
        #expect(longDec < 1e-3, "g_dec at T=800: \(longDec) (T=3: \(shortDec))")
        #expect(longLasso < 1e-3, "g_ae-lasso at T=800: \(longLasso)")
        #expect(shortDec > 10 * longDec)
        #expect(longLS > 0.05, "g_ae-ls should keep the lasso bias away from ĝ: \(longLS)")
    }
}
