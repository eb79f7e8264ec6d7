import ArgumentParser
import Foundation
import Unroll
import UnrollCore
import UnrollIO

/// `unroll eval`: how well any model explains data.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a trained model (any kind) on data: reconstruction error, sparsity, PSNR where it applies.",
        discussion: """
            --data is what `unroll encode` takes for the model's kind. Prints the relative reconstruction \
            error ‖X − X̂‖_F/‖X‖_F, the mean squared error, the share of zero codes and the non-zeros per \
            signal; for a tied model whose λ is a lasso penalty, the mean lasso objective \
            ½‖x − Dz‖² + Σ λ_j|z_j| per signal; for images (conv2d, vsc-conv) the PSNR of the \
            reconstruction (peak 1). With --sigma (conv2d) the images are the clean references: Gaussian \
            noise of that σ is added (from --seed) and the PSNR of the noisy input and of the denoised \
            output are printed, with both peaks (1, and the max of the clean image).

            Example:
              unroll eval --model run/model.safetensors --data ../shared/data/images/test/camera.png --sigma 25/255
            """)

    @Option(help: ArgumentHelp("A model file.", valueName: "file"))
    var model: String
    @Option(help: ArgumentHelp("The data (as for `unroll encode`).", valueName: "file[:array]"))
    var data: String
    @Option(help: ArgumentHelp("conv2d: denoise the images after adding noise of this σ (0.1 or 25/255).", valueName: "σ"))
    var sigma: String?
    @Flag(help: "Print the measures as one JSON object.")
    var json = false
    @OptionGroup var encoding: ModelRunOptions
    @OptionGroup var threading: ThreadOptions

    func run() throws { try threading.run { try execute() } }

    private func execute() throws {
        let file = try ModelFile.read(model, option: "--model")
        var measures: [(String, Double)] = []
        if let text = sigma {
            guard case let .conv2d(stored) = file.model else {
                throw CLIError("--sigma applies to conv2d models (denoising); \(model) holds \(file.described)")
            }
            let noise = try parseSigma(text, option: "--sigma")
            // A noise-adaptive model is set for the noise it is scored at.
            let m = noise > 0 ? try Denoiser.model(stored, forNoise: noise).model : stored
            let clean = try ModelRun.images(data)
            let images = (0..<clean.shape[0]).map { clean.rows($0..<($0 + 1)).reshaped(Array(clean.shape.dropFirst())) }
            let e = try inContext("--data \(data)") {
                try Denoiser.evaluate(clean: images, sigma: noise, seed: encoding.seed, model: try ModelRun.overriding(m, layers: encoding.layers, tolerance: encoding.tolerance))
            }
            measures = [("images", Double(images.count)), ("sigma", Double(noise)),
                        ("psnr_noisy", e.meanNoisy), ("psnr_denoised", e.meanDenoised), ("psnr_gain", e.gain),
                        ("psnr_noisy_clean_max", e.meanNoisyCleanMax), ("psnr_denoised_clean_max", e.meanDenoisedCleanMax)]
        } else {
            let r = try ModelRun.run(file, model: model, data: data, options: encoding)
            measures = [("signals", Double(r.count)), ("relative_error", r.relativeError), ("mse", r.meanSquaredError),
                        ("zero_fraction", r.zeroFraction), ("nonzeros_per_signal", r.nonZerosPerSignal)]
            var objective: Double?
            switch file.model {
            case let .dense(m): objective = ModelRun.lassoObjective(m, r)
            case let .conv1d(m): objective = ModelRun.lassoObjective(m, r)
            case let .conv2d(m):
                objective = ModelRun.lassoObjective(m, r)
                measures.append(("psnr", PSNR.value(r.reconstruction, clean: r.signals)))
            case let .vsc(v):
                if v.generator == .conv { measures.append(("psnr", PSNR.value(r.reconstruction, clean: r.signals))) }
            }
            if let objective { measures.append(("lasso_objective", objective)) }
        }
        if json {
            var object: [String: Any] = ["model": model, "kind": file.model.kind, "data": data]
            for (k, v) in measures { object[k] = v.isFinite ? v : nil }
            let bytes = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: bytes, as: UTF8.self))
        } else {
            print("\(model): \(file.described) (\(Encode.encoderSummary(file, exact: encoding.exact))) on \(data)")
            for (k, v) in measures { print("  \(k.padding(toLength: 24, withPad: " ", startingAt: 0)) \(fmt(v))") }
        }
    }
}
