import Foundation
import Unroll
import UnrollCore

/// How big a `reproduce` run is: `paper` is the published setting, `small` a reduced one that runs in
/// minutes, `tiny` one that runs in seconds (for tests).
public enum ReproductionScale: String, CaseIterable, Sendable {
    case tiny, small, paper
}

/// One value naming a row's setting (`"T": 100`, `"gradient": "ae-ls"`).
public enum SettingValue: Equatable, Sendable, CustomStringConvertible {
    case int(Int)
    case double(Double)
    case string(String)

    public var description: String {
        switch self {
        case let .int(v): return String(v)
        case let .double(v): return ReproductionTable.format(v)
        case let .string(v): return v
        }
    }

    var json: String {
        switch self {
        case let .int(v): return String(v)
        case let .double(v): return ReproductionTable.jsonNumber(v)
        case let .string(v): return JSONLiteral.string(v)
        }
    }
}

/// One row of a reproduction table: its setting (ordered key/value pairs), what we measured, and the
/// paper's number for the same setting (nil where the paper has none).
public struct ReproductionRow: Equatable, Sendable {
    public struct Entry: Equatable, Sendable {
        public var key: String
        public var value: SettingValue
        public init(_ key: String, _ value: SettingValue) {
            self.key = key
            self.value = value
        }
    }

    public var setting: [Entry]
    public var measured: Double?
    public var paper: Double?

    public init(setting: [Entry], measured: Double?, paper: Double?) {
        self.setting = setting
        self.measured = measured
        self.paper = paper
    }

    /// The value of setting `key`, if the row has it.
    public subscript(key: String) -> SettingValue? {
        setting.first { $0.key == key }?.value
    }
}

/// The result table of one `reproduce` experiment, printed as text or as one JSON object
/// `{"experiment", "scale", "rows": [{…setting…, "measured", "paper"}], "notes", "info"}`.
/// Every experiment (theory, gradients, fig5, and later ones) produces this shape.
public struct ReproductionTable: Equatable, Sendable {
    public var experiment: String
    public var scale: String
    public var rows: [ReproductionRow]
    /// Lines printed under the table (data variant, what the paper column means at this scale, …).
    public var notes: [String]
    /// Run facts (seed, wall time, sizes), printed after the notes and kept in the JSON as `"info"`.
    public var info: [ReproductionRow.Entry]

    public init(experiment: String, scale: String, rows: [ReproductionRow] = [], notes: [String] = [],
                info: [ReproductionRow.Entry] = []) {
        self.experiment = experiment
        self.scale = scale
        self.rows = rows
        self.notes = notes
        self.info = info
    }

    /// Rows whose settings contain all of `match` (e.g. `["T": .int(100), "gradient": .string("ae-ls")]`).
    public func rows(where match: [String: SettingValue]) -> [ReproductionRow] {
        rows.filter { row in match.allSatisfy { row[$0.key] == $0.value } }
    }

    /// The measured value of the single row matching `match` (nil if none or ambiguous).
    public func measured(_ match: [String: SettingValue]) -> Double? {
        let found = rows(where: match)
        return found.count == 1 ? found[0].measured : nil
    }

    // MARK: JSON

    /// One JSON object on one line; non-finite numbers become null.
    public func json() -> String {
        let rowText = rows.map { row -> String in
            var fields = row.setting.map { "\(JSONLiteral.string($0.key)): \($0.value.json)" }
            fields.append("\"measured\": \(row.measured.map(Self.jsonNumber) ?? "null")")
            fields.append("\"paper\": \(row.paper.map(Self.jsonNumber) ?? "null")")
            return "{" + fields.joined(separator: ", ") + "}"
        }
        let infoText = info.map { "\(JSONLiteral.string($0.key)): \($0.value.json)" }
        return "{\"experiment\": \(JSONLiteral.string(experiment)), \"scale\": \(JSONLiteral.string(scale)), "
            + "\"rows\": [" + rowText.joined(separator: ", ") + "], "
            + "\"notes\": [" + notes.map(JSONLiteral.string).joined(separator: ", ") + "], "
            + "\"info\": {" + infoText.joined(separator: ", ") + "}}"
    }

    static func jsonNumber(_ v: Double) -> String {
        guard v.isFinite else { return "null" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return "\(v)"
    }

    // MARK: text

    /// A fixed-width table: one column per setting key (in order of first appearance), then
    /// `measured`, `paper` and `measured/paper`; then the notes and the info.
    public func text() -> String {
        var keys: [String] = []
        for row in rows { for e in row.setting where !keys.contains(e.key) { keys.append(e.key) } }
        let header = keys + ["measured", "paper", "ratio"]
        var cells: [[String]] = rows.map { row in
            let ratio: String
            if let m = row.measured, let p = row.paper, p != 0 { ratio = String(format: "%.2f", m / p) } else { ratio = "" }
            return keys.map { row[$0]?.description ?? "" }
                + [row.measured.map(Self.format) ?? "—", row.paper.map(Self.format) ?? "—", ratio]
        }
        cells.insert(header, at: 0)
        var widths = [Int](repeating: 0, count: header.count)
        for line in cells { for (i, c) in line.enumerated() { widths[i] = max(widths[i], c.count) } }
        var lines = ["\(experiment) (scale \(scale))"]
        for (n, line) in cells.enumerated() {
            let padded = line.enumerated().map { i, c -> String in
                // Settings left-aligned, numbers right-aligned.
                let pad = String(repeating: " ", count: widths[i] - c.count)
                return i < keys.count ? c + pad : pad + c
            }
            lines.append(padded.joined(separator: "  "))
            if n == 0 { lines.append(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
        }
        for note in notes { lines.append("note: " + note) }
        if !info.isEmpty { lines.append(info.map { "\($0.key) \($0.value)" }.joined(separator: ", ")) }
        return lines.joined(separator: "\n")
    }

    /// Four significant digits, plain or scientific by magnitude.
    static func format(_ v: Double) -> String {
        guard v.isFinite else { return v.isNaN ? "nan" : (v > 0 ? "inf" : "-inf") }
        if v == 0 { return "0" }
        let a = abs(v)
        if a >= 1e-3 && a < 1e5 { return String(format: "%.4g", v) }
        return String(format: "%.3e", v)
    }
}

/// Curves of one figure: a shared x axis and named series, written by the CLI as a CSV (x column,
/// then one column per series) and a PNG line plot.
public struct CurveSet: Sendable {
    public struct Series: Sendable {
        public var name: String
        public var y: [Double]
        public init(_ name: String, y: [Double]) {
            self.name = name
            self.y = y
        }
    }

    /// File stem (e.g. `theory_T100`).
    public var name: String
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var logY: Bool
    public var x: [Double]
    /// Each series has one value per x (NaN where there is none).
    public var series: [Series]

    public init(name: String, title: String, xLabel: String, yLabel: String, logY: Bool, x: [Double],
                series: [Series] = []) {
        self.name = name
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.logY = logY
        self.x = x
        self.series = series
    }

    /// Adds a series, padding with NaN or cutting it to the length of x.
    public mutating func add(_ name: String, y: [Double]) {
        var v = Array(y.prefix(x.count))
        if v.count < x.count { v += [Double](repeating: .nan, count: x.count - v.count) }
        series.append(Series(name, y: v))
    }
}

/// What a `reproduce` runner returns: the table and the curves behind it.
public struct ReproductionResult: Sendable {
    public var table: ReproductionTable
    public var curves: [CurveSet]

    public init(table: ReproductionTable, curves: [CurveSet]) {
        self.table = table
        self.curves = curves
    }
}

/// Progress reports from a runner (to stderr in the CLI), and the partial result after each finished
/// configuration, so that a long run leaves its finished part on disk.
public struct ReproductionCallbacks {
    public var progress: ((String) -> Void)?
    public var partial: ((ReproductionResult) -> Void)?

    public init(progress: ((String) -> Void)? = nil, partial: ((ReproductionResult) -> Void)? = nil) {
        self.progress = progress
        self.partial = partial
    }
}

extension GradientMode {
    /// The paper's names: `dec`, `ae-lasso`, `ae-ls`, `noodl`.
    public var paperName: String {
        switch self {
        case .decoder: return "dec"
        case .lasso: return "ae-lasso"
        case .leastSquares: return "ae-ls"
        case .noodl: return "noodl"
        }
    }
}
