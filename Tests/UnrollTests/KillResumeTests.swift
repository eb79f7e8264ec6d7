import Foundation
import Testing
import Unroll
import UnrollCore
import UnrollIO

/// A training run killed with SIGKILL at an arbitrary moment after its first checkpoint (a fifth, half
/// and four fifths into the time one run takes from there), then run again with `--resume`, ends with
/// the same model file, byte for byte, as one uninterrupted run, and its log
/// has every step once. For every kind `unroll train` learns.
@Suite(.needsCLI) struct KillResumeTests {
    struct Kind: CustomTestStringConvertible, Sendable {
        var name: String
        var arguments: [String]
        /// Whether the run writes log.csv (the spikes training reports per epoch instead).
        var logs = true
        var testDescription: String { name }
    }

    static let images = ["--data", "images"]
    static let kinds: [Kind] = [
        Kind(name: "dense", arguments: CLITests.trainBase + ["--gradient", "lasso", "--beta-decay", "--beta-every", "5",
                                                             "--steps", "60", "--checkpoint-every", "4"]),
        Kind(name: "conv2d pudle", arguments: ["train", "--model", "conv2d"] + images + ["--atoms", "4", "--kernel", "5", "--stride", "2",
                                                                                         "--crop", "17", "--layers", "4", "--steps", "40",
                                                                                         "--checkpoint-every", "3"]),
        Kind(name: "conv2d crsae untied", arguments: ["train", "--model", "conv2d", "--family", "crsae", "--untied"] + images
             + ["--atoms", "4", "--kernel", "5", "--stride", "2", "--crop", "17", "--layers", "4", "--sigma", "0.1",
                "--lipschitz", "4", "--steps", "40", "--checkpoint-every", "3"]),
        Kind(name: "conv1d", arguments: ["train", "--model", "conv1d", "--data", "rec.npz", "--epochs", "3", "--layers", "6",
                                         "--refine-epochs", "2", "--refine-layers", "8"], logs: false),
        Kind(name: "vsc linear", arguments: ["train", "--model", "vsc"] + images + ["--patches", "400", "--validation", "50", "--side", "8",
                                                                                   "--samples", "2", "--hidden", "16", "--batch", "40",
                                                                                   "--lr", "0.002", "--epochs", "3", "--checkpoint-every", "2"]),
    ]

    /// The data every kind reads, in `dir`.
    static func prepare(_ dir: URL) throws {
        let folder = dir.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try PNG.write(Raster(gray: DenoisingTests.image(40, 40)), to: folder.appendingPathComponent("a.png").path)
        try PNG.write(Raster(gray: DenoisingTests.image(36, 44, phase: 1)), to: folder.appendingPathComponent("b.png").path)
        try CLITests.synth(in: dir)
        try CLITests.ok(["spikes", "simulate", "--seconds", "3", "--seed", "2", "--output", "rec.npz"], in: dir)
    }

    static func launch(_ args: [String], in dir: URL) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(CLITests.binary))
        process.arguments = args
        process.currentDirectoryURL = dir
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = start.duration(to: .now)
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    /// The log's lines without the wall-clock column (`seconds`), as text: every other value must
    /// equal an uninterrupted run's to the digit.
    static func logWithoutTime(_ url: URL) throws -> [[Substring]] {
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
        guard let header = lines.first?.split(separator: ",") else { return [] }
        let keep = header.indices.filter { header[$0] != "seconds" }
        return lines.map { line in
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            return keep.map { $0 < fields.count ? fields[$0] : "" }
        }
    }

    /// Waits until `path` exists or `process` ends.
    static func waitFor(_ path: String, while process: Process) {
        while process.isRunning && !FileManager.default.fileExists(atPath: path) { Thread.sleep(forTimeInterval: 0.001) }
    }

    static func check(_ kind: Kind, in dir: URL) throws {
        // One run, timing its part after the first checkpoint (kills before it only test a fresh start).
        let one = try launch(kind.arguments + ["--output", "one"], in: dir)
        waitFor(dir.appendingPathComponent("one/checkpoint.safetensors").path, while: one)
        let afterCheckpoint = ContinuousClock.now
        one.waitUntilExit()
        let span = seconds(since: afterCheckpoint)
        #expect(one.terminationStatus == 0, "\(kind.name): the uninterrupted run failed")
        let expected = try Data(contentsOf: dir.appendingPathComponent("one/model.safetensors"))
        let expectedCheckpoint = try Data(contentsOf: dir.appendingPathComponent("one/checkpoint.safetensors"))
        var interrupted = 0
        for fraction in [0.1, 0.3, 0.5, 0.7, 0.9] {
            let out = "killed-\(fraction)"
            let process = try launch(kind.arguments + ["--output", out], in: dir)
            waitFor(dir.appendingPathComponent(out + "/checkpoint.safetensors").path, while: process)
            Thread.sleep(forTimeInterval: fraction * span)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            if process.terminationReason == .uncaughtSignal { interrupted += 1 }
            try CLITests.ok(kind.arguments + ["--output", out, "--resume"], in: dir)
            let model = try Data(contentsOf: dir.appendingPathComponent(out + "/model.safetensors"))
            #expect(model == expected, "\(kind.name): killed \(fraction) into the \(span) s after the first checkpoint, the resumed model differs from one run")
            let checkpoint = try Data(contentsOf: dir.appendingPathComponent(out + "/checkpoint.safetensors"))
            #expect(checkpoint == expectedCheckpoint, "\(kind.name): killed at \(fraction), the final checkpoint differs from one run's")
            if kind.logs {
                let a = try Self.logWithoutTime(dir.appendingPathComponent("one/log.csv"))
                let b = try Self.logWithoutTime(dir.appendingPathComponent(out + "/log.csv"))
                #expect(a == b && a.count > 1, "\(kind.name): killed at \(fraction), the log differs from one run's: \(b.prefix(3))")
            }
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent(out).path)
                .filter { $0.contains(".tmp-") }
            #expect(leftovers.isEmpty, "\(kind.name): temporaries left: \(leftovers)")
        }
        // At least one kill landed before the end (else the test proved nothing).
        #expect(interrupted >= 1, "\(kind.name): no kill interrupted the run (\(span) s after its first checkpoint)")
    }

    @Test(arguments: kinds)
    func aKilledRunResumesToTheSameModel(_ kind: Kind) throws {
        let dir = try CLITests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.prepare(dir)
        try Self.check(kind, in: dir)
    }

    /// The conv generator reads Fashion-MNIST.
    @Test(.needsSharedData) func aKilledVSCConvRunResumesToTheSameModel() throws {
        let dir = try CLITests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.check(Kind(name: "vsc conv", arguments: ["train", "--model", "vsc", "--generator", "conv", "--data", sharedData + "/fashion-mnist",
                                                          "--train-size", "512", "--test-size", "64", "--atoms", "8", "--batch", "64",
                                                          "--epochs", "2", "--samples", "1", "--checkpoint-every", "3"]),
                       in: dir)
    }
}
