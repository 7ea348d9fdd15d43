import ToolEnv

/// How per-token losses are reduced to the mini-batch loss (docs/algorithms.md §5.2).
///
/// Every normaliser is computed over the whole mini-batch (``LossNormalizer``), never per
/// micro-batch, so gradient accumulation gives the same update as one pass over the mini-batch.
public enum LossAggregation: String, Codable, CaseIterable, Sendable {
    /// Σ over trained tokens / number of trained tokens in the mini-batch (ARPO's code, DAPO).
    case tokenMean = "token-mean"
    /// Mean over sequences of each sequence's token mean (the GRPO paper).
    case sequenceMeanTokenMean = "seq-mean-token-mean"
    /// Σ over trained tokens / (sequences × L) with L a constant length (Dr. GRPO).
    case sequenceMeanTokenSumNorm = "seq-mean-token-sum-norm"
}

/// The estimator of KL(π_θ ‖ π_ref) from tokens sampled by the policy (docs/algorithms.md §5.1), with
/// d = log π_ref − log π_θ.
public enum KLEstimator: String, Codable, CaseIterable, Sendable {
    /// k1 = log π_θ − log π_ref = −d: unbiased, high variance, can be negative per token.
    case k1
    /// k3 = exp(d) − d − 1: unbiased, low variance, never negative (Schulman's estimator).
    case k3
}

/// Settings of the clipped policy loss, its KL and entropy terms and PPO's value loss
/// (docs/algorithms.md §5.1).
///
/// JSON keys are snake_case and every one has a default, so `{}` decodes to the defaults (this
/// project's; docs/algorithms.md §5.4 sets them beside ARPO's runs):
///
/// | key | default | meaning |
/// | --- | --- | --- |
/// | `clip_epsilon_low` | `0.2` | ε_low: the ratio is clipped below at 1 − ε_low, in (0, 1) |
/// | `clip_epsilon_high` | `0.2` | ε_high: clipped above at 1 + ε_high (DAPO's clip-higher: 0.28) |
/// | `dual_clip` | `null` | c of dual-clip (for A < 0 the loss is capped at −c·A); `true` means c = 3 |
/// | `kl_coefficient` | `0` | weight of the KL-to-reference term |
/// | `kl_estimator` | `"k3"` | `"k1"` or `"k3"` (``KLEstimator``) |
/// | `reference_kl_metric` | `false` | log `reference_kl` even when `kl_coefficient` is 0 (a reference forward pass per trajectory) |
/// | `entropy_coefficient` | `0` | weight of the entropy bonus (subtracted from the loss) |
/// | `aggregation` | `"token-mean"` | ``LossAggregation`` |
/// | `sum_norm_length` | `null` | L of `seq-mean-token-sum-norm`; null: the response-token limit (`rl.max_response_tokens`) |
/// | `value_clip` | `0.5` | ε_v of PPO's clipped value loss |
/// | `value_coefficient` | `0.5` | weight of PPO's value loss |
/// | `dpo_coefficient` | `0` | weight of the DPO term on preference pairs at fork points (TTPA; ``PreferenceLoss``) |
/// | `dpo_beta` | `0.1` | β of the DPO term |
/// | `dpo_error_weights` | 0.25 per tool-use error | ESM's w_k per error kind, ranking the pairs (``ErrorOrientedScoring``); given kinds replace the defaults' |
public struct PolicyLossConfiguration: Codable, Equatable, Sendable {
    /// c of dual-clip when it is switched on with `"dual_clip": true` (Ye et al., 2020).
    public static let defaultDualClip = 3.0

    /// ε_low: ratios below 1 − ε_low stop pushing a negative advantage further.
    public var clipEpsilonLow = 0.2
    /// ε_high: ratios above 1 + ε_high stop pushing a positive advantage further.
    public var clipEpsilonHigh = 0.2
    /// Dual-clip's c > 1, or nil for off.
    public var dualClip: Double? = nil
    /// β of the KL-to-reference term (ARPO ran with 0).
    public var klCoefficient = 0.0
    public var klEstimator: KLEstimator = .k3
    /// Whether to measure KL(π_θ ‖ π_ref) as a metric when `klCoefficient` is 0. The reference
    /// policy's forward pass runs only when something needs it: the KL term, or this metric.
    public var referenceKLMetric = false
    /// Weight of the entropy bonus −coef · H (usually 0: large values make entropy explode).
    public var entropyCoefficient = 0.0
    public var aggregation: LossAggregation = .tokenMean
    /// L in `seq-mean-token-sum-norm`; nil uses the response-token limit the learner is given
    /// (`rl.max_response_tokens`), a constant as Dr. GRPO intends, so that a row's tokens weigh
    /// the same whatever else is in its mini-batch.
    public var sumNormLength: Int? = nil
    /// ε_v: the new value may move at most ε_v from the old one before clipping takes over.
    public var valueClip = 0.5
    /// Weight of the value loss in the total loss (PPO).
    public var valueCoefficient = 0.5
    /// Weight of the DPO term on the batch's preference pairs at fork points (TTPA,
    /// docs/algorithms.md §5.6); 0 leaves it out, and nothing about the pairs is computed.
    public var dpoCoefficient = 0.0
    /// β of the DPO term (``PreferenceLoss/beta``).
    public var dpoBeta = 0.1
    /// ESM's weight per error kind, ranking the pairs (``ErrorOrientedScoring``): every kind,
    /// those not given in the config at their default.
    public var dpoErrorWeights = PolicyLossConfiguration.defaultErrorWeights

    /// ``ErrorOrientedScoring/defaultWeights`` with every other kind at 0.
    public static let defaultErrorWeights = Dictionary(
        uniqueKeysWithValues: EpisodeErrorKind.allCases.map { ($0, ErrorOrientedScoring.defaultWeights[$0] ?? 0) })

    /// The ESM scoring these weights define.
    public var errorOrientedScoring: ErrorOrientedScoring { ErrorOrientedScoring(weights: dpoErrorWeights) }

    public init() {}

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case aggregation
        case clipEpsilonLow = "clip_epsilon_low"
        case clipEpsilonHigh = "clip_epsilon_high"
        case dualClip = "dual_clip"
        case klCoefficient = "kl_coefficient"
        case klEstimator = "kl_estimator"
        case referenceKLMetric = "reference_kl_metric"
        case entropyCoefficient = "entropy_coefficient"
        case sumNormLength = "sum_norm_length"
        case valueClip = "value_clip"
        case valueCoefficient = "value_coefficient"
        case dpoCoefficient = "dpo_coefficient"
        case dpoBeta = "dpo_beta"
        case dpoErrorWeights = "dpo_error_weights"
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = PolicyLossConfiguration()
        clipEpsilonLow = try container.decodeIfPresent(Double.self, forKey: .clipEpsilonLow) ?? defaults.clipEpsilonLow
        clipEpsilonHigh = try container.decodeIfPresent(Double.self, forKey: .clipEpsilonHigh) ?? defaults.clipEpsilonHigh
        // A number, null, or a switch: true means the usual c = 3, false means off.
        if let isOn = try? container.decodeIfPresent(Bool.self, forKey: .dualClip) {
            dualClip = isOn ? Self.defaultDualClip : nil
        } else {
            dualClip = try container.decodeIfPresent(Double.self, forKey: .dualClip) ?? defaults.dualClip
        }
        klCoefficient = try container.decodeIfPresent(Double.self, forKey: .klCoefficient) ?? defaults.klCoefficient
        klEstimator = try container.decodeChoiceIfPresent(KLEstimator.self, forKey: .klEstimator) ?? defaults.klEstimator
        referenceKLMetric = try container.decodeIfPresent(Bool.self, forKey: .referenceKLMetric) ?? defaults.referenceKLMetric
        entropyCoefficient = try container.decodeIfPresent(Double.self, forKey: .entropyCoefficient) ?? defaults.entropyCoefficient
        aggregation = try container.decodeChoiceIfPresent(LossAggregation.self, forKey: .aggregation) ?? defaults.aggregation
        sumNormLength = try container.decodeIfPresent(Int.self, forKey: .sumNormLength) ?? defaults.sumNormLength
        valueClip = try container.decodeIfPresent(Double.self, forKey: .valueClip) ?? defaults.valueClip
        valueCoefficient = try container.decodeIfPresent(Double.self, forKey: .valueCoefficient) ?? defaults.valueCoefficient
        dpoCoefficient = try container.decodeIfPresent(Double.self, forKey: .dpoCoefficient) ?? defaults.dpoCoefficient
        dpoBeta = try container.decodeIfPresent(Double.self, forKey: .dpoBeta) ?? defaults.dpoBeta
        dpoErrorWeights = defaults.dpoErrorWeights
        for (name, weight) in try container.decodeIfPresent([String: Double].self, forKey: .dpoErrorWeights) ?? [:] {
            guard let kind = EpisodeErrorKind(rawValue: name) else {
                let allowed = EpisodeErrorKind.allCases.map(\.rawValue).joined(separator: ", ")
                throw DecodingError.dataCorruptedError(
                    forKey: .dpoErrorWeights, in: container, debugDescription: "\(CodingKeys.dpoErrorWeights.stringValue) has no error kind \(name); the kinds are \(allowed)")
            }
            dpoErrorWeights[kind] = weight
        }
    }

    /// Writes every key, the unset optional ones as null, so that the encoding of the defaults
    /// lists every known key.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(clipEpsilonLow, forKey: .clipEpsilonLow)
        try container.encode(clipEpsilonHigh, forKey: .clipEpsilonHigh)
        if let dualClip { try container.encode(dualClip, forKey: .dualClip) } else { try container.encodeNil(forKey: .dualClip) }
        try container.encode(klCoefficient, forKey: .klCoefficient)
        try container.encode(klEstimator, forKey: .klEstimator)
        try container.encode(referenceKLMetric, forKey: .referenceKLMetric)
        try container.encode(entropyCoefficient, forKey: .entropyCoefficient)
        try container.encode(aggregation, forKey: .aggregation)
        if let sumNormLength { try container.encode(sumNormLength, forKey: .sumNormLength) } else { try container.encodeNil(forKey: .sumNormLength) }
        try container.encode(valueClip, forKey: .valueClip)
        try container.encode(valueCoefficient, forKey: .valueCoefficient)
        try container.encode(dpoCoefficient, forKey: .dpoCoefficient)
        try container.encode(dpoBeta, forKey: .dpoBeta)
        try container.encode(Dictionary(uniqueKeysWithValues: dpoErrorWeights.map { ($0.key.rawValue, $0.value) }), forKey: .dpoErrorWeights)
    }

    /// Whether the loss or its metrics need the reference policy's log-probabilities: the KL
    /// term, the `reference_kl` metric, or the DPO term.
    public var needsReference: Bool { klCoefficient != 0 || referenceKLMetric || dpoCoefficient != 0 }

    /// Checks every value's range; the error names the key and what is allowed, e.g.
    /// `clip_epsilon_low must be in (0, 1), got 1.5`.
    public func validate() throws {
        try requireSetting(clipEpsilonLow > 0 && clipEpsilonLow < 1, CodingKeys.clipEpsilonLow, "in (0, 1)", clipEpsilonLow)
        try requireSetting(clipEpsilonHigh > 0 && clipEpsilonHigh < 10, CodingKeys.clipEpsilonHigh, "in (0, 10)", clipEpsilonHigh)
        if let dualClip {
            try requireSetting(dualClip > 1 && dualClip.isFinite, CodingKeys.dualClip, "null, true, false or a finite number above 1", dualClip)
        }
        try requireSetting(klCoefficient >= 0 && klCoefficient.isFinite, CodingKeys.klCoefficient, "a finite number at least 0", klCoefficient)
        try requireSetting(entropyCoefficient >= 0 && entropyCoefficient.isFinite, CodingKeys.entropyCoefficient, "a finite number at least 0", entropyCoefficient)
        if let sumNormLength {
            try requireSetting(sumNormLength >= 1, CodingKeys.sumNormLength, "null or at least 1", sumNormLength)
        }
        try requireSetting(valueClip > 0 && valueClip.isFinite, CodingKeys.valueClip, "a finite number above 0", valueClip)
        try requireSetting(valueCoefficient >= 0 && valueCoefficient.isFinite, CodingKeys.valueCoefficient, "a finite number at least 0", valueCoefficient)
        try requireSetting(dpoCoefficient >= 0 && dpoCoefficient.isFinite, CodingKeys.dpoCoefficient, "a finite number at least 0", dpoCoefficient)
        try requireSetting(dpoBeta > 0 && dpoBeta.isFinite, CodingKeys.dpoBeta, "a finite number above 0", dpoBeta)
        for kind in EpisodeErrorKind.allCases {
            let weight = dpoErrorWeights[kind] ?? 0
            if !(weight >= 0 && weight.isFinite) {
                throw ConfigurationError("\(CodingKeys.dpoErrorWeights.stringValue).\(kind.rawValue) must be a finite number at least 0, got \(weight)")
            }
        }
    }

    /// The normaliser of a mini-batch under this configuration's aggregation and
    /// `sum_norm_length`; compute it once per mini-batch and pass it to every micro-batch.
    ///
    /// - Parameter responseLimit: L when `sum_norm_length` is null (the learner passes
    ///   `rl.max_response_tokens`); nil as well leaves L to the mini-batch's longest row.
    public func normalizer(trainMask: [[Bool]], responseLimit: Int? = nil) -> LossNormalizer {
        LossNormalizer(aggregation: aggregation, trainMask: trainMask, maxLength: sumNormLength ?? responseLimit)
    }
}
