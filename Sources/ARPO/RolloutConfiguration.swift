import Foundation
import Policy
import RunRecords
import Tensor

/// A configuration value out of range; the message names the key path and what is allowed.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// How a step's entropy is normalised before ΔH is taken (docs/algorithms.md §2).
///
/// The normalisation sets the unit of the logged step entropies and how a window shorter than
/// k tokens counts; it does not change what β means. The fork rule always sees ΔH on the
/// released code's scale, a sum over the k-token window divided by ln|V|
/// (``BranchingConfiguration/ruleScale(vocabularySize:)``), so a β tuned there means the same
/// under every normalisation.
public enum EntropyNormalization: String, Codable, CaseIterable, Sendable {
    /// Mean entropy over the window divided by ln|V|, in [0, 1] (the default).
    case meanOverLogVocabulary = "mean-log-vocab"
    /// Sum over the window divided by ln|V| (the released code's form).
    case sumOverLogVocabulary = "sum-log-vocab"
    /// Mean entropy in nats.
    case mean
}

/// ARPO's fork rule (docs/algorithms.md §3).
public enum BranchRule: String, Codable, CaseIterable, Sendable {
    /// The paper's text: fork when α + β·ΔH exceeds τ. Deterministic in ΔH: it forks exactly
    /// when ΔH > (τ − α) / β, so at α = τ only the sign of β matters.
    case threshold
    /// The released code (the default): fork with probability clip(α + β·ΔH, 0, 1), α being its
    /// `branch_probability`. The random term keeps runs of high-entropy steps from
    /// over-branching.
    case stochastic
    /// AEPO's entropy-balanced rollout (docs/algorithms.md §3.1): a probe trajectory per prompt
    /// measures the question's and the tool steps' entropy, which split the budget between
    /// global samples and branches, and the stochastic rule's probability is scaled down by
    /// 1 − λ·l after l consecutive forks on the same path.
    case entropyBalanced = "entropy-balanced"
}


/// Entropy-based adaptive rollout (docs/algorithms.md §3): per prompt a budget of M trajectories, starting
/// from N global samples, forking Z paths at high-entropy steps after tool results.
public struct BranchingConfiguration: Codable, Equatable, Sendable {
    /// M: trajectories per prompt.
    public var budget = 16
    /// N: global samples started from the prompt.
    public var initialSamples = 8
    /// α in p = α + β·ΔH: the released code's `branch_probability`.
    public var alpha = 0.5
    /// β in p = α + β·ΔH, per unit of ΔH on the released code's scale (a sum over the window
    /// divided by ln|V|), whatever `entropyNormalization` is.
    public var beta = 0.2
    /// τ: the `threshold` rule's threshold (not used by `stochastic`).
    public var threshold = 0.5
    /// k: tokens over which a step's entropy is measured.
    public var entropyWindow = 20
    /// Z: paths after a fork (the parent plus Z − 1 copies).
    public var branchFactor = 2
    public var rule: BranchRule = .stochastic
    public var entropyNormalization: EntropyNormalization = .meanOverLogVocabulary
    /// Whether the rollout keeps a ``ForkDecision`` per fork opportunity (the trainer writes
    /// them to `fork_decisions.jsonl`).
    public var decisionLog = false
    /// κ in m = M·σ(κ·(H_root − H̄_tool)), the `entropy-balanced` rule's split of the budget,
    /// with the entropies on the rule's scale (AEPO's released code: 0.5).
    public var splitSensitivity = 0.5
    /// λ in max(0, 1 − λ·l), the `entropy-balanced` rule's penalty per consecutive fork on a
    /// path (AEPO's released code: 0.05).
    public var consecutiveForkPenalty = 0.05

    public init() {}

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case budget, alpha, beta, threshold, rule
        case initialSamples = "initial_samples"
        case entropyWindow = "entropy_window"
        case branchFactor = "branch_factor"
        case entropyNormalization = "entropy_normalization"
        case decisionLog = "decision_log"
        case splitSensitivity = "split_sensitivity"
        case consecutiveForkPenalty = "consecutive_fork_penalty"
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = BranchingConfiguration()
        budget = try container.decodeIfPresent(Int.self, forKey: .budget) ?? defaults.budget
        initialSamples = try container.decodeIfPresent(Int.self, forKey: .initialSamples) ?? defaults.initialSamples
        alpha = try container.decodeIfPresent(Double.self, forKey: .alpha) ?? defaults.alpha
        beta = try container.decodeIfPresent(Double.self, forKey: .beta) ?? defaults.beta
        threshold = try container.decodeIfPresent(Double.self, forKey: .threshold) ?? defaults.threshold
        entropyWindow = try container.decodeIfPresent(Int.self, forKey: .entropyWindow) ?? defaults.entropyWindow
        branchFactor = try container.decodeIfPresent(Int.self, forKey: .branchFactor) ?? defaults.branchFactor
        rule = try container.decodeIfPresent(BranchRule.self, forKey: .rule) ?? defaults.rule
        entropyNormalization = try container.decodeIfPresent(EntropyNormalization.self, forKey: .entropyNormalization) ?? defaults.entropyNormalization
        decisionLog = try container.decodeIfPresent(Bool.self, forKey: .decisionLog) ?? defaults.decisionLog
        splitSensitivity = try container.decodeIfPresent(Double.self, forKey: .splitSensitivity) ?? defaults.splitSensitivity
        consecutiveForkPenalty = try container.decodeIfPresent(Double.self, forKey: .consecutiveForkPenalty) ?? defaults.consecutiveForkPenalty
    }

    public func validate(path: String) throws {
        func require(_ condition: Bool, _ key: CodingKeys, _ allowed: String, _ value: Any) throws {
            if !condition { throw ConfigurationError("\(path).\(key.rawValue) must be \(allowed), got \(value)") }
        }
        try require(budget >= 1 && budget <= 256, .budget, "in 1...256", budget)
        try require(initialSamples >= 1 && initialSamples <= budget, .initialSamples, "in 1...budget (\(budget))", initialSamples)
        try require(alpha.isFinite, .alpha, "a finite number", alpha)
        try require(beta.isFinite, .beta, "a finite number", beta)
        try require(threshold >= 0 && threshold <= 1, .threshold, "in [0, 1]", threshold)
        try require(entropyWindow >= 1 && entropyWindow <= 1024, .entropyWindow, "in 1...1024", entropyWindow)
        try require(branchFactor >= 2 && branchFactor <= 16, .branchFactor, "in 2...16", branchFactor)
        try require(splitSensitivity.isFinite && abs(splitSensitivity) <= 1000, .splitSensitivity, "a finite number in [-1000, 1000]", splitSensitivity)
        try require(consecutiveForkPenalty >= 0 && consecutiveForkPenalty <= 1, .consecutiveForkPenalty, "in [0, 1]", consecutiveForkPenalty)
    }

    /// The factor that takes ΔH from the unit of `entropyNormalization` to the rule's scale, the
    /// released code's sum over the k-token window divided by ln|V|: k for `mean-log-vocab`,
    /// k / ln|V| for `mean`, 1 for `sum-log-vocab`.
    ///
    /// Without it, β = 0.2 tuned on the released code's sum would move the fork probability k
    /// times less on a mean (about 0.01 instead of 0.2 for a ΔH of one nat per token at
    /// |V| = 272), and a β sweep would change nothing. For a full window the rule therefore
    /// decides alike under every normalisation; a window cut short by a call or the end counts
    /// as its mean times k under the means and as its plain sum under `sum-log-vocab`.
    public func ruleScale(vocabularySize: Int) -> Double {
        switch entropyNormalization {
        case .meanOverLogVocabulary: return Double(entropyWindow)
        case .sumOverLogVocabulary: return 1
        case .mean: return Double(entropyWindow) / Foundation.log(Double(vocabularySize))
        }
    }

    /// The rule's decision for a step-entropy change `entropyDelta` (in the unit of
    /// `entropyNormalization`). `stochastic` draws u uniform in [0, 1) from `generator` and forks
    /// when u < clip(α + β·ΔH, 0, 1), so P(fork) is exactly that clip; `threshold` draws nothing
    /// and forks when α + β·ΔH > τ.
    ///
    /// - Returns: whether the rule says fork, the score α + β·ΔH (ΔH on the rule's scale) and
    ///   the draw (nil for `threshold`).
    ///
    /// `entropy-balanced` is `stochastic` with the score scaled by max(0, 1 − λ·l), l being
    /// `consecutiveForks`, the forks taken at the tool results right before this one on the
    /// path; the other rules ignore l.
    public func decide(entropyDelta: Double, vocabularySize: Int, consecutiveForks: Int = 0, generator: inout RandomGenerator) -> (fork: Bool, score: Double, draw: Double?) {
        let score = alpha + beta * ruleScale(vocabularySize: vocabularySize) * entropyDelta
        switch rule {
        case .threshold:
            return (score > threshold, score, nil)
        case .stochastic:
            let draw = generator.uniform()
            return (draw < Swift.min(Swift.max(score, 0), 1), score, draw)
        case .entropyBalanced:
            let penalized = score * Swift.max(0, 1 - consecutiveForkPenalty * Double(consecutiveForks))
            let draw = generator.uniform()
            return (draw < Swift.min(Swift.max(penalized, 0), 1), penalized, draw)
        }
    }

    /// AEPO's entropy pre-monitoring: of the budget M, the global samples
    ///
    ///     m = clamp(round(M · σ(κ · s · (H_root − H̄_tool))), 1, M)
    ///
    /// started from the prompt, the rest left to branches. H_root is the question's step entropy
    /// (a probe trajectory's H_init) and H̄_tool the mean of its step entropies after tool
    /// results, both in the unit of `entropyNormalization`; s is ``ruleScale(vocabularySize:)``,
    /// so κ means what it means on the released code's scale. A question more uncertain than
    /// its tool results gets more global samples; tool results more uncertain than the
    /// question get more branches. Equal entropies give M/2.
    public func globalSampleCount(rootEntropy: Double, toolEntropy: Double, vocabularySize: Int) -> Int {
        let gap = ruleScale(vocabularySize: vocabularySize) * (rootEntropy - toolEntropy)
        let share = 1 / (1 + Foundation.exp(-splitSensitivity * gap))
        return Swift.min(Swift.max(Int((Double(budget) * share).rounded()), 1), budget)
    }
}

/// How the rollout engine samples.
public struct RolloutConfiguration: Sendable {
    /// Response tokens (policy and observation) after which a trajectory stops at the token limit.
    public var maxResponseTokens: Int
    public var sampling: SamplingParameters
    /// Trajectory-level sampling of `groupSize` independent samples per prompt, or ARPO branching.
    public var strategy: Strategy

    public enum Strategy: Sendable, Equatable {
        case trajectory(groupSize: Int)
        case branching(BranchingConfiguration)
    }

    public init(maxResponseTokens: Int, sampling: SamplingParameters = SamplingParameters(), strategy: Strategy) {
        self.maxResponseTokens = maxResponseTokens
        self.sampling = sampling
        self.strategy = strategy
    }

    /// Trajectories per prompt once a batch is complete.
    public var trajectoriesPerPrompt: Int {
        switch strategy {
        case .trajectory(let groupSize): return groupSize
        case .branching(let branching): return branching.budget
        }
    }
}
