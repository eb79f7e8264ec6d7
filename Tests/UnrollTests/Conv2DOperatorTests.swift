import Foundation
import Testing
import Unroll
import UnrollCore

/// The 2-D convolutional dictionary against an independent dense reference: the operator written out
/// as an explicit matrix (atoms as rows: one row per code position, the filter placed at (i·s, j·s)
/// in the padded image and cropped), built by plain loops in Double.
@Suite struct Conv2DOperatorTests {
    /// The dense [C·Ho·Wo, H·W] matrix of filters `h` ([C, K, K] flattened) for H×W images at stride s.
    static func denseMatrix(_ h: [Double], c: Int, k: Int, s: Int, height: Int, width: Int) -> [Double] {
        let ho = (height - k + s - 1) / s + 1, wo = (width - k + s - 1) / s + 1
        var w = [Double](repeating: 0, count: c * ho * wo * height * width)
        for f in 0..<c {
            for i in 0..<ho {
                for j in 0..<wo {
                    let row = (f * ho + i) * wo + j
                    for a in 0..<k {
                        for b in 0..<k {
                            let (y, x) = (i * s + a, j * s + b)
                            if y < height && x < width { w[row * height * width + y * width + x] = h[(f * k + a) * k + b] }
                        }
                    }
                }
            }
        }
        return w
    }

    static func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = Random(seed: seed)
        return Tensor.normal(shape, rng: &rng)
    }

    /// (C, K, stride, H, W): stride 1, stride > 1 with exact fit, and with padding on one or both sides.
    static let geometries = [(2, 3, 1, 6, 5), (3, 3, 2, 7, 9), (2, 3, 2, 6, 8), (2, 4, 3, 9, 11)]

    @Test func applyAndAdjointMatchTheDenseMatrix() throws {
        for (n, (c, k, s, hh, ww)) in Self.geometries.enumerated() {
            let filters = Self.random([c, 1, k, k], seed: UInt64(n + 1))
            let op = try Convolution2DDictionary(filters: filters, stride: s, height: hh, width: ww)
            let codeShape = try op.codeShape(signalShape: [2, hh, ww])
            #expect(try op.signalShape(codeShape: codeShape) == [2, hh, ww])
            let z = Self.random(codeShape, seed: 100 + UInt64(n)), x = Self.random([2, hh, ww], seed: 200 + UInt64(n))
            let d = Self.denseMatrix(doubles(filters), c: c, k: k, s: s, height: hh, width: ww)
            let p = codeShape.dropFirst().reduce(1, *), m = hh * ww
            var applyRef = [Double](repeating: 0, count: 2 * m), adjointRef = [Double](repeating: 0, count: 2 * p)
            let zd = doubles(z), xd = doubles(x)
            for b in 0..<2 {
                for r in 0..<p {
                    for q in 0..<m {
                        applyRef[b * m + q] += zd[b * p + r] * d[r * m + q]
                        adjointRef[b * p + r] += xd[b * m + q] * d[r * m + q]
                    }
                }
            }
            #expect(relativeDifference(doubles(op.apply(z)), applyRef) < 1e-5, "apply, geometry \(n)")
            #expect(relativeDifference(doubles(op.adjoint(x)), adjointRef) < 1e-5, "adjoint, geometry \(n)")
        }
    }

    @Test func adjointnessWithAndWithoutPadding() throws {
        for (n, (c, k, s, hh, ww)) in (Self.geometries + [(4, 9, 4, 40, 37)]).enumerated() {
            let op = try Convolution2DDictionary(filters: Self.random([c, 1, k, k], seed: 7 + UInt64(n)), stride: s,
                                                 height: hh, width: ww)
            let z = Self.random(try op.codeShape(signalShape: [3, hh, ww]), seed: 17), x = Self.random([3, hh, ww], seed: 27)
            let dz = op.apply(z), dtx = op.adjoint(x)
            let lhs = zip(doubles(dz), doubles(x)).reduce(0.0) { $0 + $1.0 * $1.1 }
            let rhs = zip(doubles(z), doubles(dtx)).reduce(0.0) { $0 + $1.0 * $1.1 }
            // Float32 products: the error scales with ‖Dz‖‖x‖ (the inner product itself may cancel to near 0).
            let scale = (dz.squaredNorm() * x.squaredNorm()).squareRoot()
            #expect(abs(lhs - rhs) <= 1e-6 * scale, "geometry \(n): ⟨Dz, x⟩ \(lhs) vs ⟨z, Dᵀx⟩ \(rhs), scale \(scale)")
            // A wrong adjoint (e.g. flipped filters, or the padding on the wrong side) is off by O(scale).
            #expect(scale > 10)
        }
    }

    /// Padding and cropping: apply = the crop of UnrollCore's transposed convolution at the padded size,
    /// adjoint = conv2d of the zero-padded image, and sizes that fit the stride need neither.
    @Test func paddingAndCroppingRoundTrip() throws {
        let filters = Self.random([3, 1, 9, 9], seed: 5)
        let op = try Convolution2DDictionary(filters: filters, stride: 4, height: 30, width: 27)
        #expect(op.codeHeight == 7 && op.codeWidth == 6)          // ⌈21/4⌉ + 1, ⌈18/4⌉ + 1
        #expect(op.paddedHeight == 33 && op.paddedWidth == 29 && !op.fitsExactly)
        let z = Self.random([2, 3, 7, 6], seed: 6)
        let full = z.convTranspose2d(filters, stride: 4, outputSize: (33, 29))
        let decoded = op.apply(z)
        var cropped = [Float]()
        for b in 0..<2 { for r in 0..<30 { for q in 0..<27 { cropped.append(full.data[(b * 33 + r) * 29 + q]) } } }
        #expect(decoded.shape == [2, 30, 27] && decoded.data == cropped)

        let x = Self.random([2, 30, 27], seed: 8)
        var padded = Tensor(zeros: [2, 1, 33, 29])
        for b in 0..<2 { for r in 0..<30 { for q in 0..<27 { padded.data[(b * 33 + r) * 29 + q] = x.data[(b * 30 + r) * 27 + q] } } }
        #expect(op.adjoint(x).data == padded.conv2d(filters, stride: 4).data)

        // PUDLE's geometry: 129×129 crops fit 9×9 at stride 4 exactly; a resized copy keeps the filters.
        let exact = try op.resized(height: 129, width: 129)
        #expect(exact.fitsExactly && exact.codeHeight == 31 && exact.weights == op.weights)
        let back = try exact.resized(height: 30, width: 27)
        #expect(back == op)
    }

    @Test func weightGradientMatchesFiniteDifferences() throws {
        for (n, (c, k, s, hh, ww)) in Self.geometries.enumerated() {
            let filters = Self.random([c, 1, k, k], seed: 30 + UInt64(n))
            let op = try Convolution2DDictionary(filters: filters, stride: s, height: hh, width: ww)
            let z = Self.random(try op.codeShape(signalShape: [2, hh, ww]), seed: 40), r = Self.random([2, hh, ww], seed: 50)
            let zd = doubles(z), rd = doubles(r), p = z.count / 2, m = hh * ww
            func objective(_ h: [Double]) -> Double {       // ⟨r, D(h) z⟩
                let d = Self.denseMatrix(h, c: c, k: k, s: s, height: hh, width: ww)
                var total = 0.0
                for b in 0..<2 { for row in 0..<p where zd[b * p + row] != 0 { for q in 0..<m { total += rd[b * m + q] * zd[b * p + row] * d[row * m + q] } } }
                return total
            }
            let h0 = doubles(filters)
            let fd = (0..<h0.count).map { q -> Double in
                var hp = h0, hm = h0
                hp[q] += 1e-3
                hm[q] -= 1e-3
                return (objective(hp) - objective(hm)) / 2e-3
            }
            let g = op.weightGradient(residual: r, codes: z)
            #expect(g.shape == [c, 1, k, k])
            #expect(relativeDifference(doubles(g), fd) < 1e-5, "geometry \(n)")
        }
    }

    /// g_dec, g_ae-lasso and g_ae-ls through the conv operator (generic layer kernel), ISTA and FISTA,
    /// soft and hard thresholds, scalar and per-filter λ, against central differences of the dense
    /// Double reference (`ReferenceUnrolled` on the explicit matrix), chained back to the filter entries.
    @Test func encoderGradientModesMatchFiniteDifferences() throws {
        let (c, k, s, hh, ww, batch, layers) = (2, 3, 2, 6, 7, 2, 5)
        let alpha: Float = 0.1
        for threshold in [Threshold.soft, .hard] {
            for algorithm in UnrolledEncoder.Algorithm.allCases {
                for perFilter in [false, true] {
                    let base: Float = threshold == .hard ? 0.08 : 0.3
                    let lambda: Lambda = perFilter ? .perAtom([base * 0.7, base * 1.3]) : .scalar(base)
                    let encoder = UnrolledEncoder(layers: layers, algorithm: algorithm, threshold: threshold,
                                                  lambda: lambda, step: .fixed(alpha))
                    // A problem whose pre-activations stay away from the threshold's kink and whose codes are partly sparse.
                    var found: (Tensor, Tensor, ReferenceUnrolled)?
                    for seed in UInt64(1)...400 {
                        var rng = Random(seed: seed)
                        var filters = Tensor.normal([c, 1, k, k], rng: &rng)
                        filters = filters.reshaped([c, k * k])
                        filters.normalizeRows()
                        filters = filters.reshaped([c, 1, k, k])
                        let x = Tensor.normal([batch, hh, ww], rng: &rng)
                        let op = try Convolution2DDictionary(filters: filters, stride: s, height: hh, width: ww)
                        let positions = op.codeHeight * op.codeWidth, p = c * positions
                        let lambdas = lambda.values(atoms: c).flatMap { [Double](repeating: Double($0), count: positions) }
                        let ref = ReferenceUnrolled(p: p, m: hh * ww, batch: batch, layers: layers, alpha: Double(alpha),
                                                    threshold: threshold, fista: algorithm == .fista, lambdas: lambdas)
                        let d = Self.denseMatrix(doubles(filters), c: c, k: k, s: s, height: hh, width: ww)
                        let (z, margin) = ref.forward(w: d, x: doubles(x))
                        let zeros = z.filter { $0 == 0 }.count
                        if margin > 2e-3 && zeros >= z.count / 5 && zeros <= 4 * z.count / 5 { found = (filters, x, ref); break }
                    }
                    let (filters, x, ref) = try #require(found, "no well-conditioned problem for \(threshold) \(algorithm)")
                    let op = try Convolution2DDictionary(filters: filters, stride: s, height: hh, width: ww)
                    let h0 = doubles(filters), xd = doubles(x)
                    func dense(_ h: [Double]) -> [Double] { Self.denseMatrix(h, c: c, k: k, s: s, height: hh, width: ww) }
                    let fixed = ref.forward(w: dense(h0), x: xd).z
                    for mode in [GradientMode.decoder, .lasso, .leastSquares] {
                        let fd = (0..<h0.count).map { q -> Double in
                            var hp = h0, hm = h0
                            hp[q] += 1e-6
                            hm[q] -= 1e-6
                            return (ref.modeLoss(mode, w: dense(hp), x: xd, fixedCodes: fixed)
                                - ref.modeLoss(mode, w: dense(hm), x: xd, fixedCodes: fixed)) / 2e-6
                        }
                        let r = try mode.evaluate(signals: x, operator: op, encoder: encoder)
                        let err = relativeDifference(doubles(r.gradient), fd)
                        #expect(err < 2e-3, "\(mode) \(threshold) \(algorithm) perFilter \(perFilter): relative error \(err)")
                        let refLoss = ref.modeLoss(mode, w: dense(h0), x: xd, fixedCodes: fixed)
                        #expect(abs(r.losses.loss - refLoss) < 1e-4 * max(1, refLoss))
                    }
                }
            }
        }
    }

    @Test func normalizeAndLipschitz() throws {
        var rng = Random(seed: 9)
        var op = try Convolution2DDictionary(filters: 3 * Self.random([3, 1, 4, 4], seed: 10), stride: 2, height: 10, width: 9)
        op.normalize()
        for f in 0..<3 {
            let norm = op.weights.data[(f * 16)..<((f + 1) * 16)].reduce(0.0) { $0 + Double($1 * $1) }.squareRoot()
            #expect(abs(norm - 1) < 1e-5)
        }
        // ‖D‖₂² of the dense matrix by many Double power iterations.
        let d = Self.denseMatrix(doubles(op.weights), c: 3, k: 4, s: 2, height: 10, width: 9)
        let p = 3 * op.codeHeight * op.codeWidth, m = 90
        var u = [Double](repeating: 1, count: p), top = 0.0
        for _ in 0..<2000 {
            var x = [Double](repeating: 0, count: m)
            for r in 0..<p { for q in 0..<m { x[q] += u[r] * d[r * m + q] } }
            var v = [Double](repeating: 0, count: p)
            for r in 0..<p { for q in 0..<m { v[r] += x[q] * d[r * m + q] } }
            top = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            u = v.map { $0 / top }
        }
        let l = op.lipschitz(iterations: 300, rng: &rng)
        #expect(abs(Double(l) - top) < 1e-3 * top, "power iteration \(l) vs dense \(top)")
    }

    @Test func badGeometryThrowsClearErrors() throws {
        let f = Self.random([2, 1, 9, 9], seed: 1)
        #expect(throws: UnrollError.self) { try Convolution2DDictionary(filters: f, stride: 4, height: 8, width: 20) }
        #expect(throws: UnrollError.self) { try Convolution2DDictionary(filters: f, stride: 0, height: 20, width: 20) }
        #expect(throws: UnrollError.self) { try Convolution2DDictionary(filters: Self.random([2, 1, 3, 4], seed: 1), stride: 1, height: 9, width: 9) }
        let op = try Convolution2DDictionary(filters: f, stride: 4, height: 20, width: 20)
        do {
            _ = try op.resized(height: 5, width: 40)
            Issue.record("a 5×40 image with 9×9 filters should throw")
        } catch let e as UnrollError {
            #expect(e.description.contains("smaller than the 9×9 filters"), "\(e)")
        }
        #expect(throws: UnrollError.self) { try op.codeShape(signalShape: [1, 21, 20]) }
    }
}
