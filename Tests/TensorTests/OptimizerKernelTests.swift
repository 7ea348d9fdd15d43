import Foundation
import Tensor
import XCTest

/// `Tensor.applyAdamW` and `scaleInPlace` against plain reference loops, on tensors large enough
/// to be split over the threads.
final class OptimizerKernelTests: XCTestCase {
    /// torch.optim.AdamW's step, one element at a time in float64.
    private func referenceAdamW(_ p: inout [Double], _ g: [Double], _ m: inout [Double], _ v: inout [Double], _ step: AdamWStep) {
        for i in p.indices {
            p[i] *= 1 - step.learningRate * step.weightDecay
            m[i] = step.beta1 * m[i] + (1 - step.beta1) * g[i]
            v[i] = step.beta2 * v[i] + (1 - step.beta2) * g[i] * g[i]
            let denominator = (v[i] / step.correction2).squareRoot() + step.epsilon
            p[i] -= step.learningRate / step.correction1 * m[i] / denominator
        }
    }

    func testAdamWMatchesTheReferenceOnEveryThreadCount() {
        let configured = ComputeSettings.current
        defer { configured.apply() }
        let shape = [300, 347]  // 104,100 elements: split over the threads, with a ragged end
        let step = AdamWStep(learningRate: 3e-3, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, epsilon: 1e-8, correction1: 1 - 0.9 * 0.9 * 0.9, correction2: 1 - 0.95 * 0.95 * 0.95)
        let parameter = randomTensor(shape, seed: 1401), gradient = randomTensor(shape, seed: 1402)
        let first = randomTensor(shape, seed: 1403, in: -0.1...0.1), second = randomTensor(shape, seed: 1404, in: 0...0.01)
        var p = parameter.doubles, m = first.doubles, v = second.doubles
        referenceAdamW(&p, gradient.doubles, &m, &v, step)

        for dtype in [DType.float64, .float32] {
            var results: [[[Double]]] = []
            for threads in 1...3 {
                configured.with(threads: threads).apply()
                let (pt, mt, vt) = (parameter.converted(to: dtype), first.converted(to: dtype), second.converted(to: dtype))
                let version = pt.storageVersion
                pt.applyAdamW(gradient: gradient.converted(to: dtype), firstMoment: mt, secondMoment: vt, step)
                XCTAssertGreaterThan(pt.storageVersion, version, "an update must mark the parameter changed (the decode weights are rebuilt from it)")
                results.append([pt.doubles, mt.doubles, vt.doubles])
            }
            let tolerance = dtype == .float64 ? 1e-14 : 1e-6
            for (name, index, expected) in [("parameter", 0, p), ("first moment", 1, m), ("second moment", 2, v)] {
                assertClose(results[0][index], expected, absoluteTolerance: tolerance, relativeTolerance: tolerance, "\(dtype) \(name)")
                for threads in 2...3 {
                    XCTAssertEqual(results[threads - 1][index], results[0][index], "\(dtype) \(name): \(threads) threads against 1")
                }
            }
        }
    }

    func testScaleInPlaceScalesEveryElement() {
        let configured = ComputeSettings.current
        defer { configured.apply() }
        configured.with(threads: 2).apply()
        for dtype in [DType.float64, .float32] {
            let tensor = randomTensor([70_001], seed: 1411).converted(to: dtype)
            let expected = tensor.doubles.map { $0 * 0.25 }
            tensor.scaleInPlace(by: 0.25)
            XCTAssertEqual(tensor.doubles, expected, "\(dtype)")
        }
    }
}
