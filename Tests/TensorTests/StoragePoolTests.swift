@testable import Tensor
import XCTest

/// The pool of freed tensor buffers: reuse by exact size, the capacity bound, and the age bound
/// that frees buffers no allocation asked for within `maximumIdleAllocations` pool allocations.
final class StoragePoolTests: XCTestCase {
    private let size = 1 << 16

    /// A released buffer comes back for the next allocation of its size, not for another size.
    func testReleasedBufferIsReusedForTheSameSize() {
        let pool = StoragePool(maximumIdleAllocations: 100)
        let buffer = pool.allocate(size)
        pool.release(buffer, byteCount: size)
        XCTAssertEqual(pool.bytesHeld, size)
        let other = pool.allocate(2 * size)
        XCTAssertNotEqual(other, buffer)
        XCTAssertEqual(pool.allocate(size), buffer)
        XCTAssertEqual(pool.bytesHeld, 0)
        pool.release(other, byteCount: 2 * size)
        pool.release(buffer, byteCount: size)
    }

    /// Buffers below the minimum size and buffers that would exceed the capacity go back to
    /// malloc.
    func testSmallBuffersAndBuffersBeyondCapacityAreNotHeld() {
        let pool = StoragePool(capacity: 2 * size, maximumIdleAllocations: 100)
        pool.release(pool.allocate(size / 2), byteCount: size / 2)
        XCTAssertEqual(pool.bytesHeld, 0)
        let buffers = (0..<3).map { _ in pool.allocate(size) }
        for buffer in buffers { pool.release(buffer, byteCount: size) }
        XCTAssertEqual(pool.bytesHeld, 2 * size)
    }

    /// A buffer of a size nobody asks for again is freed after `maximumIdleAllocations` (plus at
    /// most a quarter of it, the sweep interval) allocations of other sizes, while a size taken
    /// back within that window stays held.
    func testIdleBuffersAreFreedAndReusedOnesKept() {
        let idle = 64
        let pool = StoragePool(maximumIdleAllocations: idle)
        pool.release(pool.allocate(3 * size), byteCount: 3 * size)  // never asked for again
        var working = pool.allocate(size)
        for _ in 0..<(idle + idle / 4 + 1) {
            pool.release(working, byteCount: size)
            working = pool.allocate(size)  // reused every time
        }
        pool.release(working, byteCount: size)
        XCTAssertEqual(pool.bytesHeld, size, "the idle 3·\(size)-byte buffer should be freed, the working one kept")
        // Before the window ends, an idle buffer is still there.
        let fresh = StoragePool(maximumIdleAllocations: idle)
        fresh.release(fresh.allocate(3 * size), byteCount: 3 * size)
        for _ in 0..<(idle - 1) { fresh.release(fresh.allocate(size), byteCount: size) }
        XCTAssertEqual(fresh.bytesHeld, 4 * size)
    }
}
