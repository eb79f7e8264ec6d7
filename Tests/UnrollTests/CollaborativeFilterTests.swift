import Foundation
import Testing
import Unroll
import UnrollCore

/// The collaborative filter (BM3D's two steps): their definitions written out in Double, one reference at a
/// time; closed forms; the bits at one and two workers; its place in `Denoiser.denoise`; bad input.
@Suite struct CollaborativeFilterTests {
    /// b by its definition: for each reference, every candidate's distance, a stable sort (the reference
    /// first), the DCT and Hadamard matrices applied as products, and the sums. With a pilot, the second step
    /// f on the same groups: the orthonormal Haar matrix across the group, the noisy coefficients scaled by
    /// the pilot's P²/(P² + μ²σ²), weight 1/Σ factor².
    static func direct(_ u: Tensor, sigma: Double, filter c: CollaborativeFilter, pilot: Tensor? = nil) -> [Double] {
        let (rows, cols, k) = (u.shape[0], u.shape[1], CollaborativeFilter.patchSide)
        func at(_ i: Int, _ j: Int) -> Double { Double(u[i, j]) }
        func grid(_ n: Int) -> [Int] { var g = Array(stride(from: 0, through: n - k, by: c.step)); if g.last != n - k { g.append(n - k) }; return g }
        var dct = [[Double]](repeating: [Double](repeating: 0, count: k), count: k)
        for f in 0..<k {
            let scale = f == 0 ? sqrt(1.0 / Double(k)) : sqrt(2.0 / Double(k))
            for x in 0..<k { dct[f][x] = scale * cos(Double.pi * Double(2 * x + 1) * Double(f) / Double(2 * k)) }
        }
        func bessel0(_ x: Double) -> Double { var (s, a) = (0.0, 1.0); for m in 1..<60 { s += a; a *= x * x / 4 / Double(m * m) }; return s }
        let kaiser1 = (0..<k).map { n -> Double in let t = 2 * Double(n) / Double(k - 1) - 1; return bessel0(2 * sqrt(1 - t * t)) / bessel0(2) }
        let tau = (sigma <= 40.0 / 255 ? 2500.0 : 5000.0) / (255 * 255) * Double(k * k)
        var num = [Double](repeating: 0, count: rows * cols), den = num
        for i in grid(rows) {
            for j in grid(cols) {
                var found: [(d: Double, order: Int, a: Int, b: Int)] = []
                for dy in -c.searchRadius...c.searchRadius {
                    for dx in -c.searchRadius...c.searchRadius {
                        let (a, b) = (i + dy, j + dx)
                        guard (0...(rows - k)).contains(a), (0...(cols - k)).contains(b) else { continue }
                        var d = 0.0
                        for x in 0..<k { for y in 0..<k { let e = at(i + x, j + y) - at(a + x, b + y); d += e * e } }
                        if d <= tau { found.append((d, dy == 0 && dx == 0 ? -1 : found.count, a, b)) }
                    }
                }
                found.sort { ($0.d, $0.order) < ($1.d, $1.order) }
                var n = 1
                while 2 * n <= min(found.count, c.groupSize) { n *= 2 }
                // The group's 2-D DCTs, [n][64].
                var g: [[Double]] = found.prefix(n).map { m in
                    (0..<(k * k)).map { e in
                        var s = 0.0
                        for x in 0..<k { for y in 0..<k { s += dct[e / k][x] * at(m.a + x, m.b + y) * dct[e % k][y] } }
                        return s
                    }
                }
                // The transform across the group, an orthonormal n × n matrix: Hadamard, or Haar ([H ⊗ (1 1); I ⊗ (1 −1)]/√2).
                var across: [[Double]] = [[1]]
                while across.count < n {
                    let m = across.count
                    var rows: [[Double]]
                    if pilot == nil {
                        rows = across.map { $0 + $0 } + across.map { row in row + row.map { -$0 } }
                    } else {
                        rows = across.map { row in row.flatMap { [$0, $0] } }
                        for i in 0..<m {
                            var difference = [Double](repeating: 0, count: 2 * m)
                            (difference[2 * i], difference[2 * i + 1]) = (1, -1)
                            rows.append(difference)
                        }
                    }
                    across = rows.map { row in row.map { $0 / 2.0.squareRoot() } }
                }
                func forward(_ x: [[Double]]) -> [[Double]] { (0..<n).map { r in (0..<(k * k)).map { e in (0..<n).reduce(0.0) { $0 + across[r][$1] * x[$1][e] } } } }
                var t = forward(g), w = 1.0
                if let pilot {
                    let p = forward(found.prefix(n).map { m in
                        (0..<(k * k)).map { e in
                            var s = 0.0
                            for x in 0..<k { for y in 0..<k { s += dct[e / k][x] * Double(pilot[m.a + x, m.b + y]) * dct[e % k][y] } }
                            return s
                        }
                    })
                    let noise = pow(Double(c.wienerThreshold) * sigma, 2)
                    var squares = 0.0
                    for r in 0..<n { for e in 0..<(k * k) { let d = p[r][e] * p[r][e] + noise, f = d > 0 ? p[r][e] * p[r][e] / d : 0; t[r][e] *= f; squares += f * f } }
                    if squares > 0 { w = 1 / squares }
                } else {
                    var nonzero = 0
                    for r in 0..<n { for e in 0..<(k * k) { if abs(t[r][e]) < Double(c.threshold) * sigma { t[r][e] = 0 } else { nonzero += 1 } } }
                    if nonzero > 0 { w = 1 / Double(nonzero) }
                }
                g = (0..<n).map { r in (0..<(k * k)).map { e in (0..<n).reduce(0.0) { $0 + across[$1][r] * t[$1][e] } } }
                for (m, member) in found.prefix(n).enumerated() {
                    for x in 0..<k {
                        for y in 0..<k {
                            var p = 0.0
                            for e in 0..<(k * k) { p += dct[e / k][x] * g[m][e] * dct[e % k][y] }
                            let kw = w * kaiser1[x] * kaiser1[y], o = (member.a + x) * cols + member.b + y
                            num[o] += kw * p
                            den[o] += kw
                        }
                    }
                }
            }
        }
        return zip(num, den).map { $0 / $1 }
    }

    /// A smooth pattern with a stripe, plus noise, so that groups of every size and thresholds on both sides occur.
    static func noisyImage(_ rows: Int, _ cols: Int, sigma: Float, seed: UInt64) -> Tensor {
        var rng = Random(seed: seed)
        let noise = Tensor.uniform([rows, cols], rng: &rng)
        return Tensor(shape: [rows, cols], data: (0..<(rows * cols)).map { p in
            let (i, j) = (Float(p / cols), Float(p % cols))
            return 0.5 + 0.3 * sin(j / 1.7) * (i < Float(rows) / 2 ? 1 : 0.2) + 0.1 * cos(i / 5) + sigma * 3.4 * (noise.data[p] - 0.5)
        })
    }

    @Test(arguments: [(29, 37, 3, 5, 8, Float(25)), (24, 19, 2, 4, 4, 25), (33, 30, 3, 6, 16, 50), (8, 8, 1, 3, 2, 15), (35, 26, 4, 7, 16, 25)])
    func matchesTheDefinition(_ rows: Int, _ cols: Int, _ step: Int, _ radius: Int, _ group: Int, _ sigma255: Float) throws {
        let sigma = sigma255 / 255
        let u = Self.noisyImage(rows, cols, sigma: sigma, seed: UInt64(rows * cols))
        let filter = try CollaborativeFilter(weight: 1, threshold: 2.7, groupSize: group, searchRadius: radius, step: step)
        let ours = try filter.basicEstimate(u, sigma: sigma).data
        let reference = Self.direct(u, sigma: Double(sigma), filter: filter)
        let worst = zip(ours, reference).map { abs(Double($0) - $1) }.max()!
        #expect(worst < 2e-5, "largest difference \(worst)")
        // It filters: the estimate is not the input.
        #expect(zip(ours, u.data).map { abs($0 - $1) }.max()! > sigma / 4)
        // The second step on the same groups, with the first step's estimate (smoothed, so unlike the noisy image) as the pilot.
        let pilot = Tensor(shape: u.shape, data: ours.enumerated().map { $1 + 0.03 * sin(Float($0) / 3) })
        let second = try filter.with(weight: 1, threshold: 2.7, wienerWeight: 1, wienerThreshold: 0.8)
        let f = try second.finalEstimate(u, pilot: pilot, sigma: sigma).data
        let fReference = Self.direct(u, sigma: Double(sigma), filter: second, pilot: pilot)
        let fWorst = zip(f, fReference).map { abs(Double($0) - $1) }.max()!
        #expect(fWorst < 2e-5, "second step: largest difference \(fWorst)")
        #expect(zip(f, u.data).map { abs($0 - $1) }.max()! > sigma / 4 && zip(f, ours).map { abs($0 - $1) }.max()! > sigma / 20)
    }

    /// A constant image is left as it is (every coefficient but the groups' DC is zero), and so is any image
    /// when the threshold is 0 (the transforms are orthonormal; each pixel a weighted mean of itself). The
    /// second step with μ = 0 (every factor 1 where the pilot's coefficient is not 0) gives the noisy image back,
    /// and with the noisy image as its own pilot and μ → ∞ it gives P²/(μσ)² ≪ 1 times it.
    @Test func closedForms() throws {
        let flat = Tensor(shape: [20, 23], data: .init(repeating: 0.37, count: 460))
        let b = try CollaborativeFilter(weight: 1).basicEstimate(flat, sigma: 0.1)
        #expect(b.data.allSatisfy { abs($0 - 0.37) < 1e-6 })
        let u = Self.noisyImage(21, 18, sigma: 0.1, seed: 3)
        let identity = try CollaborativeFilter(weight: 1, threshold: 0).basicEstimate(u, sigma: 0.1)
        #expect(zip(identity.data, u.data).map { abs($0 - $1) }.max()! < 1e-5)
        let pilot = Tensor(shape: u.shape, data: u.data.map { $0 + 0.01 })
        let passThrough = try CollaborativeFilter(weight: 1, wienerWeight: 1, wienerThreshold: 0).finalEstimate(u, pilot: pilot, sigma: 0.1)
        #expect(zip(passThrough.data, u.data).map { abs($0 - $1) }.max()! < 1e-5)
        let faint = try CollaborativeFilter(weight: 1, wienerWeight: 1, wienerThreshold: 1e6).finalEstimate(u, pilot: u, sigma: 0.1)
        #expect(faint.data.allSatisfy { abs($0) < 1e-6 })
    }

    /// Each band sums into its own buffers, added in band order, so the worker count does not change a bit.
    @Test func sameBitsAtOneAndTwoWorkers() throws {
        let u = Self.noisyImage(97, 61, sigma: 25.0 / 255, seed: 9), filter = try CollaborativeFilter(weight: 0.3)
        let estimate = Tensor(shape: u.shape, data: u.data.map { $0 * 0.9 }), both = try filter.with(weight: 0.3, threshold: 2.7, wienerWeight: 0.5)
        let one = try Parallel.withWorkers(1) { try both.apply(estimate, noisy: u, sigma: 25.0 / 255) }
        let two = try Parallel.withWorkers(2) { try both.apply(estimate, noisy: u, sigma: 25.0 / 255) }
        #expect(one.data == two.data)
    }

    /// `Denoiser.denoise` with the filter is (1 − a)·(the estimate with the non-local stage) + a·b(noisy).
    @Test func denoiseMixesItIn() throws {
        var rng = Random(seed: 7)
        let net = try CRsAE2DNetwork(atoms: 3, kernel: 3, stride: 2, layers: 4, lipschitz: 4, tying: .untied, threshold: 0.05, rng: &rng)
        let noisy = Tensor.uniform([15, 12], rng: &rng)
        var plain = try net.autoencoder(height: 15, width: 12, adaptiveSigma: 0.1).atNoise(0.2)
        plain.nonLocal = try NonLocalMeans(strength: 0.5, patchRadius: 1, searchRadius: 3)
        var mixed = plain
        mixed.collaborative = try CollaborativeFilter(weight: 0.25)
        let estimate = try Denoiser.denoise(noisy, model: plain), b = try mixed.collaborative!.basicEstimate(noisy, sigma: 0.2)
        let expected = zip(estimate.data, b.data).map { 0.75 * $0 + 0.25 * $1 }
        #expect(try Denoiser.denoise(noisy, model: mixed).data == expected)
        // Then the second step's share c, with that mix as the pilot.
        mixed.collaborative = try mixed.collaborative!.with(weight: 0.25, threshold: 2.7, wienerWeight: 0.4)
        let pilot = Tensor(shape: noisy.shape, data: expected), f = try mixed.collaborative!.finalEstimate(noisy, pilot: pilot, sigma: 0.2)
        #expect(try Denoiser.denoise(noisy, model: mixed).data == zip(expected, f.data).map { 0.6 * $0 + 0.4 * $1 })
        var fixed = try net.autoencoder(height: 15, width: 12)
        fixed.collaborative = mixed.collaborative
        #expect(throws: UnrollError.self) { try Denoiser.denoise(noisy, model: fixed) }
    }

    @Test func badInputGetsClearErrors() throws {
        for (w, l, g, r, s) in [(Float(0), Float(2.7), 16, 19, 3), (1.5, 2.7, 16, 19, 3), (.nan, 2.7, 16, 19, 3), (0.5, -1, 16, 19, 3),
                                (0.5, .infinity, 16, 19, 3), (0.5, 2.7, 12, 19, 3), (0.5, 2.7, 64, 19, 3), (0.5, 2.7, 16, 0, 3), (0.5, 2.7, 16, 19, 5)] {
            #expect(throws: UnrollError.self) { try CollaborativeFilter(weight: w, threshold: l, groupSize: g, searchRadius: r, step: s) }
        }
        for (c, mu) in [(Float(-0.1), Float(0.6)), (1.2, 0.6), (.nan, 0.6), (0.5, -0.1), (0.5, .nan)] {
            #expect(throws: UnrollError.self) { try CollaborativeFilter(weight: 0.5, wienerWeight: c, wienerThreshold: mu) }
        }
        let filter = try CollaborativeFilter(weight: 0.5)
        #expect(throws: UnrollError.self) { try filter.basicEstimate(Tensor(shape: [7, 30], data: .init(repeating: 0, count: 210)), sigma: 0.1) }
        #expect(throws: UnrollError.self) { try filter.basicEstimate(Tensor(shape: [2, 9, 9], data: .init(repeating: 0, count: 162)), sigma: 0.1) }
        #expect(throws: UnrollError.self) { try filter.basicEstimate(Tensor(shape: [9, 9], data: .init(repeating: 0, count: 81)), sigma: 0) }
        #expect(throws: UnrollError.self) { try filter.basicEstimate(Tensor(shape: [9, 9], data: .init(repeating: .nan, count: 81)), sigma: 0.1) }
        #expect(throws: UnrollError.self) {
            try filter.apply(Tensor(shape: [9, 9], data: .init(repeating: 0, count: 81)), noisy: Tensor(shape: [9, 10], data: .init(repeating: 0, count: 90)), sigma: 0.1)
        }
        let zeros = Tensor(shape: [9, 9], data: .init(repeating: 0, count: 81))
        #expect(throws: UnrollError.self) { try filter.finalEstimate(zeros, pilot: Tensor(shape: [9, 8], data: .init(repeating: 0, count: 72)), sigma: 0.1) }
        #expect(throws: UnrollError.self) { try filter.finalEstimate(zeros, pilot: Tensor(shape: [9, 9], data: .init(repeating: .infinity, count: 81)), sigma: 0.1) }
    }
}
