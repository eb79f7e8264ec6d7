import Foundation
import Testing

/// `unroll bench … --dense-layers`: the fast path and the straightforward one time the same problem.
@Suite struct PudleBenchTests {
    /// The report's details, from `bench encode --size 60 --no-peer --repeats 1 --json` with `extra`.
    static func encodeDetails(_ extra: [String], in dir: URL) throws -> [String: String] {
        let r = try CLITests.ok(["bench", "encode", "--size", "60", "--no-peer", "--repeats", "1", "--json"] + extra, in: dir)
        let report = try #require(((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["reports"] as? [[String: Any]])?.first)
        return try #require(report["details"] as? [String: String])
    }

    /// `bench pudle-fig5 --mode decoder`: the report names the path the traced layers ran on, and the loss after
    /// the two steps agrees between the paths to the 5 digits printed.
    @Test(.needsCLI) func pudleReportNamesThePathItsTraceRanOn() throws {
        let dir = try CLITests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        func details(_ extra: [String]) throws -> [String: String] {
            let r = try CLITests.ok(["bench", "pudle-fig5", "--mode", "decoder", "--no-peer", "--repeats", "1", "--json"] + extra, in: dir)
            let report = try #require(((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["reports"] as? [[String: Any]])?.first)
            return try #require(report["details"] as? [String: String])
        }
        let fast = try details([]), straight = try details(["--dense-layers", "straightforward"])
        #expect(fast["ours: dense layers"] == "fast path (gram form)", "\(fast)")
        #expect(straight["ours: dense layers"] == "straightforward (dense products in every layer)", "\(straight)")
        let loss = "decoder: ours: loss at the last step"
        #expect(fast[loss] != nil && fast[loss] == straight[loss], "fast \(fast[loss] ?? "-"), straightforward \(straight[loss] ?? "-")")
    }

    /// Both paths reach the same T 100 objective on the same signals (printed to 5 digits), the report says
    /// which path it timed, and the option is refused where it means nothing or names no path.
    @Test(.needsCLI) func denseLayersChoosesThePathAndTheReportSaysSo() throws {
        let dir = try CLITests.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let objectiveKey = "ours: mean ½‖x − zW‖² + λ‖z‖₁, non-zeros per code"
        let fast = try Self.encodeDetails([], in: dir)
        let straight = try Self.encodeDetails(["--dense-layers", "straightforward"], in: dir)
        #expect(fast["ours: dense layers"] == nil)
        #expect(straight["ours: dense layers"] == "straightforward (dense products in every layer)", "\(straight)")
        let a = try #require(fast[objectiveKey]), b = try #require(straight[objectiveKey])
        #expect(a == b, "objective, non-zeros per code: fast \(a), straightforward \(b)")
        let wrongCase = try CLITests.run(["bench", "gemm", "--dense-layers", "straightforward"], in: dir)
        #expect(wrongCase.status != 0 && wrongCase.stderr.contains("--dense-layers applies to the pudle-*, scaling and encode cases, not to 'gemm'"), "\(wrongCase.stderr)")
        let wrongPath = try CLITests.run(["bench", "pudle-theory", "--dense-layers", "dense"], in: dir)
        #expect(wrongPath.status != 0 && wrongPath.stderr.contains("--dense-layers must be fast or straightforward, got 'dense'"), "\(wrongPath.stderr)")
    }
}
