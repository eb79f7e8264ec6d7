import Foundation
import Testing
import Unroll
import UnrollCore
import UnrollIO

/// `unroll bench conv-denoise` and its PyTorch peer `bench/conv_denoise_torch.py`: our step runs and lowers the
/// loss; the peer passes its self-test and, on the same tiny inputs, computes the same loss, gradient and
/// updated filters as our g_ae-ls step. The peer tests are skipped when python3 or torch is missing.
@Suite struct ConvDenoiseBenchTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("bench/conv_denoise_torch.py").path

    /// python3 with torch installed (found without importing it, which takes seconds).
    static let torchInstalled: Bool = {
        guard FileManager.default.fileExists(atPath: script) else { return false }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }()

    /// `python3 bench/<script> args…`: its exit status and standard output (standard error dropped).
    static func peer(_ script: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", URL(fileURLWithPath: Self.script).deletingLastPathComponent().appendingPathComponent(script).path] + arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, text)
    }

    @Test(.needsCLI) func benchStepRunsAndLowersTheLoss() throws {
        let dir = try CLITests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLITests.ok(["bench", "conv-denoise", "--no-peer", "--repeats", "3", "--size", "33", "--json"], in: dir)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let report = try #require((json["reports"] as? [[String: Any]])?.first)
        #expect(report["benchmark"] as? String == "conv-denoise")
        let rows = try #require(report["rows"] as? [[String: Any]])
        let row = try #require(rows.first)
        let seconds = try #require(row["ours"] as? Double)
        #expect(seconds > 0 && seconds < 10)
        // Issue 16's targets travel with the rows: ≥ 8× PyTorch, and peak RSS ≤ ⅛ of PyTorch's.
        let speed = try #require(row["target"] as? [String: Any]), memory = try #require(rows.last?["target"] as? [String: Any])
        #expect(speed["atLeast"] as? Bool == true && speed["value"] as? Double == 8 && speed["issue"] as? Int == 16, "\(speed)")
        #expect(rows.last?["name"] as? String == "peak RSS" && memory["atLeast"] as? Bool == false && memory["value"] as? Double == 0.125)
        let details = try #require(report["details"] as? [String: String])
        let losses = try #require(details["ours: losses per step (warm-up first)"]).split(separator: " ").compactMap { Double($0) }
        #expect(losses.count == 4)   // warm-up + 3 timed steps
        #expect(losses.allSatisfy { $0.isFinite && $0 > 0 })
        #expect(zip(losses, losses.dropFirst()).allSatisfy { $1 < $0 }, "losses \(losses) should fall step by step")
        #expect(try #require(details["setting"]).contains("33×33 crop"))
    }

    /// `bench denoise` without its peer on a folder of two small images and the shipped models (the
    /// range model at σ 15, the σ 35 model at 25, the σ 50 model at 50, as `unroll denoise` chooses): PSNR above
    /// the noisy input's at every σ, SSIM in (0, 1], the noise seeded (two runs agree), one panel per image
    /// and σ; `--data` with another case is refused by name.
    @Test(.needsCLI) func benchDenoiseScoresOurModelOnAFolder() throws {
        let dir = try CLITests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let images = dir.appendingPathComponent("test")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        for (i, name) in ["a.png", "b.png"].enumerated() {
            try PNG.write(Raster(gray: DenoisingTests.image(40, 36, phase: Double(i))), to: images.appendingPathComponent(name).path)
        }
        let args = ["bench", "denoise", "--no-peer", "--repeats", "1", "--data", images.path, "--json"]
        let r = try CLITests.ok(args + ["--panels", "panels"], in: dir)
        // A panel per image and σ: centre crops (≤ 160) of clean, noisy, ours and our error, 4-pixel gaps.
        for name in ["a", "b"] {
            for s in [15, 25, 50] {
                let panel = try PNG.readGray(dir.appendingPathComponent("panels/\(name)-s\(s).png").path)
                #expect(panel.shape == [40, 4 * 36 + 3 * 4], "\(name) σ \(s): \(panel.shape)")
            }
        }
        let report = try #require(((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["reports"] as? [[String: Any]])?.first)
        let rows = try #require(report["rows"] as? [[String: Any]])
        #expect(rows.count == 9)
        for s in [15, 25, 50] {
            let psnr = try #require(rows.first { ($0["name"] as? String)?.hasPrefix("σ \(s): mean PSNR") == true })
            let name = try #require(psnr["name"] as? String)
            let noisy = try #require(Double(name.split(separator: "(noisy ")[1].split(separator: " ")[0]))
            #expect(try #require(psnr["ours"] as? Double) > noisy, "\(name)")
            let ssim = try #require(rows.first { ($0["name"] as? String) == "σ \(s): mean SSIM" }?["ours"] as? Double)
            #expect(ssim > 0 && ssim <= 1)
        }
        let details = try #require(report["details"] as? [String: String])
        #expect(details.contains { $0.key.hasSuffix("/denoise-model.safetensors") && $0.value.hasSuffix("used at σ 15") }, "\(details)")
        #expect(details.contains { $0.key.hasSuffix("/denoise-model-sigma35.safetensors") && $0.value.hasSuffix("used at σ 25") }, "\(details)")
        #expect(details.contains { $0.key.hasSuffix("/denoise-model-sigma50.safetensors") && $0.value.hasSuffix("used at σ 50") }, "\(details)")
        let again = try CLITests.ok(args, in: dir)
        let rows2 = try #require(((try JSONSerialization.jsonObject(with: Data(again.stdout.utf8)) as? [String: Any])?["reports"] as? [[String: Any]])?.first?["rows"] as? [[String: Any]])
        #expect(rows.filter { ($0["unit"] as? String) == "dB" }.map { $0["ours"] as? Double } == rows2.filter { ($0["unit"] as? String) == "dB" }.map { $0["ours"] as? Double })
        let wrong = try CLITests.run(["bench", "gemm", "--data", images.path], in: dir)
        #expect(wrong.status != 0 && wrong.stderr.contains("--data, --model, --panels, --shift-phases, --shift-lattice, the --non-local and --collaborative options apply to the denoise case only"), "\(wrong.stderr)")
        let oneThread = try CLITests.run(["bench", "threads", "--threads", "1"], in: dir)
        #expect(oneThread.status != 0 && oneThread.stderr.contains("give --threads ≥ 2"), "\(oneThread.stderr)")
    }

    /// One g_ae-ls step of ours (the benchmark's step: evaluate, Adam, normalise) against the peer's float64
    /// step on the same inputs: a size that does not fit the stride (padding and cropping), batch 2.
    @Test(.enabled(if: torchInstalled)) func peerSelfTestAndSameStepAsOurs() throws {
        let (c, k, s, h, w, b, layers) = (4, 5, 3, 16, 19, 2, 4)
        let (lambda, alpha, lr, eps): (Float, Float, Float, Float) = (0.16, 0.1, 1e-2, 1e-3)
        var rng = Random(seed: 7)
        let clean = Tensor.uniform([b, h, w], rng: &rng)
        let noisy = DenoisingImages.addNoise(clean, sigma: 0.1, rng: &rng)
        var dictionary = try Convolution2DDictionary(filters: c, kernel: k, stride: s, height: h, width: w, rng: &rng)
        #expect(!dictionary.fitsExactly)
        let initial = dictionary.weights

        let encoder = UnrolledEncoder(layers: layers, algorithm: .ista, threshold: .soft, lambda: .scalar(lambda), step: .fixed(alpha))
        let result = try GradientMode.leastSquares.evaluate(input: noisy, target: clean, operator: dictionary, encoder: encoder)
        var optimizer = Optimizer.adam(learningRate: lr, epsilon: eps)
        var weights = dictionary.weights
        optimizer.step(&weights, gradient: result.gradient)
        dictionary.weights = weights
        dictionary.normalize()

        let dir = try CLITests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("inputs.npz").path
        let scalar = { (x: Float) in Tensor(shape: [], data: [x]) }
        try Npz.write([("clean", clean), ("noisy", noisy), ("filters", initial), ("stride", scalar(Float(s))),
                       ("layers", scalar(Float(layers))), ("lam", scalar(lambda)), ("alpha", scalar(alpha)),
                       ("lr", scalar(lr)), ("eps", scalar(eps))], to: file)

        let (status, text) = try Self.peer("conv_denoise_torch.py", ["--selftest", "--check", file])
        #expect(status == 0, "conv_denoise_torch.py --selftest failed:\n\(text)")
        #expect(text.contains("all checks passed"))
        let last = try #require(text.split(separator: "\n").last)
        let peer = try #require(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
        let loss = try #require(peer["loss"] as? Double)
        let gradient = try #require(peer["gradient"] as? [Double]).map { Float($0) }
        let after = try #require(peer["filters_after"] as? [Double]).map { Float($0) }

        #expect(abs(result.losses.loss - loss) <= 1e-4 * loss, "loss ours \(result.losses.loss) vs torch \(loss)")
        #expect(result.losses.loss > 0)
        try #require(gradient.count == result.gradient.count && after.count == weights.count)
        let gmax = gradient.map(abs).max()!
        let gdiff = zip(gradient, result.gradient.data).map { abs($0 - $1) }.max()!
        #expect(gmax > 0 && gdiff <= 1e-4 * gmax, "gradient differs by \(gdiff) (max |g| \(gmax))")
        let wdiff = zip(after, dictionary.weights.data).map { abs($0 - $1) }.max()!
        let moved = zip(after, initial.data).map { abs($0 - $1) }.max()!
        #expect(wdiff <= 1e-5 && moved > 1e-3, "filters after the step differ by \(wdiff) (moved \(moved))")
    }
}
