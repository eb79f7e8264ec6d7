import Foundation

/// Errors the numerical core throws for bad user input, bad checkpoints and diverging training.
///
/// Every message names the field (or step) and what was expected, so the CLI can print it as one line.
public enum UnrollError: Error, Equatable, Sendable, CustomStringConvertible, LocalizedError {
    /// A setting is out of range, e.g. "encoder λ must be ≥ 0, got -1".
    case invalidArgument(String)
    /// Tensors whose shapes do not fit together, e.g. data columns vs dictionary atom length.
    case shapeMismatch(String)
    /// NaN or ±Inf in user-supplied data or weights.
    case nonFinite(String)
    /// Training stopped at `step` (the step that failed; the trainer still holds step − 1's state).
    case diverged(step: Int, reason: String)
    /// A checkpoint that is missing an entry or does not fit the trainer it is restored into.
    case invalidCheckpoint(String)

    public var description: String {
        switch self {
        case let .invalidArgument(m): return "invalid argument: \(m)"
        case let .shapeMismatch(m): return "shape mismatch: \(m)"
        case let .nonFinite(m): return "non-finite values: \(m)"
        case let .diverged(step, reason): return "training diverged at step \(step): \(reason)"
        case let .invalidCheckpoint(m): return "invalid checkpoint: \(m)"
        }
    }

    public var errorDescription: String? { description }
}
