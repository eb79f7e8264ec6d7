import Foundation
import Testing
import Unroll
import UnrollCore

@Suite struct EncoderTests {
    static func problem(m: Int, p: Int, b: Int, seed: UInt64) -> (DenseDictionary, Tensor) {
        var rng = Random(seed: seed)
        return (DenseDictionary(atoms: p, signalSize: m, rng: &rng), Tensor.normal([b, m], rng: &rng))
    }

    @Test func oneLayerIsOneManualISTAStepFromZero() throws {
        let (op, x) = Self.problem(m: 7, p: 11, b: 4, seed: 1)
        let w = op.weights
        for threshold in Threshold.allCases {
            let (lam, alpha): (Float, Float) = (0.3, 0.25)
            let enc = UnrolledEncoder(layers: 1, threshold: threshold, lambda: .scalar(lam), step: .fixed(alpha))
            let z = try enc.encode(x, with: op)
            let b = threshold == .hard ? lam : lam * alpha
            for i in 0..<4 {
                for j in 0..<11 {
                    var v: Float = 0
                    for k in 0..<7 { v += x[i, k] * w[j, k] }
                    v *= alpha                        // z₀ = 0: v = α Dᵀx
                    let expected: Float
                    switch threshold {
                    case .soft: expected = v > b ? v - b : (v < -b ? v + b : 0)
                    case .nonNegative: expected = max(v - b, 0)
                    case .hard: expected = abs(v) > b ? v : 0
                    }
                    #expect(abs(z[i, j] - expected) < 1e-6, "\(threshold) [\(i), \(j)]")
                }
            }
        }
    }

    @Test func forwardMatchesTheDoubleReferenceForEveryVariant() throws {
        let (op, x) = Self.problem(m: 8, p: 12, b: 5, seed: 2)
        for threshold in Threshold.allCases {
            for algorithm in UnrolledEncoder.Algorithm.allCases {
                for (lambda, beta) in [(Lambda.scalar(0.5), Float(1)),
                                       (.perAtom((0..<12).map { 0.2 + 0.05 * Float($0) }), 1),
                                       (.scalar(0.5), 0.9)] {
                    let enc = UnrolledEncoder(layers: 15, algorithm: algorithm, threshold: threshold,
                                              lambda: lambda, step: .fixed(0.15))
                    let (z, trace) = try enc.forward(x, with: op, beta: beta)
                    let ref = ReferenceUnrolled(p: 12, m: 8, batch: 5, layers: 15, alpha: 0.15, threshold: threshold,
                                                fista: algorithm == .fista, lambdas: lambda.values(atoms: 12).map(Double.init),
                                                beta: Double(beta))
                    let zr = ref.forward(w: doubles(op.weights), x: doubles(x)).z
                    let diff = zip(z.data, zr).map { abs(Double($0) - $1) }.max()!
                    #expect(diff < 1e-4, "\(threshold) \(algorithm) \(lambda) β=\(beta): max diff \(diff)")
                    #expect(trace.layers == 15 && trace.layerCodes(15) == z)
                    #expect(try enc.encode(x, with: op, beta: beta) == z)
                    #expect(trace.momentum.count == (algorithm == .fista ? 15 : 0))
                }
            }
        }
    }

    @Test func gramAndGenericKernelsAgree() throws {
        let (op, x) = Self.problem(m: 10, p: 16, b: 6, seed: 3)
        let enc = UnrolledEncoder(layers: 20, algorithm: .fista, lambda: .scalar(0.2), step: .inverseLipschitz())
        let a = try enc.encode(x, with: op)
        let b = try enc.encode(x, with: GenericDense(inner: op))
        #expect(relativeDifference(doubles(a), doubles(b)) < 1e-5)
        for mode in [GradientMode.lasso, .leastSquares] {
            let ga = try mode.evaluate(signals: x, operator: op, encoder: enc).gradient
            let gb = try mode.evaluate(signals: x, operator: GenericDense(inner: op), encoder: enc).gradient
            #expect(relativeDifference(doubles(ga), doubles(gb)) < 1e-4, "\(mode)")
        }
    }

    /// FISTA run long satisfies the lasso's optimality conditions
    /// (Dᵀ(x − Dz))_j = λ sign(z_j) on the support and |·| ≤ λ off it, and agrees with a long ISTA run.
    @Test func fistaConvergesToTheLassoMinimum() throws {
        let (op, x) = Self.problem(m: 20, p: 30, b: 4, seed: 4)
        let lam: Float = 0.1
        let fista = UnrolledEncoder(layers: 2000, algorithm: .fista, lambda: .scalar(lam), step: .inverseLipschitz())
        let z = try fista.encode(x, with: op)
        var r = x
        r.add(op.apply(z), scaledBy: -1)
        let c = op.adjoint(r)                                 // Dᵀ(x − Dz)
        let alpha = try fista.stepSize(for: op)
        var worst: Float = 0
        for q in 0..<z.count {
            let v = z.data[q] == 0 ? max(0, abs(c.data[q]) - lam) : abs(c.data[q] - lam * (z.data[q] > 0 ? 1 : -1))
            worst = max(worst, v)
        }
        #expect(worst < 1e-3, "optimality violation \(worst)")
        #expect(z.zeroCount() > 0 && z.zeroCount() < z.count)
        #expect(alpha > 0 && alpha < 1)
        let ista = UnrolledEncoder(layers: 20000, algorithm: .ista, lambda: .scalar(lam), step: .inverseLipschitz())
        let zi = try ista.encode(x, with: op)
        #expect(relativeDifference(doubles(zi), doubles(z)) < 1e-3)
        // FISTA gets much closer than ISTA in the same few iterations.
        let few = 60
        let zf = try UnrolledEncoder(layers: few, algorithm: .fista, lambda: .scalar(lam), step: .inverseLipschitz()).encode(x, with: op)
        let zs = try UnrolledEncoder(layers: few, algorithm: .ista, lambda: .scalar(lam), step: .inverseLipschitz()).encode(x, with: op)
        #expect(relativeDifference(doubles(zf), doubles(z)) < relativeDifference(doubles(zs), doubles(z)))
    }

    @Test func toleranceStopsEarlyNearTheSameSolution() throws {
        let (op, x) = Self.problem(m: 20, p: 30, b: 4, seed: 5)
        let full = UnrolledEncoder(layers: 3000, algorithm: .fista, lambda: .scalar(0.1), step: .inverseLipschitz())
        var early = full
        early.tolerance = 1e-6
        let (ze, trace) = try early.forward(x, with: op)
        #expect(trace.layers < 3000)
        #expect(relativeDifference(doubles(ze), doubles(try full.encode(x, with: op))) < 1e-3)
    }

    @Test func lipschitzIsTheSquaredSpectralNormAndDeterministic() throws {
        // W = diag(3, 2, 1) padded: ‖D‖₂² = 9.
        var w = Tensor(zeros: [3, 5])
        w[0, 0] = 3; w[1, 1] = 2; w[2, 2] = 1
        let op = try DenseDictionary(weights: w)
        var r1 = Random(seed: 9), r2 = Random(seed: 9)
        let l1 = op.lipschitz(iterations: 100, rng: &r1)
        #expect(abs(l1 - 9) < 1e-4)
        #expect(l1 == op.lipschitz(iterations: 100, rng: &r2))
        // Random dictionary: compare with a Double power iteration on WWᵀ run long.
        let (dense, _) = Self.problem(m: 9, p: 14, b: 1, seed: 6)
        var g = [Double](repeating: 0, count: 14 * 14)
        for i in 0..<14 { for j in 0..<14 { for k in 0..<9 { g[i * 14 + j] += Double(dense.weights[i, k]) * Double(dense.weights[j, k]) } } }
        var u = [Double](repeating: 1, count: 14), lam = 0.0
        for _ in 0..<5000 {
            var nu = [Double](repeating: 0, count: 14)
            for i in 0..<14 { for j in 0..<14 { nu[i] += g[i * 14 + j] * u[j] } }
            lam = sqrt(nu.reduce(0) { $0 + $1 * $1 })
            u = nu.map { $0 / lam }
        }
        var rng = Random(seed: 1)
        #expect(abs(Double(dense.lipschitz(iterations: 500, rng: &rng)) - lam) < 1e-3 * lam)
    }

    @Test func invalidSettingsThrowClearErrors() throws {
        let (op, x) = Self.problem(m: 4, p: 6, b: 2, seed: 7)
        func message(_ enc: UnrolledEncoder, signals: Tensor? = nil, beta: Float = 1) -> String? {
            do {
                _ = try enc.encode(signals ?? x, with: op, beta: beta)
                return nil
            } catch {
                return "\(error)"
            }
        }
        let good = UnrolledEncoder(layers: 3, lambda: .scalar(0.1), step: .fixed(0.1))
        #expect(message(good) == nil)
        var e = good
        e.lambda = .scalar(-1)
        #expect(message(e)?.contains("λ") == true)
        e = good
        e.threshold = .hard
        e.lambda = .scalar(-0.1)
        #expect(message(e)?.contains("τ") == true)
        e = good
        e.layers = 0
        #expect(message(e)?.contains("layers") == true)
        e = good
        e.step = .fixed(0)
        #expect(message(e)?.contains("α") == true)
        e = good
        e.lambda = .perAtom([0.1, 0.2])
        #expect(message(e)?.contains("6 atoms") == true)
        #expect(message(good, signals: Tensor(zeros: [2, 5]))?.contains("shape") == true)
        #expect(message(good, beta: .nan)?.contains("β") == true)
        #expect(throws: UnrollError.self) { try DenseDictionary(weights: Tensor(shape: [1, 2], data: [1, .nan])) }
    }
}
