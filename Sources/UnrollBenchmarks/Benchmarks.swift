import Foundation
import Unroll
import UnrollCore

/// Settings shared by every benchmark case (`unroll bench <case> --threads --repeats --size`).
public struct BenchOptions: Sendable {
    /// Threads for BLAS, `Parallel` and the peer scripts.
    public var threads: Int
    /// Timed repetitions; reported numbers are medians.
    public var repeats: Int
    /// Problem size, when the case has one (gemm: n of the n×n×n product); nil = the case's default.
    public var size: Int?
    /// Python interpreter for the peer scripts.
    public var python: String
    /// Folder with the peer scripts; nil = look for `bench/` near the working directory and the executable.
    public var scriptDirectory: String?
    /// Gradient mode of the `pudle-*` cases (`decoder`, `lasso`, `least-squares`); nil = all three.
    public var mode: String?
    /// Run the Python peers (false: our numbers only).
    public var runPeer: Bool
    /// `denoise`: the test images by file name and the folder they came from, the conv2d model files to
    /// run on them (several noise-adaptive ones: each for the σ from its entry of `switchingAt` up, as
    /// `unroll denoise` chooses), a folder for the comparison panels (nil: none), and the shifts to
    /// average (nil: each model's own).
    public var images: [String: Tensor]?
    public var data: String?
    public var models: [String]
    public var switchingAt: [Float]
    public var panels: String?
    public var shifts: ShiftSet?
    /// `denoise`: each model's last stages set from its own (the CLI's --non-local and --collaborative options; default: as the model has them).
    public var stages: @Sendable (inout UnrolledAutoencoder<Convolution2DDictionary>) throws -> Void
    /// Interleaved cases: one untimed unit on a side right before each of its timed ones, so that every
    /// timed unit finds that side's caches and threads as a loop of back-to-back steps would.
    public var warmEach: Bool
    /// `pudle-*`, `scaling` and `encode`: how the dense dictionary runs its layers (default: the fast path).
    public var denseLayers: DenseLayerPolicy = .automatic

    public init(threads: Int = 2, repeats: Int = 5, size: Int? = nil, python: String = "python3", scriptDirectory: String? = nil,
                mode: String? = nil, runPeer: Bool = true, images: [String: Tensor]? = nil, data: String? = nil, models: [String] = [], switchingAt: [Float] = [],
                panels: String? = nil, shifts: ShiftSet? = nil, stages: @escaping @Sendable (inout UnrolledAutoencoder<Convolution2DDictionary>) throws -> Void = { _ in },
                warmEach: Bool = false) {
        self.stages = stages
        self.warmEach = warmEach
        self.threads = threads
        self.repeats = repeats
        self.size = size
        self.python = python
        self.scriptDirectory = scriptDirectory
        self.mode = mode
        self.runPeer = runPeer
        self.images = images
        self.data = data
        self.models = models
        self.switchingAt = switchingAt
        self.panels = panels
        self.shifts = shifts
    }
}

/// One measured line of a report: our number, the peer's (if any) and their ratio.
public struct BenchRow: Codable, Sendable {
    /// What was measured, e.g. "sgemm 2000×2000×2000".
    public var name: String
    /// Unit of `ours` and `peer`, e.g. "GFLOP/s" or "ms".
    public var unit: String
    public var ours: Double
    /// What `ours` is (e.g. "Unroll (Debian OpenBLAS)", "flush on").
    public var oursLabel: String
    public var peer: Double?
    public var peerLabel: String?
    /// The ratio printed in the table, described by `ratioLabel` (e.g. "ours/NumPy").
    public var ratio: Double?
    public var ratioLabel: String?
    /// What the ratio should reach, when an issue sets it.
    public var target: BenchTarget?

    public init(name: String, unit: String, ours: Double, oursLabel: String, peer: Double? = nil, peerLabel: String? = nil,
                ratio: Double? = nil, ratioLabel: String? = nil, target: BenchTarget? = nil) {
        self.name = name
        self.unit = unit
        self.ours = ours
        self.oursLabel = oursLabel
        self.peer = peer
        self.peerLabel = peerLabel
        self.ratio = ratio
        self.ratioLabel = ratioLabel
        self.target = target
    }
}

/// The result of one benchmark case.
public struct BenchReport: Codable, Sendable {
    public var benchmark: String
    public var threads: Int
    public var repeats: Int
    public var rows: [BenchRow]
    /// Facts that explain the numbers (library versions, core types, raw times, peer errors).
    public var details: [String: String]
    /// Lines worth reading under the table (e.g. a target missed and why).
    public var notes: [String]

    public init(benchmark: String, threads: Int, repeats: Int, rows: [BenchRow] = [], details: [String: String] = [:], notes: [String] = []) {
        self.benchmark = benchmark
        self.threads = threads
        self.repeats = repeats
        self.rows = rows
        self.details = details
        self.notes = notes
    }

    /// A fixed-width table: case, ours, peer, ratio, target; then details and notes.
    public func table() -> String {
        var cells = [["case", "ours", "peer", "ratio", "target"]]
        for r in rows {
            cells.append([
                r.name,
                "\(BenchFormat.number(r.ours)) \(r.unit) (\(r.oursLabel))",
                r.peer.map { "\(BenchFormat.number($0)) \(r.unit) (\(r.peerLabel ?? "peer"))" } ?? "—",
                r.ratio.map { String(format: "%.2f", $0) + (r.ratioLabel.map { " \($0)" } ?? "") } ?? "—",
                r.target.map { "\($0.text) (issue \($0.issue))" } ?? "",
            ])
        }
        let widths = (0..<5).map { c in cells.map { $0[c].count }.max() ?? 0 }
        var lines = ["\(benchmark) — \(threads) thread\(threads == 1 ? "" : "s"), median of \(repeats)"]
        for (i, row) in cells.enumerated() {
            lines.append(row.enumerated().map { c, s in s.padding(toLength: widths[c], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces))
            if i == 0 { lines.append(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
        }
        for key in details.keys.sorted() { lines.append("  \(key): \(details[key]!)") }
        for note in notes { lines.append("note: \(note)") }
        return lines.joined(separator: "\n")
    }
}

/// A named benchmark. Later cases (PyTorch peers in `bench/*.py`) are added to `Benchmarks.all`.
public struct BenchmarkCase: Sendable {
    public var name: String
    public var summary: String
    public var run: @Sendable (BenchOptions) throws -> BenchReport

    public init(name: String, summary: String, run: @escaping @Sendable (BenchOptions) throws -> BenchReport) {
        self.name = name
        self.summary = summary
        self.run = run
    }
}

public struct BenchError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

public enum Benchmarks {
    /// Every case `unroll bench` knows, in the order `unroll bench all` runs them.
    public static let all: [BenchmarkCase] = [GemmBenchmark.case, FlushToZeroBenchmark.case, KernelBenchmarks.case,
                                              PudleBenchmarks.fig5Case, PudleBenchmarks.theoryCase, PudleBenchmarks.encodeCase, PudleBenchmarks.scalingCase,
                                              ConvDenoiseBenchmark.case, CRsAEBenchmarks.denoiseCase, CRsAEBenchmarks.spikesCase,
                                              VSCBenchmarks.linearCase, VSCBenchmarks.convCase,
                                              DenoiseBenchmark.case, ThreadScalingBenchmark.case]

    public static func named(_ name: String) -> BenchmarkCase? { all.first { $0.name == name } }

    /// Runs `name` with BLAS and `Parallel` set to `options.threads`.
    public static func run(_ name: String, options: BenchOptions) throws -> BenchReport {
        guard let c = named(name) else {
            throw BenchError("unknown benchmark '\(name)'; expected one of: \(all.map(\.name).joined(separator: ", "))")
        }
        guard options.threads >= 1, options.repeats >= 1 else {
            throw BenchError("--threads and --repeats must be ≥ 1 (got \(options.threads), \(options.repeats))")
        }
        if let s = options.size, s < 1 { throw BenchError("--size must be ≥ 1 (got \(s))") }
        var report = try Parallel.withWorkers(options.threads) { try c.run(options) }
        report.notes += BenchTargets.misses(report.rows)
        return report
    }

    /// One JSON object for a list of reports (`--json`).
    public static func json(_ reports: [BenchReport]) throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        struct All: Codable { var machine: [String: String]; var reports: [BenchReport] }
        let data = try enc.encode(All(machine: MachineInfo.summary(), reports: reports))
        return String(decoding: data, as: UTF8.self)
    }
}

enum BenchFormat {
    static func number(_ x: Double) -> String {
        if x == 0 || !x.isFinite { return "\(x)" }
        let a = abs(x)
        return a >= 100 ? String(format: "%.1f", x) : a >= 1 ? String(format: "%.2f", x) : String(format: "%.3g", x)
    }
}

/// Timing helpers.
enum Stopwatch {
    /// Seconds taken by `body`.
    static func seconds(_ body: () -> Void) -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.isEmpty ? .nan : s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}
