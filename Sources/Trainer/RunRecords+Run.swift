import ARPO
import Foundation
import RunRecords

// The parts of the run records that need the trainer's own types: an evaluation's record from an
// `EvaluationResult`, and the lines that only the trainer reads or writes.

extension HeldOutEvaluation {
    /// The record of `result`, taken after global step `step`.
    public init(_ result: EvaluationResult, step: Int, phase: String? = nil, toolCallsExecutedTotal: Int? = nil, isFinal: Bool? = nil) {
        self.init(
            step: step, phase: phase, toolCallsExecutedTotal: toolCallsExecutedTotal, isFinal: isFinal,
            accuracy: result.accuracy, accuracyByFamily: result.accuracyByFamily, episodesByFamily: result.episodesByFamily,
            formatErrorRate: result.formatErrorRate, toolCallsPerEpisode: result.toolCallsPerEpisode, meanReward: result.meanReward,
            episodes: result.episodes, samples: result.samples, ignoredToolFailureRate: result.ignoredToolFailureRate)
    }
}

extension EvaluationResult: Encodable {
    /// The eval.jsonl fields of the evaluation itself, without `step` and `phase`.
    public func encode(to encoder: Encoder) throws {
        try HeldOutEvaluation(self, step: 0).encodeMeasurements(to: encoder)
    }
}

/// The `step` of a JSON Lines record, all that resuming needs to know of it.
struct RecordStep: Decodable {
    var step: Int?
}

/// One line of `fork_decisions.jsonl`: the decision's fields and the global step of its rollout.
struct ForkDecisionLine: Encodable {
    var step: Int
    var decision: ForkDecision

    enum CodingKeys: String, CodingKey { case step }

    func encode(to encoder: Encoder) throws {
        try decision.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(step, forKey: .step)
    }
}
