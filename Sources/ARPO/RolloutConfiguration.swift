import Foundation
import Policy

/// A configuration value out of range; the message names the key path and what is allowed.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// How a step's entropy is normalised before ΔH is taken (docs/algorithms.md §2).
public enum EntropyNormalization: String, Codable, CaseIterable, Sendable {
    /// Mean entropy over the k tokens divided by ln|V|, in [0, 1] (the default).
    case meanOverLogVocabulary = "mean-log-vocab"
    /// Sum over the k tokens divided by ln|V| (the released code's form).
    case sumOverLogVocabulary = "sum-log-vocab"
    /// Mean entropy in nats.
    case mean
}

/// ARPO's fork rule (docs/algorithms.md §3).
public enum BranchRule: String, Codable, CaseIterable, Sendable {
    /// The paper: fork when p = α + β·ΔH exceeds τ.
    case threshold
    /// The released code: fork when clip(u + β·ΔH, 0, 1) ≥ τ with u ~ U[0, 1], which keeps a
    /// random term so that runs of high-entropy steps do not over-branch.
    case stochastic
}

/// Entropy-based adaptive rollout (docs/algorithms.md §3): per prompt a budget of M trajectories, starting
/// from N global samples, forking Z paths at high-entropy steps after tool results.
public struct BranchingConfiguration: Codable, Equatable, Sendable {
    /// M: trajectories per prompt.
    public var budget = 16
    /// N: global samples started from the prompt.
    public var initialSamples = 8
    /// α in p = α + β·ΔH.
    public var alpha = 0.5
    /// β in p = α + β·ΔH.
    public var beta = 0.2
    /// τ: the fork threshold.
    public var threshold = 0.5
    /// k: tokens over which a step's entropy is measured.
    public var entropyWindow = 20
    /// Z: paths after a fork (the parent plus Z − 1 copies).
    public var branchFactor = 2
    public var rule: BranchRule = .threshold
    public var entropyNormalization: EntropyNormalization = .meanOverLogVocabulary

    public init() {}

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case budget, alpha, beta, threshold, rule
        case initialSamples = "initial_samples"
        case entropyWindow = "entropy_window"
        case branchFactor = "branch_factor"
        case entropyNormalization = "entropy_normalization"
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
