import Foundation
import UnrollCore
import UnrollIO

/// A command-line reference to one array in a file: `FILE` or `FILE:NAME` (e.g. `data.npz:X`).
/// A path that exists as given is never split, so file names containing ':' still work.
struct ArrayReference: CustomStringConvertible {
    var path: String
    var name: String?

    init(_ text: String) {
        if FileManager.default.fileExists(atPath: text) {
            path = text
            name = nil
        } else if let colon = text.lastIndex(of: ":"), colon != text.startIndex,
                  text.index(after: colon) != text.endIndex {
            path = String(text[..<colon])
            name = String(text[text.index(after: colon)...])
        } else {
            path = text
            name = nil
        }
    }

    var description: String { name.map { "\(path):\($0)" } ?? path }
}

/// Loading arrays for the CLI: every format `DataFile` reads, one named array picked out.
enum ArrayInput {
    /// All arrays of a file (by name, in file order) and its format.
    static func arrays(_ path: String, option: String) throws -> (format: DataFile.Format, arrays: [(name: String, tensor: Tensor)]) {
        try inContext(option) {
            let contents = try DataFile.read(path)
            return (contents.format, contents.arrays.map { ($0.name, $0.array.tensor) })
        }
    }

    /// The array `reference.name`, or else the first of `defaults` present, or else the file's only array.
    /// Errors name the option and list the arrays the file has.
    static func load(_ reference: ArrayReference, option: String, defaults: [String]) throws
        -> (name: String, tensor: Tensor, format: DataFile.Format)
    {
        let (format, arrays) = try arrays(reference.path, option: option)
        let names = arrays.map(\.name)
        let listing = names.isEmpty ? "no arrays" : "arrays " + names.map { "'\($0)'" }.joined(separator: ", ")
        if let wanted = reference.name {
            guard let hit = arrays.first(where: { $0.name == wanted }) else {
                throw CLIError("\(option) \(reference): \(reference.path) has no array '\(wanted)' (it has \(listing))")
            }
            return (hit.name, hit.tensor, format)
        }
        for d in defaults {
            if let hit = arrays.first(where: { $0.name == d }) { return (hit.name, hit.tensor, format) }
        }
        if arrays.count == 1 { return (arrays[0].name, arrays[0].tensor, format) }
        let hint = defaults.isEmpty ? "" : " none is named \(defaults.map { "'\($0)'" }.joined(separator: " or ")), so"
        throw CLIError("\(option) \(reference.path): the file has \(listing);\(hint) pick one as \(reference.path):NAME")
    }

    /// `tensor` as a matrix of samples in rows: the first axis counts samples and the others are
    /// flattened (an IDX/npy stack [n, h, w] becomes [n, h·w]); a vector is one sample; an image
    /// file (PNG, PGM) is one sample of all its pixels.
    static func rows(_ tensor: Tensor, format: DataFile.Format, option: String, source: String) throws -> Tensor {
        guard tensor.rank >= 1, tensor.count > 0 else {
            throw CLIError("\(option) \(source): expected a non-empty array, got shape \(tensor.shape)")
        }
        if format == .png || format == .pgm || tensor.rank == 1 { return tensor.reshaped([1, tensor.count]) }
        return tensor.reshaped([tensor.shape[0], tensor.count / tensor.shape[0]])
    }

    /// A data matrix (samples as rows) from `reference`, checked for NaN/Inf: a float32 `.npy` of rank
    /// ≥ 2 is mapped into memory (`MappedRows`), every other file is read.
    static func rowSource(_ reference: ArrayReference, option: String, defaults: [String]) throws -> any RowSource {
        let path = reference.path, stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        if path.lowercased().hasSuffix(".npy"), reference.name == nil || reference.name == stem,
           let mapped = try inContext(option, { try Npy.mapRows(path) }), mapped.shape.count >= 2 {
            if let bad = mapped.firstNonFinite {
                let c = mapped.valuesPerRow
                throw CLIError("\(option) \(path): array '\(stem)' contains NaN or Inf (first at row \(bad / c), column \(bad % c))")
            }
            return mapped
        }
        return try matrix(reference, option: option, defaults: defaults).tensor
    }

    /// A data matrix (samples as rows) from `reference`, checked for NaN/Inf.
    static func matrix(_ reference: ArrayReference, option: String, defaults: [String]) throws -> (name: String, tensor: Tensor) {
        let (name, raw, format) = try load(reference, option: option, defaults: defaults)
        let x = try rows(raw, format: format, option: option, source: reference.path)
        if x.hasNonFinite {
            let bad = x.data.firstIndex { !$0.isFinite }!
            throw CLIError("\(option) \(reference.path): array '\(name)' contains NaN or Inf (first at row \(bad / x.cols), column \(bad % x.cols))")
        }
        return (name, x)
    }
}
