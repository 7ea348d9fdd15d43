import COpenBLAS
import Dispatch
import Foundation
import Tensor

/// The float32 GEMMs of one run of some code, replayed alone as the tensor API makes them (each
/// large one split over the kernel threads, one single-threaded `cblas_sgemm` per block): how
/// fast that code could run if everything but its GEMMs took no time. Beside a measured train
/// step, this is the machine's limit for the step as the model defines it.
///
/// Calls recorded on fewer threads than configured were made inside a kernel's own parallel
/// region (attention's heads), so runs of them are replayed split over `threads` threads, one
/// single-threaded call at a time on each, as that kernel runs them. Operands are fresh zeroed buffers of
/// the recorded leading dimensions: GEMM speed does not depend on the values. All calls share
/// one A and one B buffer, and each thread one C buffer, sized for the largest call, so the
/// replay needs far less memory than the step (and finds its operands in cache a little more
/// often, which can only raise the bound).
final class GEMMReplay {
    /// Consecutive calls recorded with the same thread count.
    private struct Run {
        let callThreads: Int
        let calls: [Int]  // indices into `calls`
    }

    let calls: [GEMMCall]
    let threads: Int
    private let runs: [Run]
    private let a: UnsafeMutablePointer<Float>, b: UnsafeMutablePointer<Float>
    private let c: [UnsafeMutablePointer<Float>]

    /// Floating-point operations of one replay.
    var flops: Double { calls.reduce(0) { $0 + 2 * Double($1.m) * Double($1.n) * Double($1.k) } }

    init(_ calls: [GEMMCall], threads: Int) {
        self.calls = calls
        self.threads = threads
        var runs: [Run] = []
        var start = 0
        for end in stride(from: 1, through: calls.count, by: 1) where end == calls.count || calls[end].threads != calls[start].threads {
            runs.append(Run(callThreads: calls[start].threads, calls: Array(start..<end)))
            start = end
        }
        self.runs = runs
        func zeroed(_ count: Int) -> UnsafeMutablePointer<Float> {
            let pointer = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(count, 1))
            pointer.initialize(repeating: 0, count: Swift.max(count, 1))
            return pointer
        }
        a = zeroed(calls.map { ($0.transposeA ? $0.k : $0.m) * $0.lda }.max() ?? 0)
        b = zeroed(calls.map { ($0.transposeB ? $0.n : $0.k) * $0.ldb }.max() ?? 0)
        let outputCount = calls.map { $0.m * $0.ldc }.max() ?? 0
        c = (0..<threads).map { _ in zeroed(outputCount) }
    }

    deinit {
        a.deallocate()
        b.deallocate()
        for buffer in c { buffer.deallocate() }
    }

    /// Replays every call once, in order.
    func run() {
        for run in runs {
            if run.callThreads < threads {
                let workers = Swift.min(threads / Swift.max(run.callThreads, 1), run.calls.count)
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    for position in stride(from: worker, to: run.calls.count, by: workers) { replay(calls[run.calls[position]], output: c[worker]) }
                }
            } else {
                for index in run.calls { replaySplit(calls[index], output: c[0]) }
            }
        }
    }

    /// One call through the tensor API's GEMM (`Float.gemm`), split as the step splits it.
    private func replaySplit(_ call: GEMMCall, output: UnsafeMutablePointer<Float>) {
        Float.gemm(
            transposeA: call.transposeA, transposeB: call.transposeB, m: call.m, n: call.n, k: call.k,
            alpha: 1, a: a, lda: call.lda, b: b, ldb: call.ldb, beta: call.accumulates ? 1 : 0, c: output, ldc: call.ldc)
    }

    /// One single-threaded call (OpenBLAS runs on one thread outside `withLibraryThreadCount`).
    private func replay(_ call: GEMMCall, output: UnsafeMutablePointer<Float>) {
        cblas_sgemm(
            CblasRowMajor, call.transposeA ? CblasTrans : CblasNoTrans, call.transposeB ? CblasTrans : CblasNoTrans,
            Int32(call.m), Int32(call.n), Int32(call.k), 1, a, Int32(call.lda), b, Int32(call.ldb),
            call.accumulates ? 1 : 0, output, Int32(call.ldc))
    }
}
