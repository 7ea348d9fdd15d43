import Tensor
import XCTest

/// Kernels split their rows over the configured threads (`ComputeSettings.threads`), each
/// output element computed by one thread in the same order as on one thread: results must be
/// bit-identical whatever the thread count. The shapes here are above the size where kernels
/// start splitting work.
final class ThreadCountTests: XCTestCase {
    /// Runs `body` at each thread count and asserts every run returns the same bits as the first.
    private func assertIdenticalAcrossThreadCounts(
        _ name: String, file: StaticString = #filePath, line: UInt = #line, _ body: () -> [Tensor]
    ) {
        var reference: [[Float]]?
        for threads in [1, 2, 3] {
            let values = ComputeSettings.current.with(threads: threads).withApplied { body().map(\.floats) }
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

    func testElementwiseAndNormalisationKernels() {
        // (B, T, C) = (4, 128, 96): 49k elements per tensor.
        assertIdenticalAcrossThreadCounts("elementwise") {
            let x = float32Leaf([4, 128, 96], seed: 801, in: -3...3)
            let y = float32Leaf([4, 128, 96], seed: 802)
            let rowScale = float32Leaf([4, 128, 1], seed: 803)
            let weight = float32Leaf([96], seed: 804, in: 0.5...1.5)
            let normed = x.rmsNormalized(weight: weight, epsilon: 1e-6)
            let mixed = (normed.silu() * y + rowScale).exp() - x.sigmoid() / (y * y + 1) + Tensor.swiGLU(gate: x, up: normed)
            let logProbabilities = mixed.logSoftmax()
            let probabilities = (x * 0.5).softmax()
            let transposed = (logProbabilities + probabilities).permuted([1, 0, 2]).contiguous()
            let entropies = logProbabilities.entropyOfLogProbabilities()
            let loss = (transposed * transposed.tanh()).sum() + entropies.sum()
            let grads = gradients(of: loss, withRespectTo: [x, y, rowScale, weight])
            return [normed, mixed, logProbabilities, probabilities, transposed, entropies, loss] + grads
        }
    }

    func testEmbeddingRotaryAndAttention() {
        // B = 2, T = 130 (three query blocks), 4 query heads on 2 key heads, D = 16.
        let ids = (0..<(2 * 130)).map { ($0 * 37) % 50 }
        let rotary = RotaryEmbedding(headDimension: 16, maxPositions: 130)
        assertIdenticalAcrossThreadCounts("attention") {
            let table = float32Leaf([50, 128], seed: 811)
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
    /// A deep product (k ≥ 4 × C's larger side) is cut at the middle of k and its halves summed,
    /// with the caller's alpha and beta, in all four transpose combinations: against a float64
    /// sum, and bit for bit the same on 1 to 3 threads, where each half is one call. Four threads
    /// also split each half by rows, which OpenBLAS may round differently (its small-matrix
    /// kernels sum in another order), so there the check is the float64 one.
    func testDeepProductsMatchFloat64AndEveryThreadCount() {
        let configured = ComputeSettings.current
        defer { configured.apply() }
        let (m, n, k) = (48, 40, 2500)
        var generator = RandomGenerator(seed: 1290)
        let a = (0..<(m * k)).map { _ in Float(generator.uniform(-1, 1)) }
        let b = (0..<(k * n)).map { _ in Float(generator.uniform(-1, 1)) }
        let c0 = (0..<(m * n)).map { _ in Float(generator.uniform(-1, 1)) }
        let (alpha, beta): (Float, Float) = (0.5, 2)
        for (transposeA, transposeB) in [(false, false), (true, false), (false, true), (true, true)] {
            // A is stored m × k, or k × m when transposed; B k × n, or n × k.
            func aAt(_ i: Int, _ l: Int) -> Float { transposeA ? a[l * m + i] : a[i * k + l] }
            func bAt(_ l: Int, _ j: Int) -> Float { transposeB ? b[j * k + l] : b[l * n + j] }
            var expected = [Double](repeating: 0, count: m * n)
            for i in 0..<m {
                for j in 0..<n {
                    var sum = 0.0
                    for l in 0..<k { sum += Double(aAt(i, l)) * Double(bAt(l, j)) }
                    expected[i * n + j] = Double(alpha) * sum + Double(beta) * Double(c0[i * n + j])
                }
            }
            var results: [[Float]] = []
            for threads in 1...4 {
                configured.with(threads: threads).apply()
                var c = c0
                a.withUnsafeBufferPointer { a in
                    b.withUnsafeBufferPointer { b in
                        c.withUnsafeMutableBufferPointer { c in
                            Float.gemm(
                                transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                                a: a.baseAddress!, lda: transposeA ? m : k, b: b.baseAddress!, ldb: transposeB ? k : n,
                                beta: beta, c: c.baseAddress!, ldc: n)
                        }
                    }
                }
                results.append(c)
            }
            let label = "transposeA \(transposeA), transposeB \(transposeB)"
            for (index, result) in results.enumerated() {
                assertClose(result.map(Double.init), expected, absoluteTolerance: 2e-4, relativeTolerance: 1e-5, "\(label), \(index + 1) threads")
            }
            for threads in 2...3 {
                XCTAssertEqual(results[threads - 1], results[0], "\(label): \(threads) threads against 1")
            }
        }
    }

    func testSplitProductsMatchOneThread() {
        let configured = ComputeSettings.current
        defer { configured.apply() }
        // (m, k, n): rows split (m ≥ n), columns split (m < n), and a partial last tile.
        for (index, (m, k, n)) in [(301, 96, 200), (20, 300, 517), (1030, 64, 272)].enumerated() {
            let seed = 1200 + UInt64(index) * 10
            let operands = [randomTensor([m, k], seed: seed), randomTensor([k, n], seed: seed + 1), randomTensor([k, m], seed: seed + 2), randomTensor([n, k], seed: seed + 3)]
            func products(_ dtype: DType) -> [[Double]] {
                let (a, b, aT, bT) = (operands[0].converted(to: dtype), operands[1].converted(to: dtype), operands[2].converted(to: dtype), operands[3].converted(to: dtype))
                return [Tensor.matmul(a, b), Tensor.matmul(aT.transposed(), b), Tensor.matmul(a, bT.transposed()),
                        Tensor.matmul(aT.transposed(), bT.transposed()), a.linear(bT)].map(\.doubles)
            }
            configured.with(threads: 1).apply()
            let reference = products(.float64), reference32 = products(.float32)
            for threads in [2, 3] {
                configured.with(threads: threads).apply()
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
