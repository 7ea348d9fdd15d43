import ToolEnv

/// A user's task plays like a generated episode: the same reply, score and fork, and OTC-PO's
/// group factor when configured.
extension TaskEpisode: ToolEpisode {
    public func respond(toPolicyText text: String) -> ToolReply {
        let response: ToolResponse = respond(toPolicyText: text)
        return ToolReply(observation: response.observation, wasExecuted: response.wasExecuted, mustEnd: response.episodeMustEnd)
    }

    public func finish(policyText: String, endReason: EndReason) -> EpisodeScore {
        let breakdown: RewardBreakdown = finish(policyText: policyText, endReason: endReason)
        return EpisodeScore(reward: breakdown.total, isCorrect: breakdown.isCorrect, breakdown: breakdown)
    }

    public func forkEpisode() -> ToolEpisode { fork() }

    /// Calls to MCP servers take milliseconds to seconds: a rollout step sends them at once.
    public var answersConcurrently: Bool { hasToolProvider }

    public func scoreGroup(_ scores: [EpisodeScore]) -> [EpisodeScore] {
        let reward = config.reward
        guard reward.toolEfficiency, reward.toolEfficiencyForm == .group else { return scores }
        let breakdowns = scores.map { score -> RewardBreakdown in
            guard let breakdown = score.breakdown else { preconditionFailure("a TaskEpisode's score always carries its breakdown") }
            return breakdown
        }
        return RewardFunction.applyToolEfficiency(to: breakdowns, config: reward).map {
            EpisodeScore(reward: $0.total, isCorrect: $0.isCorrect, breakdown: $0)
        }
    }
}
