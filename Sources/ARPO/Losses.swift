import Tensor

/// One micro-batch of rows for ``PolicyLoss``: every tensor is (B, L), aligned with the rows'
/// response tokens (zero-padded on the right), all of one dtype (float32 in training, float64 in
/// gradient checks).
public struct PolicyLossBatch {
    /// log π_θ(token) under the policy being trained; the gradient flows through it.
    public var logProbabilities: Tensor
    /// log π_old(token) recorded at rollout time.
    public var oldLogProbabilities: Tensor
    /// A per token (``TokenAdvantages/advantages``).
    public var advantages: Tensor
    /// 1 where the token is trained (``TokenAdvantages/trainMask``), 0 for observation tokens,
    /// shared tokens of non-owning rows and padding.
    public var trainMask: Tensor
    /// log π_ref(token) under the frozen reference policy; required when the KL coefficient is
    /// positive.
    public var referenceLogProbabilities: Tensor?
    /// H_t of the policy being trained (differentiable); required when the entropy
    /// coefficient is positive.
    public var entropies: Tensor?
    /// PPO: V_θ per token from the value head (differentiable).
    public var values: Tensor?
    /// PPO: V_old per token recorded at rollout time.
    public var oldValues: Tensor?
    /// PPO: the returns R = A + V_old from GAE.
    public var returns: Tensor?

    public init(
        logProbabilities: Tensor, oldLogProbabilities: Tensor, advantages: Tensor, trainMask: Tensor,
        referenceLogProbabilities: Tensor? = nil, entropies: Tensor? = nil,
        values: Tensor? = nil, oldValues: Tensor? = nil, returns: Tensor? = nil
    ) {
        self.logProbabilities = logProbabilities
        self.oldLogProbabilities = oldLogProbabilities
        self.advantages = advantages
        self.trainMask = trainMask
        self.referenceLogProbabilities = referenceLogProbabilities
        self.entropies = entropies
        self.values = values
        self.oldValues = oldValues
        self.returns = returns
        let shape = logProbabilities.shape, dtype = logProbabilities.dtype
        precondition(shape.count == 2, "policy-loss inputs must be (B, L), got shape \(shape)")
        let named: [(String, Tensor?)] = [
            ("oldLogProbabilities", oldLogProbabilities), ("advantages", advantages), ("trainMask", trainMask),
            ("referenceLogProbabilities", referenceLogProbabilities), ("entropies", entropies),
            ("values", values), ("oldValues", oldValues), ("returns", returns),
        ]
        for case let (name, tensor?) in named {
            precondition(tensor.shape == shape, "\(name) has shape \(tensor.shape), logProbabilities \(shape)")
            precondition(tensor.dtype == dtype, "\(name) is \(tensor.dtype), logProbabilities \(dtype)")
        }
        precondition(
            (values == nil) == (oldValues == nil) && (values == nil) == (returns == nil),
            "the value loss needs values, oldValues and returns together")
    }
}

/// The loss of one micro-batch and what to log about it.
public struct PolicyLossResult {
    /// The micro-batch's share of the mini-batch loss: a scalar tensor to back-propagate.
    public var loss: Tensor
    public var metrics: PolicyLossMetrics
}

/// Plain-number metrics of a policy-loss evaluation (docs/algorithms.md §8).
///
/// Two kinds: *loss shares* (``loss``, ``policyLoss``, ``valueLoss``), which are the micro-batch's
/// part of the mini-batch aggregate and add up over micro-batches; and *token means* over the
/// trained tokens, which combine weighted by ``tokenCount``. ``accumulate(_:)`` does both.
public struct PolicyLossMetrics: Equatable, Sendable {
    /// The total loss value (policy + KL + entropy + value terms with their coefficients).
    public var loss: Double
    /// The aggregated clipped surrogate −min(ρA, clip(ρ)A) (with dual-clip if on). About 0 at
    /// the first update on a rollout batch, where ρ = 1 (see ``PolicyLoss``).
    public var policyLoss: Double
    /// The aggregated clipped value loss before its coefficient; nil without values.
    public var valueLoss: Double?
    /// Trained tokens these token means are over.
    public var tokenCount: Int
    /// Fraction of trained tokens with ρ < 1 − ε_low and A < 0 (clipping active from below).
    public var clipFractionLow: Double
    /// Fraction of trained tokens with ρ > 1 + ε_high and A > 0 (clipping active from above).
    public var clipFractionHigh: Double
    /// Fraction of trained tokens with A < 0 and ρ > c, where dual-clip caps the loss; nil when
    /// dual-clip is off.
    public var dualClipFraction: Double?
    /// KL(π_old ‖ π_θ) estimated with k3 on the tokens sampled from π_old: mean of
    /// ρ − 1 − log ρ (≥ 0; 0 exactly when ρ = 1).
    public var approximateKL: Double
    /// Mean over trained tokens of the configured estimator (k1 or k3) of KL(π_θ ‖ π_ref); nil
    /// without reference log-probabilities.
    public var referenceKL: Double?
    /// Mean entropy over trained tokens; nil without entropies.
    public var entropy: Double?
    /// Fraction of trained tokens where the value clip is active (|V − V_old| > ε_v and the
    /// clipped branch is the larger one); nil without values.
    public var valueClipFraction: Double?

    public init(
        loss: Double, policyLoss: Double, valueLoss: Double? = nil, tokenCount: Int,
        clipFractionLow: Double, clipFractionHigh: Double, dualClipFraction: Double? = nil, approximateKL: Double,
        referenceKL: Double? = nil, entropy: Double? = nil, valueClipFraction: Double? = nil
    ) {
        self.loss = loss
        self.policyLoss = policyLoss
        self.valueLoss = valueLoss
        self.tokenCount = tokenCount
        self.clipFractionLow = clipFractionLow
        self.clipFractionHigh = clipFractionHigh
        self.dualClipFraction = dualClipFraction
        self.approximateKL = approximateKL
        self.referenceKL = referenceKL
        self.entropy = entropy
        self.valueClipFraction = valueClipFraction
    }

    /// Folds in another micro-batch of the same mini-batch: loss shares add, token means combine
    /// weighted by token counts.
    public mutating func accumulate(_ other: PolicyLossMetrics) {
        func add(_ a: Double?, _ b: Double?) -> Double? { a == nil && b == nil ? nil : (a ?? 0) + (b ?? 0) }
        let total = tokenCount + other.tokenCount
        func mean(_ a: Double, _ b: Double) -> Double {
            total == 0 ? 0 : (a * Double(tokenCount) + b * Double(other.tokenCount)) / Double(total)
        }
        func mean(_ a: Double?, _ b: Double?) -> Double? {
            switch (a, b) {
            case (nil, nil): return nil
            case (let a?, nil): return a
            case (nil, let b?): return b
            case (let a?, let b?): return mean(a, b)
            }
        }
        loss += other.loss
        policyLoss += other.policyLoss
        valueLoss = add(valueLoss, other.valueLoss)
        clipFractionLow = mean(clipFractionLow, other.clipFractionLow)
        clipFractionHigh = mean(clipFractionHigh, other.clipFractionHigh)
        dualClipFraction = mean(dualClipFraction, other.dualClipFraction)
        approximateKL = mean(approximateKL, other.approximateKL)
        referenceKL = mean(referenceKL, other.referenceKL)
        entropy = mean(entropy, other.entropy)
        valueClipFraction = mean(valueClipFraction, other.valueClipFraction)
        tokenCount = total
    }
}

/// The clipped policy-gradient loss with its optional terms (docs/algorithms.md §5.1).
///
/// Per trained token, with ρ_t = exp(log π_θ − log π_old) and advantage A_t:
///
///     L_t = −min(ρ_t A_t, clip(ρ_t, 1 − ε_low, 1 + ε_high) A_t)            (PPO, DAPO clip-higher)
///     L_t ← min(L_t, −c A_t)   where A_t < 0                               (dual-clip, if on)
///
/// and the total loss of a micro-batch is
///
///     agg(L) + β · agg(KL_t) − η · agg(H_t) + κ · agg(½ max((V − R)², (clip(V, V_old ± ε_v) − R)²))
///
/// with KL_t = k1 = log π_θ − log π_ref or k3 = clamp(exp(d) − d − 1, −10, 10) for
/// d = log π_ref − log π_θ,
/// β = `kl_coefficient`, η = `entropy_coefficient`, κ = `value_coefficient`, and `agg` the
/// mini-batch aggregation of ``LossNormalizer``. Terms whose coefficient is 0 or whose inputs
/// are absent are left out of the graph.
///
/// - Important: With one update per rollout batch (one epoch, one mini-batch), π_θ = π_old
///   when the loss is evaluated, so ρ = 1 on every token and the loss *value* is
///   −agg(A) ≈ 0 (exactly 0 for token-mean over GRPO advantages of equal-length rows, small
///   otherwise), while its *gradient*, −agg(A ∇log π_θ), is not 0. A policy loss hovering
///   around 0 is expected and says nothing about learning; watch the reward, the gradient norm,
///   the clip fractions and the approximate KL instead.
///
/// Numerical guards: the log-ratio and the reference log-ratio are clamped to [−20, 20]
/// before exponentiation (as verl does), and every input is selected to 0 off the train mask
/// before use, so observation tokens and padding never contribute to the loss or receive
/// gradient, whatever their log-probabilities hold.
public struct PolicyLoss {
    public var configuration: PolicyLossConfiguration

    /// Bound on |log ρ| and |log π_ref − log π_θ| before `exp`: e^20 ≈ 4.9e8 is far from Float's
    /// overflow, and no useful update has a ratio beyond it.
    public static let logRatioBound = 20.0

    /// Bound on each token's k3 estimate, as verl clamps its `low_var_kl` to [−10, 10]: where
    /// π_θ has left π_ref far behind on a token (d = log π_ref − log π_θ above about 2.6), k3 grows
    /// as e^d and one token would otherwise outweigh the whole batch's KL term. Beyond the bound
    /// the token adds a constant and no gradient.
    public static let k3Bound = 10.0

    public init(configuration: PolicyLossConfiguration = PolicyLossConfiguration()) {
        self.configuration = configuration
    }

    /// The micro-batch's share of the mini-batch loss, and its metrics.
    ///
    /// Longer than 80 lines on purpose: the objective's terms (the clipped surrogate with its
    /// dual clip, the reference KL, the entropy bonus, the clipped value loss) and the metrics
    /// read top to bottom as docs/algorithms.md writes them, sharing one mask and normaliser.
    ///
    /// - Parameters:
    ///   - batch: the micro-batch's (B, L) tensors.
    ///   - normalizer: computed once from the whole mini-batch (``PolicyLossConfiguration/normalizer(trainMask:)``);
    ///     summing the results over the mini-batch's micro-batches gives the mini-batch loss.
    public func callAsFunction(_ batch: PolicyLossBatch, normalizer: LossNormalizer) -> PolicyLossResult {
        let configuration = configuration
        precondition(normalizer.aggregation == configuration.aggregation, "normalizer aggregation \(normalizer.aggregation) differs from the configured \(configuration.aggregation)")
        precondition(configuration.klCoefficient == 0 || batch.referenceLogProbabilities != nil, "kl_coefficient > 0 needs reference log-probabilities")
        precondition(configuration.entropyCoefficient == 0 || batch.entropies != nil, "entropy_coefficient > 0 needs entropies")
        let dtype = batch.logProbabilities.dtype
        let mask = batch.trainMask
        let maskValues = mask.doubles
        precondition(maskValues.allSatisfy { $0 == 0 || $0 == 1 }, "the train mask must hold only 0 and 1")
        let zero = Tensor.scalar(0, dtype: dtype)
        func masked(_ tensor: Tensor) -> Tensor { Tensor.select(mask, tensor, zero) }

        // Clipped surrogate. max(−ρA, −clip(ρ)A) = −min(ρA, clip(ρ)A); on a tie the gradient goes
        // to the unclipped (left) operand, which is the right one inside the clip range.
        let bound = Self.logRatioBound
        let logRatio = masked(batch.logProbabilities - batch.oldLogProbabilities).clamped(min: -bound, max: bound)
        let ratio = logRatio.exp()
        let advantages = masked(batch.advantages)
        let unclipped = -(ratio * advantages)
        let clipped = -(ratio.clamped(min: 1 - configuration.clipEpsilonLow, max: 1 + configuration.clipEpsilonHigh) * advantages)
        var policyPerToken = Tensor.maximum(unclipped, clipped)
        if let dualClip = configuration.dualClip {
            // For A < 0 the loss −ρA grows without bound in ρ; cap it at −cA (gradient 0 there).
            let cap = advantages * -dualClip
            policyPerToken = Tensor.select(advantages.isLess(than: 0), Tensor.minimum(policyPerToken, cap), policyPerToken)
        }
        let policyLoss = normalizer.aggregate(policyPerToken, trainMask: mask)
        var total = policyLoss

        var referenceKLPerToken: Tensor?
        if let reference = batch.referenceLogProbabilities {
            let difference = masked(reference - batch.logProbabilities).clamped(min: -bound, max: bound)  // d = log π_ref − log π_θ
            let perToken: Tensor
            switch configuration.klEstimator {
            case .k1: perToken = -difference
            case .k3: perToken = (difference.exp() - difference - 1).clamped(min: -Self.k3Bound, max: Self.k3Bound)
            }
            referenceKLPerToken = perToken
            if configuration.klCoefficient != 0 {
                total = total + normalizer.aggregate(perToken, trainMask: mask) * configuration.klCoefficient
            }
        }

        if let entropies = batch.entropies, configuration.entropyCoefficient != 0 {
            total = total - normalizer.aggregate(masked(entropies), trainMask: mask) * configuration.entropyCoefficient
        }

        var valueLoss: Tensor?
        var valueClipped: [Bool]?
        if let values = batch.values, let oldValues = batch.oldValues, let returns = batch.returns {
            let value = masked(values), oldValue = masked(oldValues), target = masked(returns)
            let clippedValue = oldValue + (value - oldValue).clamped(min: -configuration.valueClip, max: configuration.valueClip)
            let unclippedError = (value - target).squared(), clippedError = (clippedValue - target).squared()
            let perToken = Tensor.maximum(unclippedError, clippedError) * 0.5
            let aggregated = normalizer.aggregate(perToken, trainMask: mask)
            valueLoss = aggregated
            // Clipping is active where the move exceeds ε_v and the clipped branch is the larger
            // (the first condition keeps rounding in V_old + (V − V_old) from counting as a clip).
            let moves = (value - oldValue).doubles, clippedErrors = clippedError.doubles, unclippedErrors = unclippedError.doubles
            valueClipped = moves.indices.map { abs(moves[$0]) > configuration.valueClip && clippedErrors[$0] > unclippedErrors[$0] }
            if configuration.valueCoefficient != 0 {
                total = total + aggregated * configuration.valueCoefficient
            }
        }

        // Metrics, in Double, over the trained tokens of this micro-batch.
        let trained = maskValues.indices.filter { maskValues[$0] != 0 }
        let ratios = ratio.doubles, logRatios = logRatio.doubles, advantageValues = advantages.doubles
        func fraction(_ predicate: (Int) -> Bool) -> Double {
            trained.isEmpty ? 0 : Double(trained.filter(predicate).count) / Double(trained.count)
        }
        func tokenMean(_ values: [Double]) -> Double {
            trained.isEmpty ? 0 : trained.reduce(0) { $0 + values[$1] } / Double(trained.count)
        }
        let metrics = PolicyLossMetrics(
            loss: total.item,
            policyLoss: policyLoss.item,
            valueLoss: valueLoss?.item,
            tokenCount: trained.count,
            clipFractionLow: fraction { advantageValues[$0] < 0 && ratios[$0] < 1 - configuration.clipEpsilonLow },
            clipFractionHigh: fraction { advantageValues[$0] > 0 && ratios[$0] > 1 + configuration.clipEpsilonHigh },
            dualClipFraction: configuration.dualClip.map { c in fraction { advantageValues[$0] < 0 && ratios[$0] > c } },
            approximateKL: tokenMean(ratios.indices.map { ratios[$0] - 1 - logRatios[$0] }),
            referenceKL: referenceKLPerToken.map { tokenMean($0.doubles) },
            entropy: batch.entropies.map { tokenMean($0.doubles) },
            valueClipFraction: valueClipped.map { flags in fraction { flags[$0] } })
        return PolicyLossResult(loss: total, metrics: metrics)
    }

    /// Explained variance of the value head over the trained tokens of a batch (PPO):
    /// 1 − Var(R − V) / Var(R), with population variances. 1 is a perfect critic, 0 one no better
    /// than the mean return, negative one worse. Nil with fewer than two tokens or when the
    /// returns do not vary.
    public static func explainedVariance(returns: [[Double]], values: [[Double]], mask: [[Bool]]) -> Double? {
        precondition(returns.count == values.count && returns.count == mask.count, "returns, values and mask must have one row per trajectory")
        var targets: [Double] = [], residuals: [Double] = []
        for row in mask.indices {
            precondition(returns[row].count == mask[row].count && values[row].count == mask[row].count, "row \(row): returns, values and mask lengths differ")
            for position in mask[row].indices where mask[row][position] {
                targets.append(returns[row][position])
                residuals.append(returns[row][position] - values[row][position])
            }
        }
        guard targets.count >= 2 else { return nil }
        func variance(_ x: [Double]) -> Double {
            let mean = x.reduce(0, +) / Double(x.count)
            return x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(x.count)
        }
        let targetVariance = variance(targets)
        guard targetVariance > 0 else { return nil }
        return 1 - variance(residuals) / targetVariance
    }
}
