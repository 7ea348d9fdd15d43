import ARPO
import ToolEnv
import Trainer
import XCTest

final class PromptAllowanceTests: XCTestCase {
    /// The positions kept for the prompt hold every question the environment asks.
    func testEveryFamilysPromptFitsTheAllowanceAtEveryDifficulty() {
        let codec = ProtocolCodec()
        var longest = 0
        for family in TaskFamily.allCases {
            for difficulty in 1...3 {
                let config = EnvironmentConfig(taskMix: [family: 1], difficulty: difficulty)
                for seed in 0..<80 {
                    for split in [Split.train, .eval] {
                        let episode = Episode(family: family, split: split, seed: UInt64(seed), config: config)
                        longest = max(longest, codec.promptTokens(episode.prompt).count)
                    }
                }
            }
        }
        XCTAssertLessThanOrEqual(longest, TrainingConfiguration.promptAllowance)
        XCTAssertGreaterThan(longest, 40, "the check saw real prompts")
    }
}
