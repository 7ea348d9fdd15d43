import Tensor
import XCTest

/// Gradient checks of sum, mean, max and logSumExp over the first, a middle and the last axis (with
/// and without the reduced dimension kept), over the whole tensor, and of softmax / logSoftmax.
final class ReductionGradientCheckTests: XCTestCase {
    private let reductions: [(name: String, reduction: Reduction)] = [
        ("sum", .sum), ("mean", .mean), ("max", .max), ("logSumExp", .logSumExp),
    ]

    func testReductionsOverEachAxis() {
        // (2, 3, 4): axis 0 has an inner block of 12, axis 1 is a middle axis, axis 2 is rows.
        // Uniform draws make ties in max (a kink) practically impossible; checked below.
        let x = randomTensor([2, 3, 4], seed: 201, in: -2...2)
        XCTAssertEqual(Set(x.doubles).count, x.count, "max needs distinct inputs")
        for (name, reduction) in reductions {
            for axis in [0, 1, 2, -1] {
                for keepingDimension in [false, true] {
                    assertGradientCheckPasses([x], "\(name) axis \(axis) keeping \(keepingDimension)") {
                        $0[0].reduced(reduction, axis: axis, keepingDimension: keepingDimension)
                    }
                }
            }
        }
    }

    func testReductionsOverWholeTensor() {
        let x = randomTensor([3, 4], seed: 202, in: -2...2)
        for (name, reduction) in reductions {
            assertGradientCheckPasses([x], "\(name) of all elements") { $0[0].reduced(reduction) }
            assertGradientCheckPasses([x], "\(name) of all elements keeping dimensions") {
                $0[0].reduced(reduction, keepingDimension: true)
            }
        }
    }

    func testNamedReductionsOfTransposedView() {
        // The named forms, on a strided view (the reduction kernel copies it dense first).
        let x = randomTensor([4, 3], seed: 203, in: -2...2)
        assertGradientCheckPasses([x], "sum") { $0[0].transposed().sum(axis: 1) }
        assertGradientCheckPasses([x], "mean") { $0[0].transposed().mean(axis: 0, keepingDimension: true) }
        assertGradientCheckPasses([x], "max") { $0[0].transposed().max(axis: -1) }
        assertGradientCheckPasses([x], "logSumExp") { $0[0].transposed().logSumExp(axis: 1) }
        assertGradientCheckPasses([x], "mean of all") { $0[0].transposed().mean() }
    }

    func testSoftmaxAndLogSoftmax() {
        let x = randomTensor([2, 3, 5], seed: 204, in: -3...3)
        assertGradientCheckPasses([x], "softmax") { $0[0].softmax() }
        assertGradientCheckPasses([x], "logSoftmax") { $0[0].logSoftmax() }
        assertGradientCheckPasses([x], "softmax of transposed view") { $0[0].transposed().softmax() }
        let vector = randomTensor([6], seed: 205, in: -3...3)
        assertGradientCheckPasses([vector], "softmax of a vector") { $0[0].softmax() }
    }
}
