import CKernels
@testable import Tensor
import XCTest

/// The AVX-512 row kernels of training attention against float64 references: the causal softmax
/// of a score row (zeros past the visible keys, nothing written past the row's width) and the
/// softmax gradient, at widths around the 16-lane vectors.
final class AttentionRowKernelTests: XCTestCase {
    private let widths = [1, 2, 15, 16, 17, 31, 33, 64, 97, 130]

    private func randomFloats(_ count: Int, seed: UInt64, in range: ClosedRange<Double>) -> [Float] {
        randomTensor([count], seed: seed, in: range).doubles.map(Float.init)
    }

    func testSoftmaxRowMatchesFloat64AndZerosTheMaskedTail() throws {
        try XCTSkipUnless(Kernels.useAVX512, "needs AVX-512")
        for (index, width) in widths.enumerated() {
            for visible in Set([1, (width + 1) / 2, width - 1, width]) where visible >= 1 {
                // Two guard floats past the row's width must be left alone.
                var row = randomFloats(width + 2, seed: 900 + UInt64(index), in: -30...30)
                let input = row.map(Double.init)
                ck_attention_softmax_row(Int32(visible), Int32(width), &row)
                let peak = input[0..<visible].max()!
                let exponentials = input[0..<visible].map { Foundation.exp($0 - peak) }
                let total = exponentials.reduce(0, +)
                let expected = exponentials.map { $0 / total }
                assertClose(row[0..<visible].map(Double.init), expected, absoluteTolerance: 1e-7, relativeTolerance: 1e-5, "width \(width), visible \(visible)")
                XCTAssertEqual(Array(row[visible..<width]), [Float](repeating: 0, count: width - visible), "masked tail, width \(width), visible \(visible)")
                XCTAssertEqual(row[width..<(width + 2)].map(Double.init), Array(input[width..<(width + 2)]), "past the width, width \(width), visible \(visible)")
            }
        }
    }

    func testSoftmaxGradientRowMatchesFloat64() throws {
        try XCTSkipUnless(Kernels.useAVX512, "needs AVX-512")
        for (index, width) in widths.enumerated() {
            var probabilities = randomFloats(width, seed: 950 + UInt64(index), in: 0...1)
            let total = probabilities.reduce(0, +)
            probabilities = probabilities.map { $0 / total }
            var gradient = randomFloats(width + 2, seed: 980 + UInt64(index), in: -2...2)
            let p = probabilities.map(Double.init), dp = gradient.map(Double.init)
            ck_attention_softmax_backward_row(Int32(width), probabilities, &gradient)
            let dot = zip(p, dp).map { $0 * $1 }.reduce(0, +)
            let expected = (0..<width).map { p[$0] * (dp[$0] - dot) }
            assertClose(gradient[0..<width].map(Double.init), expected, absoluteTolerance: 1e-7, relativeTolerance: 1e-5, "width \(width)")
            XCTAssertEqual(gradient[width..<(width + 2)].map(Double.init), Array(dp[width..<(width + 2)]), "past the width, width \(width)")
        }
    }
}
