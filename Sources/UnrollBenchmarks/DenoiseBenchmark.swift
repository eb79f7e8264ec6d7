import Foundation
import Unroll
import UnrollCore
import UnrollIO

/// `unroll bench denoise`: whole test images with Gaussian noise of σ 15, 25 and 50 (/255), denoised by
/// our model (`--model`; default the shipped ones, each for its range of σ) and by BM3D (`bench/bm3d_denoise.py`, PyPI `bm3d`) on
/// the same noisy images; PSNR (peak 1) and SSIM computed here for both, seconds per image for both.
enum DenoiseBenchmark {
    static let sigmas = [15, 25, 50]
    /// The panels show a centre crop of this side, so the detail stays visible.
    static let panelSide = 160

    /// |estimate − clean|·4 (clamped estimate), so an error of 0.25 shows white.
    static func errorMap(_ estimate: Tensor, _ clean: Tensor) -> Tensor {
        Tensor(shape: clean.shape, data: zip(estimate.data, clean.data).map { min(1, 4 * abs(min(max($0, 0), 1) - $1)) })
    }

    static func centreCrop(_ x: Tensor, side: Int) -> Tensor {
        let (h, w) = (x.shape[0], x.shape[1]), (ch, cw) = (min(side, h), min(side, w))
        let (top, left) = ((h - ch) / 2, (w - cw) / 2)
        var out = Tensor(zeros: [ch, cw])
        for i in 0..<ch { for j in 0..<cw { out.data[i * cw + j] = x.data[(top + i) * w + left + j] } }
        return out
    }

    /// The tiles side by side with 4-pixel white gaps (all the same height).
    static func panel(_ tiles: [Tensor]) -> Tensor {
        let h = tiles[0].shape[0], gap = 4
        let width = tiles.map { $0.shape[1] }.reduce(0, +) + gap * (tiles.count - 1)
        var out = Tensor(shape: [h, width], data: .init(repeating: 1, count: h * width))
        var left = 0
        for t in tiles {
            let w = t.shape[1]
            for i in 0..<h { for j in 0..<w { out.data[i * width + left + j] = t.data[i * w + j] } }
            left += w + gap
        }
        return out
    }

    static let `case` = BenchmarkCase(
        name: "denoise",
        summary: "whole test images (--data, default the shared images/test) at σ 15/25/50 (/255): our model (--model; default the shipped ones, each for its range of σ) vs BM3D (bench/bm3d_denoise.py), PSNR, SSIM, seconds",
        run: { try run($0) })

    static func run(_ o: BenchOptions) throws -> BenchReport {
        guard let byName = o.images, !byName.isEmpty, let folder = o.data, !o.models.isEmpty else {
            throw BenchError("denoise needs --data (a folder of PNG test images) and --model (a conv2d model)")
        }
        let names = byName.keys.sorted(), images = names.map { byName[$0]! }
        let models = try o.models.map { path in
            guard case var .conv2d(model) = try ModelFile.read(path).model else { throw BenchError("--model \(path) does not hold a conv2d (image) model") }
            try o.stages(&model)
            return model
        }
        var report = BenchReport(benchmark: "denoise", threads: o.threads, repeats: o.repeats)
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("unroll-bench-denoise-\(getpid())").path
        try FileManager.default.createDirectory(atPath: scratch + "/out", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }

        // The noisy images: one generator per σ, the images in order (as `Denoiser.evaluate`).
        var manifest: [[String: Any]] = []
        var noisy: [[Tensor]] = []
        for (i, clean) in images.enumerated() { try Npy.write(clean, to: scratch + "/clean-\(i).npy") }
        for s in sigmas {
            var rng = Random(seed: UInt64(s))
            var row: [Tensor] = []
            for (i, clean) in images.enumerated() {
                let y = DenoisingImages.addNoise(clean, sigma: Float(s) / 255, rng: &rng)
                row.append(y)
                let file = "noisy-\(i)-s\(s).npy"
                try Npy.write(y, to: scratch + "/" + file)
                manifest.append(["file": file, "sigma": Double(Float(s) / 255), "clean": "clean-\(i).npy"])
            }
            noisy.append(row)
        }
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: scratch + "/manifest.json"))

        // Ours: the median of `repeats` denoisings of each image, after one warm-up.
        _ = try Denoiser.denoise(noisy[0][0], model: models[0], shifts: o.shifts)
        var ours: [[(estimate: Tensor, seconds: Double)]] = []
        var chosen: [Int] = []   // per σ, the model that served it
        for (k, row) in noisy.enumerated() {
            // A noise-adaptive model is chosen and set for each σ (as `unroll denoise --sigma` does).
            let (atSigma, _, index) = try Denoiser.model(choosingFrom: models, switchingAt: o.switchingAt, forNoise: Float(sigmas[k]) / 255)
            chosen.append(index)
            ours.append(try row.map { y in
                var estimate = y
                let times = try (0..<o.repeats).map { _ in
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    estimate = try Denoiser.denoise(y, model: atSigma, shifts: o.shifts)
                    return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
                }
                return (estimate, Stopwatch.median(times))
            })
        }

        // BM3D on the same files.
        var theirs: [[(estimate: Tensor, seconds: Double, skimage: Double?)]]?
        if o.runPeer {
            do {
                let info = try PythonPeer.run("bm3d_denoise.py", ["--input", scratch, "--output", scratch + "/out", "--threads", "\(o.threads)"],
                                              options: o)
                let results = (info["results"] as? [[String: Any]]) ?? []
                var byFile: [String: [String: Any]] = [:]
                for r in results { if let f = r["file"] as? String { byFile[f] = r } }
                theirs = try sigmas.map { s in
                    try images.indices.map { i in
                        let file = "noisy-\(i)-s\(s).npy"
                        guard let r = byFile[file], let t = r["seconds"] as? Double else { throw BenchError("bm3d_denoise.py gave no result for \(file)") }
                        let estimate = try Npy.read(scratch + "/out/" + file).tensor.reshaped(images[i].shape)
                        return (estimate, t, r["skimage_ssim"] as? Double)
                    }
                }
                report.details["bm3d: version, settings"] = "\((info["bm3d"] as? String) ?? "?"), bm3d(noisy, sigma_psd=σ), OMP_NUM_THREADS \(o.threads), one call per image"
            } catch {
                report.notes.append("BM3D peer failed or is missing (pip install bm3d): \(error)")
            }
        }

        func mean(_ v: [Double]) -> Double { v.reduce(0, +) / Double(v.count) }
        var worstSSIMGap = 0.0
        for (k, s) in sigmas.enumerated() {
            let psnr = ours[k].enumerated().map { PSNR.value($1.estimate, clean: images[$0]) }
            let ssim = ours[k].enumerated().map { SSIM.mean($1.estimate, clean: images[$0]) }
            let noisyPSNR = mean(noisy[k].enumerated().map { PSNR.value($1, clean: images[$0]) })
            let seconds = ours[k].map(\.seconds).reduce(0, +)
            var psnrRow = BenchRow(name: "σ \(s): mean PSNR (noisy \(String(format: "%.2f", noisyPSNR)) dB)", unit: "dB", ours: mean(psnr), oursLabel: "Unroll",
                                   target: BenchTargets.psnrOfBM3D)
            var ssimRow = BenchRow(name: "σ \(s): mean SSIM", unit: "", ours: mean(ssim), oursLabel: "Unroll")
            var timeRow = BenchRow(name: "σ \(s): seconds for the \(images.count) images", unit: "s", ours: seconds, oursLabel: "Unroll",
                                   target: BenchTargets.speedOfBM3D)
            if let t = theirs?[k] {
                let (p, q) = (mean(t.enumerated().map { PSNR.value($1.estimate, clean: images[$0]) }),
                              t.enumerated().map { SSIM.mean($1.estimate, clean: images[$0]) })
                (psnrRow.peer, psnrRow.peerLabel, psnrRow.ratio, psnrRow.ratioLabel) = (p, "BM3D", mean(psnr) - p, "dB (ours − BM3D)")
                (ssimRow.peer, ssimRow.peerLabel, ssimRow.ratio, ssimRow.ratioLabel) = (mean(q), "BM3D", mean(ssim) - mean(q), "(ours − BM3D)")
                let theirSeconds = t.map(\.seconds).reduce(0, +)
                (timeRow.peer, timeRow.peerLabel, timeRow.ratio, timeRow.ratioLabel) = (theirSeconds, "BM3D", theirSeconds / seconds, "× (BM3D/ours)")
                for (i, e) in t.enumerated() {
                    if let sk = e.skimage { worstSSIMGap = max(worstSSIMGap, abs(sk - q[i])) }
                }
                report.details["σ \(s): PSNR per image, ours / BM3D"] = zip(psnr, t.enumerated().map { PSNR.value($1.estimate, clean: images[$0]) })
                    .map { String(format: "%.2f/%.2f", $0, $1) }.joined(separator: " ")
            }
            report.rows += [psnrRow, ssimRow, timeRow]
        }
        if let dir = o.panels {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for (k, s) in sigmas.enumerated() {
                for (i, clean) in images.enumerated() {
                    var tiles = [clean, noisy[k][i], ours[k][i].estimate]
                    if let t = theirs?[k][i] { tiles.append(t.estimate) }
                    tiles.append(errorMap(ours[k][i].estimate, clean))
                    if let t = theirs?[k][i] { tiles.append(errorMap(t.estimate, clean)) }
                    let stem = (names[i] as NSString).deletingPathExtension
                    try PNG.write(Raster(gray: panel(tiles.map { centreCrop($0, side: panelSide) })), to: "\(dir)/\(stem)-s\(s).png")
                }
            }
            report.details["panels"] = "\(dir)/NAME-sσ.png: centre \(panelSide)×\(panelSide) crops of clean, noisy, ours"
                + (theirs == nil ? "" : ", BM3D") + ", then |estimate − clean|×4 for ours" + (theirs == nil ? "" : " and BM3D")
        }
        report.details["images"] = "\(folder): " + names.joined(separator: ", ")
        for (i, (path, model)) in zip(o.models, models).enumerated() {
            let trained = model.dictionary, served = zip(sigmas, chosen).filter { $0.1 == i }.map(\.0)
            let shifts: String = model.shiftAverage && trained.stride > 1 ? ", " + (o.shifts ?? model.shifts).describe(stride: trained.stride) : ""
            report.details["ours: model \(path)"] = "\(trained.atoms) filters \(trained.kernel)×\(trained.kernel), stride \(trained.stride), T \(model.encoder.layers), shift averaging \(model.shiftAverage ? "on" : "off")"
                + shifts
                + (model.adaptiveSigma.map { String(format: ", noise-adaptive (thresholds set for each σ from σ %.3g/255)", $0 * 255) } ?? "")
                + (model.nonLocal.map { ", then a non-local means (" + $0.description + ")" } ?? "")
                + (model.collaborative.map { ", mixed with " + $0.description } ?? "")
                + "; used at σ " + served.map(String.init).joined(separator: ", ")
        }
        report.details["noise"] = "N(0, σ²) per pixel from seed σ (one generator per σ, the images in order), added to the whole clean image"
        if theirs != nil {
            report.details["SSIM check: largest |ours − scikit-image| on the BM3D estimates"] = String(format: "%.1e", worstSSIMGap)
        }
        report.notes.append("PSNR with peak 1, estimates clamped to [0, 1]; SSIM: 11×11 Gaussian window σ 1.5 (scikit-image's settings); times are whole images, shift averaging included")
        return report
    }
}
