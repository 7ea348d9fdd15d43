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
