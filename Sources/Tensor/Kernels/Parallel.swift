import CKernels
import Dispatch
import Foundation

// Splitting a kernel's work over the configured threads.
//
// Every kernel splits its rows over the configured threads (`ComputeSettings.threads`), and
// so does every large GEMM (`splitGEMM`: one single-threaded GEMM call per block of rows or
// columns, to the blocked float32 kernel, AMX or BLAS), all on one set of persistent workers.
// With only the GEMMs split, by OpenBLAS's own threads, the second core idled through every
// softmax, norm and elementwise pass (about 40% of a base train step).
//
// Reproducibility: every output element is computed by exactly one thread, with the same
// arithmetic in the same order as on one thread, so results do not depend on the thread count.
// A reduction across rows (a weight gradient) sums fixed-size row blocks, fixed by the shape
// alone, and then adds the block sums in block order.
extension Kernels {
    /// Work, in elements touched, below which a kernel stays on the calling thread: waking a
    /// worker costs a few microseconds, the time of some tens of thousands of simple element ops.
    static let parallelWorkThreshold = 1 << 15

    /// The number of threads kernels split work over: the configured count.
    static var threadCount: Int { BLASRuntime.threadCount }

    /// The threads a GEMM started here may split over: one inside a chunk of a parallel region
    /// (attention's heads each run their small GEMMs on their own thread), else the configured
    /// count.
    static var gemmThreads: Int { ck_in_parallel_job() != 0 ? 1 : threadCount }

    /// Multiply-adds (m·n·k) from which a GEMM is split: about 5 µs on one core, above the
    /// microsecond or two a split costs with the workers polling (OpenBLAS's own threshold for
    /// threading is the same). A decode step's 16 × 256 × 256 projection: 42 GFLOPS whole, 64
    /// through OpenBLAS's threads.
    static let gemmSplitWork = 1 << 18

    /// Rows (or columns) per block of a split GEMM come in multiples of this, whole tiles of
    /// OpenBLAS's SkylakeX sgemm kernel.
    static let gemmSplitAlignment = 16

    /// Rows per block of a split GEMM that BLAS computes come in multiples of this. OpenBLAS's
    /// sgemm and dgemm (0.3.21, its Zen kernels) give a block of whole 12-row groups the bits of
    /// the same rows of the whole product, for every shape, transpose pair, beta and leading
    /// dimension tried; a block cut at 16 rows, or a cut of C's columns, rounds some elements
    /// differently (on 65 × 272 × 32 cut at 128 columns, 360 of 17,680). With one block per
    /// thread cut there, a train step's and an RL update's parameters differed between 1 and 2
    /// threads (`SplitGEMMTests`, `TrainingTests`, `PackedUpdateTests`).
    static let blasSplitAlignment = 12

    /// A BLAS product with fewer rows than this and than columns (a decode step's 16 rows, a
    /// rollout's 64) is cut into `blasColumnBlocks` column blocks on every thread count, one
    /// thread included, so that its bits do not depend on the thread count: rows in 12-row
    /// groups would split it unevenly (16 rows: 12 and 4, which took a quarter off batched
    /// decode at 2 threads). Not inside a chunk of a parallel region (attention's per-head
    /// products): there a GEMM runs on its thread whole on every thread count, and cutting it
    /// only added calls (the supervised step ran about 15% slower).
    static let blasRowSplitMinimum = 96

    /// Column blocks of such a product, in whole 16-column tiles: two, as two threads split it
    /// before, since more cost a call and a packing of A's rows each, and in four (16 × 32 ×
    /// 128 each for a 2¹⁸ product) that was as much as their arithmetic. More threads than two
    /// leave these products to two.
    static let blasColumnBlocks = 2

    /// A product whose depth k is at least this many times C's larger side is cut in two along
    /// k (`splitGEMM`). Weight gradients (dW = dYᵀ X over 4096 rows into 256 × 256) are this
    /// shape: cut along C's rows, each thread packed all of X, and the two threads ran at 115
    /// GFLOPS (mean, cold operands); cut along k, each packs half of each operand: 128.
    static let gemmDepthSplitRatio = 4

    /// Whether `splitGEMM` cuts this product along k: a property of the shape alone, so the cut is
    /// the same on every thread count.
    @inline(__always)
    static func splitsDepth(m: Int, n: Int, k: Int) -> Bool {
        k >= gemmDepthSplitRatio * Swift.max(m, n) && m * n * k >= gemmSplitWork
    }

    /// C = alpha·op(A) op(B) + beta·C by `product`, a single-threaded GEMM call (given the
    /// block's m, n, k, its operands, its beta and its C with leading dimension): once for a
    /// small product, else once per block on up to `threads` threads.
    ///
    /// - Blocks split C's rows when it has at least as many rows as columns, else its columns
    ///   (`blasBlocks`: its rows at multiples of `blasSplitAlignment`, or when it has fewer than
    ///   `blasRowSplitMinimum` rows and more columns, `blasColumnBlocks` column blocks on every
    ///   thread count); otherwise one block per thread, which measured faster than more (at 4096 × 768 × 256, two
    ///   threads: 170–236 GFLOPS in two blocks, 164–234 in four, against 129–219 for OpenBLAS's
    ///   own threading; each block packs all of the other operand). Each element of C is then
    ///   one call's dot product over all of k. (Float32 products the blocked kernel runs rows
    ///   outer do not come here: `Float.multiply` gives them to its parallel form, which packs
    ///   the other operand once and lets the threads claim 96-row blocks.)
    /// - A product deep enough (`splitsDepth`) is instead cut at the middle of k, on any thread
    ///   count, one thread included: the first half accumulates into C with the caller's beta, the
    ///   second goes to a scratch buffer, which is then added to C. With more than two threads
    ///   each half is also split by rows or columns.
    ///
    /// Each element of C is one call's dot product over k, or over each half of k, summed. The cut
    /// along k depends on the shape alone; the row or column blocks on the thread count as well,
    /// which changes no bits: the blocked and AMX kernels compute each element the same wherever
    /// its block starts, and BLAS blocks (`blasBlocks`, for calls to `cblas_sgemm` or
    /// `cblas_dgemm`) are cut where OpenBLAS gives a block the bits of the whole
    /// (`blasSplitAlignment`), or into column blocks fixed by the shape alone. So a product has
    /// the same bits on every thread count.
    @inline(__always)
    static func splitGEMM<T: TensorScalar>(
        threads: Int, blasBlocks: Bool, transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        a: UnsafePointer<T>, lda: Int, b: UnsafePointer<T>, ldb: Int, beta: T, c: UnsafeMutablePointer<T>, ldc: Int,
        _ product: (_ m: Int, _ n: Int, _ k: Int, UnsafePointer<T>, UnsafePointer<T>, _ beta: T, UnsafeMutablePointer<T>, _ ldc: Int) -> Void
    ) {
        guard let split = GEMMSplit(threads: threads, blasBlocks: blasBlocks, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc) else {
            product(m, n, k, a, b, beta, c, ldc)
            return
        }
        runChunks(split.chunks, threads: threads) { chunk in
            let block = split.block(chunk)
            product(block.m, block.n, block.k, block.a, block.b, block.beta, block.c, block.ldc)
        }
        split.finish()
    }

    /// How `splitGEMM` cuts a product: its chunks (one single-threaded GEMM call each, run in
    /// any order on any thread) and, for a product cut along k, the scratch that holds the second
    /// half until `finish` adds it to C.
    struct GEMMSplit<T: TensorScalar> {
        /// One chunk's single-threaded GEMM call.
        struct Block {
            let m, n, k: Int
            let a, b: UnsafePointer<T>
            let beta: T
            let c: UnsafeMutablePointer<T>
            let ldc: Int
        }

        let transposeA, transposeB, alongRows: Bool
        let m, n, k, lda, ldb, ldc, halves, blocks, units, extent, alignment, firstDepth: Int
        let a, b: UnsafePointer<T>
        let beta: T
        let c: UnsafeMutablePointer<T>
        let scratch: TensorStorage?

        var chunks: Int { halves * blocks }

        /// nil when the product is not split: one call computes it. `blasBlocks`: the blocks go to
        /// BLAS, so they cut C's rows at multiples of `blasSplitAlignment`, or a product with few
        /// rows into `blasColumnBlocks` column blocks on every thread count (outside a parallel
        /// region's chunks, where a product is whole).
        init?(threads: Int, blasBlocks: Bool = false, transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<T>, lda: Int, b: UnsafePointer<T>, ldb: Int, beta: T, c: UnsafeMutablePointer<T>, ldc: Int) {
            let halves = splitsDepth(m: m, n: n, k: k) ? 2 : 1
            let fixedColumns = blasBlocks && halves == 1 && m < n && m < blasRowSplitMinimum && ck_in_parallel_job() == 0
            let alongRows = blasBlocks ? !fixedColumns : m >= n
            let extent = alongRows ? m : n
            let alignment = blasBlocks && alongRows ? blasSplitAlignment : gemmSplitAlignment
            let units = (extent + alignment - 1) / alignment
            let blocks = fixedColumns ? Swift.min(blasColumnBlocks, units) : Swift.max(1, Swift.min(threads / halves, units))
            guard halves > 1 || (blocks > 1 && m * n * k >= gemmSplitWork) else { return nil }
            (self.transposeA, self.transposeB, self.alongRows) = (transposeA, transposeB, alongRows)
            (self.m, self.n, self.k, self.lda, self.ldb, self.ldc) = (m, n, k, lda, ldb, ldc)
            (self.halves, self.blocks, self.units, self.extent, self.alignment) = (halves, blocks, units, extent, alignment)
            firstDepth = halves == 1 ? k : (k / 2) / gemmSplitAlignment * gemmSplitAlignment
            (self.a, self.b, self.beta, self.c) = (a, b, beta, c)
            scratch = halves == 1 ? nil : TensorStorage(dtype: T.dtype, count: m * n, zeroed: false)
        }

        func block(_ chunk: Int) -> Block {
            let half = chunk / blocks, block = chunk % blocks
            let (k0, depth) = half == 0 ? (0, firstDepth) : (firstDepth, k - firstDepth)
            let aHalf = transposeA ? a + k0 * lda : a + k0
            let bHalf = transposeB ? b + k0 : b + k0 * ldb
            let (cHalf, ldcHalf, betaHalf) = half == 0 ? (c, ldc, beta) : (scratch!.pointer(T.self), n, T.zero)
            let start = units * block / blocks * alignment
            let end = Swift.min(extent, units * (block + 1) / blocks * alignment)
            if alongRows {
                return Block(m: end - start, n: n, k: depth, a: transposeA ? aHalf + start : aHalf + start * lda, b: bHalf, beta: betaHalf, c: cHalf + start * ldcHalf, ldc: ldcHalf)
            }
            return Block(m: m, n: end - start, k: depth, a: aHalf, b: transposeB ? bHalf + start * ldb : bHalf + start, beta: betaHalf, c: cHalf + start, ldc: ldcHalf)
        }

        /// Adds the second half of a product cut along k into C, once every chunk is done.
        func finish() {
            guard let scratch else { return }
            let second = scratch.pointer(T.self)
            let (c, ldc, n) = (c, ldc, n)
            parallelFor(m, workPerItem: n) { rows in
                for row in rows {
                    let target = c + row * ldc, source = second + row * n
                    for column in 0..<n { target[column] += source[column] }
                }
            }
            withExtendedLifetime(scratch) {}
        }
    }

    /// Calls `body` on disjoint contiguous ranges that cover `0..<count`, concurrently on up to
    /// `threads` threads (the configured count unless given) when `count · workPerItem` is worth it,
    /// else once on this thread. The ranges are `chunksPerThread` per thread, claimed one at a
    /// time, so a thread the host deschedules leaves its share to the others.
    ///
    /// `body` must write only outputs that belong to the indices of its range.
    static func parallelFor(_ count: Int, workPerItem: Int, threads requested: Int = threadCount, _ body: (Range<Int>) -> Void) {
        let threads = Swift.min(requested, count)
        guard threads > 1, count * Swift.max(workPerItem, 1) >= parallelWorkThreshold else {
            if count > 0 { asChunk { body(0..<count) } }
            return
        }
        let chunks = Swift.min(count, threads * chunksPerThread)
        runChunks(chunks, threads: threads) { chunk in body((count * chunk / chunks)..<(count * (chunk + 1) / chunks)) }
    }

    /// Ranges per thread in `parallelFor`: enough that a thread held up by the host can be made
    /// up for by the others, few enough that claiming them costs nothing measurable.
    static let chunksPerThread = 4

    /// Calls `body(chunk)` for every chunk in `0..<chunks` on this thread and up to `threads − 1`
    /// persistent workers (`ck_parallel_run`), each claiming the next chunk in turn. The workers
    /// poll for a while between a step's parallel regions instead of parking: waking a parked
    /// thread costs hundreds of microseconds on a virtual machine. `ARPO_DISPATCH_WORKERS=1` runs
    /// the chunks through Dispatch instead, for comparison.
    ///
    /// Which thread runs a chunk must not change what it computes.
    static func runChunks(_ chunks: Int, threads: Int, _ body: (Int) -> Void) {
        guard chunks > 1, threads > 1 else {
            asChunk { for chunk in 0..<Swift.max(chunks, 0) { body(chunk) } }
            return
        }
        guard usePersistentWorkers else {
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in asChunk { body(chunk) } }
            return
        }
        withoutActuallyEscaping(body) { body in
            var chunkBody = body
            withUnsafeMutablePointer(to: &chunkBody) { pointer in
                ck_parallel_run(Int32(chunks), Int32(threads), { context, chunk in
                    context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(chunk))
                }, pointer)
            }
        }
    }

    /// False with `ARPO_DISPATCH_WORKERS=1`: chunks go through Dispatch, which may start them in
    /// any order, so jobs whose later chunks wait for earlier ones (the blocked kernel's parallel
    /// form) are not used.
    static let usePersistentWorkers = ProcessInfo.processInfo.environment["ARPO_DISPATCH_WORKERS"] != "1"

    /// Runs `body` on this thread as a chunk of a parallel region, as `runChunks` runs chunks
    /// when it does not split them: a GEMM inside stays on this thread (`gemmThreads` is 1), so a
    /// chunk computes the same bits whether its region ran split or in order.
    @inline(__always)
    static func asChunk<R>(_ body: () throws -> R) rethrows -> R {
        let was = ck_enter_job()
        defer { ck_leave_job(was) }
        return try body()
    }

    /// `parallelFor` over a dense run of `count` elements: `body(start, length)`.
    static func parallelElements(_ count: Int, workPerElement: Int = 1, _ body: (Int, Int) -> Void) {
        parallelFor(count, workPerItem: workPerElement) { range in body(range.lowerBound, range.count) }
    }
}
