import CKernels
import Dispatch
import Foundation

// Splitting a kernel's work over the configured threads.
//
// Every kernel splits its rows over the configured threads (`BLASRuntime.setThreadCount`), and
// so does every large GEMM (`splitGEMM`: one single-threaded BLAS call per block of rows or
// columns), all on one set of persistent workers. With only the GEMMs split, by OpenBLAS's own
// threads, the second core idled through every softmax, norm and elementwise pass (about 40% of
// a base train step).
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

    /// C = op(A) op(B) (with the caller's alpha and beta) by `product`, a single-threaded BLAS
    /// call: once for a small product, else once per block on up to `threads` threads. Blocks
    /// split C's rows when it has at least as many rows as columns, else its columns; one block
    /// per thread, which measured faster than more (at 4096 × 768 × 256, two threads: 170–236
    /// GFLOPS in two blocks, 164–234 in four, against 129–219 for OpenBLAS's own threading).
    /// Each element of C is one call's dot product over all of k, so the result depends only on
    /// the block boundaries, which depend only on the shape and the thread count.
    @inline(__always)
    static func splitGEMM<T>(
        threads: Int, transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        a: UnsafePointer<T>, lda: Int, b: UnsafePointer<T>, ldb: Int, c: UnsafeMutablePointer<T>, ldc: Int,
        _ product: (_ m: Int, _ n: Int, UnsafePointer<T>, UnsafePointer<T>, UnsafeMutablePointer<T>) -> Void
    ) {
        let alongRows = m >= n
        let units = ((alongRows ? m : n) + gemmSplitAlignment - 1) / gemmSplitAlignment
        let blocks = Swift.min(threads, units)
        guard blocks > 1, m * n * k >= gemmSplitWork else {
            product(m, n, a, b, c)
            return
        }
        let extent = alongRows ? m : n
        runChunks(blocks, threads: threads) { block in
            let start = units * block / blocks * gemmSplitAlignment
            let end = Swift.min(extent, units * (block + 1) / blocks * gemmSplitAlignment)
            if alongRows {
                product(end - start, n, transposeA ? a + start : a + start * lda, b, c + start * ldc)
            } else {
                product(m, end - start, a, transposeB ? b + start * ldb : b + start, c + start)
            }
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
