import Tensor
import XCTest

/// The blocked AVX-512 float32 GEMM (`ck_blocked_sgemm`) through `Float.gemm`: every element is
/// the sum, in order, of one fused multiply-add chain from 0 per k block of 128, plus C when
/// accumulating, in every transpose pair, at
/// tile, panel and k-block edges and in both loop orders; the padding of C is never written; and
/// a split product gives the same bits on every thread count. Skips where the kernel does not
/// run (no AVX-512, or `ARPO_BLAS_SGEMM=1`).
final class BlockedGEMMTests: XCTestCase {
    private var configuredThreads = 1
    /// The kernel's k block (`K_BLOCK` in BlockedGemm.c).
    static let kBlock = 128

    override func setUpWithError() throws {
        try XCTSkipUnless(BLASRuntime.usesBlockedSGEMM, "the blocked float32 kernel does not run here")
        configuredThreads = BLASRuntime.threadCount
    }

    override func tearDown() {
        BLASRuntime.setThreadCount(configuredThreads)
        BLASRuntime.setBlockedSGEMM(true)
        super.tearDown()
    }

    /// op(A) (m × k), op(B) (k × n) and C (m × n), stored with padded leading dimensions.
    private struct Product {
        let transposeA: Bool, transposeB: Bool, accumulate: Bool
        let m: Int, n: Int, k: Int
        let a: [Float], b: [Float], initial: [Float]
        let lda: Int, ldb: Int, ldc: Int

        init(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, accumulate: Bool, seed: UInt64) {
            (self.transposeA, self.transposeB, self.accumulate, self.m, self.n, self.k) = (transposeA, transposeB, accumulate, m, n, k)
            var generator = RandomGenerator(seed: seed)
            func values(_ rows: Int, _ leading: Int) -> [Float] { (0..<(rows * leading)).map { _ in Float(generator.uniform(-1, 1)) } }
            lda = (transposeA ? m : k) + 3
            ldb = (transposeB ? k : n) + 5
            ldc = n + 2
            a = values(transposeA ? k : m, lda)
            b = values(transposeB ? n : k, ldb)
            // Without accumulation C starts as NaN: beta 0 must not read it.
            initial = accumulate ? values(m, ldc) : [Float](repeating: .nan, count: m * ldc)
        }

        func left(_ i: Int, _ p: Int) -> Float { transposeA ? a[p * lda + i] : a[i * lda + p] }
        func right(_ p: Int, _ j: Int) -> Float { transposeB ? b[j * ldb + p] : b[p * ldb + j] }

        /// C through `Float.gemm` at the current settings.
        func computed() -> [Float] {
            var c = initial
            Float.gemm(
                transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 1, a: a, lda: lda,
                b: b, ldb: ldb, beta: accumulate ? 1 : 0, c: &c, ldc: ldc)
            return c
        }

        /// Element (i, j) as the kernel defines it: per k block of 128, a chain b ← fma(a_ip, b_pj,
        /// b) over the block's p in order from b = 0; the blocks' chains summed in order; then
        /// C + sum when accumulating (as BLAS adds beta·C to the product).
        func chain(_ i: Int, _ j: Int) -> Float {
            var sum: Float = 0
            for start in stride(from: 0, to: k, by: BlockedGEMMTests.kBlock) {
                var block: Float = 0
                for p in start..<Swift.min(start + BlockedGEMMTests.kBlock, k) { block = block.addingProduct(left(i, p), right(p, j)) }
                sum = start == 0 ? block : sum + block
            }
            return accumulate ? initial[i * ldc + j] + sum : sum
        }
    }

    /// Checks every element of `product` against its chain and that no padding was written.
    private func assertChains(_ product: Product, file: StaticString = #filePath, line: UInt = #line) {
        let c = product.computed()
        var mismatches = 0
        for i in 0..<product.m {
            for j in 0..<product.n where c[i * product.ldc + j].bitPattern != product.chain(i, j).bitPattern {
                if mismatches < 3 {
                    XCTFail("\(product.m)×\(product.n)×\(product.k) \(product.transposeA ? "T" : "N")\(product.transposeB ? "T" : "N") beta \(product.accumulate ? 1 : 0): (\(i), \(j)) is \(c[i * product.ldc + j]), the chain gives \(product.chain(i, j))", file: file, line: line)
                }
                mismatches += 1
            }
            for j in product.n..<product.ldc where c[i * product.ldc + j].bitPattern != product.initial[i * product.ldc + j].bitPattern {
                XCTFail("row \(i): padding column \(j) was written", file: file, line: line)
            }
        }
        XCTAssertEqual(mismatches, 0, "elements that are not the sum of the blocks' fused multiply-add chains", file: file, line: line)
    }

    /// Shapes of at least 2¹⁸ multiply-adds (the kernel's threshold) that end row tiles with 1 to
    /// 5 rows, panels with 1 to 63 columns (one, two, three or four vectors), and k blocks short,
    /// long or cut mid-way, and whose steps of k are not a multiple of 16 (the transposed packing's
    /// edge); all on two threads, split by rows or columns.
    func testEveryElementIsItsFusedChainInEveryLayout() {
        BLASRuntime.setThreadCount(2)
        let shapes: [(m: Int, n: Int, k: Int)] = [(70, 90, 100), (33, 257, 65), (13, 200, 300), (41, 40, 160), (62, 112, 45)]
        var seed: UInt64 = 500
        for shape in shapes {
            for (transposeA, transposeB) in [(false, false), (false, true), (true, false), (true, true)] {
                for accumulate in [false, true] {
                    seed += 3
                    assertChains(Product(transposeA: transposeA, transposeB: transposeB, m: shape.m, n: shape.n, k: shape.k, accumulate: accumulate, seed: seed))
                }
            }
        }
    }

    /// C larger than 2¹⁸ elements with a small right operand takes the rows-outer loop order
    /// (each 96-row block of C through all its k blocks), and so does accumulating over several
    /// k blocks (the chains run in a scratch block until C is added); its elements are the same
    /// chains.
    func testRowsOuterOrderGivesTheSameChains() {
        BLASRuntime.setThreadCount(1)
        assertChains(Product(transposeA: false, transposeB: true, m: 530, n: 500, k: 3, accumulate: false, seed: 71))
        assertChains(Product(transposeA: true, transposeB: false, m: 515, n: 520, k: 131, accumulate: true, seed: 72))
        assertChains(Product(transposeA: false, transposeB: false, m: 100, n: 130, k: 400, accumulate: true, seed: 73))
    }

    /// Row and column splits and the depth cut give the same bits on one to three threads.
    func testSameBitsOnEveryThreadCount() {
        for (index, shape) in [(m: 200, n: 96, k: 80), (m: 48, n: 300, k: 70), (m: 96, n: 64, k: 2000)].enumerated() {
            let product = Product(transposeA: index == 2, transposeB: index != 1, m: shape.m, n: shape.n, k: shape.k, accumulate: index == 1, seed: 90)
            var results: [[UInt32]] = []
            for threads in 1...3 {
                BLASRuntime.setThreadCount(threads)
                results.append(product.computed().map(\.bitPattern))
            }
            XCTAssertTrue(results[0] == results[1], "\(shape): 1 and 2 threads")
            XCTAssertTrue(results[0] == results[2], "\(shape): 1 and 3 threads")
        }
    }

    /// Non-finite operands propagate as float32 arithmetic says: an infinity makes its row ±∞ or
    /// NaN (∞ · 0 would, but the operands here are nonzero), a NaN makes its row NaN.
    func testNonFiniteOperandsPropagate() {
        BLASRuntime.setThreadCount(1)
        let (m, n, k) = (64, 80, 64)
        var a = [Float](repeating: 0.5, count: m * k)
        let b = [Float](repeating: 0.25, count: k * n)
        a[3 * k + 7] = .infinity
        a[10 * k + 2] = .nan
        var c = [Float](repeating: 0, count: m * n)
        Float.gemm(transposeA: false, transposeB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b, ldb: n, beta: 0, c: &c, ldc: n)
        XCTAssertTrue(c[(3 * n)..<(4 * n)].allSatisfy { $0 == .infinity })
        XCTAssertTrue(c[(10 * n)..<(11 * n)].allSatisfy(\.isNaN))
        XCTAssertTrue(c[0..<(3 * n)].allSatisfy { $0 == Float(k) * 0.125 })
    }

    /// `setBlockedSGEMM(false)` sends the same product to BLAS. OpenBLAS's k blocks are a few
    /// hundred deep, not 128, so at k = 1000 its elements are not the blocked kernel's sums: the
    /// rows checked here tell the two apart.
    func testBLASRemainsSelectable() {
        BLASRuntime.setThreadCount(1)
        let product = Product(transposeA: false, transposeB: true, m: 40, n: 300, k: 1000, accumulate: false, seed: 5)
        let blocked = product.computed()
        BLASRuntime.setBlockedSGEMM(false)
        XCTAssertFalse(BLASRuntime.usesBlockedSGEMM)
        let blas = product.computed()
        BLASRuntime.setBlockedSGEMM(true)
        XCTAssertTrue(BLASRuntime.usesBlockedSGEMM)
        var chains = 0, blasChains = 0
        for i in 0..<2 {
            for j in 0..<product.n {
                let chain = product.chain(i, j), index = i * product.ldc + j
                if blocked[index] == chain { chains += 1 }
                if blas[index] == chain { blasChains += 1 }
                XCTAssertEqual(Double(blas[index]), Double(chain), accuracy: 1e-4, "(\(i), \(j))")
            }
        }
        XCTAssertEqual(chains, 2 * product.n)
        XCTAssertLessThan(blasChains, 2 * product.n, "BLAS computed the blocked kernel's chains")
    }
}
