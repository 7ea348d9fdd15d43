import Foundation
import Policy
import Tensor

/// How a rollout batch becomes parameter updates (docs/algorithms.md §5).
public struct UpdateConfiguration: Sendable {
    /// Passes over the rollout batch.
    public var epochs: Int
    /// Optimizer steps per epoch.
    public var miniBatches: Int
    /// Rows per forward/backward pass; gradients accumulate over a mini-batch's micro-batches.
    public var microBatchSize: Int
    public var maxGradientNorm: Double
    /// The sampling temperature: training recomputes log-probs from logits / temperature, as
    /// the rollout recorded them.
    public var temperature: Double
    public var loss: PolicyLossConfiguration
    public var advantage: AdvantageConfiguration
    /// The rollout's response-token limit: L of `seq-mean-token-sum-norm` when
    /// `loss.sum_norm_length` is null (nil: the mini-batch's longest row).
    public var maxResponseTokens: Int?

    public init(
        epochs: Int = 1, miniBatches: Int = 1, microBatchSize: Int = 16, maxGradientNorm: Double = 1, temperature: Double = 1,
        loss: PolicyLossConfiguration = PolicyLossConfiguration(), advantage: AdvantageConfiguration = AdvantageConfiguration(),
        maxResponseTokens: Int? = nil
    ) {
        self.maxResponseTokens = maxResponseTokens
        self.epochs = epochs
        self.miniBatches = miniBatches
        self.microBatchSize = microBatchSize
        self.maxGradientNorm = maxGradientNorm
        self.temperature = temperature
        self.loss = loss
        self.advantage = advantage
    }
}

/// Which advantage estimator feeds the loss.
public enum UpdateAlgorithm: Sendable {
    /// GRPO and ARPO: group-normalised rewards attributed per `AdvantageConfiguration.mode`.
    case groupRelative
    /// PPO: GAE on the value head, plus the clipped value loss.
    case proximal
}

/// What one rollout batch's updates did.
public struct UpdateMetrics: Sendable {
    /// Averaged over the optimizer steps taken.
    public var loss = PolicyLossMetrics(loss: 0, policyLoss: 0, tokenCount: 0, clipFractionLow: 0, clipFractionHigh: 0, approximateKL: 0)
    public var gradientNorm = 0.0
    public var explainedVariance: Double?
    public var appliedUpdates = 0
    /// Updates skipped for a non-finite loss or gradient.
    public var skippedUpdates = 0
    /// Mean |A| over trained tokens (a quick sign the advantages are not all zero).
    public var meanAbsoluteAdvantage = 0.0
    /// Mean and max of |log π_old − log π_θ| over the sampled (policy) tokens of the first
    /// optimizer step's rows, before that step: the rollout's log-probs against the training
    /// forward pass's for the same weights. About 0 at `highest` matmul precision; at reduced
    /// precision it measures the kernels' mismatch, which the clip fractions would otherwise
    /// hide. With one mini-batch that is every row of the batch. Nil without policy tokens.
    public var rolloutLogProbabilityDriftMean: Double?
    public var rolloutLogProbabilityDriftMax: Double?

    /// The metrics.jsonl fields.
    public var record: [String: Any] {
        func value(_ number: Double?) -> Any { number.map { $0.isFinite ? $0 as Any : NSNull() } ?? NSNull() }
        return [
            "loss": value(loss.loss), "policy_loss": value(loss.policyLoss), "value_loss": value(loss.valueLoss),
            "clip_fraction_low": value(loss.clipFractionLow), "clip_fraction_high": value(loss.clipFractionHigh),
            "approx_kl": value(loss.approximateKL), "reference_kl": value(loss.referenceKL), "entropy": value(loss.entropy),
            "gradient_norm": value(gradientNorm), "explained_variance": value(explainedVariance),
            "applied_updates": appliedUpdates, "skipped_updates": skippedUpdates, "trained_tokens": loss.tokenCount,
            "mean_abs_advantage": value(meanAbsoluteAdvantage),
            "rollout_logprob_drift_mean": value(rolloutLogProbabilityDriftMean),
            "rollout_logprob_drift_max": value(rolloutLogProbabilityDriftMax),
        ]
    }
}

/// Turns rollout batches into AdamW updates: advantages (GRPO/ARPO attribution or PPO's GAE),
/// then `epochs` × `miniBatches` optimizer steps of the clipped surrogate with its KL, entropy
/// and value terms, gradients accumulated over micro-batches with mini-batch-wide normalisers.
public final class ReinforcementLearner {
    public let model: LlamaModel
    /// The frozen reference policy for the KL term and metric.
    public let reference: LlamaModel
    public let optimizer: AdamW
    public let configuration: UpdateConfiguration
    public let algorithm: UpdateAlgorithm
    let loss: PolicyLoss
    let padding = Tokenizer().padID
    /// What runs between each step's backward pass and its clipping: nothing in a run; faults a
    /// test injects.
    public var hooks = UpdateHooks()

    public init(model: LlamaModel, reference: LlamaModel, optimizer: AdamW, configuration: UpdateConfiguration, algorithm: UpdateAlgorithm) {
        precondition(algorithm != .proximal || model.configuration.valueHead, "PPO needs a model with a value head")
        self.model = model
        self.reference = reference
        self.optimizer = optimizer
        self.configuration = configuration
        self.algorithm = algorithm
        loss = PolicyLoss(configuration: configuration.loss)
    }

    /// Per-position statistics gathered at response tokens: row b, column t reads position
    /// promptLength_b + t − 1 (the distribution that produced response token t). (B, L).
    func responseAligned(_ perPosition: Tensor, records: [TrajectoryRecord], length: Int) -> Tensor {
        let rows = perPosition.shape[0], width = perPosition.shape[1]
        var indices = [Int](repeating: 0, count: rows * length)
        for (row, record) in records.enumerated() {
            for t in 0..<record.responseTokens.count {
                indices[row * length + t] = row * width + record.promptTokens.count + t - 1
            }
            for t in record.responseTokens.count..<length { indices[row * length + t] = row * width }
        }
        return perPosition.reshaped([rows * width, 1]).embedding(indices, shape: [rows, length]).reshaped([rows, length])
    }

    func tokenBatch(_ records: [TrajectoryRecord]) -> TokenBatch {
        TokenBatch(sequences: records.map { $0.promptTokens + $0.responseTokens }, padding: padding)
    }

    /// Rows of `records` in micro-batches, no gradients: the reference policy's log-probs and
    /// (PPO) the current values, per response token.
    func frozenStatistics(_ records: [TrajectoryRecord]) -> (reference: [[Double]], values: [[Double]]?) {
        var referenceRows = [[Double]](repeating: [], count: records.count)
        var valueRows = [[Double]](repeating: [], count: records.count)
        let order = lengthOrdered(Array(records.indices), records)
        withoutGradients {
            for start in stride(from: 0, to: order.count, by: configuration.microBatchSize) {
                let indices = Array(order[start..<min(start + configuration.microBatchSize, order.count)])
                let chunk = indices.map { records[$0] }
                let length = chunk.map(\.responseTokens.count).max() ?? 0
                let batch = tokenBatch(chunk)
                let referenceStatistics = reference.tokenStatistics(batch, temperature: configuration.temperature)
                let aligned = responseAligned(referenceStatistics.logProbabilities, records: chunk, length: length).doubles
                for (row, (index, record)) in zip(indices, chunk).enumerated() {
                    referenceRows[index] = Array(aligned[(row * length)..<(row * length + record.responseTokens.count)])
                }
                if algorithm == .proximal {
                    let values = model.forward(batch).values!
                    let alignedValues = responseAligned(values, records: chunk, length: length).doubles
                    for (row, (index, record)) in zip(indices, chunk).enumerated() {
                        valueRows[index] = Array(alignedValues[(row * length)..<(row * length + record.responseTokens.count)])
                    }
                }
            }
        }
        return (referenceRows, algorithm == .proximal ? valueRows : nil)
    }

    /// `indices` longest sequence first (ties in index order), so that each micro-batch holds
    /// sequences of similar length and little of it is padding. The losses are sums over rows
    /// with one normaliser per mini-batch, so the grouping changes no value beyond rounding.
    func lengthOrdered(_ indices: [Int], _ records: [TrajectoryRecord]) -> [Int] {
        indices.sorted { a, b in
            let lengthA = records[a].promptTokens.count + records[a].responseTokens.count
            let lengthB = records[b].promptTokens.count + records[b].responseTokens.count
            return lengthA != lengthB ? lengthA > lengthB : a < b
        }
    }

    /// Runs the updates for one rollout batch at `learningRate`. `seed` fixes the mini-batch
    /// shuffles.
    public func update(_ batch: RolloutBatch, learningRate: Double, seed: UInt64) -> UpdateMetrics {
        let records = batch.records
        var metrics = UpdateMetrics()
        guard !records.isEmpty else { return metrics }
        let frozen = frozenStatistics(records)
        let advantages: TokenAdvantages
        switch algorithm {
        case .groupRelative: advantages = configuration.advantage.groupAdvantages(for: records)
        case .proximal:
            advantages = configuration.advantage.generalizedAdvantageEstimates(for: records, values: frozen.values!)
            metrics.explainedVariance = PolicyLoss.explainedVariance(returns: advantages.returns!, values: frozen.values!, mask: advantages.trainMask)
        }
        var absoluteSum = 0.0
        for (row, mask) in zip(advantages.advantages, advantages.trainMask) {
            for (value, trained) in zip(row, mask) where trained { absoluteSum += Swift.abs(value) }
        }
        metrics.meanAbsoluteAdvantage = absoluteSum / Double(max(advantages.trainTokenCount, 1))

        var generator = RandomGenerator(seed: seed)
        var lossTotals: PolicyLossMetrics?
        var gradientNorms: [Double] = []
        let dtype = model.dtype
        var driftSum = 0.0, driftMax = 0.0, driftCount = 0
        var isFirstStep = true
        for _ in 0..<configuration.epochs {
            var order = Array(records.indices)
            order.shuffle(using: &generator)
            let miniBatchSize = (records.count + configuration.miniBatches - 1) / configuration.miniBatches
            for miniStart in stride(from: 0, to: order.count, by: miniBatchSize) {
                let miniBatch = lengthOrdered(Array(order[miniStart..<min(miniStart + miniBatchSize, order.count)]), records)
                let normalizer = configuration.loss.normalizer(trainMask: miniBatch.map { advantages.trainMask[$0] }, responseLimit: configuration.maxResponseTokens)
                optimizer.zeroGradients()
                var stepMetrics: PolicyLossMetrics?
                for microStart in stride(from: 0, to: miniBatch.count, by: configuration.microBatchSize) {
                    let rows = Array(miniBatch[microStart..<min(microStart + configuration.microBatchSize, miniBatch.count)])
                    let chunk = rows.map { records[$0] }
                    let length = chunk.map(\.responseTokens.count).max() ?? 0
                    let statistics = model.tokenStatistics(tokenBatch(chunk), temperature: configuration.temperature)
                    func padded(_ values: [[Double]]) -> Tensor { Tensor.paddedRows(values, length: length, dtype: dtype) }
                    let needsEntropy = configuration.loss.entropyCoefficient != 0
                    let lossBatch = PolicyLossBatch(
                        logProbabilities: responseAligned(statistics.logProbabilities, records: chunk, length: length),
                        oldLogProbabilities: padded(chunk.map(\.oldLogProbabilities)),
                        advantages: padded(rows.map { advantages.advantages[$0] }),
                        trainMask: Tensor.paddedMask(rows.map { advantages.trainMask[$0] }, length: length, dtype: dtype),
                        referenceLogProbabilities: padded(rows.map { frozen.reference[$0] }),
                        // The entropy is logged either way; it joins the graph only with a bonus.
                        entropies: needsEntropy
                            ? responseAligned(statistics.entropies, records: chunk, length: length)
                            : responseAligned(statistics.entropies.detached(), records: chunk, length: length),
                        values: algorithm == .proximal ? responseAligned(statistics.values!, records: chunk, length: length) : nil,
                        oldValues: algorithm == .proximal ? padded(rows.map { frozen.values![$0] }) : nil,
                        returns: algorithm == .proximal ? padded(rows.map { advantages.returns![$0] }) : nil)
                    if isFirstStep {
                        let recomputed = lossBatch.logProbabilities.doubles
                        for (row, record) in chunk.enumerated() {
                            for (position, isPolicyToken) in record.lossMask.enumerated() where isPolicyToken {
                                let drift = Swift.abs(record.oldLogProbabilities[position] - recomputed[row * length + position])
                                driftSum += drift
                                driftMax = Swift.max(driftMax, drift)
                                driftCount += 1
                            }
                        }
                    }
                    let result = loss(lossBatch, normalizer: normalizer)
                    if result.loss.item.isFinite { result.loss.backward() }
                    if stepMetrics == nil { stepMetrics = result.metrics } else { stepMetrics!.accumulate(result.metrics) }
                }
                isFirstStep = false
                hooks.afterBackward?(model)
                let norm = optimizer.clipGradientNorm(to: configuration.maxGradientNorm)
                guard let stepMetrics, stepMetrics.loss.isFinite, norm.isFinite else {
                    optimizer.zeroGradients()
                    metrics.skippedUpdates += 1
                    continue
                }
                optimizer.update(learningRate: learningRate)
                metrics.appliedUpdates += 1
                gradientNorms.append(norm)
                if lossTotals == nil { lossTotals = stepMetrics } else { lossTotals!.accumulate(stepMetrics) }
            }
        }
        optimizer.zeroGradients()
        if var totals = lossTotals {
            // `accumulate` adds loss shares; report the mean per optimizer step.
            let steps = Double(metrics.appliedUpdates)
            totals.loss /= steps
            totals.policyLoss /= steps
            totals.valueLoss = totals.valueLoss.map { $0 / steps }
            metrics.loss = totals
        }
        metrics.gradientNorm = gradientNorms.isEmpty ? .nan : gradientNorms.reduce(0, +) / Double(gradientNorms.count)
        if driftCount > 0 {
            metrics.rolloutLogProbabilityDriftMean = driftSum / Double(driftCount)
            metrics.rolloutLogProbabilityDriftMax = driftMax
        }
        return metrics
    }
}
