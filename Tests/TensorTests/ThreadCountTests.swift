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
