import Foundation
import UnrollCore

/// A trained CRsAE spike-sorting model: the filters, λ_c, σ and the encoder settings, with the step α
/// fixed at training's end so that every chunk of a recording is encoded with the same network.
public struct SpikeModel: Equatable, Sendable {
    /// `[C, channels, K]`, unit norm.
    public var filters: Tensor
    /// CRsAE's λ_c (the lasso penalty is λ_c σ²).
    public var lambdas: [Float]
    public var sigma: Float
    public var layers: Int
    public var threshold: Threshold
    /// α = 1/L.
    public var alpha: Float

    public init(filters: Tensor, lambdas: [Float], sigma: Float, layers: Int, threshold: Threshold, alpha: Float) throws {
        let op = try Convolution1DDictionary(weights: filters)
        guard lambdas.count == op.atoms else { throw UnrollError.shapeMismatch("model: \(lambdas.count) λ values for \(op.atoms) filters") }
        guard sigma.isFinite, sigma > 0, alpha.isFinite, alpha > 0, layers >= 1 else {
            throw UnrollError.invalidArgument("model: σ, α and T must be positive, got σ \(sigma), α \(alpha), T \(layers)")
        }
        self.filters = filters
        self.lambdas = lambdas
        self.sigma = sigma
        self.layers = layers
        self.threshold = threshold
        self.alpha = alpha
    }

    public var dictionary: Convolution1DDictionary { try! Convolution1DDictionary(weights: filters) }
    public var filterLength: Int { filters.shape[2] }

    /// The trained network: T FISTA layers at the fixed α, penalty λ_c σ².
    public var encoder: UnrolledEncoder {
        UnrolledEncoder(layers: layers, algorithm: .fista, threshold: threshold,
                        lambda: GammaPriorLambda.encoderLambda(lambdas, sigma: sigma), step: .fixed(alpha))
    }

    /// The model as the one model value: a tied conv1d autoencoder with this encoder and the EM state.
    public func autoencoder() throws -> UnrolledAutoencoder<Convolution1DDictionary> {
        try UnrolledAutoencoder(dictionary: dictionary, encoder: encoder, em: EMLambda(lambdas: lambdas, sigma: sigma))
    }

    /// The spike model of a tied conv1d autoencoder with FISTA at a fixed α and an EM state (what
    /// `autoencoder()` gives).
    public init(_ model: UnrolledAutoencoder<Convolution1DDictionary>) throws {
        guard model.isTied, model.encoder.algorithm == .fista, case let .fixed(alpha) = model.encoder.step, let em = model.em else {
            throw UnrollError.invalidArgument("a spike model is a tied conv1d model with a FISTA encoder at a fixed step and an EM λ (one written by `unroll spikes train`)")
        }
        try self.init(filters: model.dictionary.weights, lambdas: em.lambdas, sigma: em.sigma, layers: model.encoder.layers,
                      threshold: model.encoder.threshold, alpha: alpha)
    }

    /// Codes `[C, samples − K + 1]` of a `[channels, samples]` recording by the trained encoder.
    public func encode(_ recording: Tensor, chunkSamples: Int = 20_000, batch: Int = 8) throws -> Tensor {
        try autoencoder().encode(recording: recording, chunkSamples: chunkSamples, batch: batch)
    }

    /// Codes of the convex baseline (the same lasso to `tolerance`), with the largest iteration count used
    /// by a chunk batch. Its chunks overlap by `margin` code positions (default 2·T(K − 1)); the solution
    /// of the lasso is not exactly local, so this is an approximation of one pass that improves with the margin.
    public func encodeConvex(_ recording: Tensor, tolerance: Float = 1e-4, maxIterations: Int = 20_000,
                             chunkSamples: Int = 20_000, margin: Int? = nil, batch: Int = 8) throws -> (codes: Tensor, iterations: Int) {
        let op = dictionary
        let solver = ConvexLassoSolver(threshold: threshold, lambda: encoder.lambda, alpha: alpha, tolerance: tolerance,
                                       maxIterations: maxIterations)
        let m = margin ?? 2 * ChunkedEncoding.exactMargin(layers: layers, filterLength: filterLength)
        var most = 0
        let chunks = ChunkedEncoding(length: max(chunkSamples, 2 * m + 4 * filterLength), margin: m, batch: batch)
        let codes = try chunks.encode(recording, atoms: op.atoms, filterLength: filterLength) { x in
            let r = try solver.solve(x, operator: op)
            most = max(most, r.iterations)
            return r.codes
        }
        return (codes, most)
    }
}
