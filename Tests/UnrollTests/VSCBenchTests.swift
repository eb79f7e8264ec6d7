import Foundation
import Testing
import Unroll
import UnrollCore

/// `unroll bench vsc-linear | vsc-conv` and their PyTorch peers (`bench/vsc_linear_torch.py`,
/// `bench/vsc_conv_torch.py`): each case runs without its peer and its loss falls on the repeated batch; with
/// torch installed, the peer passes its self-test and, loading our batch and every weight (by their PyTorch
/// names), gives the same first-step loss up to its own random draws (the KL part is the same to rounding,
/// the best-of-J reconstruction in distribution).
@Suite struct VSCBenchTests {
    @Test(.needsCLI, arguments: ["vsc-linear", "vsc-conv"]) func benchStepRunsWithoutPeer(_ name: String) throws {
        let dir = try CLITests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLITests.ok(["bench", name, "--no-peer", "--repeats", "3", "--size", "20", "--json"], in: dir)
        let report = try #require(((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["reports"] as? [[String: Any]])?.first)
        let details = try #require(report["details"] as? [String: String])
        let losses = try #require(details["ours: losses per step (warm-up first)"]).split(separator: " ").compactMap { Double($0) }
        #expect(losses.count == 4 && losses.allSatisfy { $0.isFinite && $0 > 0 })
        #expect(losses.last! < losses.first!, "losses \(losses)")
    }

    @Test(.needsCLI, .enabled(if: ConvDenoiseBenchTests.torchInstalled), arguments: ["vsc-linear", "vsc-conv"])
    func peerLoadsOurModelAndAgrees(_ name: String) throws {
        let dir = try CLITests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = name.replacingOccurrences(of: "-", with: "_") + "_torch.py"
        let (status, text) = try ConvDenoiseBenchTests.peer(script, ["--selftest"])
        #expect(status == 0 && text.contains("all checks passed"), "\(script) --selftest:\n\(text)")
        let r = try CLITests.ok(["bench", name, "--repeats", "2", "--size", "40", "--json"], in: dir)
        let report = try #require(((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["reports"] as? [[String: Any]])?.first)
        let details = try #require(report["details"] as? [String: String])
        let notes = report["notes"] as? [String] ?? []
        #expect(!notes.contains { $0.contains("peer unavailable") || $0.contains("peer failed") || $0.contains("do not compute") }, "\(notes)")
        let diff = try #require(details["relative difference of the first step's loss ours vs peer (same model and data, own draws)"].flatMap(Double.init))
        #expect(diff < 0.01, "first-step losses differ by \(diff)")
    }

    /// `bench scaling`: one row per setting in three groups, each group's first row the unit of its ratios.
    /// (Which setting takes longer is the benchmark's output, not checked here: one repeat, timed while
    /// the other tests run, once put the 5× batch below the 1× batch.)
    @Test(.needsCLI) func benchScalingHasAGroupPerQuantity() throws {
        let dir = try CLITests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLITests.ok(["bench", "scaling", "--repeats", "1", "--threads", "2", "--json"], in: dir)
        let report = try #require(((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["reports"] as? [[String: Any]])?.first)
        let rows = try #require(report["rows"] as? [[String: Any]])
        let names = rows.compactMap { $0["name"] as? String }
        #expect(names.count == 8 && names[0] == "batch 10, p 1500" && names[3].hasPrefix("p 500") && names[6].hasPrefix("1 thread"), "\(names)")
        let seconds = rows.compactMap { $0["ours"] as? Double }, ratios = rows.compactMap { $0["ratio"] as? Double }
        #expect(seconds.count == 8 && seconds.allSatisfy { $0 > 0 })
        #expect(ratios[0] == 1 && ratios[3] == 1 && ratios[6] == 1)
        #expect(zip(seconds, ratios).enumerated().allSatisfy { i, r in
            abs(r.1 - r.0 / seconds[i / 3 * 3]) <= 1e-9 * r.1 }, "a ratio is not its row's seconds over its group's first: \(seconds) \(ratios)")
    }
}
