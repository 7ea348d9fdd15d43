import XCTest
@testable import ToolEnv

final class RewardTests: XCTestCase {
    func testHierarchicalTotals() {
        // Hand-computed: wrong format → bad_format_reward; else (S + B) * F - P.
        XCTAssertEqual(RewardFunction.total(formatCorrect: false, formatReward: -1, answerScore: 1, multiToolBonus: 0.1, toolEfficiencyFactor: 1, errorPenalty: 0), -1)
        XCTAssertEqual(RewardFunction.total(formatCorrect: true, formatReward: 0, answerScore: 1, multiToolBonus: 0.1, toolEfficiencyFactor: 1, errorPenalty: 0), 1.1)
        XCTAssertEqual(RewardFunction.total(formatCorrect: true, formatReward: 0, answerScore: 1, multiToolBonus: 0.1, toolEfficiencyFactor: 0.5, errorPenalty: 0.2), 0.35, accuracy: 1e-12)
        XCTAssertEqual(RewardFunction.total(formatCorrect: true, formatReward: 0, answerScore: 0, multiToolBonus: 0, toolEfficiencyFactor: 0.5, errorPenalty: 0), 0)
        XCTAssertEqual(RewardFunction.total(formatCorrect: false, formatReward: -1, answerScore: 0, multiToolBonus: 0, toolEfficiencyFactor: 1, errorPenalty: 0.3), -1.3, accuracy: 1e-12)
    }

    func testGroupFreeEfficiencyFactor() {
        XCTAssertEqual(RewardFunction.toolEfficiencyFactor(calls: 0, c: 10), 1)
        XCTAssertEqual(RewardFunction.toolEfficiencyFactor(calls: 1, c: 1), cos(Double.pi / 3), accuracy: 1e-12)  // 0.5
        XCTAssertEqual(RewardFunction.toolEfficiencyFactor(calls: 1, c: 10), cos(Double.pi / 12), accuracy: 1e-12)
        XCTAssertEqual(RewardFunction.toolEfficiencyFactor(calls: 4, c: 10), cos(4 * Double.pi / 18), accuracy: 1e-12)
        var previous = 1.0
        for calls in 1...50 {
            let factor = RewardFunction.toolEfficiencyFactor(calls: calls, c: 10)
            XCTAssertLessThan(factor, previous, "more calls, less credit")
            XCTAssertGreaterThan(factor, 0)
            previous = factor
        }
    }

    func testGroupEfficiencyFactorPeaksAtTheOptimum() {
        XCTAssertEqual(RewardFunction.toolEfficiencyFactor(calls: 0, fewestCorrectCalls: 0, c: 10), 1)
        XCTAssertEqual(RewardFunction.toolEfficiencyFactor(calls: 2, fewestCorrectCalls: 2, c: 10), 1, accuracy: 1e-12)
        // m = 4, n = 2: f = 2*2*4/6 = 8/3, sin(8/3 * pi / 4) = sin(2pi/3).
        XCTAssertEqual(RewardFunction.toolEfficiencyFactor(calls: 4, fewestCorrectCalls: 2, c: 10), sin(2 * Double.pi / 3), accuracy: 1e-12)
        // m = 1, n = 2: f = 4/3, sin(pi/3).
        XCTAssertEqual(RewardFunction.toolEfficiencyFactor(calls: 1, fewestCorrectCalls: 2, c: 10), sin(Double.pi / 3), accuracy: 1e-12)
        XCTAssertEqual(RewardFunction.toolEfficiencyFactor(calls: 0, fewestCorrectCalls: 2, c: 10), 0)
        // n = 0 < m and no group optimum fall back to the group-free form.
        XCTAssertEqual(RewardFunction.toolEfficiencyFactor(calls: 3, fewestCorrectCalls: 0, c: 10), RewardFunction.toolEfficiencyFactor(calls: 3, c: 10))
        XCTAssertEqual(RewardFunction.toolEfficiencyFactor(calls: 3, fewestCorrectCalls: nil, c: 10), RewardFunction.toolEfficiencyFactor(calls: 3, c: 10))
    }

    /// Runs the expert on an episode with extra failing calls first, to vary the call count.
    private func breakdown(seed: UInt64, extraCalls: Int, answer: String? = nil, config: EnvironmentConfig) -> RewardBreakdown {
        let episode = Episode(family: .arithmetic, split: .train, seed: seed, config: config)
        var policy = ScriptedPolicy(episode)
        for _ in 0..<extraCalls { policy.call("<call>calc(1)</call>") }
        policy.call("<call>calc(\(episode.task.plan[0].arguments))</call>")
        return policy.finish("<answer>\(answer ?? episode.task.goldAnswer)</answer><|end|>")
    }

    func testApplyToolEfficiencyOverAGroup() {
        let config = EnvironmentConfig(faults: .none, reward: RewardConfig(toolEfficiency: true, toolEfficiencyC: 10))
        let group = [
            breakdown(seed: 1, extraCalls: 0, config: config),  // correct, 1 call: the optimum
            breakdown(seed: 1, extraCalls: 2, config: config),  // correct, 3 calls
            breakdown(seed: 1, extraCalls: 0, answer: "0", config: config),  // wrong
        ]
        XCTAssertEqual(group[0].toolEfficiencyFactor, cos(Double.pi / 12), accuracy: 1e-12, "finish uses the group-free form")
        let adjusted = RewardFunction.applyToolEfficiency(to: group, config: config.reward)
        XCTAssertEqual(adjusted[0].total, 1, accuracy: 1e-12)
        // m = 3, n = 1: f = 6/4, sin(1.5 * pi / 2).
        XCTAssertEqual(adjusted[1].total, sin(0.75 * Double.pi), accuracy: 1e-12)
        XCTAssertEqual(adjusted[2].total, 0, "a wrong answer gets no efficiency credit")
        XCTAssertEqual(RewardFunction.applyToolEfficiency(to: group, config: RewardConfig()), group, "off means unchanged")
    }

    func testErrorPenaltiesAreSummedPerOccurrence() {
        let config = EnvironmentConfig(faults: .none, reward: RewardConfig(errorPenalties: [.malformedCall: 0.1, .badArguments: 0.05]))
        let episode = Episode(family: .arithmetic, split: .train, seed: 3, config: config)
        var policy = ScriptedPolicy(episode)
        policy.call("<call>x</call>")
        policy.call("<call>y</call>")
        policy.call("<call>calc(1/0)</call>")
        policy.call("<call>calc(\(episode.task.plan[0].arguments))</call>")
        let reward = policy.finish("<answer>\(episode.task.goldAnswer)</answer><|end|>")
        XCTAssertEqual(reward.errorPenalty, 0.25, accuracy: 1e-12)
        XCTAssertEqual(reward.total, 0.75, accuracy: 1e-12)
        XCTAssertEqual(reward.count(of: .malformedCall), 2)
    }

    func testMultiToolBonusNeedsACorrectAnswerAndTwoKinds() {
        let episode = Episode(family: .compose, split: .train, seed: 4, config: .faultFree)
        var policy = ScriptedPolicy(episode)
        for step in episode.task.plan {
            policy.call("<call>\(step.tool.rawValue)(\(step.arguments))</call>")
        }
        let right = policy.finish("<answer>\(episode.task.goldAnswer)</answer>")
        XCTAssertEqual(right.toolKindsUsed, [.calc, .search])
        XCTAssertEqual(right.multiToolBonus, 0.1)
        XCTAssertEqual(right.total, 1.1, accuracy: 1e-12)

        let other = Episode(family: .compose, split: .train, seed: 4, config: .faultFree)
        var wrong = ScriptedPolicy(other)
        for step in other.task.plan {
            wrong.call("<call>\(step.tool.rawValue)(\(step.arguments))</call>")
        }
        let reward = wrong.finish("<answer>1</answer>")
        XCTAssertEqual(reward.multiToolBonus, 0)
        XCTAssertEqual(reward.total, 0)
    }

    /// The bonus needs a correct answer, not merely a positive score (the released ARPO code's
    /// condition): under F1 scoring an answer listing the gold name and another one earns
    /// partial credit, and with two kinds of tool executed still gets no bonus.
    func testMultiToolBonusIsNotPaidOnPartialCredit() {
        var config = EnvironmentConfig.faultFree
        config.reward.answerScoring = .f1
        var checked = 0
        for seed in UInt64(0)..<40 {
            let episode = Episode(family: .multiHop, split: .train, seed: seed, config: config)
            guard episode.task.goldAnswer.rangeOfCharacter(from: .letters) != nil else { continue }
            var policy = ScriptedPolicy(episode)
            policy.call("<call>search(\(episode.task.plan[0].arguments))</call>")
            policy.call("<call>lookup(Nobody, capital)</call>")
            let reward = policy.finish("<answer>\(episode.task.goldAnswer) Nobody</answer>")
            XCTAssertEqual(reward.toolKindsUsed, [.search, .lookup].sorted { ToolName.allCases.firstIndex(of: $0)! < ToolName.allCases.firstIndex(of: $1)! })
            XCTAssertGreaterThan(reward.answerScore, 0, "seed \(seed)")
            XCTAssertLessThan(reward.answerScore, 1, "seed \(seed)")
            XCTAssertFalse(reward.isCorrect)
            XCTAssertEqual(reward.multiToolBonus, 0)
            XCTAssertEqual(reward.total, reward.answerScore, accuracy: 1e-12)
            checked += 1
        }
        XCTAssertGreaterThan(checked, 0, "no multi-hop task with a text answer among the seeds")
    }

    func testF1ScoringGivesPartialCreditForTextOnly() {
        let config = EnvironmentConfig(faults: .none, reward: RewardConfig(answerScoring: .f1))
        var seed: UInt64 = 0
        var episode = Episode(family: .singleHop, split: .train, seed: seed, config: config)
        while episode.task.answerKind != .text {
            seed += 1
            episode = Episode(family: .singleHop, split: .train, seed: seed, config: config)
        }
        var policy = ScriptedPolicy(episode)
        policy.call("<call>search(\(episode.task.plan[0].arguments))</call>")
        let reward = policy.finish("<answer>\(episode.task.goldAnswer) maybe</answer>")
        XCTAssertFalse(reward.isCorrect)
        XCTAssertEqual(reward.total, 2.0 / 3.0, accuracy: 1e-12)
    }

    func testBreakdownIsCodable() throws {
        let episode = Episode(family: .arithmetic, split: .train, seed: 5, config: .faultFree)
        let reward = ExpertSolver().demonstrate(episode).reward
        let data = try JSONEncoder().encode(reward)
        XCTAssertEqual(try JSONDecoder().decode(RewardBreakdown.self, from: data), reward)
    }
}
