import ARPO
import Foundation
import Tensor
import XCTest

/// Hand-computed values of the policy loss and its terms (docs/algorithms.md §5). Float64 throughout;
/// tolerance 1e-12 unless stated.
final class LossTests: XCTestCase {
    func float64(_ rows: [[Double]]) -> Tensor { Tensor.paddedRows(rows, dtype: .float64) }

    /// The 2×3 example. ρ and A per token (ε_low = ε_high = 0.2), row 1's last token is an
    /// observation (mask 0) with a wild ratio and advantage:
    ///
    ///     row 0: ρ = [1.5, 0.7, 1.1]   A = [1, −1, 0.5]
    ///     row 1: ρ = [0.9, 1.3, e^7]   A = [2, −2, 50]    mask [1, 1, 0]
    ///
    /// L = −min(ρA, clip(ρ, 0.8, 1.2)A):
    ///     (0,0) −min(1.5, 1.2)    = −1.2    clipped from above (ρ > 1.2, A > 0): gradient 0
    ///     (0,1) −min(−0.7, −0.8)  = 0.8     clipped from below (ρ < 0.8, A < 0): gradient 0
    ///     (0,2) −0.55                        gradient −ρA = −0.55
    ///     (1,0) −1.8                         gradient −1.8
    ///     (1,1) −min(−2.6, −2.4)  = 2.6     unclipped (ρ > 1.2 but A < 0): gradient 2.6
    /// Σ = −1.2 + 0.8 − 0.55 − 1.8 + 2.6 = −0.15 over N = 5 tokens, S = 2 rows, L = 3.
    func handExample(dtype: DType = .float64) -> (batch: PolicyLossBatch, logProbabilities: Tensor, mask: [[Bool]]) {
        let old: [[Double]] = [[-1, -2, -0.5], [-1.5, -0.3, -2]]
        let ratios: [[Double]] = [[1.5, 0.7, 1.1], [0.9, 1.3, exp(7)]]
        let logProbabilities = Tensor.paddedRows(zip(old, ratios).map { zip($0, $1).map { $0 + log($1) } }, dtype: dtype)
        let mask = [[true, true, true], [true, true, false]]
        let batch = PolicyLossBatch(
            logProbabilities: logProbabilities, oldLogProbabilities: Tensor.paddedRows(old, dtype: dtype),
            advantages: Tensor.paddedRows([[1, -1, 0.5], [2, -2, 50]], dtype: dtype), trainMask: Tensor.paddedMask(mask, dtype: dtype))
        return (batch, logProbabilities, mask)
    }

    func testHandComputedLossForEachAggregation() {
        // token-mean: −0.15 / 5 = −0.03.
        // seq-mean-token-mean: row means −0.95/3 and 0.8/2 = 0.4; (0.4 − 0.316666…)/2 = 0.25/6.
        // seq-mean-token-sum-norm: −0.15 / (2 · 3) = −0.025; with L = 10: −0.15 / 20 = −0.0075.
        let cases: [(LossAggregation, Int?, Double)] = [
            (.tokenMean, nil, -0.03),
            (.sequenceMeanTokenMean, nil, 0.25 / 6),
            (.sequenceMeanTokenSumNorm, nil, -0.025),
            (.sequenceMeanTokenSumNorm, 10, -0.0075),
        ]
        for (aggregation, length, expected) in cases {
            var configuration = PolicyLossConfiguration()
            configuration.aggregation = aggregation
            configuration.sumNormLength = length
            let example = handExample()
            let result = PolicyLoss(configuration: configuration)(example.batch, normalizer: configuration.normalizer(trainMask: example.mask))
            XCTAssertEqual(result.loss.item, expected, accuracy: 1e-12, "\(aggregation), L = \(String(describing: length))")
            XCTAssertEqual(result.metrics.policyLoss, expected, accuracy: 1e-12)
            XCTAssertEqual(result.metrics.loss, expected, accuracy: 1e-12)
            // One token in five is clipped from below, one from above.
            XCTAssertEqual(result.metrics.clipFractionLow, 0.2, accuracy: 1e-12)
            XCTAssertEqual(result.metrics.clipFractionHigh, 0.2, accuracy: 1e-12)
            XCTAssertEqual(result.metrics.tokenCount, 5)
            // k3 of old vs new, mean of ρ − 1 − ln ρ: 0.0945349 + 0.0566749 + 0.0046898 + 0.0053605 + 0.0376357 = 0.1988959; / 5.
            XCTAssertEqual(result.metrics.approximateKL, 0.03977918144331569, accuracy: 1e-12)
            XCTAssertNil(result.metrics.dualClipFraction)
            XCTAssertNil(result.metrics.referenceKL)
            XCTAssertNil(result.metrics.entropy)
            XCTAssertNil(result.metrics.valueLoss)
        }
    }

    /// Token-mean gradient: ∂L/∂log π_θ = −ρA/N where unclipped, 0 where clipped or masked:
    /// [0, 0, −0.55/5 | −1.8/5, 2.6/5, 0]. Seq-mean-token-mean divides row b by S · n_b instead:
    /// [0, 0, −0.55/6 | −1.8/4, 2.6/4, 0].
    func testHandComputedGradients() {
        let example = handExample()
        example.logProbabilities.requiresGradient = true
        let configuration = PolicyLossConfiguration()
        let loss = PolicyLoss(configuration: configuration)(example.batch, normalizer: configuration.normalizer(trainMask: example.mask)).loss
        let gradient = gradients(of: loss, withRespectTo: [example.logProbabilities])[0].doubles
        let expected = [0, 0, -0.11, -0.36, 0.52, 0]
        for (index, (actual, wanted)) in zip(gradient, expected).enumerated() { XCTAssertEqual(actual, wanted, accuracy: 1e-12, "token \(index)") }
        XCTAssertEqual(gradient[0], 0, "clipped tokens get exactly 0")
        XCTAssertEqual(gradient[1], 0)
        XCTAssertEqual(gradient[5], 0, "masked tokens get exactly 0")

        var perSequence = PolicyLossConfiguration()
        perSequence.aggregation = .sequenceMeanTokenMean
        let sequenceLoss = PolicyLoss(configuration: perSequence)(example.batch, normalizer: perSequence.normalizer(trainMask: example.mask)).loss
        let sequenceGradient = gradients(of: sequenceLoss, withRespectTo: [example.logProbabilities])[0].doubles
        for (index, (actual, wanted)) in zip(sequenceGradient, [0, 0, -0.55 / 6, -1.8 / 4, 2.6 / 4, 0]).enumerated() {
            XCTAssertEqual(actual, wanted, accuracy: 1e-12, "token \(index)")
        }
    }

    /// Dual-clip with c = 3, one row, ρ = [4, 2, 4], A = [−1, −1, 1]:
    ///     (0) −min(−4, −1.2) = 4, capped at −cA = 3 (the cap is active: ρ > c)
    ///     (1) −min(−2, −1.2) = 2 < 3: unchanged
    ///     (2) −min(4, 1.2) = −1.2: A > 0, dual-clip does not apply
    /// token-mean: (3 + 2 − 1.2)/3 = 3.8/3; without dual-clip (4 + 2 − 1.2)/3 = 1.6.
    func testDualClipCapsTheLossOfNegativeAdvantages() {
        let old = [[-1.0, -1, -1]]
        let logProbabilities = float64([[-1 + log(4), -1 + log(2), -1 + log(4)]])
        let batch = PolicyLossBatch(
            logProbabilities: logProbabilities, oldLogProbabilities: float64(old),
            advantages: float64([[-1, -1, 1]]), trainMask: Tensor.paddedMask([[true, true, true]], dtype: .float64))
        var configuration = PolicyLossConfiguration()
        let normalizer = configuration.normalizer(trainMask: [[true, true, true]])
        XCTAssertEqual(PolicyLoss(configuration: configuration)(batch, normalizer: normalizer).loss.item, 1.6, accuracy: 1e-12)
        configuration.dualClip = 3
        let result = PolicyLoss(configuration: configuration)(batch, normalizer: normalizer)
        XCTAssertEqual(result.loss.item, 3.8 / 3, accuracy: 1e-12)
        XCTAssertEqual(result.metrics.dualClipFraction!, 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(result.metrics.clipFractionHigh, 1.0 / 3, accuracy: 1e-12)
        logProbabilities.requiresGradient = true
        let gradient = gradients(of: PolicyLoss(configuration: configuration)(batch, normalizer: normalizer).loss, withRespectTo: [logProbabilities])[0].doubles
        // Capped: 0; unclipped: −ρA/3 = 2/3; clipped from above: 0.
        XCTAssertEqual(gradient[0], 0)
        XCTAssertEqual(gradient[1], 2.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(gradient[2], 0)
    }

    /// KL to the reference, one row at ρ = 1 with A = 0 (so the policy term is 0):
    /// log π_θ = [−1, −2], log π_ref = [−1.5, −1], d = log π_ref − log π_θ = [−0.5, 1].
    ///     k1 = −d = [0.5, −1], mean −0.25
    ///     k3 = e^d − d − 1 = [e^−0.5 − 0.5, e − 2] = [0.1065306597, 0.7182818285], mean 0.4124062441
    /// With β = 0.1 the loss is 0.1 · mean. Gradients (token-mean): k1: β/2 per token; k3:
    /// β(1 − e^d)/2 = [0.0196734670, −0.0859140914].
    func testKLToTheReferenceWithBothEstimators() {
        let logProbabilities = float64([[-1, -2]])
        let batch = PolicyLossBatch(
            logProbabilities: logProbabilities, oldLogProbabilities: float64([[-1, -2]]), advantages: float64([[0, 0]]),
            trainMask: Tensor.paddedMask([[true, true]], dtype: .float64), referenceLogProbabilities: float64([[-1.5, -1]]))
        logProbabilities.requiresGradient = true
        let cases: [(KLEstimator, Double, [Double])] = [
            (.k1, -0.25, [0.05, 0.05]),
            (.k3, (exp(-0.5) - 0.5 + exp(1) - 2) / 2, [0.1 * (1 - exp(-0.5)) / 2, 0.1 * (1 - exp(1)) / 2]),
        ]
        for (estimator, meanKL, expectedGradient) in cases {
            var configuration = PolicyLossConfiguration()
            configuration.klEstimator = estimator
            configuration.klCoefficient = 0.1
            let result = PolicyLoss(configuration: configuration)(batch, normalizer: configuration.normalizer(trainMask: [[true, true]]))
            XCTAssertEqual(result.metrics.referenceKL!, meanKL, accuracy: 1e-12, "\(estimator)")
            XCTAssertEqual(result.loss.item, 0.1 * meanKL, accuracy: 1e-12, "\(estimator)")
            XCTAssertEqual(result.metrics.policyLoss, 0, accuracy: 1e-15)
            let gradient = gradients(of: result.loss, withRespectTo: [logProbabilities])[0].doubles
            for (actual, wanted) in zip(gradient, expectedGradient) { XCTAssertEqual(actual, wanted, accuracy: 1e-12, "\(estimator)") }
        }
        // With β = 0 the term is reported but not added.
        let result = PolicyLoss()(batch, normalizer: PolicyLossConfiguration().normalizer(trainMask: [[true, true]]))
        XCTAssertEqual(result.metrics.referenceKL!, (exp(-0.5) - 0.5 + exp(1) - 2) / 2, accuracy: 1e-12)
        XCTAssertEqual(result.loss.item, 0, accuracy: 1e-15)
    }

    /// k3 is clamped to [−10, 10] per token, as verl's `low_var_kl`. Tokens with
    /// d = log π_ref − log π_θ = [5, 1]: k3 = [e⁵ − 6 = 142.41 → 10, e − 2 = 0.7182818285],
    /// mean 5.3591409142; β = 1, token-mean. Gradient: the clamped token gets none; the other
    /// (1 − e^d)/2 = −0.8591409142. Without the clamp the first would weigh (1 − e⁵)/2 = −73.7.
    func testK3IsClampedToTenPerToken() {
        let logProbabilities = float64([[-6, -2]])
        let batch = PolicyLossBatch(
            logProbabilities: logProbabilities, oldLogProbabilities: float64([[-6, -2]]), advantages: float64([[0, 0]]),
            trainMask: Tensor.paddedMask([[true, true]], dtype: .float64), referenceLogProbabilities: float64([[-1, -1]]))
        logProbabilities.requiresGradient = true
        var configuration = PolicyLossConfiguration()
        configuration.klCoefficient = 1
        let result = PolicyLoss(configuration: configuration)(batch, normalizer: configuration.normalizer(trainMask: [[true, true]]))
        XCTAssertEqual(result.metrics.referenceKL!, (10 + exp(1) - 2) / 2, accuracy: 1e-12)
        XCTAssertEqual(result.loss.item, (10 + exp(1) - 2) / 2, accuracy: 1e-12)
        let gradient = gradients(of: result.loss, withRespectTo: [logProbabilities])[0].doubles
        XCTAssertEqual(gradient[0], 0, accuracy: 1e-15)
        XCTAssertEqual(gradient[1], (1 - exp(1)) / 2, accuracy: 1e-12)
    }

    /// Entropy bonus −η · agg(H): H = [1.2, 0.4 | 2.0 (masked)], η = 0.01, token-mean over 2
    /// tokens: −0.01 · 0.8 = −0.008; ∂/∂H = −0.005 on trained tokens, 0 on the masked one.
    func testEntropyBonus() {
        let entropies = float64([[1.2, 0.4, 2.0]])
        let mask = [[true, true, false]]
        let batch = PolicyLossBatch(
            logProbabilities: float64([[-1, -1, -1]]), oldLogProbabilities: float64([[-1, -1, -1]]), advantages: float64([[0, 0, 0]]),
            trainMask: Tensor.paddedMask(mask, dtype: .float64), entropies: entropies)
        entropies.requiresGradient = true
        var configuration = PolicyLossConfiguration()
        configuration.entropyCoefficient = 0.01
        let result = PolicyLoss(configuration: configuration)(batch, normalizer: configuration.normalizer(trainMask: mask))
        XCTAssertEqual(result.loss.item, -0.008, accuracy: 1e-15)
        XCTAssertEqual(result.metrics.entropy!, 0.8, accuracy: 1e-15)
        XCTAssertEqual(gradients(of: result.loss, withRespectTo: [entropies])[0].doubles, [-0.005, -0.005, 0])
    }

    /// PPO's clipped value loss, ε_v = 0.5, token-mean over 3 tokens:
    ///     V = 1.0, V_old = 0.8, R = 1.1: both branches (−0.1)² = 0.01 → 0.005; ∂/∂V = V − R = −0.1
    ///     V = 2.0, V_old = 1.0, R = 1.5: (0.5)² = 0.25 vs clip → 1.5: 0 → 0.125; ∂/∂V = 0.5
    ///     V = 2.9, V_old = 1.0, R = 3.0: 0.01 vs clip → 1.5: (−1.5)² = 2.25 → 1.125; ∂/∂V = 0 (clipped branch wins)
    /// Σ = 1.255, value loss 1.255/3 = 0.41833…, times κ = 0.5 in the total; explained variance
    /// is not part of the loss.
    func testClippedValueLoss() {
        let values = float64([[1.0, 2.0, 2.9]])
        let mask = [[true, true, true]]
        let batch = PolicyLossBatch(
            logProbabilities: float64([[-1, -1, -1]]), oldLogProbabilities: float64([[-1, -1, -1]]), advantages: float64([[0, 0, 0]]),
            trainMask: Tensor.paddedMask(mask, dtype: .float64),
            values: values, oldValues: float64([[0.8, 1.0, 1.0]]), returns: float64([[1.1, 1.5, 3.0]]))
        values.requiresGradient = true
        let configuration = PolicyLossConfiguration()
        let result = PolicyLoss(configuration: configuration)(batch, normalizer: configuration.normalizer(trainMask: mask))
        XCTAssertEqual(result.metrics.valueLoss!, 1.255 / 3, accuracy: 1e-12)
        XCTAssertEqual(result.loss.item, 0.5 * 1.255 / 3, accuracy: 1e-12)
        XCTAssertEqual(result.metrics.valueClipFraction!, 1.0 / 3, accuracy: 1e-12)
        let gradient = gradients(of: result.loss, withRespectTo: [values])[0].doubles
        for (actual, wanted) in zip(gradient, [-0.1, 0.5, 0].map { 0.5 * $0 / 3 }) { XCTAssertEqual(actual, wanted, accuracy: 1e-12) }
    }

    /// docs/algorithms.md §5.3: with one update per rollout batch, π_θ = π_old, so ρ = 1 and the loss value is
    /// −agg(A) — exactly 0 for token-mean over a GRPO group of equal-length rows — while the
    /// gradient is −A_i/N per token, not 0.
    func testAtTheFirstUpdateTheLossIsZeroButTheGradientIsNot() {
        let advantages = AdvantageEstimator.groupNormalized(rewards: [1, 0, 0.5, 1], groupIndices: [0, 0, 0, 0])
        let old: [[Double]] = [[-1, -2, -0.5], [-0.7, -1.1, -3], [-2, -0.2, -0.9], [-1.3, -0.4, -0.6]]
        let logProbabilities = float64(old)
        let mask = [[Bool]](repeating: [true, true, true], count: 4)
        let batch = PolicyLossBatch(
            logProbabilities: logProbabilities, oldLogProbabilities: float64(old),
            advantages: float64(advantages.map { [$0, $0, $0] }), trainMask: Tensor.paddedMask(mask, dtype: .float64))
        logProbabilities.requiresGradient = true
        let result = PolicyLoss()(batch, normalizer: PolicyLossConfiguration().normalizer(trainMask: mask))
        XCTAssertEqual(result.loss.item, 0, accuracy: 1e-15)
        XCTAssertEqual(result.metrics.approximateKL, 0)
        XCTAssertEqual(result.metrics.clipFractionLow + result.metrics.clipFractionHigh, 0)
        let gradient = gradients(of: result.loss, withRespectTo: [logProbabilities])[0].doubles
        for row in 0..<4 {
            for column in 0..<3 { XCTAssertEqual(gradient[row * 3 + column], -advantages[row] / 12, accuracy: 1e-15) }
        }
        XCTAssertGreaterThan(gradient.map(abs).max()!, 0.1)
    }

    /// Float32 (training) agrees with float64 to single precision on the hand example.
    func testFloat32MatchesFloat64() {
        for aggregation in LossAggregation.allCases {
            var configuration = PolicyLossConfiguration()
            configuration.aggregation = aggregation
            let single = handExample(dtype: .float32), double = handExample(dtype: .float64)
            let normalizer = configuration.normalizer(trainMask: single.mask)
            let loss32 = PolicyLoss(configuration: configuration)(single.batch, normalizer: normalizer)
            let loss64 = PolicyLoss(configuration: configuration)(double.batch, normalizer: normalizer)
            XCTAssertEqual(loss32.loss.dtype, .float32)
            XCTAssertEqual(loss32.loss.item, loss64.loss.item, accuracy: 1e-6, "\(aggregation)")
            XCTAssertEqual(loss32.metrics.clipFractionLow, loss64.metrics.clipFractionLow)
            XCTAssertEqual(loss32.metrics.approximateKL, loss64.metrics.approximateKL, accuracy: 1e-6)
        }
    }

    // MARK: - Explained variance

    /// R = [1, 2, 3, 4] (Var 1.25), V = [1.5, 1.5, 3.5, 3.5]: residuals ±0.5 (Var 0.25):
    /// 1 − 0.25/1.25 = 0.8. A masked entry is ignored; V = R gives 1; constant R gives nil.
    func testExplainedVariance() {
        let returns = [[1.0, 2, 99], [3, 4]], mask = [[true, true, false], [true, true]]
        XCTAssertEqual(PolicyLoss.explainedVariance(returns: returns, values: [[1.5, 1.5, -7], [3.5, 3.5]], mask: mask)!, 0.8, accuracy: 1e-12)
        XCTAssertEqual(PolicyLoss.explainedVariance(returns: returns, values: [[1, 2, 0], [3, 4]], mask: mask)!, 1, accuracy: 1e-12)
        XCTAssertEqual(PolicyLoss.explainedVariance(returns: returns, values: [[0, 0, 0], [0, 0]], mask: mask)!, 0, accuracy: 1e-12)
        XCTAssertNil(PolicyLoss.explainedVariance(returns: [[2, 2]], values: [[1, 3]], mask: [[true, true]]))
    }
}
