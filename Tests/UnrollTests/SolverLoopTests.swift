import Foundation
import Testing
import Unroll
import UnrollCore

/// The one unrolled loop (`UnrolledEncoder` over the generic layer kernel) in its untied form and with
/// its threshold gradient, against finite differences of a Double loop written from the equations
///     v_t = y_t − α Eᵀ(D y_t − x),  z_t = θ(v_t; b_t),  b_t[j] = λ_j·β^(t−1)·(α if λ is a penalty, else 1),
/// with D (residual) and E (analysis) dense `[p, m]` atoms as rows, for the linear loss L = ⟨c, z_T⟩.
@Suite struct SolverLoopTests {
    struct Setting: CustomTestStringConvertible, Sendable {
        var fista: Bool
        var threshold: Threshold
        var untied: Bool
        var lambdaIsPenalty: Bool
        var beta: Double
        var testDescription: String {
            "\(fista ? "fista" : "ista") \(threshold.rawValue) \(untied ? "untied" : "tied") λ \(lambdaIsPenalty ? "penalty" : "threshold") β \(beta)"
        }
    }

    static let settings: [Setting] = [
        Setting(fista: true, threshold: .soft, untied: true, lambdaIsPenalty: false, beta: 1),
        Setting(fista: false, threshold: .soft, untied: true, lambdaIsPenalty: true, beta: 0.9),
        Setting(fista: true, threshold: .nonNegative, untied: true, lambdaIsPenalty: true, beta: 1),
        Setting(fista: true, threshold: .soft, untied: false, lambdaIsPenalty: true, beta: 0.95),
        Setting(fista: false, threshold: .nonNegative, untied: false, lambdaIsPenalty: false, beta: 1),
    ]

    let p = 6, m = 5, batch = 3, layers = 7, alpha = 0.3

    /// z_T of the Double loop: D and E `[p, m]` row-major, one threshold parameter per code entry,
    /// x `[batch, m]`.
    static func loop(_ s: Setting, d: [Double], e: [Double], lambdas: [Double], x: [Double],
                     p: Int, m: Int, layers: Int, alpha: Double) -> [Double] {
        let batch = x.count / m
        var z = [Double](repeating: 0, count: batch * p), zPrev = z, y = z
        var sk = 1.0
        for t in 1...layers {
            var zNew = z
            for i in 0..<batch {
                var r = [Double](repeating: 0, count: m)          // D y − x
                for k in 0..<m { r[k] = -x[i * m + k] }
                for j in 0..<p where y[i * p + j] != 0 {
                    for k in 0..<m { r[k] += y[i * p + j] * d[j * m + k] }
                }
                for j in 0..<p {
                    var corr = 0.0
                    for k in 0..<m { corr += e[j * m + k] * r[k] }
                    let v = y[i * p + j] - alpha * corr
                    let b = lambdas[j] * pow(s.beta, Double(t - 1)) * (s.lambdaIsPenalty ? alpha : 1)
                    zNew[i * p + j] = s.threshold == .soft ? (v > b ? v - b : (v < -b ? v + b : 0)) : max(v - b, 0)
                }
            }
            zPrev = z
            z = zNew
            if s.fista {
                let next = (1 + (1 + 4 * sk * sk).squareRoot()) / 2
                let mu = (sk - 1) / next
                sk = next
                for q in 0..<z.count { y[q] = z[q] + mu * (z[q] - zPrev[q]) }
            } else {
                y = z
            }
        }
        return z
    }

    /// The matrix `[C·Ho·Wo, H·W]` of a 2-D convolutional dictionary, from its definition: filter c
    /// (`[C, K, K]` row-major) placed at (a·s, b·s) for every code position, cropped to H×W, with the
    /// code grid Ho = ⌈(H − K)/s⌉ + 1 (likewise Wo) that covers every pixel.
    static func convolutionMatrix(_ f: [Double], filters c: Int, kernel k: Int, stride s: Int, height h: Int, width w: Int)
        -> (matrix: [Double], codes: Int) {
        let ho = (h - k + s - 1) / s + 1, wo = (w - k + s - 1) / s + 1
        let p = c * ho * wo, m = h * w
        var matrix = [Double](repeating: 0, count: p * m)
        for ch in 0..<c {
            for a in 0..<ho {
                for b in 0..<wo {
                    for u in 0..<k where a * s + u < h {
                        for v in 0..<k where b * s + v < w {
                            matrix[((ch * ho + a) * wo + b) * m + (a * s + u) * w + b * s + v] = f[(ch * k + u) * k + v]
                        }
                    }
                }
            }
        }
        return (matrix, p)
    }

    /// Central differences of `f` at `v`.
    static func centralDifferences(_ v: [Double], h: Double = 1e-6, _ f: ([Double]) -> Double) -> [Double] {
        v.indices.map { q in
            var a = v, b = v
            a[q] += h
            b[q] -= h
            return (f(a) - f(b)) / (2 * h)
        }
    }

    @Test(arguments: settings)
    func gradientsMatchFiniteDifferencesOfADoubleLoop(_ s: Setting) throws {
        var rng = Random(seed: 41)
        let d = Tensor.normal([p, m], rng: &rng)
        let e = s.untied ? d + 0.3 * Tensor.normal([p, m], rng: &rng) : d
        let x = Tensor.normal([batch, m], rng: &rng)
        let c = Tensor.normal([batch, p], rng: &rng)
        // Thresholds b of 0.3–0.9 either way, so some codes are zero and some are not.
        let lambdas = (0..<p).map { _ in Float(rng.uniform(0.3, 0.9) / (s.lambdaIsPenalty && s.threshold != .hard ? alpha : 1)) }
        let encoder = UnrolledEncoder(layers: layers, algorithm: s.fista ? .fista : .ista, threshold: s.threshold,
                                      lambda: .perAtom(lambdas), step: .fixed(Float(alpha)),
                                      lambdaIsPenalty: s.lambdaIsPenalty)
        let dOp = GenericDense(inner: try DenseDictionary(weights: d))
        let eOp = s.untied ? GenericDense(inner: try DenseDictionary(weights: e)) : nil
        let (codes, trace) = try encoder.forward(x, with: dOp, analysis: eOp, beta: Float(s.beta))
        let grads = trace.gradients(codeGradient: c, lambda: true)

        let (dd, ed, ld, xd, cd) = (doubles(d), doubles(e), lambdas.map(Double.init), doubles(x), doubles(c))
        let z = Self.loop(s, d: dd, e: ed, lambdas: ld, x: xd, p: p, m: m, layers: layers, alpha: alpha)
        #expect(relativeDifference(doubles(codes), z) < 1e-5)
        #expect(z.contains { $0 != 0 } && z.contains { $0 == 0 })   // both sides of the threshold are exercised

        func loss(_ d: [Double], _ e: [Double], _ l: [Double]) -> Double {
            zip(Self.loop(s, d: d, e: e, lambdas: l, x: xd, p: p, m: m, layers: layers, alpha: alpha), cd).reduce(0) { $0 + $1.0 * $1.1 }
        }
        let gl = Self.centralDifferences(ld) { loss(dd, ed, $0) }
        #expect(relativeDifference(grads.lambda!.map(Double.init), gl) < 1e-3, "∂L/∂λ \(grads.lambda!) vs \(gl)")
        if s.untied {
            let gd = Self.centralDifferences(dd) { loss($0, ed, ld) }, ge = Self.centralDifferences(ed) { loss(dd, $0, ld) }
            #expect(relativeDifference(doubles(grads.weights!), gd) < 1e-3)
            #expect(relativeDifference(doubles(grads.analysis!), ge) < 1e-3)
        } else {
            let gw = Self.centralDifferences(dd) { loss($0, $0, ld) }
            #expect(grads.analysis == nil)
            #expect(relativeDifference(doubles(grads.weights!), gw) < 1e-3)
        }
    }

    /// The same loop over a strided 2-D convolutional dictionary whose code grid overhangs the image
    /// (stride 2, 3×3 filters, 7×8 images: the last code column's filters are cropped), with one
    /// threshold per filter, tied and untied: codes and ∂/∂filters, ∂/∂analysis filters, ∂/∂λ against
    /// the Double loop over the convolution's matrix built from its definition.
    @Test(arguments: settings)
    func convolutionalGradientsMatchADoubleLoop(_ s: Setting) throws {
        let (c, k, stride, h, w, batch) = (2, 3, 2, 7, 8, 2)
        var rng = Random(seed: 43)
        let dOp = try Convolution2DDictionary(filters: c, kernel: k, stride: stride, height: h, width: w, rng: &rng)
        var eOp: Convolution2DDictionary?
        if s.untied {
            var e = dOp
            e.weights = dOp.weights + 0.3 * Tensor.normal(dOp.weights.shape, rng: &rng)
            eOp = e
        }
        let x = Tensor.normal([batch, h, w], rng: &rng)
        let lambdas = (0..<c).map { _ in Float(rng.uniform(0.2, 0.5) / (s.lambdaIsPenalty ? alpha : 1)) }
        let encoder = UnrolledEncoder(layers: layers, algorithm: s.fista ? .fista : .ista, threshold: s.threshold,
                                      lambda: .perAtom(lambdas), step: .fixed(Float(alpha)), lambdaIsPenalty: s.lambdaIsPenalty)
        let (codes, trace) = try encoder.forward(x, with: dOp, analysis: eOp, beta: Float(s.beta))
        let cTensor = Tensor.normal(codes.shape, rng: &rng)
        let grads = trace.gradients(codeGradient: cTensor, lambda: true)

        let m = h * w
        let (fd0, fe0, xd, cd) = (doubles(dOp.weights), doubles((eOp ?? dOp).weights), doubles(x), doubles(cTensor))
        func run(_ fd: [Double], _ fe: [Double], _ l: [Double]) -> [Double] {
            let (d, p) = Self.convolutionMatrix(fd, filters: c, kernel: k, stride: stride, height: h, width: w)
            let e = Self.convolutionMatrix(fe, filters: c, kernel: k, stride: stride, height: h, width: w).matrix
            let perEntry = l.flatMap { [Double](repeating: $0, count: p / c) }
            return Self.loop(s, d: d, e: e, lambdas: perEntry, x: xd, p: p, m: m, layers: layers, alpha: alpha)
        }
        let ld = lambdas.map(Double.init)
        let z = run(fd0, fe0, ld)
        #expect(codes.shape == [batch, c, 3, 4] && z.count == codes.count)
        #expect(relativeDifference(doubles(codes), z) < 1e-5)
        #expect(z.contains { $0 != 0 } && z.contains { $0 == 0 })
        func loss(_ fd: [Double], _ fe: [Double], _ l: [Double]) -> Double { zip(run(fd, fe, l), cd).reduce(0) { $0 + $1.0 * $1.1 } }
        let gl = Self.centralDifferences(ld) { loss(fd0, fe0, $0) }
        #expect(relativeDifference(grads.lambda!.map(Double.init), gl) < 1e-3, "∂L/∂λ \(grads.lambda!) vs \(gl)")
        if s.untied {
            #expect(relativeDifference(doubles(grads.weights!), Self.centralDifferences(fd0) { loss($0, fe0, ld) }) < 1e-5)
            #expect(relativeDifference(doubles(grads.analysis!), Self.centralDifferences(fe0) { loss(fd0, $0, ld) }) < 1e-5)
        } else {
            #expect(grads.analysis == nil)
            #expect(relativeDifference(doubles(grads.weights!), Self.centralDifferences(fd0) { loss($0, $0, ld) }) < 1e-5)
        }
    }

    /// The convex baseline is this loop run to a tolerance: it stops early, and its codes satisfy the
    /// lasso's optimality conditions.
    @Test func convexSolverIsTheLoopRunToATolerance() throws {
        var rng = Random(seed: 3)
        var w = Tensor.normal([p, m], rng: &rng)
        w.normalizeRows()
        let x = Tensor.normal([batch, m], rng: &rng)
        let op = try DenseDictionary(weights: w)
        let l = op.lipschitz(iterations: 200, rng: &rng)
        let solver = ConvexLassoSolver(lambda: .scalar(0.1), alpha: 1 / l, tolerance: 1e-7, maxIterations: 50_000)
        let (codes, iterations) = try solver.solve(x, operator: op)
        #expect(iterations > 1 && iterations < 50_000)
        // Optimality: |Wᵢ·(x − zW)| ≤ λ off the support, = λ·sign(z) on it.
        var r = x
        r.add(op.apply(codes), scaledBy: -1)
        let corr = op.adjoint(r)
        for q in 0..<codes.count {
            if codes.data[q] == 0 {
                #expect(abs(corr.data[q]) <= 0.1 + 1e-3)
            } else {
                #expect(abs(corr.data[q] - 0.1 * (codes.data[q] > 0 ? 1 : -1)) < 1e-3)
            }
        }
    }
}
