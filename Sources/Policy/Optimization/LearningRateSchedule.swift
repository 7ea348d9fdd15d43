import Foundation

/// Learning rate over optimizer steps: linear warm-up from 0, then constant or cosine decay to
/// `minimumRatio` of the peak.
public struct LearningRateSchedule: Codable, Equatable, Sendable {
    public enum Decay: String, Codable, Sendable { case constant, cosine }

    public var peak: Double
    public var warmupSteps: Int
    public var totalSteps: Int
    public var decay: Decay
    public var minimumRatio: Double

    public init(peak: Double, warmupSteps: Int = 0, totalSteps: Int = 1, decay: Decay = .constant, minimumRatio: Double = 0.1) {
        self.peak = peak
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.decay = decay
        self.minimumRatio = minimumRatio
    }

    /// The rate for (0-based) `step`.
    public func rate(at step: Int) -> Double {
        if step < warmupSteps { return peak * Double(step + 1) / Double(warmupSteps) }
        switch decay {
        case .constant: return peak
        case .cosine:
            let span = Swift.max(totalSteps - warmupSteps, 1)
            let progress = Swift.min(Double(step - warmupSteps) / Double(span), 1)
            return peak * (minimumRatio + (1 - minimumRatio) * 0.5 * (1 + cos(.pi * progress)))
        }
    }
}
