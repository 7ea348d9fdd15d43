import Foundation

// The rollout records of `fork_decisions.jsonl` (`rl.branching.decision_log`) and `trees.jsonl`
// (`rl.trees_every`): ARPO makes them, Trainer writes them and Report draws them.

/// Why a fork opportunity did or did not add trajectories.
public enum ForkOutcome: String, Codable, Sendable {
    /// The rule said fork and the group had room: copies were added.
    case forked
    /// The rule said do not fork.
    case declinedByRule = "declined_by_rule"
    /// The rule said fork but the group already held its budget M.
    case blockedByBudget = "blocked_by_budget"
}

/// One fork opportunity: what the rule saw and what it decided (the records of
/// `rl.branching.decision_log`).
public struct ForkDecision: Codable, Equatable, Sendable {
    /// The prompt group.
    public var group: Int
    /// The trajectory: its index in the rollout batch's records (as `TrajectoryRecord.parent`
    /// counts).
    public var trajectory: Int
    /// Tool results the trajectory had received when it decided (1 after its first result).
    public var turn: Int
    /// H_init, H and ΔH = H − H_init in the unit of `entropy_normalization`.
    public var initialEntropy: Double
    public var entropy: Double
    public var entropyDelta: Double
    /// ΔH on the rule's scale (``BranchingConfiguration/ruleScale(vocabularySize:)``).
    public var ruleEntropyDelta: Double
    /// α + β·ΔH on the rule's scale: compared with τ by `threshold`; clipped to [0, 1], the fork
    /// probability of `stochastic`.
    public var score: Double
    /// The uniform draw u of `stochastic` and `entropy-balanced` (they fork when
    /// u < clip(score, 0, 1)); nil for `threshold`.
    public var draw: Double?
    public var outcome: ForkOutcome
    /// l: the tool results right before this one on the trajectory's path (its ancestors'
    /// included) at each of which the path forked; `entropy-balanced` scales its score by
    /// max(0, 1 − λ·l).
    public var consecutiveForks: Int

    public enum CodingKeys: String, CodingKey {
        case group, trajectory, turn, entropy, score, draw, outcome
        case initialEntropy = "entropy_initial"
        case entropyDelta = "entropy_delta"
        case ruleEntropyDelta = "rule_entropy_delta"
        case consecutiveForks = "consecutive_forks"
    }

    public init(
        group: Int, trajectory: Int, turn: Int, initialEntropy: Double, entropy: Double, entropyDelta: Double, ruleEntropyDelta: Double,
        score: Double, draw: Double?, outcome: ForkOutcome, consecutiveForks: Int = 0
    ) {
        self.group = group
        self.trajectory = trajectory
        self.turn = turn
        self.initialEntropy = initialEntropy
        self.entropy = entropy
        self.entropyDelta = entropyDelta
        self.ruleEntropyDelta = ruleEntropyDelta
        self.score = score
        self.draw = draw
        self.outcome = outcome
        self.consecutiveForks = consecutiveForks
    }

    /// Every key, a missing draw as null, so each fork_decisions.jsonl line has the same keys.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(group, forKey: .group)
        try container.encode(trajectory, forKey: .trajectory)
        try container.encode(turn, forKey: .turn)
        try container.encode(initialEntropy, forKey: .initialEntropy)
        try container.encode(entropy, forKey: .entropy)
        try container.encode(entropyDelta, forKey: .entropyDelta)
        try container.encode(ruleEntropyDelta, forKey: .ruleEntropyDelta)
        try container.encode(score, forKey: .score)
        try container.encode(draw, forKey: .draw)
        try container.encode(outcome, forKey: .outcome)
        try container.encode(consecutiveForks, forKey: .consecutiveForks)
    }
}


/// One prompt group's rollout tree: one line of `trees.jsonl` (`rl.trees_every`). ARPO builds
/// it from a rollout batch (`RolloutTree.trees(of:step:codec:advantages:)`); the report draws it.
///
/// A node is a stretch of one trajectory's own response tokens from a point where a new policy
/// segment starts (the response's start, or right after a tool result) to the next such point or
/// the trajectory's end: the policy's text, the tool call it closes with, and the result that
/// came back. Those points are where forks happen, so a forked copy's first node and its
/// parent's continuation are both children of the parent's node that ends at the fork point,
/// and the tree of nodes is the rollout's tree.
public struct RolloutTree: Codable, Equatable, Sendable {
    /// The run's global step whose rollout this is.
    public var step: Int
    /// The prompt group: its index in the step's batch.
    public var group: Int
    /// The question, as the prompt's text.
    public var prompt: String
    /// The global samples started from the prompt before any top-up (N, or AEPO's split).
    public var globalSamples: Int?
    public var nodes: [RolloutTreeNode]

    public enum CodingKeys: String, CodingKey {
        case step, group, prompt, nodes
        case globalSamples = "global_samples"
    }

    public init(step: Int, group: Int, prompt: String, globalSamples: Int?, nodes: [RolloutTreeNode]) {
        self.step = step
        self.group = group
        self.prompt = prompt
        self.globalSamples = globalSamples
        self.nodes = nodes
    }
}

/// A node of a ``RolloutTree``.
public struct RolloutTreeNode: Codable, Equatable, Sendable {
    /// The node's index in the tree's `nodes`; a parent always comes before its children.
    public var id: Int
    /// The node this one continues (nil for a trajectory's first node when it is a root).
    public var parent: Int?
    /// The trajectory holding the node: its index in the step's batch (as `fork_decisions.jsonl`
    /// counts).
    public var trajectory: Int
    /// The node's response tokens [start, end) in that trajectory.
    public var start: Int
    public var end: Int
    /// The policy's tokens of the span, decoded.
    public var text: String
    /// The `<call>…</call>` the span closes with, when it does.
    public var toolCall: String?
    /// The tool result that follows it (`<obs>` … `</obs>`), when one came back.
    public var observation: String?
    /// Mean entropy of the sampling distribution over the span's policy tokens (nats).
    public var entropy: Double?
    /// The fork decision taken at the end of this node (after its tool result), when one was:
    /// H of the window after the result, ΔH = H − H_init, the rule's score, l and the outcome.
    public var decision: ForkDecision?
    /// Reward of the trajectory, on the node that ends it.
    public var reward: Double?
    /// Whether the trajectory's answer was right, on the node that ends it.
    public var correct: Bool?
    /// Mean advantage over the span's trained tokens under the run's advantage mode (nil for
    /// PPO, whose advantages come from the value head during the update).
    public var advantage: Double?

    public enum CodingKeys: String, CodingKey {
        case id, parent, trajectory, start, end, text, observation, entropy, decision, reward, correct, advantage
        case toolCall = "tool_call"
    }

    public init(
        id: Int, parent: Int?, trajectory: Int, start: Int, end: Int, text: String, toolCall: String?, observation: String?,
        entropy: Double?, decision: ForkDecision?, reward: Double?, correct: Bool?, advantage: Double?
    ) {
        self.id = id
        self.parent = parent
        self.trajectory = trajectory
        self.start = start
        self.end = end
        self.text = text
        self.toolCall = toolCall
        self.observation = observation
        self.entropy = entropy
        self.decision = decision
        self.reward = reward
        self.correct = correct
        self.advantage = advantage
    }

    /// Every key, absent values as null, so every node line has the same keys.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(parent, forKey: .parent)
        try container.encode(trajectory, forKey: .trajectory)
        try container.encode(start, forKey: .start)
        try container.encode(end, forKey: .end)
        try container.encode(text, forKey: .text)
        try container.encode(toolCall, forKey: .toolCall)
        try container.encode(observation, forKey: .observation)
        try container.encode(entropy, forKey: .entropy)
        try container.encode(decision, forKey: .decision)
        try container.encode(reward, forKey: .reward)
        try container.encode(correct, forKey: .correct)
        try container.encode(advantage, forKey: .advantage)
    }
}
