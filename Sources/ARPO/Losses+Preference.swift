import Tensor

/// The DPO term on preference pairs at fork points (TTPA; docs/algorithms.md §5.6).
///
/// For a pair with chosen continuation y_w and rejected y_l after the same prefix x,
///
///     L = −log σ(β · [(log π_θ(y_w|x) − log π_ref(y_w|x)) − (log π_θ(y_l|x) − log π_ref(y_l|x))])
///
/// where log π(y|x) is the sum of the log-probabilities of the continuation's policy tokens:
/// observation tokens are the environment's, not the policy's, and are left out; the shared
/// prefix is left out too (its terms would cancel). The loss of a set of pairs is the sum of
/// their L divided by a normaliser (the number of pairs of the mini-batch, so that the passes of
/// a mini-batch add up to its mean).
///
/// Built from differentiable primitives (select, sum, gather, sigmoid, log), so it needs no
/// gradient rule of its own: ∂L/∂log π_θ(t) = −β(1 − σ(z)) on the chosen continuation's policy
/// tokens and +β(1 − σ(z)) on the rejected one's, z the bracket times β.
public struct PreferenceLoss {
    /// β of DPO: how far the policy may move from the reference to express a preference.
    public var beta: Double

    /// Bound on |z| before σ: −log σ(z) is about −z below −50 and 0 above 50, and σ(−50) ≈ 2e-22
    /// is still a normal Float, so `log` stays finite. Beyond the bound a pair adds a constant
    /// and no gradient.
    public static let marginBound = 50.0

    public init(beta: Double) {
        precondition(beta > 0, "β must be positive")
        self.beta = beta
    }

    /// The pairs' summed loss over `normalizer`, and each pair's z = β · (chosen − rejected
    /// log-ratio), as plain numbers.
    ///
    /// - Parameters:
    ///   - logProbabilities: log π_θ per response token, (S, L), differentiable.
    ///   - referenceLogProbabilities: log π_ref of the same tokens, (S, L).
    ///   - continuationMask: 1 on each row's policy tokens at or after its pair's fork position,
    ///     0 elsewhere (the shared prefix, observations, padding), (S, L).
    ///   - pairs: rows of the chosen and rejected sequence of each pair.
    ///   - normalizer: what the summed loss is divided by (> 0).
    public func callAsFunction(
        logProbabilities: Tensor, referenceLogProbabilities: Tensor, continuationMask: Tensor,
        pairs: [(chosen: Int, rejected: Int)], normalizer: Double
    ) -> (loss: Tensor, margins: [Double]) {
        let shape = logProbabilities.shape, dtype = logProbabilities.dtype
        precondition(shape.count == 2, "log-probabilities must be (S, L), got \(shape)")
        precondition(referenceLogProbabilities.shape == shape && continuationMask.shape == shape, "reference and mask must be \(shape)")
        precondition(normalizer > 0, "the normaliser must be positive")
        let sequences = shape[0]
        for pair in pairs { precondition(pair.chosen < sequences && pair.rejected < sequences && pair.chosen != pair.rejected, "bad pair \(pair)") }
        // Per sequence, log π_θ(y|x) − log π_ref(y|x) over its continuation's policy tokens: (S).
        let zero = Tensor.scalar(0, dtype: dtype)
        let logRatios = Tensor.select(continuationMask, logProbabilities - referenceLogProbabilities, zero).sum(axis: 1)
        let column = logRatios.reshaped([sequences, 1])
        let chosen = column.embedding(pairs.map(\.chosen), shape: [pairs.count]).reshaped([pairs.count])
        let rejected = column.embedding(pairs.map(\.rejected), shape: [pairs.count]).reshaped([pairs.count])
        let margins = ((chosen - rejected) * beta).clamped(min: -Self.marginBound, max: Self.marginBound)
        let loss = -margins.sigmoid().log().sum() / normalizer
        return (loss, margins.doubles)
    }
}
