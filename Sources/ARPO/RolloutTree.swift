import ToolEnv

/// One prompt group's rollout tree, built from a rollout batch (``trees(of:step:codec:advantages:)``)
/// to be written as one JSON line per group or drawn.
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

extension RolloutTree {
    /// The trees of one rollout batch, one per prompt group, in group order.
    ///
    /// - Parameters:
    ///   - batch: the step's rollout; its fork decisions are used when it kept them
    ///     (`rl.branching.decision_log`).
    ///   - advantages: the step's token advantages, aligned with `batch.records`, or nil.
    public static func trees(of batch: RolloutBatch, step: Int, codec: ProtocolCodec, advantages: TokenAdvantages?) -> [RolloutTree] {
        let records = batch.records
        var decisions: [Int: [Int: ForkDecision]] = [:]
        for decision in batch.statistics.forkDecisions { decisions[decision.trajectory, default: [:]][decision.turn] = decision }
        var trees: [Int: RolloutTree] = [:]
        for index in records.indices {
            let record = records[index]
            let group = record.groupIndex
            var tree = trees[group] ?? RolloutTree(
                step: step, group: group, prompt: codec.text(record.promptTokens[...]),
                globalSamples: group < batch.statistics.globalSamples.count ? batch.statistics.globalSamples[group] : nil, nodes: [])
            let ends = observationEnds(record.lossMask)
            let boundaries = [record.forkPosition] + ends.filter { $0 > record.forkPosition && $0 < record.responseTokens.count }
            // A fork copy continues the node of its parent (or an ancestor) that ends at the fork position.
            var parentNode = record.parent.flatMap { nodeEnding(at: record.forkPosition, heldBy: $0, records, tree) }
            for (segment, start) in boundaries.enumerated() {
                let end = segment + 1 < boundaries.count ? boundaries[segment + 1] : record.responseTokens.count
                let turn = ends.firstIndex(of: end).map { $0 + 1 }
                let finalScore = end == record.responseTokens.count ? batch.scores[index] : nil
                tree.nodes.append(node(
                    id: tree.nodes.count, parent: parentNode, trajectory: index, span: start..<end, record: record, codec: codec,
                    decision: turn.flatMap { decisions[index]?[$0] }, reward: finalScore?.reward, correct: finalScore?.isCorrect,
                    advantages: advantages.map { ($0.advantages[index], $0.trainMask[index]) }))
                parentNode = tree.nodes.count - 1
            }
            trees[group] = tree
        }
        return trees.keys.sorted().map { trees[$0]! }
    }

    /// The positions right after each observation's `</obs>`: where the policy's segments after
    /// tool results start, and where forks happen.
    static func observationEnds(_ lossMask: [Bool]) -> [Int] {
        lossMask.indices.filter { $0 > 0 && !lossMask[$0 - 1] && lossMask[$0] } + (lossMask.last == false ? [lossMask.count] : [])
    }

    /// The node that ends at response position `position` of trajectory `trajectory`: its own,
    /// or an ancestor's when the position lies in the prefix it inherited.
    static func nodeEnding(at position: Int, heldBy trajectory: Int, _ records: [TrajectoryRecord], _ tree: RolloutTree) -> Int? {
        var holder = trajectory
        while position <= records[holder].forkPosition, let parent = records[holder].parent { holder = parent }
        return tree.nodes.last { $0.trajectory == holder && $0.end == position }?.id
    }

    static func node(
        id: Int, parent: Int?, trajectory: Int, span: Range<Int>, record: TrajectoryRecord, codec: ProtocolCodec,
        decision: ForkDecision?, reward: Double?, correct: Bool?, advantages: (values: [Double], mask: [Bool])?
    ) -> RolloutTreeNode {
        let policy = span.filter { record.lossMask[$0] }
        let observation = span.filter { !record.lossMask[$0] }
        let text = codec.text(policy.map { record.responseTokens[$0] }[...])
        var toolCall: String?
        if let open = text.range(of: "<call>", options: .backwards), let close = text.range(of: "</call>", range: open.upperBound..<text.endIndex) {
            toolCall = String(text[open.lowerBound..<close.upperBound])
        }
        let trained = advantages.map { values, mask in span.filter { mask[$0] }.map { values[$0] } } ?? []
        return RolloutTreeNode(
            id: id, parent: parent, trajectory: trajectory, start: span.lowerBound, end: span.upperBound, text: text, toolCall: toolCall,
            observation: observation.isEmpty ? nil : codec.text(observation.map { record.responseTokens[$0] }[...]),
            entropy: policy.isEmpty ? nil : policy.reduce(0) { $0 + record.entropies[$1] } / Double(policy.count),
            decision: decision, reward: reward, correct: correct,
            advantage: trained.isEmpty ? nil : trained.reduce(0, +) / Double(trained.count))
    }
}
