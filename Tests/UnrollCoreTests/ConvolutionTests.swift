import Testing
import UnrollCore

/// Direct-loop references (PyTorch semantics) in Double.
enum NaiveConv {
    /// y[b,o,oy,ox] = Σ_c,ki,kj w[o,c,ki,kj] · x[b,c,oy·s+ki−p, ox·s+kj−p]
    static func conv2d(_ x: Tensor, _ w: Tensor, stride s: Int, padding p: Int) -> [Double] {
        let (nb, cin, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (cout, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
        let ho = (h + 2 * p - kh) / s + 1, wo = (wd + 2 * p - kw) / s + 1
        var y = [Double](repeating: 0, count: nb * cout * ho * wo)
        for b in 0..<nb { for o in 0..<cout { for oy in 0..<ho { for ox in 0..<wo {
            var acc = 0.0
            for c in 0..<cin { for ki in 0..<kh { for kj in 0..<kw {
                let iy = oy * s + ki - p, ix = ox * s + kj - p
                if iy >= 0 && iy < h && ix >= 0 && ix < wd {
                    acc += Double(w.data[((o * cin + c) * kh + ki) * kw + kj]) * Double(x.data[((b * cin + c) * h + iy) * wd + ix])
                }
            } } }
            y[((b * cout + o) * ho + oy) * wo + ox] = acc
        } } } }
        return y
    }

    /// The scatter form: x[b,c,oy·s+ki−p, ox·s+kj−p] += w[o,c,ki,kj] · y[b,o,oy,ox].
    static func convTranspose2d(_ y: Tensor, _ w: Tensor, stride s: Int, padding p: Int, height h: Int, width wd: Int) -> [Double] {
        let (nb, cout, ho, wo) = (y.shape[0], y.shape[1], y.shape[2], y.shape[3])
        let (cin, kh, kw) = (w.shape[1], w.shape[2], w.shape[3])
        var x = [Double](repeating: 0, count: nb * cin * h * wd)
        for b in 0..<nb { for o in 0..<cout { for oy in 0..<ho { for ox in 0..<wo {
            let v = Double(y.data[((b * cout + o) * ho + oy) * wo + ox])
            for c in 0..<cin { for ki in 0..<kh { for kj in 0..<kw {
                let iy = oy * s + ki - p, ix = ox * s + kj - p
                if iy >= 0 && iy < h && ix >= 0 && ix < wd {
                    x[((b * cin + c) * h + iy) * wd + ix] += v * Double(w.data[((o * cin + c) * kh + ki) * kw + kj])
                }
            } } }
        } } } }
        return x
    }

    /// gw[o,c,ki,kj] = Σ_b,oy,ox g[b,o,oy,ox] · x[b,c,oy·s+ki−p, ox·s+kj−p]
    static func filterGradient2d(_ x: Tensor, _ g: Tensor, kh: Int, kw: Int, stride s: Int, padding p: Int) -> [Double] {
        let (nb, cin, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (cout, ho, wo) = (g.shape[1], g.shape[2], g.shape[3])
        var gw = [Double](repeating: 0, count: cout * cin * kh * kw)
        for o in 0..<cout { for c in 0..<cin { for ki in 0..<kh { for kj in 0..<kw {
            var acc = 0.0
            for b in 0..<nb { for oy in 0..<ho { for ox in 0..<wo {
                let iy = oy * s + ki - p, ix = ox * s + kj - p
                if iy >= 0 && iy < h && ix >= 0 && ix < wd {
                    acc += Double(g.data[((b * cout + o) * ho + oy) * wo + ox]) * Double(x.data[((b * cin + c) * h + iy) * wd + ix])
                }
            } } }
            gw[((o * cin + c) * kh + ki) * kw + kj] = acc
        } } } }
        return gw
    }
}

@Suite struct ConvolutionTests {
    /// (batch, Cin, Cout, H, W, Kh, Kw, stride, padding): strides 1…4, padding 0…2, non-square kernels.
    static let cases2d: [(Int, Int, Int, Int, Int, Int, Int, Int, Int)] = [
        (1, 1, 1, 5, 5, 3, 3, 1, 0),
        (2, 1, 4, 12, 11, 7, 7, 5, 0),
        (3, 2, 3, 9, 10, 3, 2, 2, 1),
        (2, 3, 2, 13, 8, 4, 3, 3, 2),
        (1, 2, 5, 11, 11, 2, 5, 4, 1),
        (2, 1, 2, 6, 7, 6, 7, 1, 0),   // kernel covers the whole input: 1×1 output
        (5, 2, 3, 8, 8, 3, 3, 1, 2),   // padding larger than needed
    ]

    @Test func conv2dMatchesDirectLoop() {
        var rng = Random(seed: 11)
        for (b, cin, cout, h, w, kh, kw, s, p) in Self.cases2d {
            let x = Tensor.normal([b, cin, h, w], rng: &rng)
            let f = Tensor.normal([cout, cin, kh, kw], rng: &rng)
            let y = x.conv2d(f, stride: s, padding: p)
            #expect(y.shape == [b, cout, (h + 2 * p - kh) / s + 1, (w + 2 * p - kw) / s + 1])
            #expect(maxRelativeError(y.data, NaiveConv.conv2d(x, f, stride: s, padding: p)) < 1e-5, "case \((b, cin, cout, h, w, kh, kw, s, p))")
        }
    }

    @Test func convTranspose2dMatchesScatterLoopAndIsTheAdjoint() {
        var rng = Random(seed: 12)
        for (b, cin, cout, h, w, kh, kw, s, p) in Self.cases2d {
            let g = ConvGeometry(inChannels: cin, outChannels: cout, inputHeight: h, inputWidth: w,
                                 kernelHeight: kh, kernelWidth: kw, stride: s, padding: p)
            let f = Tensor.normal([cout, cin, kh, kw], rng: &rng)
            let x = Tensor.normal([b, cin, h, w], rng: &rng)
            // y = Ax + noise keeps ⟨Ax, y⟩ far from zero, so the relative test is meaningful.
            let ax = x.conv2d(f, stride: s, padding: p)
            let y = ax + Tensor.normal(ax.shape, rng: &rng)
            let aty = y.convTranspose2d(f, stride: s, padding: p, outputSize: (h, w))
            #expect(aty.shape == [b, cin, h, w])
            #expect(maxRelativeError(aty.data, NaiveConv.convTranspose2d(y, f, stride: s, padding: p, height: h, width: w)) < 1e-5)
            let lhs = dot(ax, y), rhs = dot(x, aty)
            #expect(abs(lhs - rhs) <= 1e-5 * abs(lhs), "⟨Ax,y⟩ = \(lhs), ⟨x,Aᵀy⟩ = \(rhs) for \(g)")
        }
    }

    @Test func convTransposeOutputSizeResolvesStrideAmbiguity() {
        // With stride 3 and kernel 2, widths 11, 12 and 13 all convolve to 4 columns. As with PyTorch's
        // output_padding, the caller's output size decides; each must be accepted and be the exact adjoint.
        var rng = Random(seed: 13)
        let f = Tensor.normal([2, 1, 2, 2], rng: &rng)
        for w in [11, 12, 13] {
            let x = Tensor.normal([1, 1, 5, w], rng: &rng)
            let ax = x.conv2d(f, stride: 3)
            #expect(ax.shape == [1, 2, 2, 4])
            let y = Tensor.normal(ax.shape, rng: &rng)
            let aty = y.convTranspose2d(f, stride: 3, outputSize: (5, w))
            #expect(aty.shape == [1, 1, 5, w])
            #expect(abs(dot(ax, y) - dot(x, aty)) <= 1e-5 * max(1, abs(dot(ax, y))))
        }
    }

    @Test func filterGradient2dMatchesDirectFormula() {
        var rng = Random(seed: 14)
        for (b, cin, cout, h, w, kh, kw, s, p) in Self.cases2d {
            let x = Tensor.normal([b, cin, h, w], rng: &rng)
            let ho = (h + 2 * p - kh) / s + 1, wo = (w + 2 * p - kw) / s + 1
            let gy = Tensor.normal([b, cout, ho, wo], rng: &rng)
            let gw = Tensor.conv2dFilterGradient(input: x, outputGradient: gy, kernelSize: (kh, kw), stride: s, padding: p)
            #expect(gw.shape == [cout, cin, kh, kw])
            #expect(maxRelativeError(gw.data, NaiveConv.filterGradient2d(x, gy, kh: kh, kw: kw, stride: s, padding: p)) < 1e-5)
        }
    }

    @Test func filterGradientMatchesFiniteDifferences() {
        // f(w) = ⟨g, conv2d(x, w)⟩ is linear in w, so a central difference is exact up to rounding.
        var rng = Random(seed: 15)
        let x = Tensor.normal([2, 2, 9, 8], rng: &rng)
        var f = Tensor.normal([3, 2, 3, 2], rng: &rng)
        let g = Tensor.normal([2, 3, 5, 5], rng: &rng)
        let grad = Tensor.conv2dFilterGradient(input: x, outputGradient: g, kernelSize: (3, 2), stride: 2, padding: 1)
        let h: Float = 0.25
        for i in stride(from: 0, to: f.count, by: 5) {
            let w0 = f.data[i]
            f.data[i] = w0 + h
            let plus = dot(g, x.conv2d(f, stride: 2, padding: 1))
            f.data[i] = w0 - h
            let minus = dot(g, x.conv2d(f, stride: 2, padding: 1))
            f.data[i] = w0
            let fd = (plus - minus) / (2 * Double(h))
            #expect(abs(fd - Double(grad.data[i])) <= 1e-4 * max(1, abs(fd)), "element \(i): fd \(fd), kernel \(grad.data[i])")
        }
    }

    @Test func conv1dMatchesDirectLoopForStridesPaddingChannelsBatch() {
        var rng = Random(seed: 16)
        for (b, cin, cout, n, k, s, p) in [(1, 1, 1, 20, 5, 1, 0), (3, 1, 4, 100, 18, 1, 0), (2, 2, 3, 31, 4, 2, 0),
                                           (2, 3, 2, 40, 7, 3, 2), (4, 1, 3, 17, 3, 4, 1), (1, 2, 2, 9, 9, 1, 0)] {
            let x = Tensor.normal([b, cin, n], rng: &rng)
            let f = Tensor.normal([cout, cin, k], rng: &rng)
            let y = x.conv1d(f, stride: s, padding: p)
            let l = (n + 2 * p - k) / s + 1
            #expect(y.shape == [b, cout, l])
            // The 1-D case is the 2-D reference with height 1.
            let ref = NaiveConv.conv2d(x.reshaped([b, cin, 1, n]), f.reshaped([cout, cin, 1, k]), stride: 1, padding: 0, strideW: s, padW: p)
            #expect(maxRelativeError(y.data, ref) < 1e-5)

            // Its transpose: exact adjoint, and equal to the scatter loop.
            let yy = y + Tensor.normal(y.shape, rng: &rng)
            let aty = yy.convTranspose1d(f, stride: s, padding: p, outputLength: n)
            #expect(aty.shape == [b, cin, n])
            var direct = [Double](repeating: 0, count: b * cin * n)
            for bb in 0..<b { for o in 0..<cout { for t in 0..<l { for c in 0..<cin { for kk in 0..<k {
                let i = t * s + kk - p
                if i >= 0 && i < n { direct[(bb * cin + c) * n + i] += Double(yy.data[(bb * cout + o) * l + t]) * Double(f.data[(o * cin + c) * k + kk]) }
            } } } } }
            #expect(maxRelativeError(aty.data, direct) < 1e-5)
            #expect(abs(dot(y, yy) - dot(x, aty)) <= 1e-5 * abs(dot(y, yy)))

            // Filter gradient: correlation of the input with the output gradient.
            let gw = Tensor.conv1dFilterGradient(input: x, outputGradient: yy, kernelSize: k, stride: s, padding: p)
            var gref = [Double](repeating: 0, count: cout * cin * k)
            for bb in 0..<b { for o in 0..<cout { for t in 0..<l { for c in 0..<cin { for kk in 0..<k {
                let i = t * s + kk - p
                if i >= 0 && i < n { gref[(o * cin + c) * k + kk] += Double(yy.data[(bb * cout + o) * l + t]) * Double(x.data[(bb * cin + c) * n + i]) }
            } } } } }
            #expect(gw.shape == [cout, cin, k])
            #expect(maxRelativeError(gw.data, gref) < 1e-5)
        }
    }

    @Test func directAndIm2colPathsAgreeIn1D() {
        // Both methods, forced through the pointer API, against the direct-loop reference and each other.
        var rng = Random(seed: 21)
        for (b, cin, cout, n, k, s, p) in [(3, 1, 3, 200, 45, 1, 0), (2, 2, 5, 60, 7, 2, 3), (2, 3, 9, 33, 4, 3, 1), (1, 1, 1, 5, 5, 1, 0)] {
            let g = ConvGeometry.oneD(inChannels: cin, outChannels: cout, length: n, kernel: k, stride: s, padding: p)
            let x = Tensor.normal([b, cin, n], rng: &rng)
            let f = Tensor.normal([cout, cin, k], rng: &rng)
            let y = Tensor.normal([b, cout, g.outputWidth], rng: &rng)
            let ref = NaiveConv.conv2d(x.reshaped([b, cin, 1, n]), f.reshaped([cout, cin, 1, k]), stride: 1, padding: 0, strideW: s, padW: p)
            let refT = NaiveConv.convTranspose1d(y, f, stride: s, padding: p, length: n)
            let refG = NaiveConv.filterGradient1d(x, y, kernel: k, stride: s, padding: p)
            var ws = ConvWorkspace()
            for method in [ConvolutionMethod.direct, .im2col] {
                var out = [Float](repeating: 7, count: b * g.outputCount)
                var back = [Float](repeating: 7, count: b * g.inputCount)
                var gw = [Float](repeating: 7, count: g.filterCount)
                Convolution.forward(g, batch: b, input: x.data, filters: f.data, output: &out, workspace: &ws, method: method)
                Convolution.transposed(g, batch: b, input: y.data, filters: f.data, output: &back, workspace: &ws, method: method)
                Convolution.filterGradient(g, batch: b, input: x.data, outputGradient: y.data, filterGradient: &gw, workspace: &ws, method: method)
                #expect(maxRelativeError(out, ref) < 1e-5, "\(method) forward \(g)")
                #expect(maxRelativeError(back, refT) < 1e-5, "\(method) transposed \(g)")
                #expect(maxRelativeError(gw, refG) < 1e-5, "\(method) filter gradient \(g)")
                // accumulate adds onto what is there
                Convolution.forward(g, batch: b, input: x.data, filters: f.data, output: &out, accumulate: true, workspace: &ws, method: method)
                Convolution.transposed(g, batch: b, input: y.data, filters: f.data, output: &back, accumulate: true, workspace: &ws, method: method)
                Convolution.filterGradient(g, batch: b, input: x.data, outputGradient: y.data, filterGradient: &gw, accumulate: true, workspace: &ws, method: method)
                #expect(maxRelativeError(out, ref.map { 2 * $0 }) < 1e-5)
                #expect(maxRelativeError(back, refT.map { 2 * $0 }) < 1e-5)
                #expect(maxRelativeError(gw, refG.map { 2 * $0 }) < 3e-5)   // two Float sums of ~500 terms
            }
        }
    }

    /// Stride 1 without padding runs C loops built for wider vectors (`DirectConvolution1D.c`); they must give
    /// the Swift loops' Float results bit for bit: every output summed over (channel, tap) in order, every
    /// filter-gradient entry as Σ_b of a four-lane dot. Sizes cover whole tiles of 64, remainders and edge
    /// tiles, and tap blocks of 16, 8 and 1.
    @Test func directStrideOnePathIsBitIdenticalToTheLoopOrder() {
        var rng = Random(seed: 33)
        for (b, cin, cout, n, k) in [(3, 4, 3, 300, 25), (2, 1, 2, 200, 45), (1, 2, 1, 70, 7), (2, 1, 3, 9, 9)] {
            let g = ConvGeometry.oneD(inChannels: cin, outChannels: cout, length: n, kernel: k, stride: 1, padding: 0)
            let l = g.outputWidth
            let x = Tensor.normal([b, cin, n], rng: &rng).data, f = Tensor.normal([cout, cin, k], rng: &rng).data
            let y = Tensor.normal([b, cout, l], rng: &rng).data
            let start = Tensor.normal([max(b * cout * l, b * cin * n, cout * cin * k)], rng: &rng).data
            for accumulate in [false, true] {
                var ref = [Float](repeating: 0, count: b * cout * l), refT = [Float](repeating: 0, count: b * cin * n)
                var refG = [Float](repeating: 0, count: cout * cin * k)
                if accumulate {
                    ref = Array(start[0..<ref.count]); refT = Array(start[0..<refT.count]); refG = Array(start[0..<refG.count])
                }
                for bb in 0..<b { for o in 0..<cout { for c in 0..<cin { for kk in 0..<k { for t in 0..<l {
                    let v = f[(o * cin + c) * k + kk] * x[(bb * cin + c) * n + t + kk]
                    ref[(bb * cout + o) * l + t] = ref[(bb * cout + o) * l + t] + v
                    let u = f[(o * cin + c) * k + kk] * y[(bb * cout + o) * l + t]
                    refT[(bb * cin + c) * n + t + kk] = refT[(bb * cin + c) * n + t + kk] + u
                } } } } }
                for o in 0..<cout { for c in 0..<cin { for kk in 0..<k { for bb in 0..<b {
                    var s: [Float] = [0, 0, 0, 0]
                    for t in 0..<(l / 4 * 4) { s[t % 4] = s[t % 4] + y[(bb * cout + o) * l + t] * x[(bb * cin + c) * n + t + kk] }
                    for t in (l / 4 * 4)..<l { s[0] = s[0] + y[(bb * cout + o) * l + t] * x[(bb * cin + c) * n + t + kk] }
                    refG[(o * cin + c) * k + kk] = refG[(o * cin + c) * k + kk] + ((s[0] + s[1]) + (s[2] + s[3]))
                } } } }
                var out = accumulate ? Array(start[0..<ref.count]) : [Float](repeating: 7, count: ref.count)
                var back = accumulate ? Array(start[0..<refT.count]) : [Float](repeating: 7, count: refT.count)
                var gw = accumulate ? Array(start[0..<refG.count]) : [Float](repeating: 7, count: refG.count)
                var ws = ConvWorkspace()
                Convolution.forward(g, batch: b, input: x, filters: f, output: &out, accumulate: accumulate, workspace: &ws, method: .direct)
                Convolution.transposed(g, batch: b, input: y, filters: f, output: &back, accumulate: accumulate, workspace: &ws, method: .direct)
                Convolution.filterGradient(g, batch: b, input: x, outputGradient: y, filterGradient: &gw, accumulate: accumulate,
                                           workspace: &ws, method: .direct)
                #expect(out == ref, "forward \(g) accumulate \(accumulate)")
                #expect(back == refT, "transposed \(g) accumulate \(accumulate)")
                #expect(gw == refG, "filter gradient \(g) accumulate \(accumulate)")
            }
        }
    }

    @Test func convTranspose1dWithStrideOneIsTheFullConvolution() {
        // CRsAE's H: length-L codes and length-K filters give a length L + K − 1 signal, Σ_k z[n − k] h[k].
        var rng = Random(seed: 17)
        let z = Tensor.normal([1, 1, 30], rng: &rng)
        let h = Tensor.normal([1, 1, 6], rng: &rng)
        let y = z.convTranspose1d(h, outputLength: 35)
        for n in 0..<35 {
            var s = 0.0
            for k in 0..<6 where n - k >= 0 && n - k < 30 { s += Double(z.data[n - k]) * Double(h.data[k]) }
            #expect(abs(Double(y.data[n]) - s) < 1e-5 * max(1, abs(s)))
        }
    }

    @Test func batchedChunksEqualSampleBySample() {
        // 30 samples of a 1-channel 100×100 image with 8 3×3 filters: more than one GEMM chunk.
        var rng = Random(seed: 18)
        let x = Tensor.normal([30, 1, 100, 100], rng: &rng)
        let f = Tensor.normal([8, 1, 3, 3], rng: &rng)
        let y = x.conv2d(f, stride: 1, padding: 1)
        let yt = y.convTranspose2d(f, stride: 1, padding: 1, outputSize: (100, 100))
        let gw = Tensor.conv2dFilterGradient(input: x, outputGradient: y, kernelSize: (3, 3), stride: 1, padding: 1)
        var gsum = [Double](repeating: 0, count: gw.count)
        for b in [0, 7, 19, 29] {
            let xb = x.rows(b..<(b + 1)), yb = y.rows(b..<(b + 1))
            #expect(maxRelativeError(xb.conv2d(f, stride: 1, padding: 1), yb) < 1e-5)
            #expect(maxRelativeError(yb.convTranspose2d(f, stride: 1, padding: 1, outputSize: (100, 100)), yt.rows(b..<(b + 1))) < 1e-5)
        }
        for b in 0..<30 {
            let gb = Tensor.conv2dFilterGradient(input: x.rows(b..<(b + 1)), outputGradient: y.rows(b..<(b + 1)),
                                                 kernelSize: (3, 3), stride: 1, padding: 1)
            for i in 0..<gb.count { gsum[i] += Double(gb.data[i]) }
        }
        #expect(maxRelativeError(gw.data, gsum) < 1e-4)
    }

    /// With integer data every product and sum is exact, so the batched paths' column copies (the
    /// small-plane im2col and col2im among them) must give the direct loops' values bit for bit, for
    /// strides, paddings, non-square planes and a transposed convolution added onto a start.
    @Test func smallPlaneColumnsAreExact() {
        var rng = Random(seed: 23)
        func integers(_ shape: [Int]) -> Tensor {
            Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in Float(Int(rng.uniform() * 17) - 8) })
        }
        for (h, w, k, s, p) in [(14, 14, 4, 2, 1), (7, 7, 4, 1, 0), (4, 4, 4, 2, 0), (28, 28, 4, 2, 1), (9, 11, 3, 3, 2), (5, 6, 2, 1, 1)] {
            let x = integers([3, 2, h, w]), f = integers([5, 2, k, k])
            let y = x.conv2d(f, stride: s, padding: p)
            #expect(y.data.map(Double.init) == NaiveConv.conv2d(x, f, stride: s, padding: p), "conv2d \(h)×\(w) k\(k) s\(s) p\(p)")
            let g = integers(y.shape), start = integers(x.shape)
            var back = start, ws = ConvWorkspace()
            g.convTranspose2d(f, stride: s, padding: p, outputSize: (h, w), into: &back, accumulate: true, workspace: &ws)
            let reference = zip(start.data, NaiveConv.convTranspose2d(g, f, stride: s, padding: p, height: h, width: w)).map { Double($0) + $1 }
            #expect(back.data.map(Double.init) == reference, "convTranspose2d \(h)×\(w) k\(k) s\(s) p\(p)")
            let gw = Tensor.conv2dFilterGradient(input: x, outputGradient: g, kernelSize: (k, k), stride: s, padding: p)
            #expect(gw.data.map(Double.init) == NaiveConv.filterGradient2d(x, g, kh: k, kw: k, stride: s, padding: p))
        }
    }

    /// The fused forward and filter gradient (a transposed layer's backward) equals the two calls bit for
    /// bit: chunks of small planes, and one sample per product for a plane of ≥ 4096 outputs.
    @Test func forwardWithFilterGradientEqualsTheSeparateCalls() {
        var rng = Random(seed: 29)
        for (batch, h, k, s, p) in [(5, 14, 4, 2, 1), (3, 7, 4, 1, 0), (2, 66, 3, 1, 1)] {
            let x = Tensor.normal([batch, 3, h, h], rng: &rng), f = Tensor.normal([4, 3, k, k], rng: &rng)
            let y = x.conv2d(f, stride: s, padding: p), gy = Tensor.normal(y.shape, rng: &rng)
            let start = Tensor.normal(f.shape, rng: &rng)
            var separate = start, fused = start, ws = ConvWorkspace()
            Tensor.conv2dFilterGradient(input: x, outputGradient: gy, kernelSize: (k, k), stride: s, padding: p,
                                        into: &separate, accumulate: true, workspace: &ws)
            let out = x.conv2d(f, stride: s, padding: p, addingFilterGradientOf: gy, into: &fused, workspace: &ws)
            #expect(out == y, "forward, \(h)×\(h)")
            #expect(fused == separate && fused != start, "filter gradient, \(h)×\(h)")
        }
    }

    @Test func intoVariantsAccumulateAndReuseTheWorkspace() {
        var rng = Random(seed: 19)
        var ws = ConvWorkspace()
        var out = Tensor(zeros: [])
        for (h, s) in [(10, 1), (23, 3), (7, 2)] {
            let x = Tensor.normal([2, 2, h, h], rng: &rng)
            let f = Tensor.normal([3, 2, 3, 3], rng: &rng)
            x.conv2d(f, stride: s, into: &out, workspace: &ws)
            let once = out
            #expect(maxRelativeError(once, x.conv2d(f, stride: s)) == 0)
            x.conv2d(f, stride: s, into: &out, accumulate: true, workspace: &ws)
            #expect(maxRelativeError(out, 2 * once) < 1e-6)

            var back = Tensor.normal([2, 2, h, h], rng: &rng)
            let start = back
            once.convTranspose2d(f, stride: s, outputSize: (h, h), into: &back, accumulate: true, workspace: &ws)
            #expect(maxRelativeError(back, start + once.convTranspose2d(f, stride: s, outputSize: (h, h))) < 1e-5)

            var gw = Tensor.normal([3, 2, 3, 3], rng: &rng)
            let g0 = gw
            Tensor.conv2dFilterGradient(input: x, outputGradient: once, kernelSize: (3, 3), stride: s, into: &gw, accumulate: true, workspace: &ws)
            #expect(maxRelativeError(gw, g0 + Tensor.conv2dFilterGradient(input: x, outputGradient: once, kernelSize: (3, 3), stride: s)) < 1e-5)
        }
        #expect(ws.capacity > 0)
    }

    @Test func pointerLevelApiMatchesTensorApi() {
        var rng = Random(seed: 20)
        let g = ConvGeometry(inChannels: 2, outChannels: 3, inputHeight: 9, inputWidth: 12, kernelHeight: 3, kernelWidth: 4,
                             strideHeight: 2, strideWidth: 3, paddingHeight: 1, paddingWidth: 0)
        #expect(g.problem == nil && g.outputHeight == 5 && g.outputWidth == 3)
        let x = Tensor.normal([4] + g.inputShape, rng: &rng)
        let f = Tensor.normal(g.filterShape, rng: &rng)
        var y = [Float](repeating: 0, count: 4 * g.outputCount)
        var ws = ConvWorkspace()
        x.data.withUnsafeBufferPointer { xp in
            f.data.withUnsafeBufferPointer { fp in
                y.withUnsafeMutableBufferPointer { yp in
                    Convolution.forward(g, batch: 4, input: xp.baseAddress!, filters: fp.baseAddress!, output: yp.baseAddress!, workspace: &ws)
                }
            }
        }
        // Different strides per axis: the reference loop with separate strides.
        let ref = NaiveConv.conv2d(x, f, stride: 2, padding: 1, strideW: 3, padW: 0)
        #expect(maxRelativeError(y, ref) < 1e-5)
        #expect(ConvGeometry.oneD(inChannels: 1, outChannels: 1, length: 4, kernel: 5).problem != nil)
    }
}

extension NaiveConv {
    /// x[b,c,t·s+k−p] += w[o,c,k] · y[b,o,t]
    static func convTranspose1d(_ y: Tensor, _ w: Tensor, stride s: Int, padding p: Int, length n: Int) -> [Double] {
        let (nb, cout, l) = (y.shape[0], y.shape[1], y.shape[2]), (cin, k) = (w.shape[1], w.shape[2])
        var x = [Double](repeating: 0, count: nb * cin * n)
        for b in 0..<nb { for o in 0..<cout { for t in 0..<l { for c in 0..<cin { for kk in 0..<k {
            let i = t * s + kk - p
            if i >= 0 && i < n { x[(b * cin + c) * n + i] += Double(y.data[(b * cout + o) * l + t]) * Double(w.data[(o * cin + c) * k + kk]) }
        } } } } }
        return x
    }

    /// gw[o,c,k] = Σ_b,t g[b,o,t] · x[b,c,t·s+k−p]
    static func filterGradient1d(_ x: Tensor, _ g: Tensor, kernel k: Int, stride s: Int, padding p: Int) -> [Double] {
        let (nb, cin, n) = (x.shape[0], x.shape[1], x.shape[2]), (cout, l) = (g.shape[1], g.shape[2])
        var gw = [Double](repeating: 0, count: cout * cin * k)
        for b in 0..<nb { for o in 0..<cout { for t in 0..<l { for c in 0..<cin { for kk in 0..<k {
            let i = t * s + kk - p
            if i >= 0 && i < n { gw[(o * cin + c) * k + kk] += Double(g.data[(b * cout + o) * l + t]) * Double(x.data[(b * cin + c) * n + i]) }
        } } } } }
        return gw
    }

    /// conv2d with separate strides / paddings per axis.
    static func conv2d(_ x: Tensor, _ w: Tensor, stride sh: Int, padding ph: Int, strideW sw: Int, padW pw: Int) -> [Double] {
        let (nb, cin, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (cout, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
        let ho = (h + 2 * ph - kh) / sh + 1, wo = (wd + 2 * pw - kw) / sw + 1
        var y = [Double](repeating: 0, count: nb * cout * ho * wo)
        for b in 0..<nb { for o in 0..<cout { for oy in 0..<ho { for ox in 0..<wo {
            var acc = 0.0
            for c in 0..<cin { for ki in 0..<kh { for kj in 0..<kw {
                let iy = oy * sh + ki - ph, ix = ox * sw + kj - pw
                if iy >= 0 && iy < h && ix >= 0 && ix < wd {
                    acc += Double(w.data[((o * cin + c) * kh + ki) * kw + kj]) * Double(x.data[((b * cin + c) * h + iy) * wd + ix])
                }
            } } }
            y[((b * cout + o) * ho + oy) * wo + ox] = acc
        } } } }
        return y
    }
}
