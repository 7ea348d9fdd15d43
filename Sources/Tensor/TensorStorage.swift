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
/// step. Reusing the buffers of the previous step removes them. Buffer contents are never read
/// before a tensor writes them, so reuse changes no result.
///
/// Held buffers are bounded twice: by `capacity` (a buffer that does not fit goes back to
/// malloc), and by age: one not reused within `maximumIdleAllocations` pool allocations is
/// freed. Without the age bound, rollouts, whose prefills and observations come in ever new
/// sizes, filled the pool with sizes never asked for again: 700 MB peak resident size against
/// 200 MB without a pool.
final class StoragePool: @unchecked Sendable {
    static let shared = StoragePool()

    /// Buffers below this size go straight to malloc, which handles them well.
    let minimumBytes: Int
    /// Most bytes held for reuse at once.
    let capacity: Int
    /// A held buffer is freed once this many pool allocations happened since its release without
    /// taking it: six base train steps' worth (a step makes about 330), so a step's buffers wait
    /// for the next step. The rollout benchmark's peak resident size: 736 MB without the age
    /// bound, 508 MB at 8,192, 331 at 2,048, 291 at 1,024, 196 with no pool.
    let maximumIdleAllocations: Int

    private let lock = NSLock()
    private var buffers: [Int: [(pointer: UnsafeMutableRawPointer, releasedAt: Int)]] = [:]
    private var heldBytes = 0
    /// Allocations of `minimumBytes` and more so far: the pool's clock.
    private var allocations = 0
    private var nextSweep: Int

    init(minimumBytes: Int = 1 << 16, capacity: Int = 512 << 20, maximumIdleAllocations: Int = 2_048) {
        self.minimumBytes = minimumBytes
        self.capacity = capacity
        self.maximumIdleAllocations = maximumIdleAllocations
        nextSweep = maximumIdleAllocations
    }

    /// Bytes held for reuse now.
    var bytesHeld: Int {
        lock.lock()
        defer { lock.unlock() }
        return heldBytes
    }

    func allocate(_ byteCount: Int) -> UnsafeMutableRawPointer {
        if byteCount >= minimumBytes {
            lock.lock()
            allocations += 1
            if allocations >= nextSweep { freeIdleBuffers() }
            let reused = buffers[byteCount]?.popLast()?.pointer
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
                // Appended last and taken last: the oldest buffers of a size age out first.
                buffers[byteCount, default: []].append((pointer, allocations))
                heldBytes += byteCount
            }
            lock.unlock()
            if kept { return }
        }
        free(pointer)
    }

    /// Frees the buffers idle for more than `maximumIdleAllocations`; runs every quarter of
    /// that, so none is held much longer. Called with the lock held.
    private func freeIdleBuffers() {
        let oldest = allocations - maximumIdleAllocations
        for (byteCount, held) in buffers {
            // Each size's list is in release order.
            let stale = held.prefix { $0.releasedAt < oldest }.count
            guard stale > 0 else { continue }
            for entry in held.prefix(stale) { free(entry.pointer) }
            heldBytes -= stale * byteCount
            buffers[byteCount] = stale == held.count ? nil : Array(held.dropFirst(stale))
        }
        nextSweep = allocations + Swift.max(maximumIdleAllocations / 4, 1)
    }
}
