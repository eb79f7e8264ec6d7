import Foundation

/// A bound that a row's ratio should meet, and the issue that asks it. The report's table prints it,
/// and `Benchmarks.run` adds a note for every row whose ratio misses it.
public struct BenchTarget: Codable, Sendable, Equatable {
    /// true: the ratio should be ≥ `value` (a speed-up, a PSNR difference); false: ≤ `value` (memory).
    public var atLeast: Bool
    public var value: Double
    public var issue: Int

    public static func atLeast(_ value: Double, issue: Int) -> BenchTarget { BenchTarget(atLeast: true, value: value, issue: issue) }
    public static func atMost(_ value: Double, issue: Int) -> BenchTarget { BenchTarget(atLeast: false, value: value, issue: issue) }

    public func isMet(by ratio: Double) -> Bool { atLeast ? ratio >= value : ratio <= value }

    /// "≥ 15" or "≤ 0.125".
    public var text: String { (atLeast ? "≥ " : "≤ ") + String(format: "%g", value) }
}

/// Every target the issues set, in one place (issue 4: sgemm; issue 16: speed, threads and memory of every
/// case; issue 18: whole-image denoising against BM3D).
public enum BenchTargets {
    static let gemmOfNumPy = BenchTarget.atLeast(0.85, issue: 4)
    /// Peak RSS over the PyTorch peer's, every case that has one.
    static let peakRSS = BenchTarget.atMost(0.125, issue: 16)
    static let fig5Decoder = BenchTarget.atLeast(8, issue: 16)
    static let fig5Autoencoder = BenchTarget.atLeast(15, issue: 16)
    static let theory = BenchTarget.atLeast(3, issue: 16)
    static let encodeOfPyTorch = BenchTarget.atLeast(20, issue: 16)
    static let encodeOfSPAMS = BenchTarget.atLeast(2, issue: 16)
    static let convDenoise = BenchTarget.atLeast(8, issue: 16)
    /// crsae-denoise, spikes, vsc-linear, vsc-conv.
    static let otherSteps = BenchTarget.atLeast(3, issue: 16)
    /// From 1 to 2 threads, on the cases the issue names.
    static let twoThreads = BenchTarget.atLeast(1.7, issue: 16)
    static let twoThreadCases: Set<String> = ["pudle-fig5", "pudle-theory", "encode", "conv-denoise"]
    /// Ours − BM3D in mean PSNR (dB), and BM3D's time over ours.
    static let psnrOfBM3D = BenchTarget.atLeast(-0.3, issue: 18)
    static let speedOfBM3D = BenchTarget.atLeast(5, issue: 18)

    /// One note per row whose ratio misses its target.
    public static func misses(_ rows: [BenchRow]) -> [String] {
        rows.compactMap { row in
            guard let t = row.target, let r = row.ratio, r.isFinite, !t.isMet(by: r) else { return nil }
            return "\(row.name): \(BenchFormat.number(r))\(row.ratioLabel.map { " \($0)" } ?? ""), "
                + "outside issue \(t.issue)'s target \(t.text)"
        }
    }
}
