import XCTest
@testable import ToolEnv

/// Helpers shared by the tests: a policy that writes calls through an episode and collects the
/// transcript the way the rollout engine does.
struct ScriptedPolicy {
    let episode: Episode
    private(set) var transcript = ""
    private(set) var lastResponse: ToolResponse?

    init(_ episode: Episode) {
        self.episode = episode
    }

    /// Writes `text` (ending with `</call>`), gets the observation and appends it wrapped in
    /// `<obs>` … `</obs>`.
    @discardableResult
    mutating func call(_ text: String) -> ToolResponse {
        transcript += text
        let response = episode.respond(toPolicyText: text)
        transcript += "<obs>" + response.observation + "</obs>"
        lastResponse = response
        return response
    }

    /// Writes the final text and finishes the episode.
    mutating func finish(_ text: String, endReason: EndReason = .answered) -> RewardBreakdown {
        transcript += text
        return episode.finish(policyText: transcript, endReason: endReason)
    }
}

extension EnvironmentConfig {
    /// The default configuration without injected faults.
    static let faultFree = EnvironmentConfig(faults: .none)
}
