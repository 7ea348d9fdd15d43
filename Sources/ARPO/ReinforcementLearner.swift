import Distributed
import Foundation
import Policy
import Tensor

/// How a rollout batch becomes parameter updates (docs/algorithms.md §5).
public struct UpdateConfiguration: Sendable {
    /// Passes over the rollout batch.
    public var epochs: Int
    /// Optimizer steps per epoch.
    public var miniBatches: Int
    /// Trajectories per forward/backward pass, packed several to a row of the context length;
    /// gradients accumulate over a mini-batch's passes.
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
    /// λ_bank, the weight of the replay term on the memory bank's rows
    /// (`rl.memory_bank.coefficient`, docs/algorithms.md §5.7); 0 leaves it out.
    public var replayCoefficient: Double
    /// The weight of the contrastive term, the DPO term on the memory bank's pairs
    /// (`rl.memory_bank.contrastive_coefficient`, docs/algorithms.md §5.7); 0 leaves it out.
    public var contrastiveCoefficient: Double

    public init(
        epochs: Int = 1, miniBatches: Int = 1, microBatchSize: Int = 16, maxGradientNorm: Double = 1, temperature: Double = 1,
        loss: PolicyLossConfiguration = PolicyLossConfiguration(), advantage: AdvantageConfiguration = AdvantageConfiguration(),
        maxResponseTokens: Int? = nil, replayCoefficient: Double = 0, contrastiveCoefficient: Double = 0
    ) {
        self.maxResponseTokens = maxResponseTokens
        self.replayCoefficient = replayCoefficient
        self.contrastiveCoefficient = contrastiveCoefficient
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

/// What one rollout batch's updates did. Encodes as the update's `metrics.jsonl` fields, a
/// non-finite or missing value as null.
public struct UpdateMetrics: Encodable, Sendable {
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
    /// With `dpo_coefficient` > 0: the batch's preference pairs at fork points, and the DPO
    /// term's mean per pair (before its coefficient) averaged over the optimizer steps taken,
    /// nil when there was no pair; both nil with the term off.
    public var preferencePairs: Int?
    public var preferenceLoss: Double?
    /// With replay rows from the memory bank: how many the update trained on (in each epoch),
    /// and the replay term's mean negative log-likelihood per policy token (before its
    /// coefficient) averaged over the optimizer steps that held replay rows; both nil without
    /// replay rows.
    public var replayedRows: Int?
    public var replayLoss: Double?
    /// With contrastive pairs from the memory bank: how many the update trained on (in each
    /// epoch), and their DPO term's mean per pair (before its coefficient) averaged over the
    /// optimizer steps that held pairs; both nil without pairs.
    public var contrastivePairs: Int?
    public var contrastiveLoss: Double?
    /// Where the update's time went, and the tokens its trained passes covered (not written to
    /// metrics.jsonl; `arpo-bench rl-step` reports it).
    public var cost = UpdateCost()

    enum CodingKeys: String, CodingKey {
        case loss, entropy
        case policyLoss = "policy_loss"
        case valueLoss = "value_loss"
        case clipFractionLow = "clip_fraction_low"
        case clipFractionHigh = "clip_fraction_high"
        case approximateKL = "approx_kl"
        case referenceKL = "reference_kl"
        case gradientNorm = "gradient_norm"
        case explainedVariance = "explained_variance"
        case appliedUpdates = "applied_updates"
        case skippedUpdates = "skipped_updates"
        case trainedTokens = "trained_tokens"
        case meanAbsoluteAdvantage = "mean_abs_advantage"
        case rolloutLogProbabilityDriftMean = "rollout_logprob_drift_mean"
        case rolloutLogProbabilityDriftMax = "rollout_logprob_drift_max"
        case preferencePairs = "dpo_pairs"
        case preferenceLoss = "dpo_loss"
        case replayedRows = "memory_bank_replayed_rows"
        case replayLoss = "memory_bank_replay_loss"
        case contrastivePairs = "memory_bank_contrastive_pairs"
        case contrastiveLoss = "memory_bank_contrastive_loss"
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        // `encode` of an optional writes null for nil; JSON has no NaN or infinity.
        func finite(_ number: Double?) -> Double? { number.flatMap { $0.isFinite ? $0 : nil } }
        try container.encode(finite(loss.loss), forKey: .loss)
        try container.encode(finite(loss.policyLoss), forKey: .policyLoss)
        try container.encode(finite(loss.valueLoss), forKey: .valueLoss)
        try container.encode(finite(loss.clipFractionLow), forKey: .clipFractionLow)
        try container.encode(finite(loss.clipFractionHigh), forKey: .clipFractionHigh)
        try container.encode(finite(loss.approximateKL), forKey: .approximateKL)
        try container.encode(finite(loss.referenceKL), forKey: .referenceKL)
        try container.encode(finite(loss.entropy), forKey: .entropy)
        try container.encode(finite(gradientNorm), forKey: .gradientNorm)
        try container.encode(finite(explainedVariance), forKey: .explainedVariance)
        try container.encode(appliedUpdates, forKey: .appliedUpdates)
        try container.encode(skippedUpdates, forKey: .skippedUpdates)
        try container.encode(loss.tokenCount, forKey: .trainedTokens)
        try container.encode(finite(meanAbsoluteAdvantage), forKey: .meanAbsoluteAdvantage)
        try container.encode(finite(rolloutLogProbabilityDriftMean), forKey: .rolloutLogProbabilityDriftMean)
        try container.encode(finite(rolloutLogProbabilityDriftMax), forKey: .rolloutLogProbabilityDriftMax)
        try container.encode(preferencePairs, forKey: .preferencePairs)
        try container.encode(finite(preferenceLoss), forKey: .preferenceLoss)
        try container.encode(replayedRows, forKey: .replayedRows)
        try container.encode(finite(replayLoss), forKey: .replayLoss)
        try container.encode(contrastivePairs, forKey: .contrastivePairs)
        try container.encode(finite(contrastiveLoss), forKey: .contrastiveLoss)
    }
}

/// Wall-clock seconds of one rollout batch's update by part, and the tokens of its trained
/// forward passes.
public struct UpdateCost: Equatable, Sendable {
    /// The no-gradient passes before the optimizer steps: the reference policy's log-probs and,
    /// for PPO, the values.
    public var frozenSeconds = 0.0
    /// The advantages (GAE or group attribution).
    public var advantageSeconds = 0.0
    /// The loss's forward and backward passes, over every optimizer step.
    public var forwardBackwardSeconds = 0.0
    /// Gradient clipping and the AdamW updates.
    public var optimizerSeconds = 0.0
    /// Tokens of the sequences the trained passes ran on (prompt and response, padding not
    /// counted), over every epoch.
    public var tokens = 0
    /// Positions those passes computed, padding included (packed rows × the pass's longest row).
    public var paddedTokens = 0
    /// Tokens of `tokens` those passes did not compute because a sequence packed before them in
    /// the row shares them (a group's prompt, a fork's prefix).
    public var sharedTokens = 0

    public init() {}

    /// The whole update.
    public var seconds: Double { frozenSeconds + advantageSeconds + forwardBackwardSeconds + optimizerSeconds }
}

/// Seconds on a monotonic clock, from an arbitrary origin: what the rollout, the update and the
/// trainer time their phases with.
public func monotonicSeconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }

/// Turns rollout batches into AdamW updates: advantages (GRPO/ARPO attribution or PPO's GAE),
/// then `epochs` × `miniBatches` optimizer steps of the clipped surrogate with its KL, entropy
/// and value terms, gradients accumulated over packed passes of at most `microBatchSize`
/// trajectories (`packedPasses`) with mini-batch-wide normalisers.
public final class ReinforcementLearner {
    public let model: LlamaModel
    /// The frozen reference policy for the KL term and metric and the DPO terms; its forward pass
    /// runs only when `loss.needsReference`, in the DPO stage (``preferenceUpdate(_:learningRate:seed:)``),
    /// and over the memory bank's contrastive pairs.
    public let reference: LlamaModel
    public let optimizer: AdamW
    public let configuration: UpdateConfiguration
    public let algorithm: UpdateAlgorithm
    let loss: PolicyLoss
    let padding = Tokenizer().padID
    /// What runs between each step's backward pass and its clipping: nothing in a run; faults a
    /// test injects.
    public var hooks = UpdateHooks()
    /// The ranks of a data-parallel job (docs/distributed.md). Each passes ``update(_:learningRate:seed:)``
    /// its own rollout batch (whole prompt groups); the records of all ranks, in rank order,
    /// form the step's batch, which the mini-batch shuffle cuts as one process would. Each rank
    /// computes its records' share of a mini-batch under the whole mini-batch's normaliser, and
    /// the gradients and metrics are summed over ranks. One process by default.
    public var communicator: Communicator = SingleProcessCommunicator()

    public init(model: LlamaModel, reference: LlamaModel, optimizer: AdamW, configuration: UpdateConfiguration, algorithm: UpdateAlgorithm) {
        precondition(algorithm != .proximal || model.configuration.valueHead, "PPO needs a model with a value head")
        self.model = model
        self.reference = reference
        self.optimizer = optimizer
        self.configuration = configuration
        self.algorithm = algorithm
        loss = PolicyLoss(configuration: configuration.loss)
    }

    /// Per record and response token, the reference policy's log-probs (nil when nothing needs
    /// them) and (PPO) the values before the update.
    typealias FrozenStatistics = (reference: [[Double]]?, values: [[Double]]?)

    /// `records` in packed passes (`packedPasses`), no gradients: the reference policy's
    /// log-probs when `needsReference` (by default `loss.needsReference`: the KL term, the
    /// `reference_kl` metric or the DPO term), and (PPO) the current values, per response token.
    /// Neither needed, no forward pass runs.
    func frozenStatistics(_ records: [TrajectoryRecord], needsReference: Bool? = nil) -> FrozenStatistics {
        let needsReference = needsReference ?? configuration.loss.needsReference
        var referenceRows = [[Double]](repeating: [], count: records.count)
        var valueRows = [[Double]](repeating: [], count: records.count)
        guard needsReference || algorithm == .proximal else { return (nil, nil) }
        withoutGradients {
            for pass in packedPasses(Array(records.indices), records: records) {
                let length = pass.records.map { records[$0].responseTokens.count }.max() ?? 0
                // Each trajectory's response tokens of the aligned (trajectories, length) figures.
                func scatter(_ aligned: [Double], into rows: inout [[Double]]) {
                    for (row, index) in pass.records.enumerated() {
                        rows[index] = Array(aligned[(row * length)..<(row * length + records[index].responseTokens.count)])
                    }
                }
                if needsReference {
                    let referenceStatistics = reference.tokenStatistics(pass.batch, temperature: configuration.temperature)
                    scatter(responseAligned(referenceStatistics.logProbabilities, pass: pass, records: records, length: length).doubles, into: &referenceRows)
                }
                if algorithm == .proximal {
                    let values = model.forward(pass.batch).values!
                    scatter(responseAligned(values, pass: pass, records: records, length: length).doubles, into: &valueRows)
                }
            }
        }
        return (needsReference ? referenceRows : nil, algorithm == .proximal ? valueRows : nil)
    }

    /// Runs the updates for one rollout batch at `learningRate`. `seed` fixes the mini-batch
    /// shuffles.
    ///
    /// - Parameter replay: the memory bank's trajectories to replay (docs/algorithms.md §5.7),
    ///   trained with the replay term at `replayCoefficient` when that is above 0: in each epoch,
    ///   row j joins the (j mod m)-th of the epoch's m mini-batches.
    /// - Parameter contrast: the memory bank's contrastive pairs, trained with the DPO term
    ///   (β `loss.dpo_beta`, against the reference policy) at `contrastiveCoefficient` when that
    ///   is above 0, spread over the mini-batches as the replay rows are.
    public func update(
        _ batch: RolloutBatch, learningRate: Double, seed: UInt64, replay: [TrajectoryRecord] = [], contrast: [ContrastivePair] = []
    ) -> UpdateMetrics {
        let records = batch.records
        var metrics = UpdateMetrics()
        let ranks = RankRecords(communicator: communicator, localCount: records.count)
        guard ranks.totalCount > 0 else { return metrics }
        var clock = monotonicSeconds()
        /// Seconds since the last call (or the start).
        func lap() -> Double {
            let now = monotonicSeconds()
            defer { clock = now }
            return now - clock
        }
        let frozen = frozenStatistics(records)
        metrics.cost.frozenSeconds = lap()
        let advantages = estimateAdvantages(records, frozen: frozen, metrics: &metrics)
        // TTPA's pairs at fork points (docs/algorithms.md §5.6), only when the DPO term is on.
        let pairs = configuration.loss.dpoCoefficient > 0 ? PreferencePair.pairs(in: batch, scoring: configuration.loss.errorOrientedScoring) : []
        if configuration.loss.dpoCoefficient > 0 { metrics.preferencePairs = pairs.count }
        var preferenceLosses: [Double] = []
        // The memory bank's rows, only when the replay term is on.
        let replay = configuration.replayCoefficient > 0 ? replay : []
        if !replay.isEmpty { metrics.replayedRows = replay.count }
        var replayLosses: [Double] = []
        metrics.cost.advantageSeconds = lap()
        // The memory bank's contrastive pairs, only when their term is on; the reference
        // policy's pass over them is part of the frozen passes' time.
        let contrastive = configuration.contrastiveCoefficient > 0 && !contrast.isEmpty ? ContrastiveBatch(contrast, learner: self) : nil
        if let contrastive { metrics.contrastivePairs = contrastive.pairs.count }
        var contrastiveLosses: [Double] = []
        metrics.cost.frozenSeconds += lap()
        var generator = RandomGenerator(seed: seed)
        var lossTotals: PolicyLossMetrics?
        var gradientNorms: [Double] = []
        var drift = DriftAccumulator()
        var isFirstStep = true
        for _ in 0..<configuration.epochs {
            var order = Array(0..<ranks.totalCount)
            order.shuffle(using: &generator)
            let miniBatchSize = (ranks.totalCount + configuration.miniBatches - 1) / configuration.miniBatches
            let miniBatchCount = (ranks.totalCount + miniBatchSize - 1) / miniBatchSize
            for (miniBatchIndex, miniStart) in stride(from: 0, to: order.count, by: miniBatchSize).enumerated() {
                // This rank's records of the mini-batch, in the shuffle's order.
                let miniBatch = ranks.local(order[miniStart..<min(miniStart + miniBatchSize, order.count)])
                _ = lap()
                // A pair trains in the mini-batch that holds its chosen trajectory.
                let members = Set(miniBatch)
                let replayRows = Self.roundRobinShare(replay, miniBatchIndex, of: miniBatchCount)
                let (accumulated, accumulatedDrift, preferenceLoss, replayLoss) = accumulateGradients(
                    miniBatch, records: records, advantages: advantages, frozen: frozen, pairs: pairs.filter { members.contains($0.chosen) },
                    replay: replayRows, measuringDrift: isFirstStep, cost: &metrics.cost,
                    normalizer: ranks.isDistributed ? globalNormalizer(miniBatch, advantages: advantages) : nil)
                var stepMetrics = accumulated
                var stepDrift = accumulatedDrift
                var contrastiveLoss: Double?
                if let contrastive {
                    let stepPairs = Self.roundRobinShare(contrastive.pairs, miniBatchIndex, of: miniBatchCount)
                    if !stepPairs.isEmpty {
                        let mean = accumulatePreferenceGradients(
                            stepPairs, records: contrastive.records, reference: contrastive.reference, coefficient: configuration.contrastiveCoefficient, cost: &metrics.cost)
                        contrastiveLoss = mean
                        stepMetrics?.loss += configuration.contrastiveCoefficient * mean
                    }
                }
                // The memory bank's terms run on one process only (TrainingRun.checkDistributable).
                if ranks.isDistributed {
                    stepMetrics = PolicyLossMetrics.summed(stepMetrics, over: communicator)
                    stepDrift = stepDrift.summed(over: communicator)
                    // Every rank holds the same summed loss, so all reduce or all skip.
                    if stepMetrics?.loss.isFinite == true { communicator.allReduceGradients(optimizer.parameters) }
                }
                metrics.cost.forwardBackwardSeconds += lap()
                if isFirstStep { drift = stepDrift }
                isFirstStep = false
                hooks.afterBackward?(model)
                _ = lap()
                let norm = optimizerStep(learningRate: learningRate, lossIsFinite: stepMetrics?.loss.isFinite == true, metrics: &metrics)
                metrics.cost.optimizerSeconds += lap()
                guard let norm, let stepMetrics else { continue }
                gradientNorms.append(norm)
                if let preferenceLoss { preferenceLosses.append(preferenceLoss) }
                if let replayLoss { replayLosses.append(replayLoss) }
                if let contrastiveLoss { contrastiveLosses.append(contrastiveLoss) }
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
        if !preferenceLosses.isEmpty { metrics.preferenceLoss = preferenceLosses.reduce(0, +) / Double(preferenceLosses.count) }
        if !replayLosses.isEmpty { metrics.replayLoss = replayLosses.reduce(0, +) / Double(replayLosses.count) }
        if !contrastiveLosses.isEmpty { metrics.contrastiveLoss = contrastiveLosses.reduce(0, +) / Double(contrastiveLosses.count) }
        metrics.gradientNorm = gradientNorms.isEmpty ? .nan : gradientNorms.reduce(0, +) / Double(gradientNorms.count)
        if drift.count > 0 {
            metrics.rolloutLogProbabilityDriftMean = drift.sum / Double(drift.count)
            metrics.rolloutLogProbabilityDriftMax = drift.maximum
        }
        return metrics
    }

    /// The DPO stage's update (`rl.dpo_steps`, docs/algorithms.md §5.6): trains on the batch's
    /// preference pairs alone, the DPO term with weight 1 and β = `dpo_beta`, against the
    /// reference policy; no policy-gradient, KL, entropy or value term. `epochs` passes over the
    /// pairs, each shuffled and split into `miniBatches` optimizer steps, with the gradient norm
    /// clipped as in ``update(_:learningRate:seed:)``. A batch without pairs takes no step.
    /// `loss.loss` and `preferenceLoss` are the mean DPO loss per pair over the steps taken;
    /// `loss.policyLoss` is NaN (reported as null), as are the loss and gradient norm of a batch
    /// without pairs.
    public func preferenceUpdate(_ batch: RolloutBatch, learningRate: Double, seed: UInt64) -> UpdateMetrics {
        var metrics = UpdateMetrics()
        metrics.loss.policyLoss = .nan
        metrics.loss.loss = .nan
        metrics.gradientNorm = .nan
        let pairs = PreferencePair.pairs(in: batch, scoring: configuration.loss.errorOrientedScoring)
        metrics.preferencePairs = pairs.count
        guard !pairs.isEmpty else { return metrics }
        var clock = monotonicSeconds()
        func lap() -> Double {
            let now = monotonicSeconds()
            defer { clock = now }
            return now - clock
        }
        let reference = frozenStatistics(batch.records, needsReference: true).reference!
        metrics.cost.frozenSeconds = lap()
        var generator = RandomGenerator(seed: seed)
        var losses: [Double] = [], gradientNorms: [Double] = []
        for _ in 0..<configuration.epochs {
            var order = Array(pairs.indices)
            order.shuffle(using: &generator)
            let miniBatchSize = (pairs.count + configuration.miniBatches - 1) / configuration.miniBatches
            for start in stride(from: 0, to: order.count, by: miniBatchSize) {
                let chosen = order[start..<min(start + miniBatchSize, order.count)].map { pairs[$0] }
                _ = lap()
                optimizer.zeroGradients()
                let loss = accumulatePreferenceGradients(chosen, records: batch.records, reference: reference, coefficient: 1, cost: &metrics.cost)
                metrics.cost.forwardBackwardSeconds += lap()
                hooks.afterBackward?(model)
                let norm = optimizerStep(learningRate: learningRate, lossIsFinite: loss.isFinite, metrics: &metrics)
                metrics.cost.optimizerSeconds += lap()
                guard let norm else { continue }
                losses.append(loss)
                gradientNorms.append(norm)
            }
        }
        optimizer.zeroGradients()
        let meanLoss = losses.isEmpty ? Double.nan : losses.reduce(0, +) / Double(losses.count)
        metrics.loss.loss = meanLoss
        metrics.preferenceLoss = losses.isEmpty ? nil : meanLoss
        metrics.gradientNorm = gradientNorms.isEmpty ? .nan : gradientNorms.reduce(0, +) / Double(gradientNorms.count)
        return metrics
    }

    /// Clips the accumulated gradients and steps the optimizer when the loss and the clipped norm
    /// are finite, counting the update as applied; otherwise drops the gradients and counts it as
    /// skipped. Returns the norm of an applied step, nil for a skipped one.
    func optimizerStep(learningRate: Double, lossIsFinite: Bool, metrics: inout UpdateMetrics) -> Double? {
        let norm = optimizer.clipGradientNorm(to: configuration.maxGradientNorm)
        guard lossIsFinite, norm.isFinite else {
            optimizer.zeroGradients()
            metrics.skippedUpdates += 1
            return nil
        }
        optimizer.update(learningRate: learningRate)
        metrics.appliedUpdates += 1
        return norm
    }

    /// The batch's advantages (GRPO/ARPO attribution, or PPO's GAE on the frozen values), with
    /// their mean |A| and (PPO) the value head's explained variance written into `metrics`.
    func estimateAdvantages(_ records: [TrajectoryRecord], frozen: FrozenStatistics, metrics: inout UpdateMetrics) -> TokenAdvantages {
        let advantages: TokenAdvantages
        switch algorithm {
        case .groupRelative: advantages = configuration.advantage.groupAdvantages(for: records)
        case .proximal:
            advantages = configuration.advantage.generalizedAdvantageEstimates(for: records, values: frozen.values!)
            if communicator.size == 1 {
                metrics.explainedVariance = PolicyLoss.explainedVariance(returns: advantages.returns!, values: frozen.values!, mask: advantages.trainMask)
            } else {
                // Over every rank's rows, in rank order.
                let returns = communicator.allGather(advantages.returns!), values = communicator.allGather(frozen.values!)
                let masks = communicator.allGather(advantages.trainMask)
                metrics.explainedVariance = PolicyLoss.explainedVariance(returns: returns.flatMap { $0 }, values: values.flatMap { $0 }, mask: masks.flatMap { $0 })
            }
        }
        var absoluteSum = 0.0
        for (row, mask) in zip(advantages.advantages, advantages.trainMask) {
            for (value, trained) in zip(row, mask) where trained { absoluteSum += Swift.abs(value) }
        }
        var trainTokens = Double(advantages.trainTokenCount)
        if communicator.size > 1 {
            let sums = communicator.sum([absoluteSum, trainTokens])
            (absoluteSum, trainTokens) = (sums[0], sums[1])
        }
        metrics.meanAbsoluteAdvantage = absoluteSum / Swift.max(trainTokens, 1)
        return advantages
    }

    /// |log π_old − log π_θ| over the policy tokens of the first optimizer step's rows.
    struct DriftAccumulator {
        var sum = 0.0, maximum = 0.0, count = 0

        /// Adds the drift of `chunk`'s policy tokens; `recomputed` is log π_θ, (B, length).
        mutating func add(_ chunk: [TrajectoryRecord], recomputed: [Double], length: Int) {
            for (row, record) in chunk.enumerated() {
                for (position, isPolicyToken) in record.lossMask.enumerated() where isPolicyToken {
                    let drift = Swift.abs(record.oldLogProbabilities[position] - recomputed[row * length + position])
                    sum += drift
                    maximum = Swift.max(maximum, drift)
                    count += 1
                }
            }
        }
    }

    /// The items of mini-batch `index` of `count` when item j joins mini-batch j mod `count`:
    /// how the memory bank's replay rows and contrastive pairs spread over an epoch.
    static func roundRobinShare<Item>(_ items: [Item], _ index: Int, of count: Int) -> [Item] {
        stride(from: index, to: items.count, by: count).map { items[$0] }
    }

    /// Zeroes the gradients, then adds the mini-batch's loss gradient pass by pass
    /// (`packedPasses`; a non-finite pass loss adds none), and the DPO term's on `pairs`
    /// (`accumulatePreferenceGradients`), and the replay term's on the memory bank's `replay`
    /// rows (`accumulateReplayGradients`). Returns the mini-batch's summed loss metrics (the DPO
    /// and replay terms with their coefficients included in `loss`), when `measuringDrift` the
    /// rollout's log-prob drift on its rows (else an empty one), the DPO term's mean per pair
    /// (nil without pairs) and the replay term (nil without replay rows); adds the passes'
    /// tokens and positions to `cost`.
    func accumulateGradients(
        _ miniBatch: [Int], records: [TrajectoryRecord], advantages: TokenAdvantages,
        frozen: FrozenStatistics, pairs: [PreferencePair] = [], replay: [TrajectoryRecord] = [], measuringDrift: Bool, cost: inout UpdateCost,
        normalizer given: LossNormalizer? = nil
    ) -> (PolicyLossMetrics?, DriftAccumulator, Double?, Double?) {
        let normalizer = given ?? configuration.loss.normalizer(trainMask: miniBatch.map { advantages.trainMask[$0] }, responseLimit: configuration.maxResponseTokens)
        optimizer.zeroGradients()
        var stepMetrics: PolicyLossMetrics?
        var drift = DriftAccumulator()
        for pass in packedPasses(miniBatch, records: records) {
            cost.tokens += pass.locations.reduce(0) { $0 + $1.count }
            cost.paddedTokens += pass.positions
            cost.sharedTokens += pass.sharedTokens
            let lossBatch = policyLossBatch(pass, records: records, advantages: advantages, frozen: frozen)
            if measuringDrift {
                drift.add(pass.records.map { records[$0] }, recomputed: lossBatch.logProbabilities.doubles, length: lossBatch.logProbabilities.shape[1])
            }
            let result = loss(lossBatch, normalizer: normalizer)
            if result.loss.item.isFinite { result.loss.backward() }
            if stepMetrics == nil { stepMetrics = result.metrics } else { stepMetrics!.accumulate(result.metrics) }
        }
        var preferenceLoss: Double?
        if !pairs.isEmpty, let reference = frozen.reference {
            let mean = accumulatePreferenceGradients(pairs, records: records, reference: reference, coefficient: configuration.loss.dpoCoefficient, cost: &cost)
            preferenceLoss = mean
            stepMetrics?.loss += configuration.loss.dpoCoefficient * mean
        }
        var replayLoss: Double?
        if !replay.isEmpty, let mean = accumulateReplayGradients(replay, coefficient: configuration.replayCoefficient, cost: &cost) {
            replayLoss = mean
            stepMetrics?.loss += configuration.replayCoefficient * mean
        }
        return (stepMetrics, drift, preferenceLoss, replayLoss)
    }

    /// Adds the gradient of `coefficient` × the mean DPO loss over `pairs` (docs/algorithms.md
    /// §5.6) and returns that mean (before the coefficient).
    ///
    /// The pairs run in passes of their own, after the policy loss's: each pair's two
    /// trajectories form a unit that shares their common prefix (the prompt and the tokens up to
    /// the fork point are computed once), packed several units to a row as `packedPasses` packs
    /// groups, at most `microBatchSize` trajectories a pass. A trajectory in several pairs is
    /// computed once per pair. Log-probs are taken at the sampling temperature, as the
    /// reference's are.
    func accumulatePreferenceGradients(
        _ pairs: [PreferencePair], records: [TrajectoryRecord], reference: [[Double]], coefficient: Double, cost: inout UpdateCost
    ) -> Double {
        let dtype = model.dtype
        let preferenceLoss = PreferenceLoss(beta: configuration.loss.dpoBeta)
        let units = pairs.map { sharedPrefixUnit([$0.chosen, $0.rejected], records: records) }
        var total = 0.0
        for pass in packedPasses(units: units, records: records) {
            cost.tokens += pass.locations.reduce(0) { $0 + $1.count }
            cost.paddedTokens += pass.positions
            cost.sharedTokens += pass.sharedTokens
            // Units are never split, so the pass's entries come as (chosen, rejected) in turn.
            let passPairs = stride(from: 0, to: pass.records.count, by: 2).map { (chosen: $0, rejected: $0 + 1) }
            let forkPositions = passPairs.map { pair in
                pairs.first { $0.chosen == pass.records[pair.chosen] && $0.rejected == pass.records[pair.rejected] }!.forkPosition
            }
            let length = pass.records.map { records[$0].responseTokens.count }.max() ?? 0
            let statistics = model.tokenStatistics(pass.batch, temperature: configuration.temperature)
            let continuation = pass.records.enumerated().map { row, index in
                records[index].lossMask.enumerated().map { position, isPolicyToken in isPolicyToken && position >= forkPositions[row / 2] }
            }
            let (loss, _) = preferenceLoss(
                logProbabilities: responseAligned(statistics.logProbabilities, pass: pass, records: records, length: length),
                referenceLogProbabilities: Tensor.paddedRows(pass.records.map { reference[$0] }, length: length, dtype: dtype),
                continuationMask: Tensor.paddedMask(continuation, length: length, dtype: dtype),
                pairs: passPairs, normalizer: Double(pairs.count))
            let value = loss.item
            if value.isFinite { (loss * coefficient).backward() }
            total += value
        }
        return total
    }

    /// The (trajectories, L) tensors of the loss for `pass`'s records: log π_θ recomputed at the
    /// sampling temperature over the packed rows (with values for PPO), aligned with the response
    /// tokens, beside what the rollout and the frozen policies recorded.
    func policyLossBatch(_ pass: PackedPass, records: [TrajectoryRecord], advantages: TokenAdvantages, frozen: FrozenStatistics) -> PolicyLossBatch {
        let dtype = model.dtype
        let rows = pass.records
        let chunk = rows.map { records[$0] }
        let length = chunk.map(\.responseTokens.count).max() ?? 0
        let statistics = model.tokenStatistics(pass.batch, temperature: configuration.temperature)
        func aligned(_ perPosition: Tensor) -> Tensor { responseAligned(perPosition, pass: pass, records: records, length: length) }
        func padded(_ values: [[Double]]) -> Tensor { Tensor.paddedRows(values, length: length, dtype: dtype) }
        let needsEntropy = configuration.loss.entropyCoefficient != 0
        return PolicyLossBatch(
            logProbabilities: aligned(statistics.logProbabilities),
            oldLogProbabilities: padded(chunk.map(\.oldLogProbabilities)),
            advantages: padded(rows.map { advantages.advantages[$0] }),
            trainMask: Tensor.paddedMask(rows.map { advantages.trainMask[$0] }, length: length, dtype: dtype),
            referenceLogProbabilities: frozen.reference.map { reference in padded(rows.map { reference[$0] }) },
            // The entropy is logged either way; it joins the graph only with a bonus.
            entropies: aligned(needsEntropy ? statistics.entropies : statistics.entropies.detached()),
            values: algorithm == .proximal ? aligned(statistics.values!) : nil,
            oldValues: algorithm == .proximal ? padded(rows.map { frozen.values![$0] }) : nil,
            returns: algorithm == .proximal ? padded(rows.map { advantages.returns![$0] }) : nil)
    }
}
