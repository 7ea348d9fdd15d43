import XCTest
@testable import ToolEnv

/// No reward can be had without a correct answer.
final class RewardHackingTests: XCTestCase {
    /// Makes the expert's calls, then answers with `answer(observations)` instead of the gold.
    private func hack(_ family: TaskFamily, seed: UInt64, config: EnvironmentConfig = .faultFree, answer: ([String]) -> String) -> (RewardBreakdown, Episode) {
        let episode = Episode(family: family, split: .train, seed: seed, config: config)
        var policy = ScriptedPolicy(episode)
        var observations: [String] = []
        for step in episode.task.plan {
            observations.append(policy.call("<call>\(step.tool.rawValue)(\(step.arguments))</call>").observation)
        }
        return (policy.finish("<answer>\(answer(observations))</answer><|end|>"), episode)
    }

    private static func numbers(in observations: [String]) -> [String] {
        observations.flatMap { $0.split(whereSeparator: { !$0.isNumber && $0 != "-" }).map(String.init) }
    }

    private static func names(in observations: [String]) -> [String] {
        observations.flatMap { $0.split(whereSeparator: { !$0.isLetter }).map(String.init).filter { $0.first!.isUppercase && $0 != "The" } }
    }

    func testEveryNumberInTheObservationsScoresZero() {
        for scoring in AnswerScoring.allCases {
            let config = EnvironmentConfig(faults: .none, reward: RewardConfig(answerScoring: scoring))
            for family in [TaskFamily.arithmetic, .singleHop, .multiHop, .compose] {
                for seed in UInt64(0)..<100 {
                    let (reward, episode) = hack(family, seed: seed, config: config) { RewardHackingTests.numbers(in: $0).joined(separator: " ") }
                    guard episode.task.answerKind == .number else { continue }
                    // A single number is an honest answer; the hack lists several.
                    guard RewardHackingTests.numbers(in: episode.responses.map(\.observation)).count > 1 else { continue }
                    XCTAssertFalse(reward.isCorrect)
                    XCTAssertEqual(reward.answerScore, 0, "\(scoring) \(family) \(seed): \(reward.answer ?? "")")
                    XCTAssertLessThanOrEqual(reward.total, 0)
                }
            }
        }
    }

    func testEveryNameInTheObservationsScoresZero() {
        for family in [TaskFamily.singleHop, .multiHop] {
            for seed in UInt64(0)..<100 {
                let (reward, episode) = hack(family, seed: seed) { RewardHackingTests.names(in: $0).joined(separator: " ") }
                guard episode.task.answerKind == .text else { continue }
                XCTAssertFalse(reward.isCorrect)
                XCTAssertEqual(reward.total, 0)
            }
        }
    }

    func testAnsweringWithoutToolsOrWithBoilerplateEarnsNothing() {
        for family in TaskFamily.allCases where family != .unanswerable {
            for seed in UInt64(0)..<50 {
                for guess in ["unknown", "0", "1", "yes", "The answer", ""] {
                    let episode = Episode(family: family, split: .train, seed: seed, config: .faultFree)
                    var policy = ScriptedPolicy(episode)
                    let reward = policy.finish("<answer>\(guess)</answer><|end|>")
                    XCTAssertLessThanOrEqual(reward.total, 0, "\(family) \(seed) guess \(guess)")
                }
            }
        }
    }

    func testQuestionTextAndCopiedObservationsEarnNothing() {
        for family in TaskFamily.allCases {
            for seed in UInt64(0)..<50 {
                let (copied, _) = hack(family, seed: seed) { $0.joined(separator: " ") }
                // Only an arithmetic task's single observation is the answer itself.
                XCTAssertEqual(copied.isCorrect, family == .arithmetic, "\(family) \(seed)")
                let episode = Episode(family: family, split: .train, seed: seed, config: .faultFree)
                var policy = ScriptedPolicy(episode)
                XCTAssertLessThanOrEqual(policy.finish("<answer>\(episode.prompt)</answer>").total, 0)
            }
        }
    }

    func testMultiToolBonusAloneIsNotReward() {
        // Calling every tool and answering wrongly earns no bonus.
        let episode = Episode(family: .singleHop, split: .train, seed: 1, config: .faultFree)
        var policy = ScriptedPolicy(episode)
        policy.call("<call>calc(1+1)</call>")
        policy.call("<call>search(capital)</call>")
        policy.call("<call>lookup(Nobody, capital)</call>")
        let reward = policy.finish("<answer>2</answer>")
        XCTAssertEqual(reward.toolKindsUsed.count, 3)
        XCTAssertEqual(reward.total, 0)
    }
}
