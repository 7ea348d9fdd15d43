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
/// Instrumentation for the benchmark harness only: while nothing records, each GEMM pays one
/// uncontended lock, far below the microseconds the smallest GEMM takes.
public enum GEMMRecorder {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var calls: [GEMMCall]?

    /// Runs `body` and returns its result with every float32 GEMM it made, in call order.
    public static func recording<R>(_ body: () throws -> R) rethrows -> (result: R, calls: [GEMMCall]) {
        lock.withLock { calls = [] }
        defer { lock.withLock { calls = nil } }
        let result = try body()
        return (result, lock.withLock { calls ?? [] })
    }

    @inline(__always)
    static func record(_ call: @autoclosure () -> GEMMCall) {
        lock.lock()
        defer { lock.unlock() }
        if calls != nil { calls!.append(call()) }
    }
}
