import Foundation
@testable import Tensor
import XCTest

/// How the backward pass sums the gradients of a tensor used more than once: in place, into a
/// sum that nothing else holds, and with a projection's GEMM adding straight into it; a new
/// tensor wherever another input or view shares the gradient.
final class GradientSumTests: XCTestCase {
    func testExclusivelyHeldMeansOneReferenceToTheTensorAndItsStorage() {
        var fresh = randomTensor([3, 4], seed: 1301)
        XCTAssertTrue(Tensor.isExclusivelyHeld(&fresh))

        var shared = randomTensor([3, 4], seed: 1302)
        let sameTensor = shared
        XCTAssertFalse(Tensor.isExclusivelyHeld(&shared), "another reference to the tensor")
        withExtendedLifetime(sameTensor) {}

        var viewed = randomTensor([3, 4], seed: 1303)
        let view = viewed.reshaped([12])
        XCTAssertFalse(Tensor.isExclusivelyHeld(&viewed), "a view shares the storage")
        withExtendedLifetime(view) {}

        var transposed = randomTensor([3, 4], seed: 1304).transposed()
        XCTAssertFalse(Tensor.isExclusivelyHeld(&transposed), "a transposed view is not dense in order")
    }

    /// x feeds two projections A and B; S = A + B hands one gradient to both A and B, and A also
    /// feeds a third projection T. Whichever of S and T the walk reaches first, A's sum must not
    /// be written in place while B still holds the same gradient, and x's two projection
    /// gradients must add up. Checked against the chain rule written out, in both orders.
    func testSharedGradientsSumCorrectlyInEitherOrder() {
        let x = randomTensor([5, 4], seed: 1311)
        let wa = randomTensor([3, 4], seed: 1312), wb = randomTensor([3, 4], seed: 1313), wc = randomTensor([6, 3], seed: 1314)
        let c1 = randomTensor([5, 3], seed: 1315), c2 = randomTensor([5, 6], seed: 1316)
        for input in [x, wa, wb, wc] { input.requiresGradient = true }

        // dS = c1; dA = c1 + c2·Wc; dB = c1; dx = dA·Wa + dB·Wb; dWa = dAᵀx; dWb = dBᵀx; dWc = c2ᵀA.
        let (expectedX, expectedWa, expectedWb, expectedWc) = withoutGradients {
            let a = x.linear(wa)
            let dA = c1 + c2.matmul(wc)
            return (
                dA.matmul(wa) + c1.matmul(wb), dA.transposed().matmul(x),
                c1.transposed().matmul(x), c2.transposed().matmul(a))
        }
        for sFirst in [true, false] {
            let a = x.linear(wa), b = x.linear(wb)
            let s = a + b, t = a.linear(wc)
            let loss = sFirst ? (s * c1).sum() + (t * c2).sum() : (t * c2).sum() + (s * c1).sum()
            for input in [x, wa, wb, wc] { input.clearGradient() }
            loss.backward()
            let label = sFirst ? "S before T" : "T before S"
            assertClose(x.gradient!.doubles, expectedX.doubles, absoluteTolerance: 1e-12, "dx, \(label)")
            assertClose(wa.gradient!.doubles, expectedWa.doubles, absoluteTolerance: 1e-12, "dWa, \(label)")
            assertClose(wb.gradient!.doubles, expectedWb.doubles, absoluteTolerance: 1e-12, "dWb, \(label)")
            assertClose(wc.gradient!.doubles, expectedWc.doubles, absoluteTolerance: 1e-12, "dWc, \(label)")
        }
    }

    /// The same graph through `gradients(of:withRespectTo:)`, against central differences.
    func testSharedGradientsPassTheGradientCheck() {
        let x = randomTensor([5, 4], seed: 1321)
        let wa = randomTensor([3, 4], seed: 1322), wb = randomTensor([3, 4], seed: 1323), wc = randomTensor([6, 3], seed: 1324)
        let report = GradientChecker().check([x, wa, wb, wc]) { inputs in
            let a = inputs[0].linear(inputs[1]), b = inputs[0].linear(inputs[2])
            // x also reaches the loss directly and through a residual-style sum.
            return (a + b).tanh().sum() + a.linear(inputs[3]).exp().sum() + (inputs[0] * inputs[0]).sum()
        }
        XCTAssertTrue(report.passed, report.description)
    }

    /// A decoder block's residual stream: x feeds RMSNorm and is the residual of the projection
    /// after it. The walk reaches the projection first, so RMSNorm's backward adds x's gradient
    /// into the sum the projection started (the output's gradient itself). In float32 that gives
    /// the bits of the two gradients added afterwards; in float64 it passes the gradient check.
    func testRMSNormAddsIntoTheResidualStreamsGradient() {
        let x = float32Leaf([64, 48], seed: 1341, in: -2...2), norm = float32Leaf([48], seed: 1342, in: -2...2), weight = float32Leaf([48, 48], seed: 1343, in: -2...2)
        let cotangent = randomTensor([64, 48], seed: 1344).converted(to: .float32)
        let block = x.rmsNormalized(weight: norm, epsilon: 1e-5).linear(weight, adding: x)
        let summed = gradients(of: (block * cotangent).sum(), withRespectTo: [x])[0]
        let throughNorm = gradients(of: (x.rmsNormalized(weight: norm, epsilon: 1e-5).linear(weight) * cotangent).sum(), withRespectTo: [x])[0]
        XCTAssertEqual(summed.floats, withoutGradients { cotangent + throughNorm }.floats)

        let report = GradientChecker().check([randomTensor([3, 5], seed: 1345), randomTensor([5], seed: 1346, in: 0.5...1.5), randomTensor([5, 5], seed: 1347)]) { inputs in
            inputs[0].rmsNormalized(weight: inputs[1], epsilon: 1e-5).linear(inputs[2], adding: inputs[0]).tanh().sum()
        }
        XCTAssertTrue(report.passed, report.description)
    }

    /// Two leaves given one gradient tensor (by an addition) each keep their own: adding to one
    /// of them later must leave the other as it was.
    func testLeavesSharingOneGradientGetSeparateTensors() {
        let p = randomTensor([4], seed: 1331), q = randomTensor([4], seed: 1332)
        p.requiresGradient = true
        q.requiresGradient = true
        (p + q).sum().backward()
        XCTAssertEqual(p.gradient?.doubles, [1, 1, 1, 1])
        XCTAssertEqual(q.gradient?.doubles, [1, 1, 1, 1])
        (p * 2).sum().backward()
        XCTAssertEqual(p.gradient?.doubles, [3, 3, 3, 3])
        XCTAssertEqual(q.gradient?.doubles, [1, 1, 1, 1], "q's gradient must not share p's storage")
    }
}
