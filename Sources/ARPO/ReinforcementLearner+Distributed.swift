import Distributed

/// Where each rank's records sit in the step's batch: every rank's records in rank order, so
/// that rank r's record i is batch record `offsets[r] + i`.
struct RankRecords {
    let communicator: Communicator
    /// Batch index of each rank's first record, and of the end.
    let offsets: [Int]

    init(communicator: Communicator, localCount: Int) {
        self.communicator = communicator
        let counts = communicator.size == 1 ? [localCount] : communicator.allGather(values: [Double(localCount)]).map { Int($0[0]) }
        var offsets = [0]
        for count in counts { offsets.append(offsets.last! + count) }
        self.offsets = offsets
    }

    var isDistributed: Bool { communicator.size > 1 }
    var totalCount: Int { offsets.last! }

    /// This rank's records among `batchIndices`, as indices into its own records, in order.
    func local(_ batchIndices: ArraySlice<Int>) -> [Int] {
        let first = offsets[communicator.rank], end = offsets[communicator.rank + 1]
        return batchIndices.compactMap { (first..<end).contains($0) ? $0 - first : nil }
    }
}

extension ReinforcementLearner {
    /// The normaliser of a mini-batch spread over the ranks: N and S summed over every rank's
    /// rows of it, L the configured one or the longest row on any rank (as
    /// ``PolicyLossConfiguration/normalizer(trainMask:responseLimit:)`` computes from the whole
    /// mini-batch).
    func globalNormalizer(_ miniBatch: [Int], advantages: TokenAdvantages) -> LossNormalizer {
        let local = LossNormalizer(aggregation: configuration.loss.aggregation, trainMask: miniBatch.map { advantages.trainMask[$0] }, maxLength: nil)
        let longest = miniBatch.map { advantages.trainMask[$0].count }.max() ?? 0
        let sums = communicator.sum([Double(local.tokenCount), Double(local.sequenceCount)])
        let maxLength = configuration.loss.sumNormLength ?? configuration.maxResponseTokens ?? Swift.max(1, communicator.maximum(longest))
        return LossNormalizer(aggregation: configuration.loss.aggregation, tokenCount: Int(sums[0]), sequenceCount: Int(sums[1]), maxLength: maxLength)
    }
}

extension PolicyLossMetrics {
    /// The metrics of a mini-batch spread over the ranks, from each rank's (nil for a rank with
    /// none of its rows): loss shares add, token means combine weighted by token counts, as
    /// ``accumulate(_:)`` combines micro-batches. Nil when no rank had a row.
    static func summed(_ metrics: PolicyLossMetrics?, over communicator: Communicator) -> PolicyLossMetrics? {
        // (value × weight, weight) per field; an absent optional has weight 0.
        func weighted(_ value: Double?, tokens: Double) -> [Double] { value.map { [$0 * tokens, tokens] } ?? [0, 0] }
        var vector = [metrics == nil ? 0 : 1.0]
        if let m = metrics {
            let tokens = Double(m.tokenCount)
            vector += [m.loss, m.policyLoss, m.valueLoss ?? 0, m.valueLoss == nil ? 0 : 1, tokens]
            for mean in [m.clipFractionLow, m.clipFractionHigh, m.dualClipFraction, m.approximateKL, m.referenceKL, m.entropy, m.valueClipFraction] {
                // A rank without trained tokens still counts its optional fields as present.
                vector += weighted(mean, tokens: Swift.max(tokens, 1e-300))
            }
        } else {
            vector += [Double](repeating: 0, count: 5 + 14)
        }
        let sums = communicator.sum(vector)
        guard sums[0] > 0 else { return nil }
        func mean(_ index: Int) -> Double? {
            let weight = sums[6 + 2 * index + 1]
            return weight > 0 ? sums[6 + 2 * index] / weight : nil
        }
        return PolicyLossMetrics(
            loss: sums[1], policyLoss: sums[2], valueLoss: sums[4] > 0 ? sums[3] : nil, tokenCount: Int(sums[5]),
            clipFractionLow: mean(0) ?? 0, clipFractionHigh: mean(1) ?? 0, dualClipFraction: mean(2), approximateKL: mean(3) ?? 0,
            referenceKL: mean(4), entropy: mean(5), valueClipFraction: mean(6))
    }
}

extension ReinforcementLearner.DriftAccumulator {
    /// The drift over every rank's rows.
    func summed(over communicator: Communicator) -> Self {
        let sums = communicator.sum([sum, Double(count)])
        return Self(sum: sums[0], maximum: communicator.maximum([maximum])[0], count: Int(sums[1]))
    }
}
