import ArgumentParser
import Foundation
import Unroll
import UnrollCore
import UnrollIO

/// `unroll denoise`: a noisy PNG through a trained convolutional model (`unroll train --model conv2d`),
/// with the PSNR printed when the clean reference is given.
struct Denoise: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Denoise a PNG image with a convolutional dictionary trained by `unroll train --model conv2d`.",
        discussion: """
            The input is read as gray levels in [0, 1] (8- or 16-bit, gray or RGB; RGB is converted with \
            the ITU-R 601 luma weights). With --add-noise σ the input is first corrupted with Gaussian \
            noise of standard deviation σ (in [0, 1] units; 25/255 is accepted) drawn from --seed, and the \
            noisy image is written beside the output as <output>-noisy.png. With --clean (a reference \
            image of the same size) the PSNR of the noisy input and of the output are printed, with \
            peak 1 and with peak = max of the reference (the papers' definition); the estimate is \
            clamped to [0, 1] first. CRsAE models (`--family crsae`, tied or untied) average the \
            reconstructions of the s² shifted copies of the image (crsae §2), as their test PSNRs do; \
            --no-shift-average encodes the image once.

            Example:
              unroll denoise --model run/model.safetensors --input camera.png --clean camera.png \\
                --add-noise 25/255 --seed 1 --output camera-denoised.png
            """)

    @Option(help: ArgumentHelp("A model.safetensors from `unroll train --model conv2d` (either family).", valueName: "file"))
    var model: String
    @Option(help: ArgumentHelp("The noisy image (PNG).", valueName: "file"))
    var input: String
    @Option(name: .shortAndLong, help: ArgumentHelp("Where to write the denoised image (PNG).", valueName: "file"))
    var output: String
    @Option(help: ArgumentHelp("The clean image, to print the PSNR.", valueName: "file"))
    var clean: String?
    @Option(name: .customLong("add-noise"), help: ArgumentHelp("Add Gaussian noise of this σ to the input first (e.g. 0.1 or 25/255).", valueName: "σ"))
    var addNoise: String?
    @Option(help: "Seed of the added noise.")
    var seed: UInt64 = 0
    @Flag(help: "CRsAE models: encode the image once instead of averaging the s² shifted encodings.")
    var noShiftAverage = false

    func run() throws {
        let crsae = try CRsAE2DModelFile.network(model)
        let file = crsae == nil ? try Conv2DModelFile.read(model) : nil
        var image = try ImageFolder.readImage(input, option: "--input")
        if let text = addNoise {
            let sigma = try parseSigma(text, option: "--add-noise")
            var rng = Random(seed: seed)
            image = DenoisingImages.addNoise(image, sigma: sigma, rng: &rng)
            let noisyPath = (output.hasSuffix(".png") ? String(output.dropLast(4)) : output) + "-noisy.png"
            try ImageFolder.write(image, to: noisyPath, option: "--output")
        }
        let estimate = try inContext("--input \(input)") {
            if let crsae { return try crsae.denoise(image, shiftAverage: !noShiftAverage) }
            return try Denoiser.denoise(image, dictionary: file!.dictionary, encoder: file!.encoder)
        }
        try ImageFolder.write(estimate, to: output, option: "--output")
        var line = "wrote \(output) (\(image.shape[1])×\(image.shape[0]))"
        if let ref = clean {
            let reference = try ImageFolder.readImage(ref, option: "--clean")
            guard reference.shape == image.shape else {
                throw CLIError("--clean \(ref) is \(reference.shape[1])×\(reference.shape[0]), the input is \(image.shape[1])×\(image.shape[0])")
            }
            let s = Denoiser.Score(noisy: image, denoised: estimate, clean: reference)
            line += String(format: "; PSNR %.2f dB (input %.2f dB, gain %.2f dB) with peak 1; %.2f dB (input %.2f dB) with peak = max of the clean image",
                           s.denoised, s.noisy, s.denoised - s.noisy, s.denoisedCleanMax, s.noisyCleanMax)
        }
        print(line)
    }
}

/// σ as a number in [0, 1] units or a fraction such as 25/255.
func parseSigma(_ text: String, option: String) throws -> Float {
    let parts = text.split(separator: "/").map { Float($0.trimmingCharacters(in: .whitespaces)) }
    var value: Float?
    if parts.count == 1 { value = parts[0] }
    if parts.count == 2, let a = parts[0], let b = parts[1], b != 0 { value = a / b }
    guard let v = value else { throw CLIError("\(option) '\(text)': expected a number such as 0.1 or a fraction such as 25/255") }
    guard v.isFinite, v >= 0 else { throw CLIError("\(option): noise σ must be ≥ 0, got \(text)") }
    return v
}

/// A trained convolutional model on disk: filters `W` `[C, 1, K, K]`, the stride and the encoder
/// settings as metadata (`model.kind` = conv2d-dictionary).
struct Conv2DModelFile {
    static let kind = "conv2d-dictionary"
    var dictionary: Convolution2DDictionary
    var encoder: UnrolledEncoder
    var info: [String: String]

    func write(to path: String) throws {
        var meta = info
        meta["format"] = ModelFile.format
        meta["model.kind"] = Self.kind
        meta["layout"] = "filters [C, 1, K, K]; image = Σ_c convᵀ(z_c, W_c) at the stride, cropped to the image"
        meta["filters"] = String(dictionary.atoms)
        meta["kernel"] = String(dictionary.kernel)
        meta["stride"] = String(dictionary.stride)
        meta["encoder.algorithm"] = encoder.algorithm.rawValue
        meta["encoder.layers"] = String(encoder.layers)
        meta["encoder.threshold"] = ThresholdChoice(encoder.threshold).rawValue
        meta["encoder.lambda"] = encoder.lambda.allValues.map(\.description).joined(separator: ",")
        if case let .fixed(a) = encoder.step { meta["encoder.step"] = a.description }
        try Safetensors.write([("W", dictionary.weights)], metadata: meta, to: path)
    }

    static func read(_ path: String) throws -> Conv2DModelFile {
        guard FileManager.default.fileExists(atPath: path) else { throw CLIError("--model \(path): no such file") }
        let file = try inContext("--model \(path)") { try Safetensors.read(path) }
        let meta = file.metadata
        func fail(_ what: String) -> CLIError { CLIError("--model \(path): \(what) (is it a model.safetensors written by `unroll train --model conv2d`?)") }
        guard meta["model.kind"] == kind else {
            throw fail("metadata model.kind is \(meta["model.kind"].map { "'\($0)'" } ?? "missing"), expected '\(kind)'")
        }
        guard let w = file["W"]?.tensor else { throw fail("no tensor 'W'") }
        guard let stride = meta["stride"].flatMap(Int.init) else { throw fail("metadata stride is missing") }
        guard w.rank == 4 else { throw fail("tensor W has shape \(w.shape), expected [C, 1, K, K]") }
        let dictionary = try inContext("--model \(path)") {
            try Convolution2DDictionary(filters: w, stride: stride, height: w.shape[2], width: w.shape[3])
        }
        guard let algorithm = meta["encoder.algorithm"].flatMap(UnrolledEncoder.Algorithm.init(rawValue:)),
              let layers = meta["encoder.layers"].flatMap(Int.init),
              let threshold = meta["encoder.threshold"].flatMap(ThresholdChoice.init(rawValue:))?.threshold,
              let alpha = meta["encoder.step"].flatMap(Float.init) else {
            throw fail("encoder metadata (algorithm, layers, threshold, step) is missing or unreadable")
        }
        let values = (meta["encoder.lambda"] ?? "").split(separator: ",").compactMap { Float($0) }
        guard !values.isEmpty else { throw fail("metadata encoder.lambda is missing") }
        let encoder = UnrolledEncoder(layers: layers, algorithm: algorithm, threshold: threshold,
                                      lambda: values.count == 1 ? .scalar(values[0]) : .perAtom(values), step: .fixed(alpha))
        try inContext("--model \(path)") { try encoder.validate(for: dictionary) }
        return Conv2DModelFile(dictionary: dictionary, encoder: encoder, info: meta)
    }
}

/// CRsAE 2-D models as `unroll train --model conv2d --family crsae` writes them: a tied one as a
/// `conv2d-dictionary` (FISTA over H at step 1/L, λ_enc = b·L) with `training.family = crsae`, an untied
/// one as `crsae2d-untied` (H, We, Wd, b).
enum CRsAE2DModelFile {
    /// The network, or nil when `path` holds another kind of model.
    static func network(_ path: String) throws -> CRsAE2DNetwork? {
        guard FileManager.default.fileExists(atPath: path) else { throw CLIError("--model \(path): no such file") }
        let file = try inContext("--model \(path)") { try Safetensors.read(path) }
        let meta = file.metadata
        guard meta["training.family"] == "crsae" else { return nil }
        func fail(_ what: String) -> CLIError { CLIError("--model \(path): \(what) (a CRsAE model written by `unroll train --model conv2d --family crsae`?)") }
        if meta["model.kind"] == "crsae2d-untied" {
            guard let h = file["H"]?.tensor, let we = file["We"]?.tensor, let wd = file["Wd"]?.tensor, let b = file["b"]?.tensor else {
                throw fail("tensors H, We, Wd and b are not all there")
            }
            guard let stride = meta["stride"].flatMap(Int.init), let layers = meta["layers"].flatMap(Int.init),
                  let lipschitz = meta["lipschitz"].flatMap(Float.init) else { throw fail("metadata stride, layers or lipschitz is missing") }
            return try inContext("--model \(path)") {
                try CRsAE2DNetwork(filters: [h, we, wd], thresholds: b.data, stride: stride, layers: layers, lipschitz: lipschitz)
            }
        }
        let tied = try Conv2DModelFile.read(path)
        guard case let .fixed(alpha) = tied.encoder.step, alpha > 0, tied.encoder.algorithm == .fista else {
            throw fail("a tied CRsAE model needs a FISTA encoder with a fixed step")
        }
        let thresholds = tied.encoder.lambda.values(atoms: tied.dictionary.atoms).map { $0 * alpha }
        return try inContext("--model \(path)") {
            try CRsAE2DNetwork(filters: [tied.dictionary.weights], thresholds: thresholds, stride: tied.dictionary.stride,
                               layers: tied.encoder.layers, lipschitz: 1 / alpha)
        }
    }
}
