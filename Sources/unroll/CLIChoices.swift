import Foundation
import ArgumentParser
import Unroll

// Command-line spellings of the library's settings (kebab-case, as users type them).

enum EncoderChoice: String, CaseIterable, ExpressibleByArgument {
    case ista, fista

    var algorithm: UnrolledEncoder.Algorithm { self == .ista ? .ista : .fista }
}

enum ThresholdChoice: String, CaseIterable, ExpressibleByArgument {
    case soft
    case nonNegative = "non-negative"
    case hard

    var threshold: Threshold {
        switch self {
        case .soft: return .soft
        case .nonNegative: return .nonNegative
        case .hard: return .hard
        }
    }

    init(_ threshold: Threshold) {
        switch threshold {
        case .soft: self = .soft
        case .nonNegative: self = .nonNegative
        case .hard: self = .hard
        }
    }
}

/// The training rule: PUDLE's three gradients and the two baselines.
enum GradientChoice: String, CaseIterable, ExpressibleByArgument {
    case decoder, lasso
    case leastSquares = "least-squares"
    /// PUDLE's Algorithm 1: FISTA to a tolerance, then a g_dec step.
    case alternating
    case noodl

    /// The trainer's gradient mode (alternating minimisation is `decoder` with a converged encoder).
    var mode: GradientMode {
        switch self {
        case .decoder, .alternating: return .decoder
        case .lasso: return .lasso
        case .leastSquares: return .leastSquares
        case .noodl: return .noodl
        }
    }

    /// The name used in the paper and in tables.
    var paperName: String {
        switch self {
        case .decoder: return "g_dec"
        case .lasso: return "g_ae-lasso"
        case .leastSquares: return "g_ae-ls"
        case .alternating: return "alternating"
        case .noodl: return "NOODL"
        }
    }
}

enum OptimizerChoice: String, CaseIterable, ExpressibleByArgument {
    case adam, sgd
}

/// `--step α|auto`: a fixed step, or α = 1/L from power iteration on the current dictionary.
struct StepChoice: ExpressibleByArgument, CustomStringConvertible {
    var step: StepSize

    init?(argument: String) {
        if argument.lowercased() == "auto" {
            step = .inverseLipschitz()
        } else if let a = Float(argument) {
            step = .fixed(a)   // range checked by the library (α > 0)
        } else {
            return nil
        }
    }

    init(_ step: StepSize) { self.step = step }

    var description: String {
        switch step {
        case let .fixed(a): return a.description
        case .inverseLipschitz: return "auto"
        }
    }
}

/// `--batch N|full`.
struct BatchChoice: ExpressibleByArgument, CustomStringConvertible {
    /// nil = the whole data set.
    var size: Int?

    init?(argument: String) {
        if argument.lowercased() == "full" {
            size = nil
        } else if let n = Int(argument) {
            size = n   // ≥ 1 checked by the library
        } else {
            return nil
        }
    }

    var description: String { size.map(String.init) ?? "full" }
}

/// `--patch HxW`: the atom's shape as an image patch.
struct PatchShape: ExpressibleByArgument, CustomStringConvertible {
    var height: Int
    var width: Int

    init?(argument: String) {
        let parts = argument.lowercased().split(separator: "x")
        guard parts.count == 2, let h = Int(parts[0]), let w = Int(parts[1]), h >= 1, w >= 1 else { return nil }
        height = h
        width = w
    }

    init(height: Int, width: Int) {
        self.height = height
        self.width = width
    }

    var description: String { "\(height)x\(width)" }
}

/// "10, 20" → [10, 20] for a comma-separated option whose values must be ≥ `minimum`; nil stays nil.
func parseIntList(_ text: String?, _ option: String, minimum: Int) throws -> [Int]? {
    guard let text else { return nil }
    let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    let values = parts.compactMap { Int($0) }
    guard !parts.isEmpty, values.count == parts.count, values.allSatisfy({ $0 >= minimum }) else {
        let what = minimum == 0 ? "non-negative integers" : minimum == 1 ? "positive integers" : "integers ≥ \(minimum)"
        throw ValidationError("\(option) needs \(what) separated by commas, got '\(text)'")
    }
    return values
}

/// "a, b" → the values of the named choices, in the order given; an unknown name is an error listing the known ones.
func parseChoices<T>(_ text: String, _ option: String, _ choices: [(name: String, value: T)]) throws -> [T] {
    try text.split(separator: ",").map { part in
        let name = part.trimmingCharacters(in: .whitespaces)
        guard let found = choices.first(where: { $0.name == name }) else {
            throw ValidationError("\(option): unknown '\(name)'; expected " + choices.map(\.name).joined(separator: ", "))
        }
        return found.value
    }
}
