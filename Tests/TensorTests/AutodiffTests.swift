import Foundation
import Tensor
import XCTest

/// The behaviour of the tape: what is recorded, how gradients accumulate, and what stops them.
final class AutodiffTests: XCTestCase {
    private func leaf(_ values: [Double]) -> Tensor {
        let tensor = Tensor(shape: [values.count], values: values)
        tensor.requiresGradient = true
        return tensor
    }

    // MARK: No-grad mode

    /// One result of every kind of op on `x` (requires a gradient), `matrix` (2-D, requires a
    /// gradient) and `other` (does not).
    private func resultsOfEveryOpKind(_ x: Tensor, _ matrix: Tensor, _ other: Tensor) -> [(String, Tensor)] {
        let rotary = RotaryEmbedding(headDimension: 2, maxPositions: 4)
        let heads = matrix.reshaped([1, 2, 1, 2])
        return [
            ("binary", x + other),
            ("scalar form", x * 2),
            ("unary", x.exp()),
            ("reduction", x.sum()),
            ("max", x.max()),
            ("matmul", matrix.matmul(matrix)),
            ("linear", matrix.linear(matrix)),
            ("reshape", x.reshaped([1, 3])),
            ("permute", matrix.transposed()),
            ("slice", x.sliced(axis: 0, 0..<2)),
            ("concatenate", Tensor.concatenate([x, other], axis: 0)),
            ("expand", x.expanded(to: [2, 3])),
            ("select", Tensor.select(other, x, other)),
            ("maskedFill", x.maskedFill(other, with: 0)),
            ("softmax", x.softmax()),
            ("logSoftmax", x.logSoftmax()),
            ("gather", matrix.gathered([0, 1])),
            ("embedding", matrix.embedding([1, 0, 1], shape: [3])),
            ("rmsNorm", matrix.rmsNormalized(weight: Tensor(shape: [2], values: [1, 1]), epsilon: 1e-6)),
            ("layerNorm", matrix.layerNormalized(weight: Tensor(shape: [2], values: [1, 1]), bias: Tensor(shape: [2], values: [0, 0]), epsilon: 1e-6)),
            ("rotary", heads.rotaryEmbedded(rotary, positions: [0, 1])),
            ("attention", Tensor.scaledDotProductAttention(query: heads, key: heads, value: heads)),
            ("crossEntropy", Tensor.crossEntropy(logits: matrix, targets: [0, 1])),
        ]
    }

    func testNoGradientModeRecordsNothing() {
        let x = leaf([0.5, -1, 2])
        let matrix = Tensor(shape: [2, 2], values: [1, 2, 3, 4])
        matrix.requiresGradient = true
        let other = Tensor(shape: [3], values: [1, 0, 1])

        XCTAssertTrue(GradientMode.isEnabled)
        withoutGradients {
            XCTAssertFalse(GradientMode.isEnabled)
            for (name, result) in resultsOfEveryOpKind(x, matrix, other) {
                XCTAssertFalse(result.hasOperation, "\(name) recorded an operation in no-grad mode")
                XCTAssertFalse(result.requiresGradient, "\(name) requires a gradient in no-grad mode")
            }
        }
        XCTAssertTrue(GradientMode.isEnabled, "recording resumes after withoutGradients")
        for (name, result) in resultsOfEveryOpKind(x, matrix, other) {
            XCTAssertTrue(result.hasOperation, "\(name) did not record outside no-grad mode")
            XCTAssertTrue(result.requiresGradient, "\(name) does not require a gradient outside no-grad mode")
        }
    }

    func testOpsOnConstantsRecordNothing() {
        let constant = Tensor(shape: [3], values: [1, 2, 3])
        let result = (constant * constant).exp().sum()
        XCTAssertFalse(result.hasOperation)
        XCTAssertFalse(result.requiresGradient)
    }

    func testNoGradientModeNestsAndReturnsValues() throws {
        let x = leaf([1, 2])
        let doubled: Tensor = withoutGradients {
            withoutGradients { _ = x * 3 }
            XCTAssertFalse(GradientMode.isEnabled, "an inner block must not re-enable recording")
            return x * 2
        }
        XCTAssertEqual(doubled.doubles, [2, 4])
        XCTAssertFalse(doubled.hasOperation)

        struct Failure: Error {}
        XCTAssertThrowsError(try withoutGradients { throw Failure() })
        XCTAssertTrue(GradientMode.isEnabled, "a throwing body still restores recording")
    }

    func testNoGradientModeIsLocalToItsThread() {
        // A rollout in no-grad mode on one thread must not switch recording off on another.
        final class Observation: @unchecked Sendable { var recording = false }
        let observation = Observation()
        let finished = DispatchSemaphore(value: 0)
        withoutGradients {
            let thread = Thread {
                observation.recording = GradientMode.isEnabled
                finished.signal()
            }
            thread.start()
            finished.wait()
        }
        XCTAssertTrue(observation.recording)
    }

    // MARK: Backward

    func testTensorUsedTwiceGetsBothContributions() {
        // d/dx Σ x·x = 2x; d/dx Σ (x·x + x) = 2x + 1.
        let x = leaf([1, -2, 3])
        (x * x).sum().backward()
        XCTAssertEqual(x.gradient?.doubles, [2, -4, 6])
        x.clearGradient()
        (x * x + x).sum().backward()
        XCTAssertEqual(x.gradient?.doubles, [3, -3, 7])
    }

    func testDiamondGraph() {
        // y = Σ (a·b) with a = 2x and b = a + x: a feeds y both directly and through b.
        // y = Σ 2x·3x = Σ 6x², dy/dx = 12x.
        let x = leaf([1, 2])
        let a = x * 2
        let b = a + x
        (a * b).sum().backward()
        XCTAssertEqual(x.gradient?.doubles, [12, 24])
    }

    func testGradientAccumulatesAcrossBackwardCalls() {
        let x = leaf([1, -2, 3])
        let loss = (x * x).sum()
        loss.backward()
        XCTAssertEqual(x.gradient?.doubles, [2, -4, 6])
        // The same graph again, and then a fresh graph: both add into the stored gradient.
        loss.backward()
        XCTAssertEqual(x.gradient?.doubles, [4, -8, 12])
        (x * 3).sum().backward()
        XCTAssertEqual(x.gradient?.doubles, [7, -5, 15])
    }

    func testClearGradient() {
        let x = leaf([1, 2])
        XCTAssertNil(x.gradient, "no gradient before any backward pass")
        (x * 5).sum().backward()
        XCTAssertEqual(x.gradient?.doubles, [5, 5])
        x.clearGradient()
        XCTAssertNil(x.gradient)
        (x * x).sum().backward()
        XCTAssertEqual(x.gradient?.doubles, [2, 4], "a cleared gradient starts from zero")
    }

    func testBackwardWithExplicitSeed() {
        let x = leaf([1, 2, 3])
        (x * x).backward(gradient: Tensor(shape: [3], values: [1, 0, -1]))
        XCTAssertEqual(x.gradient?.doubles, [2, 0, -6])
    }

    func testBackwardReachesOnlyLeavesThatRequireGradients() {
        let x = leaf([1, 2])
        let constant = Tensor(shape: [2], values: [3, 4])
        let intermediate = x * constant
        (intermediate * intermediate).sum().backward()
        XCTAssertEqual(x.gradient?.doubles, [18, 64])
        XCTAssertNil(constant.gradient)
        XCTAssertNil(intermediate.gradient, "only leaves store a gradient")
    }

    func testDetachedStopsGradients() {
        let x = leaf([1, -2, 3])
        let stopped = x.detached()
        XCTAssertFalse(stopped.requiresGradient)
        XCTAssertFalse(stopped.hasOperation)
        XCTAssertEqual(stopped.doubles, x.doubles)
        // Σ x·stop(x): the gradient is x, not 2x.
        (x * stopped).sum().backward()
        XCTAssertEqual(x.gradient?.doubles, [1, -2, 3])
        // Detaching an intermediate cuts the graph below it.
        let y = (x * 2).detached() * 3
        XCTAssertFalse(y.requiresGradient)
    }

    func testGradientsOfDoesNotTouchAccumulatedGradients() {
        let x = leaf([1, 2]), w = leaf([3, -1])
        let unused = leaf([7])
        let loss = (x * w).sum()
        let result = gradients(of: loss, withRespectTo: [x, w, unused])
        XCTAssertEqual(result[0].doubles, [3, -1])
        XCTAssertEqual(result[1].doubles, [1, 2])
        XCTAssertEqual(result[2].doubles, [0], "an input the output does not depend on gets zeros")
        XCTAssertNil(x.gradient)
        XCTAssertNil(w.gradient)

        // An existing accumulated gradient is left exactly as it was.
        loss.backward()
        XCTAssertEqual(x.gradient?.doubles, [3, -1])
        _ = gradients(of: loss, withRespectTo: [x])
        XCTAssertEqual(x.gradient?.doubles, [3, -1])
    }

    func testGradientsWithRespectToIntermediate() {
        // y = Σ h² with h = 3x: dy/dh = 2h, dy/dx = 18x.
        let x = leaf([1, 2])
        let hidden = x * 3
        let loss = (hidden * hidden).sum()
        XCTAssertEqual(gradients(of: loss, withRespectTo: [hidden])[0].doubles, [6, 12])
        let both = gradients(of: loss, withRespectTo: [x, hidden])
        XCTAssertEqual(both[0].doubles, [18, 36])
        XCTAssertEqual(both[1].doubles, [6, 12])
    }

    func testGradientsOfWithSeed() {
        let x = leaf([1, 2])
        let result = gradients(of: x * x, withRespectTo: [x], seed: Tensor(shape: [2], values: [10, 1]))
        XCTAssertEqual(result[0].doubles, [20, 4])
    }

    func testGradientsOfAConstantAreZero() {
        let x = leaf([1, 2])
        let constant = withoutGradients { (x * x).sum() }
        XCTAssertEqual(gradients(of: constant, withRespectTo: [x])[0].doubles, [0, 0])
    }

    func testFloat32GradientsAgreeWithFloat64() {
        // The float32 kernels compute the same backward as the checked float64 ones.
        func loss(_ x: Tensor, _ w: Tensor) -> Tensor {
            (x.linear(w).tanh().softmax() * x.linear(w)).sum()
        }
        let x64 = randomTensor([3, 4], seed: 701), w64 = randomTensor([5, 4], seed: 702)
        let x32 = x64.converted(to: .float32), w32 = w64.converted(to: .float32)
        for tensor in [x64, w64, x32, w32] { tensor.requiresGradient = true }
        let reference = gradients(of: loss(x64, w64), withRespectTo: [x64, w64])
        let single = gradients(of: loss(x32, w32), withRespectTo: [x32, w32])
        XCTAssertEqual(single[0].dtype, .float32)
        for index in 0..<2 {
            assertClose(single[index].doubles, reference[index].doubles, absoluteTolerance: 1e-5, relativeTolerance: 1e-4)
        }
    }
}
