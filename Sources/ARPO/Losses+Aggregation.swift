import Tensor

/// The normalisers of one mini-batch, computed once from the whole mini-batch's train mask and
/// shared by all its micro-batches (docs/algorithms.md §5.2: "never per micro-batch").
///
/// With N the trained tokens of the mini-batch, S its rows with at least one trained token, n_b
/// the trained tokens of row b and L the sum-norm length, a micro-batch contributes
///
/// - token-mean: Σ_{b,t} m_bt x_bt / N
/// - seq-mean-token-mean: Σ_b (Σ_t m_bt x_bt / n_b) / S
/// - seq-mean-token-sum-norm: Σ_{b,t} m_bt x_bt / (S · L)
///
/// so that the micro-batch losses of a mini-batch add up to its full loss exactly, gradients
/// included (each row lies wholly in one micro-batch, so n_b is local to it). Rows with no
/// trained token contribute nothing and are not counted in S. An empty mini-batch (N = 0)
/// gives a loss of 0.
public struct LossNormalizer: Equatable, Sendable {
    public let aggregation: LossAggregation
    /// N: trained tokens in the mini-batch.
    public let tokenCount: Int
    /// S: rows of the mini-batch with at least one trained token.
    public let sequenceCount: Int
    /// L of seq-mean-token-sum-norm: the configured constant, or the longest row.
    public let maxLength: Int

    /// - Parameters:
    ///   - trainMask: the whole mini-batch's train mask, one row per trajectory (ragged rows
    ///     allowed).
    ///   - maxLength: L for seq-mean-token-sum-norm (e.g. the maximum response tokens); nil uses
    ///     the mini-batch's longest row (response tokens, observations included).
    public init(aggregation: LossAggregation, trainMask: [[Bool]], maxLength: Int? = nil) {
        precondition(maxLength.map { $0 >= 1 } ?? true, "maxLength must be at least 1, got \(maxLength!)")
        self.aggregation = aggregation
        tokenCount = trainMask.reduce(0) { $0 + $1.reduce(0) { $0 + ($1 ? 1 : 0) } }
        sequenceCount = trainMask.reduce(0) { $0 + ($1.contains(true) ? 1 : 0) }
        self.maxLength = maxLength ?? Swift.max(1, trainMask.map(\.count).max() ?? 1)
    }

    /// From the counts themselves: a data-parallel job sums N and S over its ranks' rows of the
    /// mini-batch, and takes the longest of their rows.
    public init(aggregation: LossAggregation, tokenCount: Int, sequenceCount: Int, maxLength: Int) {
        precondition(maxLength >= 1, "maxLength must be at least 1, got \(maxLength)")
        self.aggregation = aggregation
        self.tokenCount = tokenCount
        self.sequenceCount = sequenceCount
        self.maxLength = maxLength
    }

    /// From a (B, L) 0/1 mask tensor of the whole mini-batch; nil `maxLength` uses its L.
    public init(aggregation: LossAggregation, trainMask: Tensor, maxLength: Int? = nil) {
        precondition(trainMask.rank == 2, "the train mask must be (B, L), got shape \(trainMask.shape)")
        let columns = trainMask.shape[1]
        let flags = trainMask.doubles.map { $0 != 0 }
        let rows = (0..<trainMask.shape[0]).map { Array(flags[($0 * columns)..<(($0 + 1) * columns)]) }
        self.init(aggregation: aggregation, trainMask: rows, maxLength: maxLength ?? Swift.max(1, columns))
    }

    /// A micro-batch's share of the mini-batch's aggregate of `perToken`.
    ///
    /// - Parameters:
    ///   - perToken: (B, L) per-token values; whatever it holds where the mask is 0 is never read
    ///     (it is selected away, so even a non-finite value there contributes nothing, and no
    ///     gradient reaches it).
    ///   - trainMask: (B, L) 0/1, same dtype.
    /// - Returns: a scalar tensor.
    public func aggregate(_ perToken: Tensor, trainMask: Tensor) -> Tensor {
        precondition(perToken.rank == 2 && perToken.shape == trainMask.shape, "per-token values \(perToken.shape) and train mask \(trainMask.shape) must both be (B, L)")
        precondition(perToken.shape[0] >= 1 && perToken.shape[1] >= 1, "cannot aggregate an empty micro-batch of shape \(perToken.shape)")
        let masked = Tensor.select(trainMask, perToken, Tensor.scalar(0, dtype: perToken.dtype))
        switch aggregation {
        case .tokenMean:
            return masked.sum() / Double(Swift.max(tokenCount, 1))
        case .sequenceMeanTokenMean:
            let rowTokens = trainMask.isGreater(than: 0).sum(axis: 1).clamped(min: 1)  // (B)
            return (masked.sum(axis: 1) / rowTokens).sum() / Double(Swift.max(sequenceCount, 1))
        case .sequenceMeanTokenSumNorm:
            return masked.sum() / Double(Swift.max(sequenceCount, 1) * maxLength)
        }
    }
}

extension Tensor {
    /// A (B, L) tensor from ragged rows, zero-padded on the right to `length` (default: the
    /// longest row).
    public static func paddedRows(_ rows: [[Double]], length: Int? = nil, dtype: DType = .float32) -> Tensor {
        let columns = length ?? (rows.map(\.count).max() ?? 0)
        precondition(rows.allSatisfy { $0.count <= columns }, "a row is longer than the padded length \(columns)")
        var values = [Double](repeating: 0, count: rows.count * columns)
        for (row, scalars) in rows.enumerated() {
            for (column, value) in scalars.enumerated() { values[row * columns + column] = value }
        }
        return Tensor(shape: [rows.count, columns], values: values, dtype: dtype)
    }

    /// A (B, L) 0/1 mask from ragged rows of flags, zero-padded on the right to `length`
    /// (default: the longest row).
    public static func paddedMask(_ rows: [[Bool]], length: Int? = nil, dtype: DType = .float32) -> Tensor {
        paddedRows(rows.map { $0.map { $0 ? 1 : 0 } }, length: length, dtype: dtype)
    }
}
