import Foundation
@testable import Tensor
import XCTest

/// Whole-tensor sums are pairwise: float32 rounding grows with log n, as in NumPy and PyTorch.
final class PairwiseSumTests: XCTestCase {
    /// Every length from 0 to 300 (around the 8-wide unrolling and the 128 block) and a few
    /// large ones, against the float64 sum: the float32 result stays within a few ulps of the
    /// sum's magnitude. A running float32 total of a million values of 0.1 is off by about 1%.
    func testFloat32SumsKeepFloat32Precision() {
        var generator = RandomGenerator(seed: 71)
        for n in Array(1...300) + [1_000, 4_099, 100_003, 1_000_000] {
            let values = (0..<n).map { _ in Float(generator.uniform(0, 1)) }
            let exact = values.reduce(0.0) { $0 + Double($1) }
            let sum = Tensor(shape: [n], values: values.map(Double.init), dtype: .float32).sum().item
            XCTAssertEqual(sum, exact, accuracy: max(exact, 1) * 8 * Double(Float.ulpOfOne), "n = \(n)")
            if n == 1_000_000 {
                let running = values.reduce(Float(0), +)
                XCTAssertGreaterThan(abs(Double(running) - exact), 100 * abs(sum - exact), "the test would not catch a running total")
            }
        }
        let tenths = Tensor(shape: [1_000_000], values: [Double](repeating: 0.1, count: 1_000_000), dtype: .float32)
        XCTAssertEqual(tenths.sum().item, 1_000_000 * Double(Float(0.1)), accuracy: 1e-7 * 100_000)
        XCTAssertEqual(tenths.mean().item, Double(Float(0.1)), accuracy: 1e-7)
    }

    func testSmallSumsAreExactWhereTheOrderDoesNotMatter() {
        for n in 1...40 {
            let values = (0..<n).map { Double($0 % 7) - 3 }
            XCTAssertEqual(Tensor(shape: [n], values: values, dtype: .float32).sum().item, values.reduce(0, +), "n = \(n)")
        }
    }
}
