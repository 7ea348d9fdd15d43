import Tensor
import XCTest

/// The recorder the benchmark harness replays a train step's GEMMs from.
final class GEMMRecorderTests: XCTestCase {
    /// A linear (input · Wᵀ, a transpose flag) and its backward (dX = dY · W, dW = dYᵀ · X) are
    /// recorded with BLAS's shapes and flags, in call order; float64 GEMMs and anything outside
    /// `recording` are not.
    func testRecordsFloat32GEMMsWithTheirShapesAndFlags() {
        let input = randomTensor([6, 4], seed: 1).converted(to: .float32)
        let weight = randomTensor([5, 4], seed: 2).converted(to: .float32)
        input.requiresGradient = true
        weight.requiresGradient = true
        let (_, calls) = GEMMRecorder.recording {
            input.linear(weight).sum().backward()
            _ = withoutGradients { randomTensor([3, 3], seed: 3).matmul(randomTensor([3, 3], seed: 4)) }  // float64
        }
        let threads = BLASRuntime.threadCount
        XCTAssertEqual(calls.count, 3)
        let forward = calls[0]
        XCTAssertEqual([forward.transposeA, forward.transposeB, forward.accumulates], [false, true, false], "input · Wᵀ as a transpose flag")
        XCTAssertEqual([forward.m, forward.n, forward.k, forward.lda, forward.ldb, forward.ldc, forward.threads], [6, 5, 4, 4, 4, 5, threads])
        XCTAssertEqual(Set(calls.dropFirst().map { [$0.m, $0.n, $0.k] }), [[6, 4, 5], [5, 4, 6]], "dX (6×4 over 5) and dW (5×4 over 6)")
        XCTAssertTrue(calls.dropFirst().contains { $0.transposeA && !$0.transposeB && $0.m == 5 }, "dW = dYᵀ · X")
        _ = withoutGradients { input.linear(weight) }
        XCTAssertEqual(GEMMRecorder.recording { () }.calls, [], "nothing carries over between recordings")
    }
}
