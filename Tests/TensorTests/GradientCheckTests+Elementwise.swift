import Tensor
import XCTest

/// Gradient checks of the elementwise ops: binary ops with broadcasting (the gradient of a
/// broadcast operand is summed back to its shape), the scalar forms, every unary function, and
/// select / maskedFill.
final class ElementwiseGradientCheckTests: XCTestCase {
    // MARK: Binary with broadcasting

    /// Smallest |a − b| over the broadcast pair: maximum and minimum have a kink at a = b, and a
    /// central difference straddling it would be meaningless.
    private func smallestGap(_ a: Tensor, _ b: Tensor) -> Double {
        withoutGradients { (a - b).abs().doubles.min() ?? 0 }
    }

    func testBinaryOpsWithBroadcastOperands() {
        // (3, 1, 4) with (2, 4) → (3, 2, 4): both operands are stretched along some axis.
        let a = randomTensor([3, 1, 4], seed: 101), b = randomTensor([2, 4], seed: 102, in: 0.5...1.5)
        XCTAssertGreaterThan(smallestGap(a, b), 1e-3, "test inputs must stay away from the max/min kink")
        assertGradientCheckPasses([a, b], "add") { $0[0] + $0[1] }
        assertGradientCheckPasses([a, b], "subtract") { $0[0] - $0[1] }
        assertGradientCheckPasses([a, b], "multiply") { $0[0] * $0[1] }
        assertGradientCheckPasses([a, b], "divide") { $0[0] / $0[1] }
        assertGradientCheckPasses([b, a], "divide, broadcast denominator") { $0[0] / ($0[1] + 2) }
        assertGradientCheckPasses([a, b], "maximum") { Tensor.maximum($0[0], $0[1]) }
        assertGradientCheckPasses([a, b], "minimum") { Tensor.minimum($0[0], $0[1]) }
    }

    func testBinaryOpsBroadcastAlongSeveralAxes() {
        // (1, 3, 1) with (2, 1, 4) → (2, 3, 4): each operand's gradient is summed over the last
        // axis and over another, non-adjacent one, so the reduction revisits each element in
        // several runs and must add rather than overwrite.
        let a = randomTensor([1, 3, 1], seed: 115), b = randomTensor([2, 1, 4], seed: 116, in: 0.5...1.5)
        XCTAssertGreaterThan(smallestGap(a, b), 1e-3)
        assertGradientCheckPasses([a, b], "add") { $0[0] + $0[1] }
        assertGradientCheckPasses([a, b], "multiply") { $0[0] * $0[1] }
        assertGradientCheckPasses([a, b], "divide") { $0[0] / $0[1] }
        assertGradientCheckPasses([a, b], "maximum") { Tensor.maximum($0[0], $0[1]) }
        a.requiresGradient = true
        let gradient = gradients(of: (a + b).sum(), withRespectTo: [a])[0]
        XCTAssertEqual(gradient.doubles, [8, 8, 8], "each element of a is used 2 · 4 times")
    }

    func testBinaryOpsWithScalarTensor() {
        // A shape-[] operand broadcasts against everything; its gradient is the sum over all.
        let x = randomTensor([2, 3], seed: 103), scalar = Tensor(shape: [], values: [0.37])
        XCTAssertGreaterThan(smallestGap(x, scalar), 1e-3)
        assertGradientCheckPasses([x, scalar], "add scalar tensor") { $0[0] + $0[1] }
        assertGradientCheckPasses([scalar, x], "scalar tensor minus") { $0[0] - $0[1] }
        assertGradientCheckPasses([x, scalar], "multiply scalar tensor") { $0[0] * $0[1] }
        assertGradientCheckPasses([x, scalar], "divide by scalar tensor") { $0[0] / $0[1] }
        assertGradientCheckPasses([scalar, x], "scalar tensor divided by") { $0[0] / ($0[1] + 2) }
        assertGradientCheckPasses([x, scalar], "maximum with scalar tensor") { Tensor.maximum($0[0], $0[1]) }
        assertGradientCheckPasses([x, scalar], "minimum with scalar tensor") { Tensor.minimum($0[0], $0[1]) }
    }

    func testBinaryOpsOnTransposedViews() {
        // Strided (non-contiguous) operands go through the general strided kernel.
        let a = randomTensor([4, 3], seed: 104), b = randomTensor([3, 4], seed: 105, in: 0.5...1.5)
        assertGradientCheckPasses([a, b], "multiply transposed view") { $0[0].transposed() * $0[1] }
        assertGradientCheckPasses([a, b], "divide by transposed view") { $0[1] / $0[0].transposed().exp() }
    }

    func testSameTensorOnBothSides() {
        let x = randomTensor([5], seed: 106, in: 0.5...1.5)
        assertGradientCheckPasses([x], "x * x") { $0[0] * $0[0] }
        assertGradientCheckPasses([x], "x / x²") { $0[0] / ($0[0] * $0[0]) }
    }

    // MARK: Scalar forms

    func testScalarForms() {
        let x = randomTensor([2, 3], seed: 107, in: 0.5...2)
        assertGradientCheckPasses([x], "x + 2") { $0[0] + 2 }
        assertGradientCheckPasses([x], "2 + x") { 2 + $0[0] }
        assertGradientCheckPasses([x], "x - 2") { $0[0] - 2 }
        assertGradientCheckPasses([x], "2 - x") { 2 - $0[0] }
        assertGradientCheckPasses([x], "x * 3") { $0[0] * 3 }
        assertGradientCheckPasses([x], "3 * x") { 3 * $0[0] }
        assertGradientCheckPasses([x], "x / 3") { $0[0] / 3 }
        assertGradientCheckPasses([x], "3 / x") { 3 / $0[0] }
        assertGradientCheckPasses([x], "1 / x") { 1 / $0[0] }
        assertGradientCheckPasses([x], "maximum(x, 1)") { Tensor.maximum($0[0], 1.0) }
        assertGradientCheckPasses([x], "minimum(x, 1)") { Tensor.minimum($0[0], 1.0) }
    }

    // MARK: Unary

    func testSmoothUnaryFunctions() {
        let x = randomTensor([3, 4], seed: 108, in: -2...2)
        assertGradientCheckPasses([x], "negate") { -$0[0] }
        assertGradientCheckPasses([x], "exp") { $0[0].exp() }
        assertGradientCheckPasses([x], "square") { $0[0].squared() }
        assertGradientCheckPasses([x], "tanh") { $0[0].tanh() }
        assertGradientCheckPasses([x], "sigmoid") { $0[0].sigmoid() }
        assertGradientCheckPasses([x], "silu") { $0[0].silu() }
        assertGradientCheckPasses([x], "gelu") { $0[0].gelu() }
    }

    func testSigmoidForLargeMagnitudes() {
        // Both branches of the stable sigmoid (x ≥ 0 and x < 0), far into the tails.
        let x = Tensor(shape: [6], values: [-12, -4.5, -0.3, 0.4, 5, 11])
        assertGradientCheckPasses([x], "sigmoid tails") { $0[0].sigmoid() }
        assertGradientCheckPasses([x], "silu tails") { $0[0].silu() }
    }

    func testUnaryFunctionsOfPositiveInputs() {
        let x = randomTensor([3, 4], seed: 109, in: 0.5...2)
        assertGradientCheckPasses([x], "log") { $0[0].log() }
        assertGradientCheckPasses([x], "sqrt") { $0[0].sqrt() }
        assertGradientCheckPasses([x], "rsqrt") { $0[0].rsqrt() }
        assertGradientCheckPasses([x], "reciprocal") { $0[0].reciprocal() }
        assertGradientCheckPasses([x], "pow 2") { $0[0].pow(2) }
        assertGradientCheckPasses([x], "pow 3") { $0[0].pow(3) }
        assertGradientCheckPasses([x], "pow 2.5") { $0[0].pow(2.5) }
        assertGradientCheckPasses([x], "pow -1.5") { $0[0].pow(-1.5) }
        assertGradientCheckPasses([x], "pow 0.5") { $0[0].pow(0.5) }
    }

    func testIntegerPowersOfNegativeInputs() {
        // Integer exponents are defined for negative bases (as in torch.pow); x.pow(2) is the
        // common case, e.g. a squared error.
        let x = randomTensorAwayFromZero([3, 4], seed: 117, magnitudes: 0.3...1.5)
        assertGradientCheckPasses([x], "pow 2") { $0[0].pow(2) }
        assertGradientCheckPasses([x], "pow 3") { $0[0].pow(3) }
        assertGradientCheckPasses([x], "pow -1") { $0[0].pow(-1) }
        assertGradientCheckPasses([x], "pow -2") { $0[0].pow(-2) }
    }

    func testUnaryFunctionsWithKinkAtZero() {
        // Every element is at least 0.1 from zero, far beyond ε = 1e-6.
        let x = randomTensorAwayFromZero([3, 4], seed: 110)
        assertGradientCheckPasses([x], "relu") { $0[0].relu() }
        assertGradientCheckPasses([x], "abs") { $0[0].abs() }
        assertGradientCheckPasses([x], "reciprocal of mixed signs") { $0[0].reciprocal() }
    }

    func testUnaryOfNonContiguousView() {
        let x = randomTensor([3, 4], seed: 111)
        assertGradientCheckPasses([x], "tanh of transposed view") { $0[0].transposed().tanh() }
    }

    func testClamp() {
        // Points inside, below and above [-0.5, 0.5], none within 0.05 of a bound.
        let x = Tensor(shape: [8], values: [-1.3, -0.7, -0.45, -0.1, 0.2, 0.44, 0.6, 1.9])
        assertGradientCheckPasses([x], "clamp both bounds") { $0[0].clamped(min: -0.5, max: 0.5) }
        assertGradientCheckPasses([x], "clamp lower bound") { $0[0].clamped(min: -0.5) }
        assertGradientCheckPasses([x], "clamp upper bound") { $0[0].clamped(max: 0.5) }

        // Outside the range the gradient is exactly zero, inside exactly one (PPO's ratio clip
        // relies on it).
        x.requiresGradient = true
        let gradient = gradients(of: x.clamped(min: -0.5, max: 0.5).sum(), withRespectTo: [x])[0]
        XCTAssertEqual(gradient.doubles, [0, 0, 1, 1, 1, 1, 0, 0])
    }

    // MARK: Select and maskedFill

    func testSelect() {
        // condition (3, 1) broadcast against (3, 4) and (4,) operands.
        let condition = Tensor(shape: [3, 1], values: [1, 0, 1])
        let a = randomTensor([3, 4], seed: 112), b = randomTensor([4], seed: 113)
        assertGradientCheckPasses([a, b], "select") { Tensor.select(condition, $0[0], $0[1]) }

        a.requiresGradient = true
        b.requiresGradient = true
        let selectGradients = gradients(of: Tensor.select(condition, a, b).sum(), withRespectTo: [a, b])
        // Rows 0 and 2 picked a; row 1 picked b: b's gradient counts one row per column.
        XCTAssertEqual(selectGradients[0].doubles, [1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1])
        XCTAssertEqual(selectGradients[1].doubles, [1, 1, 1, 1])
    }

    func testMaskedFill() {
        let mask = Tensor(shape: [2, 3], values: [0, 1, 0, 1, 1, 0])
        let x = randomTensor([2, 3], seed: 114)
        assertGradientCheckPasses([x], "maskedFill") { $0[0].maskedFill(mask, with: -7).exp() }
        x.requiresGradient = true
        let gradient = gradients(of: (x.maskedFill(mask, with: -7) * 3).sum(), withRespectTo: [x])[0]
        XCTAssertEqual(gradient.doubles, [3, 0, 3, 0, 0, 3], "masked positions get exactly zero gradient")
    }
}
