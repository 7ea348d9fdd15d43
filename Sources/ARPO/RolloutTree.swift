import RunRecords
import ToolEnv

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
