import Foundation

/// The one-cycle learning-rate schedule of rosinality's `CycleScheduler` (vq-vae-2), as the VSC code
/// uses it: a linear warm-up from lr/25 to lr over the first 5% of the steps, then a cosine decay
/// from lr to lr/25/1e4 over the rest.
///
/// `learningRate(step:)` is the rate of update `step` (0-based), matching the Python scheduler stepped
/// before each update: the warm-up phase has `w = ⌊0.05·total⌋` updates, update k = step + 1 ≤ w uses
/// lr/25 + (k/w)·(lr − lr/25), so update w−1 runs at exactly lr; the remaining `total − w` updates use
/// lr/25/1e4 + (lr − lr/25/1e4)·(1 + cos(π·(k − w)/(total − w)))/2, so the last runs at exactly lr/25/1e4.
public struct OneCycleSchedule: Equatable, Sendable {
    public var maxLearningRate: Float
    public var totalSteps: Int
    public var warmupFraction: Double
    /// The warm-up starts at maxLearningRate / divider.
    public var divider: Double
    /// The decay ends at maxLearningRate / divider / finalDivider.
    public var finalDivider: Double

    public init(maxLearningRate: Float, totalSteps: Int, warmupFraction: Double = 0.05,
                divider: Double = 25, finalDivider: Double = 1e4) {
        self.maxLearningRate = maxLearningRate
        self.totalSteps = totalSteps
        self.warmupFraction = warmupFraction
        self.divider = divider
        self.finalDivider = finalDivider
    }

    /// Updates in the warm-up phase (Python's `int(total · fraction)`).
    public var warmupSteps: Int { Int(Double(totalSteps) * warmupFraction) }

    /// What is wrong with the settings (thrown `UnrollError.invalidArgument`).
    public func validate() throws {
        guard maxLearningRate.isFinite, maxLearningRate > 0 else {
            throw UnrollError.invalidArgument("one-cycle peak learning rate must be finite and > 0, got \(maxLearningRate)")
        }
        guard totalSteps >= 1 else {
            throw UnrollError.invalidArgument("one-cycle total steps must be ≥ 1, got \(totalSteps)")
        }
        guard warmupFraction.isFinite, warmupFraction >= 0, warmupFraction < 1 else {
            throw UnrollError.invalidArgument("one-cycle warm-up fraction must be in [0, 1), got \(warmupFraction)")
        }
        guard divider.isFinite, divider >= 1, finalDivider.isFinite, finalDivider >= 1 else {
            throw UnrollError.invalidArgument("one-cycle dividers must be finite and ≥ 1, got \(divider) and \(finalDivider)")
        }
    }

    /// The learning rate of update `step` (0-based); steps past the end keep the final rate.
    public func learningRate(step: Int) -> Float {
        let peak = Double(maxLearningRate), start = peak / divider, end = start / finalDivider
        let w = warmupSteps, k = Swift.min(Swift.max(step, 0), totalSteps - 1) + 1
        if k <= w {
            return Float(start + Double(k) / Double(w) * (peak - start))
        }
        let p = Double(k - w) / Double(Swift.max(1, totalSteps - w))
        return Float(end + (peak - end) * (1 + cos(Double.pi * p)) / 2)
    }
}
