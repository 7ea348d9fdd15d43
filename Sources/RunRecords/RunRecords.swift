import Foundation

// The records a run writes (Trainer) and the report reads (Report): one type per output file, so
// that the keys are spelled once, in a module both import. Every field the writer may leave out, and every field added after the first runs, is
// optional, so the report still reads files written before it existed. Encoding writes every
// key of a record's kind, a missing value as null (the documented format: a reader can tell
// "not measured this step" from "not a key of this record").

/// One line of `metrics.jsonl`. An SFT line holds the keys up to `skipped`, an RL line the
/// rollout and update keys; both hold `phase`, `step`, `phase_step`, `loss`, `policy_loss`,
/// `gradient_norm`, `learning_rate` and `tokens_per_second`.
public struct StepMetrics: Codable, Equatable, Sendable {
    /// "sft" or "rl".
    public var phase: String
    /// The global step: RL steps continue after SFT's.
    public var step: Int
    /// Steps done in this phase.
    public var phaseStep: Int?
    /// The loss (SFT: token-mean cross-entropy; RL: the full objective); null when non-finite.
    public var loss: Double?
    /// SFT: the policy tokens' mean loss; RL: the surrogate term alone.
    public var policyLoss: Double?
    public var gradientNorm: Double?
    public var learningRate: Double?
    /// Tokens processed per second: SFT's batch, RL's generated tokens over rollout and update.
    public var tokensPerSecond: Double?

    // MARK: SFT
    /// Tokens in the SFT batch.
    public var tokens: Int?
    /// Seconds of the SFT step.
    public var seconds: Double?
    /// True when the update was skipped for a non-finite loss or gradient.
    public var skipped: Bool?

    // MARK: RL rollout
    /// `rl.algorithm`.
    public var algorithm: String?
    /// Mean reward over the step's trajectories, and its standard deviation.
    public var rewardMean: Double?
    public var rewardStd: Double?
    /// Fraction of the step's trajectories that answered correctly.
    public var accuracy: Double?
    /// Trajectories rolled out this step.
    public var trajectories: Int?
    /// Tool calls executed this step, and over all RL so far.
    public var toolCallsExecuted: Int?
    public var toolCallsExecutedTotal: Int?
    /// Tool calls executed this step divided by its trajectories.
    public var toolCallsPerTrajectory: Double?
    /// Executed tool calls in each of the step's transcripts, summed over its trajectories: a
    /// call a fork inherited counts in every trajectory that holds it (`RolloutStatistics`).
    /// Equal to `toolCallsExecuted` without forks; the gap is what prefix sharing saved.
    public var toolCallsWritten: Int?
    /// Tokens the policy generated in this step's rollouts.
    public var tokensGenerated: Int?
    /// ARPO branch points this step, and the opportunities the rule declined or the budget blocked.
    public var forks: Int?
    public var forksDeclinedByRule: Int?
    public var forksBlockedByBudget: Int?
    /// Executed tool calls in the transcript of each trajectory that ended with an answer, a
    /// fork's inherited calls included, mean over those trajectories: the policy's own habit,
    /// whatever the rollout shared.
    public var toolCallsPerAnsweredEpisode: Double?
    /// Mean response length in tokens (observations included).
    public var responseLengthMean: Double?
    /// Mean entropy of the first tokens generated after a tool result.
    public var entropyAfterToolResults: Double?
    /// Mean entropy of the first tokens of a response (`entropy_initial`).
    public var initialEntropy: Double?
    /// Mean entropy after a trajectory's 1st, 2nd and 3rd tool result
    /// (`entropy_after_tool_result_1` …), null where no trajectory measured one.
    public var entropyAfterToolResult1: Double?
    public var entropyAfterToolResult2: Double?
    public var entropyAfterToolResult3: Double?
    /// Forks taken after a trajectory's 1st, 2nd and 3rd tool result.
    public var forksAfterToolResult1: Int?
    public var forksAfterToolResult2: Int?
    public var forksAfterToolResult3: Int?
    /// Mean ΔH (entropy after a tool result minus the initial entropy) where ARPO forked.
    public var entropyDeltaAtForks: Double?
    /// Mean ΔH where a fork was considered but not taken.
    public var entropyDeltaElsewhere: Double?
    /// Seconds of the step's rollout.
    public var rolloutSeconds: Double?
    /// Seconds of the step's update (advantages, losses, optimizer steps).
    public var updateSeconds: Double?
    /// Seconds of the rollout spent in the environment.
    public var environmentSeconds: Double?
    /// Generated tokens per second of rollout.
    public var rolloutTokensPerSecond: Double?

    // MARK: RL update (``UpdateMetrics``)
    public var valueLoss: Double?
    public var clipFractionLow: Double?
    public var clipFractionHigh: Double?
    public var approximateKL: Double?
    /// KL divergence from the frozen reference (post-SFT) policy.
    public var referenceKL: Double?
    /// Mean token entropy of the policy over the update batch.
    public var entropy: Double?
    public var explainedVariance: Double?
    public var appliedUpdates: Int?
    public var skippedUpdates: Int?
    public var trainedTokens: Int?
    public var meanAbsoluteAdvantage: Double?
    public var rolloutLogProbabilityDriftMean: Double?
    public var rolloutLogProbabilityDriftMax: Double?
    /// The DPO term on preference pairs at fork points (TTPA): the batch's pairs and the term's
    /// mean per pair before its coefficient; nil when `rl.loss.dpo_coefficient` is 0.
    public var dpoPairs: Int?
    public var dpoLoss: Double?
    /// The memory bank (AvaTaR): its entries after the step, how many of the step's
    /// trajectories entered it, the rows replayed in the step's update and the replay term's
    /// mean negative log-likelihood per policy token before its coefficient (nil without replayed
    /// rows); all nil without a bank, the last two while `rl.memory_bank.coefficient` is 0.
    public var memoryBankSize: Int?
    public var memoryBankAdmitted: Int?
    public var memoryBankReplayedRows: Int?
    public var memoryBankReplayLoss: Double?
    /// AvaTaR's contrast: the pairs of a bank trajectory and a refused trajectory of the step
    /// that the update trained on, and their DPO term's mean per pair before its coefficient
    /// (nil without pairs); both nil when `rl.memory_bank.contrastive_coefficient` is 0.
    public var memoryBankContrastivePairs: Int?
    public var memoryBankContrastiveLoss: Double?

    enum CodingKeys: String, CodingKey {
        case phase, step, loss, tokens, seconds, skipped, algorithm, accuracy, trajectories, forks, entropy
        case phaseStep = "phase_step"
        case policyLoss = "policy_loss"
        case gradientNorm = "gradient_norm"
        case learningRate = "learning_rate"
        case tokensPerSecond = "tokens_per_second"
        case rewardMean = "reward_mean"
        case rewardStd = "reward_std"
        case toolCallsExecuted = "tool_calls_executed"
        case toolCallsExecutedTotal = "tool_calls_executed_total"
        case toolCallsPerTrajectory = "tool_calls_per_trajectory"
        case toolCallsWritten = "tool_calls_written"
        case tokensGenerated = "tokens_generated"
        case forksDeclinedByRule = "forks_declined_by_rule"
        case forksBlockedByBudget = "forks_blocked_by_budget"
        case toolCallsPerAnsweredEpisode = "tool_calls_per_answered_episode"
        case responseLengthMean = "response_length_mean"
        case entropyAfterToolResults = "entropy_after_tool_results"
        case initialEntropy = "entropy_initial"
        case entropyAfterToolResult1 = "entropy_after_tool_result_1"
        case entropyAfterToolResult2 = "entropy_after_tool_result_2"
        case entropyAfterToolResult3 = "entropy_after_tool_result_3"
        case forksAfterToolResult1 = "forks_after_tool_result_1"
        case forksAfterToolResult2 = "forks_after_tool_result_2"
        case forksAfterToolResult3 = "forks_after_tool_result_3"
        case entropyDeltaAtForks = "entropy_delta_at_forks"
        case entropyDeltaElsewhere = "entropy_delta_elsewhere"
        case rolloutSeconds = "rollout_seconds"
        case updateSeconds = "update_seconds"
        case environmentSeconds = "environment_seconds"
        case rolloutTokensPerSecond = "rollout_tokens_per_second"
        case valueLoss = "value_loss"
        case clipFractionLow = "clip_fraction_low"
        case clipFractionHigh = "clip_fraction_high"
        case approximateKL = "approx_kl"
        case referenceKL = "reference_kl"
        case explainedVariance = "explained_variance"
        case appliedUpdates = "applied_updates"
        case skippedUpdates = "skipped_updates"
        case trainedTokens = "trained_tokens"
        case meanAbsoluteAdvantage = "mean_abs_advantage"
        case rolloutLogProbabilityDriftMean = "rollout_logprob_drift_mean"
        case rolloutLogProbabilityDriftMax = "rollout_logprob_drift_max"
        case dpoPairs = "dpo_pairs"
        case dpoLoss = "dpo_loss"
        case memoryBankSize = "memory_bank_size"
        case memoryBankAdmitted = "memory_bank_admitted"
        case memoryBankReplayedRows = "memory_bank_replayed_rows"
        case memoryBankReplayLoss = "memory_bank_replay_loss"
        case memoryBankContrastivePairs = "memory_bank_contrastive_pairs"
        case memoryBankContrastiveLoss = "memory_bank_contrastive_loss"
    }

    /// A line with only its phase and step; the metrics are nil.
    public init(phase: String, step: Int) {
        self.phase = phase
        self.step = step
    }

    /// Mean step entropy after the k-th tool result, k = 1, 2, 3.
    public func entropyAfterToolResult(_ k: Int) -> Double? {
        [entropyAfterToolResult1, entropyAfterToolResult2, entropyAfterToolResult3][k - 1]
    }

    /// Forks after the k-th tool result, k = 1, 2, 3.
    public func forksAfterToolResult(_ k: Int) -> Int? {
        [forksAfterToolResult1, forksAfterToolResult2, forksAfterToolResult3][k - 1]
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        // `encode` of an optional writes null for nil, where `encodeIfPresent` would drop the key.
        try container.encode(phase, forKey: .phase)
        try container.encode(step, forKey: .step)
        try container.encode(phaseStep, forKey: .phaseStep)
        try container.encode(loss, forKey: .loss)
        try container.encode(policyLoss, forKey: .policyLoss)
        try container.encode(gradientNorm, forKey: .gradientNorm)
        try container.encode(learningRate, forKey: .learningRate)
        try container.encode(tokensPerSecond, forKey: .tokensPerSecond)
        if phase == "sft" {
            try container.encode(tokens, forKey: .tokens)
            try container.encode(seconds, forKey: .seconds)
            try container.encode(skipped, forKey: .skipped)
            return
        }
        try container.encode(algorithm, forKey: .algorithm)
        try container.encode(rewardMean, forKey: .rewardMean)
        try container.encode(rewardStd, forKey: .rewardStd)
        try container.encode(accuracy, forKey: .accuracy)
        try container.encode(trajectories, forKey: .trajectories)
        try container.encode(toolCallsExecuted, forKey: .toolCallsExecuted)
        try container.encode(toolCallsExecutedTotal, forKey: .toolCallsExecutedTotal)
        try container.encode(toolCallsPerTrajectory, forKey: .toolCallsPerTrajectory)
        try container.encode(toolCallsWritten, forKey: .toolCallsWritten)
        try container.encode(tokensGenerated, forKey: .tokensGenerated)
        try container.encode(forks, forKey: .forks)
        try container.encode(forksDeclinedByRule, forKey: .forksDeclinedByRule)
        try container.encode(forksBlockedByBudget, forKey: .forksBlockedByBudget)
        try container.encode(toolCallsPerAnsweredEpisode, forKey: .toolCallsPerAnsweredEpisode)
        try container.encode(responseLengthMean, forKey: .responseLengthMean)
        try container.encode(entropyAfterToolResults, forKey: .entropyAfterToolResults)
        try container.encode(initialEntropy, forKey: .initialEntropy)
        try container.encode(entropyAfterToolResult1, forKey: .entropyAfterToolResult1)
        try container.encode(entropyAfterToolResult2, forKey: .entropyAfterToolResult2)
        try container.encode(entropyAfterToolResult3, forKey: .entropyAfterToolResult3)
        try container.encode(forksAfterToolResult1, forKey: .forksAfterToolResult1)
        try container.encode(forksAfterToolResult2, forKey: .forksAfterToolResult2)
        try container.encode(forksAfterToolResult3, forKey: .forksAfterToolResult3)
        try container.encode(entropyDeltaAtForks, forKey: .entropyDeltaAtForks)
        try container.encode(entropyDeltaElsewhere, forKey: .entropyDeltaElsewhere)
        try container.encode(rolloutSeconds, forKey: .rolloutSeconds)
        try container.encode(updateSeconds, forKey: .updateSeconds)
        try container.encode(environmentSeconds, forKey: .environmentSeconds)
        try container.encode(rolloutTokensPerSecond, forKey: .rolloutTokensPerSecond)
        try container.encode(valueLoss, forKey: .valueLoss)
        try container.encode(clipFractionLow, forKey: .clipFractionLow)
        try container.encode(clipFractionHigh, forKey: .clipFractionHigh)
        try container.encode(approximateKL, forKey: .approximateKL)
        try container.encode(referenceKL, forKey: .referenceKL)
        try container.encode(entropy, forKey: .entropy)
        try container.encode(explainedVariance, forKey: .explainedVariance)
        try container.encode(appliedUpdates, forKey: .appliedUpdates)
        try container.encode(skippedUpdates, forKey: .skippedUpdates)
        try container.encode(trainedTokens, forKey: .trainedTokens)
        try container.encode(meanAbsoluteAdvantage, forKey: .meanAbsoluteAdvantage)
        try container.encode(rolloutLogProbabilityDriftMean, forKey: .rolloutLogProbabilityDriftMean)
        try container.encode(rolloutLogProbabilityDriftMax, forKey: .rolloutLogProbabilityDriftMax)
        try container.encode(dpoPairs, forKey: .dpoPairs)
        try container.encode(dpoLoss, forKey: .dpoLoss)
        try container.encode(memoryBankSize, forKey: .memoryBankSize)
        try container.encode(memoryBankAdmitted, forKey: .memoryBankAdmitted)
        try container.encode(memoryBankReplayedRows, forKey: .memoryBankReplayedRows)
        try container.encode(memoryBankReplayLoss, forKey: .memoryBankReplayLoss)
        try container.encode(memoryBankContrastivePairs, forKey: .memoryBankContrastivePairs)
        try container.encode(memoryBankContrastiveLoss, forKey: .memoryBankContrastiveLoss)
    }
}

/// One transcript kept with an evaluation.
public struct EvaluationSample: Codable, Equatable, Sendable {
    public var family: String
    public var question: String
    public var goldAnswer: String
    /// The policy's text, observations included.
    public var transcript: String
    public var reward: Double
    public var correct: Bool

    enum CodingKeys: String, CodingKey {
        case family, question, transcript, reward, correct
        case goldAnswer = "gold_answer"
    }

    public init(family: String, question: String, goldAnswer: String, transcript: String, reward: Double, correct: Bool) {
        self.family = family
        self.question = question
        self.goldAnswer = goldAnswer
        self.transcript = transcript
        self.reward = reward
        self.correct = correct
    }
}

/// One line of `eval.jsonl`: where in the run the evaluation was, and what it measured.
public struct HeldOutEvaluation: Codable, Equatable, Sendable {
    /// The global step the evaluation followed.
    public var step: Int
    /// "sft" for the post-SFT evaluation, "rl" after.
    public var phase: String?
    /// RL tool calls executed before this evaluation (0 for the post-SFT one).
    public var toolCallsExecutedTotal: Int?
    /// True for the evaluation at the end of the run (the key is absent on the others).
    public var isFinal: Bool?
    /// Held-out accuracy.
    public var accuracy: Double
    /// Held-out accuracy per task family, and the episodes of each family.
    public var accuracyByFamily: [String: Double]?
    public var episodesByFamily: [String: Int]?
    /// Fraction of episodes whose transcript broke the protocol's format.
    public var formatErrorRate: Double?
    /// Fraction of episodes that answered right after a tool result reporting a failure.
    public var ignoredToolFailureRate: Double?
    public var toolCallsPerEpisode: Double?
    public var meanReward: Double?
    public var episodes: Int?
    /// A few transcripts. The report does not read them, so a line whose samples do not decode
    /// still loads (with nil here).
    public var samples: [EvaluationSample]?

    enum CodingKeys: String, CodingKey {
        case step, phase, accuracy, episodes, samples
        case accuracyByFamily = "accuracy_by_family"
        case episodesByFamily = "episodes_by_family"
        case formatErrorRate = "format_error_rate"
        case ignoredToolFailureRate = "ignored_tool_failure_rate"
        case toolCallsPerEpisode = "tool_calls_per_episode"
        case meanReward = "mean_reward"
        case toolCallsExecutedTotal = "tool_calls_executed_total"
        case isFinal = "final"
    }

    /// An evaluation taken after global step `step`: where in the run it was, then what it
    /// measured.
    public init(
        step: Int, phase: String? = nil, toolCallsExecutedTotal: Int? = nil, isFinal: Bool? = nil,
        accuracy: Double, accuracyByFamily: [String: Double]?, episodesByFamily: [String: Int]?, formatErrorRate: Double?,
        toolCallsPerEpisode: Double?, meanReward: Double?, episodes: Int?, samples: [EvaluationSample]?, ignoredToolFailureRate: Double? = nil
    ) {
        self.step = step
        self.phase = phase
        self.toolCallsExecutedTotal = toolCallsExecutedTotal
        self.isFinal = isFinal
        self.accuracy = accuracy
        self.accuracyByFamily = accuracyByFamily
        self.episodesByFamily = episodesByFamily
        self.formatErrorRate = formatErrorRate
        self.ignoredToolFailureRate = ignoredToolFailureRate
        self.toolCallsPerEpisode = toolCallsPerEpisode
        self.meanReward = meanReward
        self.episodes = episodes
        self.samples = samples
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        step = try container.decode(Int.self, forKey: .step)
        phase = try container.decodeIfPresent(String.self, forKey: .phase)
        toolCallsExecutedTotal = try container.decodeIfPresent(Int.self, forKey: .toolCallsExecutedTotal)
        isFinal = try container.decodeIfPresent(Bool.self, forKey: .isFinal)
        accuracy = try container.decode(Double.self, forKey: .accuracy)
        accuracyByFamily = try container.decodeIfPresent([String: Double].self, forKey: .accuracyByFamily)
        episodesByFamily = try container.decodeIfPresent([String: Int].self, forKey: .episodesByFamily)
        formatErrorRate = try container.decodeIfPresent(Double.self, forKey: .formatErrorRate)
        ignoredToolFailureRate = try container.decodeIfPresent(Double.self, forKey: .ignoredToolFailureRate)
        toolCallsPerEpisode = try container.decodeIfPresent(Double.self, forKey: .toolCallsPerEpisode)
        meanReward = try container.decodeIfPresent(Double.self, forKey: .meanReward)
        episodes = try container.decodeIfPresent(Int.self, forKey: .episodes)
        samples = (try? container.decodeIfPresent([EvaluationSample].self, forKey: .samples)) ?? nil
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(step, forKey: .step)
        try container.encodeIfPresent(phase, forKey: .phase)
        try container.encodeIfPresent(toolCallsExecutedTotal, forKey: .toolCallsExecutedTotal)
        try container.encodeIfPresent(isFinal, forKey: .isFinal)
        try encodeMeasurements(into: &container)
    }

    /// The fields the evaluation measured, without where in the run it was (`arpo-train eval
    /// --json` prints these alone).
    public func encodeMeasurements(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try encodeMeasurements(into: &container)
    }

    func encodeMeasurements(into container: inout KeyedEncodingContainer<CodingKeys>) throws {
        try container.encode(accuracy, forKey: .accuracy)
        try container.encode(accuracyByFamily, forKey: .accuracyByFamily)
        try container.encode(episodesByFamily, forKey: .episodesByFamily)
        try container.encode(formatErrorRate, forKey: .formatErrorRate)
        try container.encode(ignoredToolFailureRate, forKey: .ignoredToolFailureRate)
        try container.encode(toolCallsPerEpisode, forKey: .toolCallsPerEpisode)
        try container.encode(meanReward, forKey: .meanReward)
        try container.encode(episodes, forKey: .episodes)
        try container.encode(samples, forKey: .samples)
    }

    /// Cumulative RL tool calls at this evaluation: the post-SFT evaluation is at 0 even when the
    /// record does not say so.
    public var cumulativeToolCalls: Int? {
        toolCallsExecutedTotal ?? (phase == "sft" ? 0 : nil)
    }
}

/// `summary.json`, written when a run finishes.
public struct RunSummary: Codable, Equatable, Sendable {
    /// Held-out accuracy after the supervised cold start (null when the run never measured it).
    public var accuracyAfterSFT: Double?
    /// Held-out accuracy at the end of RL: the run's final accuracy.
    public var accuracyAfterRL: Double?
    public var accuracyByFamilyAfterRL: [String: Double]?
    public var formatErrorRateAfterRL: Double?
    public var toolCallsPerEpisodeAfterRL: Double?
    /// Tool calls executed over all of RL.
    public var toolCallsExecuted: Int?
    public var algorithm: String?
    public var sftSteps: Int?
    public var rlSteps: Int?
    /// Wall time of the whole run, over every session when it was resumed.
    public var wallSeconds: Double?
    /// The policy's parameter count (with the value head, when it has one).
    public var parameters: Int?
    public var seed: UInt64?
    /// The processes the run trained on (MPI ranks; 1 without `mpirun`).
    public var worldSize: Int?

    enum CodingKeys: String, CodingKey {
        case parameters, algorithm, seed
        case worldSize = "world_size"
        case accuracyAfterSFT = "accuracy_after_sft"
        case accuracyAfterRL = "accuracy_after_rl"
        case accuracyByFamilyAfterRL = "accuracy_by_family_after_rl"
        case formatErrorRateAfterRL = "format_error_rate_after_rl"
        case toolCallsPerEpisodeAfterRL = "tool_calls_per_episode_after_rl"
        case toolCallsExecuted = "tool_calls_executed"
        case sftSteps = "sft_steps"
        case rlSteps = "rl_steps"
        case wallSeconds = "wall_seconds"
    }

    public init() {}

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(accuracyAfterSFT, forKey: .accuracyAfterSFT)
        try container.encode(accuracyAfterRL, forKey: .accuracyAfterRL)
        try container.encode(accuracyByFamilyAfterRL, forKey: .accuracyByFamilyAfterRL)
        try container.encode(formatErrorRateAfterRL, forKey: .formatErrorRateAfterRL)
        try container.encode(toolCallsPerEpisodeAfterRL, forKey: .toolCallsPerEpisodeAfterRL)
        try container.encode(toolCallsExecuted, forKey: .toolCallsExecuted)
        try container.encode(algorithm, forKey: .algorithm)
        try container.encode(sftSteps, forKey: .sftSteps)
        try container.encode(rlSteps, forKey: .rlSteps)
        try container.encode(wallSeconds, forKey: .wallSeconds)
        try container.encode(parameters, forKey: .parameters)
        try container.encode(seed, forKey: .seed)
        try container.encode(worldSize, forKey: .worldSize)
    }
}
