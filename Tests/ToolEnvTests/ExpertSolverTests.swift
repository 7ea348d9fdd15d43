import XCTest
@testable import ToolEnv

final class ExpertSolverTests: XCTestCase {
    /// Every family, 1,000 tasks each (difficulties 1 to 3 in turn), no faults: every
    /// demonstration answers correctly with reward >= 1.
    func testExpertSolvesEveryFamilyWithoutFaults() {
        for family in TaskFamily.allCases {
            for seed in UInt64(0)..<1000 {
                let config = EnvironmentConfig(difficulty: Int(seed % 3) + 1, faults: .none)
                let episode = Episode(family: family, split: seed % 2 == 0 ? .train : .eval, seed: seed, config: config)
                let demonstration = ExpertSolver().demonstrate(episode)
                let reward = demonstration.reward
                XCTAssertGreaterThanOrEqual(reward.total, 1.0, "\(family) seed \(seed): \(demonstration.transcript) \(reward)")
                XCTAssertTrue(reward.isCorrect)
                XCTAssertEqual(reward.errors, [])
                XCTAssertEqual(reward.executedToolCalls, episode.task.minimumToolCalls)
                if family == .compose {
                    XCTAssertEqual(reward.total, 1.1, accuracy: 1e-12, "search and calc earn the multi-tool bonus")
                }
            }
        }
    }

    /// With faults far above the default, the expert retries and still succeeds unless the
    /// call limit cuts it off.
    func testExpertRetriesThroughFaults() {
        let config = EnvironmentConfig(faults: FaultConfig(failureProbability: 0.2, degradedProbability: 0.15))
        var retried = 0
        var cutOff = 0
        let perFamily = 1000
        for family in TaskFamily.allCases {
            for seed in UInt64(0)..<UInt64(perFamily) {
                let episode = Episode(family: family, split: .train, seed: seed, config: config)
                let demonstration = ExpertSolver().demonstrate(episode)
                if demonstration.reward.toolCallAttempts > episode.task.minimumToolCalls { retried += 1 }
                switch demonstration.endReason {
                case .answered:
                    XCTAssertGreaterThanOrEqual(demonstration.reward.total, 1.0, demonstration.transcript)
                    XCTAssertFalse(demonstration.reward.errors.contains(.ignoredToolFailure))
                    if family != .unanswerable {
                        // The answer is grounded: the last observation holds it.
                        XCTAssertTrue(episode.responses.last!.observation.contains(episode.task.goldAnswer), demonstration.transcript)
                    }
                case .callLimit:
                    cutOff += 1
                    XCTAssertEqual(demonstration.reward.toolCallAttempts, config.limits.maxToolCalls + 1)
                    XCTAssertTrue(demonstration.reward.errors.contains(.overCallLimit))
                case .tokenLimit:
                    XCTFail("the expert never runs out of tokens")
                }
            }
        }
        XCTAssertGreaterThan(retried, 1000, "faults at 35% force many retries")
        XCTAssertLessThan(cutOff, 50, "with 8 calls, running out is rare")
    }

    func testSegmentsSeparatePolicyTextFromObservations() {
        let config = EnvironmentConfig(faults: FaultConfig(failureProbability: 0.3, degradedProbability: 0))
        var cutOff = 0
        for seed in UInt64(0)..<100 {
            let episode = Episode(family: .compose, split: .train, seed: seed, config: config)
            let demonstration = ExpertSolver().demonstrate(episode)
            let segments = demonstration.segments
            // One that ran out of calls ends on the last observation, with nothing to say.
            guard demonstration.endReason == .answered else {
                cutOff += 1
                XCTAssertEqual(segments.last?.role, .observation)
                continue
            }
            // Policy and observation alternate, starting and ending with the policy.
            for (index, segment) in segments.enumerated() {
                XCTAssertEqual(segment.role, index % 2 == 0 ? .policy : .observation)
            }
            XCTAssertEqual(segments.last?.role, .policy)
            XCTAssertEqual(segments.filter { $0.role == .observation }.map(\.text), episode.responses.map(\.observation))
            for segment in segments where segment.role == .observation {
                XCTAssertFalse(ProtocolTag.containsTag(segment.text))
            }
            for segment in segments.dropLast() where segment.role == .policy {
                XCTAssertTrue(segment.text.hasSuffix("</call>"))
            }
            XCTAssertTrue(segments.last!.text.hasSuffix("<answer>\(episode.task.goldAnswer)</answer><|end|>"))
        }
        XCTAssertLessThan(cutOff, 5, "eight calls are rarely all used up")
    }

    func testDemonstrationsAreShortAndVaried() {
        var openings: [String] = []
        var longest = 0
        for family in TaskFamily.allCases {
            for seed in UInt64(0)..<300 {
                let config = EnvironmentConfig(difficulty: 3, faults: .none)
                let demonstration = ExpertSolver().demonstrate(Episode(family: family, split: .train, seed: seed, config: config))
                longest = max(longest, demonstration.policyTokenCount)
                if family != .arithmetic { openings.append(demonstration.segments[0].text) }
            }
        }
        XCTAssertLessThan(longest, 400, "fault-free demonstrations at the hardest difficulty stay under 400 policy tokens")
        // Every phrasing of the first search is used, including none at all.
        for template in ExpertSolver.firstSearchPhrases {
            let prefix = template.components(separatedBy: "{t}")[0] + (template.isEmpty ? "<call>" : "")
            XCTAssertTrue(openings.contains { $0.hasPrefix(prefix) }, "phrasing \"\(template)\" never used")
        }
    }

    /// After each search the expert writes the fact it found in the knowledge base's own words,
    /// so the sentence is a copy of one in the observation; the answer follows the last one.
    /// An unanswerable task's last sentence says `unknown` where the value would stand.
    func testDemonstrationsStateEachFoundFactBeforeGoingOn() {
        for family in [TaskFamily.singleHop, .multiHop, .compose, .unanswerable] {
            for seed in UInt64(0)..<200 {
                let config = EnvironmentConfig(difficulty: Int(seed % 3) + 1, faults: .none)
                let episode = Episode(family: family, split: .train, seed: seed, config: config)
                let demonstration = ExpertSolver().demonstrate(episode)
                let policy = demonstration.segments.filter { $0.role == .policy }.map(\.text)
                let observations = demonstration.segments.filter { $0.role == .observation }.map(\.text)
                for (index, step) in episode.task.plan.enumerated() where step.tool != .calc {
                    let written = policy[index + 1]
                    if let value = step.expected {
                        let fact = "The \(step.topic) is \(value)."
                        XCTAssertTrue(written.hasPrefix(fact), "\(family) seed \(seed): \(demonstration.transcript)")
                        XCTAssertTrue(observations[index].contains(fact), "the sentence is the observation's own")
                    } else {
                        XCTAssertTrue(written.hasPrefix("The \(step.topic) is unknown.<answer>unknown</answer>"), demonstration.transcript)
                    }
                }
                if family == .singleHop || family == .multiHop {
                    let last = episode.task.plan.last!
                    XCTAssertEqual(policy.last, "The \(last.topic) is \(episode.task.goldAnswer).<answer>\(episode.task.goldAnswer)</answer><|end|>")
                }
            }
        }
    }

    func testUnanswerableDemonstrationsSearchBeforeSayingUnknown() {
        for seed in UInt64(0)..<200 {
            let episode = Episode(family: .unanswerable, split: .eval, seed: seed, config: EnvironmentConfig(difficulty: Int(seed % 3) + 1, faults: .none))
            let demonstration = ExpertSolver().demonstrate(episode)
            XCTAssertEqual(demonstration.reward.answer, "unknown")
            XCTAssertGreaterThanOrEqual(demonstration.reward.executedToolCalls, 1)
            // What was asked is really not in the knowledge base.
            XCTAssertFalse(episode.responses.last!.observation.contains(episode.task.plan.last!.topic))
        }
    }
}
