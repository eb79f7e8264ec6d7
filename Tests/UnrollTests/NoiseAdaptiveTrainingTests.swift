import Foundation
import Testing
import Unroll
import UnrollCore
import UnrollIO

/// The CSCNet-class training of the CRsAE 2-D model: the loss through the shift average and over a
/// noise range against finite differences, the window average against its adjoint and against
/// `Denoiser`'s averaging, threshold scaling against the network's homogeneity, checkpoints, the file
/// and the CLI.
@Suite struct NoiseAdaptiveTrainingTests {
    /// 3 filters 3×3, stride 2, T 5, untied, free bias, each crop at 3 of the 4 shifts, σ drawn from
    /// 0.05…0.2 around the reference 0.1; a batch of two 9×9 crops with their own σ.
    static func smallModel(shifts: Int = 3) throws -> (CRsAE2DModel, CropBatches.Batch) {
        var c = CRsAE2DConfig()
        c.atoms = 3; c.kernel = 3; c.stride = 2; c.layers = 5; c.lipschitz = 4; c.tying = .untied; c.bias = .freeBias
        c.cropSize = 9; c.sigma = 0.1; c.noiseRange = 0.05...0.2; c.shiftsPerCrop = shifts; c.seed = 3
        var model = try CRsAE2DModel(config: c)
        var rng = Random(seed: 8)
        var p = model.parameters
        for i in 1..<3 { p[i].add(Tensor.normal(p[i].shape, rng: &rng), scaledBy: 0.3) }   // the banks differ
        p[3] = Tensor(shape: [3], data: [0.3, 0.5, 0.7])   // partly sparse codes
        model.parameters = p
        let clean = Tensor.normal([2, 9, 9], rng: &rng)
        var noisy = clean
        let sigmas: [Float] = [0.05, 0.2]
        var noise = Tensor.normal([2, 9, 9], rng: &rng)
        noise.scaleRows(by: sigmas)
        noisy.add(noise)
        return (model, (noisy, clean, sigmas))
    }

    /// Every bank (two random directions each) and every threshold: the gradient of the loss on the
    /// shift-averaged, noise-scaled reconstruction against central differences.
    @Test(arguments: [3, 4])
    func shiftAveragedLossGradientsMatchFiniteDifferences(_ shifts: Int) throws {
        let (model, batch) = try Self.smallModel(shifts: shifts)
        let record = try model.evaluate(batch, step: 7)
        #expect(record.density > 0.1 && record.density < 0.9, "codes should be partly sparse, density \(record.density)")
        func loss(_ p: [Tensor]) throws -> Double {
            var m = model
            m.parameters = p
            return try m.evaluate(batch, step: 7).reconstruction
        }
        let p = model.parameters
        var rng = Random(seed: 9)
        for k in p.indices {
            let directions = k < 3 ? (0..<2).map { _ in Tensor.normal(p[k].shape, rng: &rng) }
                : (0..<3).map { c in Tensor(shape: [3], data: (0..<3).map { $0 == c ? 1 : 0 }) }
            for d in directions {
                let fd = try CRsAEDenoiseTests.centralDifferences { eps in
                    var moved = p
                    moved[k].add(d, scaledBy: eps)
                    return try loss(moved)
                }
                var analytic = 0.0
                for i in 0..<d.count { analytic += Double(d.data[i]) * Double(record.gradients[k].data[i]) }
                #expect(CRsAEDenoiseTests.closest(fd, analytic) <= 2e-3, "\(model.parameterNames[k]), \(shifts) shifts: FD \(fd) vs backward \(analytic)")
            }
        }
        // The loss is in units of each crop's noise, weighted by σ_crop/σ: scaling both crops and their
        // σ by 3 scales it by 3; one crop alone weighs σ_b/σ times its loss in noise units.
        var scaled = batch
        scaled.noisy = 3 * scaled.noisy
        scaled.clean = 3 * scaled.clean
        scaled.sigmas = [0.15, 0.6]
        let again = try model.evaluate(scaled, step: 7).reconstruction
        #expect(abs(again - 3 * record.reconstruction) <= 1e-5 * record.reconstruction)
    }

    /// ⟨meanOfWindows(C), g⟩ = ⟨C, spreadToWindows(g)⟩, and with all s² shifts the mean of windows of
    /// the reconstructed copies is what `Denoiser.denoise` gives.
    @Test func windowAverageIsTheAdjointOfItsSpreadAndDenoisersAverage() throws {
        var rng = Random(seed: 2)
        let (s, k, h, w) = (3, 4, 10, 7)
        let shifts: [[(Int, Int)]] = [[(0, 1), (2, 2)], [(1, 0)], [(0, 0), (1, 1), (2, 0)]]
        let (ph, pw) = (Denoiser.shiftPaddedSide(h, stride: s, kernel: k), Denoiser.shiftPaddedSide(w, stride: s, kernel: k))
        let copies = Tensor.normal([6, ph, pw], rng: &rng), g = Tensor.normal([3, h, w], rng: &rng)
        let mean = Denoiser.meanOfWindows(copies, shifts: shifts, height: h, width: w, stride: s)
        let spread = Denoiser.spreadToWindows(g, shifts: shifts, paddedHeight: ph, paddedWidth: pw, stride: s)
        let lhs = zip(mean.data, g.data).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let rhs = zip(copies.data, spread.data).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        #expect(abs(lhs - rhs) <= 1e-5 * max(1, abs(lhs)))   // float sums

        let (model, batch) = try Self.smallModel(shifts: 4)
        let image = batch.noisy.rows(0..<1).reshaped([9, 9])
        let all = (0..<2).flatMap { i in (0..<2).map { j in (i, j) } }
        let ae = try model.autoencoder(height: 9, width: 9)
        let rec = try ae.reconstruct(Denoiser.shiftedCopies(of: image.reshaped([1, 9, 9]), shifts: [all], stride: 2, kernel: 3)).reconstruction
        let mine = Denoiser.meanOfWindows(rec, shifts: [all], height: 9, width: 9, stride: 2)
        let theirs = try Denoiser.denoise(image, model: ae)
        #expect(zip(mine.data, theirs.data).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) })
        // A subset of the phases: n evenly spaced per axis, the same mean over those shifts.
        #expect(ShiftSet.grid(3).shifts(stride: 5).map(\.0) == [0, 0, 0, 1, 1, 1, 3, 3, 3])
        #expect(ShiftSet.grid(9).count(stride: 5) == 25 && ShiftSet.all.count(stride: 5) == 25)
        #expect(try Denoiser.denoise(image, model: ae, shifts: .grid(2)) == theirs)
        for (set, list) in [(ShiftSet.grid(1), [(0, 0)]), (.lattice(2), [(0, 0), (1, 1)])] {
            let rec = try ae.reconstruct(Denoiser.shiftedCopies(of: image.reshaped([1, 9, 9]), shifts: [list], stride: 2, kernel: 3)).reconstruction
            let expected = Denoiser.meanOfWindows(rec, shifts: [list], height: 9, width: 9, stride: 2)
            #expect(zip(try Denoiser.denoise(image, model: ae, shifts: set).data, expected.data).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) }, "\(set)")
        }
    }

    /// The lattice: n shifts (⌊k·s/n⌋, ⌊s·(a·k mod n)/n⌋) with a coprime to n nearest 0.382·n. For n ≤ s,
    /// every shift has its own phase on both axes; n ≥ s² is every shift once.
    @Test func latticeShiftsHaveTheirOwnPhaseOnEachAxis() {
        #expect(ShiftSet.lattice(8).shifts(stride: 8).map { [$0.0, $0.1] } == [[0, 0], [1, 3], [2, 6], [3, 1], [4, 4], [5, 7], [6, 2], [7, 5]])
        #expect(ShiftSet.lattice(9).shifts(stride: 8).map { [$0.0, $0.1] } == [[0, 0], [0, 3], [1, 7], [2, 2], [3, 6], [4, 1], [5, 5], [6, 0], [7, 4]])
        for s in [2, 5, 8, 11] {
            for n in 1...s {
                let list = ShiftSet.lattice(n).shifts(stride: s)
                #expect(list.count == n && Set(list.map(\.0)).count == n && Set(list.map(\.1)).count == n, "stride \(s), \(n) shifts: \(list)")
                #expect(list.allSatisfy { (0..<s).contains($0.0) && (0..<s).contains($0.1) })
            }
            let every = ShiftSet.lattice(s * s + 1).shifts(stride: s)
            #expect(every.count == s * s && Set(every.map { $0.0 * s + $0.1 }).count == s * s, "stride \(s): n > s² is not every shift")
        }
        #expect(ShiftSet.lattice(8).describe(stride: 8) == "8 of the 64 shifts (a lattice, 8 phases per axis)")
        #expect(ShiftSet.grid(3).describe(stride: 8) == "9 of the 64 shifts (3 phases per axis)")
        #expect(ShiftSet.all.describe(stride: 8) == "all 64 shifts" && ShiftSet.grid(8).describe(stride: 8) == "all 64 shifts")
        #expect(throws: UnrollError.self) { try ShiftSet.lattice(0).validate() }
    }

    /// The network is positively homogeneous: the model set for c·σ maps c·y to c·f(y); the reference
    /// σ travels through the model file; a model for one σ refuses `atNoise`.
    @Test func thresholdsScaleWithTheNoiseAndTheFileKeepsTheReference() throws {
        let (model, batch) = try Self.smallModel()
        let ae = try model.autoencoder(height: 9, width: 9)
        #expect(ae.adaptiveSigma == 0.1)
        let y = batch.noisy.rows(0..<1).reshaped([9, 9])
        let base = try Denoiser.denoise(y, model: ae)
        let tripled = try Denoiser.denoise(3 * y, model: try ae.atNoise(0.3))
        #expect(zip(tripled.data, base.data).allSatisfy { abs($0 - 3 * $1) <= 1e-5 * max(1, abs(3 * $1)) })
        #expect(try ae.atNoise(0.3).atNoise(0.1).encoder.lambda.allValues.elementsEqual(ae.encoder.lambda.allValues) { abs($0 - $1) <= 1e-7 })

        let path = FileManager.default.temporaryDirectory.appendingPathComponent("unroll-adaptive-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try ModelFile(model: .conv2d(ae)).write(to: path)
        #expect(try Safetensors.read(path).metadata["model.adaptive_sigma"] == "0.1")
        guard case let .conv2d(back) = try ModelFile.read(path).model else { Issue.record("not a conv2d model"); return }
        #expect(back.adaptiveSigma == 0.1 && back.encoder == ae.encoder)

        var fixed = ae
        fixed.adaptiveSigma = nil
        #expect(throws: UnrollError.self) { try fixed.atNoise(0.2) }
        #expect(throws: UnrollError.self) { try ae.atNoise(0) }
        #expect(throws: UnrollError.self) { try UnrolledAutoencoder(dictionary: ae.dictionary, encoder: ae.encoder, adaptiveSigma: -1) }
    }

    /// Models for ranges of noise (switching at 0.14 and 0.3): each σ gets its range's model, set for
    /// that σ; the estimate chooses when σ is not given; bad bounds, and models of one σ, are refused.
    @Test func theModelForTheNoiseRangeIsChosen() throws {
        let (model, _) = try Self.smallModel()
        let low = try model.autoencoder(height: 9, width: 9)
        var mid = try low.atNoise(0.2), high = try low.atNoise(0.4)
        mid.encoder.lambda = .perAtom(mid.encoder.lambda.allValues.map { $0 * 0.9 })   // other models, other references
        high.encoder.lambda = .perAtom(high.encoder.lambda.allValues.map { $0 * 0.8 })
        let models = [low, mid, high], bounds: [Float] = [0.14, 0.3]
        for (sigma, expected): (Float, Int) in [(0.05, 0), (0.1399, 0), (0.14, 1), (0.2, 1), (0.2999, 1), (0.3, 2), (0.9, 2)] {
            #expect(Denoiser.range(of: sigma, switchingAt: bounds) == expected, "σ \(sigma)")
            let (chosen, estimated, index) = try Denoiser.model(choosingFrom: models, switchingAt: bounds, forNoise: sigma)
            let set = try models[expected].atNoise(sigma)
            #expect(index == expected && estimated == nil && chosen.encoder == set.encoder && chosen.adaptiveSigma == sigma, "σ \(sigma)")
        }
        // σ estimated from the image: the model for that σ.
        var noisy = DenoisingTests.image(64, 64), rng = Random(seed: 9)
        noisy = DenoisingImages.addNoise(noisy, sigma: 0.2, rng: &rng)
        let (chosen, estimated, index) = try Denoiser.model(choosingFrom: models, switchingAt: bounds, forNoise: nil, of: noisy)
        let e = try #require(estimated)
        let (direct, set) = (try NoiseEstimate.sigma(noisy), try mid.atNoise(e))
        #expect(index == 1 && e == direct && chosen.encoder == set.encoder, "σ estimated \(e)")
        // A noiseless image keeps the first model as it is.
        #expect(try Denoiser.model(choosingFrom: models, switchingAt: bounds, forNoise: nil, of: Tensor(zeros: [8, 8])).model.encoder == low.encoder)
        var fixed = low
        fixed.adaptiveSigma = nil
        #expect(throws: UnrollError.self) { try Denoiser.model(choosingFrom: [low, fixed], switchingAt: [0.2], forNoise: 0.1) }
        #expect(throws: UnrollError.self) { try Denoiser.model(choosingFrom: [], forNoise: 0.1) }
        for wrong: [Float] in [[], [0.3, 0.14], [0.14, 0.14], [0, 0.3], [0.14, .nan], [0.1, 0.2, 0.3]] {
            #expect(throws: UnrollError.self, "bounds \(wrong)") { try Denoiser.model(choosingFrom: models, switchingAt: wrong, forNoise: 0.1) }
        }
        #expect(throws: UnrollError.self) { try Denoiser.model(choosingFrom: models, switchingAt: bounds, forNoise: .nan) }
        #expect(try Denoiser.model(choosingFrom: [fixed], forNoise: 0.3).model.encoder == fixed.encoder)
    }

    /// The noise estimate: Gaussian noise of σ on a smooth image is estimated within 3 %; on the test
    /// images within 12 % at σ 15–50/255 (measured with NumPy on the same formula: +0 to +10 %,
    /// fine texture biasing it up); bad input is refused.
    @Test func noiseIsEstimatedFromTheImageAlone() throws {
        var rng = Random(seed: 4)
        let smooth = DenoisingTests.image(256, 200)
        for sigma: Float in [0.02, 0.1, 0.2] {
            let estimate = try NoiseEstimate.sigma(DenoisingImages.addNoise(smooth, sigma: sigma, rng: &rng))
            #expect(abs(estimate / sigma - 1) < 0.03, "σ \(sigma): estimated \(estimate)")
        }
        #expect(try NoiseEstimate.sigma(smooth) < 0.002)
        #expect(throws: UnrollError.self) { try NoiseEstimate.sigma(Tensor(zeros: [1, 8])) }
        #expect(throws: UnrollError.self) { try NoiseEstimate.sigma(Tensor(shape: [2, 2], data: [0, .nan, 0, 0])) }
    }

    @Test(.needsSharedData) func noiseEstimateOnTheTestImages() throws {
        var rng = Random(seed: 5)
        for name in ["barbara", "camera", "cell", "monarch"] {
            let clean = try PNG.readGray(sharedData + "/images/test/\(name).png")
            for level in [15, 25, 50] {
                let sigma = Float(level) / 255
                let estimate = try NoiseEstimate.sigma(DenoisingImages.addNoise(clean, sigma: sigma, rng: &rng))
                #expect(estimate / sigma > 0.97 && estimate / sigma < 1.12, "\(name) σ \(level)/255: estimated \(estimate * 255)/255")
            }
        }
    }

    /// A run with rotations, a noise range and shift training continues bit for bit from a checkpoint;
    /// a checkpoint of other settings, or one without them, is refused; bad settings are refused.
    @Test func aCheckpointOfTheNewSettingsContinuesBitForBit() throws {
        let images = [CRsAEDenoiseTests.image(40, 40), CRsAEDenoiseTests.image(40, 40, phase: 1)]
        var c = CRsAE2DConfig()
        c.atoms = 4; c.kernel = 5; c.stride = 2; c.layers = 4; c.cropSize = 21; c.sigma = 0.1; c.lipschitz = 4
        c.bias = .freeBias; c.tying = .untied; c.batchSize = 2
        c.rotations = true; c.noiseRange = 0.05...0.2; c.shiftsPerCrop = 2
        var trainer = try CRsAE2DTrainer(images: images, config: c)
        for _ in 0..<3 { try trainer.trainStep() }
        let saved = trainer.checkpoint()
        for _ in 0..<3 { try trainer.trainStep() }
        var resumed = try CRsAE2DTrainer(images: images, config: c)
        try resumed.restore(saved)
        for _ in 0..<3 { try resumed.trainStep() }
        #expect(resumed.network == trainer.network && resumed.step == 6)
        for change in [{ (c: inout CRsAE2DConfig) in c.shiftsPerCrop = 3 }, { $0.noiseRange = nil }, { $0.rotations = false }] {
            var other = c
            change(&other)
            var mismatched = try CRsAE2DTrainer(images: images, config: other)
            #expect(throws: UnrollError.self) { try mismatched.restore(saved) }
        }
        for bad in [{ (c: inout CRsAE2DConfig) in c.shiftsPerCrop = 5 }, { $0.noiseRange = 0...0.2 }, { $0.bias = .em(form: .closedForm) }] {
            var other = c
            bad(&other)
            #expect(throws: UnrollError.self) { try CRsAE2DTrainer(images: images, config: other) }
        }
    }

    /// Through the CLI: a noise-adaptive run with a held-out image writes the reference σ, reports
    /// the validation PSNR and keeps the best model; `denoise` sets it for --sigma, --add-noise's σ or the estimated σ; a
    /// held-out name that is not in the folder is refused by name.
    @Test(.needsCLI) func cliTrainsANoiseAdaptiveModelAndDenoiseSetsItsSigma() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("unroll-adaptive-cli-\(UUID().uuidString)")
        let images = dir.appendingPathComponent("train")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try PNG.write(Raster(gray: DenoisingTests.image(40, 40)), to: images.appendingPathComponent("a.png").path)
        try PNG.write(Raster(gray: DenoisingTests.image(36, 40, phase: 1)), to: images.appendingPathComponent("b.png").path)
        let common = ["train", "--model", "conv2d", "--family", "crsae", "--untied", "--bias", "free-bias", "--data", images.path,
                      "--atoms", "4", "--kernel", "5", "--stride", "2", "--crop", "17", "--layers", "6", "--steps", "6", "--lipschitz", "4",
                      "--sigma", "0.1", "--sigma-range", "0.05:0.2", "--rotations", "--shifts", "2", "--eval-every", "3"]
        let out = try CLITests.ok(common + ["--hold-out", "b.png", "--output", "run"], in: dir)
        #expect(out.stdout.contains("validation (b.png, held out)"), "\(out.stdout)")
        let log = try String(contentsOf: dir.appendingPathComponent("run/log.csv"), encoding: .utf8)
        #expect(log.hasPrefix("step,") && log.contains("validation_psnr"))
        let meta = try Safetensors.read(dir.appendingPathComponent("run/model.safetensors").path).metadata
        #expect(meta["model.adaptive_sigma"] == "0.1" && meta["training.hold_out"] == "b.png" && meta["training.sigma_range"] == "0.05:0.2")
        // The best validation so far is kept as best.safetensors, with its PSNR and step.
        let best = try Safetensors.read(dir.appendingPathComponent("run/best.safetensors").path).metadata
        let bestPSNR = try #require(best["training.validation_psnr"].flatMap(Double.init))
        let atStep3 = try #require(log.split(separator: "\n").first { $0.hasPrefix("3,") }.flatMap { Double($0.split(separator: ",").dropLast().last!) })
        #expect(["3", "6"].contains(best["training.step"]) && bestPSNR >= atStep3 - 1e-3 && out.stdout.contains("best validation"), "\(best)")
        if best["training.step"] == "3" { #expect(abs(bestPSNR - atStep3) < 1e-3) }
        let all = try CLITests.run(common + ["--hold-out", "a.png", "--hold-out", "b.png", "--output", "run4"], in: dir)
        #expect(all.status != 0 && all.stderr.contains("nothing is left to train on"), "\(all.stderr)")

        try PNG.write(Raster(gray: DenoisingTests.image(30, 34, phase: 2)), to: dir.appendingPathComponent("ref.png").path)
        let estimated = try CLITests.ok(["denoise", "--model", "run/model.safetensors", "--input", "ref.png", "--output", "x.png"], in: dir)
        #expect(estimated.stdout.contains("σ estimated "), "\(estimated.stdout)")
        let refused = try CLITests.run(["denoise", "--model", "run/model.safetensors", "--input", "ref.png", "--sigma", "0", "--output", "x.png"], in: dir)
        #expect(refused.status != 0 && refused.stderr.contains("noise level > 0"), "\(refused.stderr)")
        let noisy = ["--input", "ref.png", "--clean", "ref.png", "--add-noise", "0.15", "--seed", "3"]
        let viaNoise = try CLITests.ok(["denoise", "--model", "run/model.safetensors"] + noisy + ["--output", "a.png"], in: dir)
        let viaSigma = try CLITests.ok(["denoise", "--model", "run/model.safetensors"] + noisy + ["--sigma", "0.15", "--output", "b.png"], in: dir)
        #expect(viaNoise.stdout.contains("PSNR") && viaNoise.stdout == viaSigma.stdout.replacingOccurrences(of: "b.png", with: "a.png"))

        let missing = try CLITests.run(common + ["--hold-out", "c.png", "--output", "run2"], in: dir)
        #expect(missing.status != 0 && missing.stderr.contains("--hold-out c.png") && missing.stderr.contains("a.png, b.png"), "\(missing.stderr)")
        let badRange = try CLITests.run(common + ["--sigma-range", "0.2:0.1", "--output", "run3"], in: dir)
        #expect(badRange.status != 0 && badRange.stderr.contains("--sigma-range"), "\(badRange.stderr)")
    }
}
