import CKernels
import Dispatch
import Foundation

// Splitting a kernel's work over the configured threads.
//
// The GEMMs run on OpenBLAS's threads; everything else used to run on the calling thread alone,
// so with two BLAS threads the second core idled through every softmax, norm and elementwise
// pass (about 40% of a base train step). These kernels now split their rows over the same
// number of threads, the count configured for BLAS (`BLASRuntime.setThreadCount`).
//
// Reproducibility: every output element is computed by exactly one thread, with the same
// arithmetic in the same order as on one thread, so results do not depend on the thread count.
// A reduction across rows (a weight gradient) sums fixed-size row blocks, fixed by the shape
// alone, and then adds the block sums in block order.
extension Kernels {
    /// Work, in elements touched, below which a kernel stays on the calling thread: waking a
    /// worker costs a few microseconds, the time of some tens of thousands of simple element ops.
    static let parallelWorkThreshold = 1 << 15

    /// The number of threads kernels split work over: BLAS's configured count.
    static var threadCount: Int { BLASRuntime.threadCount }

    /// Calls `body` on disjoint contiguous ranges that cover `0..<count`, concurrently on up to
    /// `threads` threads (the BLAS count unless given) when `count · workPerItem` is worth it,
    /// else once on this thread. The ranges are `chunksPerThread` per thread, claimed one at a
    /// time, so a thread the host deschedules leaves its share to the others.
    ///
    /// `body` must write only outputs that belong to the indices of its range.
    static func parallelFor(_ count: Int, workPerItem: Int, threads requested: Int = threadCount, _ body: (Range<Int>) -> Void) {
        let threads = Swift.min(requested, count)
        guard threads > 1, count * Swift.max(workPerItem, 1) >= parallelWorkThreshold else {
            if count > 0 { body(0..<count) }
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
            for chunk in 0..<Swift.max(chunks, 0) { body(chunk) }
            return
        }
        guard usePersistentWorkers else {
            DispatchQueue.concurrentPerform(iterations: chunks, execute: body)
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

    /// `parallelFor` over a dense run of `count` elements: `body(start, length)`.
    static func parallelElements(_ count: Int, workPerElement: Int = 1, _ body: (Int, Int) -> Void) {
        parallelFor(count, workPerItem: workPerElement) { range in body(range.lowerBound, range.count) }
    }
}
