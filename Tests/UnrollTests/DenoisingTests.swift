import Foundation
import Testing
import Unroll
import UnrollCore
import UnrollExperiments
import UnrollIO

/// Image denoising: PSNR, the crop/flip/noise sampler, the supervised objective, whole-image
/// denoising, the Table 1 runner at tiny size, PNG conversion, and the `unroll` verbs on bad input.
@Suite struct DenoisingTests {
    /// A smooth test image with edges, values in [0.1, 0.8].
    static func image(_ h: Int, _ w: Int, phase: Double = 0) -> Tensor {
        var t = Tensor(zeros: [h, w])
        for i in 0..<h {
            for j in 0..<w {
                let v = 0.45 + 0.25 * sin(Double(i) / 5 + phase) * cos(Double(j) / 7) + (j > w / 2 ? 0.1 : -0.1)
                t.data[i * w + j] = Float(v)
            }
        }
        return t
    }

    @Test func psnrClosedForm() {
        let clean = Self.image(20, 30)
        let d: Float = 0.05
        let shifted = clean.map { $0 + d }            // stays inside [0, 1]: mse = d²
        let expected = -20 * log10(Double(d))
        #expect(abs(PSNR.value(shifted, clean: clean) - expected) < 1e-3)
        let top = Double(clean.max())
        #expect(abs(PSNR.value(shifted, clean: clean, peak: .cleanMax) - (expected + 20 * log10(top))) < 1e-3)
        // The estimate is clamped to [0, 1]: 1.7 counts as 1.
        let white = Tensor(repeating: 1, shape: [4, 4]), over = Tensor(repeating: 1.7, shape: [4, 4])
        #expect(PSNR.value(over, clean: white) == .infinity)
        let zeros = Tensor(zeros: [4, 4])
        #expect(abs(PSNR.value(zeros, clean: Tensor(repeating: 0.5, shape: [4, 4])) - 20 * log10(2.0)) < 1e-9)
    }

    /// SSIM: 1 for identical images; the closed form (2μₓμᵧ + C1)/(μₓ² + μᵧ² + C1) for two flat images;
    /// a direct 2-D sum over the 11×11 Gaussian window on random images (scikit-image agrees to 1.8e-14
    /// on the BM3D estimates of `unroll bench denoise`).
    @Test func ssimMatchesClosedFormsAndADirectSum() throws {
        var rng = Random(seed: 12)
        let x = Tensor.uniform([16, 14], rng: &rng), y = Tensor.uniform([16, 14], rng: &rng)
        #expect(abs(SSIM.mean(x, clean: x) - 1) < 1e-12)
        let (a, b) = (Tensor(shape: [12, 12], data: .init(repeating: 0.3, count: 144)), Tensor(shape: [12, 12], data: .init(repeating: 0.7, count: 144)))
        let c1 = 1e-4, (ma, mb) = (Double(Float(0.3)), Double(Float(0.7)))
        #expect(abs(SSIM.mean(a, clean: b) - (2 * ma * mb + c1) / (ma * ma + mb * mb + c1)) < 1e-9)
        // Direct: the 2-D window g(u)g(v) at every position where it fits.
        let r = SSIM.radius
        let g1 = (-r...r).map { exp(-Double($0 * $0) / 4.5) }, total = g1.reduce(0, +)
        var sum = 0.0, count = 0
        for i in r..<(16 - r) {
            for j in r..<(14 - r) {
                var (mx, my, xx, yy, xy) = (0.0, 0.0, 0.0, 0.0, 0.0)
                for u in -r...r {
                    for v in -r...r {
                        let w = g1[u + r] * g1[v + r] / (total * total)
                        let (p, q) = (Double(x[i + u, j + v]), Double(y[i + u, j + v]))
                        mx += w * p; my += w * q; xx += w * p * p; yy += w * q * q; xy += w * p * q
                    }
                }
                let (vx, vy, cxy) = (xx - mx * mx, yy - my * my, xy - mx * my)
                sum += ((2 * mx * my + 1e-4) * (2 * cxy + 9e-4)) / ((mx * mx + my * my + 1e-4) * (vx + vy + 9e-4))
                count += 1
            }
        }
        #expect(abs(SSIM.mean(x, clean: y) - sum / Double(count)) < 1e-12)
    }

    @Test func samplerCropsFlipsAndRedrawsNoise() throws {
        let source = Self.image(40, 50)
        let sampler = try DenoisingSampler(images: [source], cropSize: 16, sigma: 0.1)
        var rng = Random(seed: 3)
        var seenFlip = false
        for _ in 0..<20 {
            let (noisy, clean, _) = sampler.next(batch: 1, rng: &rng)
            #expect(clean.shape == [1, 16, 16] && noisy.shape == [1, 16, 16])
            // The clean crop is a window of the source, possibly flipped.
            var found = false
            for top in 0...24 where !found {
                for left in 0...34 where !found {
                    for (fh, fv) in [(false, false), (true, false), (false, true), (true, true)] where !found {
                        var same = true
                        for i in 0..<16 where same {
                            for j in 0..<16 where same {
                                let r = top + (fv ? 15 - i : i), c = left + (fh ? 15 - j : j)
                                same = clean.data[i * 16 + j] == source.data[r * 50 + c]
                            }
                        }
                        if same { found = true; seenFlip = seenFlip || fh || fv }
                    }
                }
            }
            #expect(found, "the clean crop is not a (flipped) window of the image")
        }
        #expect(seenFlip)
        // Noise: std σ, fresh on every batch, reproducible from the seed.
        var a = Random(seed: 5), b = Random(seed: 5)
        let big = try DenoisingSampler(images: [Self.image(200, 200)], cropSize: 200, sigma: 0.1, flips: false)
        let (n1, c1, s1) = big.next(batch: 1, rng: &a)
        let (n1b, _, _) = big.next(batch: 1, rng: &b)
        let (n2, c2, _) = big.next(batch: 1, rng: &a)
        #expect(n1 == n1b && c1 == c2 && n1 != n2)
        let noise = (n1 - c1).data.map(Double.init)
        let std = (noise.reduce(0) { $0 + $1 * $1 } / Double(noise.count)).squareRoot()
        #expect(abs(std - 0.1) < 0.003 && s1 == [0.1])
    }

    /// With rotations every crop is one of the eight rotations/reflections of a window (all eight
    /// seen); with a σ range each crop's noise has its own σ, drawn within the range and reported.
    @Test func samplerRotatesAndDrawsEachCropsSigma() throws {
        let source = Self.image(30, 30)
        let sampler = try DenoisingSampler(images: [source], cropSize: 8, sigma: 0, rotations: true)
        var rng = Random(seed: 1)
        var seen = Set<Int>()
        for _ in 0..<80 {
            let clean = sampler.next(batch: 1, rng: &rng).clean
            var kinds: [Int] = []
            for top in 0...22 {
                for left in 0...22 {
                    for kind in 0..<8 {
                        let (fh, fv, tr) = (kind & 1 == 1, kind & 2 == 2, kind & 4 == 4)
                        var same = true
                        for i in 0..<8 where same {
                            for j in 0..<8 where same {
                                let (u, v) = tr ? (j, i) : (i, j)
                                same = clean.data[i * 8 + j] == source.data[(top + (fv ? 7 - u : u)) * 30 + left + (fh ? 7 - v : v)]
                            }
                        }
                        if same { kinds.append(kind) }
                    }
                }
            }
            #expect(!kinds.isEmpty, "the crop is not a rotated or reflected window of the image")
            if kinds.count == 1 { seen.insert(kinds[0]) }
        }
        #expect(seen.count == 8)

        let ranged = try DenoisingSampler(images: [Self.image(200, 200)], cropSize: 100, sigmas: 0.05...0.2, flips: false)
        var a = Random(seed: 2)
        let (noisy, clean, sigmas) = ranged.next(batch: 6, rng: &a)
        #expect(sigmas.count == 6 && sigmas.allSatisfy { (0.05...0.2).contains($0) } && Set(sigmas).count == 6)
        for b in 0..<6 {
            let noise = (noisy.rows(b..<(b + 1)) - clean.rows(b..<(b + 1))).data.map(Double.init)
            let std = (noise.reduce(0) { $0 + $1 * $1 } / Double(noise.count)).squareRoot()
            #expect(abs(std / Double(sigmas[b]) - 1) < 0.03, "crop \(b): noise std \(std) for σ \(sigmas[b])")
        }
        #expect(throws: UnrollError.self) { try DenoisingSampler(images: [Self.image(20, 20)], cropSize: 8, sigmas: -0.1...0.1) }
    }

    @Test func negativeSigmaAndSmallImagesThrowClearErrors() throws {
        #expect(throws: UnrollError.self) { try DenoisingSampler(images: [Self.image(20, 20)], cropSize: 8, sigma: -0.1) }
        var rng = Random(seed: 1)
        let dict = try Convolution2DDictionary(filters: 4, kernel: 9, stride: 4, height: 33, width: 33, rng: &rng)
        let enc = UnrolledEncoder(layers: 3, lambda: .scalar(0.1), step: .fixed(0.1))
        #expect(throws: UnrollError.self) {
            try Denoiser.evaluate(clean: [Self.image(20, 20)], sigma: -1, seed: 0, dictionary: dict, encoder: enc)
        }
        do {
            _ = try Denoiser.denoise(Self.image(6, 40), dictionary: dict, encoder: enc)
            Issue.record("a 6×40 image with 9×9 filters should throw")
        } catch let e as UnrollError {
            #expect(e.description.contains("6×40") && e.description.contains("9×9"), "\(e)")
        }
        let config = DenoisingConfig(encoder: enc, cropSize: 33)
        #expect(throws: UnrollError.self) { try DenoisingTrainer(dictionary: dict, images: [Self.image(8, 8)], config: config) }
        var bad = config
        bad.sigma = -0.5
        #expect(throws: UnrollError.self) { try DenoisingTrainer(dictionary: dict, images: [Self.image(40, 40)], config: bad) }
    }

    /// With input ≠ target: g_dec is the closed form (1/B)·∂⟨Dz − t, Dz⟩ with z the codes of the input,
    /// and g_ae-ls / g_ae-lasso equal central differences of ½‖D(h)·z(h; input) − t‖² (+ λ|z|) in the
    /// filters, all to 1e-5 (measured: 1e-7): the loss in Double precision, by the unrolled loop over the convolution's
    /// matrix built from its definition (stride 2 on a 7×8 image, so the code grid overhangs it).
    @Test func supervisedObjectiveMatchesFiniteDifferences() throws {
        let (hh, ww, c, k, stride, batch) = (7, 8, 2, 3, 2, 2)
        var rng = Random(seed: 21)
        let op = try Convolution2DDictionary(filters: c, kernel: k, stride: stride, height: hh, width: ww, rng: &rng)
        let target = Tensor.normal([batch, hh, ww], rng: &rng)
        let input = target + 0.3 * Tensor.normal([batch, hh, ww], rng: &rng)
        let (lambda, alpha, layers) = (0.2, 0.1, 4)
        let enc = UnrolledEncoder(layers: layers, lambda: .scalar(Float(lambda)), step: .fixed(Float(alpha)))
        let setting = SolverLoopTests.Setting(fista: false, threshold: .soft, untied: false, lambdaIsPenalty: true, beta: 1)
        let (x, t, m) = (doubles(input), doubles(target), hh * ww)
        func codes(_ matrix: [Double], _ p: Int) -> [Double] {
            SolverLoopTests.loop(setting, d: matrix, e: matrix, lambdas: [Double](repeating: lambda, count: p), x: x,
                                 p: p, m: m, layers: layers, alpha: alpha)
        }
        /// The mode's loss at filters f; with `fixed` codes (g_dec) the codes do not move with f.
        func loss(_ f: [Double], _ mode: GradientMode, fixed: [Double]?) -> Double {
            let (matrix, p) = SolverLoopTests.convolutionMatrix(f, filters: c, kernel: k, stride: stride, height: hh, width: ww)
            let z = fixed ?? codes(matrix, p)
            var total = 0.0
            for i in 0..<batch {
                for q in 0..<m {
                    var r = -t[i * m + q]
                    for j in 0..<p where z[i * p + j] != 0 { r += z[i * p + j] * matrix[j * m + q] }
                    total += 0.5 * r * r
                }
            }
            if mode != .leastSquares { total += lambda * z.reduce(0) { $0 + abs($1) } }
            return total / Double(batch)
        }
        let f0 = doubles(op.weights)
        let (m0, p0) = SolverLoopTests.convolutionMatrix(f0, filters: c, kernel: k, stride: stride, height: hh, width: ww)
        let fixed = codes(m0, p0)
        #expect(relativeDifference(doubles(try enc.encode(input, with: op)), fixed) < 1e-5)
        for mode in [GradientMode.decoder, .lasso, .leastSquares] {
            let g = try mode.evaluate(input: input, target: target, operator: op, encoder: enc)
            #expect(abs(g.losses.loss - loss(f0, mode, fixed: nil)) < 1e-5 * loss(f0, mode, fixed: nil))
            let fd = SolverLoopTests.centralDifferences(f0) { loss($0, mode, fixed: mode == .decoder ? fixed : nil) }
            #expect(relativeDifference(doubles(g.gradient), fd) < 1e-5, "\(mode): \(relativeDifference(doubles(g.gradient), fd))")
        }
        // target = input: the same as the unsupervised evaluate.
        let a = try GradientMode.leastSquares.evaluate(input: input, target: input, operator: op, encoder: enc)
        let b = try GradientMode.leastSquares.evaluate(signals: input, operator: op, encoder: enc)
        #expect(relativeDifference(doubles(a.gradient), doubles(b.gradient)) < 1e-6)
    }

    /// A few hundred steps of g_ae-ls on one smooth image must denoise it (PSNR above the noisy input's)
    /// on an image size that does not fit the stride (padding and cropping at test time).
    @Test func trainingDenoises() throws {
        var rng = Random(seed: 2)
        let dict = try Convolution2DDictionary(filters: 8, kernel: 5, stride: 2, height: 25, width: 25, rng: &rng)
        let enc = UnrolledEncoder(layers: 5, lambda: .scalar(0.05), step: .fixed(0.2))
        let config = DenoisingConfig(encoder: enc, mode: .leastSquares, optimizer: .adam(learningRate: 1e-2, epsilon: 1e-3),
                                     sigma: 0.1, cropSize: 25, batchSize: 4, seed: 4)
        var trainer = try DenoisingTrainer(dictionary: dict, images: [Self.image(64, 64)], config: config)
        let before = try Denoiser.evaluate(clean: [Self.image(43, 38, phase: 1)], sigma: 0.1, seed: 9,
                                           dictionary: trainer.dictionary, encoder: enc)
        for _ in 0..<150 { try trainer.trainStep() }
        let after = try Denoiser.evaluate(clean: [Self.image(43, 38, phase: 1)], sigma: 0.1, seed: 9,
                                          dictionary: trainer.dictionary, encoder: enc)
        #expect(after.meanDenoised > after.meanNoisy + 2, "PSNR \(after.meanDenoised) vs noisy \(after.meanNoisy)")
        #expect(after.meanDenoised > before.meanDenoised)
        #expect(abs(after.gain - (after.meanDenoisedCleanMax - after.meanNoisyCleanMax)) < 1e-9)
        for f in 0..<8 {
            let n = trainer.dictionary.weights.data[(f * 25)..<((f + 1) * 25)].reduce(0.0) { $0 + Double($1 * $1) }
            #expect(abs(n - 1) < 1e-4)
        }
    }

    /// A checkpoint taken mid-run and restored into a fresh trainer continues bit for bit; a
    /// checkpoint of other settings is refused and leaves the trainer as it was.
    @Test func aCheckpointContinuesBitForBit() throws {
        var rng = Random(seed: 3)
        let dict = try Convolution2DDictionary(filters: 4, kernel: 5, stride: 2, height: 17, width: 17, rng: &rng)
        let enc = UnrolledEncoder(layers: 3, lambda: .scalar(0.05), step: .fixed(0.2))
        let config = DenoisingConfig(encoder: enc, optimizer: .adam(learningRate: 1e-2, epsilon: 1e-3), sigma: 0.1,
                                     cropSize: 17, batchSize: 2, seed: 5)
        let images = [Self.image(40, 40), Self.image(30, 36, phase: 1)]
        var trainer = try DenoisingTrainer(dictionary: dict, images: images, config: config)
        for _ in 0..<3 { try trainer.trainStep() }
        let saved = trainer.checkpoint()
        for _ in 0..<2 { try trainer.trainStep() }
        var resumed = try DenoisingTrainer(dictionary: dict, images: images, config: config)
        try resumed.restore(saved)
        #expect(resumed.step == 3)
        for _ in 0..<2 { try resumed.trainStep() }
        #expect(resumed.dictionary.weights == trainer.dictionary.weights && resumed.step == 5)

        var other = config
        other.sigma = 0.2
        var mismatched = try DenoisingTrainer(dictionary: dict, images: images, config: other)
        let before = mismatched.dictionary.weights
        #expect(throws: UnrollError.self) { try mismatched.restore(saved) }
        #expect(mismatched.dictionary.weights == before && mismatched.step == 0)
        var broken = saved
        broken.tensors["filters"] = Tensor(zeros: [4, 1, 3, 3])
        #expect(throws: UnrollError.self) { try resumed.restore(broken) }
    }

    /// Every conv2d family: a run killed after step 5 with its last checkpoint at step 3, resumed to
    /// step 6, gives the same model file as 6 steps in one go, and its log has each step once.
    @Test(.needsCLI, arguments: [[String](), ["--family", "crsae"], ["--family", "crsae", "--untied", "--bias", "free-bias"],
                                 ["--family", "crsae", "--bias", "em-backprop", "--guard-lipschitz"]])
    func cliResumeGivesTheSameModelAsOneRun(_ family: [String]) throws {
        let dir = try CLITests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let images = dir.appendingPathComponent("train")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        try PNG.write(Raster(gray: Self.image(40, 40)), to: images.appendingPathComponent("a.png").path)
        let common = ["train", "--model", "conv2d", "--data", images.path, "--atoms", "4", "--kernel", "5", "--stride", "2",
                      "--crop", "17", "--layers", "3", "--lr", "1e-2", "--sigma", "0.1"] + family
        try CLITests.ok(common + ["--steps", "6", "--output", "one"], in: dir)
        try CLITests.ok(common + ["--steps", "3", "--output", "two"], in: dir)
        let checkpoint = dir.appendingPathComponent("two/checkpoint.safetensors")
        let atStep3 = try Data(contentsOf: checkpoint)
        try CLITests.ok(common + ["--steps", "5", "--output", "two", "--resume"], in: dir)
        try atStep3.write(to: checkpoint)   // killed after step 5, before its next checkpoint
        try CLITests.ok(common + ["--steps", "6", "--output", "two", "--resume"], in: dir)
        let a = try Data(contentsOf: dir.appendingPathComponent("one/model.safetensors"))
        let b = try Data(contentsOf: dir.appendingPathComponent("two/model.safetensors"))
        #expect(a == b, "\(family): the resumed model differs from one run")
        let steps = try CLITests.logRows(dir.appendingPathComponent("two/log.csv")).map { $0[0] }
        #expect(steps == [1, 2, 3, 4, 5, 6], "\(family): log steps \(steps)")
        let changed = try CLITests.run(common + ["--steps", "7", "--output", "two", "--resume", "--sigma", "0.2"], in: dir)
        #expect(changed.status != 0 && changed.stderr.contains("sigma"), "\(changed.stderr)")
        let faster = try CLITests.run(common + ["--steps", "7", "--output", "two", "--resume", "--lr", "0.5"], in: dir)
        #expect(faster.status != 0 && faster.stderr.contains("learning_rate"), "\(faster.stderr)")
        let missing = try CLITests.run(common + ["--steps", "6", "--output", "none", "--resume"], in: dir)
        #expect(missing.status != 0 && missing.stderr.contains("does not exist"), "\(missing.stderr)")
    }

    /// Table 1's ordering (PUDLE: g_ae-ls above g_dec above the noisy input) at the tiny scale, with its
    /// fixed seed, on the shared images as `unroll reproduce table1 --scale tiny` reads them (measured
    /// 24.65, 24.07 and 20.09 dB): a regression that loses the ordering cannot pass.
    @Test(.needsSharedData) func table1TinyKeepsThePapersOrdering() throws {
        func folder(_ name: String) throws -> [Tensor] {
            let dir = sharedData + "/images/" + name
            return try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.lowercased().hasSuffix(".png") }.sorted()
                .map { try PNG.readGray(dir + "/" + $0) }
        }
        let t = try Table1Experiment.run(Table1Experiment.settings(.tiny), train: folder("train"), test: folder("test"), scale: "tiny").table
        let noisy = try #require(t.measured(["gradient": .string("noisy input")]))
        let dec = try #require(t.measured(["gradient": .string("dec"), "lambda": .double(0.12)]))
        let ls = try #require(t.measured(["gradient": .string("ae-ls"), "lambda": .double(0.12)]))
        #expect(ls > dec + 0.25 && dec > noisy + 2, "ae-ls \(ls), dec \(dec), noisy \(noisy) dB")
    }

    @Test func table1TinyRunsAndReportsEveryRow() throws {
        var s = Table1Experiment.settings(.tiny)
        s.steps = 6
        s.evaluateEvery = 3
        let result = try Table1Experiment.run(s, train: [Self.image(50, 60)], test: [Self.image(41, 45, phase: 2)], scale: "tiny")
        let t = result.table
        #expect(t.rows.count == 1 + s.runs.count)
        #expect(t.rows[0]["gradient"] == .string("noisy input"))
        #expect(t.measured(["gradient": .string("ae-ls"), "lambda": .double(0.12)]).map { $0.isFinite } == true)
        #expect(t.rows(where: ["gradient": .string("ae-ls")]).first?.paper == 25.48)
        #expect(result.curves.first?.x == [3, 6])
        #expect(Table1Experiment.paperRuns.count == 15)
    }

    /// 16-bit gray and RGB PNGs are converted to gray [0, 1] (written by Python's zlib, not our encoder).
    @Test(.needsCLI) func sixteenBitAndRGBPNGsAreConverted() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("unroll-png-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = """
        import struct, zlib, sys
        def png(path, w, h, depth, ctype, rows):
            def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
            raw = b''.join(b'\\x00' + r for r in rows)
            open(path, 'wb').write(b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, depth, ctype, 0, 0, 0))
                                   + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))
        d = sys.argv[1]
        png(d + '/g16.png', 3, 2, 16, 0, [struct.pack('>3H', 0, 32768, 65535), struct.pack('>3H', 1000, 2000, 3000)])
        png(d + '/rgb.png', 2, 1, 8, 2, [bytes([255, 0, 0, 10, 20, 30])])
        png(d + '/rgbbig.png', 20, 20, 8, 2, [bytes(range(i, i + 60)) for i in range(20)])
        png(d + '/g16big.png', 20, 20, 16, 0, [struct.pack('>20H', *[1000 * (i + j) for j in range(20)]) for i in range(20)])
        """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, dir.path]
        try p.run()
        p.waitUntilExit()
        try #require(p.terminationStatus == 0, "python3 could not write the test PNGs")
        let g = try PNG.readGray(dir.appendingPathComponent("g16.png").path)
        #expect(g.shape == [2, 3])
        let expected: [Float] = [0, 32768, 65535, 1000, 2000, 3000].map { Float($0 / 65535.0) }
        #expect(zip(g.data, expected).allSatisfy { abs($0 - $1) < 1e-6 })
        let c = try PNG.readGray(dir.appendingPathComponent("rgb.png").path)
        #expect(c.shape == [1, 2])
        #expect(abs(c.data[0] - 0.299) < 1e-5 && abs(c.data[1] - Float(0.299 * 10 + 0.587 * 20 + 0.114 * 30) / 255) < 1e-5)

        // The CLI denoises both (PSNR printed against a reference) and refuses a non-image file.
        if CLITests.binary != nil {
            let smallModelDir = dir.appendingPathComponent("model")
            let images = dir.appendingPathComponent("train")
            try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
            try PNG.write(Raster(gray: Self.image(40, 40)), to: images.appendingPathComponent("a.png").path)
            try PNG.write(Raster(gray: Self.image(40, 40)), to: dir.appendingPathComponent("ref.png").path)
            try CLITests.ok(["train", "--model", "conv2d", "--data", images.path, "--atoms", "4", "--kernel", "5", "--stride", "2",
                             "--crop", "17", "--layers", "3", "--steps", "5", "--output", smallModelDir.path], in: dir)
            #expect(FileManager.default.fileExists(atPath: smallModelDir.appendingPathComponent("atoms.png").path))
            let model = smallModelDir.appendingPathComponent("model.safetensors").path
            let out = try CLITests.ok(["denoise", "--model", model, "--input", "ref.png", "--clean", "ref.png",
                                       "--add-noise", "0.1", "--seed", "3", "--output", "out.png"], in: dir)
            #expect(out.stdout.contains("PSNR"), "\(out.stdout)")
            try CLITests.ok(["denoise", "--model", model, "--input", "rgbbig.png", "--output", "o2.png"], in: dir)
            try CLITests.ok(["denoise", "--model", model, "--input", "g16big.png", "--output", "o6.png"], in: dir)
            try "not an image".write(to: dir.appendingPathComponent("notes.png"), atomically: true, encoding: .utf8)
            let bad = try CLITests.run(["denoise", "--model", model, "--input", "notes.png", "--output", "o3.png"], in: dir)
            #expect(bad.status != 0 && bad.stderr.contains("notes.png"), "\(bad.stderr)")
            let neg = try CLITests.run(["denoise", "--model", model, "--input", "ref.png", "--add-noise", "-1", "--output", "o4.png"], in: dir)
            #expect(neg.status != 0 && neg.stderr.contains("σ"), "\(neg.stderr)")
            let tinyImage = try CLITests.run(["denoise", "--model", model, "--input", "rgb.png", "--output", "o5.png"], in: dir)
            #expect(tinyImage.status != 0 && tinyImage.stderr.contains("smaller"), "\(tinyImage.stderr)")
        }
    }
}
