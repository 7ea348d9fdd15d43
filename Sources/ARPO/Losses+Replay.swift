import Tensor

/// The replay term of the memory bank (AvaTaR; docs/algorithms.md §5.7): the negative
/// log-likelihood of the bank trajectories' policy tokens, a token mean over the mini-batch's
/// replayed rows, as the cold start's loss is over its demonstrations:
///
///     L_replay = −(1 / N) Σ_rows Σ_t m_t · log π_θ(y_t | y_<t)
///
/// with m_t 1 on the policy's tokens (observations and padding 0) and N the mini-batch's
/// replayed policy tokens (the normaliser, so that the passes of a mini-batch add up to its
/// mean). Built from differentiable primitives (select, sum), so it needs no gradient rule of
/// its own: ∂L/∂log π_θ(t) = −m_t / N.
public enum ReplayLoss {
    /// The rows' share of L_replay.
    ///
    /// - Parameters:
    ///   - logProbabilities: log π_θ per response token, (R, L), differentiable.
    ///   - policyMask: 1 on each row's policy tokens, 0 elsewhere, (R, L).
    ///   - normalizer: N, the replayed policy tokens of the whole mini-batch (> 0).
    public static func negativeLogLikelihood(logProbabilities: Tensor, policyMask: Tensor, normalizer: Double) -> Tensor {
        precondition(logProbabilities.shape.count == 2 && policyMask.shape == logProbabilities.shape, "log-probabilities and mask must be one (R, L) shape")
        precondition(normalizer > 0, "the normaliser must be positive")
        let zero = Tensor.scalar(0, dtype: logProbabilities.dtype)
        return -Tensor.select(policyMask, logProbabilities, zero).sum() / normalizer
    }
}
