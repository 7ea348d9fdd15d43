import Tensor
import XCTest

/// Forward values of the layout ops (views and copies). A layout op that moved elements to the
/// wrong place consistently in forward and backward would pass a gradient check; not these.
final class LayoutForwardTests: XCTestCase {
    /// 0, 1, 2, … in `shape`, float64.
    private func counting(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map(Double.init))
    }

    func testReshaped() {
        let x = counting([2, 3])
        XCTAssertEqual(x.reshaped([3, 2]).shape, [3, 2])
        XCTAssertEqual(x.reshaped([3, 2]).doubles, [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(x.reshaped([-1]).shape, [6])
        XCTAssertEqual(x.reshaped([1, -1, 2]).shape, [1, 3, 2])
        // Reshaping a transposed view reads it in its own row-major order.
        XCTAssertEqual(x.transposed().reshaped([6]).doubles, [0, 3, 1, 4, 2, 5])
    }

    func testPermutedAndTransposed() {
        let x = counting([2, 3, 4])
        let permuted = x.permuted([2, 0, 1])
        XCTAssertEqual(permuted.shape, [4, 2, 3])
        XCTAssertFalse(permuted.isContiguous, "a permutation is a view")
        // permuted[k, i, j] = x[i, j, k] = 12i + 4j + k.
        var expected: [Double] = []
        for k in 0..<4 { for i in 0..<2 { for j in 0..<3 { expected.append(Double(12 * i + 4 * j + k)) } } }
        XCTAssertEqual(permuted.doubles, expected)
        XCTAssertEqual(counting([2, 3]).transposed().doubles, [0, 3, 1, 4, 2, 5])
        XCTAssertEqual(x.transposed(0, 2).shape, [4, 3, 2])
        XCTAssertEqual(x.transposed(0, 2).doubles, x.permuted([2, 1, 0]).doubles)
    }

    func testSlicedAndSplit() {
        let x = counting([3, 4])
        XCTAssertEqual(x.sliced(axis: 1, 1..<3).doubles, [1, 2, 5, 6, 9, 10])
        XCTAssertEqual(x.sliced(axis: 0, 2..<3).doubles, [8, 9, 10, 11])
        XCTAssertEqual(x.sliced(axis: -1, 3..<4).shape, [3, 1])
        XCTAssertEqual(x.sliced(axis: 1, 1..<4).sliced(axis: 1, 1..<2).doubles, [2, 6, 10])
        let pieces = x.split(axis: 1, sizes: [1, 3])
        XCTAssertEqual(pieces.map(\.shape), [[3, 1], [3, 3]])
        XCTAssertEqual(pieces[0].doubles, [0, 4, 8])
        XCTAssertEqual(pieces[1].doubles, [1, 2, 3, 5, 6, 7, 9, 10, 11])
    }

    func testViewsShareStorage() {
        // Slices and transposes are views: writing through the base is visible in them.
        let x = counting([2, 3])
        let slice = x.sliced(axis: 1, 1..<3), transpose = x.transposed()
        x.withUnsafeMutableBufferPointer(as: Double.self) { $0[1] = 100 }
        XCTAssertEqual(slice.doubles, [100, 2, 4, 5])
        XCTAssertEqual(transpose.doubles, [0, 3, 100, 4, 2, 5])
        // detached() shares storage too; copy() does not.
        let detached = x.detached(), copy = x.copy()
        x.withUnsafeMutableBufferPointer(as: Double.self) { $0[0] = -1 }
        XCTAssertEqual(detached.doubles[0], -1)
        XCTAssertEqual(copy.doubles[0], 0)
    }

    func testConcatenate() {
        let a = counting([2, 1]), b = counting([2, 2]) + 10
        XCTAssertEqual(Tensor.concatenate([a, b], axis: 1).doubles, [0, 10, 11, 1, 12, 13])
        XCTAssertEqual(Tensor.concatenate([b, a], axis: -1).doubles, [10, 11, 0, 12, 13, 1])
        let rows = Tensor.concatenate([counting([1, 3]), counting([2, 3]) + 10], axis: 0)
        XCTAssertEqual(rows.shape, [3, 3])
        XCTAssertEqual(rows.doubles, [0, 1, 2, 10, 11, 12, 13, 14, 15])
        // A strided view concatenates by value.
        XCTAssertEqual(Tensor.concatenate([counting([2, 2]).transposed(), a], axis: 1).doubles, [0, 2, 0, 1, 3, 1])
    }

    func testExpandedUnsqueezedSqueezed() {
        let x = counting([3, 1])
        let expanded = x.expanded(to: [2, 3, 2])
        XCTAssertEqual(expanded.shape, [2, 3, 2])
        XCTAssertEqual(expanded.doubles, [0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2])
        XCTAssertEqual(counting([2]).unsqueezed(0).shape, [1, 2])
        XCTAssertEqual(counting([2]).unsqueezed(1).shape, [2, 1])
        XCTAssertEqual(counting([2, 3]).unsqueezed(-1).shape, [2, 3, 1])
        XCTAssertEqual(counting([2, 1, 3]).squeezed(1).shape, [2, 3])
        XCTAssertEqual(counting([2, 1, 3]).squeezed(1).doubles, [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(counting([2, 1]).squeezed(-1).shape, [2])
    }

    func testContiguous() {
        let x = counting([2, 3])
        XCTAssertTrue(x.contiguous() === x, "a dense tensor is its own contiguous form")
        let transposed = x.transposed()
        XCTAssertFalse(transposed.isContiguous)
        let dense = transposed.contiguous()
        XCTAssertTrue(dense.isContiguous, "contiguous() must return dense memory (strides \(dense.strides))")
        XCTAssertEqual(dense.shape, [3, 2])
        XCTAssertEqual(dense.doubles, [0, 3, 1, 4, 2, 5])
        // In-place access needs a contiguous tensor; contiguous() must make that possible.
        let sum = dense.withUnsafeMutableBufferPointer(as: Double.self) { $0.reduce(0, +) }
        XCTAssertEqual(sum, 15)
    }

    func testConvertedAndScalars() {
        let x = Tensor(shape: [2], values: [0.1, 1e-3], dtype: .float32)
        XCTAssertEqual(x.dtype, .float32)
        XCTAssertEqual(x.floats, [0.1, 1e-3])
        let double = x.converted(to: .float64)
        XCTAssertEqual(double.dtype, .float64)
        XCTAssertEqual(double.doubles, [Double(Float(0.1)), Double(Float(1e-3))])
        XCTAssertEqual(Tensor.scalar(2.5, dtype: .float64).item, 2.5)
        XCTAssertEqual(Tensor.scalar(2.5).shape, [])
        XCTAssertEqual(Tensor.full([2, 2], value: 3).doubles, [3, 3, 3, 3])
        XCTAssertEqual(Tensor.zeros([3]).doubles, [0, 0, 0])
        XCTAssertEqual(Tensor.ones([2], dtype: .float64).doubles, [1, 1])
        XCTAssertEqual(Tensor(shape: [2], scalars: [1.5, -2]).doubles, [1.5, -2])
        let target = Tensor.zeros([2, 2], dtype: .float64)
        target.assign(Tensor(shape: [2], values: [1, 2]))
        XCTAssertEqual(target.doubles, [1, 2, 1, 2], "assign broadcasts its source")
    }
}
