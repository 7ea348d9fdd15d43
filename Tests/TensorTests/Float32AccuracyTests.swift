import Foundation
import Tensor
import XCTest

/// The float32 kernels use their own vectorising exponential (Cephes' expf) in sigmoid, SiLU,
/// SwiGLU and the softmax family; float64 keeps libm. These tests hold the float32 results to the
/// float64 ones within a few float32 ulps, across both tails and the flush-to-zero range.
final class Float32AccuracyTests: XCTestCase {
    /// Every 1/64 from −120 to 120, plus the edges of float32's exponent range: 15,368 inputs,
    /// rows of 8 for the softmax tests.
    private let inputs: [Double] = (-7680...7680).map { Double($0) / 64 } + [-87.5, -87.3, -87, 87, 88, 88.3, -1e4]

    private func assertFloat32Matches(
        _ name: String, relativeTolerance: Double, absoluteTolerance: Double = 0,
        file: StaticString = #filePath, line: UInt = #line, _ function: (Tensor) -> Tensor
    ) {
        // The reference takes the float32-rounded inputs, so only the kernels' error is measured.
        let input = Tensor(shape: [inputs.count], values: inputs).converted(to: .float32)
        let reference = function(input.converted(to: .float64)).doubles
        let single = function(input)
        XCTAssertEqual(single.dtype, .float32, file: file, line: line)
        var worst = (index: 0, error: 0.0)
        for (index, (actual, expected)) in zip(single.doubles, reference).enumerated() {
            let error = Swift.abs(actual - expected) / (absoluteTolerance + relativeTolerance * Swift.abs(expected))
            if !(error <= worst.error) { worst = (index, error) }
        }
        XCTAssertLessThanOrEqual(
            worst.error, 1, "\(name): worst at x = \(inputs[worst.index]) (\(single.doubles[worst.index]) against \(reference[worst.index]))",
            file: file, line: line)
    }

    func testSigmoidAndSiLU() {
        // e^x flushes to 0 below x ≈ −87.3 (where it leaves float32's normal range), so σ(x) and
        // x·σ(x)·u there are 0 instead of at most ~1e-38·x²: the absolute tolerances cover that.
        assertFloat32Matches("sigmoid", relativeTolerance: 5e-7, absoluteTolerance: 1.2e-38) { $0.sigmoid() }
        assertFloat32Matches("silu", relativeTolerance: 5e-7, absoluteTolerance: 1e-33) { $0.silu() }
        assertFloat32Matches("swiGLU", relativeTolerance: 5e-7, absoluteTolerance: 1e-33) { Tensor.swiGLU(gate: $0, up: $0 * 0.5) }
    }

    /// SwiGLU's backward in float32 (the AVX-512 kernel where the CPU has it) against float64:
    /// dgate = dy·u·s·(1 + g(1 − s)) and dup = dy·g·s over the same inputs, u varying in sign.
    func testSwiGLUBackward() {
        let up = Tensor(shape: [inputs.count], values: inputs.indices.map { 0.5 + Foundation.cos(Double($0)) }).converted(to: .float32)
        let upstream = Tensor(shape: [inputs.count], values: inputs.indices.map { 1 - 0.3 * Foundation.sin(Double($0)) }).converted(to: .float32)
        let gate = Tensor(shape: [inputs.count], values: inputs).converted(to: .float32)
        func gradientPair(_ dtype: DType) -> [[Double]] {
            let (g, u) = (gate.converted(to: dtype), up.converted(to: dtype))
            g.requiresGradient = true
            u.requiresGradient = true
            let output = Tensor.swiGLU(gate: g, up: u)
            return gradients(of: output, withRespectTo: [g, u], seed: upstream.converted(to: dtype)).map(\.doubles)
        }
        let (single, double) = (gradientPair(.float32), gradientPair(.float64))
        // dgate's factor 1 + g(1 − s) cancels near g ≈ −1.28, so its error is relative to the
        // size of the terms, |dy·u·s|·(1 + |g|(1 − s)), not to the result.
        let (g, u, dy) = (gate.doubles, up.doubles, upstream.doubles)
        let termScale = g.indices.map { index -> Double in
            let s = 1 / (1 + Foundation.exp(-g[index]))
            return Swift.abs(dy[index] * u[index] * s) * (1 + Swift.abs(g[index]) * (1 - s))
        }
        for (name, actual, expected, scale) in [("dgate", single[0], double[0], termScale), ("dup", single[1], double[1], double[1].map(Swift.abs))] {
            var worst = (index: 0, error: 0.0)
            for (index, (a, e)) in zip(actual, expected).enumerated() {
                let error = Swift.abs(a - e) / (1e-30 + 2e-6 * scale[index])
                if !(error <= worst.error) { worst = (index, error) }
            }
            XCTAssertLessThanOrEqual(worst.error, 1, "\(name): worst at x = \(inputs[worst.index]) (\(actual[worst.index]) against \(expected[worst.index]))")
        }
    }

    func testSoftmaxFamily() {
        // Rows of 8 inputs each: softmax spans the whole float32 exponent range within a row.
        func rows(_ tensor: Tensor) -> Tensor { tensor.reshaped([-1, 8]) }
        assertFloat32Matches("softmax", relativeTolerance: 2e-6, absoluteTolerance: 1.2e-38) { rows($0).softmax().reshaped([-1]) }
        assertFloat32Matches("logSoftmax", relativeTolerance: 2e-6, absoluteTolerance: 1e-5) { rows($0).logSoftmax().reshaped([-1]) }
    }

    func testSoftmaxOfNegativeInfinityIsZero() {
        // A masked entry (−∞) gets probability exactly 0, and log-probability −∞.
        let logits = Tensor(shape: [1, 3], scalars: [-.infinity, 0, 1])
        XCTAssertEqual(logits.softmax().floats[0], 0)
        XCTAssertEqual(logits.logSoftmax().floats[0], -.infinity)
    }
}
