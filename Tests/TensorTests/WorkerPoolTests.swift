import Foundation
@testable import Tensor
import XCTest

/// The persistent workers behind every parallel kernel (`Kernels.runChunks` over
/// `ck_parallel_run`): each chunk runs exactly once per job, nested and concurrent jobs run
/// inline instead of waiting, and jobs still complete after the workers have gone to sleep. A lost wake-up or a job published to a
/// worker that missed it would hang, so every scenario runs under a deadline.
final class WorkerPoolTests: XCTestCase {
    /// Counts, per chunk, how often it ran. Each chunk writes only its own slot.
    private final class Tally: @unchecked Sendable {
        var runs: [Int]
        init(_ chunks: Int) { runs = [Int](repeating: 0, count: chunks) }
    }

    private static func run(_ chunks: Int, threads: Int = 2, _ body: (Int) -> Void) {
        Kernels.runChunks(chunks, threads: threads, body)
    }

    /// Runs `body` on a separate thread and fails if it has not returned within `seconds`.
    private func withDeadline(_ seconds: Double, _ what: String, _ body: @escaping @Sendable () -> Void) {
        let done = expectation(description: what)
        Thread.detachNewThread {
            body()
            done.fulfill()
        }
        wait(for: [done], timeout: seconds)
    }

    func testEveryChunkRunsExactlyOncePerJob() {
        withDeadline(60, "jobs of 1 to 40 chunks on 1 to 4 threads") {
            for round in 0..<400 {
                let chunks = 1 + round % 40, threads = 1 + round % 4
                let tally = Tally(chunks)
                Self.run(chunks, threads: threads) { tally.runs[$0] += 1 }
                XCTAssertEqual(tally.runs, [Int](repeating: 1, count: chunks), "round \(round), \(chunks) chunks on \(threads) threads")
            }
        }
    }

    /// Chunks are claimed in increasing order, so a chunk may wait for earlier ones (the blocked
    /// float32 kernel's parallel form has its row blocks wait for its packing chunks): here every
    /// chunk waits until all chunks before it have started, which hangs if a thread ever claims a
    /// chunk while an earlier one is still unclaimed and no other thread is free to take it.
    func testChunksAreClaimedInOrderSoTheyMayWaitForEarlierOnes() {
        withDeadline(60, "chunks waiting for the chunks before them") {
            for round in 0..<200 {
                let chunks = 2 + round % 30, threads = 2 + round % 3
                let lock = NSLock()
                var started = [Bool](repeating: false, count: chunks)
                Self.run(chunks, threads: threads) { chunk in
                    lock.withLock { started[chunk] = true }
                    while !lock.withLock({ started[..<chunk].allSatisfy { $0 } }) {}
                }
                XCTAssertTrue(started.allSatisfy { $0 }, "round \(round)")
            }
        }
    }

    /// A chunk that holds its thread for a long time does not hold up the others: the rest are
    /// claimed by the other thread, so they all finish while the slow one still runs.
    ///
    /// The slow chunk waits for the others to finish, up to 20 s, rather than sleeping a fixed
    /// time: on a loaded host a fixed 0.3 s can pass before the other thread is even scheduled,
    /// while a pool that made the others wait for the slow chunk still fails, after 20 s.
    func testOtherChunksGoOnWhileOneIsSlow() {
        withDeadline(60, "a slow chunk") {
            let chunks = 20
            let finished = Tally(chunks)
            let lock = NSLock()
            var finishedBeforeSlow = 0
            Self.run(chunks) { chunk in
                if chunk == 0 {
                    let giveUp = Date().addingTimeInterval(20)
                    while lock.withLock({ finished.runs.reduce(0, +) }) < chunks - 1 && Date() < giveUp {
                        Thread.sleep(forTimeInterval: 0.001)
                    }
                    lock.lock()
                    finishedBeforeSlow = finished.runs.reduce(0, +)
                    lock.unlock()
                }
                lock.lock()
                finished.runs[chunk] += 1
                lock.unlock()
            }
            XCTAssertEqual(finished.runs, [Int](repeating: 1, count: chunks))
            XCTAssertEqual(finishedBeforeSlow, chunks - 1, "the other chunks waited for the slow one")
        }
    }

    func testNestedJobsRunInline() {
        withDeadline(60, "nested jobs") {
            let outer = Tally(4)
            let inner = (0..<4).map { _ in Tally(3) }
            Self.run(4) { chunk in
                outer.runs[chunk] += 1
                Self.run(3) { inner[chunk].runs[$0] += 1 }
            }
            XCTAssertEqual(outer.runs, [1, 1, 1, 1])
            for tally in inner { XCTAssertEqual(tally.runs, [1, 1, 1]) }
        }
    }

    func testConcurrentCallersAllComplete() {
        withDeadline(120, "four threads submitting jobs at once") {
            let callers = 4, rounds = 400
            let sums = Tally(callers)
            DispatchQueue.concurrentPerform(iterations: callers) { caller in
                for _ in 0..<rounds {
                    let tally = Tally(2)
                    Self.run(2) { tally.runs[$0] += 1 }
                    sums.runs[caller] += tally.runs.reduce(0, +)
                }
            }
            XCTAssertEqual(sums.runs, [Int](repeating: 2 * rounds, count: callers))
        }
    }

    /// Pauses around the workers' polling window (2 ms), so jobs arrive while they poll, as they
    /// fall asleep, and long after.
    func testJobsCompleteAfterTheWorkersSleep() {
        withDeadline(120, "jobs between pauses") {
            for pause in [0.0, 0.0005, 0.0019, 0.002, 0.0021, 0.004, 0.02] {
                for _ in 0..<5 {
                    Thread.sleep(forTimeInterval: pause)
                    let tally = Tally(3)
                    Self.run(3) { tally.runs[$0] += 1 }
                    XCTAssertEqual(tally.runs, [1, 1, 1], "after a pause of \(pause) s")
                }
            }
        }
    }

    /// Attention splits its (batch row, key head) units over the configured threads, and the
    /// GEMMs inside each unit stay on that unit's thread. Reading the thread count after BLAS had
    /// dropped to one thread once ran every unit in one range on the calling thread, which
    /// bit-identity tests cannot see.
    func testAttentionSplitsItsUnitsOverTheConfiguredThreads() {
        let configured = ComputeSettings.current
        defer { configured.apply() }
        configured.with(threads: 2).apply()
        // 16 batch rows × 2 key heads, T = 64, D = 16: far above the parallel threshold.
        let geometry = AttentionGeometry(query: [16, 64, 4, 16], key: [16, 64, 2, 16], mask: .causal, scale: nil)
        let lock = NSLock()
        var ranges: [Range<Int>] = []
        var gemmThreadsInside: Set<Int> = []
        Kernels.forEachKeyHead(geometry) { range in
            let inside = Kernels.gemmThreads
            lock.withLock {
                ranges.append(range)
                gemmThreadsInside.insert(inside)
            }
        }
        XCTAssertEqual(ranges.count, 2 * Kernels.chunksPerThread, "units should be split into the pool's chunks for 2 threads")
        XCTAssertEqual(ranges.sorted { $0.lowerBound < $1.lowerBound }.flatMap { Array($0) }, Array(0..<32), "every unit runs exactly once")
        XCTAssertEqual(gemmThreadsInside, [1], "a GEMM inside a unit runs on the unit's thread")
        XCTAssertEqual(Kernels.gemmThreads, 2, "outside, GEMMs split over the configured threads")
    }

    /// A large GEMM splits C into one block per thread (rows when C has at least as many rows as
    /// columns, else columns), in whole 16-row tiles, covering C exactly once; a small one, or
    /// one on one thread, is a single call. A deep one (k ≥ 4 × C's larger side) is cut at the
    /// middle of k on any thread count: the first half into C with the caller's beta, the second
    /// into scratch with beta 0. Blocks for BLAS cut rows in whole 12-row groups, or a product
    /// with fewer than 96 rows and more columns into 2 column blocks on every thread count
    /// (whole inside a parallel region's chunk).
    func testSplitGEMMCoversTheProductInAlignedBlocks() {
        struct Block: Equatable {
            let m: Int, n: Int, k: Int
            let aOffset: Int, bOffset: Int
            /// Offset into C, or nil for a block written elsewhere (the scratch half).
            let cOffset: Int?
            let beta: Float
        }
        final class Calls: @unchecked Sendable {
            let lock = NSLock()
            var blocks: [Block] = []
        }
        func split(threads: Int, blasBlocks: Bool = false, transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int) -> [Block] {
            let cCount = m * n
            let base = UnsafeMutablePointer<Float>.allocate(capacity: cCount)
            base.initialize(repeating: 0, count: cCount)
            defer { base.deallocate() }
            let calls = Calls()
            let (lda, ldb, ldc) = (transposeA ? m : k, transposeB ? k : n, n)
            Kernels.splitGEMM(threads: threads, blasBlocks: blasBlocks, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: UnsafePointer(base), lda: lda, b: UnsafePointer(base), ldb: ldb, beta: 1, c: base, ldc: ldc) { m, n, k, a, b, beta, c, _ in
                let offset = c - base
                calls.lock.withLock {
                    calls.blocks.append(Block(m: m, n: n, k: k, aOffset: a - UnsafePointer(base), bOffset: b - UnsafePointer(base), cOffset: (0..<cCount).contains(offset) ? offset : nil, beta: beta))
                }
            }
            return calls.blocks.sorted { ($0.cOffset ?? Int.max, $0.aOffset) < ($1.cOffset ?? Int.max, $1.aOffset) }
        }
        // Rows: 1000 rows = 63 tiles of 16 → blocks of 31 and 32 tiles (496 and 504 rows).
        var blocks = split(threads: 2, transposeA: false, transposeB: true, m: 1000, n: 256, k: 256)
        XCTAssertEqual(blocks.map(\.m), [496, 504])
        XCTAssertEqual(blocks.map(\.n), [256, 256])
        XCTAssertEqual(blocks.map(\.aOffset), [0, 496 * 256], "row blocks of a row-major A")
        XCTAssertEqual(blocks.map(\.bOffset), [0, 0])
        XCTAssertEqual(blocks.map(\.cOffset), [0, 496 * 256])
        XCTAssertEqual(blocks.map(\.beta), [1, 1], "every block keeps the caller's beta")
        // Rows of a transposed A (k × m in memory) start at column offsets.
        blocks = split(threads: 2, transposeA: true, transposeB: false, m: 768, n: 256, k: 2048)
        XCTAssertEqual(blocks.map(\.aOffset), [0, 384])
        XCTAssertEqual(blocks.map(\.cOffset), [0, 384 * 256])
        // Columns, three threads: 16 rows × 1000 columns.
        blocks = split(threads: 3, transposeA: false, transposeB: true, m: 16, n: 1000, k: 256)
        XCTAssertEqual(blocks.map(\.n), [336, 336, 328])
        XCTAssertEqual(blocks.map(\.bOffset), [0, 336 * 256, 672 * 256], "column blocks of a transposed B (n × k)")
        XCTAssertEqual(blocks.map(\.cOffset), [0, 336, 672])
        blocks = split(threads: 2, transposeA: false, transposeB: false, m: 16, n: 1000, k: 256)
        XCTAssertEqual(blocks.map(\.bOffset), [0, 496], "column blocks of a row-major B (k × n)")
        // For BLAS: rows in 12-row groups (1000 rows = 84 groups → 42 and 42), also where C has
        // more columns than rows from 96 rows on.
        blocks = split(threads: 2, blasBlocks: true, transposeA: false, transposeB: true, m: 1000, n: 256, k: 256)
        XCTAssertEqual(blocks.map(\.m), [504, 496])
        XCTAssertEqual(blocks.map(\.cOffset), [0, 504 * 256])
        blocks = split(threads: 2, blasBlocks: true, transposeA: true, transposeB: false, m: 130, n: 272, k: 32)
        XCTAssertEqual(blocks.map(\.m), [60, 70])
        XCTAssertEqual(blocks.map(\.aOffset), [0, 60], "row blocks of a transposed A")
        // Fewer rows than 96 and than columns: two column blocks of whole 16-column tiles, on
        // one thread too (65 × 272: 17 tiles → 8 and 9; 16 × 1000: 63 → 31 and 32).
        for threads in [1, 2, 3] {
            blocks = split(threads: threads, blasBlocks: true, transposeA: false, transposeB: true, m: 65, n: 272, k: 32)
            XCTAssertEqual(blocks.map(\.n), [128, 144], "\(threads) threads")
            XCTAssertEqual(blocks.map(\.m), [65, 65])
            XCTAssertEqual(blocks.map(\.cOffset), [0, 128])
            blocks = split(threads: threads, blasBlocks: true, transposeA: false, transposeB: false, m: 16, n: 1000, k: 256)
            XCTAssertEqual(blocks.map(\.bOffset), [0, 496], "\(threads) threads")
        }
        // Inside a chunk of a parallel region such a product is one call on every thread count.
        XCTAssertEqual(Kernels.asChunk { split(threads: 1, blasBlocks: true, transposeA: false, transposeB: true, m: 65, n: 272, k: 32) }.map(\.n), [272])
        XCTAssertEqual(split(threads: 2, blasBlocks: true, transposeA: false, transposeB: false, m: 16, n: 64, k: 64).map(\.n), [64], "below the split size")
        // Below the split size, or on one thread: one call for the whole product.
        XCTAssertEqual(split(threads: 2, transposeA: false, transposeB: false, m: 32, n: 64, k: 64).map(\.m), [32])
        XCTAssertEqual(split(threads: 1, transposeA: false, transposeB: false, m: 4096, n: 256, k: 256).map(\.m), [4096])

        // Deep: a weight gradient's dYᵀ X, 256 × 256 over 4088 rows, cut into k = 2032 and 2056
        // (the cut is on a 16 boundary), the same on one, two or four threads.
        let halves = [
            Block(m: 256, n: 256, k: 2032, aOffset: 0, bOffset: 0, cOffset: 0, beta: 1),
            Block(m: 256, n: 256, k: 2056, aOffset: 2032 * 256, bOffset: 2032 * 256, cOffset: nil, beta: 0),
        ]
        XCTAssertEqual(split(threads: 1, transposeA: true, transposeB: false, m: 256, n: 256, k: 4088), halves)
        XCTAssertEqual(split(threads: 2, transposeA: true, transposeB: false, m: 256, n: 256, k: 4088), halves)
        blocks = split(threads: 4, transposeA: true, transposeB: false, m: 256, n: 256, k: 4088)
        XCTAssertEqual(blocks.map(\.m), [128, 128, 128, 128], "four threads: each half split by rows")
        XCTAssertEqual(blocks.map(\.k), [2032, 2032, 2056, 2056])
        XCTAssertEqual(blocks.map(\.cOffset), [0, 128 * 256, nil, nil])
        XCTAssertEqual(Set(blocks.map(\.aOffset)), [0, 128, 2032 * 256, 2032 * 256 + 128], "row blocks of each half of a transposed A")
        // Row-major A (m × k) and transposed B (n × k): the second half starts 2048 columns in.
        blocks = split(threads: 2, transposeA: false, transposeB: true, m: 64, n: 200, k: 4096)
        XCTAssertEqual(blocks.map(\.aOffset), [0, 2048])
        XCTAssertEqual(blocks.map(\.bOffset), [0, 2048])
        XCTAssertEqual(blocks.map(\.k), [2048, 2048])
        // Not deep enough (k < 4 × 768), or too small: no cut along k.
        XCTAssertEqual(split(threads: 1, transposeA: true, transposeB: false, m: 768, n: 256, k: 2048).map(\.k), [2048])
        XCTAssertEqual(split(threads: 1, transposeA: true, transposeB: false, m: 4, n: 4, k: 4096).map(\.k), [4096])
    }
}
