import Foundation
import Testing
import Unroll
import UnrollCore

/// The 1-D convolutional dictionary against an independent dense (Toeplitz) reference in Double:
/// apply/adjoint by loops, adjointness, the filter gradient and the unrolled encoder's gradient modes
/// by finite differences, the Lipschitz bound, and the trainer running on it.
@Suite struct Conv1DOperatorTests {
    /// The dense matrix of H, atoms as rows: row (c, q) is filter c placed at shift q, over columns
    /// (channel, sample), so a code row z (atom-major, [C, Ne]) decodes to z·W (flattened [channels, N]).
    static func toeplitz(_ h: [Double], filters: Int, channels: Int, k: Int, positions: Int) -> [Double] {
        let n = positions + k - 1, m = channels * n
        var w = [Double](repeating: 0, count: filters * positions * m)
        for c in 0..<filters {
            for q in 0..<positions {
                for ch in 0..<channels {
                    for t in 0..<k { w[(c * positions + q) * m + ch * n + q + t] = h[(c * channels + ch) * k + t] }
                }
            }
        }
        return w
    }

    static func denseApply(_ z: [Double], _ w: [Double], rows p: Int, cols m: Int) -> [Double] {
        (0..<m).map { k in (0..<p).reduce(0.0) { $0 + z[$1] * w[$1 * m + k] } }
    }

    @Test func applyAndAdjointMatchTheToeplitzMatrixAndAreAdjoint() throws {
        var rng = Random(seed: 1)
        let (cN, ch, k, n, b) = (3, 2, 5, 17, 2)
        let ne = n - k + 1
        let op = Convolution1DDictionary(filters: cN, channels: ch, length: k, rng: &rng)
        let z = Tensor.normal([b, cN, ne], rng: &rng), r = Tensor.normal([b, ch, n], rng: &rng)
        #expect(try op.codeShape(signalShape: [b, ch, n]) == [b, cN, ne])
        #expect(try op.signalShape(codeShape: [b, cN, ne]) == [b, ch, n])
        #expect(throws: UnrollError.self) { try op.codeShape(signalShape: [b, ch + 1, n]) }
        #expect(throws: UnrollError.self) { try op.codeShape(signalShape: [b, ch, k - 1]) }
        let w = Self.toeplitz(doubles(op.weights), filters: cN, channels: ch, k: k, positions: ne)
        let (p, m) = (cN * ne, ch * n)
        let hz = op.apply(z), htr = op.adjoint(r)
        #expect(hz.shape == [b, ch, n] && htr.shape == [b, cN, ne])
        for i in 0..<b {
            let zi = Array(doubles(z)[(i * p)..<((i + 1) * p)]), ri = Array(doubles(r)[(i * m)..<((i + 1) * m)])
            let ref = Self.denseApply(zi, w, rows: p, cols: m)
            for q in 0..<m { #expect(abs(Double(hz.data[i * m + q]) - ref[q]) < 1e-5) }
            for j in 0..<p {
                let refAdj = (0..<m).reduce(0.0) { $0 + ri[$1] * w[j * m + $1] }
                #expect(abs(Double(htr.data[i * p + j]) - refAdj) < 1e-5)
            }
        }
        // ⟨Hz, r⟩ = ⟨z, Hᵀr⟩
        let lhs = zip(doubles(hz), doubles(r)).reduce(0.0) { $0 + $1.0 * $1.1 }
        let rhs = zip(doubles(z), doubles(htr)).reduce(0.0) { $0 + $1.0 * $1.1 }
        #expect(abs(lhs - rhs) < 1e-4 * max(1, abs(lhs)))
    }

    @Test func weightGradientMatchesFiniteDifferences() throws {
        var rng = Random(seed: 2)
        let (cN, ch, k, n, b) = (2, 3, 4, 15, 3)
        let op = Convolution1DDictionary(filters: cN, channels: ch, length: k, rng: &rng)
        let z = Tensor.normal([b, cN, n - k + 1], rng: &rng), r = Tensor.normal([b, ch, n], rng: &rng)
        let g = op.weightGradient(residual: r, codes: z)
        #expect(g.shape == op.weights.shape)
        // f(h) = ⟨r, H_h z⟩ in Double via the Toeplitz matrix; central differences.
        func f(_ h: [Double]) -> Double {
            let w = Self.toeplitz(h, filters: cN, channels: ch, k: k, positions: n - k + 1)
            let (p, m) = (cN * (n - k + 1), ch * n)
            var s = 0.0
            for i in 0..<b {
                let hz = Self.denseApply(Array(doubles(z)[(i * p)..<((i + 1) * p)]), w, rows: p, cols: m)
                for q in 0..<m { s += hz[q] * Double(r.data[i * m + q]) }
            }
            return s
        }
        let h0 = doubles(op.weights)
        for q in 0..<h0.count {
            var hp = h0, hm = h0
            hp[q] += 1e-3
            hm[q] -= 1e-3
            let fd = (f(hp) - f(hm)) / 2e-3
            #expect(abs(Double(g.data[q]) - fd) < 1e-4 * max(1, abs(fd)), "tap \(q)")
        }
    }

    @Test func normalizeGivesUnitFiltersOverAllChannels() throws {
        var rng = Random(seed: 3)
        var op = try Convolution1DDictionary(weights: Tensor.normal([3, 4, 6], std: 3, rng: &rng))
        op.normalize()
        for c in 0..<3 {
            let s = op.weights.data[(c * 24)..<((c + 1) * 24)].reduce(0.0) { $0 + Double($1) * Double($1) }
            #expect(abs(s - 1) < 1e-5)
        }
        #expect(throws: UnrollError.self) { try Convolution1DDictionary(weights: Tensor(zeros: [3, 4])) }
    }

    /// The frequency-domain bound is ≥ the power iteration on a long signal and close to it, and a
    /// single filter's bound is max_ω |ĥ(ω)|² (checked on a filter with a closed form).
    @Test func lipschitzBoundsThePowerIterationOfAnyLength() throws {
        var rng = Random(seed: 4)
        let op = Convolution1DDictionary(filters: 3, channels: 2, length: 8, rng: &rng)
        let bound = op.lipschitz(iterations: 100, rng: &rng)
        for ne in [16, 400] {
            let pi = op.powerIteration(codeShape: [1, 3, ne], iterations: 300, rng: &rng)
            #expect(pi <= bound * 1.001, "length \(ne): \(pi) > \(bound)")
            if ne == 400 { #expect(pi >= bound * 0.97, "length \(ne): \(pi) ≪ \(bound)") }
        }
        // h = (1, 1)/√2: |ĥ(ω)|² = 1 + cos ω, max 2 at ω = 0.
        let pair = try Convolution1DDictionary(weights: Tensor(shape: [1, 1, 2], data: [0.70710678, 0.70710678]))
        #expect(abs(pair.lipschitz(iterations: 10, rng: &rng) - 2) < 1e-5)
    }

    /// g_dec, g_ae-lasso and g_ae-ls through unrolled ISTA/FISTA with the conv operator, against central
    /// differences of the dense Double reference on the Toeplitz matrix, perturbing filter taps.
    @Test func encoderGradientModesThroughTheConvOperatorMatchFiniteDifferences() throws {
        let (cN, ch, k, n, b, layers) = (2, 2, 4, 12, 2, 6)
        let ne = n - k + 1
        let alpha: Float = 0.15
        for (threshold, algorithm) in [(Threshold.soft, UnrolledEncoder.Algorithm.fista),
                                       (.nonNegative, .ista), (.soft, .ista)] {
            let lambdas: [Float] = [0.25, 0.4]
            // A problem whose pre-activations stay away from the kinks and whose codes are partly sparse.
            var found: (Convolution1DDictionary, Tensor, ReferenceUnrolled)?
            for seed in UInt64(10)..<UInt64(400) {
                var rng = Random(seed: seed)
                let op = Convolution1DDictionary(filters: cN, channels: ch, length: k, rng: &rng)
                let x = Tensor.normal([b, ch, n], rng: &rng)
                let ref = ReferenceUnrolled(p: cN * ne, m: ch * n, batch: b, layers: layers, alpha: Double(alpha),
                                            threshold: threshold, fista: algorithm == .fista,
                                            lambdas: lambdas.flatMap { [Double](repeating: Double($0), count: ne) })
                let w = Self.toeplitz(doubles(op.weights), filters: cN, channels: ch, k: k, positions: ne)
                let (z, margin) = ref.forward(w: w, x: doubles(x))
                let zeros = z.filter { $0 == 0 }.count
                if margin > 2e-3 && zeros >= z.count / 4 && zeros <= 3 * z.count / 4 {
                    found = (op, x, ref)
                    break
                }
            }
            let (op, x, ref) = try #require(found)
            let encoder = UnrolledEncoder(layers: layers, algorithm: algorithm, threshold: threshold,
                                          lambda: .perAtom(lambdas), step: .fixed(alpha))
            let h0 = doubles(op.weights)
            for mode in [GradientMode.decoder, .lasso, .leastSquares] {
                let got = try mode.evaluate(signals: x, operator: op, encoder: encoder)
                let fixed = ref.forward(w: Self.toeplitz(h0, filters: cN, channels: ch, k: k, positions: ne), x: doubles(x)).z
                func loss(_ h: [Double]) -> Double {
                    ref.modeLoss(mode, w: Self.toeplitz(h, filters: cN, channels: ch, k: k, positions: ne),
                                 x: doubles(x), fixedCodes: fixed)
                }
                var fd = [Double](repeating: 0, count: h0.count)
                for q in 0..<h0.count {
                    var hp = h0, hm = h0
                    hp[q] += 1e-6
                    hm[q] -= 1e-6
                    fd[q] = (loss(hp) - loss(hm)) / 2e-6
                }
                let err = relativeDifference(doubles(got.gradient), fd)
                #expect(err < 1e-3, "\(mode) \(threshold) \(algorithm): relative gradient error \(err)")
                #expect(abs(got.losses.loss - loss(h0)) < 1e-4 * max(1, loss(h0)))
            }
        }
    }

    /// The existing trainer learns with the conv operator: from a perturbed start, g_ae-ls with Adam
    /// brings the filters closer to the ones that generated the data.
    @Test func dictionaryTrainerRunsOnTheConvOperator() throws {
        var rng = Random(seed: 5)
        let truth = Convolution1DDictionary(filters: 2, channels: 1, length: 8, rng: &rng)
        var codes = Tensor(zeros: [64, 2, 57])
        for i in 0..<64 { for c in 0..<2 { for q in rng.sample(2, from: 57) { codes.data[(i * 2 + c) * 57 + q] = Float(rng.uniform(1, 2)) } } }
        let x = truth.apply(codes)
        var start = try Convolution1DDictionary(weights: truth.weights + 0.5 * Tensor.normal([2, 1, 8], std: 0.35, rng: &rng))
        start.normalize()
        let config = TrainerConfig(encoder: UnrolledEncoder(layers: 30, algorithm: .fista, threshold: .nonNegative,
                                                            lambda: .scalar(0.1), step: .inverseLipschitz()),
                                   mode: .leastSquares, optimizer: .adam(learningRate: 0.01), batchSize: 16, seed: 1)
        var trainer = try DictionaryTrainer(dictionary: start, data: x, config: config,
                                            groundTruth: GroundTruth(weights: truth.weights))
        let before = try #require(trainer.dictionaryError())
        try trainer.train(epochs: 6)
        let after = try #require(trainer.dictionaryError())
        #expect(after < 0.6 * before, "error \(before) → \(after)")
    }
}
