import Policy
import Tensor

extension ReinforcementLearner {
    /// Adds the gradient of `coefficient` × the replay term (``ReplayLoss``) over `rows`, the
    /// memory bank's trajectories replayed in this mini-batch, and returns the term before the
    /// coefficient: the mean negative log-likelihood per replayed policy token (docs/algorithms.md
    /// §5.7). Nil when the rows hold no policy token.
    ///
    /// The rows run in passes of their own after the policy loss's, packed as `packedPasses`
    /// packs a mini-batch's trajectories (several to a row of the context, each computed as if
    /// alone; rows of the same group share their common prefix). Log-probs are taken at the
    /// sampling temperature, as everywhere in the update; at temperature 1 the term is the cold
    /// start's loss on the same tokens.
    func accumulateReplayGradients(_ rows: [TrajectoryRecord], coefficient: Double, cost: inout UpdateCost) -> Double? {
        let tokenCount = rows.reduce(0) { $0 + $1.policyTokenCount }
        guard tokenCount > 0 else { return nil }
        var total = 0.0
        for pass in packedPasses(Array(rows.indices), records: rows) {
            cost.tokens += pass.locations.reduce(0) { $0 + $1.count }
            cost.paddedTokens += pass.positions
            cost.sharedTokens += pass.sharedTokens
            let length = pass.records.map { rows[$0].responseTokens.count }.max() ?? 0
            let statistics = model.tokenStatistics(pass.batch, temperature: configuration.temperature)
            let loss = ReplayLoss.negativeLogLikelihood(
                logProbabilities: responseAligned(statistics.logProbabilities, pass: pass, records: rows, length: length),
                policyMask: Tensor.paddedMask(pass.records.map { rows[$0].lossMask }, length: length, dtype: model.dtype),
                normalizer: Double(tokenCount))
            let value = loss.item
            if value.isFinite { (loss * coefficient).backward() }
            total += value
        }
        return total
    }
}

/// AvaTaR's contrast as a DPO pair (docs/algorithms.md §5.7): a memory bank trajectory as the
/// chosen side against a fresh low-reward trajectory of the same task family as the rejected one.
public struct ContrastivePair: Sendable {
    /// The bank's trajectory (``MemoryBankEntry/trajectoryRecord(group:)``).
    public var chosen: TrajectoryRecord
    /// A trajectory of the current rollout batch.
    public var rejected: TrajectoryRecord

    public init(chosen: TrajectoryRecord, rejected: TrajectoryRecord) {
        self.chosen = chosen
        self.rejected = rejected
    }
}

extension ReinforcementLearner {
    /// What the contrastive term trains on: the pairs' trajectories (pair k's chosen at 2k, its
    /// rejected at 2k + 1), the reference policy's log-probs of their response tokens, and the
    /// pairs as ``PreferencePair``s over those records with fork position 0, so that the DPO term
    /// counts every policy token of both responses.
    struct ContrastiveBatch {
        let records: [TrajectoryRecord]
        let reference: [[Double]]
        let pairs: [PreferencePair]

        /// Runs the reference policy over the pairs' trajectories (no gradients).
        init(_ contrast: [ContrastivePair], learner: ReinforcementLearner) {
            var records: [TrajectoryRecord] = []
            for (index, pair) in contrast.enumerated() {
                for var record in [pair.chosen, pair.rejected] {
                    // A pair is one group, so its two responses share what their prompts share.
                    record.groupIndex = index
                    record.parent = nil
                    record.forkPosition = 0
                    records.append(record)
                }
            }
            self.records = records
            reference = learner.frozenStatistics(records, needsReference: true).reference!
            pairs = contrast.indices.map {
                PreferencePair(
                    chosen: 2 * $0, rejected: 2 * $0 + 1, forkRecord: 2 * $0, forkPosition: 0, chosenScore: contrast[$0].chosen.reward,
                    rejectedScore: contrast[$0].rejected.reward)
            }
        }
    }
}
