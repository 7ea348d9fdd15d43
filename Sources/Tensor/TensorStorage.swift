#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A reference-counted, 64-byte aligned block of scalars.
///
/// Every tensor buffer is allocated here, so an allocation strategy (a pool, a caching
/// allocator) changes in this one place.
final class TensorStorage: @unchecked Sendable {
    let dtype: DType
    /// Number of scalars.
    let count: Int
    let base: UnsafeMutableRawPointer
    /// Bumped by every in-place write through the public API (`assign`, `addInPlace`,
    /// `scaleInPlace`, `withUnsafeMutableBufferPointer`), so copies derived from the values
    /// (the decode path's fused weights) can tell when they are stale.
    var version = 0

    init(dtype: DType, count: Int, zeroed: Bool) {
        precondition(count >= 0, "a tensor cannot hold \(count) elements")
        self.dtype = dtype
        self.count = count
        let bytes = max(count * dtype.byteCount, 64)
        var pointer: UnsafeMutableRawPointer?
        let status = posix_memalign(&pointer, 64, bytes)
        precondition(status == 0 && pointer != nil, "out of memory allocating \(bytes) bytes")
        base = pointer!
        if zeroed { memset(base, 0, bytes) }
    }

    deinit { free(base) }

    @inline(__always)
    func pointer<T: TensorScalar>(_ type: T.Type) -> UnsafeMutablePointer<T> {
        precondition(T.dtype == dtype, "storage holds \(dtype), not \(T.dtype)")
        return base.assumingMemoryBound(to: T.self)
    }
}
