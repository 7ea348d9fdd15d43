/// One sampled trajectory as training sees it: the prompt, the response tokens (the policy's
/// and the environment's observations, interleaved), and per response token what the rollout
/// recorded.
///
/// Trajectories of one prompt form a group. ARPO's branching makes some of them share a prefix:
/// trajectory j was forked from `parent` after `forkPosition` response tokens, which it holds
/// identically (same tokens, same old log-probs); its own tokens start at `forkPosition`.
public struct TrajectoryRecord: Codable, Sendable {
    /// Prompt token ids (`<|user|>` … `<|assistant|>`).
    public var promptTokens: [Int]
    /// Response token ids, policy-written and observation tokens interleaved.
    public var responseTokens: [Int]
    /// log π_old(token) per response token under the sampling distribution; 0 where `lossMask`
    /// is false.
    public var oldLogProbabilities: [Double]
    /// Entropy of the sampling distribution at each response token; 0 where `lossMask` is false.
    public var entropies: [Double]
    /// True for tokens the policy wrote (trained on); false for observation tokens (`<obs>` …
    /// `</obs>`), which are context only (docs/algorithms.md §1).
    public var lossMask: [Bool]
    /// The scalar reward of the whole trajectory.
    public var reward: Double
    /// Which prompt group the trajectory belongs to.
    public var groupIndex: Int
    /// Index (into the same array of records) of the trajectory this one was forked from.
    public var parent: Int?
    /// Number of leading response tokens inherited from `parent` (0 for a root trajectory).
    public var forkPosition: Int

    public init(
        promptTokens: [Int], responseTokens: [Int], oldLogProbabilities: [Double], entropies: [Double], lossMask: [Bool],
        reward: Double, groupIndex: Int, parent: Int? = nil, forkPosition: Int = 0
    ) {
        precondition(
            oldLogProbabilities.count == responseTokens.count && entropies.count == responseTokens.count && lossMask.count == responseTokens.count,
            "per-token arrays must match the \(responseTokens.count) response tokens")
        precondition(parent != nil || forkPosition == 0, "a root trajectory inherits nothing")
        self.promptTokens = promptTokens
        self.responseTokens = responseTokens
        self.oldLogProbabilities = oldLogProbabilities
        self.entropies = entropies
        self.lossMask = lossMask
        self.reward = reward
        self.groupIndex = groupIndex
        self.parent = parent
        self.forkPosition = forkPosition
    }

    /// Number of policy-written (trained) tokens.
    public var policyTokenCount: Int { lossMask.reduce(0) { $0 + ($1 ? 1 : 0) } }
}
