import ARPO
import Foundation
import Tensor
import XCTest

/// The DPO term of preference pairs against a hand-computed loss and gradient, and a gradient
/// check in float64 against central differences (PyTorch gradcheck's tolerances).
final class PreferenceLossTests: XCTestCase {
    /// Four continuations, (S, L) = (4, 4), paired 0 over 1 and 3 over 2, β = 0.5:
    ///
    ///     row 0 (chosen):    mask [0, 1, 1, 0]   log π − log π_ref on it: (−0.5 + 0.7) + (−0.2 + 0.4) = 0.4
    ///     row 1 (rejected):  mask [0, 1, 0, 1]   (−1.0 + 0.8) + (−0.3 + 0.6) = 0.1
    ///     row 2 (rejected):  mask [1, 1, 1, 0]   (−0.9 + 0.5) + (−0.4 + 0.9) + (−1.1 + 1.0) = 0.0
    ///     row 3 (chosen):    mask [0, 0, 1, 1]   (−2.0 + 1.0) + (−0.6 + 0.5) = −1.1
    ///
    /// Masked positions (shared prefix, observations) hold values that must not matter.
    /// z_1 = 0.5 · (0.4 − 0.1) = 0.15; z_2 = 0.5 · (−1.1 − 0.0) = −0.55.
    /// L = (−log σ(0.15) − log σ(−0.55)) / 2.
    struct Fixture {
        let logProbabilities = Tensor.paddedRows(
            [[-3.0, -0.5, -0.2, -7.0], [-2.5, -1.0, -4.0, -0.3], [-0.9, -0.4, -1.1, -6.0], [-5.0, -8.0, -2.0, -0.6]], dtype: .float64)
        let reference = Tensor.paddedRows(
            [[-1.0, -0.7, -0.4, -1.0], [-1.0, -0.8, -1.0, -0.6], [-0.5, -0.9, -1.0, -1.0], [-1.0, -1.0, -1.0, -0.5]], dtype: .float64)
        let mask = Tensor.paddedMask(
            [[false, true, true, false], [false, true, false, true], [true, true, true, false], [false, false, true, true]], dtype: .float64)
        let pairs: [(chosen: Int, rejected: Int)] = [(0, 1), (3, 2)]
    }

    func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }

    func testLossAndGradientMatchTheHandComputedDPO() {
        let fixture = Fixture()
        fixture.logProbabilities.requiresGradient = true
        let (loss, margins) = PreferenceLoss(beta: 0.5)(
            logProbabilities: fixture.logProbabilities, referenceLogProbabilities: fixture.reference, continuationMask: fixture.mask,
            pairs: fixture.pairs, normalizer: 2)
        XCTAssertEqual(margins[0], 0.15, accuracy: 1e-12)
        XCTAssertEqual(margins[1], -0.55, accuracy: 1e-12)
        XCTAssertEqual(loss.item, (-log(sigmoid(0.15)) - log(sigmoid(-0.55))) / 2, accuracy: 1e-12)
        // ∂L/∂log π_θ = ∓β(1 − σ(z)) / 2 on the chosen / rejected continuation's tokens, 0 elsewhere.
        let g1 = 0.5 * (1 - sigmoid(0.15)) / 2, g2 = 0.5 * (1 - sigmoid(-0.55)) / 2
        let expected: [Double] = [
            0, -g1, -g1, 0,
            0, g1, 0, g1,
            g2, g2, g2, 0,
            0, 0, -g2, -g2,
        ]
        let gradient = gradients(of: loss, withRespectTo: [fixture.logProbabilities])[0].doubles
        for (index, (actual, wanted)) in zip(gradient, expected).enumerated() {
            XCTAssertEqual(actual, wanted, accuracy: 1e-12, "token \(index)")
            if wanted == 0 { XCTAssertEqual(actual, 0, "token \(index) is off the continuations and must get exactly 0") }
        }
    }

    /// At the first update the policy is the reference: z = 0, L = log 2 per pair, and the
    /// gradient is ∓β/2 per continuation token, not 0.
    func testThePolicyEqualToTheReferenceStillGetsAGradient() {
        let fixture = Fixture()
        let policy = Tensor(shape: [4, 4], values: fixture.reference.doubles, dtype: .float64)
        policy.requiresGradient = true
        let (loss, margins) = PreferenceLoss(beta: 0.1)(
            logProbabilities: policy, referenceLogProbabilities: fixture.reference, continuationMask: fixture.mask, pairs: [(0, 1)], normalizer: 1)
        XCTAssertEqual(margins, [0])
        XCTAssertEqual(loss.item, log(2), accuracy: 1e-12)
        let gradient = gradients(of: loss, withRespectTo: [policy])[0].doubles
        XCTAssertEqual(Array(gradient[0..<8]), [0, -0.05, -0.05, 0, 0, 0.05, 0, 0.05].map { $0 }, "chosen −β/2, rejected +β/2")
    }

    func testGradientCheck() {
        let fixture = Fixture()
        for beta in [0.1, 0.5, 2.0] {
            let report = GradientChecker().check([fixture.logProbabilities, fixture.reference]) { inputs in
                PreferenceLoss(beta: beta)(
                    logProbabilities: inputs[0], referenceLogProbabilities: inputs[1], continuationMask: fixture.mask,
                    pairs: fixture.pairs, normalizer: 2).loss
            }
            XCTAssertTrue(report.passed, "β \(beta): \(report)")
            XCTAssertEqual(report.checkedCount, 32)
        }
    }
}
