import Foundation
import Testing
import Unroll
import UnrollCore
import UnrollIO

/// `unroll info`, `unroll encode` and `unroll eval` on every model kind, each trained a few steps here:
/// the codes the CLI writes equal the library's codes of the model it reads, and eval's error is the
/// error of those codes, computed here.
@Suite(.needsCLI) struct ModelCommandsTests {
    /// Trains one model of each kind in `dir`; returns (kind, model path, data argument).
    static func trainAll(in dir: URL) throws -> [(kind: String, model: String, data: String)] {
        let images = dir.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        var rng = Random(seed: 4)
        for name in ["a", "b"] {
            try PNG.write(Raster(gray: Tensor.uniform([48, 40], rng: &rng)), to: images.appendingPathComponent("\(name).png").path)
        }
        try PNG.write(Raster(gray: DenoisingTests.image(30, 34, phase: 1)), to: dir.appendingPathComponent("ref.png").path)
        try CLITests.synth(in: dir)
        try CLITests.ok(CLITests.trainBase + ["--steps", "3", "--output", "dense"], in: dir)
        try CLITests.ok(CLITests.trainBase + ["--steps", "3", "--untied", "--output", "untied-dense"], in: dir)
        let conv = ["train", "--model", "conv2d", "--data", images.path, "--atoms", "4", "--kernel", "5", "--stride", "2",
                    "--crop", "17", "--layers", "4", "--steps", "3"]
        try CLITests.ok(conv + ["--step", "0.1", "--lambda", "0.05", "--output", "pudle"], in: dir)
        try CLITests.ok(conv + ["--family", "crsae", "--untied", "--sigma", "0.1", "--lipschitz", "4", "--output", "untied"], in: dir)
        try CLITests.ok(["spikes", "simulate", "--seconds", "2", "--seed", "2", "--output", "rec.npz"], in: dir)
        try CLITests.ok(["spikes", "train", "--recording", "rec.npz", "--epochs", "1", "--refine-epochs", "1", "--layers", "5",
                         "--refine-layers", "6", "--output", "spikes.safetensors"], in: dir)
        try CLITests.ok(["vsc", "train", "--images", images.path, "--patches", "100", "--validation", "20", "--side", "8",
                         "--samples", "2", "--hidden", "8", "--epochs", "1", "--quiet", "--output", "vsc.safetensors"], in: dir)
        var patches = Tensor.uniform([10, 64], rng: &rng)
        patches.add(Tensor(shape: [10, 64], data: .init(repeating: -0.5, count: 640)))
        try Npy.write(patches, to: dir.appendingPathComponent("patches.npy").path)
        return [("dense", "dense/model.safetensors", "data.npz"), ("dense", "untied-dense/model.safetensors", "data.npz"),("conv2d", "pudle/model.safetensors", "ref.png"),
                ("conv2d", "untied/model.safetensors", "ref.png"), ("conv1d", "spikes.safetensors", "rec.npz"),
                ("vsc-linear", "vsc.safetensors", "patches.npy")]
    }

    /// The library's codes and reconstruction of `data` under the model in `path`.
    static func reference(_ path: String, data: String, in dir: URL) throws -> (x: Tensor, codes: Tensor, xHat: Tensor)? {
        let file = try ModelFile.read(dir.appendingPathComponent(path).path)
        let dataPath = dir.appendingPathComponent(data).path
        switch file.model {
        case let .dense(m):
            let x = try #require(try Npz.read(dataPath).first { $0.name == "X" }?.array.tensor)
            let z = try m.encode(x)
            return (x, z, m.decoder.apply(z))
        case let .conv2d(m):
            let image = try PNG.readGray(dataPath)
            let x = image.reshaped([1] + image.shape)
            let (z, xHat) = try m.reconstruct(x)
            return (x, z, xHat)
        case let .conv1d(m):
            let signal = try #require(try Npz.read(dataPath).first { $0.name == "signal" }?.array.tensor).transposed()
            let z = try m.encode(recording: signal)
            return (signal, z, m.decoder.apply(z.reshaped([1] + z.shape)).reshaped(signal.shape))
        case .vsc:
            return nil   // VSC codes are draws; the CLI's own numbers are checked for consistency below
        }
    }

    @Test func infoEncodeAndEvalWorkOnEveryKind() throws {
        let dir = try CLITests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (kind, model, data) in try Self.trainAll(in: dir) {
            let info = try CLITests.ok(["info", model], in: dir)
            #expect(info.stdout.contains("model: \(kind),"), "\(model): \(info.stdout)")
            try CLITests.ok(["encode", "--model", model, "--data", data, "--output", "z.npy", "--threads", "1"], in: dir)
            let codes = try Npy.read(dir.appendingPathComponent("z.npy").path).tensor
            if kind != "vsc-linear" && kind != "vsc-conv" {
                // Per-sample stopping at tolerance 0 stops a sample only at an exact fixed point: the same codes.
                try CLITests.ok(["encode", "--model", model, "--data", data, "--output", "z0.npy", "--tolerance", "0", "--threads", "1"], in: dir)
                #expect(try Npy.read(dir.appendingPathComponent("z0.npy").path).tensor == codes, "\(model) at --tolerance 0")
            }
            let eval = try CLITests.ok(["eval", "--model", model, "--data", data, "--json", "--threads", "1"], in: dir)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any])
            #expect(json["kind"] as? String == kind)
            let relative = try #require(json["relative_error"] as? Double)
            let zeros = try #require(json["zero_fraction"] as? Double)
            #expect(abs(zeros - Double(codes.zeroCount()) / Double(codes.count)) < 1e-12, "\(model)")
            // The library at one worker, as the CLI ran: at more, a batch may be encoded in parts whose
            // products round differently in the last bits (`UnrolledEncoder.sampleParts`).
            guard let ref = try Parallel.withWorkers(1, { try Self.reference(model, data: data, in: dir) }) else {
                #expect(relative > 0 && relative.isFinite, "\(model): \(relative)")
                continue
            }
            #expect(codes == ref.codes, "\(model): the CLI's codes differ from the library's")
            let expected = ((ref.x - ref.xHat).squaredNorm() / ref.x.squaredNorm()).squareRoot()
            #expect(abs(relative - expected) <= 1e-9 * max(1, expected), "\(model): eval says \(relative), expected \(expected)")
        }
    }

    /// Denoising PSNRs of a conv2d model through `eval --sigma` equal the library's `Denoiser.evaluate`,
    /// and options that do not fit the model are refused by name.
    @Test func evalDenoisesAndRefusesWhatDoesNotApply() throws {
        let dir = try CLITests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let all = try Self.trainAll(in: dir)
        let untied = all[3].model
        let eval = try CLITests.ok(["eval", "--model", untied, "--data", "ref.png", "--sigma", "0.1", "--seed", "5", "--json"], in: dir)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any])
        guard case let .conv2d(m) = try ModelFile.read(dir.appendingPathComponent(untied).path).model else { Issue.record("kind"); return }
        let e = try Denoiser.evaluate(clean: [try PNG.readGray(dir.appendingPathComponent("ref.png").path)], sigma: 0.1, seed: 5, model: m)
        // JSON carries 15 significant digits.
        let (denoised, noisy) = (try #require(json["psnr_denoised"] as? Double), try #require(json["psnr_noisy"] as? Double))
        #expect(abs(denoised - e.meanDenoised) < 1e-9 && abs(noisy - e.meanNoisy) < 1e-9, "\(denoised) \(noisy) vs \(e.meanDenoised) \(e.meanNoisy)")
        for (args, words) in [
            (["eval", "--model", "spikes.safetensors", "--data", "rec.npz", "--sigma", "0.1"], "--sigma applies to conv2d models"),
            (["encode", "--model", "vsc.safetensors", "--data", "patches.npy", "--layers", "3", "--output", "z.npy"], "--layers does not apply to a vsc-linear model"),
            (["encode", "--model", "vsc.safetensors", "--data", "patches.npy", "--tolerance", "1e-4", "--output", "z.npy"], "--tolerance does not apply to a vsc-linear model"),
            (["encode", "--model", "dense/model.safetensors", "--data", "data.npz", "--tolerance", "nan", "--output", "z.npy"], "--tolerance must be finite and ≥ 0"),
            (["encode", "--model", "dense/model.safetensors", "--data", "data.npz", "--samples", "3", "--output", "z.npy"], "--samples applies to VSC models only"),
            (["denoise", "--model", "spikes.safetensors", "--input", "ref.png", "--output", "o.png"], "holds a conv1d model; this command needs a conv2d model"),
            (["spikes", "sort", "--recording", "rec.npz", "--model", "dense/model.safetensors", "--output", "s"], "holds a dense model; this command needs a spikes model"),
        ] {
            let r = try CLITests.run(args, in: dir)
            #expect(r.status != 0 && r.stderr.contains(words) && r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
        }
    }

    /// One table says which `train` options apply to which model; a given option that does not apply
    /// is refused by name (also as --name=value), and every computing verb takes --threads.
    @Test func optionsThatDoNotApplyAreRefusedByName() throws {
        let dir = try CLITests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try CLITests.synth(in: dir)
        for (args, words) in [
            (["--data", "data.npz", "--kernel", "5"], "--kernel does not apply to --model dense"),
            (["--model", "conv2d", "--data", ".", "--epochs", "3"], "--epochs does not apply to --model conv2d --family pudle"),
            (["--model", "conv2d", "--data", ".", "--lipschitz=3"], "--lipschitz does not apply to --model conv2d --family pudle"),
            (["--model", "conv2d", "--family", "crsae", "--data", ".", "--lambda", "0.1"], "--lambda does not apply to --model conv2d --family crsae"),
            (["--model", "conv2d", "--family", "crsae", "--data", ".", "--init", "data.npz"], "--init does not apply"),
            (["--model", "conv1d", "--data", "data.npz", "--lambda", "0.2"], "--lambda does not apply to --model conv1d"),
            (["--model", "conv1d", "--data", "data.npz", "--steps", "3"], "--steps does not apply to --model conv1d"),
            (["--data", "data.npz", "--refine-epochs", "3"], "--refine-epochs does not apply to --model dense: it is an option of --model conv1d"),
            (["--data", "data.npz", "--posterior", "gaussian"], "--posterior does not apply to --model dense: it is an option of --model vsc"),
            (["--model", "vsc", "--data", ".", "--family", "crsae"], "--family does not apply to --model vsc: use --posterior"),
            (["--model", "vsc", "--data", ".", "--threshold", "hard"], "--threshold does not apply to --model vsc: use --learn-threshold"),
            (["--model", "vsc", "--data", ".", "--layers", "5"], "--layers does not apply to --model vsc: it is not a setting of VSC training"),
            (["--model", "vsc", "--data", ".", "--kernel", "5"], "--kernel does not apply to --model vsc: it is an option of --model conv2d"),
            (["--model", "vsc", "--data", ".", "--posterior", "gaussian", "--learn-threshold"], "applies to thresholded families only"),
            // Sizes that multiply into an allocation or a loop are bounded (were: an 80 GB abort, a hang).
            (["--data", "data.npz", "--atoms", "1000000000"], "the limit is 2²⁸"),
            (["--data", "data.npz", "--init", "data.npz", "--layers", "1000000000"], "encoder layers T must be ≤ 100000"),
            // File-system failures in plain words, not Foundation's error-domain dump.
            (["--data", "data.npz", "--init", "data.npz", "--steps", "1", "--output", "/proc/unroll-run"], "--output: /proc/unroll-run: "),
        ] {
            let r = try CLITests.run(["train"] + args + (args.contains("--output") ? [] : ["--output", "out"]), in: dir)
            #expect(r.status != 0 && r.stderr.contains(words) && r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
            #expect(!r.stderr.contains("NSCocoaErrorDomain"), "\(args): \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("out").path), "\(args) wrote output")
        }
        for verb in [["train"], ["encode"], ["eval"], ["denoise"], ["demo"], ["reproduce"], ["bench"], ["explain", "atoms"],
                     ["spikes", "train"], ["spikes", "sort"], ["vsc", "train"], ["vsc", "eval"]] {
            let help = try CLITests.run(verb + ["--help"], in: dir)
            #expect(help.stdout.contains("--threads <threads>"), "\(verb) has no --threads")
        }
    }

    /// One run per output at a time: while another process holds the run's lock, a second run into
    /// the same folder stops with one line and writes nothing; a killed run's temporaries are removed.
    @Test func oneRunOwnsAnOutputFolder() throws {
        let dir = try CLITests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try CLITests.synth(in: dir)
        let run = dir.appendingPathComponent("run")
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        let stale = run.appendingPathComponent(".checkpoint.safetensors.tmp-1-2")
        try Data([1, 2, 3]).write(to: stale)
        do {
            let held = try RunLock(model: run.appendingPathComponent("model.safetensors").path)
            let second = try CLITests.run(CLITests.trainBase + ["--steps", "2", "--output", "run"], in: dir)
            #expect(second.status != 0 && second.stderr.contains("another unroll run (pid \(getpid()))"), "\(second.stderr)")
            #expect(!FileManager.default.fileExists(atPath: run.appendingPathComponent("model.safetensors").path))
            withExtendedLifetime(held) {}
        }
        try CLITests.ok(CLITests.trainBase + ["--steps", "2", "--output", "run"], in: dir)
        #expect(!FileManager.default.fileExists(atPath: stale.path), "the stale temporary is still there")
        #expect(FileManager.default.fileExists(atPath: run.appendingPathComponent("model.safetensors").path))
    }
}
