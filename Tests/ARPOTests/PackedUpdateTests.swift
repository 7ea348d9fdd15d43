@testable import ARPO
import Foundation
import Policy
import Tensor
import ToolEnv
import XCTest

/// The update packs its trajectories several to a row of the context length, and the
/// trajectories of a group share their common prefixes, computed once per row
/// (`ReinforcementLearner.packedPasses`). Neither may change anything but rounding: the frozen
/// statistics, the per-token log-probs, the loss and every gradient equal those of one
/// trajectory per pass (`micro_batch_size` 1, which packs and shares nothing), and the log-probs
/// those of the right-padded batch.
final class PackedUpdateTests: XCTestCase {
    /// A float32 policy (with a value head for PPO), and a rollout batch of it: 3 prompts × 4
    /// trajectories, and per group two forks made by hand as ARPO's branching makes them (a
    /// random policy calls no tool, so the rollout forks nothing): one of the first trajectory
    /// at half its response, one of that fork a few tokens later, each holding its parent's
    /// tokens up to its fork point and its own (reversed) after. Rewards are set by hand: a
    /// random policy earns none, and advantages of 0 would leave the policy term without a
    /// gradient.
    func rollout(valueHead: Bool) -> (LlamaModel, RolloutBatch) {
        let architecture = LlamaConfiguration(hiddenSize: 32, intermediateSize: 48, layerCount: 2, headCount: 4, maxPositions: 256, valueHead: valueHead)
        var generator = RandomGenerator(seed: 8)
        let policy = LlamaModel(configuration: architecture, generator: &generator)
        let configuration = RolloutConfiguration(maxResponseTokens: 40, sampling: SamplingParameters(temperature: 1), strategy: .trajectory(groupSize: 4))
        let episodes = (0..<3).map { Episode(family: .arithmetic, split: .train, seed: UInt64($0), config: EnvironmentConfig()) as ToolEpisode }
        var batch = RolloutEngine(policy: policy, configuration: configuration).run(episodes: episodes, seed: 4)
        func fork(of parent: Int, at forkPosition: Int) -> TrajectoryRecord {
            var record = batch.records[parent]
            func forked<T>(_ values: [T]) -> [T] { Array(values[..<forkPosition]) + values[forkPosition...].reversed() }
            record.responseTokens = forked(record.responseTokens)
            record.oldLogProbabilities = forked(record.oldLogProbabilities)
            record.entropies = forked(record.entropies)
            record.lossMask = forked(record.lossMask)
            record.parent = parent
            record.forkPosition = forkPosition
            return record
        }
        for group in 0..<3 {
            let root = try! XCTUnwrap(batch.records.firstIndex { $0.groupIndex == group && $0.responseTokens.count >= 12 })
            let half = batch.records[root].responseTokens.count / 2
            let first = fork(of: root, at: half)
            batch.records.append(first)
            let second = fork(of: batch.records.count - 1, at: half + 3)
            batch.records.append(second)
        }
        for index in batch.records.indices { batch.records[index].reward = Double(index % 3) }
        return (policy, batch)
    }

    /// A learner on `policy`'s weights in `dtype`, with the KL term (so the reference runs) and an
    /// entropy bonus (so the entropies carry gradients).
    func learner(_ policy: LlamaModel, dtype: DType, microBatchSize: Int, algorithm: UpdateAlgorithm) -> ReinforcementLearner {
        var loss = PolicyLossConfiguration()
        loss.klCoefficient = 0.1
        loss.entropyCoefficient = 0.01
        let model = policy.copy(dtype: dtype)
        var referenceGenerator = RandomGenerator(seed: 9)
        let reference = LlamaModel(configuration: policy.configuration, dtype: dtype, generator: &referenceGenerator)
        return ReinforcementLearner(
            model: model, reference: reference, optimizer: AdamW(named: model.namedParameters, hyperparameters: .init(weightDecay: 0)),
            configuration: UpdateConfiguration(microBatchSize: microBatchSize, loss: loss), algorithm: algorithm)
    }

    /// What one mini-batch of every record computes, per record where the figure is per token.
    struct Evaluation {
        var reference: [[Double]]
        var values: [[Double]]?
        var logProbabilities: [[Double]]
        var metrics: PolicyLossMetrics
        var gradients: [[Double]]
        var cost: UpdateCost
    }

    func evaluate(_ learner: ReinforcementLearner, _ records: [TrajectoryRecord]) -> Evaluation {
        let frozen = learner.frozenStatistics(records)
        var updateMetrics = UpdateMetrics()
        let advantages = learner.estimateAdvantages(records, frozen: frozen, metrics: &updateMetrics)
        var logProbabilities = [[Double]](repeating: [], count: records.count)
        for pass in learner.packedPasses(Array(records.indices), records: records) {
            let recomputed = learner.policyLossBatch(pass, records: records, advantages: advantages, frozen: frozen).logProbabilities
            let (width, values) = (recomputed.shape[1], recomputed.doubles)
            for (row, index) in pass.records.enumerated() {
                logProbabilities[index] = Array(values[(row * width)..<(row * width + records[index].responseTokens.count)])
            }
        }
        var cost = UpdateCost()
        let (metrics, _, _, _) = learner.accumulateGradients(
            Array(records.indices), records: records, advantages: advantages, frozen: frozen, measuringDrift: false, cost: &cost)
        return Evaluation(
            reference: frozen.reference!, values: frozen.values, logProbabilities: logProbabilities, metrics: metrics!,
            gradients: learner.model.parameters.map { $0.gradient!.doubles }, cost: cost)
    }

    /// The largest |a − b| over ragged rows, which must have the same shape.
    func largestDifference(_ a: [[Double]], _ b: [[Double]], file: StaticString = #filePath, line: UInt = #line) -> Double {
        XCTAssertEqual(a.map(\.count), b.map(\.count), file: file, line: line)
        return zip(a, b).map { zip($0, $1).map { Swift.abs($0 - $1) }.max() ?? 0 }.max() ?? 0
    }

    /// Every trajectory is in exactly one pass of at most `micro_batch_size` trajectories, its
    /// tokens at its locations, and each of its next-token predictions at a location whose next
    /// token in the row is the predicted one. With more than one trajectory per pass a group's
    /// prompt is held once per row and each fork's prefix up to its fork point once: at least
    /// (prompt − 1) tokens per further trajectory of a group and (fork position) per fork are not
    /// computed (the − 1: a sequence computes its shared prefix's last token again).
    func testPassesHoldEveryTrajectoryOnceAndShareTheirPrefixes() {
        let (policy, batch) = rollout(valueHead: false)
        let records = batch.records
        var leastShared = 0
        for group in Set(records.map(\.groupIndex)) {
            let members = records.filter { $0.groupIndex == group }
            leastShared += (members.count - 1) * (members[0].promptTokens.count - 1) + members.map(\.forkPosition).reduce(0, +)
        }
        for microBatchSize in [1, 6, 64] {
            let learner = self.learner(policy, dtype: .float32, microBatchSize: microBatchSize, algorithm: .groupRelative)
            let passes = learner.packedPasses(Array(records.indices), records: records)
            XCTAssertEqual(passes.flatMap(\.records).sorted(), Array(records.indices), "micro_batch_size \(microBatchSize)")
            for pass in passes {
                XCTAssertLessThanOrEqual(pass.records.count, microBatchSize)
                XCTAssertLessThanOrEqual(pass.batch.longestSequence, policy.configuration.maxPositions)
                for (index, locations) in zip(pass.records, pass.locations) {
                    let tokens = records[index].promptTokens + records[index].responseTokens
                    XCTAssertEqual(locations.map { pass.batch.tokens[$0] }, tokens, "record \(index)")
                    XCTAssertEqual(locations.dropLast().map { pass.batch.tokens[$0 + 1] }, Array(tokens.dropFirst()), "record \(index)'s predictions")
                }
            }
            let shared = passes.reduce(0) { $0 + $1.sharedTokens }
            if microBatchSize == 1 {
                XCTAssertEqual(shared, 0)
                XCTAssertTrue(passes.allSatisfy { $0.batch.batchSize == 1 && $0.batch.prefixes == nil })
            } else {
                XCTAssertGreaterThanOrEqual(shared, microBatchSize >= 6 ? leastShared : 1, "micro_batch_size \(microBatchSize)")
                XCTAssertTrue(passes.contains { $0.batch.batchSize < $0.records.count }, "several trajectories to a row")
            }
        }
    }

    /// Packed passes against one trajectory per pass, for GRPO (with the KL term and an entropy
    /// bonus) and PPO (values, GAE and the value loss): the reference log-probs, the values, the
    /// recomputed log-probs, the loss metrics and every parameter's gradient agree to float64
    /// rounding in float64 and to float32 rounding in float32. The log-probs also equal those of
    /// the right-padded batch, one trajectory per row.
    func testPackedPassesEqualOneTrajectoryPerPass() {
        for algorithm in [UpdateAlgorithm.groupRelative, .proximal] {
            let (policy, batch) = rollout(valueHead: algorithm == .proximal)
            let records = batch.records
            for (dtype, tolerance) in [(DType.float64, 1e-12), (.float32, 2e-5)] {
                let name = "\(algorithm) \(dtype)"
                let packedLearner = learner(policy, dtype: dtype, microBatchSize: 8, algorithm: algorithm)
                let packed = evaluate(packedLearner, records)
                let alone = evaluate(learner(policy, dtype: dtype, microBatchSize: 1, algorithm: algorithm), records)
                XCTAssertLessThan(packed.cost.paddedTokens, alone.cost.paddedTokens, name)
                XCTAssertEqual(packed.cost.tokens, alone.cost.tokens, name)

                XCTAssertLessThanOrEqual(largestDifference(packed.reference, alone.reference), tolerance * 10, "\(name) reference log-probs")
                XCTAssertLessThanOrEqual(largestDifference(packed.logProbabilities, alone.logProbabilities), tolerance * 10, "\(name) log-probs")
                if let values = packed.values { XCTAssertLessThanOrEqual(largestDifference(values, alone.values!), tolerance, "\(name) values") }

                let padding = Tokenizer().padID
                let padded = packedLearner.model.tokenStatistics(TokenBatch(sequences: records.map { $0.promptTokens + $0.responseTokens }, padding: padding)).logProbabilities
                let (width, paddedValues) = (padded.shape[1], padded.doubles)
                let paddedRows = records.enumerated().map { row, record in
                    record.responseTokens.indices.map { paddedValues[row * width + record.promptTokens.count + $0 - 1] }
                }
                XCTAssertLessThanOrEqual(largestDifference(packed.logProbabilities, paddedRows), tolerance * 10, "\(name) log-probs against the padded batch")

                for (label, a, b) in [
                    ("loss", packed.metrics.loss, alone.metrics.loss), ("policy loss", packed.metrics.policyLoss, alone.metrics.policyLoss),
                    ("approx KL", packed.metrics.approximateKL, alone.metrics.approximateKL),
                    ("reference KL", packed.metrics.referenceKL!, alone.metrics.referenceKL!), ("entropy", packed.metrics.entropy!, alone.metrics.entropy!),
                ] {
                    XCTAssertEqual(a, b, accuracy: tolerance * Swift.max(Swift.abs(b), 1), "\(name) \(label)")
                }
                XCTAssertEqual(packed.metrics.tokenCount, alone.metrics.tokenCount, name)
                if algorithm == .proximal { XCTAssertEqual(packed.metrics.valueLoss!, alone.metrics.valueLoss!, accuracy: tolerance * Swift.max(alone.metrics.valueLoss!, 1), name) }
                for (index, (actual, expected)) in zip(packed.gradients, alone.gradients).enumerated() {
                    let scale = expected.map(Swift.abs).max() ?? 0
                    XCTAssertGreaterThan(scale, 0, "\(name): parameter \(index) has no gradient")
                    let difference = zip(actual, expected).map { Swift.abs($0 - $1) }.max() ?? 0
                    XCTAssertLessThanOrEqual(difference, tolerance * scale, "\(name): gradient of parameter \(index)")
                }
            }
        }
    }

    /// Whole updates (two epochs of two mini-batches) at 1 and 2 threads end on the same
    /// parameter bits and metrics: the packing depends on the records alone.
    func testPackedUpdatesAreTheSameOnEveryThreadCount() {
        let (policy, batch) = rollout(valueHead: false)
        let records = batch.records
        func run(threads: Int) -> ([[Float]], UpdateMetrics) {
            ComputeSettings.current.with(threads: threads).withApplied {
                var configuration = self.learner(policy, dtype: .float32, microBatchSize: 5, algorithm: .groupRelative).configuration
                configuration.epochs = 2
                configuration.miniBatches = 2
                let model = policy.copy()
                let learner = ReinforcementLearner(
                    model: model, reference: policy.copy(), optimizer: AdamW(named: model.namedParameters, hyperparameters: .init(weightDecay: 0)),
                    configuration: configuration, algorithm: .groupRelative)
                let metrics = learner.update(batch, learningRate: 1e-2, seed: 3)
                return (model.parameters.map(\.floats), metrics)
            }
        }
        let (one, oneMetrics) = run(threads: 1), (two, twoMetrics) = run(threads: 2)
        XCTAssertEqual(oneMetrics.appliedUpdates, 4)
        for (index, (a, b)) in zip(one, two).enumerated() {
            XCTAssertTrue(a.elementsEqual(b) { $0.bitPattern == $1.bitPattern }, "parameter \(index) differs between 1 and 2 threads")
        }
        XCTAssertEqual(oneMetrics.loss, twoMetrics.loss)
        XCTAssertEqual(oneMetrics.gradientNorm.bitPattern, twoMetrics.gradientNorm.bitPattern)
        XCTAssertEqual(oneMetrics.cost.tokens, 2 * records.reduce(0) { $0 + $1.promptTokens.count + $1.responseTokens.count })
    }
}
