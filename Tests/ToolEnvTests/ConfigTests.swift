import Foundation
import XCTest
@testable import ToolEnv

final class ConfigTests: XCTestCase {
    private func decode(_ json: String) throws -> EnvironmentConfig {
        try JSONDecoder().decode(EnvironmentConfig.self, from: Data(json.utf8))
    }

    private func validationMessage(_ config: EnvironmentConfig) -> String? {
        do {
            try config.validate()
            return nil
        } catch {
            return "\(error)"
        }
    }

    func testEmptyObjectDecodesToTheDefaults() throws {
        let config = try decode("{}")
        XCTAssertEqual(config, EnvironmentConfig())
        XCTAssertNoThrow(try config.validate())
        XCTAssertEqual(config.taskMix, [.arithmetic: 1, .singleHop: 1, .multiHop: 1, .compose: 1, .unanswerable: 0.5])
        XCTAssertEqual(config.difficulty, 2)
        XCTAssertEqual(config.faults, FaultConfig(failureProbability: 0.05, degradedProbability: 0.05))
        XCTAssertEqual(config.limits, LimitConfig(maxToolCalls: 8, maxObservationCharacters: 200))
        XCTAssertEqual(config.search.topK, 2)
        XCTAssertEqual(config.search.order, .relevance)
        XCTAssertEqual(config.reward.badFormatReward, -1)
        XCTAssertEqual(config.reward.multiToolBonus, 0.1)
        XCTAssertEqual(config.reward.answerScoring, .exact)
        XCTAssertFalse(config.reward.toolEfficiency)
        XCTAssertEqual(config.reward.toolEfficiencyC, 10)
        XCTAssertEqual(config.reward.errorPenalties, [:])
        // Nested structs default key by key too.
        XCTAssertEqual(try decode(#"{"faults": {}, "reward": {}}"#), EnvironmentConfig())
    }

    func testPartialObjectsKeepOtherDefaults() throws {
        let config = try decode("""
        {"task_mix": {"compose": 2, "unanswerable": 1}, "family_difficulty": {"multi_hop": 3},
         "faults": {"degraded_probability": 0.2}, "reward": {"answer_scoring": "f1", "error_penalties": {"malformed_call": 0.1}}}
        """)
        XCTAssertEqual(config.taskMix, [.compose: 2, .unanswerable: 1])
        XCTAssertEqual(config.difficulty(for: .multiHop), 3)
        XCTAssertEqual(config.difficulty(for: .compose), 2)
        XCTAssertEqual(config.faults.failureProbability, 0.05)
        XCTAssertEqual(config.faults.degradedProbability, 0.2)
        XCTAssertEqual(config.reward.answerScoring, .f1)
        XCTAssertEqual(config.reward.penalty(for: .malformedCall), 0.1)
        XCTAssertEqual(config.reward.penalty(for: .noAnswer), 0)
    }

    func testRoundTrip() throws {
        let config = EnvironmentConfig(
            taskMix: [.arithmetic: 2], difficulty: 3, familyDifficulty: [.compose: 1],
            faults: FaultConfig(failureProbability: 0.1, degradedProbability: 0.2),
            limits: LimitConfig(maxToolCalls: 5, maxObservationCharacters: 120), search: SearchConfig(topK: 3, order: .shuffled),
            reward: RewardConfig(badFormatReward: -2, multiToolBonus: 0.2, answerScoring: .f1, numericTolerance: 1e-3,
                                 toolEfficiency: true, toolEfficiencyC: 4, errorPenalties: [.wrongAnswer: 0.5])
        )
        let data = try JSONEncoder().encode(config)
        XCTAssertEqual(try JSONDecoder().decode(EnvironmentConfig.self, from: data), config)
        let object = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        XCTAssertEqual(Set(object.keys), Set(EnvironmentConfig.CodingKeys.allCases.map(\.rawValue)), "keys are snake_case and all listed")
        XCTAssertEqual((object["reward"] as! [String: Any])["error_penalties"] as! [String: Double], ["wrong_answer": 0.5])
    }

    func testCodingKeysListEveryKey() {
        XCTAssertEqual(EnvironmentConfig.CodingKeys.allCases.map(\.rawValue), [
            "task_mix", "difficulty", "family_difficulty", "faults", "limits", "search", "reward", "tasks", "demonstrations", "call_format", "mcp_servers",
        ])
        XCTAssertEqual(TaskFilesConfig.CodingKeys.allCases.map(\.rawValue), ["train", "eval"])
        XCTAssertEqual(MCPServerConfig.CodingKeys.allCases.map(\.rawValue), ["command", "args", "env", "timeout_seconds"])
        XCTAssertEqual(FaultConfig.CodingKeys.allCases.map(\.rawValue), ["failure_probability", "degraded_probability", "draws"])
        XCTAssertEqual(LimitConfig.CodingKeys.allCases.map(\.rawValue), ["max_tool_calls", "max_observation_characters"])
        XCTAssertEqual(SearchConfig.CodingKeys.allCases.map(\.rawValue), ["top_k", "order"])
        XCTAssertEqual(RewardConfig.CodingKeys.allCases.map(\.rawValue), [
            "bad_format_reward", "multi_tool_bonus", "answer_scoring", "numeric_tolerance",
            "tool_efficiency", "tool_efficiency_c", "tool_efficiency_form", "error_penalties",
        ])
    }

    func testUnknownMapKeysAreRejectedByName() {
        XCTAssertThrowsError(try decode(#"{"task_mix": {"trivia": 1}}"#)) { error in
            XCTAssertTrue("\(error)".contains("task_mix.trivia"), "\(error)")
        }
        XCTAssertThrowsError(try decode(#"{"reward": {"error_penalties": {"typo": 1}}}"#)) { error in
            XCTAssertTrue("\(error)".contains("error_penalties.typo"), "\(error)")
        }
        XCTAssertThrowsError(try decode(#"{"reward": {"answer_scoring": "fuzzy"}}"#))
        XCTAssertThrowsError(try decode(#"{"difficulty": "hard"}"#))
    }

    func testValidationNamesTheKeyPath() {
        var config = EnvironmentConfig()
        config.faults.failureProbability = 1.5
        XCTAssertEqual(validationMessage(config), "faults.failure_probability must be in [0, 1], got 1.5")

        config = EnvironmentConfig()
        config.faults = FaultConfig(failureProbability: 0.7, degradedProbability: 0.7)
        XCTAssertEqual(validationMessage(config)?.hasPrefix("faults.degraded_probability"), true)

        config = EnvironmentConfig()
        config.taskMix = [.compose: -1]
        XCTAssertEqual(validationMessage(config), "task_mix.compose must be a finite number >= 0, got -1.0")

        config.taskMix = [:]
        XCTAssertEqual(validationMessage(config), "task_mix must give some family a positive weight")

        config = EnvironmentConfig(difficulty: 4)
        XCTAssertEqual(validationMessage(config), "difficulty must be in 1...3, got 4")

        config = EnvironmentConfig(familyDifficulty: [.arithmetic: 0])
        XCTAssertEqual(validationMessage(config), "family_difficulty.arithmetic must be in 1...3, got 0")

        config = EnvironmentConfig(limits: LimitConfig(maxToolCalls: 0))
        XCTAssertEqual(validationMessage(config), "limits.max_tool_calls must be in 1...100, got 0")

        config = EnvironmentConfig(limits: LimitConfig(maxObservationCharacters: 10))
        XCTAssertEqual(validationMessage(config), "limits.max_observation_characters must be in 40...10000, got 10")

        config = EnvironmentConfig(search: SearchConfig(topK: 0))
        XCTAssertEqual(validationMessage(config), "search.top_k must be in 1...10, got 0")

        config = EnvironmentConfig(reward: RewardConfig(toolEfficiencyC: 0))
        XCTAssertEqual(validationMessage(config), "reward.tool_efficiency_c must be a finite number > 0, got 0.0")

        config = EnvironmentConfig(reward: RewardConfig(errorPenalties: [.noAnswer: .nan]))
        XCTAssertEqual(validationMessage(config), "reward.error_penalties.no_answer must be a finite number >= 0, got nan")

        config = EnvironmentConfig(reward: RewardConfig(badFormatReward: .infinity))
        XCTAssertEqual(validationMessage(config), "reward.bad_format_reward must be finite, got inf")

        // Nested structs report paths relative to themselves.
        XCTAssertThrowsError(try FaultConfig(failureProbability: -0.1).validate()) { error in
            XCTAssertEqual((error as? EnvironmentConfigError)?.keyPath, "failure_probability")
        }
    }
}
