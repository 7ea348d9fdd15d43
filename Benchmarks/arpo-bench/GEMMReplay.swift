import COpenBLAS
import Dispatch
import Foundation
import Tensor

/// The float32 GEMMs of one run of some code, replayed alone as the tensor API makes them (each
/// large one split over the kernel threads): how fast that code could run if everything but its
/// GEMMs took no time. Beside a measured train step, this is the machine's limit for the step as
/// the model defines it. A linear layer's two gradient products that ran in one parallel region
/// (`GEMMCall.sharesRegionWithNext`) are replayed that way too, by `Float.linearGradientGEMMs`;
/// the by-shape timing (`timeByShape`) times each call on its own.
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
    var flops: Double { calls.reduce(0) { $0 + $1.flops } }

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

    /// Replays every call once, in order, a linear layer's gradient pair in one region.
    func run() {
        var skipNext = false
        replayAll { indices, insideKernels, replay in
            if skipNext {
                skipNext = false
                return
            }
            let call = calls[indices[0]]
            guard !insideKernels, call.sharesRegionWithNext, indices[0] + 1 < calls.count, threads > 1 else {
                replay()
                return
            }
            // dX = dY·W (rows × in, k = out) and dW = dYᵀ·X: dY in A, W and X in B.
            Float.linearGradientGEMMs(
                rows: call.m, inFeatures: call.n, outFeatures: call.k, dy: a, input: b, weight: b,
                dx: c[0], accumulate: call.accumulates, dw: c[1])
            skipNext = true
        }
    }

    /// Every call timed on its own, summed by shape per replay, over `repetitions` replays after a
    /// warm-up: where the replay's time goes, most first. Each shape's time is its median over the
    /// replays (as the bound's is), and its share is of the sum of those medians. A run of calls
    /// made inside a kernel's parallel region is timed as a whole and counted under its first
    /// call's shape, with `insideKernels` set.
    func timeByShape(repetitions: Int) -> [GEMMShapeTime] {
        var counts: [GEMMShape: Int] = [:]
        var flops: [GEMMShape: Double] = [:]
        // The warm-up replay also counts each shape's calls and work.
        replayAll { indices, insideKernels, replay in
            let shape = GEMMShape(calls[indices[0]], insideKernels: insideKernels)
            replay()
            counts[shape, default: 0] += indices.count
            flops[shape, default: 0] += indices.reduce(0) { $0 + calls[$1].flops }
        }
        var seconds: [GEMMShape: [Double]] = [:]
        for _ in 0..<Swift.max(repetitions, 1) {
            var replaySeconds: [GEMMShape: Double] = [:]
            replayAll { indices, insideKernels, replay in
                let shape = GEMMShape(calls[indices[0]], insideKernels: insideKernels)
                let start = Timer.now()
                replay()
                replaySeconds[shape, default: 0] += Timer.now() - start
            }
            for (shape, time) in replaySeconds { seconds[shape, default: []].append(time) }
        }
        let medians = seconds.mapValues { Measurement($0).median }
        let total = medians.values.reduce(0, +)
        return medians.map { shape, time in
            GEMMShapeTime(
                shape: shape, callsPerStep: counts[shape]!, millisecondsPerStep: 1000 * time,
                gflops: flops[shape]! / time / 1e9, shareOfGEMMTime: time / total)
        }.sorted { $0.millisecondsPerStep > $1.millisecondsPerStep }
    }

    /// Hands `body` each call in order (its index, not inside a kernel, and a closure that replays
    /// it), or each run of calls made inside a kernel's parallel region as one unit (their indices,
    /// true, and a closure that replays them split over the threads).
    private func replayAll(_ body: (_ indices: [Int], _ insideKernels: Bool, _ replay: () -> Void) -> Void) {
        for run in runs {
            if run.callThreads < threads {
                let workers = Swift.min(threads / Swift.max(run.callThreads, 1), run.calls.count)
                body(run.calls, true) {
                    DispatchQueue.concurrentPerform(iterations: workers) { worker in
                        for position in stride(from: worker, to: run.calls.count, by: workers) { replay(calls[run.calls[position]], output: c[worker]) }
                    }
                }
            } else {
                for index in run.calls { body([index], false) { replaySplit(calls[index], output: c[0]) } }
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

extension GEMMCall {
    /// Floating-point operations: 2·m·n·k.
    var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
}

/// What tells a train step's GEMMs apart in the by-shape breakdown: transposes, m, n, k and
/// whether C is accumulated into (leading dimensions aside).
struct GEMMShape: Hashable {
    let transposeA: Bool, transposeB: Bool
    let m: Int, n: Int, k: Int
    let accumulates: Bool
    /// Made inside a kernel's parallel region (one thread per call).
    let insideKernels: Bool

    /// "TN": whether op(A) and op(B) are transposed.
    var transpose: String { (transposeA ? "T" : "N") + (transposeB ? "T" : "N") }

    /// "TN 768×256×4096", with "+C" when C is accumulated into: op(A) is m × k, op(B) k × n.
    var name: String { "\(transpose) \(m)×\(n)×\(k)\(accumulates ? " +C" : "")\(insideKernels ? " (in kernels)" : "")" }
}

extension GEMMShape {
    init(_ call: GEMMCall, insideKernels: Bool) {
        self.init(transposeA: call.transposeA, transposeB: call.transposeB, m: call.m, n: call.n, k: call.k, accumulates: call.accumulates, insideKernels: insideKernels)
    }
}

/// One shape's part of a train step's GEMMs (`GEMMReplay.timeByShape`), as the JSON's
/// `gemm_shapes` entries hold it.
struct GEMMShapeTime: Codable {
    /// `GEMMShape.name`: "TN 768×256×4096", "+C" when accumulating.
    let gemm: String
    let transpose: String
    let m: Int, n: Int, k: Int
    let accumulates: Bool
    let insideKernels: Bool
    let callsPerStep: Int
    let millisecondsPerStep: Double
    let gflops: Double
    /// Of the replayed GEMMs' time, timed call by call.
    let shareOfGEMMTime: Double

    enum CodingKeys: String, CodingKey {
        case gemm, transpose, m, n, k, accumulates, gflops
        case insideKernels = "inside_kernels"
        case callsPerStep = "calls_per_step"
        case millisecondsPerStep = "ms_per_step"
        case shareOfGEMMTime = "share_of_gemm_time"
    }

    init(shape: GEMMShape, callsPerStep: Int, millisecondsPerStep: Double, gflops: Double, shareOfGEMMTime: Double) {
        gemm = shape.name
        transpose = shape.transpose
        (m, n, k) = (shape.m, shape.n, shape.k)
        accumulates = shape.accumulates
        insideKernels = shape.insideKernels
        self.callsPerStep = callsPerStep
        self.millisecondsPerStep = millisecondsPerStep
        self.gflops = gflops
        self.shareOfGEMMTime = shareOfGEMMTime
    }
}
