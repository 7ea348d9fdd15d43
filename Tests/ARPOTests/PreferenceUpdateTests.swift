@testable import ARPO
import Foundation
import Policy
import Tensor
@testable import ToolEnv
import XCTest

/// The DPO term in the RL update (`rl.loss.dpo_coefficient`): off, the update is bit for bit the
/// one without it; on, it moves the policy towards the chosen continuation of each pair.
final class PreferenceUpdateTests: XCTestCase {
    func score(_ reward: Double, errors: [EpisodeErrorKind] = []) -> EpisodeScore {
        let breakdown = RewardBreakdown(
            formatCorrect: true, formatViolation: nil, answer: "1", answerScore: reward, isCorrect: reward == 1, multiToolBonus: 0,
            toolEfficiencyFactor: 1, errorPenalty: 0, formatReward: 0, errors: errors, executedToolCalls: 1, toolCallAttempts: 1,
            toolKindsUsed: [.calc], endReason: .answered)
        return EpisodeScore(reward: breakdown.total, isCorrect: breakdown.isCorrect, breakdown: breakdown)
    }

    func record(_ tokens: [Int], mask: [Bool], reward: Double, group: Int, parent: Int? = nil, fork: Int = 0) -> TrajectoryRecord {
        TrajectoryRecord(
            promptTokens: [5, 6, 7 + group], responseTokens: tokens, oldLogProbabilities: tokens.map { _ in -1 }, entropies: tokens.map { _ in 0 },
            lossMask: mask, reward: reward, groupIndex: group, parent: parent, forkPosition: fork)
    }

    /// Two groups. Group 0: a root and a copy forked at 2 (with an observation token at 3),
    /// both correct, the copy with a bad-arguments error, so ESM prefers the root. Group 1: a
    /// root (reward 1), a copy at 1 (reward 0) and a copy of the copy at 3 (reward 0.5).
    func batch(equalRewards: Bool) -> RolloutBatch {
        let records = [
            record([20, 21, 22, 23, 24], mask: [true, true, true, true, true], reward: 1, group: 0),
            record([20, 21, 30, 31, 32], mask: [true, true, true, false, true], reward: 1, group: 0, parent: 0, fork: 2),
            record([40, 41, 42, 43], mask: [true, true, true, true], reward: 1, group: 1),
            record([40, 50, 51, 52], mask: [true, true, false, true], reward: equalRewards ? 1 : 0, group: 1, parent: 2, fork: 1),
            record([40, 50, 51, 60, 61], mask: [true, true, false, true, true], reward: equalRewards ? 1 : 0.5, group: 1, parent: 3, fork: 3),
        ]
        let scores = [
            score(1), score(1, errors: [.badArguments]), score(1), score(equalRewards ? 1 : 0, errors: [.malformedCall]),
            score(equalRewards ? 1 : 0.5),
        ]
        return RolloutBatch(records: records, scores: scores, statistics: RolloutStatistics())
    }

    func learner(_ loss: PolicyLossConfiguration, microBatchSize: Int = 3) -> ReinforcementLearner {
        var generator = RandomGenerator(seed: 8)
        let model = LlamaModel(configuration: LlamaConfiguration(hiddenSize: 32, intermediateSize: 48, layerCount: 2, headCount: 4, maxPositions: 32), generator: &generator)
        return ReinforcementLearner(
            model: model, reference: model.copy(), optimizer: AdamW(named: model.namedParameters, hyperparameters: .init(weightDecay: 0)),
            configuration: UpdateConfiguration(microBatchSize: microBatchSize, loss: loss), algorithm: .groupRelative)
    }

    /// How the pairs are packed into passes (one pair a pass, or all three in one) moves the DPO
    /// term's value and gradient by float rounding only: each pass's share is over the
    /// mini-batch's number of pairs.
    func testPackingThePairsChangesNothingButRounding() {
        let batch = batch(equalRewards: false)
        let pairs = PreferencePair.pairs(in: batch)
        var on = PolicyLossConfiguration()
        on.dpoCoefficient = 1
        on.dpoBeta = 0.5
        func evaluate(microBatchSize: Int) -> (Double, [[Double]]) {
            let learner = learner(on, microBatchSize: microBatchSize)
            // Policy and reference differ, so that the margins are not 0.
            var generator = RandomGenerator(seed: 3)
            let reference = LlamaModel(configuration: learner.model.configuration, generator: &generator)
            let frozen = ReinforcementLearner(
                model: learner.model, reference: reference, optimizer: learner.optimizer, configuration: learner.configuration, algorithm: .groupRelative
            ).frozenStatistics(batch.records)
            var cost = UpdateCost()
            learner.optimizer.zeroGradients()
            let loss = learner.accumulatePreferenceGradients(pairs, records: batch.records, reference: frozen.reference!, coefficient: 1, cost: &cost)
            return (loss, learner.model.parameters.map { $0.gradient!.doubles })
        }
        let (apart, apartGradients) = evaluate(microBatchSize: 2)
        let (together, togetherGradients) = evaluate(microBatchSize: 6)
        XCTAssertNotEqual(apart, log(2), accuracy: 1e-3)
        XCTAssertEqual(apart, together, accuracy: 1e-5)
        for (a, b) in zip(apartGradients, togetherGradients) {
            for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-5) }
        }
    }

    func parameters(_ model: LlamaModel) -> [[Float]] { model.namedParameters.map { $0.tensor.floats } }

    /// Per record, Σ log π over its policy tokens from `position` on, under `model`.
    func continuationLogProbability(_ model: LlamaModel, _ learner: ReinforcementLearner, _ records: [TrajectoryRecord], _ index: Int, from position: Int) -> Double {
        withoutGradients {
            let pass = learner.packedPasses([index], records: records)[0]
            let length = records[index].responseTokens.count
            let aligned = learner.responseAligned(model.tokenStatistics(pass.batch, temperature: 1).logProbabilities, pass: pass, records: records, length: length).doubles
            return (position..<length).filter { records[index].lossMask[$0] }.reduce(0) { $0 + aligned[$1] }
        }
    }

    func testCoefficientZeroLeavesTheUpdateBitIdentical() {
        let batch = batch(equalRewards: false)
        let plain = learner(PolicyLossConfiguration())
        var off = PolicyLossConfiguration()
        off.dpoCoefficient = 0
        off.dpoBeta = 0.7
        let withOff = learner(off)
        XCTAssertFalse(off.needsReference)
        let plainMetrics = plain.update(batch, learningRate: 1e-2, seed: 1)
        let offMetrics = withOff.update(batch, learningRate: 1e-2, seed: 1)
        XCTAssertEqual(parameters(plain.model), parameters(withOff.model))
        XCTAssertEqual(plainMetrics.loss, offMetrics.loss)
        XCTAssertNil(offMetrics.preferencePairs)
        XCTAssertNil(offMetrics.preferenceLoss)
    }

    /// Equal rewards give every advantage 0, so the policy loss has no gradient and only the
    /// DPO term moves the policy: off, nothing changes; on, every pair's margin
    /// (log π_θ − log π_ref of the chosen continuation minus the rejected one's) is 0 before
    /// and positive after, and the term's value before the step is log 2 per pair.
    func testAPositiveCoefficientMovesThePolicyTowardsTheChosenContinuations() {
        let batch = batch(equalRewards: true)
        let pairs = PreferencePair.pairs(in: batch)
        XCTAssertEqual(pairs.map { [$0.chosen, $0.rejected, $0.forkPosition] }, [[0, 1, 2], [2, 3, 1], [4, 3, 3]])

        let off = learner(PolicyLossConfiguration())
        let before = parameters(off.model)
        _ = off.update(batch, learningRate: 1e-2, seed: 1)
        XCTAssertEqual(parameters(off.model), before, "with every advantage 0 and no DPO term nothing moves")

        var on = PolicyLossConfiguration()
        on.dpoCoefficient = 1
        on.dpoBeta = 0.5
        let learner = learner(on)
        func margins() -> [Double] {
            pairs.map { pair in
                let records = batch.records
                func ratio(_ index: Int) -> Double {
                    continuationLogProbability(learner.model, learner, records, index, from: pair.forkPosition)
                        - continuationLogProbability(learner.reference, learner, records, index, from: pair.forkPosition)
                }
                return ratio(pair.chosen) - ratio(pair.rejected)
            }
        }
        XCTAssertEqual(margins(), [0, 0, 0])
        let metrics = learner.update(batch, learningRate: 1e-2, seed: 1)
        XCTAssertEqual(metrics.preferencePairs, 3)
        XCTAssertEqual(metrics.preferenceLoss!, log(2), accuracy: 1e-5)
        XCTAssertEqual(metrics.appliedUpdates, 1)
        for (index, margin) in margins().enumerated() { XCTAssertGreaterThan(margin, 0, "pair \(index)") }
        XCTAssertNotEqual(parameters(learner.model), before)
    }

    /// The DPO stage's update trains on the pairs alone: with rewards that differ (so the policy
    /// loss would have a gradient) it takes one step per mini-batch of pairs, reports the mean
    /// DPO loss (log 2 per pair at the first step, the policy being the reference) and no
    /// policy loss, and moves every pair's margin above 0. A batch without forks has no pairs
    /// and takes no step.
    func testTheDPOStageTrainsOnThePairsAlone() {
        let batch = batch(equalRewards: false)
        let pairs = PreferencePair.pairs(in: batch)
        var configuration = PolicyLossConfiguration()
        configuration.dpoBeta = 0.5
        let learner = learner(configuration)
        let metrics = learner.preferenceUpdate(batch, learningRate: 1e-2, seed: 1)
        XCTAssertEqual(metrics.preferencePairs, 3)
        XCTAssertEqual(metrics.appliedUpdates, 1)
        XCTAssertEqual(metrics.preferenceLoss!, log(2), accuracy: 1e-5)
        XCTAssertEqual(metrics.loss.loss, metrics.preferenceLoss!)
        XCTAssertTrue(metrics.loss.policyLoss.isNaN)
        for pair in pairs {
            func ratio(_ index: Int) -> Double {
                continuationLogProbability(learner.model, learner, batch.records, index, from: pair.forkPosition)
                    - continuationLogProbability(learner.reference, learner, batch.records, index, from: pair.forkPosition)
            }
            XCTAssertGreaterThan(ratio(pair.chosen) - ratio(pair.rejected), 0, "pair \(pair)")
        }

        // ESM's weights come from the configuration: without them equal rewards rank nothing.
        var unweighted = PolicyLossConfiguration()
        unweighted.dpoErrorWeights = [:]
        XCTAssertEqual(self.learner(unweighted).preferenceUpdate(self.batch(equalRewards: true), learningRate: 1e-2, seed: 1).preferencePairs, 0)
        XCTAssertEqual(self.learner(configuration).preferenceUpdate(self.batch(equalRewards: true), learningRate: 1e-2, seed: 1).preferencePairs, 3)

        var roots = batch
        roots.records = roots.records.map { record in
            var root = record
            root.parent = nil
            root.forkPosition = 0
            return root
        }
        let idle = self.learner(configuration)
        let before = parameters(idle.model)
        let none = idle.preferenceUpdate(roots, learningRate: 1e-2, seed: 1)
        XCTAssertEqual(none.preferencePairs, 0)
        XCTAssertEqual(none.appliedUpdates, 0)
        XCTAssertNil(none.preferenceLoss)
        XCTAssertTrue(none.loss.loss.isNaN, "no pair, no loss: reported as null")
        XCTAssertEqual(parameters(idle.model), before)
    }
}
