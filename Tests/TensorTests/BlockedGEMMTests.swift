import CKernels
#if canImport(Glibc)
import Glibc
#endif
import Tensor
import XCTest

/// The blocked AVX-512 float32 GEMM (`ck_blocked_sgemm`) through `Float.gemm`: every element is
/// the sum, in order, of one fused multiply-add chain from 0 per k block of 128, plus C when
/// accumulating, in every transpose pair, at
/// tile, panel and k-block edges and in both loop orders; the padding of C is never written; and
/// a split product gives the same bits on every thread count. Skips where the kernel does not
/// run (no AVX-512, or `ARPO_BLAS_SGEMM=1`).
final class BlockedGEMMTests: XCTestCase {
    /// The settings a test found, restored after it.
    private var configured = ComputeSettings(threads: 1)
    /// The kernel's k block (`K_BLOCK` in BlockedGemm.c).
    static let kBlock = 128

    override func setUpWithError() throws {
        try XCTSkipUnless(BLASRuntime.usesBlockedSGEMM, "the blocked float32 kernel does not run here")
        configured = ComputeSettings.current
    }

    override func tearDown() {
        configured.with(float32GEMM: .blocked).apply()
        ck_blocked_sgemm_fail_packing(0)
        super.tearDown()
    }

    /// op(A) (m × k), op(B) (k × n) and C (m × n), stored with padded leading dimensions.
    private struct Product {
        let transposeA: Bool, transposeB: Bool, accumulate: Bool
        let m: Int, n: Int, k: Int
        let a: [Float], b: [Float], initial: [Float]
        let lda: Int, ldb: Int, ldc: Int

        /// `paddingA`: the columns of A's storage past op(A)'s.
        init(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, accumulate: Bool, seed: UInt64, paddingA: Int = 3) {
            (self.transposeA, self.transposeB, self.accumulate, self.m, self.n, self.k) = (transposeA, transposeB, accumulate, m, n, k)
            var generator = RandomGenerator(seed: seed)
            func values(_ rows: Int, _ leading: Int) -> [Float] { (0..<(rows * leading)).map { _ in Float(generator.uniform(-1, 1)) } }
            lda = (transposeA ? m : k) + paddingA
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

        /// C through `ck_blocked_sgemm_parallel` on `threads` threads, running `calls` in the same
        /// job; nil when the product did not qualify.
        func computedInParallel(threads: Int, calls: inout [ck_gemm_call]) -> [Float]? {
            var c = initial
            let ran = calls.withUnsafeMutableBufferPointer { calls in
                c.withUnsafeMutableBufferPointer { c in
                    ck_blocked_sgemm_parallel(
                        Int32(threads), transposeA ? 1 : 0, transposeB ? 1 : 0, Int32(m), Int32(n), Int32(k), a, lda, b, ldb,
                        accumulate ? UnsafePointer(c.baseAddress!) : nil, ldc, c.baseAddress!, ldc, Int32(calls.count), calls.baseAddress)
                }
            }
            return ran != 0 ? c : nil
        }

        /// C through `ck_blocked_sgemm` on this thread, adding into C in place when accumulating.
        func computedAlone() -> [Float]? {
            var c = initial
            let ran = c.withUnsafeMutableBufferPointer { c in
                ck_blocked_sgemm(
                    transposeA ? 1 : 0, transposeB ? 1 : 0, Int32(m), Int32(n), Int32(k), a, lda, b, ldb,
                    accumulate ? UnsafePointer(c.baseAddress!) : nil, ldc, c.baseAddress!, ldc)
            }
            return ran != 0 ? c : nil
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
        configured.with(threads: 2).apply()
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
        configured.with(threads: 1).apply()
        assertChains(Product(transposeA: false, transposeB: true, m: 530, n: 500, k: 3, accumulate: false, seed: 71))
        assertChains(Product(transposeA: true, transposeB: false, m: 515, n: 520, k: 131, accumulate: true, seed: 72))
        assertChains(Product(transposeA: false, transposeB: false, m: 100, n: 130, k: 400, accumulate: true, seed: 73))
    }

    /// The parallel form of the rows-outer order (one shared packing of the right operand, row
    /// blocks claimed by the threads) computes the same chains on two and three threads, with
    /// beta 0 and 1 and the accumulate-over-several-k-blocks scratch, in every transpose pair,
    /// and `Float.gemm` takes it for such products.
    func testParallelRowsOuterGivesTheSameChains() {
        let shapes: [(m: Int, n: Int, k: Int, accumulate: Bool)] = [(530, 500, 3, false), (515, 520, 131, true), (600, 450, 200, false), (1000, 270, 70, true)]
        var seed: UInt64 = 800
        for shape in shapes {
            for (transposeA, transposeB) in [(false, false), (false, true), (true, false), (true, true)] {
                seed += 1
                let product = Product(transposeA: transposeA, transposeB: transposeB, m: shape.m, n: shape.n, k: shape.k, accumulate: shape.accumulate, seed: seed)
                let label = "\(shape) \(transposeA ? "T" : "N")\(transposeB ? "T" : "N")"
                guard let reference = product.computedAlone() else { return XCTFail("\(label): the kernel refused the product") }
                for threads in [2, 3] {
                    var none: [ck_gemm_call] = []
                    guard let parallel = product.computedInParallel(threads: threads, calls: &none) else {
                        XCTFail("\(label): the parallel form refused the product")
                        continue
                    }
                    XCTAssertTrue(parallel.map(\.bitPattern) == reference.map(\.bitPattern), "\(label), \(threads) threads")
                }
                if !transposeA && !transposeB {
                    // Every element checked against its chain once per shape, through
                    // `Float.gemm` (the bits above tie the other layouts to the single-threaded
                    // kernel).
                    configured.with(threads: 2).apply()
                    assertChains(product)
                }
            }
        }
    }

    /// Products the parallel form does not run (one thread, fewer than two row blocks, or an
    /// order that is not rows outer) are refused with C untouched.
    func testParallelFormRefusesWhatItDoesNotRun() {
        let cases: [(threads: Int, m: Int, n: Int, k: Int, accumulate: Bool)] = [(1, 530, 500, 3, false), (2, 150, 2000, 10, false), (2, 400, 300, 100, true), (2, 600, 600, 1000, false)]
        for (threads, m, n, k, accumulate) in cases {
            let shape = (m: m, n: n, k: k, accumulate: accumulate)
            let product = Product(transposeA: false, transposeB: false, m: m, n: n, k: k, accumulate: accumulate, seed: 3)
            var none: [ck_gemm_call] = []
            XCTAssertNil(product.computedInParallel(threads: threads, calls: &none), "\(threads) threads, \(shape)")
        }
    }

    /// An addend apart from C (a residual read where it lies) gives the bits of adding into C in
    /// place, on one thread and in the parallel form, in both loop orders (rows outer with one k
    /// block and with the chains apart over several, and k outer), and in every transpose pair;
    /// the addend is not written, nor is C's padding; with the packing buffers refused, the
    /// single-threaded kernel refuses the product (C untouched) and the parallel form's row
    /// blocks, computed unpacked, keep the bits. `Float.gemm(adding:)` takes the products the
    /// kernel runs whole (one thread, or the parallel form) and refuses the others untouched.
    func testAddendApartFromCGivesTheBitsOfAddingInPlace() {
        let shapes: [(m: Int, n: Int, k: Int)] = [(530, 500, 100), (515, 520, 300), (100, 130, 90), (700, 64, 128)]
        var seed: UInt64 = 900
        for shape in shapes {
            for (transposeA, transposeB) in [(false, false), (false, true), (true, false), (true, true)] {
                seed += 1
                let product = Product(transposeA: transposeA, transposeB: transposeB, m: shape.m, n: shape.n, k: shape.k, accumulate: true, seed: seed)
                let label = "\(shape) \(transposeA ? "T" : "N")\(transposeB ? "T" : "N")"
                guard let reference = product.computedAlone() else { return XCTFail("\(label): the kernel refused the product") }
                // The addend with its own row stride; C starts as NaN, its padding included.
                let ldd = product.n + 7
                var addend = [Float](repeating: -7, count: product.m * ldd)
                for i in 0..<product.m {
                    for j in 0..<product.n { addend[i * ldd + j] = product.initial[i * product.ldc + j] }
                }
                let addendBefore = addend
                func apart(threads: Int, refused: Bool = false) -> (ran: Bool, c: [Float]) {
                    var c = [Float](repeating: .nan, count: product.m * product.ldc)
                    ck_blocked_sgemm_fail_packing(refused ? 1 : 0)
                    defer { ck_blocked_sgemm_fail_packing(0) }
                    var none: [ck_gemm_call] = []
                    let ran = none.withUnsafeMutableBufferPointer { none in
                        threads == 1
                            ? ck_blocked_sgemm(transposeA ? 1 : 0, transposeB ? 1 : 0, Int32(product.m), Int32(product.n), Int32(product.k), product.a, product.lda, product.b, product.ldb, addend, ldd, &c, product.ldc)
                            : ck_blocked_sgemm_parallel(Int32(threads), transposeA ? 1 : 0, transposeB ? 1 : 0, Int32(product.m), Int32(product.n), Int32(product.k), product.a, product.lda, product.b, product.ldb, addend, ldd, &c, product.ldc, 0, none.baseAddress)
                    }
                    return (ran != 0, c)
                }
                func sameBits(_ c: [Float]) -> Bool {
                    (0..<product.m).allSatisfy { i in
                        (0..<product.ldc).allSatisfy { j in
                            c[i * product.ldc + j].bitPattern == (j < product.n ? reference[i * product.ldc + j] : Float.nan).bitPattern
                        }
                    }
                }
                let alone = apart(threads: 1)
                XCTAssertTrue(alone.ran && sameBits(alone.c), "\(label), one thread")
                let refusedAlone = apart(threads: 1, refused: true)
                XCTAssertFalse(refusedAlone.ran, "\(label): refused buffers, one thread")
                XCTAssertTrue(refusedAlone.c.allSatisfy(\.isNaN), "\(label): C untouched when refused")
                // The parallel form runs the rows-outer products (the last shape is k outer).
                let rowsOuter = shape.m * shape.n > 1 << 18 || shape.k > Self.kBlock
                for threads in [2, 3] {
                    let parallel = apart(threads: threads)
                    XCTAssertEqual(parallel.ran, rowsOuter && shape.m >= 192, "\(label), \(threads) threads")
                    if parallel.ran { XCTAssertTrue(sameBits(parallel.c), "\(label), \(threads) threads") }
                }
                if rowsOuter && shape.m >= 192 {
                    let refused = apart(threads: 2, refused: true)
                    XCTAssertTrue(refused.ran && sameBits(refused.c), "\(label): refused buffers, row blocks unpacked")
                }
                XCTAssertTrue(addend.map(\.bitPattern) == addendBefore.map(\.bitPattern), "\(label): the addend was written")
                // Through `Float.gemm(adding:)`.
                for threads in [1, 2] {
                    configured.with(threads: threads).apply()
                    var c = [Float](repeating: .nan, count: product.m * product.ldc)
                    let ran = Float.gemm(
                        transposeA: transposeA, transposeB: transposeB, m: product.m, n: product.n, k: product.k, a: product.a, lda: product.lda,
                        b: product.b, ldb: product.ldb, adding: addend, ldd: ldd, c: &c, ldc: product.ldc)
                    XCTAssertEqual(ran, threads == 1 || (rowsOuter && shape.m >= 192), "\(label): Float.gemm(adding:), \(threads) threads")
                    XCTAssertTrue(ran ? sameBits(c) : c.allSatisfy(\.isNaN), "\(label): Float.gemm(adding:), \(threads) threads")
                }
            }
        }
        // A product cut along k (its second half is added last, so the addend cannot be) and one
        // below the kernel's size are left to the caller.
        configured.with(threads: 2).apply()
        for (m, n, k) in [(16, 32, 20_000), (8, 8, 8)] {
            let a = [Float](repeating: 0.5, count: m * k), b = [Float](repeating: 0.25, count: k * n), addend = [Float](repeating: 1, count: m * n)
            var c = [Float](repeating: .nan, count: m * n)
            XCTAssertFalse(Float.gemm(transposeA: false, transposeB: false, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, adding: addend, ldd: n, c: &c, ldc: n), "\(m) × \(n) × \(k)")
            XCTAssertTrue(c.allSatisfy(\.isNaN), "\(m) × \(n) × \(k): C untouched")
        }
    }

    /// Calls run in the parallel form's job compute what they compute alone, and are marked
    /// done; with the packing buffers refused, the calls report that they did not run, and the
    /// row blocks are computed unpacked with the same bits.
    func testCallsInTheParallelJobAndRefusedBuffers() {
        let product = Product(transposeA: false, transposeB: true, m: 700, n: 400, k: 150, accumulate: true, seed: 41)
        let side = Product(transposeA: true, transposeB: false, m: 90, n: 70, k: 600, accumulate: false, seed: 42)
        guard let reference = product.computedAlone() else { return XCTFail("the kernel refused the product") }
        for refused in [false, true] {
            // Two calls: the side product's two halves of k, the second into its own C.
            var first = side.initial, second = [Float](repeating: .nan, count: side.m * side.ldc)
            var result: [Float]?
            var calls: [ck_gemm_call] = []
            ck_blocked_sgemm_fail_packing(refused ? 1 : 0)
            side.a.withUnsafeBufferPointer { a in
                side.b.withUnsafeBufferPointer { b in
                    first.withUnsafeMutableBufferPointer { first in
                        second.withUnsafeMutableBufferPointer { second in
                            calls = [
                                ck_gemm_call(transpose_a: 1, transpose_b: 0, m: 90, n: 70, k: 256, a: a.baseAddress!, lda: side.lda, b: b.baseAddress!, ldb: side.ldb, accumulate: 0, c: first.baseAddress!, ldc: side.ldc, done: 7),
                                ck_gemm_call(transpose_a: 1, transpose_b: 0, m: 90, n: 70, k: 344, a: a.baseAddress! + 256 * side.lda, lda: side.lda, b: b.baseAddress! + 256 * side.ldb, ldb: side.ldb, accumulate: 0, c: second.baseAddress!, ldc: side.ldc, done: 7),
                            ]
                            result = product.computedInParallel(threads: 2, calls: &calls)
                        }
                    }
                }
            }
            ck_blocked_sgemm_fail_packing(0)
            XCTAssertTrue(result?.map(\.bitPattern) == reference.map(\.bitPattern), "refused buffers: \(refused)")
            XCTAssertEqual(calls.map(\.done), refused ? [0, 0] : [1, 1])
            guard !refused else { continue }
            for i in 0..<side.m {
                for j in 0..<side.n {
                    // Each half's chains from 0, as `chain` sums the blocks of one half.
                    var halves: [Float] = [0, 0]
                    for (half, range) in [0..<256, 256..<600].enumerated() {
                        var sum: Float = 0
                        for start in stride(from: range.lowerBound, to: range.upperBound, by: Self.kBlock) {
                            var block: Float = 0
                            for p in start..<Swift.min(start + Self.kBlock, range.upperBound) { block = block.addingProduct(side.left(i, p), side.right(p, j)) }
                            sum = start == range.lowerBound ? block : sum + block
                        }
                        halves[half] = sum
                    }
                    XCTAssertEqual(first[i * side.ldc + j].bitPattern, halves[0].bitPattern, "first half (\(i), \(j))")
                    XCTAssertEqual(second[i * side.ldc + j].bitPattern, halves[1].bitPattern, "second half (\(i), \(j))")
                }
            }
        }
    }

    /// A linear layer's two gradient products in one parallel region (`Float.linearGradientGEMMs`:
    /// dW cut along k, its halves first, dX's row blocks around them) give the bits of the two
    /// products on one thread, one after the other, with dX stored or added; with the packing
    /// buffers refused, dX keeps its bits (its row blocks computed unpacked) and dW, on BLAS,
    /// stays within float32 rounding. `linear`'s gradient rule reaches the same bits. Both
    /// products are recorded, in the order of the two calls, the first marked as sharing its
    /// region with the second.
    func testLinearGradientsInOneRegionMatchOneThread() {
        let (rows, inFeatures, outFeatures) = (3000, 96, 80)
        var generator = RandomGenerator(seed: 61)
        func values(_ count: Int) -> [Float] { (0..<count).map { _ in Float(generator.uniform(-1, 1)) } }
        let dy = values(rows * outFeatures), input = values(rows * inFeatures), weight = values(outFeatures * inFeatures)
        let sum = values(rows * inFeatures)
        for accumulate in [false, true] {
            // dX starts as NaN when stored: a row block left out stays NaN.
            let initial = accumulate ? sum : [Float](repeating: .nan, count: rows * inFeatures)
            func products(threads: Int, refused: Bool = false) -> (dx: [Float], dw: [Float]) {
                configured.with(threads: threads).apply()
                ck_blocked_sgemm_fail_packing(refused ? 1 : 0)
                defer { ck_blocked_sgemm_fail_packing(0) }
                var dx = initial, dw = [Float](repeating: .nan, count: outFeatures * inFeatures)
                Float.linearGradientGEMMs(rows: rows, inFeatures: inFeatures, outFeatures: outFeatures, dy: dy, input: input, weight: weight, dx: &dx, accumulate: accumulate, dw: &dw)
                return (dx, dw)
            }
            let reference = products(threads: 1)
            var dx = initial, dw = [Float](repeating: .nan, count: outFeatures * inFeatures)
            Float.gemm(transposeA: false, transposeB: false, m: rows, n: inFeatures, k: outFeatures, alpha: 1, a: dy, lda: outFeatures, b: weight, ldb: inFeatures, beta: accumulate ? 1 : 0, c: &dx, ldc: inFeatures)
            Float.gemm(transposeA: true, transposeB: false, m: outFeatures, n: inFeatures, k: rows, alpha: 1, a: dy, lda: outFeatures, b: input, ldb: inFeatures, beta: 0, c: &dw, ldc: inFeatures)
            XCTAssertTrue(reference.dx.map(\.bitPattern) == dx.map(\.bitPattern) && reference.dw.map(\.bitPattern) == dw.map(\.bitPattern), "one thread: the two gemm calls")
            for threads in [2, 3] {
                let result = products(threads: threads)
                XCTAssertTrue(result.dx.map(\.bitPattern) == reference.dx.map(\.bitPattern), "dX, \(threads) threads, accumulate \(accumulate)")
                XCTAssertTrue(result.dw.map(\.bitPattern) == reference.dw.map(\.bitPattern), "dW, \(threads) threads, accumulate \(accumulate)")
            }
            let refused = products(threads: 2, refused: true)
            XCTAssertTrue(refused.dx.map(\.bitPattern) == reference.dx.map(\.bitPattern), "dX with the packing buffers refused, accumulate \(accumulate)")
            assertClose(refused.dw.map(Double.init), reference.dw.map(Double.init), absoluteTolerance: 1e-3, relativeTolerance: 1e-5, "dW on BLAS")
            if !accumulate {
                // The gradient rule of `linear` reaches the same products.
                configured.with(threads: 2).apply()
                let x = Tensor(shape: [rows, inFeatures], scalars: input), w = Tensor(shape: [outFeatures, inFeatures], scalars: weight)
                x.requiresGradient = true
                w.requiresGradient = true
                let rule = gradients(of: x.linear(w), withRespectTo: [x, w], seed: Tensor(shape: [rows, outFeatures], scalars: dy))
                XCTAssertTrue(rule[0].floats.map(\.bitPattern) == reference.dx.map(\.bitPattern) && rule[1].floats.map(\.bitPattern) == reference.dw.map(\.bitPattern), "through autodiff")
            }
            let calls = GEMMRecorder.recording { _ = products(threads: 2) }.calls
            XCTAssertEqual(calls.map { "\($0.transposeA ? "T" : "N")\($0.transposeB ? "T" : "N") \($0.m)×\($0.n)×\($0.k) \($0.accumulates)" }, ["NN 3000×96×80 \(accumulate)", "TN 80×96×3000 false"])
            XCTAssertEqual(calls.map(\.sharesRegionWithNext), [true, false], "the pair is recorded as one region")
        }
    }

    /// Aᵀ is packed eight steps of k at a time with 8-float loads of six-float pieces; those loads
    /// stay inside op(A)'s columns. A (k × m, lda = m) ends where an inaccessible page begins, so
    /// a read past its last row's last column would crash the test: every row tile's edge (m
    /// mod 6 from 0 to 5, row blocks of 96 whole and cut), k blocks with and without a remainder
    /// of steps past the last eight, both loop orders and the parallel form.
    func testTransposedLeftOperandIsReadOnlyInsideItsColumns() {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let shapes: [(m: Int, n: Int, k: Int)] = [
            (96, 80, 136), (97, 70, 131), (98, 64, 128), (99, 40, 70), (100, 48, 136), (191, 40, 70), (102, 64, 128), (6, 300, 200), (515, 520, 131),
        ]
        var seed: UInt64 = 900
        for shape in shapes {
            seed += 1
            let product = Product(transposeA: true, transposeB: false, m: shape.m, n: shape.n, k: shape.k, accumulate: false, seed: seed, paddingA: 0)
            let bytes = product.a.count * MemoryLayout<Float>.stride
            let mapped = (bytes + page - 1) / page * page
            let region: UnsafeMutableRawPointer = mmap(nil, mapped + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            XCTAssertNotEqual(region, MAP_FAILED)
            defer { munmap(region, mapped + page) }
            XCTAssertEqual(mprotect(region + mapped, page, PROT_NONE), 0)
            let a = (region + mapped - bytes).bindMemory(to: Float.self, capacity: product.a.count)
            a.update(from: product.a, count: product.a.count)
            let expected = (0..<(product.m * product.n)).map { product.chain($0 / product.n, $0 % product.n).bitPattern }
            func check(_ c: [Float], _ form: String) {
                let bits = (0..<product.m).flatMap { i in c[(i * product.ldc)..<(i * product.ldc + product.n)].map(\.bitPattern) }
                XCTAssertTrue(bits == expected, "\(shape), \(form): elements that are not their chains")
            }
            var c = product.initial
            XCTAssertEqual(c.withUnsafeMutableBufferPointer { c in
                ck_blocked_sgemm(1, 0, Int32(shape.m), Int32(shape.n), Int32(shape.k), a, product.lda, product.b, product.ldb, nil, 0, c.baseAddress!, product.ldc)
            }, 1)
            check(c, "one thread")
            c = product.initial
            let parallel = c.withUnsafeMutableBufferPointer { c in
                ck_blocked_sgemm_parallel(
                    2, 1, 0, Int32(shape.m), Int32(shape.n), Int32(shape.k), a, product.lda, product.b, product.ldb, nil, 0, c.baseAddress!, product.ldc, 0, nil)
            }
            if parallel != 0 { check(c, "parallel") }
            if shape.m == 515 { XCTAssertEqual(parallel, 1, "the rows-outer product runs in the parallel form") }
        }
    }

    /// Row and column splits and the depth cut give the same bits on one to three threads.
    func testSameBitsOnEveryThreadCount() {
        for (index, shape) in [(m: 200, n: 96, k: 80), (m: 48, n: 300, k: 70), (m: 96, n: 64, k: 2000)].enumerated() {
            let product = Product(transposeA: index == 2, transposeB: index != 1, m: shape.m, n: shape.n, k: shape.k, accumulate: index == 1, seed: 90)
            var results: [[UInt32]] = []
            for threads in 1...3 {
                configured.with(threads: threads).apply()
                results.append(product.computed().map(\.bitPattern))
            }
            XCTAssertTrue(results[0] == results[1], "\(shape): 1 and 2 threads")
            XCTAssertTrue(results[0] == results[2], "\(shape): 1 and 3 threads")
        }
    }

    /// Non-finite operands propagate as float32 arithmetic says: an infinity makes its row ±∞ or
    /// NaN (∞ · 0 would, but the operands here are nonzero), a NaN makes its row NaN.
    func testNonFiniteOperandsPropagate() {
        configured.with(threads: 1).apply()
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
        configured.with(threads: 1).apply()
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
