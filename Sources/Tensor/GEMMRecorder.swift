import CKernels
import Foundation

/// One float32 GEMM as BLAS received it: what the benchmark harness replays to find how fast a
/// train step's GEMMs alone can run.
public struct GEMMCall: Hashable, Sendable {
    public let transposeA: Bool, transposeB: Bool
    public let m: Int, n: Int, k: Int
    public let lda: Int, ldb: Int, ldc: Int
    /// Whether C was accumulated into (beta ≠ 0), which reads C as well.
    public let accumulates: Bool
    /// The threads the call could split over (`Kernels.splitGEMM`): 1 inside kernels that run
    /// many small GEMMs on their own threads (attention's heads).
    public let threads: Int
    /// Whether this call and the next ran in one parallel region: a linear layer's input gradient
    /// and its weight gradient (`Float.linearGradientGEMMs`).
    public var sharesRegionWithNext = false
}

/// Records the float32 GEMMs made inside `recording(_:)`, from any thread.
///
/// Instrumentation for the benchmark harness only. While nothing records, a GEMM pays one relaxed
/// load of a flag (`ck_gemm_recording_active`) and takes no lock; the lock guards the list only
/// while a recording runs.
public enum GEMMRecorder {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var calls: [GEMMCall]?

    /// Runs `body` and returns its result with every float32 GEMM it made, in call order.
    public static func recording<R>(_ body: () throws -> R) rethrows -> (result: R, calls: [GEMMCall]) {
        lock.withLock { calls = [] }
        ck_set_gemm_recording(1)
        defer {
            ck_set_gemm_recording(0)
            lock.withLock { calls = nil }
        }
        let result = try body()
        return (result, lock.withLock { calls ?? [] })
    }

    @inline(__always)
    static func record(_ call: @autoclosure () -> GEMMCall) {
        guard ck_gemm_recording_active() != 0 else { return }
        lock.lock()
        defer { lock.unlock() }
        if calls != nil { calls!.append(call()) }
    }
}
