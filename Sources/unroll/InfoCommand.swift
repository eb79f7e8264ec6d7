import ArgumentParser
import Foundation
import Unroll
import UnrollCore
import UnrollIO

/// `unroll info FILE...`: what each array file holds, with summary statistics.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what model files and data files hold (.safetensors .npy .npz .png .pgm IDX .csv, optionally .gz).",
        discussion: """
            For a model file (any kind or version): the model's kind, banks, encoder settings and \
            provenance. For each array: name, shape, dtype on disk, min, max, mean and the fraction of \
            zeros. Images are shown scaled to [0, 1]; IDX and CSV values keep their scale.
            """)

    @Argument(help: "Files to describe.")
    var files: [String]

    func run() throws {
        for (k, path) in files.enumerated() {
            let contents = try DataFile.read(path)
            if k > 0 { print("") }
            print("\(path)  (\(contents.format.rawValue), \(contents.arrays.count) array\(contents.arrays.count == 1 ? "" : "s"))")
            let lower = path.lowercased()
            if lower.hasSuffix(".safetensors") || lower.hasSuffix(".npz"), let model = try? ModelFile.read(path) {
                for line in model.summary { print("  " + line) }
                if contents.format == .safetensors { print("  (the file's metadata and arrays follow)") }
            }
            var rows = [["name", "shape", "dtype", "min", "max", "mean", "zeros"]]
            for (name, array) in contents.arrays {
                let s = Summary(array.tensor.data)
                var row = [name, "[" + array.shape.map(String.init).joined(separator: ", ") + "]", array.dtype,
                           fmt(s.min), fmt(s.max), fmt(s.mean), String(format: "%.1f%%", 100 * s.zeroFraction)]
                if s.nonFinite > 0 { row[6] += "  (\(s.nonFinite) NaN/inf)" }
                rows.append(row)
            }
            printTable(rows)
            if contents.format == .png || contents.format == .pgm {
                print("  (pixel values divided by the format's maximum, so in [0, 1])")
            }
            if !contents.metadata.isEmpty {
                print("  metadata:")
                for key in contents.metadata.keys.sorted() { print("    \(key): \(contents.metadata[key]!)") }
            }
        }
        print("")
        print("note: samples are rows (n×m), codes n×p; a dense dictionary is stored p×m with atoms as rows, so X ≈ Z·W.")
    }

    private func fmt(_ x: Double) -> String { x.isNaN ? "-" : String(format: "%.6g", x) }

    private func printTable(_ rows: [[String]]) {
        let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max()! }
        for row in rows {
            let cells = row.enumerated().map { c, cell in
                c == row.count - 1 ? cell : cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
            }
            print("  " + cells.joined(separator: "  "))
        }
    }
}

/// Min, max and mean over the finite values (accumulated in Double), and the share of zeros.
private struct Summary {
    var min = Double.nan, max = Double.nan, mean = Double.nan
    var zeroFraction = 0.0
    var nonFinite = 0

    init(_ values: [Float]) {
        var lo = Float.infinity, hi = -Float.infinity
        var sum = 0.0
        var zeros = 0, finite = 0
        values.withUnsafeBufferPointer { v in
            for x in v {
                if x == 0 { zeros += 1 }
                guard x.isFinite else { continue }
                finite += 1
                lo = Swift.min(lo, x)
                hi = Swift.max(hi, x)
                sum += Double(x)
            }
        }
        nonFinite = values.count - finite
        if finite > 0 { min = Double(lo); max = Double(hi); mean = sum / Double(finite) }
        if !values.isEmpty { zeroFraction = Double(zeros) / Double(values.count) }
    }
}
