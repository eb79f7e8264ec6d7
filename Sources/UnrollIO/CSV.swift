import Foundation
import UnrollCore

/// Number formatting and reading of numeric CSV tables (optionally gzipped).
public enum CSV {
    /// Shortest text that reads back to exactly `x` in its own precision ("0.1", "1e-05", "nan", "inf";
    /// a Float 0.1 prints "0.1", not 0.10000000149011612); integral values without ".0".
    public static func format<T: BinaryFloatingPoint>(_ x: T) -> String {
        if x.rounded() == x, abs(x) < 1e15, !(x == 0 && x.sign == .minus) { return String(Int64(x)) }
        return String(describing: x)
    }

    /// A field quoted when it holds a comma, quote or line break.
    public static func field(_ s: String) -> String {
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// Writes a whole table atomically.
    public static func write(header: [String], rows: [[Double]], to path: String) throws {
        var text = header.map(field).joined(separator: ",") + "\n"
        for row in rows { text += row.map { format($0) }.joined(separator: ",") + "\n" }
        try AtomicFile.write(text, to: path)
    }

    /// A numeric table. The first row is a header only when none of its fields is a number; any other
    /// field that is not a number is an error naming its line and column (no row is lost silently).
    public static func readNumeric(_ path: String) throws -> (header: [String]?, table: Tensor) {
        let bytes = try FileBytes.readMaybeGzip(path)
        return try naming(path) { try decodeNumeric(bytes) }
    }

    public static func decodeNumeric(_ bytes: [UInt8]) throws -> (header: [String]?, table: Tensor) {
        if let nul = bytes.firstIndex(of: 0) {
            // Number parsing stops at a NUL byte, so "7\0abc" would read as 7.
            let line = bytes[..<nul].reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }
            throw UnrollIOError(.malformed, "CSV line \(line) contains a NUL byte (not a text file?)")
        }
        guard let text = String(bytes: bytes, encoding: .utf8) else { throw UnrollIOError(.malformed, "CSV is not UTF-8 text") }
        var header: [String]?
        var values: [Float] = []
        var columns = -1
        var rows = 0
        for (lineIndex, line) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            let fields = trimmed.split(separator: ",", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }
            let numbers = fields.map { Double($0) }
            if columns < 0 {
                columns = fields.count
                if numbers.allSatisfy({ $0 == nil }) {
                    header = fields.map { $0.hasPrefix("\"") && $0.hasSuffix("\"") && $0.count >= 2 ? String($0.dropFirst().dropLast()) : $0 }
                    continue
                }
            }
            guard fields.count == columns else {
                throw UnrollIOError(.malformed, "CSV line \(lineIndex + 1) has \(fields.count) fields, expected \(columns)")
            }
            for (k, v) in numbers.enumerated() {
                guard let v else {
                    throw UnrollIOError(.malformed, "CSV line \(lineIndex + 1), column \(k + 1): '\(fields[k])' is not a number")
                }
                values.append(Float(v))
            }
            rows += 1
        }
        return (header, Tensor(shape: [rows, max(columns, 0)], data: values))
    }

    /// A table whose last column is an integer class label (like scikit-learn's digits.csv.gz:
    /// 64 pixels then the label): the features `[n, columns − 1]` and the labels.
    public static func readLabeled(_ path: String) throws -> (x: Tensor, labels: [Int]) {
        let (_, table) = try readNumeric(path)
        let n = table.rows, c = table.shape[1]
        guard c >= 2 else { throw UnrollIOError(.malformed, file: path, "a labeled CSV needs at least 2 columns, found \(c)") }
        var x = [Float](), labels = [Int]()
        x.reserveCapacity(n * (c - 1))
        for i in 0..<n {
            x += table.data[(i * c)..<(i * c + c - 1)]
            let label = table.data[i * c + c - 1]
            guard label.rounded() == label, abs(label) < 1e9 else {
                throw UnrollIOError(.malformed, file: path, "row \(i + 1): label \(label) is not an integer")
            }
            labels.append(Int(label))
        }
        return (Tensor(shape: [n, c - 1], data: x), labels)
    }

    /// scikit-learn's 8×8 digits (`digits.csv.gz`): X `[1797, 64]` with values 0…16, labels 0…9.
    public static func loadDigits(_ path: String) throws -> (x: Tensor, labels: [Int]) {
        let (x, labels) = try readLabeled(path)
        guard x.shape[1] == 64 else {
            throw UnrollIOError(.malformed, file: path, "digits rows need 64 pixels and a label, found \(x.shape[1] + 1) columns")
        }
        return (x, labels)
    }
}

/// A CSV log written one row at a time: the header first, then each row goes to the file with
/// its own `write` system call, so a crash loses no finished row.
public final class CSVLog {
    public let path: String
    public let columns: [String]
    private let handle: FileHandle
    /// The rows a resumed log kept (fields as written), for the run's history.
    public private(set) var resumedRows: [[String]] = []

    /// Creates (or truncates) the file and writes the header. With `append`, an existing file with
    /// the same header is continued instead (resuming a run); a different header is an error.
    public init(path: String, columns: [String], append: Bool = false) throws {
        self.path = path
        self.columns = columns
        let headerLine = columns.map(CSV.field).joined(separator: ",") + "\n"
        let fm = FileManager.default
        var continuing = false
        if append, fm.fileExists(atPath: path) {
            let existing = try FileBytes.read(path)
            if !existing.isEmpty {
                guard existing.starts(with: Array(headerLine.utf8)) else {
                    throw UnrollIOError(.malformed, file: path, "cannot append: the existing header differs from \(columns.joined(separator: ","))")
                }
                continuing = true
            }
        }
        if !continuing {
            guard fm.createFile(atPath: path, contents: Data(headerLine.utf8)) else {
                throw UnrollIOError(.unwritable, file: path, "cannot create the CSV log")
            }
        }
        guard let h = FileHandle(forWritingAtPath: path) else {
            throw UnrollIOError(.unwritable, file: path, "cannot open the CSV log for writing")
        }
        handle = h
        do { try handle.seekToEnd() } catch {
            throw UnrollIOError(.unwritable, file: path, "cannot seek in the CSV log: \(error.localizedDescription)")
        }
    }

    /// Continues the log of a run resumed from its checkpoint at `step`: rows of later steps (first
    /// column), written after that checkpoint, are dropped first, so every step appears once.
    public convenience init(resuming path: String, columns: [String], upToStep step: Int) throws {
        var rows: [[String]] = []
        if FileManager.default.fileExists(atPath: path) {
            let lines = String(decoding: try FileBytes.read(path), as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true)
            let header = columns.map(CSV.field).joined(separator: ",")
            guard let first = lines.first, first == header else {
                throw UnrollIOError(.malformed, file: path, "cannot resume: the existing header differs from \(columns.joined(separator: ","))")
            }
            let kept = [first] + lines.dropFirst().filter { line in
                (line.split(separator: ",", maxSplits: 1).first.flatMap { Double($0) } ?? .infinity) <= Double(step)
            }
            if kept.count != lines.count { try AtomicFile.write(kept.joined(separator: "\n") + "\n", to: path) }
            rows = kept.dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        }
        try self.init(path: path, columns: columns, append: true)
        resumedRows = rows
    }

    deinit { try? handle.close() }

    /// A row of numbers (Double or Float), each in its shortest exact form.
    public func append<T: BinaryFloatingPoint>(_ values: [T]) throws { try append(fields: values.map { CSV.format($0) }) }

    /// A row of already formatted fields (quoted here when needed).
    public func append(fields: [String]) throws {
        guard fields.count == columns.count else {
            throw UnrollIOError(.malformed, file: path, "CSV row has \(fields.count) fields, the header has \(columns.count)")
        }
        let line = fields.map(CSV.field).joined(separator: ",") + "\n"
        do { try handle.write(contentsOf: Data(line.utf8)) } catch {
            throw UnrollIOError(.unwritable, file: path, "cannot write to the CSV log: \(error.localizedDescription)")
        }
    }
}
