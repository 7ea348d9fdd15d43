import Tensor
import XCTest

/// `matmul` through OpenBLAS against a plain triple loop (the reference version every optimised
/// kernel keeps), and the runtime settings.
final class BLASTests: XCTestCase {
    /// Row-major `(m, k) × (k, n)` in float64 over the given values, with for each element the
    /// sum Σₖ |aᵢₖ·bₖⱼ| that bounds its rounding error.
    private func naiveProduct(_ a: [Double], _ b: [Double], m: Int, k: Int, n: Int) -> (product: [Double], magnitude: [Double]) {
        var product = [Double](repeating: 0, count: m * n), magnitude = product
        for i in 0..<m {
            for j in 0..<n {
                for p in 0..<k {
                    product[i * n + j] += a[i * k + p] * b[p * n + j]
                    magnitude[i * n + j] += Swift.abs(a[i * k + p] * b[p * n + j])
                }
            }
        }
        return (product, magnitude)
    }

    /// Asserts that each element of a float32 product is within 1e-5 of the exact product,
    /// relative to Σₖ |aᵢₖ·bₖⱼ| (float32 with k = 53 accumulates at most ~53·6e-8 ≈ 3e-6 of it).
    private func assertMatchesNaive(_ result: Tensor, _ a: Tensor, _ b: Tensor, _ name: String, file: StaticString = #filePath, line: UInt = #line) {
        let m = a.shape[a.rank - 2], k = a.shape[a.rank - 1], n = b.shape[b.rank - 1]
        XCTAssertEqual(result.dtype, .float32, file: file, line: line)
        let batches = result.count / (m * n)
        let aValues = a.doubles, bValues = b.doubles, values = result.doubles
        let aBatches = a.count / (m * k), bBatches = b.count / (k * n)
        var failures = 0
        for batch in 0..<batches {
            let aStart = (aBatches == 1 ? 0 : batch) * m * k, bStart = (bBatches == 1 ? 0 : batch) * k * n
            let (expected, magnitude) = naiveProduct(
                Array(aValues[aStart..<(aStart + m * k)]), Array(bValues[bStart..<(bStart + k * n)]), m: m, k: k, n: n)
            for index in 0..<(m * n) where !(Swift.abs(values[batch * m * n + index] - expected[index]) <= 1e-5 * magnitude[index]) {
                failures += 1
            }
        }
        XCTAssertEqual(failures, 0, "\(name): \(failures) elements differ from the triple loop by more than 1e-5 relative", file: file, line: line)
    }

    private func randomFloat32(_ shape: [Int], seed: UInt64) -> Tensor {
        var generator = RandomGenerator(seed: seed)
        return Tensor.uniform(shape, low: -1, high: 1, dtype: .float32, generator: &generator)
    }

    func testFloat32MatmulMatchesTripleLoop() {
        // (37, 53) × (53, 29): sizes that are not multiples of any SIMD width or BLAS block.
        let a = randomFloat32([37, 53], seed: 801), b = randomFloat32([53, 29], seed: 802)
        assertMatchesNaive(Tensor.matmul(a, b), a, b, "A·B")
    }

    func testFloat32MatmulOfTransposedViewsMatchesTripleLoop() {
        // A stored (53, 37) and B stored (29, 53), used through transposed views (BLAS flags).
        let storedA = randomFloat32([53, 37], seed: 803), storedB = randomFloat32([29, 53], seed: 804)
        let a = storedA.transposed(), b = storedB.transposed()
        XCTAssertFalse(a.isContiguous)
        assertMatchesNaive(Tensor.matmul(a, b), a, b, "Aᵀ·Bᵀ")
        let plainA = randomFloat32([37, 53], seed: 805)
        assertMatchesNaive(Tensor.matmul(plainA, b), plainA, b, "A·Bᵀ")
        assertMatchesNaive(Tensor.matmul(a, randomFloat32([53, 29], seed: 806)), a, randomFloat32([53, 29], seed: 806), "Aᵀ·B")
    }

    func testFloat32BatchedMatmulMatchesTripleLoop() {
        // A batch times a matrix (one flattened GEMM) and a batch times a batch (one GEMM each).
        let batch = randomFloat32([3, 37, 53], seed: 807), matrix = randomFloat32([53, 29], seed: 808)
        assertMatchesNaive(Tensor.matmul(batch, matrix), batch, matrix, "batch × matrix")
        let otherBatch = randomFloat32([3, 53, 29], seed: 809)
        assertMatchesNaive(Tensor.matmul(batch, otherBatch), batch, otherBatch, "batch × batch")
        let transposedBatch = randomFloat32([3, 29, 53], seed: 810).transposed()
        assertMatchesNaive(Tensor.matmul(batch, transposedBatch), batch, transposedBatch, "batch × transposed batch")
    }

    func testRuntimeReportsCoreAndThreads() {
        XCTAssertFalse(BLASRuntime.coreName.isEmpty)
        XCTAssertFalse(BLASRuntime.configuration.isEmpty)
        let previous = BLASRuntime.threadCount
        XCTAssertGreaterThanOrEqual(previous, 1)
        BLASRuntime.setThreadCount(1)
        XCTAssertEqual(BLASRuntime.threadCount, 1)
        BLASRuntime.setThreadCount(previous)
        XCTAssertEqual(BLASRuntime.threadCount, previous)
    }
}
