import ARPO
import Foundation
import Policy
import Tensor
import ToolEnv
import XCTest

/// The seam through which tests inject faults into the learner's optimizer steps.
final class UpdateHooksTests: XCTestCase {
    /// Non-finite gradients after every backward pass: every update is skipped and counted, and
    /// the weights stay as they were.
    func testNonfiniteGradientsSkipEveryUpdateAndLeaveTheWeights() {
        var generator = RandomGenerator(seed: 8)
        let model = LlamaModel(configuration: LlamaConfiguration(hiddenSize: 32, intermediateSize: 48, layerCount: 1, headCount: 4, maxPositions: 96), generator: &generator)
        let configuration = RolloutConfiguration(maxResponseTokens: 40, sampling: SamplingParameters(temperature: 0.8), strategy: .trajectory(groupSize: 3))
        let episodes = (0..<2).map { Episode(family: .arithmetic, split: .train, seed: UInt64($0), config: EnvironmentConfig()) as ToolEpisode }
        let batch = RolloutEngine(policy: model, configuration: configuration).run(episodes: episodes, seed: 4)
        let learner = ReinforcementLearner(
            model: model, reference: model.copy(), optimizer: AdamW(named: model.namedParameters, hyperparameters: .init(weightDecay: 0)),
            configuration: UpdateConfiguration(microBatchSize: 4, temperature: 0.8), algorithm: .groupRelative)
        let before = model.namedParameters.map(\.tensor.doubles)

        learner.hooks = .nonfiniteGradients
        let metrics = learner.update(batch, learningRate: 1e-2, seed: 1)
        XCTAssertEqual(metrics.appliedUpdates, 0)
        XCTAssertGreaterThan(metrics.skippedUpdates, 0)
        XCTAssertTrue(model.namedParameters.map(\.tensor.doubles) == before, "a skipped update leaves the weights")

        learner.hooks = UpdateHooks()
        let healthy = learner.update(batch, learningRate: 1e-2, seed: 1)
        XCTAssertEqual(healthy.skippedUpdates, 0, "without the fault the same batch's updates are applied")
        XCTAssertEqual(healthy.appliedUpdates, metrics.skippedUpdates)
    }

    /// The cold start's steps take the same seam: non-finite gradients skip a step and leave the
    /// weights; without them the same step is applied.
    func testNonfiniteGradientsSkipAColdStartStep() {
        var generator = RandomGenerator(seed: 3)
        let model = LlamaModel(configuration: LlamaConfiguration(hiddenSize: 32, intermediateSize: 64, layerCount: 1, headCount: 2, maxPositions: 512), generator: &generator)
        var configuration = SupervisedConfiguration()
        configuration.demonstrations = 8
        configuration.batchSize = 4
        configuration.steps = 2
        let trainer = SupervisedTrainer(model: model, optimizer: AdamW(named: model.namedParameters), configuration: configuration, environment: EnvironmentConfig(), seed: 5)
        let before = model.namedParameters.map(\.tensor.doubles)

        trainer.hooks = .nonfiniteGradients
        XCTAssertTrue(trainer.step(0).skipped)
        XCTAssertTrue(model.namedParameters.map(\.tensor.doubles) == before, "a skipped step leaves the weights")

        trainer.hooks = UpdateHooks()
        XCTAssertFalse(trainer.step(0).skipped)
    }
}
