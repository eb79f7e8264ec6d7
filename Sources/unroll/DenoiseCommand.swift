import ArgumentParser
import Foundation
import Unroll
import UnrollCore
import UnrollIO

/// Models for successive ranges of noise: `models[i]` serves σ from `switchingAt[i − 1]` up to
/// `switchingAt[i]` (`Denoiser.model(choosingFrom:switchingAt:…)`).
typealias Denoisers = (models: [UnrolledAutoencoder<Convolution2DDictionary>], switchingAt: [Float])

/// `unroll denoise`: a noisy PNG through a trained convolutional model (`unroll train --model conv2d`),
/// with the PSNR printed when the clean reference is given.
struct Denoise: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Denoise a PNG image with a convolutional dictionary trained by `unroll train --model conv2d`.",
        discussion: """
            The input is read as levels in [0, 1] (8- or 16-bit PNG); an RGB image is denoised channel by \
            channel and written as RGB (alpha is dropped), a gray one as gray. With --add-noise σ the input is first corrupted with Gaussian \
            noise of standard deviation σ (in [0, 1] units; 25/255 is accepted) drawn from --seed, and the \
            noisy image is written beside the output as <output>-noisy.png. With --clean (a reference \
            image of the same size) the PSNR of the noisy input and of the output are printed, with \
            peak 1 and with peak = max of the reference (the papers' definition); the estimate is \
            clamped to [0, 1] first. CRsAE models (`--family crsae`, tied or untied) average the \
            reconstructions of the s² shifted copies of the image (crsae §2), as their test PSNRs do, or \
            of the ones the model names (`model.shift_phases`, `model.shift_lattice`) or --shift-phases or \
            --shift-lattice asks for; \
            --no-shift-average encodes the image once. A model may end with a non-local means of its \
            estimate (`model.non_local`; the shipped ones do, with h = 0.1σ): --non-local h/σ sets it, \
            --non-local 0 leaves it out. Then a share a of BM3D's first step of the noisy image may be \
            mixed in (`model.collaborative`; the shipped ones do, a = 0.5, 0.35 and 0.25 from the lowest \
            σ up): --collaborative a sets it, --collaborative 0 leaves it out. Then a share c of BM3D's \
            second step, on the same groups with that result as its pilot (`model.collaborative_wiener`; \
            the shipped ones mix c = 0.5 with BM3D's μ² = 0.4): --wiener c sets it, --wiener 0 leaves it out.

            A noise-adaptive model (the shipped ones, or `unroll train --family crsae --sigma-range …`) \
            sets its thresholds for the input's noise level: --sigma, else --add-noise's σ, else σ \
            estimated from each image (channel) by the median of its finest diagonal wavelet band \
            (printed). Without --model, the package's three models serve that σ: the one trained over \
            σ 5–55/255 below 17.5/255, the one trained at σ 35/255 from there to 28/255, the one \
            trained at σ 50/255 from there up.

            A folder as --input denoises every PNG in it into the folder --output (same names); --clean \
            is then a folder of the clean images under the same names, and the PSNRs are printed per \
            image and as means. --add-noise draws image i's noise from --seed and i. Under \
            `mpirun -np N` each rank denoises its share of the folder's images.

            Example:
              unroll denoise --model run/model.safetensors --input camera.png --clean camera.png \\
                --add-noise 25/255 --seed 1 --output camera-denoised.png
              unroll denoise --model run/model.safetensors --input test --clean test --add-noise 25/255 --output denoised
              unroll denoise --input noisy.png --sigma 25/255 --output out.png      # the shipped models
            """)

    @Option(help: ArgumentHelp("A model.safetensors from `unroll train --model conv2d` (either family); default: the models the package ships (noise-adaptive, the one for the input's σ).", valueName: "file"))
    var model: String?
    @Option(help: ArgumentHelp("The input's noise σ (e.g. 25/255): a noise-adaptive model is set for it (default: estimated from the image); another model is checked to be trained at it.", valueName: "σ"))
    var sigma: String?
    @Option(help: ArgumentHelp("The noisy image (PNG, gray or RGB), or a folder of them.", valueName: "file|folder"))
    var input: String
    @Option(name: .shortAndLong, help: ArgumentHelp("Where to write the denoised image (PNG), or the folder for a folder's.", valueName: "file|folder"))
    var output: String
    @Option(help: ArgumentHelp("The clean image, or a folder of them (same names), to print the PSNR.", valueName: "file|folder"))
    var clean: String?
    @Option(name: .customLong("add-noise"), help: ArgumentHelp("Add Gaussian noise of this σ to the input first (e.g. 0.1 or 25/255).", valueName: "σ"))
    var addNoise: String?
    @Option(help: "Seed of the added noise.")
    var seed: UInt64 = 0
    @Flag(help: "CRsAE models: encode the image once instead of averaging the s² shifted encodings.")
    var noShiftAverage = false
    @OptionGroup var shifts: ShiftOptions
    @OptionGroup var nonLocal: NonLocalOptions
    @OptionGroup var collaborative: CollaborativeOptions
    @OptionGroup var threading: ThreadOptions

    func run() throws { try threading.run { try execute() } }

    private func execute() throws {
        let network = try Self.network(model, sigma: sigma)
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: input, isDirectory: &isFolder), isFolder.boolValue {
            let job = try Distributed.current()
            return try job.run { try denoiseFolder(network, job: job) }
        }
        let sigma = try addNoise.map { try parseSigma($0, option: "--add-noise") }
        var rng = Random(seed: seed)
        let noisyPath = (output.hasSuffix(".png") ? String(output.dropLast(4)) : output) + "-noisy.png"
        let r = try denoise(input, noise: sigma.map { ($0, noisyPath) }, rng: &rng, network: network, output: output, clean: clean)
        var line = "wrote \(output) (\(r.width)×\(r.height)\(r.planes == 3 ? ", RGB" : "")\(Self.describe(estimated: r.estimatedSigma)))"
        if model == nil {   // which of the shipped models served the image (each channel)
            let names = Set(r.chosen).sorted().compactMap { network.models[$0].adaptiveSigma.map { String(format: "%.3g/255", $0 * 255) } }
            if !names.isEmpty { line += "; the shipped model trained around σ " + names.joined(separator: " and ") }
        }
        if let s = r.score {
            line += String(format: "; PSNR %.2f dB (input %.2f dB, gain %.2f dB) with peak 1; %.2f dB (input %.2f dB) with peak = max of the clean image",
                           s.denoised, s.noisy, s.denoised - s.noisy, s.denoisedCleanMax, s.noisyCleanMax)
        }
        print(line)
    }

    /// The models for each range of noise: the one of `path`, or the shipped ones (noise-adaptive,
    /// chosen per image by σ); with `sigma`, a model of `path` that is not noise-adaptive is checked to
    /// be trained at that σ (within 2 %).
    static func network(_ path: String?, sigma: String?) throws -> Denoisers {
        if let text = sigma, try parseSigma(text, option: "--sigma") <= 0 {
            throw CLIError("--sigma \(text): the models need the input's noise level > 0")
        }
        guard let path else { return try ShippedDenoiser.models() }
        let file = try ModelFile.read(path, option: "--model")
        let model = try file.conv2d(path)
        if model.adaptiveSigma == nil, let text = sigma {
            let wanted = try parseSigma(text, option: "--sigma")
            guard let trained = file.info["training.sigma"].flatMap(Float.init) else {
                throw CLIError("--sigma \(text): \(path) does not record the σ it was trained at (training.sigma); leave --sigma out to use it")
            }
            guard abs(trained - wanted) <= 0.02 * max(trained, wanted) else {
                throw CLIError("--sigma \(text): \(path) was trained at σ \(String(format: "%.4g", trained)) (\(String(format: "%.3g", trained * 255))/255); "
                    + "use a model trained at this σ (`unroll train --model conv2d --sigma \(text) …`), or leave --model out for the shipped noise-adaptive ones")
            }
        }
        return ([model], [])
    }

    /// The model for one noisy plane: a noise-adaptive one chosen and set for --sigma, else --add-noise's
    /// σ, else the σ estimated from the plane (returned); any other as it is.
    private func model(for plane: Tensor, _ network: Denoisers) throws
        -> (model: UnrolledAutoencoder<Convolution2DDictionary>, estimated: Float?, chosen: Int) {
        let given = try (sigma ?? addNoise).map { try parseSigma($0, option: sigma != nil ? "--sigma" : "--add-noise") }
        var chosen = try Denoiser.model(choosingFrom: network.models, switchingAt: network.switchingAt, forNoise: given, of: plane)
        chosen.model.nonLocal = try nonLocal.setting(replacing: chosen.model.nonLocal)
        chosen.model.collaborative = try collaborative.setting(replacing: chosen.model.collaborative)
        return chosen
    }

    /// ", σ estimated a/255" (RGB: the channels' values) when the noise level was estimated.
    static func describe(estimated: [Float]) -> String {
        estimated.isEmpty ? "" : ", σ estimated " + estimated.map { String(format: "%.1f/255", $0 * 255) }.joined(separator: " ")
    }

    /// One image: its planes (gray, or R, G, B), each with noise of σ from `rng` when asked (the noisy
    /// image written to the given path), denoised by the network and written to `output`; scored
    /// against `clean` over all planes.
    private func denoise(_ path: String, noise: (sigma: Float, path: String)?, rng: inout Random,
                         network: Denoisers, output: String, clean: String?) throws
        -> (width: Int, height: Int, planes: Int, score: Denoiser.Score?, estimatedSigma: [Float], chosen: [Int]) {
        var planes = try ImageFolder.readPlanes(path, option: "--input")
        if let noise {
            planes = planes.map { DenoisingImages.addNoise($0, sigma: noise.sigma, rng: &rng) }
            try ImageFolder.write(planes: planes, to: noise.path, option: "--output")
        }
        var estimated: [Float] = [], chosen: [Int] = []
        let estimates = try planes.map { plane in
            try inContext("--input \(path)") {
                let (m, sigma, index) = try model(for: plane, network)
                if let sigma { estimated.append(sigma) }
                chosen.append(index)
                return try Denoiser.denoise(plane, model: m, shiftAverage: noShiftAverage ? false : nil, shifts: try shifts.set())
            }
        }
        try ImageFolder.write(planes: estimates, to: output, option: "--output")
        let (h, w) = (planes[0].shape[0], planes[0].shape[1])
        guard let clean else { return (w, h, planes.count, nil, estimated, chosen) }
        let reference = try ImageFolder.readPlanes(clean, option: "--clean")
        guard reference.count == planes.count, reference[0].shape == planes[0].shape else {
            throw CLIError("--clean \(clean) is \(reference[0].shape[1])×\(reference[0].shape[0])\(reference.count == 3 ? " RGB" : ""), "
                + "the input is \(w)×\(h)\(planes.count == 3 ? " RGB" : "")")
        }
        // PSNR over every plane's pixels: the planes stacked into one [planes·H, W] image.
        func stacked(_ p: [Tensor]) -> Tensor { Tensor(shape: [p.count * h, w], data: p.flatMap(\.data)) }
        return (w, h, planes.count, Denoiser.Score(noisy: stacked(planes), denoised: stacked(estimates), clean: stacked(reference)), estimated, chosen)
    }
}

extension Denoise {
    /// Every PNG of the folder `input` into the folder `output`; each rank of a job its share of the
    /// images (by name order), rank 0 printing every image's line and the means.
    private func denoiseFolder(_ network: Denoisers, job: Distributed) throws {
        let names = try ImageFolder.names(input, option: "--input")
        let sigma = try addNoise.map { try parseSigma($0, option: "--add-noise") }
        if job.isRoot { try inContext("--output") { try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true) } }
        job.barrier()
        let start = ContinuousClock.now
        // Per image: width, height, then (with --clean) PSNR noisy / denoised, peak 1 and peak max, then
        // the noise σ estimated per plane (0: not estimated).
        let columns = 9
        var table = [Double](repeating: 0, count: names.count * columns)
        for i in job.share(of: names.count) {
            let name = names[i]
            var rng = Random(seed: seed).derived([UInt64(i)])
            let r = try denoise(input + "/" + name, noise: sigma.map { ($0, output + "/" + String(name.dropLast(4)) + "-noisy.png") },
                                rng: &rng, network: network, output: output + "/" + name, clean: clean.map { $0 + "/" + name })
            table[i * columns] = Double(r.width)
            table[i * columns + 1] = Double(r.height)
            if let s = r.score {
                table.replaceSubrange((i * columns + 2)..<(i * columns + 6), with: [s.noisy, s.denoised, s.noisyCleanMax, s.denoisedCleanMax])
            }
            for (k, e) in r.estimatedSigma.enumerated() { table[i * columns + 6 + k] = Double(e) }
        }
        let seconds = secondsSince(start)
        table = job.sum(table)
        guard job.isRoot else { return }
        var sums = [Double](repeating: 0, count: 4)
        for (i, name) in names.enumerated() {
            let row = Array(table[(i * columns)..<((i + 1) * columns)])
            let estimated = row[6...].filter { $0 > 0 }.map { Float($0) }
            var line = "\(output)/\(name) (\(Int(row[0]))×\(Int(row[1]))\(Self.describe(estimated: estimated)))"
            if clean != nil {
                line += String(format: ": PSNR %.2f dB (input %.2f dB) with peak 1; %.2f dB (input %.2f dB) with peak = max", row[3], row[2], row[5], row[4])
                for k in 0..<4 { sums[k] += row[k + 2] }
            }
            print(line)
        }
        var summary = "denoised \(names.count) images into \(output) in \(String(format: "%.2f", seconds)) s"
            + (job.size > 1 ? " on \(job.size) ranks" : "")
        if clean != nil {
            let n = Double(names.count)
            summary += String(format: "; mean PSNR %.2f dB (input %.2f dB, gain %.2f dB) with peak 1; %.2f dB (input %.2f dB) with peak = max",
                              sums[1] / n, sums[0] / n, (sums[1] - sums[0]) / n, sums[3] / n, sums[2] / n)
        }
        print(summary)
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
