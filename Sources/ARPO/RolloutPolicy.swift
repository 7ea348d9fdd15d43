import Policy
import Tensor
import ToolEnv

/// A sequence's decoding state (its KV cache): append-only, forkable at any earlier length.
public protocol DecodingState: AnyObject {
    /// Positions filled.
    var length: Int { get }
    /// A new state holding a copy of the first `length` positions.
    func fork(length: Int) -> DecodingState
}

/// What the rollout engine needs from a policy: fresh decoding states, and batched extension
/// returning the next-token logits of each sequence. `LlamaModel` is the real one; tests use
/// stubs whose logits (and so entropies) they script.
public protocol RolloutPolicy: AnyObject {
    var vocabularySize: Int { get }
    /// Longest sequence (prompt + response) a state can hold.
    var maxPositions: Int { get }
    func newState(capacity: Int) -> DecodingState
    /// Appends `tokens[b]` to `states[b]` and returns (B, V) logits after each last token.
    func extend(_ states: [DecodingState], with tokens: [[Int]]) -> Tensor
}

extension KVCache: DecodingState {
    public func fork(length: Int) -> DecodingState { fork(length: length) as KVCache }
}

extension LlamaModel: RolloutPolicy {
    public var vocabularySize: Int { configuration.vocabularySize }
    public var maxPositions: Int { configuration.maxPositions }
    public func newState(capacity: Int) -> DecodingState { KVCache(model: self, capacity: capacity) }
    public func extend(_ states: [DecodingState], with tokens: [[Int]]) -> Tensor {
        let caches = states.map { state -> KVCache in
            guard let cache = state as? KVCache else { preconditionFailure("LlamaModel extends only its own KV caches") }
            return cache
        }
        return extend(caches, with: tokens)
    }
}

/// What one tool-environment episode offers the rollout engine. `ToolEnv.Episode` is the real
/// one; tests may supply toy episodes.
public protocol ToolEpisode: AnyObject {
    /// The user's question.
    var prompt: String { get }
    /// Answers the call the policy just closed; `text` is what the policy wrote since the last
    /// observation, ending with `</call>`.
    func respond(toPolicyText text: String) -> ToolReply
    /// Scores the finished episode from everything after the prompt (tags and observations
    /// included).
    func finish(policyText: String, endReason: EndReason) -> EpisodeScore
    /// An independent copy that continues from this point (ARPO's branch).
    func forkEpisode() -> ToolEpisode
    /// The copy that trajectory `trajectory` (its index in the rollout batch) plays: an
    /// environment whose random draws may be per trajectory (`env.faults.draws`) starts a new
    /// stream here, for the calls still to come. The default is ``forkEpisode()``.
    func forkEpisode(trajectory: Int) -> ToolEpisode
    /// The final scores of one prompt's group, given the scores `finish` returned, in the same
    /// order: where a reward depends on the whole group (OTC-PO's group form of tool efficiency),
    /// the rollout engine calls this once every trajectory of the group has finished. The
    /// default returns `scores` unchanged.
    func scoreGroup(_ scores: [EpisodeScore]) -> [EpisodeScore]
    /// Whether calls are slow enough (an external tool server) that the rollout engine should
    /// send the calls of one decoding step to their episodes at once, each on its own thread.
    /// `respond` must then be safe to call on different episodes from different threads. The
    /// default is false: the simulated tools answer faster than a thread hand-off.
    var answersConcurrently: Bool { get }
}

extension ToolEpisode {
    public func forkEpisode(trajectory: Int) -> ToolEpisode { forkEpisode() }
    public func scoreGroup(_ scores: [EpisodeScore]) -> [EpisodeScore] { scores }
    public var answersConcurrently: Bool { false }
}

/// The environment's answer to a call.
public struct ToolReply: Sendable {
    public var observation: String
    /// Whether a tool actually ran (a malformed call is not an execution).
    public var wasExecuted: Bool
    /// Whether the episode must end now (over the call limit).
    public var mustEnd: Bool
    public init(observation: String, wasExecuted: Bool, mustEnd: Bool) {
        self.observation = observation
        self.wasExecuted = wasExecuted
        self.mustEnd = mustEnd
    }
}

/// How a finished episode scored.
public struct EpisodeScore: Codable, Sendable {
    public var reward: Double
    public var isCorrect: Bool
    /// The environment's breakdown, when it has one.
    public var breakdown: RewardBreakdown?
    public init(reward: Double, isCorrect: Bool, breakdown: RewardBreakdown? = nil) {
        self.reward = reward
        self.isCorrect = isCorrect
        self.breakdown = breakdown
    }
}

extension ToolReply {
    /// The reply to a call that a ToolEnv episode (generated or from the user's task file)
    /// answered.
    init(_ response: ToolResponse) {
        self.init(observation: response.observation, wasExecuted: response.wasExecuted, mustEnd: response.episodeMustEnd)
    }
}

extension EpisodeScore {
    /// The score of a ToolEnv episode the reward function scored.
    init(_ breakdown: RewardBreakdown) {
        self.init(reward: breakdown.total, isCorrect: breakdown.isCorrect, breakdown: breakdown)
    }

    /// A ToolEnv group's final scores: with `reward.tool_efficiency` on and
    /// `reward.tool_efficiency_form: group`, every score gets OTC-PO's group factor
    /// (``RewardFunction/applyToolEfficiency(to:config:)``) in place of the group-free one
    /// `finish` computed; otherwise `scores` as they are.
    static func groupScores(_ scores: [EpisodeScore], reward: RewardConfig) -> [EpisodeScore] {
        guard reward.toolEfficiency, reward.toolEfficiencyForm == .group else { return scores }
        let breakdowns = scores.map { score -> RewardBreakdown in
            guard let breakdown = score.breakdown else { preconditionFailure("a ToolEnv episode's score always carries its breakdown") }
            return breakdown
        }
        return RewardFunction.applyToolEfficiency(to: breakdowns, config: reward).map(EpisodeScore.init)
    }
}

extension Episode: ToolEpisode {
    public func respond(toPolicyText text: String) -> ToolReply { ToolReply(respond(toPolicyText: text) as ToolResponse) }

    public func finish(policyText: String, endReason: EndReason) -> EpisodeScore {
        EpisodeScore(finish(policyText: policyText, endReason: endReason) as RewardBreakdown)
    }

    public func forkEpisode() -> ToolEpisode { fork() }

    /// With `faults.draws: per-trajectory`, the copy draws its faults from stream
    /// `trajectory + 1` (stream 0 being the shared one); the calls already made, and their
    /// results, stay as they were.
    public func forkEpisode(trajectory: Int) -> ToolEpisode {
        switch config.faults.draws {
        case .shared: return fork()
        case .perTrajectory: return fork(faultStream: UInt64(trajectory) + 1)
        }
    }

    /// OTC-PO's group factor when configured (``EpisodeScore/groupScores(_:reward:)``).
    public func scoreGroup(_ scores: [EpisodeScore]) -> [EpisodeScore] { EpisodeScore.groupScores(scores, reward: config.reward) }
}
