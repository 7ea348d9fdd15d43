import Foundation

/// Why an episode ended, as reported by the rollout engine.
public enum EndReason: String, Codable, CaseIterable, Sendable {
    /// The policy closed `<answer>` … `</answer>` (and possibly wrote `<|end|>`).
    case answered
    /// The policy ran out of tokens.
    case tokenLimit = "token_limit"
    /// The environment reported that the tool-call limit was exceeded.
    case callLimit = "call_limit"
}

/// A finished episode's reward and every term it is made of.
///
/// `total` is always `RewardFunction.total(...)` of the terms below, so a log of the breakdown
/// explains the reward.
public struct RewardBreakdown: Equatable, Codable, Sendable {
    /// The reward.
    public let total: Double
    /// Whether the transcript passed the format check (see `Episode.finish`).
    public let formatCorrect: Bool
    /// The first format rule broken, in words; nil when the format is correct.
    public let formatViolation: String?
    /// The answer the policy gave, if it closed one.
    public let answer: String?
    /// The answer's score in [0, 1] under the configured scoring (0 without an answer). It
    /// enters the total only when the format is correct.
    public let answerScore: Double
    /// Whether the episode solved the task: correct format and a correct answer.
    public let isCorrect: Bool
    /// The multi-tool bonus earned (0 unless correct with more than one kind of tool).
    public let multiToolBonus: Double
    /// The tool-efficiency factor applied (1 when tool efficiency is off).
    public let toolEfficiencyFactor: Double
    /// The sum of the per-error penalties (0 unless `error_penalties` is configured).
    public let errorPenalty: Double
    /// The reward when the format is wrong (`bad_format_reward`), or 0 when it is right.
    public let formatReward: Double
    /// Every error recorded in the episode, in order, one entry per occurrence.
    public let errors: [EpisodeErrorKind]
    /// Tool calls that passed the action evaluator and were run (injected failures included):
    /// the count ARPO's efficiency claims are about.
    public let executedToolCalls: Int
    /// Every call the environment answered, valid or not, including one over the limit.
    public let toolCallAttempts: Int
    /// The kinds of tool executed, in `ToolName.allCases` order.
    public let toolKindsUsed: [ToolName]
    /// Why the episode ended.
    public let endReason: EndReason

    /// A breakdown whose total is computed from its terms.
    init(
        formatCorrect: Bool, formatViolation: String?, answer: String?, answerScore: Double,
        isCorrect: Bool, multiToolBonus: Double, toolEfficiencyFactor: Double, errorPenalty: Double,
        formatReward: Double, errors: [EpisodeErrorKind], executedToolCalls: Int,
        toolCallAttempts: Int, toolKindsUsed: [ToolName], endReason: EndReason
    ) {
        self.formatCorrect = formatCorrect
        self.formatViolation = formatViolation
        self.answer = answer
        self.answerScore = answerScore
        self.isCorrect = isCorrect
        self.multiToolBonus = multiToolBonus
        self.toolEfficiencyFactor = toolEfficiencyFactor
        self.errorPenalty = errorPenalty
        self.formatReward = formatReward
        self.errors = errors
        self.executedToolCalls = executedToolCalls
        self.toolCallAttempts = toolCallAttempts
        self.toolKindsUsed = toolKindsUsed
        self.endReason = endReason
        total = RewardFunction.total(
            formatCorrect: formatCorrect, formatReward: formatReward, answerScore: answerScore,
            multiToolBonus: multiToolBonus, toolEfficiencyFactor: toolEfficiencyFactor,
            errorPenalty: errorPenalty
        )
    }

    /// The same breakdown with another tool-efficiency factor and the total recomputed.
    public func withToolEfficiencyFactor(_ factor: Double) -> RewardBreakdown {
        RewardBreakdown(
            formatCorrect: formatCorrect, formatViolation: formatViolation, answer: answer,
            answerScore: answerScore, isCorrect: isCorrect, multiToolBonus: multiToolBonus,
            toolEfficiencyFactor: factor, errorPenalty: errorPenalty, formatReward: formatReward,
            errors: errors, executedToolCalls: executedToolCalls, toolCallAttempts: toolCallAttempts,
            toolKindsUsed: toolKindsUsed, endReason: endReason
        )
    }

    /// How many times `kind` was recorded.
    public func count(of kind: EpisodeErrorKind) -> Int {
        errors.reduce(0) { $0 + ($1 == kind ? 1 : 0) }
    }
}

/// The reward formulas.
///
/// ARPO's hierarchical reward, with the optional OTC-PO efficiency factor and error-oriented
/// penalties:
///
///     total = bad_format_reward - P                                  if the format is wrong
///     total = (S + B) * F - P                                        otherwise
///
/// - S, the answer score in [0, 1]: 1 for a correct answer, else 0 (`answer_scoring: exact`),
///   or token F1 for text answers (`answer_scoring: f1`).
/// - B, the multi-tool bonus: `multi_tool_bonus` (0.1) when the answer is correct and more than
///   one kind of tool was executed, else 0. Correct, not merely a positive score as in the
///   released ARPO code: under `f1` a positive score can be partial credit (see
///   `RewardConfig.multiToolBonus`).
/// - F, the tool-efficiency factor: 1 unless `tool_efficiency` is on. Being multiplicative, a
///   wrong answer (S = 0) gets no efficiency credit. With m executed calls:
///   without group information, F = cos(m * pi / (2m + c)), c = `tool_efficiency_c`;
///   with n, the fewest executed calls among the group's correct trajectories (see
///   `applyToolEfficiency`), F = sin(f * pi / (2n)), f = 2nm / (m + n), which peaks at m = n;
///   F = 1 when m = n = 0, and the group-free form is used when n = 0 < m or no trajectory of
///   the group is correct.
/// - P, the error penalty: the sum over recorded errors of `error_penalties[kind]`.
public enum RewardFunction {
    /// Scores a finished episode of either kind (`Episode.finish`, `TaskEpisode.finish`): the
    /// format of `policyText`, the end reason and the answer, with the errors this adds appended
    /// to `errors` (`malformed_call`, `over_length`, `over_call_limit`, `no_answer`,
    /// `wrong_answer`, `ignored_tool_failure`; see `Episode.finish`).
    ///
    /// - Parameters:
    ///   - evaluate: the answer against the episode's gold answer or answers.
    ///   - distinctToolsUsed: how many different tools were executed (the multi-tool bonus needs
    ///     more than one).
    ///   - toolKindsUsed: the built-in tools executed, for the breakdown.
    static func score(
        policyText: String, endReason: EndReason, responses: [ToolResponse], errors: inout [EpisodeErrorKind],
        evaluate: (String) -> AnswerEvaluation, distinctToolsUsed: Int, executedToolCalls: Int,
        toolKindsUsed: [ToolName], reward: RewardConfig
    ) -> RewardBreakdown {
        let format = TranscriptFormat(transcript: policyText, answeredCalls: responses.count)
        var violation = format.violation
        if format.hasUnansweredMalformedCall { errors.append(.malformedCall) }
        switch endReason {
        case .answered: break
        case .tokenLimit:
            errors.append(.overLength)
            violation = violation ?? "token limit reached"
        case .callLimit:
            if !errors.contains(.overCallLimit) { errors.append(.overCallLimit) }
            violation = violation ?? "tool-call limit reached"
        }

        var answerScore = 0.0
        var answerIsCorrect = false
        if let answer = format.answer {
            let evaluation = evaluate(answer)
            answerScore = evaluation.score(reward.answerScoring)
            answerIsCorrect = evaluation.isCorrect
            if !answerIsCorrect { errors.append(.wrongAnswer) }
            if responses.last?.reportsFailure == true { errors.append(.ignoredToolFailure) }
        } else {
            errors.append(.noAnswer)
        }

        let formatCorrect = violation == nil
        let isCorrect = formatCorrect && answerIsCorrect
        let bonus = isCorrect && distinctToolsUsed > 1 ? reward.multiToolBonus : 0
        let factor = reward.toolEfficiency ? toolEfficiencyFactor(calls: executedToolCalls, c: reward.toolEfficiencyC) : 1
        let penalty = errors.reduce(0) { $0 + reward.penalty(for: $1) }
        return RewardBreakdown(
            formatCorrect: formatCorrect, formatViolation: violation, answer: format.answer,
            answerScore: answerScore, isCorrect: isCorrect, multiToolBonus: bonus,
            toolEfficiencyFactor: factor, errorPenalty: penalty,
            formatReward: formatCorrect ? 0 : reward.badFormatReward, errors: errors,
            executedToolCalls: executedToolCalls, toolCallAttempts: responses.count,
            toolKindsUsed: toolKindsUsed, endReason: endReason
        )
    }

    /// The total reward from its terms (see the type's documentation).
    public static func total(
        formatCorrect: Bool, formatReward: Double, answerScore: Double, multiToolBonus: Double,
        toolEfficiencyFactor: Double, errorPenalty: Double
    ) -> Double {
        if !formatCorrect { return formatReward - errorPenalty }
        return (answerScore + multiToolBonus) * toolEfficiencyFactor - errorPenalty
    }

    /// OTC-PO's group-free tool factor: cos(m * pi / (2m + c)) for m executed calls.
    ///
    /// 1 at m = 0, falling towards cos(pi/2) = 0 as m grows; a larger c falls more slowly.
    public static func toolEfficiencyFactor(calls: Int, c: Double) -> Double {
        precondition(calls >= 0 && c > 0, "need calls >= 0 and c > 0")
        let m = Double(calls)
        return cos(m * Double.pi / (2 * m + c))
    }

    /// OTC-PO's tool factor given the group's optimum n (the fewest executed calls among its
    /// correct trajectories): sin(f * pi / (2n)) with f = 2nm / (m + n).
    ///
    /// It is 1 at m = n and falls on both sides (to 0 at m = 0 and towards 0 as m grows).
    /// When m = n = 0 it is 1; when n is nil (no correct trajectory) or n = 0 < m it falls back
    /// to the group-free form.
    public static func toolEfficiencyFactor(calls: Int, fewestCorrectCalls: Int?, c: Double) -> Double {
        precondition(calls >= 0, "calls must be >= 0")
        guard let optimum = fewestCorrectCalls, optimum > 0 else {
            if calls == 0 && fewestCorrectCalls == 0 { return 1 }
            return toolEfficiencyFactor(calls: calls, c: c)
        }
        let m = Double(calls)
        let n = Double(optimum)
        let f = 2 * n * m / (m + n)
        return sin(f * Double.pi / (2 * n))
    }

    /// Applies OTC-PO's group form to the trajectories of one prompt: each breakdown gets the
    /// factor for its executed calls against n, the fewest executed calls among the group's
    /// correct trajectories, and its total is recomputed. Returns the group unchanged when
    /// `config.toolEfficiency` is off.
    public static func applyToolEfficiency(to group: [RewardBreakdown], config: RewardConfig) -> [RewardBreakdown] {
        guard config.toolEfficiency else { return group }
        let fewest = group.filter(\.isCorrect).map(\.executedToolCalls).min()
        return group.map { breakdown in
            breakdown.withToolEfficiencyFactor(
                toolEfficiencyFactor(calls: breakdown.executedToolCalls, fewestCorrectCalls: fewest, c: config.toolEfficiencyC)
            )
        }
    }
}
