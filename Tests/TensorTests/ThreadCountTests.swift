import Tensor
import XCTest

/// Kernels split their rows over the configured threads (`BLASRuntime.setThreadCount`), each
/// output element computed by one thread in the same order as on one thread: results must be
/// bit-identical whatever the thread count. The shapes here are above the size where kernels
/// start splitting work.
final class ThreadCountTests: XCTestCase {
    /// Runs `body` at each thread count and asserts every run returns the same bits as the first.
    private func assertIdenticalAcrossThreadCounts(
        _ name: String, file: StaticString = #filePath, line: UInt = #line, _ body: () -> [Tensor]
    ) {
        let configured = BLASRuntime.threadCount
        defer { BLASRuntime.setThreadCount(configured) }
        var reference: [[Float]]?
        for threads in [1, 2, 3] {
            BLASRuntime.setThreadCount(threads)
            let values = body().map(\.floats)
            if let reference {
                XCTAssertEqual(values.count, reference.count, file: file, line: line)
                for (index, (actual, expected)) in zip(values, reference).enumerated() {
                    XCTAssertTrue(
                        actual.elementsEqual(expected) { $0.bitPattern == $1.bitPattern },
                        "\(name): output \(index) differs between 1 and \(threads) threads", file: file, line: line)
                }
            } else {
                reference = values
            }
        }
    }

    private func floatTensor(_ shape: [Int], seed: UInt64, in range: ClosedRange<Double> = -1...1) -> Tensor {
        let tensor = randomTensor(shape, seed: seed, in: range).converted(to: .float32)
        tensor.requiresGradient = true
        return tensor
    }

    func testElementwiseAndNormalisationKernels() {
        // (B, T, C) = (4, 128, 96): 49k elements per tensor.
        assertIdenticalAcrossThreadCounts("elementwise") {
            let x = floatTensor([4, 128, 96], seed: 801, in: -3...3)
            let y = floatTensor([4, 128, 96], seed: 802)
            let rowScale = floatTensor([4, 128, 1], seed: 803)
            let weight = floatTensor([96], seed: 804, in: 0.5...1.5)
            let normed = x.rmsNormalized(weight: weight, epsilon: 1e-6)
            let mixed = (normed.silu() * y + rowScale).exp() - x.sigmoid() / (y * y + 1) + Tensor.swiGLU(gate: x, up: normed)
            let logProbabilities = mixed.logSoftmax()
            let probabilities = (x * 0.5).softmax()
            let transposed = (logProbabilities + probabilities).permuted([1, 0, 2]).contiguous()
            let loss = (transposed * transposed.tanh()).sum()
            let grads = gradients(of: loss, withRespectTo: [x, y, rowScale, weight])
            return [normed, mixed, logProbabilities, probabilities, transposed, loss] + grads
        }
    }

    func testEmbeddingRotaryAndAttention() {
        // B = 2, T = 130 (three query blocks), 4 query heads on 2 key heads, D = 16.
        let ids = (0..<(2 * 130)).map { ($0 * 37) % 50 }
        let rotary = RotaryEmbedding(headDimension: 16, maxPositions: 130)
        assertIdenticalAcrossThreadCounts("attention") {
            let table = floatTensor([50, 128], seed: 811)
            let hidden = table.embedding(ids, shape: [2, 130])  // (B, T, 128)
            let query = hidden.reshaped([2, 130, 8, 16]).sliced(axis: 2, 0..<4)
                .rotaryEmbedded(rotary, positions: Array(0..<130))
            let key = hidden.reshaped([2, 130, 8, 16]).sliced(axis: 2, 4..<6)
                .rotaryEmbedded(rotary, positions: Array(0..<130))
            let value = hidden.reshaped([2, 130, 8, 16]).sliced(axis: 2, 6..<8)
            let attended = Tensor.scaledDotProductAttention(query: query, key: key, value: value)
            let loss = (attended * attended).sum()
            return [attended, loss] + gradients(of: loss, withRespectTo: [table])
        }
    }
}

/// Large products split over the threads (`Kernels.splitGEMM`) against the same products on one
/// thread, in every transpose combination the autodiff rules use, for row and column splits.
final class SplitGEMMTests: XCTestCase {
    func testSplitProductsMatchOneThread() {
        let configured = BLASRuntime.threadCount
        defer { BLASRuntime.setThreadCount(configured) }
        // (m, k, n): rows split (m ≥ n), columns split (m < n), and a partial last tile.
        for (index, (m, k, n)) in [(301, 96, 200), (20, 300, 517), (1030, 64, 272)].enumerated() {
            let seed = 1200 + UInt64(index) * 10
            let operands = [randomTensor([m, k], seed: seed), randomTensor([k, n], seed: seed + 1), randomTensor([k, m], seed: seed + 2), randomTensor([n, k], seed: seed + 3)]
            func products(_ dtype: DType) -> [[Double]] {
                let (a, b, aT, bT) = (operands[0].converted(to: dtype), operands[1].converted(to: dtype), operands[2].converted(to: dtype), operands[3].converted(to: dtype))
                return [Tensor.matmul(a, b), Tensor.matmul(aT.transposed(), b), Tensor.matmul(a, bT.transposed()),
                        Tensor.matmul(aT.transposed(), bT.transposed()), a.linear(bT)].map(\.doubles)
            }
            BLASRuntime.setThreadCount(1)
            let reference = products(.float64), reference32 = products(.float32)
            for threads in [2, 3] {
                BLASRuntime.setThreadCount(threads)
                for (position, (actual, expected)) in zip(products(.float64), reference).enumerated() {
                    assertClose(actual, expected, absoluteTolerance: 1e-12, relativeTolerance: 1e-12, "float64 \(m)×\(k)×\(n) product \(position), \(threads) threads")
                }
                for (position, (actual, expected)) in zip(products(.float32), reference32).enumerated() {
                    assertClose(actual, expected, absoluteTolerance: 1e-5, relativeTolerance: 1e-5, "float32 \(m)×\(k)×\(n) product \(position), \(threads) threads")
                }
            }
        }
    }
}
