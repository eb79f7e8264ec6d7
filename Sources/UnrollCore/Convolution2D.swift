/// 2-D convolution by im2col + GEMM, with PyTorch semantics so results line up with `torch.nn.functional`:
/// `conv2d` is cross-correlation with zero padding, `convTranspose2d` its exact adjoint, and the filter
/// gradient is ∂⟨g, conv2d(x, w)⟩/∂w. Tensors are NCHW: input `[B, Cin, H, W]`, filters
/// `[Cout, Cin, Kh, Kw]`, output `[B, Cout, Ho, Wo]` with `Ho = (H + 2p − Kh)/s + 1` (floor).
///
/// Two levels: `Tensor` methods that allocate, and `Convolution` functions on raw pointers with a
/// reusable `ConvWorkspace`, for loops that must not allocate.

/// The shape of one convolution layer; 1-D convolutions are the case `inputHeight = kernelHeight = 1`.
public struct ConvGeometry: Hashable, Sendable {
    public var inChannels: Int
    public var outChannels: Int
    public var inputHeight: Int
    public var inputWidth: Int
    public var kernelHeight: Int
    public var kernelWidth: Int
    public var strideHeight: Int
    public var strideWidth: Int
    public var paddingHeight: Int
    public var paddingWidth: Int

    public init(inChannels: Int, outChannels: Int, inputHeight: Int, inputWidth: Int,
                kernelHeight: Int, kernelWidth: Int, strideHeight: Int = 1, strideWidth: Int = 1,
                paddingHeight: Int = 0, paddingWidth: Int = 0) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.inputHeight = inputHeight
        self.inputWidth = inputWidth
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
        self.strideHeight = strideHeight
        self.strideWidth = strideWidth
        self.paddingHeight = paddingHeight
        self.paddingWidth = paddingWidth
    }

    /// A square-stride, square-padding 2-D layer.
    public init(inChannels: Int, outChannels: Int, inputHeight: Int, inputWidth: Int,
                kernelHeight: Int, kernelWidth: Int, stride: Int, padding: Int = 0) {
        self.init(inChannels: inChannels, outChannels: outChannels, inputHeight: inputHeight, inputWidth: inputWidth,
                  kernelHeight: kernelHeight, kernelWidth: kernelWidth, strideHeight: stride, strideWidth: stride,
                  paddingHeight: padding, paddingWidth: padding)
    }

    /// A 1-D layer: input `[B, Cin, length]`, filters `[Cout, Cin, kernel]`.
    public static func oneD(inChannels: Int, outChannels: Int, length: Int, kernel: Int,
                            stride: Int = 1, padding: Int = 0) -> ConvGeometry {
        ConvGeometry(inChannels: inChannels, outChannels: outChannels, inputHeight: 1, inputWidth: length,
                     kernelHeight: 1, kernelWidth: kernel, strideHeight: 1, strideWidth: stride,
                     paddingHeight: 0, paddingWidth: padding)
    }

    public var outputHeight: Int { (inputHeight + 2 * paddingHeight - kernelHeight) / strideHeight + 1 }
    public var outputWidth: Int { (inputWidth + 2 * paddingWidth - kernelWidth) / strideWidth + 1 }
    /// Floats per sample of the input `[Cin, H, W]`.
    public var inputCount: Int { inChannels * inputHeight * inputWidth }
    /// Floats per sample of the output `[Cout, Ho, Wo]`.
    public var outputCount: Int { outChannels * outputHeight * outputWidth }
    /// Floats in the filter bank `[Cout, Cin, Kh, Kw]`.
    public var filterCount: Int { outChannels * inChannels * kernelHeight * kernelWidth }
    public var inputShape: [Int] { [inChannels, inputHeight, inputWidth] }
    public var outputShape: [Int] { [outChannels, outputHeight, outputWidth] }
    public var filterShape: [Int] { [outChannels, inChannels, kernelHeight, kernelWidth] }

    /// What is wrong with this geometry, or nil when it describes a valid layer.
    public var problem: String? {
        if inChannels < 1 || outChannels < 1 { return "channels must be ≥ 1 (in \(inChannels), out \(outChannels))" }
        if kernelHeight < 1 || kernelWidth < 1 { return "kernel must be ≥ 1, got \(kernelHeight)×\(kernelWidth)" }
        if strideHeight < 1 || strideWidth < 1 { return "stride must be ≥ 1, got \(strideHeight)×\(strideWidth)" }
        if paddingHeight < 0 || paddingWidth < 0 { return "padding must be ≥ 0, got \(paddingHeight)×\(paddingWidth)" }
        if inputHeight + 2 * paddingHeight < kernelHeight || inputWidth + 2 * paddingWidth < kernelWidth {
            return "kernel \(kernelHeight)×\(kernelWidth) larger than padded input \(inputHeight + 2 * paddingHeight)×\(inputWidth + 2 * paddingWidth)"
        }
        return nil
    }
}

/// Scratch memory for the convolutions; keep one per loop (or per thread) and pass it `inout`.
/// It grows to the largest size asked for and is then reused without allocating.
public struct ConvWorkspace: Sendable {
    private var buffer: [Float] = []

    public init() {}

    /// Floats currently held.
    public var capacity: Int { buffer.count }

    /// Every user writes the whole buffer before reading it (im2col writes its zeros, the GEMMs have
    /// β = 0, the layout copies cover their range), so a new buffer is left uninitialised: zeroing it
    /// was 8 % of a denoising profile.
    mutating func withBuffer<R>(count: Int, _ body: (UnsafeMutablePointer<Float>) -> R) -> R {
        let n = Swift.max(1, count)
        if buffer.count < n { buffer = [Float](unsafeUninitializedCapacity: n) { _, initialized in initialized = n } }
        return buffer.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
    }
}

/// How `Convolution` computes: `automatic` picks direct loops for 1-D layers with few filters, else im2col.
public enum ConvolutionMethod: Sendable {
    case automatic
    /// im2col + one GEMM per chunk of samples.
    case im2col
    /// Direct loops; 1-D geometries only.
    case direct

    func useDirect(_ g: ConvGeometry) -> Bool {
        switch self {
        case .automatic: return DirectConvolution1D.preferred(g)
        case .im2col: return false
        case .direct:
            precondition(g.inputHeight == 1 && g.kernelHeight == 1, "direct convolution is implemented for 1-D geometries only")
            return true
        }
    }
}

/// Pointer-level convolutions (NCHW, contiguous). `accumulate` adds into the destination instead
/// of overwriting it. Samples are processed in chunks that share one GEMM, so the BLAS threads get
/// large products; the workspace holds one chunk's column matrix (at most ~16 MB, at least one sample).
public enum Convolution {
    /// Floats of column matrix + staging per chunk the kernels aim for.
    static let chunkBudget = 1 << 22

    /// Output planes at least this large get one GEMM per sample: the product is already wide enough,
    /// and the batch-to-channel-major copies that sharing a GEMM needs are saved.
    static let planeForOwnGEMM = 4096

    /// A chunk of several samples is shared out by whole samples: each part runs its samples' copies and
    /// its columns of the product, one parallel region instead of one per stage (a region's hand-off,
    /// ≈ 40 µs for a helper to wake, was as long as a stage of a training crop's layer). At one worker
    /// that is the one product of the whole chunk; with more parts, each part's columns are a product of
    /// their own, which can round differently in the last bits (as `BLAS.sgemm`'s own split does).
    static func sampleParts(_ n: Int) -> Int { Swift.max(1, Swift.min(Parallel.workers, n)) }

    static func samplesPerChunk(_ g: ConvGeometry, batch: Int) -> Int {
        let hw = g.outputHeight * g.outputWidth
        if hw >= planeForOwnGEMM { return 1 }
        let perSample = (g.inChannels * g.kernelHeight * g.kernelWidth + g.outChannels) * hw
        return Swift.max(1, Swift.min(batch, chunkBudget / Swift.max(1, perSample)))
    }

    /// output = conv(input, filters): `[batch, Cin, H, W]` ⋆ `[Cout, Cin, Kh, Kw]` → `[batch, Cout, Ho, Wo]`.
    public static func forward(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>,
                               filters: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                               accumulate: Bool = false, workspace: inout ConvWorkspace, method: ConvolutionMethod = .automatic) {
        precondition(g.problem == nil, "convolution: \(g.problem ?? "")")
        guard batch > 0 else { return }
        if method.useDirect(g) {
            return DirectConvolution1D.forward(g, batch: batch, input: input, filters: filters, output: output, accumulate: accumulate)
        }
        let kk = g.inChannels * g.kernelHeight * g.kernelWidth, hw = g.outputHeight * g.outputWidth
        let nb = samplesPerChunk(g, batch: batch)
        workspace.withBuffer(count: (kk + (nb > 1 ? g.outChannels : 0)) * nb * hw) { buf in
            let cols = buf, staging = buf + kk * nb * hw
            var b0 = 0
            while b0 < batch {
                let n = Swift.min(nb, batch - b0)
                let out = output + b0 * g.outputCount
                if n == 1 {
                    Im2col.im2col(g, input: input + b0 * g.inputCount, cols: cols)
                    BLAS.sgemm(transA: false, transB: false, m: g.outChannels, n: hw, k: kk,
                               alpha: 1, a: filters, lda: kk, b: cols, ldb: hw,
                               beta: accumulate ? 1 : 0, c: out, ldc: hw)
                } else {
                    let inChunk = input + b0 * g.inputCount
                    Parallel.forEachPart(n, parts: sampleParts(n)) { _, r in Parallel.serially {
                        Im2col.im2col(g, samples: r, input: inChunk, cols: cols, ld: n * hw)
                        BLAS.sgemm(transA: false, transB: false, m: g.outChannels, n: r.count * hw, k: kk,
                                   alpha: 1, a: filters, lda: kk, b: cols + r.lowerBound * hw, ldb: n * hw,
                                   beta: 0, c: staging + r.lowerBound * hw, ldc: n * hw)
                        Im2col.channelMajorToBatch(channels: g.outChannels, samples: n, planeSize: hw, range: r,
                                                   src: staging, dst: out, accumulate: accumulate)
                    } }
                }
                b0 += n
            }
        }
    }

    /// output = convᵀ(input, filters), the adjoint of `forward`:
    /// `[batch, Cout, Ho, Wo]` → `[batch, Cin, H, W]` (H, W from the geometry).
    public static func transposed(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>,
                                  filters: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                                  accumulate: Bool = false, workspace: inout ConvWorkspace, method: ConvolutionMethod = .automatic) {
        precondition(g.problem == nil, "transposed convolution: \(g.problem ?? "")")
        guard batch > 0 else { return }
        if method.useDirect(g) {
            return DirectConvolution1D.transposed(g, batch: batch, input: input, filters: filters, output: output, accumulate: accumulate)
        }
        let kk = g.inChannels * g.kernelHeight * g.kernelWidth, hw = g.outputHeight * g.outputWidth
        let nb = samplesPerChunk(g, batch: batch)
        workspace.withBuffer(count: (kk + (nb > 1 ? g.outChannels : 0)) * nb * hw) { buf in
            let cols = buf, staging = buf + kk * nb * hw
            var b0 = 0
            while b0 < batch {
                let n = Swift.min(nb, batch - b0)
                let (inChunk, outChunk) = (input + b0 * g.outputCount, output + b0 * g.inputCount)
                if n == 1 {
                    if !accumulate { outChunk.update(repeating: 0, count: g.inputCount) }
                    BLAS.sgemm(transA: true, transB: false, m: kk, n: hw, k: g.outChannels,
                               alpha: 1, a: filters, lda: kk, b: inChunk, ldb: hw,
                               beta: 0, c: cols, ldc: hw)
                    Im2col.col2im(g, cols: cols, output: outChunk)
                } else {
                    Parallel.forEachPart(n, parts: sampleParts(n)) { _, r in Parallel.serially {
                        if !accumulate { (outChunk + r.lowerBound * g.inputCount).update(repeating: 0, count: r.count * g.inputCount) }
                        Im2col.batchToChannelMajor(channels: g.outChannels, samples: n, planeSize: hw, range: r,
                                                   src: inChunk, dst: staging)
                        BLAS.sgemm(transA: true, transB: false, m: kk, n: r.count * hw, k: g.outChannels,
                                   alpha: 1, a: filters, lda: kk, b: staging + r.lowerBound * hw, ldb: n * hw,
                                   beta: 0, c: cols + r.lowerBound * hw, ldc: n * hw)
                        Im2col.col2im(g, samples: r, cols: cols, ld: n * hw, output: outChunk)
                    } }
                }
                b0 += n
            }
        }
    }

    /// filterGradient = Σ_b corr(input_b, outputGradient_b), i.e. ∂⟨outputGradient, forward(input, w)⟩/∂w,
    /// shaped `[Cout, Cin, Kh, Kw]`.
    public static func filterGradient(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>,
                                      outputGradient: UnsafePointer<Float>, filterGradient: UnsafeMutablePointer<Float>,
                                      accumulate: Bool = false, workspace: inout ConvWorkspace, method: ConvolutionMethod = .automatic) {
        precondition(g.problem == nil, "convolution filter gradient: \(g.problem ?? "")")
        if method.useDirect(g) {
            return DirectConvolution1D.filterGradient(g, batch: batch, input: input, outputGradient: outputGradient,
                                                      filterGradient: filterGradient, accumulate: accumulate)
        }
        if !accumulate { filterGradient.update(repeating: 0, count: g.filterCount) }
        guard batch > 0 else { return }
        filterGradientChunks(g, batch: batch, input: input, outputGradient: outputGradient, filterGradient: filterGradient,
                             alsoForward: nil, workspace: &workspace)
    }

    /// `forward(input, filters) → output` and `filterGradient(input, outputGradient)` added into
    /// `filterGradient`, on one column matrix of `input`. A transposed-convolution layer's backward needs
    /// both for the same input (its output gradient); each product is the one the separate calls make,
    /// chunk by chunk, so the results are theirs bit for bit.
    public static func forwardAndFilterGradient(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>,
                                                filters: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                                                outputGradient: UnsafePointer<Float>,
                                                filterGradient: UnsafeMutablePointer<Float>,
                                                workspace: inout ConvWorkspace, method: ConvolutionMethod = .automatic) {
        precondition(g.problem == nil, "convolution: \(g.problem ?? "")")
        guard batch > 0, !method.useDirect(g) else {
            Convolution.filterGradient(g, batch: batch, input: input, outputGradient: outputGradient,
                                       filterGradient: filterGradient, accumulate: true, workspace: &workspace, method: method)
            return forward(g, batch: batch, input: input, filters: filters, output: output, workspace: &workspace, method: method)
        }
        filterGradientChunks(g, batch: batch, input: input, outputGradient: outputGradient, filterGradient: filterGradient,
                             alsoForward: (filters, output), workspace: &workspace)
    }

    /// Adds the filter gradient chunk by chunk from the columns of `input`; with `alsoForward`, also makes
    /// the forward products of the same columns, as `forward` does.
    private static func filterGradientChunks(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>,
                                             outputGradient: UnsafePointer<Float>, filterGradient: UnsafeMutablePointer<Float>,
                                             alsoForward: (filters: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>)?,
                                             workspace: inout ConvWorkspace) {
        let kk = g.inChannels * g.kernelHeight * g.kernelWidth, hw = g.outputHeight * g.outputWidth
        let nb = samplesPerChunk(g, batch: batch)
        workspace.withBuffer(count: (kk + (nb > 1 ? g.outChannels : 0)) * nb * hw) { buf in
            let cols = buf, staging = buf + kk * nb * hw
            var b0 = 0
            while b0 < batch {
                let n = Swift.min(nb, batch - b0)
                let inChunk = input + b0 * g.inputCount
                var gy = outputGradient + b0 * g.outputCount
                if n == 1 {
                    Im2col.im2col(g, input: inChunk, cols: cols)
                } else {
                    // The copies in one region; the product sums over every sample, so it is split by its rows.
                    let gyChunk = gy
                    Parallel.forEachPart(n, parts: sampleParts(n)) { _, r in
                        Im2col.im2col(g, samples: r, input: inChunk, cols: cols, ld: n * hw)
                        Im2col.batchToChannelMajor(channels: g.outChannels, samples: n, planeSize: hw, range: r,
                                                   src: gyChunk, dst: staging)
                    }
                    gy = UnsafePointer(staging)
                }
                BLAS.sgemm(transA: false, transB: true, m: g.outChannels, n: kk, k: n * hw,
                           alpha: 1, a: gy, lda: n * hw, b: cols, ldb: n * hw,
                           beta: 1, c: filterGradient, ldc: kk)
                if let (filters, output) = alsoForward {
                    let out = output + b0 * g.outputCount
                    if n == 1 {
                        BLAS.sgemm(transA: false, transB: false, m: g.outChannels, n: hw, k: kk,
                                   alpha: 1, a: filters, lda: kk, b: cols, ldb: hw, beta: 0, c: out, ldc: hw)
                    } else {
                        // The staged gradient is used up: the forward products go through the same buffer.
                        Parallel.forEachPart(n, parts: sampleParts(n)) { _, r in Parallel.serially {
                            BLAS.sgemm(transA: false, transB: false, m: g.outChannels, n: r.count * hw, k: kk,
                                       alpha: 1, a: filters, lda: kk, b: cols + r.lowerBound * hw, ldb: n * hw,
                                       beta: 0, c: staging + r.lowerBound * hw, ldc: n * hw)
                            Im2col.channelMajorToBatch(channels: g.outChannels, samples: n, planeSize: hw, range: r,
                                                       src: staging, dst: out, accumulate: false)
                        } }
                    }
                }
                b0 += n
            }
        }
    }
}

// MARK: - Tensor level (NCHW)

extension ConvGeometry {
    /// The geometry of `conv2d(input, filters)` for tensors `[B, Cin, H, W]` and `[Cout, Cin, Kh, Kw]`.
    static func conv2d(input: [Int], filters: [Int], stride: Int, padding: Int, _ what: String) -> ConvGeometry {
        precondition(input.count == 4 && filters.count == 4,
                     "\(what): input must be [B, Cin, H, W] and filters [Cout, Cin, Kh, Kw], got \(input) and \(filters)")
        precondition(input[1] == filters[1], "\(what): input has \(input[1]) channels, filters expect \(filters[1])")
        let g = ConvGeometry(inChannels: input[1], outChannels: filters[0], inputHeight: input[2], inputWidth: input[3],
                             kernelHeight: filters[2], kernelWidth: filters[3], stride: stride, padding: padding)
        precondition(g.problem == nil, "\(what): \(g.problem ?? "")")
        return g
    }

    /// The geometry of `convTranspose2d(codes, filters)` producing `[B, Cin, height, width]`.
    static func convTranspose2d(codes: [Int], filters: [Int], height: Int, width: Int,
                                stride: Int, padding: Int, _ what: String) -> ConvGeometry {
        precondition(codes.count == 4 && filters.count == 4,
                     "\(what): input must be [B, Cout, Ho, Wo] and filters [Cout, Cin, Kh, Kw], got \(codes) and \(filters)")
        precondition(codes[1] == filters[0], "\(what): input has \(codes[1]) channels, filters have \(filters[0]) outputs")
        let g = ConvGeometry(inChannels: filters[1], outChannels: filters[0], inputHeight: height, inputWidth: width,
                             kernelHeight: filters[2], kernelWidth: filters[3], stride: stride, padding: padding)
        precondition(g.problem == nil, "\(what): \(g.problem ?? "")")
        precondition(g.outputHeight == codes[2] && g.outputWidth == codes[3],
                     "\(what): a \(height)×\(width) output convolves to \(g.outputHeight)×\(g.outputWidth), not \(codes[2])×\(codes[3])")
        return g
    }
}

extension Tensor {
    /// Cross-correlation `[B, Cin, H, W]` ⋆ `[Cout, Cin, Kh, Kw]` → `[B, Cout, Ho, Wo]` (PyTorch `conv2d`).
    public func conv2d(_ filters: Tensor, stride: Int = 1, padding: Int = 0) -> Tensor {
        var out = Tensor(zeros: [])
        var ws = ConvWorkspace()
        conv2d(filters, stride: stride, padding: padding, into: &out, workspace: &ws)
        return out
    }

    /// `conv2d` into `output` (reallocated only when its shape is wrong and not accumulating).
    public func conv2d(_ filters: Tensor, stride: Int = 1, padding: Int = 0, into output: inout Tensor,
                       accumulate: Bool = false, workspace: inout ConvWorkspace) {
        let g = ConvGeometry.conv2d(input: shape, filters: filters.shape, stride: stride, padding: padding, "conv2d")
        let outShape = [shape[0]] + g.outputShape
        Tensor.prepare(&output, shape: outShape, accumulate: accumulate, "conv2d")
        guard shape[0] > 0 else { return }
        data.withUnsafeBufferPointer { x in
            filters.data.withUnsafeBufferPointer { w in
                output.data.withUnsafeMutableBufferPointer { y in
                    Convolution.forward(g, batch: shape[0], input: x.baseAddress!, filters: w.baseAddress!,
                                        output: y.baseAddress!, accumulate: accumulate, workspace: &workspace)
                }
            }
        }
    }

    /// The adjoint of `conv2d`: `[B, Cout, Ho, Wo]` → `[B, Cin, height, width]` (PyTorch `conv_transpose2d`
    /// with the same filter tensor; the output size resolves the stride's ambiguity, like `output_padding`).
    public func convTranspose2d(_ filters: Tensor, stride: Int = 1, padding: Int = 0,
                                outputSize: (height: Int, width: Int)) -> Tensor {
        var out = Tensor(zeros: [])
        var ws = ConvWorkspace()
        convTranspose2d(filters, stride: stride, padding: padding, outputSize: outputSize, into: &out, workspace: &ws)
        return out
    }

    public func convTranspose2d(_ filters: Tensor, stride: Int = 1, padding: Int = 0,
                                outputSize: (height: Int, width: Int), into output: inout Tensor,
                                accumulate: Bool = false, workspace: inout ConvWorkspace) {
        let g = ConvGeometry.convTranspose2d(codes: shape, filters: filters.shape, height: outputSize.height,
                                             width: outputSize.width, stride: stride, padding: padding, "convTranspose2d")
        Tensor.prepare(&output, shape: [shape[0]] + g.inputShape, accumulate: accumulate, "convTranspose2d")
        guard shape[0] > 0 else { return }
        data.withUnsafeBufferPointer { y in
            filters.data.withUnsafeBufferPointer { w in
                output.data.withUnsafeMutableBufferPointer { x in
                    Convolution.transposed(g, batch: shape[0], input: y.baseAddress!, filters: w.baseAddress!,
                                           output: x.baseAddress!, accumulate: accumulate, workspace: &workspace)
                }
            }
        }
    }

    /// `conv2d(filters)` of this batch, with ∂⟨outputGradient, conv2d(self, w)⟩/∂w added into `gradient`
    /// (shaped like `filters`) from the same column matrix: the two separate calls' results, one im2col.
    public func conv2d(_ filters: Tensor, stride: Int = 1, padding: Int = 0, addingFilterGradientOf outputGradient: Tensor,
                       into gradient: inout Tensor, workspace: inout ConvWorkspace) -> Tensor {
        let g = ConvGeometry.conv2d(input: shape, filters: filters.shape, stride: stride, padding: padding, "conv2d")
        precondition(outputGradient.shape == [shape[0]] + g.outputShape,
                     "conv2d: output gradient \(outputGradient.shape) should be \([shape[0]] + g.outputShape)")
        precondition(gradient.shape == g.filterShape, "conv2d: filter gradient \(gradient.shape) should be \(g.filterShape)")
        var out = Tensor(zeros: [shape[0]] + g.outputShape)
        guard shape[0] > 0 else { return out }
        data.withUnsafeBufferPointer { x in
            filters.data.withUnsafeBufferPointer { w in
                outputGradient.data.withUnsafeBufferPointer { gy in
                    gradient.data.withUnsafeMutableBufferPointer { gw in
                        out.data.withUnsafeMutableBufferPointer { y in
                            Convolution.forwardAndFilterGradient(g, batch: shape[0], input: x.baseAddress!, filters: w.baseAddress!,
                                                                 output: y.baseAddress!, outputGradient: gy.baseAddress!,
                                                                 filterGradient: gw.baseAddress!, workspace: &workspace)
                        }
                    }
                }
            }
        }
        return out
    }

    /// ∂⟨outputGradient, conv2d(input, w)⟩/∂w: `[Cout, Cin, Kh, Kw]`, summed over the batch.
    public static func conv2dFilterGradient(input: Tensor, outputGradient: Tensor, kernelSize: (height: Int, width: Int),
                                            stride: Int = 1, padding: Int = 0) -> Tensor {
        var out = Tensor(zeros: [])
        var ws = ConvWorkspace()
        conv2dFilterGradient(input: input, outputGradient: outputGradient, kernelSize: kernelSize, stride: stride,
                             padding: padding, into: &out, workspace: &ws)
        return out
    }

    public static func conv2dFilterGradient(input: Tensor, outputGradient: Tensor, kernelSize: (height: Int, width: Int),
                                            stride: Int = 1, padding: Int = 0, into gradient: inout Tensor,
                                            accumulate: Bool = false, workspace: inout ConvWorkspace) {
        precondition(outputGradient.rank == 4, "conv2dFilterGradient: output gradient must be [B, Cout, Ho, Wo], got \(outputGradient.shape)")
        let fshape = [outputGradient.shape[1], input.shape.count == 4 ? input.shape[1] : 0, kernelSize.height, kernelSize.width]
        let g = ConvGeometry.conv2d(input: input.shape, filters: fshape, stride: stride, padding: padding, "conv2dFilterGradient")
        precondition(outputGradient.shape == [input.shape[0]] + g.outputShape,
                     "conv2dFilterGradient: output gradient \(outputGradient.shape) should be \([input.shape[0]] + g.outputShape)")
        prepare(&gradient, shape: g.filterShape, accumulate: accumulate, "conv2dFilterGradient")
        if input.shape[0] == 0 {
            if !accumulate { gradient.data.withUnsafeMutableBufferPointer { $0.update(repeating: 0) } }
            return
        }
        input.data.withUnsafeBufferPointer { x in
            outputGradient.data.withUnsafeBufferPointer { gy in
                gradient.data.withUnsafeMutableBufferPointer { gw in
                    Convolution.filterGradient(g, batch: input.shape[0], input: x.baseAddress!, outputGradient: gy.baseAddress!,
                                               filterGradient: gw.baseAddress!, accumulate: accumulate, workspace: &workspace)
                }
            }
        }
    }

    /// Gives `t` the shape `shape`: reallocated (zeros) when it differs; accumulating requires it already.
    static func prepare(_ t: inout Tensor, shape: [Int], accumulate: Bool, _ what: String) {
        if t.shape == shape { return }
        precondition(!accumulate, "\(what): accumulating into a tensor of shape \(t.shape), expected \(shape)")
        t = Tensor(zeros: shape)
    }
}
