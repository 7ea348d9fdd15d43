@testable import ARPO
import Foundation
import Policy
import Tensor
import ToolEnv
import XCTest

/// The reference policy's forward pass runs only when something needs it: the KL term
/// (`kl_coefficient` > 0) or the `reference_kl` metric (`reference_kl_metric`). Without it the
/// update is the same, bit for bit, since a KL coefficient of 0 adds nothing to the gradient.
final class ReferencePassTests: XCTestCase {
    /// A learner on a fresh copy of one policy (same seed, same weights every call), a reference
    /// that differs from it (so a measured KL is not 0), and one rollout batch.
    func learnerAndBatch(_ loss: PolicyLossConfiguration) -> (ReinforcementLearner, RolloutBatch) {
        let architecture = LlamaConfiguration(hiddenSize: 32, intermediateSize: 48, layerCount: 2, headCount: 4, maxPositions: 96)
        var generator = RandomGenerator(seed: 8)
        let model = LlamaModel(configuration: architecture, generator: &generator)
        var referenceGenerator = RandomGenerator(seed: 9)
        let reference = LlamaModel(configuration: architecture, generator: &referenceGenerator)
        let rollout = RolloutConfiguration(maxResponseTokens: 24, sampling: SamplingParameters(temperature: 1), strategy: .trajectory(groupSize: 3))
        let episodes = (0..<2).map { Episode(family: .arithmetic, split: .train, seed: UInt64($0), config: EnvironmentConfig()) as ToolEpisode }
        let batch = RolloutEngine(policy: model, configuration: rollout).run(episodes: episodes, seed: 4)
        let learner = ReinforcementLearner(
            model: model, reference: reference, optimizer: AdamW(named: model.namedParameters, hyperparameters: .init(weightDecay: 0)),
            configuration: UpdateConfiguration(microBatchSize: 4, loss: loss), algorithm: .groupRelative)
        return (learner, batch)
    }

    func parameters(_ model: LlamaModel) -> [[Float]] {
        model.namedParameters.map { $0.tensor.floats }
    }

    func testNothingNeedsTheReferenceByDefault() throws {
        XCTAssertFalse(PolicyLossConfiguration().needsReference)
        var metric = PolicyLossConfiguration()
        metric.referenceKLMetric = true
        XCTAssertTrue(metric.needsReference)
        var term = PolicyLossConfiguration()
        term.klCoefficient = 0.01
        XCTAssertTrue(term.needsReference)
        let decoded = try JSONDecoder().decode(PolicyLossConfiguration.self, from: Data(#"{"reference_kl_metric": true}"#.utf8))
        XCTAssertTrue(decoded.referenceKLMetric)
    }

    /// Without the KL term or the metric, GRPO's frozen statistics run no forward pass at all
    /// (no product is computed); with the metric, the reference's pass runs.
    func testNoForwardPassRunsWhenNothingNeedsTheReference() {
        let (plain, batch) = learnerAndBatch(PolicyLossConfiguration())
        let (frozen, calls) = GEMMRecorder.recording { plain.frozenStatistics(batch.records) }
        XCTAssertNil(frozen.reference)
        XCTAssertNil(frozen.values)
        XCTAssertEqual(calls, [], "a forward pass ran")
        var asked = PolicyLossConfiguration()
        asked.referenceKLMetric = true
        let (measuring, _) = learnerAndBatch(asked)
        let (measured, measuringCalls) = GEMMRecorder.recording { measuring.frozenStatistics(batch.records) }
        XCTAssertEqual(measured.reference?.map(\.count), batch.records.map(\.responseTokens.count))
        XCTAssertFalse(measuringCalls.isEmpty)
    }

    /// Without the KL term or the metric: no reference pass, no `reference_kl` (null in
    /// metrics.jsonl). With the metric: the KL is measured, and the update is bit for bit the
    /// same.
    func testTheMetricAloneRunsTheReferenceAndChangesNoUpdate() throws {
        let (plain, batch) = learnerAndBatch(PolicyLossConfiguration())
        var asked = PolicyLossConfiguration()
        asked.referenceKLMetric = true
        let (measuring, sameBatch) = learnerAndBatch(asked)
        XCTAssertEqual(batch.records.map(\.responseTokens), sameBatch.records.map(\.responseTokens))

        let withoutReference = plain.update(batch, learningRate: 1e-2, seed: 1)
        let withReference = measuring.update(sameBatch, learningRate: 1e-2, seed: 1)
        XCTAssertNil(withoutReference.loss.referenceKL)
        XCTAssertTrue(try encodedFields(withoutReference)["reference_kl"] is NSNull)
        let kl = try XCTUnwrap(withReference.loss.referenceKL)
        XCTAssertGreaterThan(kl, 0, "k3 against a different policy")
        XCTAssertEqual(withoutReference.appliedUpdates, 1)
        XCTAssertEqual(parameters(plain.model), parameters(measuring.model), "the metric changes no parameter")
        XCTAssertEqual(withoutReference.loss.loss, withReference.loss.loss)
        XCTAssertEqual(withoutReference.gradientNorm, withReference.gradientNorm)
    }

    /// The KL term needs the reference: it is measured, and it moves the update.
    func testTheKLTermRunsTheReference() throws {
        var term = PolicyLossConfiguration()
        term.klCoefficient = 0.5
        let (learner, batch) = learnerAndBatch(term)
        let (plain, sameBatch) = learnerAndBatch(PolicyLossConfiguration())
        let metrics = learner.update(batch, learningRate: 1e-2, seed: 1)
        _ = plain.update(sameBatch, learningRate: 1e-2, seed: 1)
        XCTAssertGreaterThan(try XCTUnwrap(metrics.loss.referenceKL), 0)
        XCTAssertNotEqual(parameters(learner.model), parameters(plain.model))
    }

    /// The update's cost record: its trained passes' tokens are the batch's sequences, and the
    /// positions computed are at least those less the shared prefixes' tokens computed once.
    func testTheUpdateCountsItsTokens() {
        let (learner, batch) = learnerAndBatch(PolicyLossConfiguration())
        let metrics = learner.update(batch, learningRate: 1e-2, seed: 1)
        let tokens = batch.records.reduce(0) { $0 + $1.promptTokens.count + $1.responseTokens.count }
        XCTAssertEqual(metrics.cost.tokens, tokens)
        XCTAssertGreaterThanOrEqual(metrics.cost.paddedTokens, tokens - metrics.cost.sharedTokens)
        XCTAssertGreaterThan(metrics.cost.sharedTokens, 0, "the group's prompt is computed once per row")
    }
}
