import ARPO
import Foundation
import Policy
import Tensor
@testable import ToolEnv
import XCTest

/// What the rollout asks of the environment beyond single calls: a group's rewards settled once
/// the group has finished (OTC-PO's group form), and a fault stream per trajectory.
final class RolloutEnvironmentTests: XCTestCase {
    /// A toy episode that doubles its group's rewards in `scoreGroup` and notes every group it
    /// scores and every trajectory it forks for.
    final class GroupScoredEpisode: ToolEpisode {
        final class Ledger {
            var groupSizes: [Int] = []
            var forkedTrajectories: [Int] = []
        }
        let ledger: Ledger
        let prompt = "q"
        init(ledger: Ledger) { self.ledger = ledger }
        func respond(toPolicyText text: String) -> ToolReply { ToolReply(observation: "7", wasExecuted: true, mustEnd: false) }
        func finish(policyText: String, endReason: EndReason) -> EpisodeScore {
            let correct = endReason == .answered && policyText.contains("<answer>1</answer>")
            return EpisodeScore(reward: correct ? 1 : 0.25, isCorrect: correct)
        }
        func forkEpisode() -> ToolEpisode { GroupScoredEpisode(ledger: ledger) }
        func forkEpisode(trajectory: Int) -> ToolEpisode {
            ledger.forkedTrajectories.append(trajectory)
            return forkEpisode()
        }
        func scoreGroup(_ scores: [EpisodeScore]) -> [EpisodeScore] {
            ledger.groupSizes.append(scores.count)
            return scores.map { EpisodeScore(reward: 2 * $0.reward, isCorrect: $0.isCorrect) }
        }
    }

    /// Each group is scored once, with all its trajectories (forks included), and the records
    /// the advantages are computed from carry the group's scores. Every trajectory's episode is
    /// forked for its own index in the batch.
    func testGroupScoresReachTheRecordsAndEveryTrajectoryForksForItsIndex() {
        let ledger = GroupScoredEpisode.Ledger()
        var settings = BranchingConfiguration()
        settings.budget = 4
        settings.initialSamples = 2
        settings.entropyWindow = 2
        settings.rule = .threshold
        let configuration = RolloutConfiguration(maxResponseTokens: 200, sampling: SamplingParameters(greedy: true), strategy: .branching(settings))
        let batch = RolloutEngine(policy: ScriptedPolicy(calls: 1, peaks: [12, 2]), configuration: configuration)
            .run(episodes: [GroupScoredEpisode(ledger: ledger), GroupScoredEpisode(ledger: ledger)], seed: 1)
        XCTAssertEqual(ledger.groupSizes, [4, 4])
        XCTAssertGreaterThan(batch.statistics.forks, 0)
        XCTAssertTrue(batch.records.allSatisfy { $0.reward == 2 }, "the doubled reward of a correct answer")
        XCTAssertTrue(batch.scores.allSatisfy { $0.reward == 2 })
        XCTAssertEqual(ledger.forkedTrajectories.sorted(), Array(batch.records.indices))
    }

    /// Plays a faultless arithmetic episode: `calls` times the expert's calc call, then `answer`.
    func played(calls: Int, answer: String, config: EnvironmentConfig) -> EpisodeScore {
        let episode = Episode(family: .arithmetic, split: .train, seed: 11, config: config)
        let call = "<call>calc(\(episode.task.plan[0].arguments))</call>"
        var transcript = ""
        for _ in 0..<calls {
            let reply = episode.respond(toPolicyText: call) as ToolReply
            transcript += call + "<obs>" + reply.observation + "</obs>"
        }
        let score: EpisodeScore = episode.finish(policyText: transcript + "<answer>\(answer)</answer><|end|>", endReason: .answered)
        return score
    }

    /// OTC-PO's group form, by hand. Three trajectories: 1 call and right, 2 calls and right,
    /// 3 calls and wrong; n = 1 (the fewest calls among the right ones), c = 10.
    /// - group-free (what `finish` gives): cos(π / 12) = 0.96593, cos(2π / 14) = 0.90097;
    /// - group: m = 1: f = 2·1·1/2 = 1, sin(π/2) = 1; m = 2: f = 4/3, sin(2π/3) = 0.86603;
    ///   the wrong answer scores 0 either way (the factor multiplies S + B = 0).
    func testGroupFormOfToolEfficiencyAgainstTheGroupsFewestCorrectCalls() {
        var config = EnvironmentConfig(faults: .none)
        config.reward.toolEfficiency = true
        config.reward.toolEfficiencyForm = .group
        let gold = Episode(family: .arithmetic, split: .train, seed: 11, config: config).task.goldAnswer
        let scores = [played(calls: 1, answer: gold, config: config), played(calls: 2, answer: gold, config: config), played(calls: 3, answer: "0.5", config: config)]
        XCTAssertEqual(scores.map(\.reward)[0], cos(Double.pi / 12), accuracy: 1e-12)
        XCTAssertEqual(scores.map(\.reward)[1], cos(2 * Double.pi / 14), accuracy: 1e-12)
        let template = Episode(family: .arithmetic, split: .train, seed: 11, config: config)
        let grouped = template.scoreGroup(scores)
        XCTAssertEqual(grouped[0].reward, 1, accuracy: 1e-12)
        XCTAssertEqual(grouped[1].reward, sin(2 * Double.pi / 3), accuracy: 1e-12)
        XCTAssertEqual(grouped[2].reward, 0, accuracy: 1e-12)
        XCTAssertEqual(grouped[1].breakdown?.toolEfficiencyFactor ?? 0, sin(2 * Double.pi / 3), accuracy: 1e-12)
        XCTAssertEqual(grouped.map(\.isCorrect), [true, true, false])

        // The group-free form, or tool efficiency off, leaves the scores as they were.
        var groupFree = config
        groupFree.reward.toolEfficiencyForm = .groupFree
        let unchanged = Episode(family: .arithmetic, split: .train, seed: 11, config: groupFree).scoreGroup(scores)
        XCTAssertEqual(unchanged.map(\.reward), scores.map(\.reward))
    }

    /// Under `faults.draws: per-trajectory` an Episode forks onto stream trajectory + 1; under
    /// `shared` it keeps stream 0.
    func testEpisodesForkOntoTheirTrajectorysFaultStreamOnlyWhenAsked() {
        var perTrajectory = EnvironmentConfig()
        perTrajectory.faults.draws = .perTrajectory
        let episode = Episode(family: .arithmetic, split: .train, seed: 3, config: perTrajectory)
        XCTAssertEqual((episode.forkEpisode(trajectory: 4) as! Episode).faultStream, 5)
        let shared = Episode(family: .arithmetic, split: .train, seed: 3, config: EnvironmentConfig())
        XCTAssertEqual((shared.forkEpisode(trajectory: 4) as! Episode).faultStream, 0)
    }
}
