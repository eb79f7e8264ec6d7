import CUnrollSupport

/// Direct 1-D convolution loops, for layers with few channels (CRsAE's spike sorting: 1 input channel,
/// a handful of filters). There im2col + GEMM is memory-bound — the column matrix is K times the input
/// and a GEMM with m = Cout < 8 rows does little work per byte — while these loops stream each input row
/// once per filter tap with contiguous (vectorised) axpys. Same semantics and layout as `Convolution`.
/// Stride 1 without padding (CRsAE's geometry) runs the same loops in C, built for AVX-512 and AVX2 as well
/// as baseline x86-64 and picked at load time (`CUnrollSupport/DirectConvolution1D.c`): bit-identical results.
enum DirectConvolution1D {
    /// Whether `automatic` picks these loops for `g` (measured on 2 cores: 3× faster than im2col for 3 filters
    /// of 45 taps, even at 8 filters, slower from 16 filters or with stride > 1).
    static func preferred(_ g: ConvGeometry) -> Bool {
        g.inputHeight == 1 && g.kernelHeight == 1 && g.strideWidth == 1 && g.outChannels < 8
    }

    /// Units per parallel part so a part gets at least ~64k multiply-adds.
    @inline(__always)
    static func unitsPerPart(workPerUnit: Int) -> Int { Swift.max(1, 65_536 / Swift.max(1, workPerUnit)) }

    static func forward(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>, filters: UnsafePointer<Float>,
                        output: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let (cin, cout, n, k, s, p) = (g.inChannels, g.outChannels, g.inputWidth, g.kernelWidth, g.strideWidth, g.paddingWidth)
        let l = g.outputWidth
        Parallel.forEachChunk(batch * cout, minPerPart: unitsPerPart(workPerUnit: cin * k * l)) { units in
            if s == 1 && p == 0 {
                for u in units {
                    let (b, o) = u.quotientAndRemainder(dividingBy: cout)
                    unroll_conv1d_forward_unit(Int32(cin), Int32(n), Int32(k), Int32(l), input + b * cin * n, filters + o * cin * k,
                                               output + u * l, accumulate)
                }
                return
            }
            for u in units {
                let (b, o) = u.quotientAndRemainder(dividingBy: cout)
                let y = output + u * l
                if !accumulate { y.update(repeating: 0, count: l) }
                for c in 0..<cin {
                    let x = input + (b * cin + c) * n, w = filters + (o * cin + c) * k
                    for kk in 0..<k {
                        let wv = w[kk], ts = Im2col.validRange(n: n, outCount: l, k: kk, stride: s, pad: p)
                        let xs = x + (kk - p)   // x[t·s + kk − p] = xs[t·s]
                        if s == 1 {
                            for t in ts { y[t] += wv * xs[t] }
                        } else {
                            for t in ts { y[t] += wv * xs[t * s] }
                        }
                    }
                }
            }
        }
    }

    static func transposed(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>, filters: UnsafePointer<Float>,
                           output: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let (cin, cout, n, k, s, p) = (g.inChannels, g.outChannels, g.inputWidth, g.kernelWidth, g.strideWidth, g.paddingWidth)
        let l = g.outputWidth
        Parallel.forEachChunk(batch * cin, minPerPart: unitsPerPart(workPerUnit: cout * k * l)) { units in
            if s == 1 && p == 0 {
                for u in units {
                    let (b, c) = u.quotientAndRemainder(dividingBy: cin)
                    unroll_conv1d_transposed_unit(Int32(cout), Int32(n), Int32(k), Int32(l), input + b * cout * l, filters + c * k,
                                                  Int32(cin * k), output + u * n, accumulate)
                }
                return
            }
            for u in units {
                let (b, c) = u.quotientAndRemainder(dividingBy: cin)
                let x = output + u * n
                if !accumulate { x.update(repeating: 0, count: n) }
                for o in 0..<cout {
                    let y = input + (b * cout + o) * l, w = filters + (o * cin + c) * k
                    for kk in 0..<k {
                        let wv = w[kk], ts = Im2col.validRange(n: n, outCount: l, k: kk, stride: s, pad: p)
                        let xs = x + (kk - p)
                        if s == 1 {
                            for t in ts { xs[t] += wv * y[t] }
                        } else {
                            for t in ts { xs[t * s] += wv * y[t] }
                        }
                    }
                }
            }
        }
    }

    static func filterGradient(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                               filterGradient: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let (cin, cout, n, k, s, p) = (g.inChannels, g.outChannels, g.inputWidth, g.kernelWidth, g.strideWidth, g.paddingWidth)
        let l = g.outputWidth
        // Workers own (filter, channel) pairs: each output element is written by one worker.
        Parallel.forEachChunk(cout * cin, minPerPart: unitsPerPart(workPerUnit: batch * k * l)) { units in
            if s == 1 && p == 0 {
                for u in units {
                    let (o, c) = u.quotientAndRemainder(dividingBy: cin)
                    unroll_conv1d_filter_gradient_unit(Int32(batch), Int32(n), Int32(k), Int32(l), input + c * n, Int32(cin * n),
                                                       outputGradient + o * l, Int32(cout * l), filterGradient + u * k, accumulate)
                }
                return
            }
            for u in units {
                let (o, c) = u.quotientAndRemainder(dividingBy: cin)
                let gw = filterGradient + u * k
                for kk in 0..<k {
                    let ts = Im2col.validRange(n: n, outCount: l, k: kk, stride: s, pad: p)
                    var acc: Float = accumulate ? gw[kk] : 0
                    if !ts.isEmpty {
                        for b in 0..<batch {
                            let gy = outputGradient + (b * cout + o) * l + ts.lowerBound
                            let xs = input + (b * cin + c) * n + (kk - p) + ts.lowerBound * s
                            if s == 1 {
                                acc += SparseKernels.dot(ts.count, gy, xs)
                            } else {
                                var d: Float = 0
                                for t in 0..<ts.count { d += gy[t] * xs[t * s] }
                                acc += d
                            }
                        }
                    }
                    gw[kk] = acc
                }
            }
        }
    }
}
