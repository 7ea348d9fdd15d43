#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A reference-counted, 64-byte aligned block of scalars.
///
/// Every tensor buffer is allocated here, so an allocation strategy changes in this one place:
/// large buffers come from and go back to `StoragePool`.
final class TensorStorage: @unchecked Sendable {
    let dtype: DType
    /// Number of scalars.
    let count: Int
    let base: UnsafeMutableRawPointer
    /// Bumped by every in-place write through the public API (`assign`, `addInPlace`,
    /// `scaleInPlace`, `withUnsafeMutableBufferPointer`), so copies derived from the values
    /// (the decode path's fused weights) can tell when they are stale.
    var version = 0
    /// Bytes allocated (at least 64).
    private let byteCount: Int

    init(dtype: DType, count: Int, zeroed: Bool) {
        precondition(count >= 0, "a tensor cannot hold \(count) elements")
        self.dtype = dtype
        self.count = count
        byteCount = max(count * dtype.byteCount, 64)
        base = StoragePool.shared.allocate(byteCount)
        if zeroed { memset(base, 0, byteCount) }
    }

    deinit { StoragePool.shared.release(base, byteCount: byteCount) }

    @inline(__always)
    func pointer<T: TensorScalar>(_ type: T.Type) -> UnsafeMutablePointer<T> {
        precondition(T.dtype == dtype, "storage holds \(dtype), not \(T.dtype)")
        return base.assumingMemoryBound(to: T.self)
    }
}

/// Freed tensor buffers of 64 KiB and up, kept by exact size for the next allocation of that size.
///
/// A train step allocates the same shapes every step, and each fresh large buffer from malloc
/// was new pages from the kernel: page faults and their zeroing were about 6% of a base train
/// step. Reusing the buffers of the previous step removes them. The cache is bounded
/// (`capacity`), evicting nothing: a buffer that does not fit goes back to malloc. Buffer
/// contents are never read before a tensor writes them, so reuse changes no result.
final class StoragePool: @unchecked Sendable {
    static let shared = StoragePool()

    /// Buffers below this size go straight to malloc, which handles them well.
    let minimumBytes = 1 << 16
    /// Most bytes held for reuse at once.
    let capacity = 512 << 20

    private let lock = NSLock()
    private var buffers: [Int: [UnsafeMutableRawPointer]] = [:]
    private var heldBytes = 0

    func allocate(_ byteCount: Int) -> UnsafeMutableRawPointer {
        if byteCount >= minimumBytes {
            lock.lock()
            let reused = buffers[byteCount]?.popLast()
            if reused != nil { heldBytes -= byteCount }
            lock.unlock()
            if let reused { return reused }
        }
        var pointer: UnsafeMutableRawPointer?
        let status = posix_memalign(&pointer, 64, byteCount)
        precondition(status == 0 && pointer != nil, "out of memory allocating \(byteCount) bytes")
        return pointer!
    }

    func release(_ pointer: UnsafeMutableRawPointer, byteCount: Int) {
        if byteCount >= minimumBytes {
            lock.lock()
            let kept = heldBytes + byteCount <= capacity
            if kept {
                buffers[byteCount, default: []].append(pointer)
                heldBytes += byteCount
            }
            lock.unlock()
            if kept { return }
        }
        free(pointer)
    }
}
