import ARPO
import Foundation
import Policy
import Tensor
import ToolEnv
import XCTest

/// `rollout_logprob_drift`: |log π_old − log π_θ| over the sampled tokens at the first update.
final class LogProbabilityDriftTests: XCTestCase {
    func learnerAndBatch() -> (ReinforcementLearner, RolloutBatch) {
        var generator = RandomGenerator(seed: 8)
        let model = LlamaModel(configuration: LlamaConfiguration(hiddenSize: 32, intermediateSize: 48, layerCount: 2, headCount: 4, maxPositions: 96), generator: &generator)
        let configuration = RolloutConfiguration(maxResponseTokens: 40, sampling: SamplingParameters(temperature: 0.8), strategy: .trajectory(groupSize: 3))
        let episodes = (0..<2).map { Episode(family: .arithmetic, split: .train, seed: UInt64($0), config: EnvironmentConfig()) as ToolEpisode }
        let batch = RolloutEngine(policy: model, configuration: configuration).run(episodes: episodes, seed: 4)
        let learner = ReinforcementLearner(
            model: model, reference: model.copy(), optimizer: AdamW(named: model.namedParameters, hyperparameters: .init(weightDecay: 0)),
            configuration: UpdateConfiguration(microBatchSize: 4, temperature: 0.8), algorithm: .groupRelative)
        return (learner, batch)
    }

    /// The rollout's own log-probs: the drift is rounding only (the float32 decode and training
    /// paths agree to 2e-4, as RolloutEngineTests checks per token).
    func testDriftIsAboutZeroForTheRolloutsOwnLogProbabilities() {
        let (learner, batch) = learnerAndBatch()
        let metrics = learner.update(batch, learningRate: 0, seed: 1)
        XCTAssertLessThan(metrics.rolloutLogProbabilityDriftMax!, 2e-4)
        XCTAssertLessThanOrEqual(metrics.rolloutLogProbabilityDriftMean!, metrics.rolloutLogProbabilityDriftMax!)
    }

    /// Every sampled token's recorded log-prob moved by 0.25, up and down in turn, and the first
    /// one's up by 1: over N sampled tokens the drift is max 1 and mean (0.25 (N − 1) + 1) / N,
    /// up to the 2e-4 of rounding (signed differences would cancel). Observation tokens
    /// (recorded as 0) are not counted.
    func testDriftMeasuresShiftedLogProbabilitiesOverTheSampledTokens() {
        let (learner, original) = learnerAndBatch()
        var batch = original
        var count = 0
        for row in batch.records.indices {
            for position in batch.records[row].lossMask.indices where batch.records[row].lossMask[position] {
                batch.records[row].oldLogProbabilities[position] += count == 0 ? 1 : count % 2 == 0 ? 0.25 : -0.25
                count += 1
            }
        }
        let metrics = learner.update(batch, learningRate: 0, seed: 1)
        XCTAssertEqual(metrics.rolloutLogProbabilityDriftMax!, 1, accuracy: 2e-4)
        XCTAssertEqual(metrics.rolloutLogProbabilityDriftMean!, (0.25 * Double(count - 1) + 1) / Double(count), accuracy: 2e-4)
        XCTAssertEqual(try encodedFields(metrics)["rollout_logprob_drift_max"] as? Double, metrics.rolloutLogProbabilityDriftMax)
    }
}
