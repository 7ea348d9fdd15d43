import Foundation
import Tensor
import XCTest

/// Forward values on cases small enough to compute by hand (or with Foundation's libm).
///
/// Gradient checks only prove that an op's backward matches its own forward; these prove the
/// forward computes the right function.
final class ForwardValueTests: XCTestCase {
    // MARK: Matmul and broadcasting

    func testMatmulOfKnownMatrices() {
        // [1 2 3; 4 5 6] · [7 8; 9 10; 11 12] = [58 64; 139 154]
        for dtype in DType.allCases {
            let a = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6], dtype: dtype)
            let b = Tensor(shape: [3, 2], values: [7, 8, 9, 10, 11, 12], dtype: dtype)
            let product = Tensor.matmul(a, b)
            XCTAssertEqual(product.shape, [2, 2])
            XCTAssertEqual(product.doubles, [58, 64, 139, 154], "\(dtype)")
            // Aᵀ (3, 2) · A (2, 3) with a transposed view: [17 22 27; 22 29 36; 27 36 45].
            XCTAssertEqual(a.transposed().matmul(a).doubles, [17, 22, 27, 22, 29, 36, 27, 36, 45], "\(dtype)")
        }
    }

    func testBatchedMatmulBroadcastsTheMatrix() {
        // Two 1×2 rows times one 2×2 matrix: [1 2]·M = [7 10], [3 4]·M = [15 22] with M = [1 2; 3 4].
        let batch = Tensor(shape: [2, 1, 2], values: [1, 2, 3, 4])
        let matrix = Tensor(shape: [2, 2], values: [1, 2, 3, 4])
        let product = Tensor.matmul(batch, matrix)
        XCTAssertEqual(product.shape, [2, 1, 2])
        XCTAssertEqual(product.doubles, [7, 10, 15, 22])
        // Matrix times batch: M·[1; 3] style, (2, 2) × (2, 2, 1).
        let columns = Tensor(shape: [2, 2, 1], values: [1, 0, 0, 1])
        XCTAssertEqual(Tensor.matmul(matrix, columns).doubles, [1, 3, 2, 4])
    }

    func testBroadcastingBinaryOps() {
        // (2, 1) with (3,) → (2, 3).
        let column = Tensor(shape: [2, 1], values: [1, 2])
        let row = Tensor(shape: [3], values: [10, 20, 40])
        XCTAssertEqual((column + row).shape, [2, 3])
        XCTAssertEqual((column + row).doubles, [11, 21, 41, 12, 22, 42])
        XCTAssertEqual((column - row).doubles, [-9, -19, -39, -8, -18, -38])
        XCTAssertEqual((column * row).doubles, [10, 20, 40, 20, 40, 80])
        XCTAssertEqual((row / column).doubles, [10, 20, 40, 5, 10, 20])
        let middle = Tensor(shape: [3], values: [0, 1.5, 3])
        XCTAssertEqual(Tensor.maximum(column, middle).doubles, [1, 1.5, 3, 2, 2, 3])
        XCTAssertEqual(Tensor.minimum(column, middle).doubles, [0, 1, 1, 0, 1.5, 2])
        // A shape-[] tensor broadcasts against anything.
        XCTAssertEqual((row - Tensor.scalar(5, dtype: .float64)).doubles, [5, 15, 35])
    }

    func testBroadcastShapes() {
        // Valid inputs only: a mismatch is a precondition failure (a programmer error), which
        // XCTest cannot catch in-process.
        XCTAssertEqual(broadcastShapes([3, 1, 4], [2, 4]), [3, 2, 4])
        XCTAssertEqual(broadcastShapes([2, 4], [3, 1, 4]), [3, 2, 4])
        XCTAssertEqual(broadcastShapes([], [5]), [5])
        XCTAssertEqual(broadcastShapes([], []), [])
        XCTAssertEqual(broadcastShapes([2, 1], [1, 3]), [2, 3])
        XCTAssertEqual(broadcastShapes([4], [4]), [4])
        XCTAssertEqual(broadcastShapes([1, 1, 1], [7]), [1, 1, 7])
    }

    func testScalarForms() {
        let x = Tensor(shape: [3], values: [1, 2, 4])
        XCTAssertEqual((x + 2).doubles, [3, 4, 6])
        XCTAssertEqual((2 + x).doubles, [3, 4, 6])
        XCTAssertEqual((x - 2).doubles, [-1, 0, 2])
        XCTAssertEqual((2 - x).doubles, [1, 0, -2])
        XCTAssertEqual((x * 3).doubles, [3, 6, 12])
        XCTAssertEqual((3 * x).doubles, [3, 6, 12])
        assertClose((x / 3).doubles, [1.0 / 3, 2.0 / 3, 4.0 / 3], absoluteTolerance: 1e-15)
        XCTAssertEqual((4 / x).doubles, [4, 2, 1])
        XCTAssertEqual((1 / x).doubles, [1, 0.5, 0.25])
        XCTAssertEqual(Tensor.maximum(x, 1.5).doubles, [1.5, 2, 4])
        XCTAssertEqual(Tensor.minimum(x, 1.5).doubles, [1, 1.5, 1.5])
    }

    func testComparisons() {
        let x = Tensor(shape: [3], values: [1, 2, 3]), y = Tensor(shape: [3], values: [2, 2, 2])
        XCTAssertEqual(x.isGreater(than: y).doubles, [0, 0, 1])
        XCTAssertEqual(x.isGreaterOrEqual(to: y).doubles, [0, 1, 1])
        XCTAssertEqual(x.isLess(than: y).doubles, [1, 0, 0])
        XCTAssertEqual(x.isLessOrEqual(to: y).doubles, [1, 1, 0])
        XCTAssertEqual(x.isEqual(to: y).doubles, [0, 1, 0])
        XCTAssertEqual(x.isGreater(than: 1.5).doubles, [0, 1, 1])
        XCTAssertEqual(x.isLess(than: 1.5).doubles, [1, 0, 0])
    }

    // MARK: Unary

    func testUnaryFunctionsAgainstFoundation() {
        // Each function against libm, elementwise, in float64 (to 1e-12) and float32 (to 1e-5
        // relative, a few float32 ulps).
        let anySign: [Double] = [-2.5, -0.7, -0.1, 0.2, 1.3, 3]
        let positive: [Double] = [0.1, 0.5, 1, 2.5, 9]
        func sigmoid(_ v: Double) -> Double { 1 / (1 + Foundation.exp(-v)) }
        let cases: [(String, [Double], (Tensor) -> Tensor, (Double) -> Double)] = [
            ("negate", anySign, { -$0 }, { -$0 }),
            ("exp", anySign, { $0.exp() }, { Foundation.exp($0) }),
            ("log", positive, { $0.log() }, { Foundation.log($0) }),
            ("sqrt", positive, { $0.sqrt() }, { $0.squareRoot() }),
            ("rsqrt", positive, { $0.rsqrt() }, { 1 / $0.squareRoot() }),
            ("square", anySign, { $0.squared() }, { $0 * $0 }),
            ("reciprocal", anySign, { $0.reciprocal() }, { 1 / $0 }),
            ("abs", anySign, { $0.abs() }, { Swift.abs($0) }),
            ("pow 2.5", positive, { $0.pow(2.5) }, { Foundation.pow($0, 2.5) }),
            ("pow -1", positive, { $0.pow(-1) }, { 1 / $0 }),
            ("pow 2", anySign, { $0.pow(2) }, { $0 * $0 }),
            ("pow 3", anySign, { $0.pow(3) }, { $0 * $0 * $0 }),
            ("pow -2", anySign, { $0.pow(-2) }, { 1 / ($0 * $0) }),
            ("tanh", anySign, { $0.tanh() }, { Foundation.tanh($0) }),
            ("sigmoid", anySign, { $0.sigmoid() }, sigmoid),
            ("relu", anySign, { $0.relu() }, { Swift.max($0, 0) }),
            ("silu", anySign, { $0.silu() }, { $0 * sigmoid($0) }),
        ]
        for (name, inputs, function, reference) in cases {
            let expected = inputs.map(reference)
            let double = function(Tensor(shape: [inputs.count], values: inputs, dtype: .float64))
            assertClose(double.doubles, expected, absoluteTolerance: 1e-12, relativeTolerance: 1e-12, "\(name) float64")
            let single = function(Tensor(shape: [inputs.count], values: inputs, dtype: .float32))
            XCTAssertEqual(single.dtype, .float32)
            assertClose(single.doubles, expected, absoluteTolerance: 1e-6, relativeTolerance: 1e-5, "\(name) float32")
        }
    }

    func testSigmoidSaturatesWithoutOverflow() {
        let x = Tensor(shape: [4], values: [-800, -40, 40, 800])
        let y = x.sigmoid().doubles
        XCTAssertEqual(y[0], 0)
        assertClose([y[1]], [Foundation.exp(-40)], absoluteTolerance: 0, relativeTolerance: 1e-12)
        XCTAssertEqual(y[2], 1)
        XCTAssertEqual(y[3], 1)
    }

    func testGELUTanhApproximation() {
        // PyTorch's gelu(approximate='tanh') at -1, 0, 1, 2 (float64):
        // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
        let x = Tensor(shape: [4], values: [-1, 0, 1, 2])
        assertClose(
            x.gelu().doubles, [-0.15880800939172324, 0, 0.8411919906082768, 1.954597694087775],
            absoluteTolerance: 1e-12, "gelu")
        // And within 1e-3 of the exact erf form (the approximation's known error bound).
        for (value, approximate) in zip(x.doubles, x.gelu().doubles) {
            XCTAssertEqual(approximate, 0.5 * value * (1 + erf(value / 2.0.squareRoot())), accuracy: 1e-3)
        }
    }

    func testClamp() {
        let x = Tensor(shape: [5], values: [-2, -0.5, 0.3, 1, 1.5])
        XCTAssertEqual(x.clamped(min: -1, max: 1).doubles, [-1, -0.5, 0.3, 1, 1])
        XCTAssertEqual(x.clamped(min: 0).doubles, [0, 0, 0.3, 1, 1.5])
        XCTAssertEqual(x.clamped(max: 0).doubles, [-2, -0.5, 0, 0, 0])
        // The gradient is 1 on the closed range (including the bound 1 itself) and 0 outside.
        x.requiresGradient = true
        let gradient = gradients(of: x.clamped(min: -1, max: 1).sum(), withRespectTo: [x])[0]
        XCTAssertEqual(gradient.doubles, [0, 1, 1, 1, 0])
    }

    // MARK: Reductions

    func testReductionsOfKnownMatrix() {
        // [1 2 3; 4 5 6]
        let x = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(x.sum().doubles, [21])
        XCTAssertEqual(x.sum().shape, [])
        XCTAssertEqual(x.sum(axis: 0).doubles, [5, 7, 9])
        XCTAssertEqual(x.sum(axis: 1).doubles, [6, 15])
        XCTAssertEqual(x.sum(axis: 1, keepingDimension: true).shape, [2, 1])
        XCTAssertEqual(x.sum(keepingDimension: true).shape, [1, 1])
        XCTAssertEqual(x.mean().doubles, [3.5])
        XCTAssertEqual(x.mean(axis: 0).doubles, [2.5, 3.5, 4.5])
        XCTAssertEqual(x.mean(axis: -1).doubles, [2, 5])
        XCTAssertEqual(x.max().doubles, [6])
        XCTAssertEqual(x.max(axis: 0).doubles, [4, 5, 6])
        XCTAssertEqual(x.max(axis: 1).doubles, [3, 6])
        // logsumexp of [1, 2, 3] is 3.40760596444438; rows of a (2, 3, 2) tensor over the middle axis.
        let lse123 = 3.4076059644443806
        assertClose(x.logSumExp(axis: 1).doubles, [lse123, lse123 + 3], absoluteTolerance: 1e-12)
        let middle = Tensor(shape: [1, 3, 2], values: [1, 0, 2, 0, 3, 0])
        assertClose(middle.logSumExp(axis: 1).doubles, [lse123, Foundation.log(3)], absoluteTolerance: 1e-12)
        assertClose(
            x.logSumExp().doubles, [Foundation.log((1...6).map { Foundation.exp(Double($0)) }.reduce(0, +))],
            absoluteTolerance: 1e-12)
    }

    func testMaxSendsGradientToFirstArgMax() {
        // Row 0's maximum is unique (5 at index 1); row 1 has a tie (7 at indices 0 and 2) and the
        // gradient goes to the first.
        let x = Tensor(shape: [2, 3], values: [1, 5, 3, 7, 2, 7])
        x.requiresGradient = true
        let maximum = x.max(axis: 1)
        XCTAssertEqual(maximum.doubles, [5, 7])
        let gradient = gradients(of: (maximum * Tensor(shape: [2], values: [2, 3])).sum(), withRespectTo: [x])[0]
        XCTAssertEqual(gradient.doubles, [0, 2, 0, 3, 0, 0])
        // Over axis 0 of the same matrix: columns' maxima are 7, 5, 7 at rows 1, 0, 1.
        let columnGradient = gradients(of: x.max(axis: 0).sum(), withRespectTo: [x])[0]
        XCTAssertEqual(columnGradient.doubles, [0, 1, 0, 1, 0, 1])
    }

    // MARK: Softmax family

    func testSoftmaxOfOneTwoThree() {
        let expected = [0.09003057317038046, 0.24472847105479767, 0.6652409557748219]
        for dtype in DType.allCases {
            let x = Tensor(shape: [3], values: [1, 2, 3], dtype: dtype)
            // float64 to 1e-14; float32 to 1e-6 (a few float32 ulps at these magnitudes).
            let tolerance = dtype == .float64 ? 1e-14 : 1e-6
            assertClose(x.softmax().doubles, expected, absoluteTolerance: tolerance, "softmax \(dtype)")
            assertClose(x.logSoftmax().doubles, expected.map { Foundation.log($0) }, absoluteTolerance: tolerance, "logSoftmax \(dtype)")
            assertClose(x.logSumExp().doubles, [3.4076059644443806], absoluteTolerance: tolerance, "logSumExp \(dtype)")
        }
        // Rows are independent: a (2, 3) input softmaxes each row over the last axis.
        let rows = Tensor(shape: [2, 3], values: [1, 2, 3, 0, 0, 0])
        assertClose(rows.softmax().doubles, expected + [1.0 / 3, 1.0 / 3, 1.0 / 3], absoluteTolerance: 1e-14)
    }

    func testSoftmaxFamilyIsFiniteForLargeInputs() {
        // ±1e4: exp overflows in both precisions unless the maximum is factored out.
        // softmax([1e4, 1e4 − 1, −1e4]) = [1, e⁻¹, 0] / (1 + e⁻¹).
        let normalizer = 1 + Foundation.exp(-1.0)
        let logNormalizer = Foundation.log(normalizer)
        for dtype in DType.allCases {
            // Row 1 is −1e4 + [0, −1, 1]: softmax [1, e⁻¹, e] / (1 + e⁻¹ + e).
            let x = Tensor(shape: [2, 3], values: [1e4, 1e4 - 1, -1e4, -1e4, -1e4 - 1, -1e4 + 1], dtype: dtype)
            let softmax = x.softmax().doubles
            let logSoftmax = x.logSoftmax().doubles
            let logSumExp = x.logSumExp(axis: 1).doubles
            XCTAssertTrue((softmax + logSoftmax + logSumExp).allSatisfy(\.isFinite), "\(dtype): \(softmax) \(logSoftmax) \(logSumExp)")
            let rowOneNormalizer = 1 + Foundation.exp(-1.0) + Foundation.exp(1.0)
            let rowOneLogNormalizer = Foundation.log(rowOneNormalizer)
            // float32: a few ulps of outputs near 1. Outputs near ±1e4 and −2e4 have float32 spacing
            // up to 2⁻⁹ ≈ 0.002, hence the relative term (1e-6 · 2e4 = 0.02).
            let tolerance = dtype == .float64 ? 1e-12 : 1e-6
            let relative = dtype == .float64 ? 1e-15 : 1e-6
            assertClose(
                softmax,
                [1 / normalizer, Foundation.exp(-1) / normalizer, 0,
                 1 / rowOneNormalizer, Foundation.exp(-1) / rowOneNormalizer, Foundation.exp(1) / rowOneNormalizer],
                absoluteTolerance: tolerance, "softmax \(dtype)")
            assertClose(
                logSoftmax,
                [-logNormalizer, -1 - logNormalizer, -2e4 - logNormalizer,
                 -rowOneLogNormalizer, -1 - rowOneLogNormalizer, 1 - rowOneLogNormalizer],
                absoluteTolerance: tolerance, relativeTolerance: relative, "logSoftmax \(dtype)")
            assertClose(
                logSumExp, [1e4 + logNormalizer, -1e4 + rowOneLogNormalizer],
                absoluteTolerance: tolerance, relativeTolerance: relative, "logSumExp \(dtype)")
        }
    }

    func testSoftmaxGradientsAreFiniteForLargeInputs() {
        let x = Tensor(shape: [3], values: [1e4, 0, -1e4])
        x.requiresGradient = true
        let weights = Tensor(shape: [3], values: [1, 2, 3])
        // softmax(x) = [1, 0, 0] to double precision. With weights w = [1, 2, 3]:
        // d Σ w·softmax = y ∘ (w − Σ w∘y) = [0, 0, 0]; d Σ w·logSoftmax = w − y·Σw = [−5, 2, 3];
        // d (Σw)·logSumExp = y·Σw = [6, 0, 0].
        let expectedGradients = [("softmax", [0.0, 0, 0]), ("logSoftmax", [-5.0, 2, 3]), ("logSumExp", [6.0, 0, 0])]
        let outputs = [x.softmax(), x.logSoftmax(), x.logSumExp(axis: 0)]
        for ((name, expected), output) in zip(expectedGradients, outputs) {
            let gradient = gradients(of: (output * weights).sum(), withRespectTo: [x])[0]
            assertClose(gradient.doubles, expected, absoluteTolerance: 1e-12, name)
        }
        // d logSumExp / dx = softmax(x) = [1, 0, 0] here.
        let gradient = gradients(of: x.logSumExp(), withRespectTo: [x])[0]
        assertClose(gradient.doubles, [1, 0, 0], absoluteTolerance: 1e-12)
    }

    // MARK: Losses

    func testCrossEntropyOfKnownLogits() {
        // Row 0: logits [1, 2, 3], target 2 → nll = logsumexp − 3 = 0.40760596444438.
        // Row 1: logits [0, 0, 0], target 0 → nll = log 3.
        let logits = Tensor(shape: [2, 3], values: [1, 2, 3, 0, 0, 0])
        let rowLosses = [3.4076059644443806 - 3, Foundation.log(3.0)]
        assertClose(logits.negativeLogLikelihood(targets: [2, 0]).doubles, rowLosses, absoluteTolerance: 1e-12, "nll")
        assertClose(
            Tensor.crossEntropy(logits: logits, targets: [2, 0]).doubles, [(rowLosses[0] + rowLosses[1]) / 2],
            absoluteTolerance: 1e-12, "mean cross-entropy")
        let weights = Tensor(shape: [2], values: [1, 3])
        assertClose(
            Tensor.crossEntropy(logits: logits, targets: [2, 0], weights: weights).doubles,
            [(rowLosses[0] + 3 * rowLosses[1]) / 4], absoluteTolerance: 1e-12, "weighted cross-entropy")
        // A zero weight removes a row entirely.
        let maskOut = Tensor(shape: [2], values: [0, 1])
        assertClose(
            Tensor.crossEntropy(logits: logits, targets: [2, 0], weights: maskOut).doubles, [rowLosses[1]],
            absoluteTolerance: 1e-12, "masked cross-entropy")
        // The gradient of the mean loss is (softmax − onehot) / rows.
        logits.requiresGradient = true
        let gradient = gradients(of: Tensor.crossEntropy(logits: logits, targets: [2, 0]), withRespectTo: [logits])[0]
        let softmax = [0.09003057317038046, 0.24472847105479767, 0.6652409557748219]
        assertClose(
            gradient.doubles,
            [softmax[0] / 2, softmax[1] / 2, (softmax[2] - 1) / 2, (1.0 / 3 - 1) / 2, 1.0 / 6, 1.0 / 6],
            absoluteTolerance: 1e-12, "cross-entropy gradient")
    }

    func testSoftmaxEntropy() {
        // Uniform over V = 4 has entropy log 4; [1, 2, 3] has −Σ p log p.
        let logits = Tensor(shape: [2, 4], values: [0.5, 0.5, 0.5, 0.5, 1, 2, 3, -1e4])
        let p = [0.09003057317038046, 0.24472847105479767, 0.6652409557748219]
        let entropy = -p.map { $0 * Foundation.log($0) }.reduce(0, +)
        assertClose(logits.softmaxEntropy().doubles, [Foundation.log(4), entropy], absoluteTolerance: 1e-12)
    }

    func testEntropyOfLogProbabilities() {
        // Matches −Σ p log p written out, on rows that are not normalised too (the op takes any
        // input as log p), in float64 and float32.
        let x = randomTensor([3, 37], seed: 420, in: -4...1)
        let expected = (0..<3).map { row in -(0..<37).map { j -> Double in let v = x.doubles[row * 37 + j]; return Foundation.exp(v) * v }.reduce(0, +) }
        assertClose(x.entropyOfLogProbabilities().doubles, expected, absoluteTolerance: 1e-12, "float64")
        assertClose(x.converted(to: .float32).entropyOfLogProbabilities().doubles, expected, absoluteTolerance: 2e-5, "float32")
        // p = 0 counts 0 (log p = −∞ would make p log p NaN): [½, ½, 0] has entropy log 2, and
        // the gradient at the zero is 0, not NaN.
        for dtype in [DType.float64, .float32] {
            let half = Foundation.log(0.5)
            let logProbabilities = Tensor(shape: [1, 3], values: [half, half, -.infinity]).converted(to: dtype)
            logProbabilities.requiresGradient = true
            let entropy = logProbabilities.entropyOfLogProbabilities()
            assertClose(entropy.doubles, [Foundation.log(2)], absoluteTolerance: 1e-6, "\(dtype) entropy")
            let gradient = gradients(of: entropy.sum(), withRespectTo: [logProbabilities])[0]
            // dH/dx_j = −p_j (x_j + 1).
            assertClose(gradient.doubles, [-0.5 * (half + 1), -0.5 * (half + 1), 0], absoluteTolerance: 1e-6, "\(dtype) gradient")
        }
        // An empty last axis has entropy 0.
        XCTAssertEqual(Tensor.zeros([2, 0]).entropyOfLogProbabilities().doubles, [0, 0])
    }

    // MARK: Normalisation

    func testRMSNormOfKnownRow() {
        // x = [1, 2, 3, 4]: mean(x²) = 7.5, so y = x / √(7.5 + ε) · w.
        let epsilon = 1e-6
        let x = Tensor(shape: [1, 4], values: [1, 2, 3, 4])
        let weight = Tensor(shape: [4], values: [1, 1, 2, 0.5])
        let inverse = 1 / (7.5 + epsilon).squareRoot()
        assertClose(
            x.rmsNormalized(weight: weight, epsilon: epsilon).doubles,
            [1 * inverse, 2 * inverse, 6 * inverse, 2 * inverse], absoluteTolerance: 1e-12, "rmsNorm")
        // Rows normalise independently; a float32 copy agrees to float32 precision.
        let rows = Tensor(shape: [2, 2], values: [3, 4, -1, 1])
        let ones = Tensor(shape: [2], values: [1, 1])
        let expected = [3 / (12.5 + epsilon).squareRoot(), 4 / (12.5 + epsilon).squareRoot(), -1 / (1 + epsilon).squareRoot(), 1 / (1 + epsilon).squareRoot()]
        assertClose(rows.rmsNormalized(weight: ones, epsilon: epsilon).doubles, expected, absoluteTolerance: 1e-12, "rmsNorm rows")
        assertClose(
            rows.converted(to: .float32).rmsNormalized(weight: ones.converted(to: .float32), epsilon: epsilon).doubles,
            expected, absoluteTolerance: 1e-6, "rmsNorm float32")
    }

    func testRMSNormOfWideRows() {
        // C = 37: the sums run in SIMD lanes (two of 16) and a scalar tail of 5.
        let epsilon = 1e-5
        let x = randomTensor([3, 37], seed: 421, in: -2...2), weight = randomTensor([37], seed: 422, in: 0.5...1.5)
        var expected: [Double] = []
        for row in 0..<3 {
            let values = Array(x.doubles[(row * 37)..<((row + 1) * 37)])
            let inverse = 1 / (values.map { $0 * $0 }.reduce(0, +) / 37 + epsilon).squareRoot()
            expected += values.indices.map { values[$0] * inverse * weight.doubles[$0] }
        }
        assertClose(x.rmsNormalized(weight: weight, epsilon: epsilon).doubles, expected, absoluteTolerance: 1e-12, "float64")
        assertClose(
            x.converted(to: .float32).rmsNormalized(weight: weight.converted(to: .float32), epsilon: epsilon).doubles,
            expected, absoluteTolerance: 2e-6, "float32")
    }

    func testLayerNormOfKnownRow() {
        // x = [1, 2, 3, 4]: mean 2.5, variance 1.25 (biased, as PyTorch's LayerNorm).
        let epsilon = 1e-5
        let x = Tensor(shape: [1, 4], values: [1, 2, 3, 4])
        let weight = Tensor(shape: [4], values: [1, 2, 1, 1])
        let bias = Tensor(shape: [4], values: [0, 0, 0.5, -1])
        let inverse = 1 / (1.25 + epsilon).squareRoot()
        assertClose(
            x.layerNormalized(weight: weight, bias: bias, epsilon: epsilon).doubles,
            [-1.5 * inverse, 2 * -0.5 * inverse, 0.5 * inverse + 0.5, 1.5 * inverse - 1], absoluteTolerance: 1e-12)
    }

    // MARK: Rotary embedding

    /// HF rotate-half RoPE of one head vector at `position`, computed here in float64.
    private func referenceRotation(_ x: [Double], position: Int, theta: Double = 10_000) -> [Double] {
        let d = x.count, half = d / 2
        var y = x
        for i in 0..<half {
            let angle = Double(position) * Foundation.pow(theta, -2 * Double(i) / Double(d))
            y[i] = x[i] * Foundation.cos(angle) - x[i + half] * Foundation.sin(angle)
            y[i + half] = x[i + half] * Foundation.cos(angle) + x[i] * Foundation.sin(angle)
        }
        return y
    }

    func testRotaryEmbeddingOfKnownVector() {
        // D = 4, position 3: angles 3·10000⁰ = 3 and 3·10000^(−1/2) = 0.03.
        let rotary = RotaryEmbedding(headDimension: 4, maxPositions: 8)
        let x = Tensor(shape: [1, 1, 1, 4], values: [1, 2, 3, 4])
        let expected = [
            1 * cos(3.0) - 3 * sin(3.0), 2 * cos(0.03) - 4 * sin(0.03),
            3 * cos(3.0) + 1 * sin(3.0), 4 * cos(0.03) + 2 * sin(0.03),
        ]
        // The reference used below agrees with the formula written out.
        assertClose(referenceRotation([1, 2, 3, 4], position: 3), expected, absoluteTolerance: 1e-15, "reference")
        // The tables are built in float32, as Hugging Face builds them: agreement to 1e-6.
        assertClose(x.rotaryEmbedded(rotary, positions: [3]).doubles, expected, absoluteTolerance: 1e-6, "rope float64")
        assertClose(
            x.converted(to: .float32).rotaryEmbedded(rotary, positions: [3]).doubles, expected,
            absoluteTolerance: 1e-6, "rope float32")
    }

    func testRotaryEmbeddingPerRowPositionsAndHeads() {
        // (B=2, T=2, H=2, D=6); positions [0, 7, 5, 1] per (batch, time). Each head of a row is
        // rotated by that row's position; position 0 is the identity.
        let rotary = RotaryEmbedding(headDimension: 6, maxPositions: 16, theta: 500)
        let x = randomTensor([2, 2, 2, 6], seed: 501)
        let positions = [0, 7, 5, 1]
        let y = x.rotaryEmbedded(rotary, positions: positions).doubles
        let values = x.doubles
        for row in 0..<4 {
            for head in 0..<2 {
                let start = (row * 2 + head) * 6
                let expected = referenceRotation(Array(values[start..<(start + 6)]), position: positions[row], theta: 500)
                assertClose(Array(y[start..<(start + 6)]), expected, absoluteTolerance: 1e-6, "row \(row) head \(head)")
            }
        }
        XCTAssertEqual(Array(y[0..<12]), Array(values[0..<12]), "position 0 is the identity")
        // Positions shared by every batch row when T entries are given.
        let shared = x.rotaryEmbedded(rotary, positions: [5, 1]).doubles
        let explicit = x.rotaryEmbedded(rotary, positions: [5, 1, 5, 1]).doubles
        XCTAssertEqual(shared, explicit)
    }

    func testRotaryEmbeddingInVectorLanesAndTail() {
        // D = 20 rotates 8 pairs in one vector and 2 in the scalar tail; D = 32 is all vectors.
        for d in [20, 32] {
            let rotary = RotaryEmbedding(headDimension: d, maxPositions: 16)
            let x = randomTensor([1, 3, 2, d], seed: 502, in: -2...2)
            let positions = [0, 9, 15]
            for dtype in [DType.float64, .float32] {
                let y = x.converted(to: dtype).rotaryEmbedded(rotary, positions: positions).doubles
                for row in 0..<3 {
                    for head in 0..<2 {
                        let start = (row * 2 + head) * d
                        let expected = referenceRotation(Array(x.doubles[start..<(start + d)]), position: positions[row])
                        assertClose(Array(y[start..<(start + d)]), expected, absoluteTolerance: 1e-5, "D \(d) \(dtype) row \(row) head \(head)")
                    }
                }
            }
        }
    }

    // MARK: Indexing

    func testGatheredAndEmbeddingValues() {
        let x = Tensor(shape: [2, 3], values: [10, 11, 12, 20, 21, 22])
        XCTAssertEqual(x.gathered([2, 0]).doubles, [12, 20])
        XCTAssertEqual(x.gathered([2, 0]).shape, [2])
        let table = Tensor(shape: [3, 2], values: [0, 1, 10, 11, 20, 21])
        let rows = table.embedding([2, 0, 2], shape: [1, 3])
        XCTAssertEqual(rows.shape, [1, 3, 2])
        XCTAssertEqual(rows.doubles, [20, 21, 0, 1, 20, 21])
    }

    func testSelectAndMaskedFillValues() {
        let condition = Tensor(shape: [2, 1], values: [1, 0])
        let a = Tensor(shape: [2, 2], values: [1, 2, 3, 4]), b = Tensor(shape: [2], values: [-1, -2])
        XCTAssertEqual(Tensor.select(condition, a, b).doubles, [1, 2, -1, -2])
        let mask = Tensor(shape: [2, 2], values: [0, 1, 1, 0])
        XCTAssertEqual(a.maskedFill(mask, with: -.infinity).doubles, [1, -.infinity, -.infinity, 4])
    }
}
