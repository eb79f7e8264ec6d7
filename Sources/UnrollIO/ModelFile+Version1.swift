import Foundation
import Unroll
import UnrollCore

/// The version-1 model files earlier releases wrote, read into the one model value: `dense-dictionary`
/// and `conv2d-dictionary` (format unroll-model/1; a tied CRsAE 2-D model was a conv2d-dictionary
/// with λ_enc = b·L as the penalty at α = 1/L), `crsae2d-untied` (H, We, Wd, b), `vsc-linear` and
/// `vsc-conv` (the trainer's state), and the spikes model `.npz` (filters, lambda, sigma, alpha,
/// layers, threshold). Writing always gives `unroll-model/2`.
extension ModelFile {
    static func version1(_ file: SafetensorsFile) throws -> ModelFile {
        let r = Entries(file)
        let kind = try r.string("model.kind")
        let model: UnrollModel
        switch kind {
        case "dense-dictionary":
            guard let w = file["W"]?.tensor else { throw UnrollIOError(.malformed, "no tensor 'W'") }
            let dictionary = try r.context("tensor W") { try DenseDictionary(weights: w) }
            let lambda: Lambda = file["lambda"] != nil ? .perAtom(try r.vector("lambda", count: dictionary.atoms))
                                                       : .scalar(try r.float("encoder.lambda"))
            let encoder = UnrolledEncoder(layers: try r.layers("encoder.layers"), algorithm: try r.algorithm(),
                                          threshold: try r.threshold(), lambda: lambda, step: try r.step(), tolerance: try r.tolerance())
            let beta = file.metadata["encoder.beta"] == nil ? 1 : try r.float("encoder.beta")
            model = .dense(try r.context("the model") { try UnrolledAutoencoder(dictionary: dictionary, encoder: encoder, beta: beta) })
        case "conv2d-dictionary":
            guard let w = file["W"]?.tensor else { throw UnrollIOError(.malformed, "no tensor 'W'") }
            guard w.rank == 4 else { throw UnrollIOError(.malformed, "tensor W has shape \(w.shape), expected [C, 1, K, K]") }
            let stride = try r.int("stride", 1...4096)
            let dictionary = try r.context("tensor W") {
                try Convolution2DDictionary(filters: w, stride: stride, height: w.shape[2], width: w.shape[3])
            }
            let values = try (r.string("encoder.lambda")).split(separator: ",").map { text -> Float in
                guard let v = Float(text), v.isFinite else { throw UnrollIOError(.malformed, "metadata encoder.lambda holds '\(text)', expected numbers") }
                return v
            }
            guard values.count == 1 || values.count == dictionary.atoms else {
                throw UnrollIOError(.malformed, "metadata encoder.lambda has \(values.count) values for \(dictionary.atoms) filters")
            }
            let encoder = UnrolledEncoder(layers: try r.layers("encoder.layers"), algorithm: try r.algorithm(),
                                          threshold: try r.threshold(), lambda: values.count == 1 ? .scalar(values[0]) : .perAtom(values),
                                          step: .fixed(try r.float("encoder.step")))
            // CRsAE's tied models were trained and scored with the shift average.
            model = .conv2d(try r.context("the model") {
                try UnrolledAutoencoder(dictionary: dictionary, encoder: encoder, shiftAverage: file.metadata["training.family"] == "crsae")
            })
        case "crsae2d-untied":
            let banks = try ["H", "We", "Wd"].map { name -> Tensor in
                guard let t = file[name]?.tensor else { throw UnrollIOError(.malformed, "no tensor '\(name)'") }
                return t
            }
            guard let b = file["b"]?.tensor else { throw UnrollIOError(.malformed, "no tensor 'b'") }
            model = .conv2d(try r.context("the model") {
                let net = try CRsAE2DNetwork(filters: banks, thresholds: b.data, stride: try r.int("stride", 1...4096),
                                             layers: try r.layers("layers"), lipschitz: try r.float("lipschitz"))
                return try net.autoencoder(height: net.kernel, width: net.kernel)
            })
        case "vsc-linear", "vsc-conv":
            return try decode(file)
        default:
            throw UnrollIOError(.malformed, "metadata model.kind is \(r.quoted("model.kind")), not a model kind Unroll wrote")
        }
        return ModelFile(model: model, info: file.metadata)
    }

    /// The spikes model .npz of `unroll spikes train` (version 1): a CRsAE 1-D autoencoder, FISTA at
    /// α, penalty λ_c σ² per filter, with its EM state.
    static func version1Spikes(_ arrays: [(name: String, array: NDArray)]) throws -> ModelFile {
        func find(_ name: String) throws -> Tensor {
            guard let t = arrays.first(where: { $0.name == name })?.array.tensor else {
                throw UnrollIOError(.badMagic, "not a model file: no array '\(name)' (an .npz model is a spikes model of an earlier release: filters, lambda, sigma, alpha, layers, threshold)")
            }
            return t
        }
        func scalar(_ name: String) throws -> Float {
            let t = try find(name)
            guard t.count == 1, t.data[0].isFinite else { throw UnrollIOError(.malformed, "array '\(name)' must hold one finite number") }
            return t.data[0]
        }
        let layers = try scalar("layers")
        guard layers >= 1, layers <= Float(maxLayers), layers == layers.rounded() else {
            throw UnrollIOError(.malformed, "array 'layers' is \(layers), expected an integer in 1…\(maxLayers)")
        }
        let filters = try find("filters"), lambdas = try find("lambda").data
        let sigma = try scalar("sigma"), alpha = try scalar("alpha")
        let threshold: Threshold = try scalar("threshold") == 0 ? .soft : .nonNegative
        let model = try Entries.context("the model") {
            try SpikeModel(filters: filters, lambdas: lambdas, sigma: sigma, layers: Int(layers), threshold: threshold, alpha: alpha).autoencoder()
        }
        return ModelFile(model: .conv1d(model))
    }
}
