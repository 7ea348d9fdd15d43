@testable import ARPO
import Foundation
@testable import ToolEnv
import XCTest

/// Preference pairs at fork points (TTPA) on hand-built trees, ranked by ESM.
final class PreferencePairTests: XCTestCase {
    func record(_ tokens: [Int], reward: Double = 0, group: Int = 0, parent: Int? = nil, fork: Int = 0) -> TrajectoryRecord {
        TrajectoryRecord(
            promptTokens: [1, 2], responseTokens: tokens, oldLogProbabilities: tokens.map { _ in -1 }, entropies: tokens.map { _ in 0 },
            lossMask: tokens.map { $0 != 99 }, reward: reward, groupIndex: group, parent: parent, forkPosition: fork)
    }

    /// A finished episode with `reward` that recorded `errors`.
    func score(_ reward: Double, errors: [EpisodeErrorKind] = []) -> EpisodeScore {
        let breakdown = RewardBreakdown(
            formatCorrect: true, formatViolation: nil, answer: "1", answerScore: reward, isCorrect: reward == 1, multiToolBonus: 0,
            toolEfficiencyFactor: 1, errorPenalty: 0, formatReward: 0, errors: errors, executedToolCalls: 1, toolCallAttempts: 1,
            toolKindsUsed: [.calc], endReason: .answered)
        return EpisodeScore(reward: breakdown.total, isCorrect: breakdown.isCorrect, breakdown: breakdown)
    }

    /// The tree of the advantage tests, one group plus a second group's lone root:
    ///
    ///     record 0 (root):             10 11 12 13 14 15      score 1
    ///     record 1 (from 0 at 3):      10 11 12 20 21 22      score 0
    ///     record 2 (from 1 at 4):      10 11 12 20 30 31      score 0.5
    ///     record 3 (root):             40 41 42 43            score 0.2
    ///     record 4 (root, group 1):    50 51                  score 0
    ///
    /// Fork point (0, 3): branch 0 = {0}, branch 1 = {1, 2}; the widest pair across them is
    /// 0 (1) over 1 (0). Fork point (1, 4): branch 1 = {1}, branch 2 = {2}: 2 (0.5) over 1 (0).
    /// Record 3 passes through no fork point; record 0 over record 3 is not a pair (different
    /// roots: no shared prefix).
    func testOnePairPerForkPointBestAgainstWorstAcrossBranches() {
        let records = [
            record([10, 11, 12, 13, 14, 15], reward: 1),
            record([10, 11, 12, 20, 21, 22], parent: 0, fork: 3),
            record([10, 11, 12, 20, 30, 31], reward: 0.5, parent: 1, fork: 4),
            record([40, 41, 42, 43], reward: 0.2),
            record([50, 51], group: 1),
        ]
        let pairs = PreferencePair.pairs(in: records, scores: records.map(\.reward))
        XCTAssertEqual(pairs, [
            PreferencePair(chosen: 0, rejected: 1, forkRecord: 0, forkPosition: 3, chosenScore: 1, rejectedScore: 0),
            PreferencePair(chosen: 2, rejected: 1, forkRecord: 1, forkPosition: 4, chosenScore: 0.5, rejectedScore: 0),
        ])
        // Both continuations of a pair start at its fork position after identical tokens.
        for pair in pairs {
            XCTAssertEqual(records[pair.chosen].responseTokens.prefix(pair.forkPosition), records[pair.rejected].responseTokens.prefix(pair.forkPosition))
            XCTAssertNotEqual(records[pair.chosen].responseTokens[pair.forkPosition], records[pair.rejected].responseTokens[pair.forkPosition])
        }
    }

    /// A grandchild of the record's own continuation counts on the record's branch: here record
    /// 2 was forked from 0 at 5, after the fork point (0, 2), so at (0, 2) it is on branch 0
    /// and is paired with the copy made there. At (0, 5) the pair is 0 against 2.
    func testADescendantForkedLaterStaysOnTheRecordsBranch() {
        let records = [
            record([10, 11, 12, 13, 14, 15, 16], reward: 0.5),
            record([10, 11, 20, 21], reward: 0.4, parent: 0, fork: 2),
            record([10, 11, 12, 13, 14, 30], reward: 1, parent: 0, fork: 5),
        ]
        XCTAssertEqual(PreferencePair.branch(of: 2, at: .init(record: 0, position: 2), records), 0)
        XCTAssertEqual(PreferencePair.branch(of: 1, at: .init(record: 0, position: 5), records), nil)
        let pairs = PreferencePair.pairs(in: records, scores: records.map(\.reward))
        XCTAssertEqual(pairs.map { [$0.chosen, $0.rejected, $0.forkPosition] }, [[2, 1, 2], [2, 0, 5]])
    }

    /// Equal scores give no pair; ESM separates equal rewards by the tool-use errors recorded:
    /// both branches are correct (reward 1), but the copy's episode called with bad arguments
    /// once, so it scores 1 − 0.25 and is rejected. Outcome errors weigh 0 by default.
    func testErrorOrientedScoringRanksEqualRewardsByToolErrors() {
        let records = [record([10, 11, 12], reward: 1), record([10, 11, 20], reward: 1, parent: 0, fork: 2)]
        XCTAssertEqual(PreferencePair.pairs(in: records, scores: [1, 1]), [])
        let scores = [score(1), score(1, errors: [.badArguments])]
        let scoring = ErrorOrientedScoring()
        XCTAssertEqual(scores.map(scoring.score), [1, 0.75])
        XCTAssertEqual(scoring.score(score(0, errors: [.wrongAnswer, .malformedCall, .malformedCall])), -0.5)
        XCTAssertEqual(scoring.score(EpisodeScore(reward: 0.3, isCorrect: false)), 0.3)
        let batch = RolloutBatch(records: records, scores: scores, statistics: RolloutStatistics())
        XCTAssertEqual(PreferencePair.pairs(in: batch), [
            PreferencePair(chosen: 0, rejected: 1, forkRecord: 0, forkPosition: 2, chosenScore: 1, rejectedScore: 0.75),
        ])
        // With no weights ESM is the reward, and the tie gives no pair.
        XCTAssertEqual(PreferencePair.pairs(in: batch, scoring: ErrorOrientedScoring(weights: [:])), [])
    }

    /// Z = 3: two copies at the same fork point are two branches; the widest pair may join the
    /// two copies, leaving the record out.
    func testCopiesAtTheSameForkPointAreSeparateBranches() {
        let records = [
            record([10, 11, 12], reward: 0.5),
            record([10, 11, 20], reward: 1, parent: 0, fork: 2),
            record([10, 11, 30], reward: 0, parent: 0, fork: 2),
        ]
        XCTAssertEqual(PreferencePair.pairs(in: records, scores: records.map(\.reward)).map { [$0.chosen, $0.rejected] }, [[1, 2]])
    }
}
