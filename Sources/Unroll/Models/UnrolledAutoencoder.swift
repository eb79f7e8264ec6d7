import UnrollCore

/// One model for every unrolled network here (layer 5 of the design): an unrolled (F)ISTA encoder
/// over a dictionary D, with an optional separate analysis bank E in its correlation step, and a
/// decoder that is D itself or a separate synthesis bank:
///
///     z = encoder(x; D, E)        (v = y − α Eᵀ(D y − x), then the threshold; E = D when tied)
///     x̂ = D_dec z                 (D_dec = D when tied)
///
/// Every network of the three papers is a value of this type, not a type of its own:
/// - PUDLE dense and convolutional: tied, λ the lasso penalty (threshold λα), ISTA, hard or soft;
/// - CRsAE 1-D (spikes): tied, FISTA at α = 1/L, per-filter penalty λ_c σ², with the EM state `em`;
/// - CRsAE 2-D: tied (H) or untied (H, We, Wd), λ the per-filter threshold b_c itself, α = 1/L;
/// - the convex baselines: the same encoder run to a tolerance.
/// The operator (dense, 1-D or 2-D convolution) is the type parameter; everything else is a value.
public struct UnrolledAutoencoder<Op: DictionaryOperator>: Sendable {
    /// D: the operator inside the encoder's residual (and the decoder when `synthesis` is nil).
    public var dictionary: Op
    /// E: an untied encoder's correlation bank (nil: E = D).
    public var analysis: Op?
    /// An untied decoder bank (nil: the decoder is D).
    public var synthesis: Op?
    public var encoder: UnrolledEncoder
    /// The λ decay β the encoder runs at (1: none; PUDLE's decay schedule ends below 1).
    public var beta: Float
    /// CRsAE's EM-learned λ_c and the noise σ they go with (nil for models without the EM step).
    public var em: EMLambda?
    /// Strided 2-D models: denoise an image as the mean of its s² shifted encodings (CRsAE §2), as
    /// the model was trained and scored. Other operators ignore it.
    public var shiftAverage: Bool
    /// With `shiftAverage`: which of the s² shifts the model averages (`ShiftSet`), trading quality for time.
    public var shifts: ShiftSet
    /// A noise-adaptive model's reference σ: its thresholds are those for noise of this σ, and
    /// `atNoise(_:)` sets them for any other (nil: a model for the one σ it was trained at).
    public var adaptiveSigma: Float?
    /// Denoising: a non-local means of the reconstruction as its last stage (`NonLocalMeans`, h ∝ the
    /// noise σ: `adaptiveSigma` once set for the image's noise, or the EM state's σ); nil: none.
    public var nonLocal: NonLocalMeans?
    /// Denoising: a share of BM3D's first step of the noisy image mixed into the estimate after the
    /// non-local stage, then a share of its second step (`CollaborativeFilter`, thresholds ∝ the noise σ as for
    /// `nonLocal`); nil: none.
    public var collaborative: CollaborativeFilter?

    /// Throws when the banks differ in shape, the encoder settings are invalid for D, or β or the
    /// adaptive σ is bad.
    public init(dictionary: Op, analysis: Op? = nil, synthesis: Op? = nil, encoder: UnrolledEncoder,
                beta: Float = 1, em: EMLambda? = nil, shiftAverage: Bool = false, shifts: ShiftSet = .all, adaptiveSigma: Float? = nil,
                nonLocal: NonLocalMeans? = nil, collaborative: CollaborativeFilter? = nil) throws {
        for (name, bank) in [("analysis", analysis), ("synthesis", synthesis)] {
            if let bank, bank.weights.shape != dictionary.weights.shape {
                throw UnrollError.shapeMismatch("the \(name) bank's weights \(bank.weights.shape) differ from the dictionary's \(dictionary.weights.shape)")
            }
        }
        try encoder.validate(for: dictionary)
        guard beta.isFinite, beta >= 0 else { throw UnrollError.invalidArgument("λ decay β must be finite and ≥ 0, got \(beta)") }
        if let em {
            guard em.lambdas.count == dictionary.atoms else {
                throw UnrollError.shapeMismatch("EM λ has \(em.lambdas.count) values for \(dictionary.atoms) atoms")
            }
            guard em.sigma.isFinite, em.sigma > 0, em.lambdas.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                throw UnrollError.invalidArgument("EM state needs σ > 0 and finite λ ≥ 0, got σ \(em.sigma)")
            }
        }
        if let adaptiveSigma {
            guard adaptiveSigma.isFinite, adaptiveSigma > 0 else {
                throw UnrollError.invalidArgument("a noise-adaptive model's reference σ must be finite and > 0, got \(adaptiveSigma)")
            }
            guard em == nil else { throw UnrollError.invalidArgument("an EM model's thresholds follow λσ², it cannot also be noise-adaptive") }
        }
        self.dictionary = dictionary
        self.analysis = analysis
        self.synthesis = synthesis
        self.encoder = encoder
        self.beta = beta
        self.em = em
        try shifts.validate()
        self.shiftAverage = shiftAverage
        self.shifts = shifts
        self.adaptiveSigma = adaptiveSigma
        self.nonLocal = nonLocal
        self.collaborative = collaborative
    }

    /// The noise σ a denoising model is set for: a noise-adaptive model's current σ, or the EM state's.
    public var noiseSigma: Float? { adaptiveSigma ?? em?.sigma }

    /// This noise-adaptive model set for noise of σ: its thresholds (λ, soft or hard) scaled by
    /// σ / `adaptiveSigma`. The layers are linear apart from the thresholds, so the network is
    /// positively homogeneous — with thresholds scaled by c it maps c·y to c·f(y) — and scaling the
    /// thresholds with σ is the same as denoising y·σ₀/σ at the reference σ₀ and scaling back.
    public func atNoise(_ sigma: Float) throws -> UnrolledAutoencoder {
        guard let reference = adaptiveSigma else {
            throw UnrollError.invalidArgument("the model is not noise-adaptive: it serves the one σ it was trained at")
        }
        guard sigma.isFinite, sigma > 0 else { throw UnrollError.invalidArgument("noise σ must be finite and > 0, got \(sigma)") }
        let c = sigma / reference
        var m = self
        switch encoder.lambda {
        case let .scalar(v): m.encoder.lambda = .scalar(v * c)
        case let .perAtom(v): m.encoder.lambda = .perAtom(v.map { $0 * c })
        }
        m.adaptiveSigma = sigma
        return m
    }

    /// True when one bank plays every role.
    public var isTied: Bool { analysis == nil && synthesis == nil }
    public var decoder: Op { synthesis ?? dictionary }
    public var atoms: Int { dictionary.atoms }

    /// The banks set for signals of `shape` (a 2-D convolution is resized to the images).
    func banks(for shape: [Int]) throws -> (d: Op, e: Op?, dec: Op?) {
        (try dictionary.adapted(toSignalShape: shape), try analysis?.adapted(toSignalShape: shape),
         try synthesis?.adapted(toSignalShape: shape))
    }

    /// The codes of a signal batch (batch first, the operator's signal shape).
    public func encode(_ signals: Tensor) throws -> Tensor {
        let b = try banks(for: signals.shape)
        return try encoder.encode(signals, with: b.d, analysis: b.e, beta: beta)
    }

    /// Codes and the decoded signals x̂ = D_dec z, of the signals' shape.
    public func reconstruct(_ signals: Tensor) throws -> (codes: Tensor, reconstruction: Tensor) {
        let b = try banks(for: signals.shape)
        let codes = try encoder.encode(signals, with: b.d, analysis: b.e, beta: beta)
        return (codes, (b.dec ?? b.d).apply(codes))
    }

    /// x̂ = D_dec z for codes of signals of `signalShape` (needed by a 2-D convolution, whose code
    /// grid covers several image sizes; nil: the operator's own).
    public func decode(_ codes: Tensor, signalShape: [Int]? = nil) throws -> Tensor {
        let dec = decoder
        let op = try signalShape.map { try dec.adapted(toSignalShape: $0) } ?? dec
        let expected = try op.signalShape(codeShape: codes.shape)
        if let signalShape, expected != signalShape {
            throw UnrollError.shapeMismatch("codes \(codes.shape) decode to \(expected), not \(signalShape)")
        }
        return op.apply(codes)
    }
}

extension UnrolledAutoencoder where Op == Convolution1DDictionary {
    /// Codes `[C, samples − K + 1]` of a `[channels, samples]` recording of any length, in chunks whose
    /// margins T(K − 1) make them equal to one pass (`ChunkedEncoding`), `batch` chunks per call.
    public func encode(recording: Tensor, chunkSamples: Int = 20_000, batch: Int = 8) throws -> Tensor {
        let k = dictionary.filterLength
        let margin = ChunkedEncoding.exactMargin(layers: encoder.layers, filterLength: k)
        let chunks = ChunkedEncoding(length: max(chunkSamples, 2 * margin + 4 * k), margin: margin, batch: batch)
        return try chunks.encode(recording, atoms: atoms, filterLength: k) { try encode($0) }
    }
}

/// CRsAE's EM-inspired λ: the per-filter λ_c (with a Gamma prior) and the noise σ of the last update;
/// the encoder's penalty (1-D) or threshold (2-D) is derived from them.
public struct EMLambda: Equatable, Sendable {
    public var lambdas: [Float]
    public var sigma: Float

    public init(lambdas: [Float], sigma: Float) {
        self.lambdas = lambdas
        self.sigma = sigma
    }
}
