import UnrollCore

/// A 2-D convolutional dictionary: C filters of K×K with stride s (PUDLE's CAE: 64 filters 9×9, stride 4;
/// CRsAE's image models: 64 filters 7×7, stride 5). An image is the sum of the filters placed at the
/// code positions: x̂ = Σ_c convᵀ_s(z_c, h_c).
///
/// Shapes (batch first, as `DictionaryOperator` asks): signals `[B, H, W]`, codes `[B, C, Ho, Wo]`
/// (atom-major, so a per-filter λ applies to a contiguous block), weights `[C, 1, K, K]`.
///
/// **Sizes that do not fit the stride.** The code grid is Ho = ⌈(H − K)/s⌉ + 1 (likewise Wo), the
/// smallest that covers every pixel. It spans Hp = (Ho − 1)s + K ≥ H rows; when Hp > H the image is
/// zero-padded at the bottom/right to Hp×Wp and the decoded image is cropped back to H×W:
///
///     apply(z)   = crop(convTranspose2d(z, h, stride s))      (codes → image)
///     adjoint(x) = conv2d(pad(x), h, stride s)                (image → codes; strided correlation)
///
/// Crop and zero-pad are each other's adjoints, so `adjoint` is exactly Dᵀ and ISTA/FISTA still solve
/// a lasso with a single linear operator (filters simply may hang over the bottom/right border). The
/// peers avoid the question: PUDLE uses only sizes with (H − K) % s = 0 (129×129 crops, 481×321
/// images), for which the two forms coincide; CRsAE reflect-pads each image s² times with shifts and
/// averages the s² reconstructions, which costs s² encodings and is not one linear operator.
///
/// The operator is set for one image size (`height` × `width`), like a dense dictionary is set for one
/// signal length; `resized(height:width:)` gives the same filters for another size (cheap: the weights
/// are shared copy-on-write).
public struct Convolution2DDictionary: DictionaryOperator, Equatable {
    /// The filters `[C, 1, K, K]`. Assigning another shape is a programming error (traps).
    public var weights: Tensor {
        didSet {
            precondition(weights.shape == oldValue.shape,
                         "Convolution2DDictionary weights must keep shape \(oldValue.shape), got \(weights.shape)")
        }
    }
    public let stride: Int
    /// The image size this operator decodes to.
    public let height: Int
    public let width: Int

    /// Wraps filters `[C, 1, K, K]` (or `[C, K, K]`) for `height`×`width` images. Throws for a bad
    /// shape, NaN/Inf, stride < 1, or an image smaller than a filter.
    public init(filters: Tensor, stride: Int, height: Int, width: Int) throws {
        var w = filters
        if w.rank == 3 { w = w.reshaped([w.shape[0], 1, w.shape[1], w.shape[2]]) }
        guard w.rank == 4, w.shape[0] >= 1, w.shape[1] == 1, w.shape[2] >= 1, w.shape[2] == w.shape[3] else {
            throw UnrollError.shapeMismatch("convolutional dictionary filters must be [C, 1, K, K] (square, one channel), got shape \(filters.shape)")
        }
        guard !w.hasNonFinite else { throw UnrollError.nonFinite("convolutional dictionary filters contain NaN or Inf") }
        try Self.checkGeometry(kernel: w.shape[2], stride: stride, height: height, width: width)
        self.weights = w
        self.stride = stride
        self.height = height
        self.width = width
    }

    /// C random filters K×K: Gaussian entries, each filter scaled to unit Frobenius norm (PUDLE's and
    /// CRsAE's initialisation).
    public init(filters c: Int, kernel k: Int, stride: Int, height: Int, width: Int, rng: inout Random) throws {
        guard c >= 1, k >= 1 else { throw UnrollError.invalidArgument("need ≥ 1 filters of size ≥ 1, got \(c) of \(k)×\(k)") }
        var w = Tensor.normal([c, 1, k, k], rng: &rng)
        Self.normalizeFilters(&w)
        try self.init(filters: w, stride: stride, height: height, width: width)
    }

    static func checkGeometry(kernel k: Int, stride s: Int, height: Int, width: Int) throws {
        guard s >= 1 else { throw UnrollError.invalidArgument("convolution stride must be ≥ 1, got \(s)") }
        guard height >= k, width >= k else {
            throw UnrollError.shapeMismatch("image \(height)×\(width) is smaller than the \(k)×\(k) filters")
        }
    }

    /// The same filters for `height`×`width` images.
    public func resized(height: Int, width: Int) throws -> Convolution2DDictionary {
        try Self.checkGeometry(kernel: kernel, stride: stride, height: height, width: width)
        var copy = self
        copy.resize(height, width)
        return copy
    }

    /// Resized to the images of a `[B, H, W]` batch (other shapes: unchanged, `codeShape` reports them).
    public func adapted(toSignalShape signalShape: [Int]) throws -> Convolution2DDictionary {
        guard signalShape.count == 3, signalShape[1] != height || signalShape[2] != width else { return self }
        return try resized(height: signalShape[1], width: signalShape[2])
    }

    private mutating func resize(_ h: Int, _ w: Int) {
        self = Convolution2DDictionary(unchecked: weights, stride: stride, height: h, width: w)
    }

    private init(unchecked weights: Tensor, stride: Int, height: Int, width: Int) {
        self.weights = weights
        self.stride = stride
        self.height = height
        self.width = width
    }

    /// Number of filters C.
    public var atoms: Int { weights.shape[0] }
    /// Filter side K.
    public var kernel: Int { weights.shape[2] }
    /// Code grid Ho × Wo.
    public var codeHeight: Int { (height - kernel + stride - 1) / stride + 1 }
    public var codeWidth: Int { (width - kernel + stride - 1) / stride + 1 }
    /// The padded size the code grid spans, Hp = (Ho − 1)s + K (≥ height).
    public var paddedHeight: Int { (codeHeight - 1) * stride + kernel }
    public var paddedWidth: Int { (codeWidth - 1) * stride + kernel }
    /// Whether the image size fits the stride exactly (no padding or cropping).
    public var fitsExactly: Bool { paddedHeight == height && paddedWidth == width }

    public func codeShape(signalShape: [Int]) throws -> [Int] {
        guard signalShape.count == 3, signalShape[1] == height, signalShape[2] == width else {
            throw UnrollError.shapeMismatch("images must be [batch, \(height), \(width)] for this convolutional dictionary (use resized(height:width:) for another size), got \(signalShape)")
        }
        return [signalShape[0], atoms, codeHeight, codeWidth]
    }

    public func signalShape(codeShape: [Int]) throws -> [Int] {
        guard codeShape.count == 4, codeShape[1] == atoms, codeShape[2] == codeHeight, codeShape[3] == codeWidth else {
            throw UnrollError.shapeMismatch("codes must be [batch, \(atoms), \(codeHeight), \(codeWidth)], got \(codeShape)")
        }
        return [codeShape[0], height, width]
    }

    /// crop(convᵀ(z)): `[B, C, Ho, Wo]` → `[B, H, W]`.
    public func apply(_ codes: Tensor) -> Tensor {
        precondition(codes.shape.count == 4 && codes.shape[1...] == [atoms, codeHeight, codeWidth],
                     "conv2d dictionary apply: codes \(codes.shape) vs [B, \(atoms), \(codeHeight), \(codeWidth)]")
        let b = codes.shape[0]
        let full = codes.convTranspose2d(weights, stride: stride, outputSize: (paddedHeight, paddedWidth))
        return crop(full, batch: b)
    }

    /// conv(pad(x)): `[B, H, W]` → `[B, C, Ho, Wo]`.
    public func adjoint(_ signals: Tensor) -> Tensor {
        precondition(signals.shape.count == 3 && signals.shape[1] == height && signals.shape[2] == width,
                     "conv2d dictionary adjoint: images \(signals.shape) vs [B, \(height), \(width)]")
        return pad(signals).conv2d(weights, stride: stride)
    }

    /// ∂/∂h ⟨r, apply(z)⟩ = ∂/∂h ⟨conv(pad(r), h), z⟩, `[C, 1, K, K]`, summed over the batch.
    public func weightGradient(residual: Tensor, codes: Tensor) -> Tensor {
        Tensor.conv2dFilterGradient(input: pad(residual), outputGradient: codes,
                                    kernelSize: (kernel, kernel), stride: stride)
    }

    public mutating func normalize() {
        Self.normalizeFilters(&weights)
    }

    static func normalizeFilters(_ w: inout Tensor) {
        let shape = w.shape
        var rows = w.reshaped([shape[0], shape.dropFirst().reduce(1, *)])
        rows.normalizeRows()
        w = rows.reshaped(shape)
    }

    /// Power iteration on DᵀD for one image of this operator's size. (For large images ‖D‖₂² barely
    /// depends on the size; a 64×64 operator from `resized` gives nearly the same bound, cheaper.)
    public func lipschitz(iterations: Int, rng: inout Random) -> Float {
        powerIteration(codeShape: [1, atoms, codeHeight, codeWidth], iterations: iterations, rng: &rng)
    }

    // MARK: padding

    /// `[B, H, W]` → `[B, 1, Hp, Wp]`, zeros at the bottom/right (no copy when the size fits).
    func pad(_ x: Tensor) -> Tensor {
        let b = x.shape[0]
        if fitsExactly { return x.reshaped([b, 1, height, width]) }
        let (hp, wp, h, w) = (paddedHeight, paddedWidth, height, width)
        var out = Tensor(zeros: [b, 1, hp, wp])
        x.data.withUnsafeBufferPointer { src in
            out.data.withUnsafeMutableBufferPointer { dst in
                for i in 0..<b {
                    for r in 0..<h {
                        (dst.baseAddress! + (i * hp + r) * wp).update(from: src.baseAddress! + (i * h + r) * w, count: w)
                    }
                }
            }
        }
        return out
    }

    /// `[B, 1, Hp, Wp]` → `[B, H, W]`, dropping the padded rows and columns.
    func crop(_ x: Tensor, batch b: Int) -> Tensor {
        if fitsExactly { return x.reshaped([b, height, width]) }
        let (hp, wp, h, w) = (paddedHeight, paddedWidth, height, width)
        var out = Tensor(zeros: [b, h, w])
        x.data.withUnsafeBufferPointer { src in
            out.data.withUnsafeMutableBufferPointer { dst in
                for i in 0..<b {
                    for r in 0..<h {
                        (dst.baseAddress! + (i * h + r) * w).update(from: src.baseAddress! + (i * hp + r) * wp, count: w)
                    }
                }
            }
        }
        return out
    }
}
