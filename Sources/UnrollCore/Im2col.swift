/// im2col / col2im and the batch ↔ channel-major permutes behind the convolutions.
///
/// Column matrix layout for a chunk of `nb` samples: `[Cin·Kh·Kw, nb·Ho·Wo]` row-major, row
/// `(c·Kh + ki)·Kw + kj`, column `(b·Ho + oy)·Wo + ox`, holding `x[b, c, oy·sh + ki − ph, ox·sw + kj − pw]`
/// (zero outside the image). A convolution is then one GEMM for the whole chunk.
enum Im2col {
    /// Range of output columns `ox` whose input column `ox·s + k − p` lies inside `0..<n`.
    @inline(__always)
    static func validRange(n: Int, outCount: Int, k: Int, stride s: Int, pad p: Int) -> Range<Int> {
        let lo = p - k <= 0 ? 0 : (p - k + s - 1) / s
        let last = n - 1 - k + p
        let hi = last < 0 ? 0 : Swift.min(outCount, last / s + 1)
        return lo < hi ? lo..<hi : 0..<0
    }

    /// Writes the `Kh·Kw` rows of one input plane (one sample, one channel) into `dst`, whose rows
    /// are `ld` floats apart and whose first column is this sample's first output position; only the
    /// rows of taps `taps` (indices ki·Kw + kj) when given.
    static func im2colPlane(_ g: ConvGeometry, src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>, ld: Int,
                            taps: Range<Int>? = nil) {
        let (h, w, ho, wo) = (g.inputHeight, g.inputWidth, g.outputHeight, g.outputWidth)
        let (sh, sw) = (g.strideHeight, g.strideWidth)
        for tap in taps ?? 0..<(g.kernelHeight * g.kernelWidth) {
            let (ki, kj) = tap.quotientAndRemainder(dividingBy: g.kernelWidth)
            let row = dst + tap * ld
            let xs = validRange(n: w, outCount: wo, k: kj, stride: sw, pad: g.paddingWidth)
            let ys = validRange(n: h, outCount: ho, k: ki, stride: sh, pad: g.paddingHeight)
            for oy in 0..<ho {
                let out = row + oy * wo
                guard ys.contains(oy), !xs.isEmpty else {
                    out.update(repeating: 0, count: wo)
                    continue
                }
                if xs.lowerBound > 0 { out.update(repeating: 0, count: xs.lowerBound) }
                if xs.upperBound < wo { (out + xs.upperBound).update(repeating: 0, count: wo - xs.upperBound) }
                let srcRow = src + (oy * sh + ki - g.paddingHeight) * w + (kj - g.paddingWidth)
                if sw == 1 {
                    (out + xs.lowerBound).update(from: srcRow + xs.lowerBound, count: xs.count)
                } else {
                    for ox in xs { out[ox] = srcRow[ox * sw] }
                }
            }
        }
    }

    /// The adjoint of `im2colPlane`: adds the `Kh·Kw` rows back into one input plane, into its rows
    /// `rows` only when given (every pixel still takes its taps in order, so bands give the same sums).
    static func col2imPlane(_ g: ConvGeometry, src: UnsafePointer<Float>, ld: Int, dst: UnsafeMutablePointer<Float>,
                            rows: Range<Int>? = nil) {
        let (h, w, ho, wo) = (g.inputHeight, g.inputWidth, g.outputHeight, g.outputWidth)
        let (sh, sw) = (g.strideHeight, g.strideWidth)
        // ⌈a / b⌉ for b > 0 and any a.
        func ceilDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? (a + b - 1) / b : -((-a) / b) }
        for ki in 0..<g.kernelHeight {
            var ys = validRange(n: h, outCount: ho, k: ki, stride: sh, pad: g.paddingHeight)
            if let rows {   // oy whose input row oy·sh + ki − ph lies in `rows`
                let lo = Swift.max(ys.lowerBound, ceilDiv(rows.lowerBound - ki + g.paddingHeight, sh))
                let hi = Swift.min(ys.upperBound, ceilDiv(rows.upperBound - ki + g.paddingHeight, sh))
                ys = lo < hi ? lo..<hi : 0..<0
            }
            for kj in 0..<g.kernelWidth {
                let row = src + (ki * g.kernelWidth + kj) * ld
                let xs = validRange(n: w, outCount: wo, k: kj, stride: sw, pad: g.paddingWidth)
                if xs.isEmpty { continue }
                for oy in ys {
                    let inp = row + oy * wo
                    let dstRow = dst + (oy * sh + ki - g.paddingHeight) * w + (kj - g.paddingWidth)
                    if sw == 1 {
                        for ox in xs { dstRow[ox] += inp[ox] }
                    } else {
                        for ox in xs { dstRow[ox * sw] += inp[ox] }
                    }
                }
            }
        }
    }

    /// Work units for `planes` planes of `work` element operations each: whole planes when there are
    /// enough for the workers, else each plane cut in `pieces` of at most `limit` (so one image keeps
    /// both cores busy), with ≥ 32k operations a part.
    private static func split(planes: Int, work: Int, limit: Int) -> (pieces: Int, minPerPart: Int) {
        let pieces = planes >= Parallel.workers ? 1 : Swift.max(1, Swift.min(limit, work / 32_768, 4 * Parallel.workers / planes))
        return (pieces, Swift.max(1, 32_768 * pieces / Swift.max(1, work)))
    }

    /// Column matrix of one sample, its planes (or, for few planes, pieces of a plane's taps) split over
    /// the workers. A chunk of several samples is split by samples instead (`im2col(_:samples:…)`).
    static func im2col(_ g: ConvGeometry, input: UnsafePointer<Float>, cols: UnsafeMutablePointer<Float>) {
        let kk = g.kernelHeight * g.kernelWidth, plane = g.inputHeight * g.inputWidth
        let hw = g.outputHeight * g.outputWidth, cin = g.inChannels
        let (pieces, minPerPart) = split(planes: cin, work: kk * hw, limit: kk)
        Parallel.forEachChunk(cin * pieces, minPerPart: minPerPart) { units in
            for unit in units {
                let (c, piece) = unit.quotientAndRemainder(dividingBy: pieces)
                im2colPlane(g, src: input + c * plane, dst: cols + c * kk * hw, ld: hw,
                            taps: (kk * piece / pieces)..<(kk * (piece + 1) / pieces))
            }
        }
    }

    /// The columns of samples `samples` (of a chunk whose first sample `input` points at, and whose
    /// column matrix has rows `ld` floats apart), on the calling thread.
    static func im2col(_ g: ConvGeometry, samples: Range<Int>, input: UnsafePointer<Float>, cols: UnsafeMutablePointer<Float>, ld: Int) {
        let kk = g.kernelHeight * g.kernelWidth, plane = g.inputHeight * g.inputWidth, hw = g.outputHeight * g.outputWidth
        if SmallPlanes.fit(g) {
            return SmallPlanes.with(g) { padded, offsets, taps in
                for b in samples {
                    for c in 0..<g.inChannels {
                        padded.load(input + (b * g.inChannels + c) * plane)
                        let dst = cols + c * kk * ld + b * hw
                        for t in 0..<kk {
                            let from = padded.base + taps[t], to = dst + t * ld
                            for q in 0..<hw { to[q] = from[offsets[q]] }
                        }
                    }
                }
            }
        }
        for b in samples {
            for c in 0..<g.inChannels {
                im2colPlane(g, src: input + (b * g.inChannels + c) * plane, dst: cols + c * kk * ld + b * hw, ld: ld)
            }
        }
    }

    /// col2im of samples `samples` of a chunk (columns as `im2col(_:samples:input:cols:ld:)` lays them
    /// out), on the calling thread.
    static func col2im(_ g: ConvGeometry, samples: Range<Int>, cols: UnsafePointer<Float>, ld: Int, output: UnsafeMutablePointer<Float>) {
        let kk = g.kernelHeight * g.kernelWidth, plane = g.inputHeight * g.inputWidth, hw = g.outputHeight * g.outputWidth
        if SmallPlanes.fit(g) {
            // Each pixel takes its taps in the same order as in `col2imPlane`, starting from its own value,
            // so the sums are the same; what lands on the border is dropped.
            return SmallPlanes.with(g) { padded, offsets, taps in
                for b in samples {
                    for c in 0..<g.inChannels {
                        let dst = output + (b * g.inChannels + c) * plane
                        padded.load(UnsafePointer(dst))
                        let src = cols + c * kk * ld + b * hw
                        for t in 0..<kk {
                            let to = padded.base + taps[t], from = src + t * ld
                            for q in 0..<hw { to[offsets[q]] += from[q] }
                        }
                        padded.store(dst)
                    }
                }
            }
        }
        for b in samples {
            for c in 0..<g.inChannels {
                col2imPlane(g, src: cols + c * kk * ld + b * hw, ld: ld, dst: output + (b * g.inChannels + c) * plane)
            }
        }
    }

    /// im2col and col2im of small planes (the 4×4 to 28×28 maps of the VSC networks) through a copy of
    /// the plane with a zero border: every tap is then one loop over the output positions through a
    /// table of offsets. The general loops pay bounds and a fill call per output row, which cost more
    /// than the copying itself when the rows are 7 wide.
    enum SmallPlanes {
        /// Floats of the bordered plane up to which this path is taken.
        static let limit = 1 << 14

        static func fit(_ g: ConvGeometry) -> Bool {
            (g.inputHeight + 2 * g.paddingHeight) * (g.inputWidth + 2 * g.paddingWidth) <= limit
        }

        /// A plane with a zero border: `load` copies an input plane into its interior, `store` copies the interior out.
        struct Padded {
            let base: UnsafeMutablePointer<Float>
            let g: ConvGeometry
            var pitch: Int { g.inputWidth + 2 * g.paddingWidth }

            func load(_ src: UnsafePointer<Float>) {
                let w = g.inputWidth
                for y in 0..<g.inputHeight {
                    (base + (y + g.paddingHeight) * pitch + g.paddingWidth).update(from: src + y * w, count: w)
                }
            }

            func store(_ dst: UnsafeMutablePointer<Float>) {
                let w = g.inputWidth
                for y in 0..<g.inputHeight {
                    dst.advanced(by: y * w).update(from: base + (y + g.paddingHeight) * pitch + g.paddingWidth, count: w)
                }
            }
        }

        /// Runs `body` with a zeroed bordered plane, the offset of each output position's first tap
        /// (`oy·sh·pitch + ox·sw`) and each tap's offset (`ki·pitch + kj`).
        static func with(_ g: ConvGeometry, _ body: (Padded, UnsafePointer<Int>, UnsafePointer<Int>) -> Void) {
            let pitch = g.inputWidth + 2 * g.paddingWidth, count = (g.inputHeight + 2 * g.paddingHeight) * pitch
            let (ho, wo, kw) = (g.outputHeight, g.outputWidth, g.kernelWidth)
            let kk = g.kernelHeight * kw
            withUnsafeTemporaryAllocation(of: Float.self, capacity: count) { plane in
                plane.initialize(repeating: 0)
                withUnsafeTemporaryAllocation(of: Int.self, capacity: ho * wo + kk) { table in
                    for oy in 0..<ho {
                        for ox in 0..<wo { table[oy * wo + ox] = oy * g.strideHeight * pitch + ox * g.strideWidth }
                    }
                    for t in 0..<kk { table[ho * wo + t] = (t / kw) * pitch + t % kw }
                    let offsets = UnsafePointer(table.baseAddress!)
                    body(Padded(base: plane.baseAddress!, g: g), offsets, offsets + ho * wo)
                }
            }
        }
    }

    /// Adds one sample's column matrix back into `output` (col2im); each worker owns whole planes, or
    /// bands of a plane's rows when there are few planes.
    static func col2im(_ g: ConvGeometry, cols: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        let kk = g.kernelHeight * g.kernelWidth, plane = g.inputHeight * g.inputWidth, h = g.inputHeight
        let hw = g.outputHeight * g.outputWidth, cin = g.inChannels
        let (pieces, minPerPart) = split(planes: cin, work: kk * hw, limit: h)
        Parallel.forEachChunk(cin * pieces, minPerPart: minPerPart) { units in
            for unit in units {
                let (c, piece) = unit.quotientAndRemainder(dividingBy: pieces)
                col2imPlane(g, src: cols + c * kk * hw, ld: hw, dst: output + c * plane,
                            rows: (h * piece / pieces)..<(h * (piece + 1) / pieces))
            }
        }
    }

    /// `[C, nb·HW]` (channel-major, as a GEMM leaves it) → `[nb, C, HW]` (NCHW) for the samples `range`,
    /// on the calling thread; adds when `accumulate`.
    static func channelMajorToBatch(channels: Int, samples nb: Int, planeSize hw: Int, range: Range<Int>,
                                    src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>, accumulate: Bool) {
        for b in range {
            for c in 0..<channels {
                let s = src + (c * nb + b) * hw, d = dst + (b * channels + c) * hw
                if accumulate {
                    for q in 0..<hw { d[q] += s[q] }
                } else {
                    d.update(from: s, count: hw)
                }
            }
        }
    }

    /// `[nb, C, HW]` (NCHW) → `[C, nb·HW]` (channel-major, as a GEMM operand) for the samples `range`,
    /// on the calling thread.
    static func batchToChannelMajor(channels: Int, samples nb: Int, planeSize hw: Int, range: Range<Int>,
                                    src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>) {
        for b in range {
            for c in 0..<channels { (dst + (c * nb + b) * hw).update(from: src + (b * channels + c) * hw, count: hw) }
        }
    }
}
