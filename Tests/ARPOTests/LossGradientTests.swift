import ARPO
import Foundation
import Tensor
import XCTest

/// Gradient checks of the policy loss (central differences in float64 through
/// `GradientChecker`, PyTorch gradcheck's tolerances: atol 1e-5, rtol 1e-3), the exclusion of
/// masked tokens, and micro-batch accumulation with a shared normaliser.
final class LossGradientTests: XCTestCase {
    /// A 3×4 batch covering every region of the clipped surrogate (ε = 0.2, dual-clip c = 3):
    ///
    ///     row 0: ρ = [1.05, 1.5, 0.6, 0.95]    A = [1, 1, 1, −1]
    ///            inside / clipped above (A > 0) / below but unclipped (A > 0) / inside (A < 0)
    ///     row 1: ρ = [0.5, 1.6, 4.0, 1.0]      A = [−1, −0.5, −2, 0.3]
    ///            clipped below (A < 0) / above but unclipped (A < 0) / dual-clip region / inside
    ///     row 2: ρ = [1.1, 0.9, ·, ·]          A = [0.4, −0.7, ·, ·]    last two masked
    ///
    /// Every ratio is at least 0.05 from a kink (1 ± 0.2, c = 3); value moves |V − V_old| stay
    /// at least 0.1 from ε_v = 0.5.
    struct Fixture {
        let logProbabilities: Tensor
        let entropies: Tensor
        let values: Tensor
        let oldLogProbabilities: [[Double]]
        let mask: [[Bool]]

        init() {
            oldLogProbabilities = [[-1.2, -0.8, -2.0, -0.4], [-1.0, -1.7, -0.6, -2.2], [-0.9, -1.4, -0.3, -1.1]]
            let ratios: [[Double]] = [[1.05, 1.5, 0.6, 0.95], [0.5, 1.6, 4.0, 1.0], [1.1, 0.9, 2.5, 0.3]]
            logProbabilities = Tensor.paddedRows(zip(oldLogProbabilities, ratios).map { zip($0, $1).map { $0 + log($1) } }, dtype: .float64)
            entropies = Tensor.paddedRows([[1.1, 0.7, 2.3, 0.2], [0.9, 1.5, 0.4, 1.8], [0.6, 1.2, 3.0, 3.0]], dtype: .float64)
            values = Tensor.paddedRows([[0.3, 0.9, -0.2, 0.5], [1.4, 0.1, 0.7, -0.6], [0.2, 0.8, 5.0, 5.0]], dtype: .float64)
            mask = [[true, true, true, true], [true, true, true, true], [true, true, false, false]]
        }

        func batch() -> PolicyLossBatch {
            batch(logProbabilities: logProbabilities, entropies: entropies, values: values)
        }

        func batch(logProbabilities: Tensor, entropies: Tensor, values: Tensor) -> PolicyLossBatch {
            PolicyLossBatch(
                logProbabilities: logProbabilities,
                oldLogProbabilities: Tensor.paddedRows(oldLogProbabilities, dtype: .float64),
                advantages: Tensor.paddedRows([[1, 1, 1, -1], [-1, -0.5, -2, 0.3], [0.4, -0.7, 9, -9]], dtype: .float64),
                trainMask: Tensor.paddedMask(mask, dtype: .float64),
                referenceLogProbabilities: Tensor.paddedRows([[-1.0, -1.1, -1.5, -0.2], [-1.3, -1.2, -0.9, -2.0], [-0.7, -1.6, -0.3, -1.1]], dtype: .float64),
                entropies: entropies,
                // Moves V − V_old: [0.2, 0.8, −0.7, 0.1 | 0.9, −0.3, 0.1, −0.9 | −0.1, 0.2]: clipped and not.
                values: values,
                oldValues: Tensor.paddedRows([[0.1, 0.1, 0.5, 0.4], [0.5, 0.4, 0.6, 0.3], [0.3, 0.6, 0, 0]], dtype: .float64),
                returns: Tensor.paddedRows([[0.6, 1.2, -1.0, 0.0], [0.2, 0.5, 0.3, -0.1], [0.9, 0.1, 0, 0]], dtype: .float64))
        }
    }

    func configurations() -> [PolicyLossConfiguration] {
        var all: [PolicyLossConfiguration] = []
        for aggregation in LossAggregation.allCases {
            for estimator in KLEstimator.allCases {
                for dualClip in [nil, 3.0] {
                    var configuration = PolicyLossConfiguration()
                    configuration.aggregation = aggregation
                    configuration.klEstimator = estimator
                    configuration.klCoefficient = 0.1
                    configuration.entropyCoefficient = 0.01
                    configuration.dualClip = dualClip
                    all.append(configuration)
                }
            }
        }
        return all
    }

    func testGradientCheckForEveryAggregationEstimatorAndDualClip() {
        let fixture = Fixture()
        for configuration in configurations() {
            let loss = PolicyLoss(configuration: configuration)
            let normalizer = configuration.normalizer(trainMask: fixture.mask)
            let report = GradientChecker().check([fixture.logProbabilities, fixture.entropies, fixture.values]) { inputs in
                loss(fixture.batch(logProbabilities: inputs[0], entropies: inputs[1], values: inputs[2]), normalizer: normalizer).loss
            }
            XCTAssertTrue(report.passed, "\(configuration.aggregation) \(configuration.klEstimator) dual \(String(describing: configuration.dualClip)): \(report)")
            XCTAssertEqual(report.checkedCount, 36)
        }
    }

    /// The policy term alone (no KL, entropy or value): clipped tokens, the dual-clip token and
    /// masked tokens get exactly 0; the others −ρA/N (token-mean, N = 10).
    func testGradientIsZeroExactlyWhereClippingIsActive() {
        let fixture = Fixture()
        fixture.logProbabilities.requiresGradient = true
        var configuration = PolicyLossConfiguration()
        configuration.dualClip = 3
        let batch = fixture.batch()
        let policyOnly = PolicyLossBatch(
            logProbabilities: batch.logProbabilities, oldLogProbabilities: batch.oldLogProbabilities,
            advantages: batch.advantages, trainMask: batch.trainMask)
        let result = PolicyLoss(configuration: configuration)(policyOnly, normalizer: configuration.normalizer(trainMask: fixture.mask))
        let gradient = gradients(of: result.loss, withRespectTo: [fixture.logProbabilities])[0].doubles
        let expected: [Double] = [
            -1.05, 0, -0.6, 0.95,
            0, 0.8, 0, -0.3,
            -0.44, 0.63, 0, 0,
        ].map { $0 / 10 }
        for (index, (actual, wanted)) in zip(gradient, expected).enumerated() {
            XCTAssertEqual(actual, wanted, accuracy: 1e-12, "token \(index)")
            if wanted == 0 { XCTAssertEqual(actual, 0, "token \(index) must get exactly 0") }
        }
        // Clipped from below: (1,0); from above: (0,1); dual-clip: (1,2); over 10 tokens.
        XCTAssertEqual(result.metrics.clipFractionLow, 0.1, accuracy: 1e-12)
        XCTAssertEqual(result.metrics.clipFractionHigh, 0.1, accuracy: 1e-12)
        XCTAssertEqual(result.metrics.dualClipFraction!, 0.1, accuracy: 1e-12)
    }

    /// Observation tokens (mask 0) never contribute: wild log-probabilities, advantages,
    /// reference log-probabilities, entropies and values there (including a ratio that would
    /// overflow) change neither the loss nor any gradient, and their gradient is exactly 0.
    func testMaskedTokensNeverContribute() {
        func evaluate(wild: Bool) -> (loss: Double, gradients: [[Double]], metrics: PolicyLossMetrics) {
            let fixture = Fixture()
            let batch = fixture.batch()
            func replacingMasked(_ tensor: Tensor, with value: Double) -> Tensor {
                guard wild else { return tensor }
                var scalars = tensor.doubles
                scalars[10] = value
                scalars[11] = -value
                return Tensor(shape: tensor.shape, values: scalars, dtype: .float64)
            }
            let logProbabilities = replacingMasked(fixture.logProbabilities, with: 800)
            let entropies = replacingMasked(fixture.entropies, with: 1e300)
            let values = replacingMasked(fixture.values, with: 1e200)
            for leaf in [logProbabilities, entropies, values] { leaf.requiresGradient = true }
            let changed = PolicyLossBatch(
                logProbabilities: logProbabilities, oldLogProbabilities: replacingMasked(batch.oldLogProbabilities, with: -900),
                advantages: replacingMasked(batch.advantages, with: 1e9), trainMask: batch.trainMask,
                referenceLogProbabilities: replacingMasked(batch.referenceLogProbabilities!, with: -1e4),
                entropies: entropies, values: values,
                oldValues: replacingMasked(batch.oldValues!, with: 7), returns: replacingMasked(batch.returns!, with: -1e100))
            var configuration = configurations()[1]
            configuration.aggregation = .sequenceMeanTokenMean
            let result = PolicyLoss(configuration: configuration)(changed, normalizer: configuration.normalizer(trainMask: fixture.mask))
            let grads = gradients(of: result.loss, withRespectTo: [logProbabilities, entropies, values]).map(\.doubles)
            return (result.loss.item, grads, result.metrics)
        }
        let tame = evaluate(wild: false), wild = evaluate(wild: true)
        XCTAssertTrue(wild.loss.isFinite)
        XCTAssertEqual(wild.loss, tame.loss)
        XCTAssertEqual(wild.gradients, tame.gradients)
        XCTAssertEqual(wild.metrics, tame.metrics)
        for gradient in wild.gradients {
            XCTAssertEqual(gradient[10], 0)
            XCTAssertEqual(gradient[11], 0)
        }
    }

    /// Gradient accumulation: a mini-batch of 4 ragged rows split into 2 micro-batches of 2,
    /// each padded only to its own longest row, with the normaliser of the whole mini-batch,
    /// gives the full loss, the full gradients and the full metrics (to 1e-12), for every
    /// aggregation, with every term (KL, entropy, value) switched on.
    func testMicroBatchesWithTheSharedNormalizerAddUpToTheMiniBatch() {
        let lengths = [5, 3, 6, 2]
        let mask: [[Bool]] = [
            [true, true, false, false, true],
            [true, true, true],
            [true, false, true, true, true, true],
            [false, true],
        ]
        // Deterministic, varied values per (row, position).
        func rows(_ f: (Int, Int) -> Double) -> [[Double]] { lengths.indices.map { r in (0..<lengths[r]).map { f(r, $0) } } }
        let old = rows { r, t in -0.5 - 0.3 * Double((r * 7 + t * 3) % 5) }
        let logRatio = rows { r, t in 0.45 * sin(Double(r * 5 + t) * 1.3) }  // ρ in [0.64, 1.57]
        let newLog = rows { r, t in old[r][t] + logRatio[r][t] }
        let advantages = rows { r, t in cos(Double(r * 3 + t) * 0.9) }
        let reference = rows { r, t in old[r][t] + 0.2 * cos(Double(r + t)) }
        let entropyRows = rows { r, t in 0.5 + 0.1 * Double((r + 2 * t) % 7) }
        let valueRows = rows { r, t in 0.3 * sin(Double(r * 2 + t)) }
        let oldValueRows = rows { r, t in 0.3 * sin(Double(r * 2 + t)) + 0.7 * cos(Double(r + 3 * t)) }
        let returnRows = rows { r, t in 0.5 * cos(Double(r * 4 + t) * 0.7) }

        func evaluate(_ selected: [Int], configuration: PolicyLossConfiguration, normalizer: LossNormalizer)
            -> (loss: Double, metrics: PolicyLossMetrics, gradients: [[[Double]]])
        {
            func pick(_ source: [[Double]]) -> Tensor { Tensor.paddedRows(selected.map { source[$0] }, dtype: .float64) }
            let logProbabilities = pick(newLog), entropies = pick(entropyRows), values = pick(valueRows)
            for leaf in [logProbabilities, entropies, values] { leaf.requiresGradient = true }
            let batch = PolicyLossBatch(
                logProbabilities: logProbabilities, oldLogProbabilities: pick(old), advantages: pick(advantages),
                trainMask: Tensor.paddedMask(selected.map { mask[$0] }, dtype: .float64),
                referenceLogProbabilities: pick(reference), entropies: entropies,
                values: values, oldValues: pick(oldValueRows), returns: pick(returnRows))
            let result = PolicyLoss(configuration: configuration)(batch, normalizer: normalizer)
            // Per selected row, the gradient entries of its own (unpadded) positions.
            let columns = logProbabilities.shape[1]
            let grads = gradients(of: result.loss, withRespectTo: [logProbabilities, entropies, values]).map { gradient in
                let flat = gradient.doubles
                return selected.enumerated().map { slot, row in Array(flat[(slot * columns)..<(slot * columns + lengths[row])]) }
            }
            return (result.loss.item, result.metrics, grads)
        }

        for aggregation in LossAggregation.allCases {
            var configuration = PolicyLossConfiguration()
            configuration.aggregation = aggregation
            configuration.klCoefficient = 0.05
            configuration.entropyCoefficient = 0.01
            configuration.dualClip = 1.3
            let normalizer = configuration.normalizer(trainMask: mask)
            XCTAssertEqual(normalizer.tokenCount, 12)
            XCTAssertEqual(normalizer.sequenceCount, 4)
            XCTAssertEqual(normalizer.maxLength, 6)

            let whole = evaluate([0, 1, 2, 3], configuration: configuration, normalizer: normalizer)
            let first = evaluate([0, 1], configuration: configuration, normalizer: normalizer)
            let second = evaluate([2, 3], configuration: configuration, normalizer: normalizer)
            XCTAssertEqual(first.loss + second.loss, whole.loss, accuracy: 1e-12, "\(aggregation)")
            for input in 0..<3 {
                let accumulated = first.gradients[input] + second.gradients[input]
                for row in 0..<4 {
                    for position in 0..<lengths[row] {
                        XCTAssertEqual(accumulated[row][position], whole.gradients[input][row][position], accuracy: 1e-12, "\(aggregation) input \(input) (\(row), \(position))")
                    }
                }
            }
            var metrics = first.metrics
            metrics.accumulate(second.metrics)
            XCTAssertEqual(metrics.tokenCount, whole.metrics.tokenCount)
            let pairs: [(Double?, Double?, String)] = [
                (metrics.loss, whole.metrics.loss, "loss"), (metrics.policyLoss, whole.metrics.policyLoss, "policy"),
                (metrics.valueLoss, whole.metrics.valueLoss, "value"), (metrics.clipFractionLow, whole.metrics.clipFractionLow, "clip low"),
                (metrics.clipFractionHigh, whole.metrics.clipFractionHigh, "clip high"), (metrics.dualClipFraction, whole.metrics.dualClipFraction, "dual"),
                (metrics.approximateKL, whole.metrics.approximateKL, "approx KL"), (metrics.referenceKL, whole.metrics.referenceKL, "ref KL"),
                (metrics.entropy, whole.metrics.entropy, "entropy"), (metrics.valueClipFraction, whole.metrics.valueClipFraction, "value clip"),
            ]
            for (accumulated, full, name) in pairs {
                XCTAssertEqual(accumulated!, full!, accuracy: 1e-12, "\(aggregation) \(name)")
            }
            // The fixture exercises clipping on both sides.
            XCTAssertGreaterThan(whole.metrics.clipFractionLow + whole.metrics.clipFractionHigh, 0, "\(aggregation)")

            // A normaliser computed per micro-batch instead would not add up (this is the bug
            // the shared normaliser prevents).
            let local = evaluate([0, 1], configuration: configuration, normalizer: configuration.normalizer(trainMask: [mask[0], mask[1]])).loss
                + evaluate([2, 3], configuration: configuration, normalizer: configuration.normalizer(trainMask: [mask[2], mask[3]])).loss
            XCTAssertGreaterThan(abs(local - whole.loss), 1e-6, "\(aggregation)")
        }
    }

    /// The tensor form of the normaliser agrees with the array form: N, S and L = columns.
    func testNormalizerFromATensor() {
        let mask = [[true, false, true], [false, false, false], [true, true, true]]
        let fromTensor = LossNormalizer(aggregation: .sequenceMeanTokenSumNorm, trainMask: Tensor.paddedMask(mask, length: 4, dtype: .float32))
        XCTAssertEqual(fromTensor.tokenCount, 5)
        XCTAssertEqual(fromTensor.sequenceCount, 2, "a row with no trained token is not a sequence of the mean")
        XCTAssertEqual(fromTensor.maxLength, 4)
        XCTAssertEqual(LossNormalizer(aggregation: .sequenceMeanTokenSumNorm, trainMask: mask).maxLength, 3)
        XCTAssertEqual(LossNormalizer(aggregation: .tokenMean, trainMask: mask, maxLength: 160).maxLength, 160)
    }
}
