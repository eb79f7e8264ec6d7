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
    @OptionGroup var threading: ThreadOptions

    func run() throws { try threading.run { try execute() } }

    private func execute() throws {
        let file = try ModelFile.read(model, option: "--model")
        let network = try file.conv2d(model)
        var image = try ImageFolder.readImage(input, option: "--input")
        if let text = addNoise {
            let sigma = try parseSigma(text, option: "--add-noise")
            var rng = Random(seed: seed)
            image = DenoisingImages.addNoise(image, sigma: sigma, rng: &rng)
            let noisyPath = (output.hasSuffix(".png") ? String(output.dropLast(4)) : output) + "-noisy.png"
            try ImageFolder.write(image, to: noisyPath, option: "--output")
        }
        let estimate = try inContext("--input \(input)") {
            try Denoiser.denoise(image, model: network, shiftAverage: noShiftAverage ? false : nil)
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
