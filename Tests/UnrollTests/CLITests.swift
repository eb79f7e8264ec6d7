import Foundation
import Testing
import Unroll
import UnrollCore
import UnrollIO

/// The `unroll` verbs synth, train, encode and demo, run as the built binary (found next to the test
/// bundle, or at $UNROLL_BIN), on problems small enough for a second or two each.
@Suite(.needsCLI) struct CLITests {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// The `unroll` executable built alongside the tests.
    static let binary: String? = {
        if let env = ProcessInfo.processInfo.environment["UNROLL_BIN"] { return env }
        var dirs = [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()]
        dirs += Bundle.allBundles.map { $0.bundleURL.deletingLastPathComponent() }
        dirs += [Bundle.main.bundleURL]
        for dir in dirs {
            // The bundle may sit inside the bin directory (Linux: UnrollPackageTests.xctest) or one level deeper.
            for candidate in [dir, dir.deletingLastPathComponent()] {
                let path = candidate.appendingPathComponent("unroll").path
                if FileManager.default.isExecutableFile(atPath: path) { return path }
            }
        }
        return nil
    }()

    /// Runs `unroll args` in `dir` (with `environment` added; under `bash -c "<shell>; exec unroll …"`
    /// when `shell` is given, e.g. a ulimit).
    static func run(_ args: [String], in dir: URL, environment: [String: String] = [:], shell: String? = nil) throws -> Result {
        let path = try #require(binary, "the unroll binary was not found next to the tests; build it (swift build --build-tests) or set UNROLL_BIN")
        let process = Process()
        if let shell {
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = ["-c", shell + "; exec \"$0\" \"$@\"", path] + args
        } else {
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = args
        }
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        process.currentDirectoryURL = dir
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read before waiting so a full pipe cannot block the child.
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                      stderr: String(decoding: e, as: UTF8.self))
    }

    /// Runs and requires success (prints the output on failure).
    @discardableResult
    static func ok(_ args: [String], in dir: URL) throws -> Result {
        let r = try run(args, in: dir)
        #expect(r.status == 0, "unroll \(args.joined(separator: " ")) failed: \(r.stderr)")
        return r
    }

    static func tempDir() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("unroll-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func arrays(_ url: URL) throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (name, array) in try DataFile.read(url.path).arrays { out[name] = array.tensor }
        return out
    }

    /// A small problem (m 16 — a perfect square, so atoms.png is drawn — p 20, n 60, s 2).
    static func synth(in dir: URL, seed: Int = 3) throws {
        try ok(["synth", "--m", "16", "--p", "20", "--n", "60", "--s", "2", "--seed", String(seed), "--output", "data.npz"], in: dir)
    }

    static let trainBase = ["train", "--data", "data.npz", "--init", "data.npz", "--truth", "data.npz",
                            "--layers", "15", "--step", "0.2", "--lambda", "0.1", "--lr", "1e-2", "--batch", "16"]

    /// The log's rows as numbers (header dropped).
    static func logRows(_ url: URL) throws -> [[Double]] {
        let text = try String(contentsOf: url, encoding: .utf8)
        return text.split(separator: "\n").dropFirst().map { $0.split(separator: ",").map { Double($0) ?? .nan } }
    }

    // MARK: synth

    @Test func synthWritesConsistentGroundTruth() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try Self.ok(["synth", "--m", "10", "--p", "15", "--n", "40", "--s", "3", "--amplitude", "uniform:1,2",
                             "--signs", "per-example", "--delta", "0.05", "--seed", "9", "--output", "a.npz"], in: dir)
        let a = try Self.arrays(dir.appendingPathComponent("a.npz"))
        let (x, w, z, w0) = (try #require(a["X"]), try #require(a["D_true"]), try #require(a["Z_true"]), try #require(a["D_init"]))
        #expect(x.shape == [40, 10] && w.shape == [15, 10] && z.shape == [40, 15] && w0.shape == [15, 10])
        // X = Z·W checked by a naive loop; s non-zeros per row with one shared sign and |z| in [1, 2].
        for i in 0..<40 {
            for j in 0..<10 {
                var s = 0.0
                for k in 0..<15 { s += Double(z[i, k]) * Double(w[k, j]) }
                #expect(abs(s - Double(x[i, j])) < 1e-5)
            }
            let row = (0..<15).map { z[i, $0] }.filter { $0 != 0 }
            #expect(row.count == 3)
            #expect(Set(row.map { $0 > 0 }).count == 1)
            #expect(row.allSatisfy { abs($0) >= 1 && abs($0) <= 2 })
        }
        for norm in w.rowNorms() + w0.rowNorms() { #expect(abs(norm - 1) < 1e-5) }
        // The printed initial error is the relative Frobenius error of D_init.
        let error = DictionaryMetrics.relativeFrobeniusError(w0, w)
        #expect(r.stdout.contains("= " + String(format: "%.4g", error)), "\(r.stdout)")
        #expect(error > 0.05 && error < 0.4)
        // Same seed, same bytes.
        try Self.ok(["synth", "--m", "10", "--p", "15", "--n", "40", "--s", "3", "--signs", "per-example",
                     "--delta", "0.05", "--seed", "9", "--output", "b.npz"], in: dir)
        #expect(try Data(contentsOf: dir.appendingPathComponent("a.npz")) == Data(contentsOf: dir.appendingPathComponent("b.npz")))
    }

    // MARK: train

    @Test func trainWritesModelLogCheckpointAndFigures() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.synth(in: dir)
        let r = try Self.ok(Self.trainBase + ["--steps", "6", "--checkpoint-every", "4", "--output", "run"], in: dir)
        let run = dir.appendingPathComponent("run")
        for file in ["model.safetensors", "checkpoint.safetensors", "log.csv", "curve.png", "atoms.png"] {
            #expect(FileManager.default.fileExists(atPath: run.appendingPathComponent(file).path), "\(file)")
        }
        let header = try String(contentsOf: run.appendingPathComponent("log.csv"), encoding: .utf8).split(separator: "\n")[0]
        #expect(header == "step,epoch,loss,rec,l1,dict_error,code_error,beta,seconds")
        let rows = try Self.logRows(run.appendingPathComponent("log.csv"))
        #expect(rows.map { $0[0] } == [1, 2, 3, 4, 5, 6])
        #expect(rows.map { $0[1] } == [0, 0, 0, 0, 1, 1])   // 60 examples in batches of 16: 4 steps per epoch

        // The model: W with unit atoms, the settings, and a last logged error equal to W's error to D_true.
        let model = try Safetensors.read(run.appendingPathComponent("model.safetensors").path)
        let w = try #require(model["dictionary"]?.tensor)
        let truth = try #require(try Self.arrays(dir.appendingPathComponent("data.npz"))["D_true"])
        #expect(w.shape == [20, 16])
        for norm in w.rowNorms() { #expect(abs(norm - 1) < 1e-5) }
        #expect(abs(DictionaryMetrics.relativeFrobeniusError(w, truth) - rows.last![5]) < 1e-6)
        #expect(rows.last![5] < rows.first![5])
        let meta = model.metadata
        #expect(meta["format"] == "unroll-model/2" && meta["model.kind"] == "dense")
        #expect(meta["model.layout"]?.hasPrefix("dictionary [p, m], atoms as rows (X ≈ Z·W)") == true)
        #expect(meta["encoder.layers"] == "15" && meta["encoder.lambda"] == "0.1" && meta["encoder.step"] == "0.2")
        #expect(meta["encoder.threshold"] == "soft" && meta["encoder.algorithm"] == "ista")
        #expect(meta["training.step"] == "6" && meta["data.shape"] == "[60, 16]")
        // The final checkpoint is at step 6; the summary line names the errors.
        let checkpoint = try Safetensors.read(run.appendingPathComponent("checkpoint.safetensors").path)
        #expect(checkpoint.metadata["trainer.step"] == "6")
        #expect(checkpoint["dictionary"]?.tensor == w)
        #expect(r.stdout.contains("g_ae-ls: step 6") && r.stdout.contains("dict error"))
    }

    @Test func resumeContinuesBitIdentically() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.synth(in: dir)
        // β decay and shuffling make the resumed state depend on the step, the epoch position and the RNG.
        let common = Self.trainBase + ["--gradient", "lasso", "--beta-decay", "--beta-decrement", "0.05", "--beta-every", "2",
                                       "--checkpoint-every", "3"]
        try Self.ok(common + ["--steps", "10", "--output", "straight"], in: dir)
        try Self.ok(common + ["--steps", "5", "--output", "split"], in: dir)
        let resumed = try Self.ok(common + ["--steps", "10", "--output", "split", "--resume"], in: dir)
        #expect(resumed.stdout.contains("step 10"))
        func bytes(_ run: String, _ file: String) throws -> Data { try Data(contentsOf: dir.appendingPathComponent("\(run)/\(file)")) }
        #expect(try bytes("straight", "model.safetensors") == bytes("split", "model.safetensors"))
        #expect(try bytes("straight", "checkpoint.safetensors") == bytes("split", "checkpoint.safetensors"))
        // The appended log equals the uninterrupted one, except for the timings.
        let a = try Self.logRows(dir.appendingPathComponent("straight/log.csv")).map { Array($0.dropLast()) }
        let b = try Self.logRows(dir.appendingPathComponent("split/log.csv")).map { Array($0.dropLast()) }
        #expect(a.count == 10 && a.map { $0[0] } == b.map { $0[0] })
        #expect(zip(a, b).allSatisfy { $0.elementsEqual($1) { $0 == $1 || ($0.isNaN && $1.isNaN) } })
        #expect(Set(a.map { $0[7] }).count > 1)   // β did change
        // The resumed run's clock continues the first part's.
        let seconds = try Self.logRows(dir.appendingPathComponent("split/log.csv")).map { $0.last! }
        #expect(zip(seconds, seconds.dropFirst()).allSatisfy { $0 <= $1 }, "\(seconds)")
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("split/curve.png").path))

        // A run that logged steps after its last checkpoint (a crash): those rows are dropped and redone.
        try Self.ok(common + ["--steps", "3", "--output", "crash"], in: dir)
        let early = try bytes("crash", "checkpoint.safetensors")
        try Self.ok(common + ["--steps", "5", "--output", "crash", "--resume"], in: dir)
        try early.write(to: dir.appendingPathComponent("crash/checkpoint.safetensors"))
        try Self.ok(common + ["--steps", "10", "--output", "crash", "--resume"], in: dir)
        #expect(try bytes("straight", "model.safetensors") == bytes("crash", "model.safetensors"))
        let c = try Self.logRows(dir.appendingPathComponent("crash/log.csv")).map { Array($0.dropLast()) }
        #expect(c.map { $0[0] } == (1...10).map(Double.init))
        #expect(zip(a, c).allSatisfy { $0.elementsEqual($1) { $0 == $1 || ($0.isNaN && $1.isNaN) } })

        // Resuming at another --threads goes on, with a note that the bits are no longer the uninterrupted run's.
        #expect(!resumed.stderr.contains("--threads"), "\(resumed.stderr)")
        let moved = try Self.ok(common + ["--steps", "11", "--output", "split", "--resume", "--threads", "1"], in: dir)
        #expect(moved.stderr.contains("was written at --threads 2; at --threads 1"), "\(moved.stderr)")

        // Resuming with other settings is refused, naming the setting.
        let wrong = try Self.run(common + ["--steps", "12", "--layers", "7", "--output", "split", "--resume"], in: dir)
        #expect(wrong.status != 0 && wrong.stderr.contains("encoder.layers"), "\(wrong.stderr)")
    }

    @Test func divergenceStopsWithTheLastGoodCheckpoint() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.synth(in: dir)
        // Adam moves each weight by about lr per step: with lr 1e7 the first update already blows up.
        let r = try Self.run(Self.trainBase + ["--steps", "5", "--lr", "1e7", "--output", "run"], in: dir)
        #expect(r.status != 0)
        #expect(r.stderr.hasPrefix("Error: training diverged at step 1:") && r.stderr.contains("checkpoint.safetensors"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
        let checkpoint = try Safetensors.read(dir.appendingPathComponent("run/checkpoint.safetensors").path)
        #expect(checkpoint.metadata["trainer.step"] == "0")
        let initial = try #require(try Self.arrays(dir.appendingPathComponent("data.npz"))["D_init"])
        #expect(checkpoint["dictionary"]?.tensor == initial)
    }

    @Test(arguments: [
        (["--data", "missing.npy"], "missing.npy: no such file"),
        (["--data", "data.npz:Y"], "has no array 'Y'"),
        (["--lambda", "-1"], "λ must be finite and ≥ 0, got -1"),
        (["--layers", "0"], "layers T must be ≥ 1, got 0"),
        (["--step", "0"], "step α must be finite and > 0, got 0"),
        (["--init", "other.npz"], "shape mismatch: --init other.npz:D_init is [20, 12]"),
        (["--init", "data.npz:Z_true"], "shape mismatch: --init data.npz:Z_true is [60, 20]"),
        (["--data", "nan.npy"], "contains NaN or Inf (first at row 2, column 3)"),
        (["--data", "inf.npy"], "contains NaN or Inf"),
        (["--truth", "other.npz"], "shape mismatch: --truth other.npz:D_true"),
        (["--lambda-per-atom", "short.npy"], "has 3 values, the dictionary has p = 20 atoms"),
        (["--patch", "3x3"], "--patch 3x3 has 9 pixels"),
        (["--epochs", "2"], "give --epochs or --steps, not both"),
        (["--resume"], "nothing to resume"),
    ] as [([String], String)])
    func badInputGivesOneClearLine(extra: [String], expected: String) throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.synth(in: dir)
        try Self.ok(["synth", "--m", "12", "--p", "20", "--n", "60", "--s", "2", "--seed", "1", "--output", "other.npz"], in: dir)
        var bad = Tensor(repeating: 1, shape: [5, 16])
        bad[2, 3] = .nan
        try Npy.write(bad, to: dir.appendingPathComponent("nan.npy").path)
        bad[2, 3] = .infinity
        try Npy.write(bad, to: dir.appendingPathComponent("inf.npy").path)
        try Npy.write(Tensor(shape: [3], data: [0.1, 0.2, 0.3]), to: dir.appendingPathComponent("short.npy").path)

        // Later options override the base ones (ArgumentParser keeps the last value).
        var base = Self.trainBase
        if extra.contains("--lambda-per-atom") { base.removeAll { $0 == "--lambda" || $0 == "0.1" } }
        let r = try Self.run(base + ["--steps", "2", "--output", "run"] + extra, in: dir)
        #expect(r.status != 0, "\(extra) should fail")
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(extra): expected one line, got \(r.stderr)")
        #expect(r.stderr.hasPrefix("Error: ") && r.stderr.contains(expected), "\(extra): \(r.stderr)")
    }

    // MARK: encode

    @Test func encodeMatchesTheLibraryEncoder() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.synth(in: dir)
        try Self.ok(Self.trainBase + ["--steps", "3", "--encoder", "fista", "--output", "run"], in: dir)
        let r = try Self.ok(["encode", "--model", "run/model.safetensors", "--data", "data.npz", "--output", "z.npy"], in: dir)
        let z = try Npy.read(dir.appendingPathComponent("z.npy").path).tensor
        let w = try #require(try Safetensors.read(dir.appendingPathComponent("run/model.safetensors").path)["dictionary"]?.tensor)
        let x = try #require(try Self.arrays(dir.appendingPathComponent("data.npz"))["X"])
        let encoder = UnrolledEncoder(layers: 15, algorithm: .fista, lambda: .scalar(0.1), step: .fixed(0.2))
        let expected = try encoder.encode(x, with: try DenseDictionary(weights: w))
        #expect(z == expected)
        let zeros = 100 * Double(z.zeroCount()) / Double(z.count)
        #expect(r.stdout.contains("zeros \(String(format: "%.1f", zeros))%"), "\(r.stdout)")
        // Reconstruction error as printed, from a naive product.
        var num = 0.0, den = 0.0
        for i in 0..<x.rows {
            for j in 0..<x.cols {
                var s = 0.0
                for k in 0..<w.rows { s += Double(z[i, k]) * Double(w[k, j]) }
                num += (s - Double(x[i, j])) * (s - Double(x[i, j]))
                den += Double(x[i, j]) * Double(x[i, j])
            }
        }
        #expect(r.stdout.contains("‖X − X̂‖/‖X‖ = " + String(format: "%.4g", (num / den).squareRoot())), "\(r.stdout)")

        // --layers overrides T; bad inputs give one line.
        try Self.ok(["encode", "--model", "run/model.safetensors", "--data", "data.npz", "--output", "z5.npz", "--layers", "5"], in: dir)
        let z5 = try #require(try Self.arrays(dir.appendingPathComponent("z5.npz"))["Z"])
        var short = encoder
        short.layers = 5
        #expect(z5 == (try short.encode(x, with: try DenseDictionary(weights: w))))
        for (args, expected) in [
            (["--model", "run/checkpoint.safetensors", "--data", "data.npz"], "model.kind is missing"),
            (["--model", "data.npz", "--data", "data.npz"], "--model: data.npz: not a model file"),
            (["--model", "run/model.safetensors", "--data", "data.npz:Z_true"], "shape mismatch: --data data.npz:Z_true has rows of 20 values"),
            (["--model", "run/model.safetensors", "--data", "data.npz", "--layers", "0"], "layers T must be ≥ 1"),
            // 10⁹ layers ran without bound once.
            (["--model", "run/model.safetensors", "--data", "data.npz", "--layers", "1000000000"], "--layers: invalid argument: encoder layers T must be ≤ 100000"),
        ] {
            let bad = try Self.run(["encode"] + args + ["--output", "bad.npy"], in: dir)
            #expect(bad.status != 0, "\(args) should fail")
            #expect(bad.stderr.split(separator: "\n").count == 1 && bad.stderr.contains(expected), "\(args): \(bad.stderr)")
        }
    }

    /// `encode --exact`: the lasso minimum at the model's λ, what the FISTA encoder converges to with
    /// many layers; refused where the layers are not steps on that lasso, or with --layers.
    @Test func encodeExactIsTheLimitOfTheLayers() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.synth(in: dir)
        try Self.ok(Self.trainBase + ["--steps", "3", "--encoder", "fista", "--output", "run"], in: dir)
        let r = try Self.ok(["encode", "--model", "run/model.safetensors", "--data", "data.npz", "--output", "ze.npy", "--exact"], in: dir)
        #expect(r.stdout.contains("the exact lasso codes at λ 0.1, homotopy"), "\(r.stdout)")
        try Self.ok(["encode", "--model", "run/model.safetensors", "--data", "data.npz", "--output", "zl.npy", "--layers", "3000"], in: dir)
        let exact = try Npy.read(dir.appendingPathComponent("ze.npy").path).tensor
        let layers = try Npy.read(dir.appendingPathComponent("zl.npy").path).tensor
        let gap = zip(exact.data, layers.data).map { abs($0 - $1) }.max()!
        #expect(exact.zeroCount() > 0 && gap < 1e-4, "--exact and 3000 FISTA layers differ by \(gap)")
        let hard = Self.trainBase.map { $0 == "--lambda" ? "--tau" : $0 }
        try Self.ok(hard + ["--steps", "2", "--threshold", "hard", "--output", "hard"], in: dir)
        for (args, expected) in [
            (["--model", "run/model.safetensors", "--layers", "5"], "--exact computes the lasso minimum: it takes no --layers or --tolerance"),
            (["--model", "hard/model.safetensors"], "its threshold is hard, not soft"),
        ] {
            let bad = try Self.run(["encode", "--data", "data.npz", "--output", "bad.npy", "--exact"] + args, in: dir)
            #expect(bad.status != 0 && bad.stderr.contains(expected), "\(args): \(bad.stderr)")
        }
    }

    /// The denoising models the package ships, in `denoise-models.json` order (the σ 5–55/255 model
    /// first), each with the σ (/255) from which it serves.
    static let shippedModels: [(path: String, from: Double)] = {
        let resources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Sources/unroll/Resources")
        let list = (try? JSONSerialization.jsonObject(with: Data(contentsOf: resources.appendingPathComponent("denoise-models.json"))) as? [String: Any])?["models"]
        return ((list as? [[String: Any]]) ?? []).map { (resources.appendingPathComponent($0["file"] as! String).standardizedFileURL.path, $0["from_sigma_255"] as! Double) }
    }()
    static var shippedModel: String { shippedModels[0].path }

    /// `info` names the shifts the shipped model averages, 6 of its 64 on a lattice (as `bench denoise` times it),
    /// and its last stages.
    @Test func infoNamesTheShiftsAModelAverages() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try Self.ok(["info", Self.shippedModel], in: dir)
        #expect(r.stdout.contains("denoising: the mean of the encodings of 6 of the 64 shifts (a lattice, 6 phases per axis)"), "\(r.stdout)")
        #expect(r.stdout.contains("denoising, last stage: a non-local means of the estimate, 7×7 patches, 23×23 window, h = 0.1σ"), "\(r.stdout)")
        #expect(r.stdout.contains("λ = 3.0), then a share 0.5 of its second step (μ = 0.6324555)"), "\(r.stdout)")
    }

    /// The shipped models end with their non-local means: --non-local 0.1 (their own) changes nothing,
    /// --non-local 0 and another window change the output; contradictions are refused by name.
    @Test func nonLocalOptionsSetTheStage() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = Random(seed: 9)
        let flat = DenoisingImages.addNoise(Tensor(repeating: 0.5, shape: [30, 40]), sigma: 25 / 255, rng: &rng)   // alike patches
        try PNG.write(Raster(gray: flat), to: dir.appendingPathComponent("in.png").path)
        func output(_ extra: [String], _ name: String) throws -> Data {
            try Self.ok(["denoise", "--input", "in.png", "--sigma", "25/255", "--output", name] + extra, in: dir)
            return try Data(contentsOf: dir.appendingPathComponent(name))
        }
        let shipped = try output([], "a.png")
        #expect(try output(["--non-local", "0.1"], "b.png") == shipped)
        #expect(try output(["--non-local", "0"], "c.png") != shipped)
        #expect(try output(["--non-local-window", "9"], "d.png") != shipped)
        for (args, words) in [(["--non-local-patch", "6"], "patch and window sides must be odd, the patch 1…129 and the window 3…129, got 6 and 23"),
                              (["--non-local", "0", "--non-local-window", "15"], "--non-local 0 turns the stage off"),
                              (["--non-local=-1"], "strength h/σ must be finite and > 0, got -1.0")] {
            let r = try Self.run(["denoise", "--input", "in.png", "--sigma", "25/255", "--output", "x.png"] + args, in: dir)
            #expect(r.status != 0 && r.stderr.contains(words), "\(args): \(r.stderr)")
        }
    }

    /// The shipped model files are in the writer's own form: read and written again, the same bytes.
    @Test func shippedModelsAreInTheWritersForm() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (path, _) in Self.shippedModels {
            let again = dir.appendingPathComponent("again.safetensors").path
            try ModelFile.read(path).write(to: again)
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(contentsOf: URL(fileURLWithPath: again)), "\(path)")
        }
    }

    /// A folder as --input: every PNG denoised into the --output folder, each equal to denoising it
    /// alone; per-image and mean PSNRs against a --clean folder; a missing clean image is one line.
    @Test func denoiseAFolder() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = Self.shippedModel
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("in"), withIntermediateDirectories: true)
        var rng = Random(seed: 4)
        for name in ["a.png", "b.png"] {
            try PNG.write(Raster(gray: Tensor.uniform([40, 52], rng: &rng)), to: dir.appendingPathComponent("in/" + name).path)
        }
        let r = try Self.ok(["denoise", "--model", model, "--input", "in", "--clean", "in", "--add-noise", "0.1", "--output", "out"], in: dir)
        #expect(r.stdout.contains("out/a.png (52×40): PSNR") && r.stdout.contains("denoised 2 images into out") && r.stdout.contains("mean PSNR"), "\(r.stdout)")
        try Self.ok(["denoise", "--model", model, "--input", "out/b-noisy.png", "--output", "b-alone.png"], in: dir)
        try Self.ok(["denoise", "--model", model, "--input", "out", "--output", "again"], in: dir)
        #expect(try Data(contentsOf: dir.appendingPathComponent("b-alone.png")) == Data(contentsOf: dir.appendingPathComponent("again/b-noisy.png")))
        try FileManager.default.removeItem(at: dir.appendingPathComponent("out/b.png"))
        let bad = try Self.run(["denoise", "--model", model, "--input", "in", "--clean", "out", "--output", "x"], in: dir)
        #expect(bad.status == 1 && bad.stderr.split(separator: "\n").count == 1 && bad.stderr.contains("--clean out/b.png: no such file"), "\(bad.stderr)")
    }

    /// An RGB image is denoised channel by channel: each channel of the RGB output equals the gray
    /// output for that channel alone; the PSNR is over all three.
    @Test func denoiseAnRGBImageChannelByChannel() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = Self.shippedModel
        var rng = Random(seed: 6)
        let planes = (0..<3).map { _ in Tensor.uniform([36, 44], rng: &rng) }
        try PNG.write(Raster(planes: planes), to: dir.appendingPathComponent("rgb.png").path)
        let r = try Self.ok(["denoise", "--model", model, "--input", "rgb.png", "--clean", "rgb.png", "--output", "out.png"], in: dir)
        #expect(r.stdout.contains("(44×36, RGB, σ estimated ") && r.stdout.contains("); PSNR"), "\(r.stdout)")
        let out = try PNG.read(dir.appendingPathComponent("out.png").path)
        #expect(out.channels == 3 && out.width == 44 && out.height == 36)
        let rgb = try PNG.read(dir.appendingPathComponent("rgb.png").path).planes()
        for k in 0..<3 {
            try PNG.write(Raster(gray: rgb[k]), to: dir.appendingPathComponent("c\(k).png").path)
            try Self.ok(["denoise", "--model", model, "--input", "c\(k).png", "--output", "d\(k).png"], in: dir)
            let gray = try PNG.read(dir.appendingPathComponent("d\(k).png").path)
            #expect(gray.samples == (0..<(44 * 36)).map { out.samples[$0 * 3 + k] }, "channel \(k)")
        }
    }

    /// Without --model the shipped models denoise. They are noise-adaptive: --sigma sets them (any σ),
    /// and without --sigma the σ is estimated from the image (and printed). Each serves its range of σ
    /// (`denoise-models.json`: the σ 5–55/255 model below 17.5/255, the σ 35 model to 28/255, the σ 50 model
    /// from there). A model trained at one σ refuses another --sigma by name.
    @Test func denoiseWithTheShippedModelAndASigma() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = Self.shippedModel
        var rng = Random(seed: 7)
        try PNG.write(Raster(gray: Tensor.uniform([30, 40], rng: &rng)), to: dir.appendingPathComponent("in.png").path)
        try Self.ok(["denoise", "--input", "in.png", "--sigma", "15/255", "--output", "shipped.png"], in: dir)
        try Self.ok(["denoise", "--model", model, "--input", "in.png", "--sigma", "15/255", "--output", "given.png"], in: dir)
        #expect(try Data(contentsOf: dir.appendingPathComponent("shipped.png")) == Data(contentsOf: dir.appendingPathComponent("given.png")))
        try Self.ok(["denoise", "--input", "in.png", "--sigma", "50/255", "--output", "fifty.png"], in: dir)
        #expect(try Data(contentsOf: dir.appendingPathComponent("shipped.png")) != Data(contentsOf: dir.appendingPathComponent("fifty.png")))
        // Either side of each switch (and at the top model's reference): the output of that range's
        // model, named by its reference σ.
        let shipped = Self.shippedModels
        #expect(shipped.count >= 2 && shipped[0].from == 0)
        var cases: [(sigma: Double, model: Int)] = []
        for (i, m) in shipped.enumerated().dropFirst() { cases += [(m.from - 0.5, i - 1), (m.from + 0.5, i)] }
        cases.append((50, shipped.count - 1))
        for (sigma, i) in cases {
            let text = "\(sigma)/255"
            let line = try Self.ok(["denoise", "--input", "in.png", "--sigma", text, "--output", "a.png"], in: dir).stdout
            let reference = try #require(Float(try Safetensors.read(shipped[i].path).metadata["model.adaptive_sigma"] ?? ""))
            #expect(line.contains("; the shipped model trained around σ \(String(format: "%.3g", reference * 255))/255"), "σ \(text): \(line)")
            try Self.ok(["denoise", "--model", shipped[i].path, "--input", "in.png", "--sigma", text, "--output", "b.png"], in: dir)
            #expect(try Data(contentsOf: dir.appendingPathComponent("a.png")) == Data(contentsOf: dir.appendingPathComponent("b.png")), "σ \(text)")
        }
        let estimated = try Self.ok(["denoise", "--input", "in.png", "--output", "estimated.png"], in: dir)
        #expect(estimated.stdout.contains(", σ estimated "), "\(estimated.stdout)")

        let images = dir.appendingPathComponent("train")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        try PNG.write(Raster(gray: DenoisingTests.image(40, 40)), to: images.appendingPathComponent("a.png").path)
        try Self.ok(["train", "--model", "conv2d", "--data", "train", "--atoms", "4", "--kernel", "5", "--stride", "2", "--crop", "17",
                     "--layers", "3", "--steps", "2", "--sigma", "25/255", "--output", "fixed"], in: dir)
        let bad = try Self.run(["denoise", "--model", "fixed/model.safetensors", "--input", "in.png", "--sigma", "50/255", "--output", "x.png"], in: dir)
        #expect(bad.status == 1 && bad.stderr.split(separator: "\n").count == 1
                && bad.stderr.contains("fixed/model.safetensors was trained at σ 0.09804 (25/255); use a model trained at this σ"), "\(bad.stderr)")
    }

    /// Inputs once crashed, hung or ran for minutes, and a full disk: each ends with one line.
    @Test func hostileInputsAndAFullDiskGiveOneLine() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        // Gzipped .npy and IDX bombs stop at the decoded-size limit, named with the way to raise it.
        try Data(Zlib.gzip(Npy.encode(Tensor(zeros: [50, 50])))).write(to: dir.appendingPathComponent("big.npy.gz"))
        try Data(Zlib.gzip(IDX.encode(uint8: [UInt8](repeating: 0, count: 10_000), shape: [100, 100])))
            .write(to: dir.appendingPathComponent("big-ubyte.gz"))
        for file in ["big.npy.gz", "big-ubyte.gz"] {
            let r = try Self.run(["info", file], in: dir, environment: ["UNROLL_MAX_DECODED_BYTES": "5000"])
            #expect(r.status != 0 && r.stderr.split(separator: "\n").count == 1
                    && r.stderr.contains("more than the limit of 5000 bytes (raise it with UNROLL_MAX_DECODED_BYTES)"), "\(file): \(r.stderr)")
            try Self.ok(["info", file], in: dir)   // under the default limit it reads
        }
        // A full disk (here a file-size limit, ulimit -f): the write fails with one line, no
        // temporary is left, and the last checkpoint stays whole.
        try Self.ok(["synth", "--m", "64", "--p", "96", "--n", "200", "--s", "3", "--seed", "1", "--output", "data.npz"], in: dir)
        let train = ["train", "--data", "data.npz", "--atoms", "300", "--layers", "5", "--batch", "20", "--checkpoint-every", "5", "--output", "run"]
        try Self.ok(train + ["--steps", "10"], in: dir)
        let checkpoint = dir.appendingPathComponent("run/checkpoint.safetensors")
        let before = try Data(contentsOf: checkpoint)
        #expect(before.count > 200 * 1024)
        let full = try Self.run(train + ["--steps", "20", "--resume"], in: dir, shell: "ulimit -f 200")
        #expect(full.status == 1 && full.stderr.split(separator: "\n").count == 1 && full.stderr.contains("File too large"), "\(full.stderr)")
        #expect(try Data(contentsOf: checkpoint) == before)
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("run").path).filter { $0.contains(".tmp-") }
        #expect(left.isEmpty, "temporaries left: \(left)")
        try Self.ok(train + ["--steps", "20", "--resume"], in: dir)   // with room again, the run continues
    }

    // MARK: demo

    @Test func demoPrintsTheTableAndWritesItsFiles() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try Self.ok(["demo", "--epochs", "1", "--examples", "100", "--output", "d"], in: dir)
        for name in ["g_dec", "g_ae-lasso", "g_ae-ls", "alternating"] { #expect(r.stdout.contains(name)) }
        for file in ["data.npz", "curves.csv", "curves.png", "atoms.png", "model_least-squares.safetensors"] {
            #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("d/\(file)").path), "\(file)")
        }
        // curves.csv: step 0 (D₀) plus 2 steps of batch 50, one error column per gradient, all starting at D₀'s error.
        let text = try String(contentsOf: dir.appendingPathComponent("d/curves.csv"), encoding: .utf8)
        let lines = text.split(separator: "\n")
        #expect(lines[0] == "step,epoch,g_dec,g_ae-lasso,g_ae-ls,alternating")
        #expect(lines.count == 4)
        let first = lines[1].split(separator: ",").compactMap { Double($0) }
        let data = try Self.arrays(dir.appendingPathComponent("d/data.npz"))
        let start = DictionaryMetrics.relativeFrobeniusError(try #require(data["D_init"]), try #require(data["D_true"]))
        #expect(first.count == 6 && first.dropFirst(2).allSatisfy { abs($0 - start) < 1e-9 })
        // The denoising step: the shipped model removes noise (PSNR gain read from the printed line,
        // and recomputed from the written images against the shipped clean crop).
        for file in ["noisy.png", "denoised.png", "denoising.png"] {
            #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("d/\(file)").path), "\(file)")
        }
        let line = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("PSNR ") })
        let numbers = line.split(separator: " ").compactMap { Double($0) }
        #expect(numbers.count >= 2 && numbers[1] - numbers[0] > 4, "\(line)")
        let noisy = try PNG.readGray(dir.appendingPathComponent("d/noisy.png").path)
        let denoised = try PNG.readGray(dir.appendingPathComponent("d/denoised.png").path)
        let clean = try PNG.readGray(URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Sources/unroll/Resources/camera-crop.png").standardizedFileURL.path)
        #expect(PSNR.value(denoised, clean: clean) > PSNR.value(noisy, clean: clean) + 4)
    }
}

/// A data file too large for the process's memory cap (`ulimit -v`) is refused with one line naming
/// the need and the cap, instead of the runtime's abort on a failed allocation (exit 134).
@Suite(.needsCLI) struct MemoryCapTests {
    /// Runs `unroll args` under `ulimit -v kilobytes`.
    static func capped(_ kilobytes: Int, _ args: [String], in dir: URL) throws -> CLITests.Result {
        let binary = try #require(CLITests.binary)
        let quoted = ([binary] + args).map { "'\($0)'" }.joined(separator: " ")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        // `timeout`: under a cap too small for OpenBLAS's per-thread buffers (128 MB each), OpenBLAS's
        // worker retries its allocation forever and the process never exits.
        process.arguments = ["-c", "ulimit -v \(kilobytes) && exec timeout 60 \(quoted)"]
        process.currentDirectoryURL = dir
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CLITests.Result(status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                               stderr: String(decoding: e, as: UTF8.self))
    }

    /// The smallest cap in kB (in 32 MB steps from 320 MB, above OpenBLAS's thread buffers) under which
    /// the CLI starts and reads a tiny file (`tiny.npy`, written into `dir`).
    static func startingCap(in dir: URL) throws -> Int {
        try Npy.write(Tensor(zeros: [4, 3]), to: dir.appendingPathComponent("tiny.npy").path)
        var base = 320 * 1024
        while try capped(base, ["info", "tiny.npy"], in: dir).status != 0 {
            base += 32 * 1024
            try #require(base < 4 << 20, "unroll did not start under any cap up to 4 GB")
        }
        return base
    }

    @Test func aFileLargerThanTheCapIsOneLine() throws {
        let dir = try CLITests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try Self.startingCap(in: dir)
        // 256 MB of floats (mapped, not read) against 64 MB of headroom.
        try Npy.write(Tensor(zeros: [64 << 10, 1 << 10]), to: dir.appendingPathComponent("big.npy").path)
        let r = try Self.capped(base + 64 * 1024, ["train", "--data", "big.npy", "--atoms", "4", "--steps", "1", "--output", "run"], in: dir)
        #expect(r.status == 1, "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.hasPrefix("Error: --data: ") && r.stderr.contains("ulimit -v") && r.stderr.contains("MB more"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
    }

    /// Files under 10 MB that declare or expand to gigabytes (gzip, deflate and PNG bombs, lying
    /// headers), read by `info`, `train` and `encode` under a cap of 1 GB above what the CLI needs to
    /// start: each gives a result or one line, never a crash.
    @Test func smallHostileFilesStayUnderAGigabyte() throws {
        let dir = try CLITests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try Self.startingCap(in: dir)
        let zeros = [UInt8](repeating: 0, count: 8 << 20)
        var files: [(String, [UInt8])] = [
            // 1 GiB of floats declared, 8 MB there.
            ("lying.npy.gz", Zlib.gzip(Npy.float32Header(shape: [16384, 16384]) + zeros)),
            // 600 MB of pixels declared, 8 MB there.
            ("lying-ubyte.gz", Zlib.gzip([0, 0, 0x08, 3, 0, 0, 0xEA, 0x60, 0, 0, 0, 100, 0, 0, 0, 100] + zeros)),
            // 240 MB of real floats: a full-batch step on them needs about 900 MB more (it aborted once).
            ("level.npy.gz", Zlib.gzip(Npy.encode(Tensor(repeating: 0.01, shape: [60_000, 1000])))),
            // 20 MB of CSV text that parses into 10 M numbers.
            ("zeros.csv.gz", Zlib.gzip([UInt8](String(repeating: String(repeating: "0,", count: 999) + "0\n", count: 10_000).utf8))),
            // an .npz member of 900 MB declared, 8 MB of data.
            ("lying.npz", Zip.archive([("X.npy", Npy.float32Header(shape: [15000, 15000]) + zeros)], compressed: true)),
        ]
        // A 30 000² PNG (900 MB of pixels, 3.6 GB as floats) whose image data is 8 MB of zeros.
        func chunk(_ kind: String, _ data: [UInt8]) -> [UInt8] {
            func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
            let body = Array(kind.utf8) + data
            return be32(UInt32(data.count)) + body + be32(Zlib.crc32(body))
        }
        let png = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", [0, 0, 0x75, 0x30, 0, 0, 0x75, 0x30, 8, 0, 0, 0, 0])
            + chunk("IDAT", Zlib.deflate(zeros, format: .zlib)) + chunk("IEND", [])
        files.append(("big.png", png))
        for (name, bytes) in files {
            #expect(bytes.count < 10 << 20, "\(name) is \(bytes.count) bytes")
            try Data(bytes).write(to: dir.appendingPathComponent(name))
        }
        try CLITests.ok(["train", "--data", "tiny.npy", "--atoms", "4", "--steps", "1", "--output", "good"], in: dir)
        for (name, _) in files {
            for args in [["info", name], ["train", "--data", name, "--atoms", "4", "--steps", "1", "--output", "run-" + name],
                         ["encode", "--model", "good/model.safetensors", "--data", name, "--output", "z.npy"]] {
                let r = try Self.capped(base + (1 << 20), args, in: dir)
                #expect(r.status == 0 || r.status == 1, "\(args): exit \(r.status): \(r.stderr.suffix(300))")
                #expect(r.stderr.split(separator: "\n").count <= 1, "\(args): \(r.stderr.suffix(300))")
                if args[0] == "train" && name == "level.npy.gz" {
                    #expect(r.stderr.contains("Error: --batch 60000: steps on batches of 60000 × 1000 need"), "\(r.stderr)")
                }
            }
        }
    }
}
