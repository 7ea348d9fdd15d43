import Tensor
import XCTest

/// Gradient checks of `matmul` and `linear` in every layout BLAS is handed: plain, transposed
/// views (transpose flags), batched, batch-broadcast, and the single-GEMM path for a batch times a
/// matrix. Shapes are non-square so that a swapped dimension cannot pass by accident.
final class MatmulGradientCheckTests: XCTestCase {
    func testMatmulTwoDimensional() {
        // (M=3, K=4) × (K=4, N=2)
        let a = randomTensor([3, 4], seed: 1), b = randomTensor([4, 2], seed: 2)
        assertGradientCheckPasses([a, b], "matmul 2-D") { Tensor.matmul($0[0], $0[1]) }
    }

    func testMatmulWithTransposedLeftOperand() {
        // Stored (K=4, M=3); the view (3, 4) reaches BLAS with a transpose flag.
        let storedA = randomTensor([4, 3], seed: 3), b = randomTensor([4, 5], seed: 4)
        assertGradientCheckPasses([storedA, b], "matmul Aᵀ·B") { Tensor.matmul($0[0].transposed(), $0[1]) }
    }

    func testMatmulWithTransposedRightOperand() {
        let a = randomTensor([3, 4], seed: 5), storedB = randomTensor([5, 4], seed: 6)
        assertGradientCheckPasses([a, storedB], "matmul A·Bᵀ") { Tensor.matmul($0[0], $0[1].transposed()) }
    }

    func testMatmulWithBothOperandsTransposed() {
        let storedA = randomTensor([4, 3], seed: 7), storedB = randomTensor([5, 4], seed: 8)
        assertGradientCheckPasses([storedA, storedB], "matmul Aᵀ·Bᵀ") { $0[0].transposed().matmul($0[1].transposed()) }
    }

    func testMatmulOfRowAndColumnVectors() {
        // (1, K) × (K, 1) and (K, 1) × (1, N): degenerate leading dimensions.
        let row = randomTensor([1, 5], seed: 9), column = randomTensor([5, 1], seed: 10)
        assertGradientCheckPasses([row, column], "matmul (1,5)×(5,1)") { Tensor.matmul($0[0], $0[1]) }
        let left = randomTensor([4, 1], seed: 11), right = randomTensor([1, 3], seed: 12)
        assertGradientCheckPasses([left, right], "matmul (4,1)×(1,3)") { Tensor.matmul($0[0], $0[1]) }
    }

    func testMatmulOfSlicedView() {
        // A column slice has a row stride larger than its width: BLAS gets a leading dimension.
        let wide = randomTensor([3, 7], seed: 13), b = randomTensor([4, 2], seed: 14)
        assertGradientCheckPasses([wide, b], "matmul of a column slice") {
            Tensor.matmul($0[0].sliced(axis: 1, 2..<6), $0[1])
        }
    }

    func testMatmulBatchedThreeDimensional() {
        // (B=2, M=3, K=4) × (B=2, K=4, N=5)
        let a = randomTensor([2, 3, 4], seed: 15), b = randomTensor([2, 4, 5], seed: 16)
        assertGradientCheckPasses([a, b], "batched 3-D matmul") { Tensor.matmul($0[0], $0[1]) }
    }

    func testMatmulBatchedThreeDimensionalWithTransposedOperands() {
        let storedA = randomTensor([2, 4, 3], seed: 17), storedB = randomTensor([2, 5, 4], seed: 18)
        assertGradientCheckPasses([storedA, storedB], "batched 3-D matmul Aᵀ·Bᵀ") {
            Tensor.matmul($0[0].transposed(), $0[1].transposed())
        }
    }

    func testMatmulBatchedFourDimensionalWithPermutedViews() {
        // Attention's layout: q (B, T, H, D) → (B, H, T, D) and k → (B, H, D, T) are strided views.
        let query = randomTensor([2, 3, 2, 4], seed: 19), key = randomTensor([2, 5, 2, 4], seed: 20)
        assertGradientCheckPasses([query, key], "4-D matmul of permuted views") {
            Tensor.matmul($0[0].permuted([0, 2, 1, 3]), $0[1].permuted([0, 2, 3, 1]))
        }
    }

    func testMatmulFourDimensionalWithBroadcastBatch() {
        // (2, 1, M, K) × (3, K, N) → (2, 3, M, N): both operands broadcast along a batch axis.
        let a = randomTensor([2, 1, 3, 4], seed: 21), b = randomTensor([3, 4, 2], seed: 22)
        assertGradientCheckPasses([a, b], "4-D × 3-D broadcast batch") { Tensor.matmul($0[0], $0[1]) }
    }

    func testMatmulThreeDimensionalTimesMatrix() {
        // The single-GEMM path: a contiguous batch flattened to (B·M, K).
        let a = randomTensor([2, 3, 4], seed: 23), b = randomTensor([4, 5], seed: 24)
        assertGradientCheckPasses([a, b], "3-D × 2-D") { Tensor.matmul($0[0], $0[1]) }
    }

    func testMatmulNonContiguousBatchTimesMatrix() {
        // A non-contiguous batch cannot take the single-GEMM path; the weight is also transposed.
        let storedA = randomTensor([2, 4, 3], seed: 25), storedB = randomTensor([5, 4], seed: 26)
        assertGradientCheckPasses([storedA, storedB], "transposed 3-D × transposed 2-D") {
            Tensor.matmul($0[0].transposed(), $0[1].transposed())
        }
    }

    func testMatmulMatrixTimesThreeDimensional() {
        // (M=3, K=4) × (B=2, K=4, N=5): the left gradient sums over the batch.
        let a = randomTensor([3, 4], seed: 27), b = randomTensor([2, 4, 5], seed: 28)
        assertGradientCheckPasses([a, b], "2-D × 3-D") { Tensor.matmul($0[0], $0[1]) }
    }

    func testLinear() {
        // x (B=2, T=3, in=4) · weight[out=5, in=4]ᵀ, and a 2-D input.
        let input = randomTensor([2, 3, 4], seed: 29), weight = randomTensor([5, 4], seed: 30)
        assertGradientCheckPasses([input, weight], "linear 3-D input") { $0[0].linear($0[1]) }
        let rows = randomTensor([3, 4], seed: 31)
        assertGradientCheckPasses([rows, weight], "linear 2-D input") { $0[0].linear($0[1]) }
    }

    func testLinearAddingResidual() {
        // residual (B=2, T=3, out=5) + x (B=2, T=3, in=4) · weight[5, 4]ᵀ.
        let input = randomTensor([2, 3, 4], seed: 32), weight = randomTensor([5, 4], seed: 33)
        let residual = randomTensor([2, 3, 5], seed: 34)
        assertGradientCheckPasses([input, weight, residual], "linear adding a residual") { $0[0].linear($0[1], adding: $0[2]) }
        // A residual that is a permuted view, copied through its strides.
        let permuted = randomTensor([3, 2, 5], seed: 35)
        assertGradientCheckPasses([input, weight, permuted], "linear adding a permuted residual") {
            $0[0].linear($0[1], adding: $0[2].permuted([1, 0, 2]))
        }
        // The input as its own residual (a square weight): both gradients reach the one tensor.
        let square = randomTensor([4, 4], seed: 36)
        assertGradientCheckPasses([input, square], "linear adding its own input") { $0[0].linear($0[1], adding: $0[0]) }
    }

    /// In float32 the fused op gives the bits of `residual + linear(weight)`, forward and
    /// backward: each output element is the residual plus the same dot product, rounded once.
    /// Checked on one and two threads: where the GEMM is split over the threads by rows
    /// (256 × 96 × 64), where it is cut along k (16 × 32 × 2048), whose second half is added into C
    /// last, and where the blocked float32 kernel reads the residual in place (3000 × 100 × 80, in
    /// its parallel form on two threads).
    func testLinearAddingResidualMatchesTheComposedSum() {
        let configured = ComputeSettings.current
        defer { configured.apply() }
        for threads in [1, 2] {
            configured.with(threads: threads).apply()
            for (rows, outFeatures, inFeatures) in [(256, 96, 64), (16, 32, 2048), (3000, 100, 80)] {
                let x = float32Leaf([rows, inFeatures], seed: 37), weight = float32Leaf([outFeatures, inFeatures], seed: 38)
                let residual = float32Leaf([rows, outFeatures], seed: 39)
                let cotangent = randomTensor([rows, outFeatures], seed: 40).converted(to: .float32)
                let fused = x.linear(weight, adding: residual), composed = residual + x.linear(weight)
                XCTAssertEqual(fused.floats, composed.floats, "\(rows) × \(outFeatures) × \(inFeatures), \(threads) threads")
                let fusedGradients = gradients(of: (fused * cotangent).sum(), withRespectTo: [x, weight, residual])
                let composedGradients = gradients(of: (composed * cotangent).sum(), withRespectTo: [x, weight, residual])
                for (index, name) in ["x", "weight", "residual"].enumerated() {
                    XCTAssertEqual(fusedGradients[index].floats, composedGradients[index].floats, "gradient of \(name), \(rows) × \(outFeatures) × \(inFeatures)")
                }
            }
        }
    }
}
