import CKernels
@testable import Tensor
import XCTest

/// The AVX-512 kernels of a train step's elementwise passes (`TrainingElementwise.c`) give the
/// bits of the Swift loops they replace in float32: AdamW, and RMSNorm forward and backward (both
/// ways of writing dx), at sizes around the 16-lane vectors and the 8-lane sums, on one and two
/// threads. Nothing past the data is written.
final class TrainingElementwiseKernelTests: XCTestCase {
    /// The settings a test found, restored after it.
    private var configured = ComputeSettings(threads: 1)
    /// Row widths around the kernels' vectors (16 lanes) and the Swift sums' chunks (16 floats).
    private let widths = [1, 7, 15, 16, 17, 31, 40, 64, 100, 256]

    override func setUpWithError() throws {
        try XCTSkipUnless(Kernels.useAVX512, "needs AVX-512")
        configured = ComputeSettings.current
    }

    override func tearDown() {
        configured.apply()
        super.tearDown()
    }

    private func floats(_ shape: [Int], seed: UInt64, in range: ClosedRange<Double> = -1...1) -> Tensor {
        randomTensor(shape, seed: seed, in: range).converted(to: .float32)
    }

    private func assertSameBits(_ vectorized: Tensor, _ portable: Tensor, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(vectorized.shape, portable.shape, message, file: file, line: line)
        let a = vectorized.floats.map(\.bitPattern), b = portable.floats.map(\.bitPattern)
        let differing = zip(a, b).filter { $0 != $1 }.count
        XCTAssertEqual(differing, 0, "\(message): \(differing) of \(a.count) elements differ", file: file, line: line)
    }

    func testAdamWGivesTheBitsOfTheSwiftLoop() {
        let steps = [
            AdamWStep(learningRate: 3e-4, weightDecay: 0.1, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, correction1: 0.1, correction2: 0.001),
            AdamWStep(learningRate: 1e-2, weightDecay: 0, beta1: 0.8, beta2: 0.95, epsilon: 1e-6, correction1: 0.488, correction2: 0.142625),
        ]
        for threads in [1, 2] {
            configured.with(threads: threads).apply()
            for (index, count) in [1, 15, 16, 17, 1000, 70_001].enumerated() {
                for (s, step) in steps.enumerated() {
                    let seed = UInt64(100 * index + 10 * s)
                    let gradient = floats([count], seed: seed, in: -2...2)
                    let start = [floats([count], seed: seed + 1), floats([count], seed: seed + 2, in: -0.1...0.1), floats([count], seed: seed + 3, in: 0...0.01)]
                    let vectorized = start.map { $0.copy() }, portable = start.map { $0.copy() }
                    // Three steps, so that the moments the kernel wrote feed the next step.
                    for _ in 0..<3 {
                        Kernels.adamW(Float.self, vectorized[0], gradient, vectorized[1], vectorized[2], step, vectorized: true)
                        Kernels.adamW(Float.self, portable[0], gradient, portable[1], portable[2], step, vectorized: false)
                    }
                    for (name, pair) in zip(["parameter", "first moment", "second moment"], zip(vectorized, portable)) {
                        assertSameBits(pair.0, pair.1, "\(name), \(count) elements, step \(s), \(threads) threads")
                    }
                    XCTAssertNotEqual(vectorized[0].floats, start[0].floats, "the parameter moved")
                }
            }
        }
    }

    func testAdamWWritesNothingPastItsElements() {
        var scalars = ck_adamw_scalars(
            decay_factor: 0.99, beta1: 0.9, one_minus_beta1: 0.1, beta2: 0.999, one_minus_beta2: 1 - Float(0.999),
            step_size: 0.01, inverse_root_correction2: 30, epsilon: 1e-8)
        for count in [1, 15, 17, 33] {
            // Two guard elements past the count in every array.
            var parameter = [Float](repeating: 1, count: count + 2), first = [Float](repeating: 0.5, count: count + 2), second = [Float](repeating: 0.25, count: count + 2)
            let gradient = [Float](repeating: 3, count: count + 2)
            ck_adamw(count, &parameter, gradient, &first, &second, &scalars)
            XCTAssertNotEqual(parameter[count - 1], 1, "last element updated, \(count)")
            XCTAssertEqual(Array(parameter[count...]), [1, 1], "parameter guard, \(count)")
            XCTAssertEqual(Array(first[count...]), [0.5, 0.5], "first moment guard, \(count)")
            XCTAssertEqual(Array(second[count...]), [0.25, 0.25], "second moment guard, \(count)")
        }
    }

    func testRMSNormGivesTheBitsOfTheSwiftLoops() {
        for threads in [1, 2] {
            configured.with(threads: threads).apply()
            for (index, n) in widths.enumerated() {
                let rows = n > 64 ? 150 : 300  // more than two of the backward's 64-row blocks
                let seed = UInt64(1000 + 20 * index)
                let input = floats([rows, n], seed: seed, in: -3...3), weight = floats([n], seed: seed + 1, in: 0.5...1.5)
                let dy = floats([rows, n], seed: seed + 2)
                var outputs: [(Tensor, Tensor)] = []
                for vectorized in [true, false] {
                    let result = Tensor(shape: [rows, n], dtype: .float32), inverse = Tensor(shape: [rows], dtype: .float32)
                    Kernels.rmsNorm(input, weight, epsilon: 1e-5, into: result, inverseRMS: inverse, vectorized: vectorized)
                    outputs.append((result, inverse))
                }
                assertSameBits(outputs[0].0, outputs[1].0, "forward, \(rows) × \(n), \(threads) threads")
                assertSameBits(outputs[0].1, outputs[1].1, "inverse RMS, \(rows) × \(n), \(threads) threads")
                let inverse = outputs[1].1
                for accumulates in [false, true] {
                    let accumulator = floats([rows, n], seed: seed + 3)
                    var gradients: [(Tensor, Tensor)] = []
                    for vectorized in [true, false] {
                        gradients.append(Kernels.rmsNormBackward(
                            input: input, weight: weight, inverseRMS: inverse, gradient: dy,
                            accumulatingInto: accumulates ? accumulator.copy() : nil, vectorized: vectorized))
                    }
                    let how = accumulates ? "added to the accumulator" : "stored"
                    assertSameBits(gradients[0].0, gradients[1].0, "dx \(how), \(rows) × \(n), \(threads) threads")
                    assertSameBits(gradients[0].1, gradients[1].1, "dw \(how), \(rows) × \(n), \(threads) threads")
                }
            }
        }
    }

    func testRMSNormBackwardRowWritesNothingPastTheRow() {
        for n in [1, 17, 40] {
            let x = [Float](repeating: 0.5, count: n + 2), weight = [Float](repeating: 2, count: n + 2), dy = [Float](repeating: 1, count: n + 2)
            var dx = [Float](repeating: 7, count: n + 2), dweight = [Float](repeating: 9, count: n + 2)
            var y = [Float](repeating: 5, count: n + 2)
            let inverse = ck_rmsnorm_row(Int32(n), x, weight, 1e-5, &y)
            XCTAssertEqual(inverse, 1 / (Float(0.25) + 1e-5).squareRoot(), accuracy: 1e-6, "r, \(n)")
            ck_rmsnorm_backward_row(Int32(n), x, weight, dy, inverse, 1, &dx, &dweight)
            XCTAssertEqual(Array(y[n...]), [5, 5], "y guard, \(n)")
            XCTAssertEqual(Array(dx[n...]), [7, 7], "dx guard, \(n)")
            XCTAssertEqual(Array(dweight[n...]), [9, 9], "dw guard, \(n)")
            XCTAssertNotEqual(dweight[n - 1], 9, "dw updated, \(n)")
        }
    }
}
