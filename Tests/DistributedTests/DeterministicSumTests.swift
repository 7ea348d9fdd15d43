import ARPO
import Distributed
import XCTest

/// The arithmetic of the deterministic all-reduce, played out for every rank of a simulated job
/// in one process: the chunked exchange must give every rank the same bits, those of adding the
/// ranks' buffers in rank order.
final class DeterministicSumTests: XCTestCase {
    /// What rank `rank` ends with in the all-to-all, sum, all-gather exchange.
    func exchange(_ buffers: [[Float]], rank: Int) -> [Float] {
        let size = buffers.count, count = buffers[0].count
        let chunk = DeterministicSum.chunkLength(count: count, size: size)
        func padded(_ buffer: [Float]) -> [Float] { buffer + [Float](repeating: 0, count: chunk * size - count) }
        // Every rank's summed chunk (what the all-gather hands to each).
        var gathered: [Float] = []
        for owner in 0..<size {
            let received = buffers.flatMap { Array(padded($0)[(owner * chunk)..<((owner + 1) * chunk)]) }
            var summed = [Float](repeating: 0, count: chunk)
            received.withUnsafeBufferPointer { input in
                summed.withUnsafeMutableBufferPointer { DeterministicSum.sumInRankOrder(input, ranks: size, length: chunk, into: $0) }
            }
            gathered += summed
        }
        _ = rank
        return Array(gathered.prefix(count))
    }

    func testEveryRankGetsTheRankOrderSumBitForBit() {
        var generator = SystemRandomNumberGenerator()
        for size in 1...5 {
            for count in [1, 2, 7, 64, 1001] {
                let buffers = (0..<size).map { _ in (0..<count).map { _ in Float.random(in: -1e3...1e3, using: &generator) * Float.random(in: 1e-4...1, using: &generator) } }
                let expected = DeterministicSum.reference(buffers)
                for rank in 0..<size {
                    XCTAssertEqual(exchange(buffers, rank: rank).map(\.bitPattern), expected.map(\.bitPattern), "size \(size), count \(count), rank \(rank)")
                }
            }
        }
    }

    /// The order is fixed: rank 0's value first. (1e8 + 1) − 1e8 is 0 in float32, while
    /// 1e8 + (1 − 1e8) is 0 too but 1 + (1e8 − 1e8) is 1: a reduction in another order gives
    /// other bits, so the order is part of the contract.
    func testSumsInRankOrder() {
        let buffers: [[Float]] = [[1e8, 1], [1, 1e8], [-1e8, -1e8]]
        let summed = exchange(buffers, rank: 1)
        XCTAssertEqual(summed, [0, 0])
        XCTAssertEqual(exchange([[1], [1e8], [-1e8]], rank: 0), [0])
        XCTAssertEqual(exchange([[1e8], [-1e8], [1]], rank: 0), [1])
    }

    func testChunkLength() {
        XCTAssertEqual(DeterministicSum.chunkLength(count: 10, size: 3), 4)
        XCTAssertEqual(DeterministicSum.chunkLength(count: 9, size: 3), 3)
        XCTAssertEqual(DeterministicSum.chunkLength(count: 0, size: 2), 1)
        XCTAssertEqual(DeterministicSum.chunkLength(count: 1, size: 4), 1)
    }

    func testSingleProcessCollectivesReturnTheirInput() {
        let communicator = SingleProcessCommunicator()
        XCTAssertEqual(communicator.sum([1.5, 2.5]), [1.5, 2.5])
        XCTAssertEqual(communicator.maximum(3), 3)
        XCTAssertEqual(communicator.allGather(["a": 1]), [["a": 1]])
        XCTAssertEqual(communicator.broadcast("x"), "x")
    }

    func testLauncherDetection() {
        XCTAssertNil(Launch.launcherWorldSize([:]))
        XCTAssertEqual(Launch.launcherWorldSize(["OMPI_COMM_WORLD_SIZE": "2"]), 2)
        XCTAssertEqual(Launch.launcherWorldSize(["PMI_SIZE": "4"]), 4)
    }

    /// Each SFT example goes to exactly one rank, longest first to the least loaded.
    func testSupervisedShareIsAPartitionBalancedByTokens() {
        let lengths = [100, 10, 90, 20, 50, 50, 5]
        let shares = (0..<3).map { SupervisedTrainer.share(lengths: lengths, rank: $0, size: 3) }
        XCTAssertEqual(shares.flatMap { $0 }.sorted(), Array(lengths.indices))
        let loads = shares.map { $0.reduce(0) { $0 + lengths[$1] } }
        XCTAssertLessThanOrEqual(loads.max()! - loads.min()!, 20, "loads \(loads)")
        XCTAssertEqual(SupervisedTrainer.share(lengths: lengths, rank: 0, size: 1), Array(lengths.indices))
        for share in shares { XCTAssertEqual(share, share.sorted(), "each share keeps the batch's order") }
    }
}
