import Foundation
import Testing
import Unroll
import UnrollCore
import UnrollIO

/// The one model file (`unroll-model/2`): every model kind round-trips to the same model and the same
/// bytes, NumPy reads what the schema says, version-1 files load, and bad files get one clear error.
@Suite struct ModelFileTests {
    static func normal(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = Random(seed: seed)
        return Tensor.normal(shape, rng: &rng)
    }

    /// One model of each kind, each with the settings that kind uses.
    static func models() throws -> [String: UnrollModel] {
        let dense = try UnrolledAutoencoder(
            dictionary: DenseDictionary(weights: normal([6, 10], seed: 1)),
            encoder: UnrolledEncoder(layers: 7, algorithm: .fista, threshold: .hard, lambda: .scalar(0.3),
                                     step: .inverseLipschitz(iterations: 40, seed: 5), tolerance: 1e-4),
            beta: 0.75)
        let perAtom = try UnrolledAutoencoder(
            dictionary: DenseDictionary(weights: normal([4, 5], seed: 2)),
            encoder: UnrolledEncoder(layers: 3, threshold: .nonNegative, lambda: .perAtom([0.1, 0.2, 0.3, 0.4]), step: .fixed(0.2)))
        let spikes = try SpikeModel(filters: normal([3, 2, 9], seed: 3), lambdas: [1.5, 2, 2.5], sigma: 0.2, layers: 12,
                                    threshold: .soft, alpha: 0.05).autoencoder()
        let net = try CRsAE2DNetwork(filters: [normal([4, 1, 5, 5], seed: 4), normal([4, 1, 5, 5], seed: 5), normal([4, 1, 5, 5], seed: 6)],
                                     thresholds: [0.01, 0.02, 0.03, 0.04], stride: 2, layers: 6, lipschitz: 7,
                                     layerGains: Tensor(shape: [6, 4], data: (0..<24).map { 0.5 + Float($0) / 24 }))
        let untied = try net.autoencoder(height: 17, width: 21, em: EMLambda(lambdas: [1, 2, 3, 4], sigma: 0.1), shifts: .grid(1))
        let pudle2d = try UnrolledAutoencoder(
            dictionary: Convolution2DDictionary(filters: normal([3, 1, 4, 4], seed: 7), stride: 3, height: 13, width: 13),
            encoder: UnrolledEncoder(layers: 4, lambda: .scalar(0.05), step: .fixed(0.1)))
        let vsc = VSCModel(generator: .linear, state: TrainerCheckpoint(tensors: ["dictionary": normal([3, 4], seed: 8)],
                                                                       metadata: ["vsc.family": "gaussian"]))
        var lattice = try net.autoencoder(height: 9, width: 11, adaptiveSigma: 0.1, shifts: .lattice(3),
                                          nonLocal: NonLocalMeans(strength: 0.125, patchRadius: 2, searchRadius: 7))
        lattice.collaborative = try CollaborativeFilter(weight: 0.375, threshold: 2.5, wienerWeight: 0.625, wienerThreshold: 0.75, groupSize: 8,
                                                        searchRadius: 9, step: 2)
        return ["dense": .dense(dense), "dense-per-atom": .dense(perAtom), "conv1d": .conv1d(spikes),
                "conv2d-untied": .conv2d(untied), "conv2d": .conv2d(pudle2d), "conv2d-lattice": .conv2d(lattice), "vsc": .vsc(vsc)]
    }

    static func same<Op: DictionaryOperator & Equatable>(_ a: UnrolledAutoencoder<Op>, _ b: UnrolledAutoencoder<Op>) -> Bool {
        a.dictionary == b.dictionary && a.analysis == b.analysis && a.synthesis == b.synthesis && a.encoder == b.encoder
            && a.beta == b.beta && a.em == b.em && a.shiftAverage == b.shiftAverage && a.shifts == b.shifts
            && a.adaptiveSigma == b.adaptiveSigma && a.nonLocal == b.nonLocal && a.collaborative == b.collaborative
    }

    static func same(_ a: UnrollModel, _ b: UnrollModel) -> Bool {
        switch (a, b) {
        case let (.dense(x), .dense(y)): return same(x, y)
        case let (.conv1d(x), .conv1d(y)): return same(x, y)
        case let (.conv2d(x), .conv2d(y)): return same(x, y)
        case let (.vsc(x), .vsc(y)): return x.generator == y.generator && x.state == y.state
        default: return false
        }
    }

    @Test func everyKindRoundTripsToTheSameModelAndBytes() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        for (name, model) in try Self.models() {
            let path = dir.file(name + ".safetensors")
            try ModelFile(model: model, info: ["training.step": "12", "data.file": "x.npy", "stray": "dropped"]).write(to: path)
            let back = try ModelFile.read(path)
            #expect(Self.same(back.model, model), "\(name)")
            if case .vsc = model {} else { #expect(back.info == ["training.step": "12", "data.file": "x.npy"], "\(name): \(back.info)") }
            try back.write(to: dir.file(name + "-again.safetensors"))
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(contentsOf: URL(fileURLWithPath: dir.file(name + "-again.safetensors"))),
                    "\(name): writing the read model gave other bytes")
        }
    }

    /// NumPy, reading the bytes by the safetensors spec, finds the schema's tensors and keys.
    @Test func numpyReadsTheSchema() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let models = try Self.models()
        try ModelFile(model: models["conv2d-untied"]!).write(to: dir.file("untied.safetensors"))
        try ModelFile(model: models["dense"]!).write(to: dir.file("dense.safetensors"))
        try ModelFile(model: models["conv2d-lattice"]!).write(to: dir.file("conv2d-lattice.safetensors"))
        guard case let .conv2d(untied) = models["conv2d-untied"]!, case let .dense(dense) = models["dense"]! else { return }
        try Npy.write(untied.analysis!.weights, to: dir.file("we.npy"))
        try Npy.write(dense.dictionary.weights, to: dir.file("w.npy"))
        try Python.run("""
            import json, struct
            def load(path):
                raw = open(path, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
                header = json.loads(raw[8:8 + n]); meta = header.pop("__metadata__")
                return meta, {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], "<f4").reshape(v["shape"])
                              for k, v in header.items() if v["dtype"] == "F32"}
            meta, t = load("untied.safetensors")
            assert not any(k.startswith("model.non_local") for k in meta), meta
            assert meta["format"] == "unroll-model/2" and meta["model.kind"] == "conv2d", meta
            assert sorted(t) == ["analysis", "dictionary", "em.lambda", "lambda", "layer_gains", "synthesis"], sorted(t)
            assert np.allclose(t["layer_gains"], 0.5 + np.arange(24).reshape(6, 4) / 24)
            assert t["dictionary"].shape == (4, 1, 5, 5) and np.array_equal(t["analysis"], np.load("we.npy"))
            assert np.allclose(t["lambda"], [0.01, 0.02, 0.03, 0.04]) and np.array_equal(t["em.lambda"], [1, 2, 3, 4])
            assert meta["encoder.lambda"] == "per-atom" and meta["encoder.lambda_role"] == "threshold", meta
            assert (meta["operator.stride"], meta["operator.height"], meta["operator.width"]) == ("2", "17", "21")
            assert meta["encoder.algorithm"] == "fista" and meta["encoder.layers"] == "6" and meta["model.shift_average"] == "true"
            assert meta["model.shift_phases"] == "1" and "model.shift_lattice" not in meta, meta
            meta, t = load("conv2d-lattice.safetensors")
            assert meta["model.shift_lattice"] == "3" and "model.shift_phases" not in meta, meta
            assert (meta["model.non_local"], meta["model.non_local_patch"], meta["model.non_local_window"]) == ("0.125", "5", "15"), meta
            assert meta["model.adaptive_sigma"] == "0.1", meta
            keys = ("", "_threshold", "_group", "_window", "_step", "_wiener", "_wiener_threshold")
            assert [meta["model.collaborative" + k] for k in keys] == ["0.375", "2.5", "8", "19", "2", "0.625", "0.75"], meta
            assert not any(k.startswith("model.collaborative") for k in load("untied.safetensors")[0]), meta
            meta, t = load("dense.safetensors")
            assert meta["model.kind"] == "dense" and sorted(t) == ["dictionary"] and np.array_equal(t["dictionary"], np.load("w.npy"))
            assert (meta["encoder.step"], meta["encoder.power_iterations"], meta["encoder.power_seed"]) == ("auto", "40", "5")
            assert (meta["encoder.threshold"], meta["encoder.lambda"], meta["encoder.beta"], meta["encoder.lambda_role"]) == ("hard", "0.3", "0.75", "penalty")
            assert float(meta["encoder.tolerance"]) == np.float32(1e-4)
            """, in: dir.path)
    }

    /// Files of earlier releases load into the same models (written here with their keys).
    @Test func versionOneFilesLoad() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let w = Self.normal([5, 8], seed: 11)
        try Safetensors.write([("W", w), ("lambda", Tensor(shape: [5], data: [0.1, 0.2, 0.3, 0.4, 0.5]))], metadata: [
            "format": "unroll-model/1", "model.kind": "dense-dictionary", "encoder.algorithm": "ista", "encoder.layers": "9",
            "encoder.threshold": "non-negative", "encoder.lambda": "per-atom (tensor lambda)", "encoder.step": "0.2",
            "encoder.beta": "0.5", "training.step": "3"], to: dir.file("dense.safetensors"))
        let dense = try ModelFile.read(dir.file("dense.safetensors"))
        guard case let .dense(d) = dense.model else { Issue.record("dense v1 read as \(dense.model.kind)"); return }
        #expect(d.dictionary.weights == w && d.encoder.layers == 9 && d.encoder.threshold == .nonNegative && d.beta == 0.5)
        #expect(d.encoder.lambda == .perAtom([0.1, 0.2, 0.3, 0.4, 0.5]) && d.encoder.step == .fixed(0.2) && dense.info == ["training.step": "3"])

        // A tied CRsAE model of version 1: penalty b·L at α, shift-averaged.
        let h = Self.normal([3, 1, 5, 5], seed: 12)
        try Safetensors.write([("W", h)], metadata: [
            "format": "unroll-model/1", "model.kind": "conv2d-dictionary", "stride": "2", "encoder.algorithm": "fista",
            "encoder.layers": "4", "encoder.threshold": "soft", "encoder.lambda": "0.1,0.2,0.3", "encoder.step": "0.25",
            "training.family": "crsae"], to: dir.file("tied.safetensors"))
        guard case let .conv2d(tied) = try ModelFile.read(dir.file("tied.safetensors")).model else { Issue.record("tied"); return }
        #expect(tied.dictionary.weights == h && tied.dictionary.stride == 2 && tied.shiftAverage && tied.isTied)
        #expect(tied.encoder.lambda == .perAtom([0.1, 0.2, 0.3]) && tied.encoder.lambdaIsPenalty && tied.encoder.step == .fixed(0.25))

        let banks = [Self.normal([3, 1, 5, 5], seed: 13), Self.normal([3, 1, 5, 5], seed: 14), Self.normal([3, 1, 5, 5], seed: 15)]
        try Safetensors.write([("H", banks[0]), ("We", banks[1]), ("Wd", banks[2]), ("b", Tensor(shape: [3], data: [0.01, 0.02, 0.03]))],
                              metadata: ["model.kind": "crsae2d-untied", "training.family": "crsae", "stride": "2", "layers": "5",
                                         "lipschitz": "8"], to: dir.file("untied.safetensors"))
        guard case let .conv2d(untied) = try ModelFile.read(dir.file("untied.safetensors")).model else { Issue.record("untied"); return }
        #expect(untied.dictionary.weights == banks[0] && untied.analysis?.weights == banks[1] && untied.synthesis?.weights == banks[2])
        #expect(untied.encoder.lambda == .perAtom([0.01, 0.02, 0.03]) && !untied.encoder.lambdaIsPenalty && untied.encoder.step == .fixed(1 / 8))

        let filters = Self.normal([2, 1, 7], seed: 16)
        try Npz.write([("filters", filters), ("lambda", Tensor(shape: [2], data: [3, 4])), ("sigma", Tensor(shape: [1], data: [0.5])),
                       ("alpha", Tensor(shape: [1], data: [0.1])), ("layers", Tensor(shape: [1], data: [20])),
                       ("threshold", Tensor(shape: [1], data: [1]))], to: dir.file("spikes.npz"))
        guard case let .conv1d(spikes) = try ModelFile.read(dir.file("spikes.npz")).model else { Issue.record("spikes"); return }
        let model = try SpikeModel(spikes)
        #expect(model == (try SpikeModel(filters: filters, lambdas: [3, 4], sigma: 0.5, layers: 20, threshold: .nonNegative, alpha: 0.1)))
    }

    /// A file may not ask for unbounded work or hold contradictions; each error names the entry.
    @Test func badFilesGetOneClearError() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.file("m.safetensors")
        try ModelFile(model: try Self.models()["conv2d-untied"]!).write(to: path)
        let good = try Safetensors.read(path)
        func expectError(_ change: (inout [String: String], inout [(name: String, tensor: Tensor)]) -> Void, _ words: String) throws {
            var meta = good.metadata
            var tensors = good.tensors.map { (name: $0.name, tensor: $0.array.tensor) }
            change(&meta, &tensors)
            try Safetensors.write(tensors, metadata: meta, to: path)
            do {
                _ = try ModelFile.read(path)
                Issue.record("no error for: \(words)")
            } catch let e as UnrollIOError {
                #expect(e.description.hasPrefix(path + ": ") && e.description.contains(words), "\(e.description)")
            }
        }
        try expectError({ m, _ in m["encoder.layers"] = "1000000000" }, "encoder.layers is '1000000000', expected an integer in 1…100000")
        try expectError({ m, _ in m["format"] = "unroll-model/3" }, "model format 'unroll-model/3' is not one this version reads")
        try expectError({ m, _ in m["model.kind"] = "conv3d" }, "model.kind is 'conv3d'")
        try expectError({ m, _ in m["encoder.step"] = "nan" }, "encoder.step is 'nan', expected a finite number")
        try expectError({ m, _ in m["encoder.lambda_role"] = nil }, "encoder.lambda_role is missing")
        try expectError({ _, t in t.removeAll { $0.name == "lambda" } }, "no tensor 'lambda'")
        try expectError({ _, t in t = t.map { $0.name == "lambda" ? ($0.name, Tensor(shape: [3], data: [1, 1, 1])) : $0 } },
                        "tensor lambda has shape [3], expected [4]")
        try expectError({ _, t in t = t.map { $0.name == "lambda" ? ($0.name, Tensor(shape: [4], data: [1, -1, 1, 1])) : $0 } },
                        "the model: ")
        try expectError({ _, t in t = t.map { $0.name == "analysis" ? ($0.name, Tensor(shape: [4, 1, 3, 3], data: .init(repeating: 0, count: 36))) : $0 } },
                        "the analysis bank's weights [4, 1, 3, 3] differ")
        try expectError({ m, _ in m["operator.stride"] = "0" }, "operator.stride is '0'")
        try expectError({ m, _ in m["model.shift_phases"] = "0" }, "model.shift_phases is '0', expected an integer in 1…4096")
        try expectError({ m, _ in (m["model.shift_phases"], m["model.shift_lattice"]) = (nil, "-8") }, "model.shift_lattice is '-8', expected an integer in 1…")
        try expectError({ m, _ in m["model.shift_lattice"] = "8" }, "both model.shift_phases and model.shift_lattice")
        func nonLocal(_ strength: String, _ patch: String?, _ window: String?) -> (inout [String: String], inout [(name: String, tensor: Tensor)]) -> Void {
            { m, _ in (m["model.non_local"], m["model.non_local_patch"], m["model.non_local_window"]) = (strength, patch, window) }
        }
        try expectError(nonLocal("0.1", "6", "23"), "model.non_local: invalid argument: the non-local means' patch and window sides must be odd, the patch 1…129 and the window 3…129, got 6 and 23")
        try expectError(nonLocal("0.1", "7", nil), "model.non_local_window is missing")
        try expectError(nonLocal("0.1", "7", "1000001"), "model.non_local_window is '1000001', expected an integer in 3…129")
        try expectError(nonLocal("-0.1", "7", "23"), "model.non_local: invalid argument: the non-local means' strength h/σ must be finite and > 0, got -0.1")
        try expectError(nonLocal("inf", "7", "23"), "model.non_local is 'inf', expected a finite number")
        func collaborative(_ weight: String, _ group: String, _ window: String?, _ step: String) -> (inout [String: String], inout [(name: String, tensor: Tensor)]) -> Void {
            { m, _ in
                (m["model.collaborative"], m["model.collaborative_threshold"], m["model.collaborative_group"]) = (weight, "2.7", group)
                (m["model.collaborative_window"], m["model.collaborative_step"]) = (window, step)
            }
        }
        try expectError(collaborative("0.3", "12", "25", "3"), "model.collaborative: invalid argument: the collaborative filter needs a group size that is a power of two ≤ 32")
        try expectError(collaborative("0.3", "16", "24", "3"), "model.collaborative_window is 24, expected an odd side")
        try expectError(collaborative("0.3", "16", nil, "3"), "model.collaborative_window is missing")
        try expectError(collaborative("0.3", "16", "25", "9"), "model.collaborative_step is '9', expected an integer in 1…4")
        try expectError(collaborative("1.5", "16", "25", "3"), "model.collaborative: invalid argument: the collaborative filter's weight must be in (0, 1], got 1.5")
        func wiener(_ share: String, _ mu: String?) -> (inout [String: String], inout [(name: String, tensor: Tensor)]) -> Void {
            { m, t in
                collaborative("0.3", "16", "25", "3")(&m, &t)
                (m["model.collaborative_wiener"], m["model.collaborative_wiener_threshold"]) = (share, mu)
            }
        }
        try expectError(wiener("0.5", nil), "model.collaborative_wiener_threshold is missing")
        try expectError(wiener("1.5", "0.6"), "model.collaborative: invalid argument: the collaborative filter's second-step share must be in [0, 1], got 1.5")
        try expectError(wiener("0.5", "-1"), "model.collaborative: invalid argument: the collaborative filter's second-step μ must be finite and ≥ 0, got -1.0")
        try expectError({ m, _ in m["encoder.layers"] = "5" }, "tensor layer_gains is [6, 4], expected [5, 4]")
        try expectError({ _, t in t = t.map { $0.name == "layer_gains" ? ($0.name, Tensor(repeating: -1, shape: [6, 4])) : $0 } },
                        "tensor layer_gains must be finite and ≥ 0")
        // 10⁹ power iterations of a step computed at load ran without bound once.
        try expectError({ m, _ in m["encoder.step"] = "auto"; m["encoder.power_seed"] = "1"; m["encoder.power_iterations"] = "1000000000" },
                        "encoder.power_iterations is '1000000000', expected an integer in 1…100000")
    }

    /// The model value itself: a conv2d model is resized to each image, tied decode = D, untied = the synthesis bank.
    @Test func autoencoderEncodesAnyImageSizeAndDecodesWithItsDecoder() throws {
        guard case let .conv2d(untied) = try Self.models()["conv2d-untied"]! else { return }
        let image = Self.normal([2, 19, 23], seed: 20)
        let (codes, reconstruction) = try untied.reconstruct(image)
        let wd = try untied.synthesis!.resized(height: 19, width: 23)
        #expect(reconstruction == wd.apply(codes))
        #expect(try untied.decode(codes, signalShape: [2, 19, 23]) == reconstruction)
        let h = try untied.dictionary.resized(height: 19, width: 23), we = try untied.analysis!.resized(height: 19, width: 23)
        #expect(codes == (try untied.encoder.encode(image, with: h, analysis: we)))
        #expect(throws: UnrollError.self) { try untied.decode(codes, signalShape: [2, 30, 30]) }
    }
}
