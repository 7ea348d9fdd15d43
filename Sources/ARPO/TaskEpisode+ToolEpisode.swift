import ToolEnv

/// A user's task plays like a generated episode: the same reply, score and fork, and OTC-PO's
/// group factor when configured.
extension TaskEpisode: ToolEpisode {
    public func respond(toPolicyText text: String) -> ToolReply { ToolReply(respond(toPolicyText: text) as ToolResponse) }

    public func finish(policyText: String, endReason: EndReason) -> EpisodeScore {
        EpisodeScore(finish(policyText: policyText, endReason: endReason) as RewardBreakdown)
    }

    public func forkEpisode() -> ToolEpisode { fork() }

    /// Calls to MCP servers take milliseconds to seconds: a rollout step sends them at once.
    public var answersConcurrently: Bool { hasToolProvider }

    public func scoreGroup(_ scores: [EpisodeScore]) -> [EpisodeScore] { EpisodeScore.groupScores(scores, reward: config.reward) }
}
