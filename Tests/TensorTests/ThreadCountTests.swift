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
/// thread, bit for bit, in every transpose combination the autodiff rules use, for row and column
/// splits (on BLAS, rows in 12-row groups where C has more columns than rows).
final class SplitGEMMTests: XCTestCase {
    /// A deep product (k ≥ 4 × C's larger side) is cut at the middle of k and its halves summed,
    /// with the caller's alpha and beta, in all four transpose combinations: against a float64
    /// sum, and bit for bit the same on 1 to 4 threads (each half one call up to 3, split by rows
    /// at 4).
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
            for threads in 2...4 {
                XCTAssertEqual(results[threads - 1], results[0], "\(label): \(threads) threads against 1")
            }
        }
    }

    /// Random shapes above the split size, transposes, beta 0 and 1 and padded leading
    /// dimensions: float32 and float64 products on 2 and 3 threads have the bits of one thread.
    func testRandomProductsMatchOneThread() {
        let configured = ComputeSettings.current
        defer { configured.apply() }
        var generator = RandomGenerator(seed: 1310)
        func draw(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(generator.next() % UInt64(range.count)) }
        var shapes = 0
        while shapes < 16 {
            let (m, n, k) = (draw(13...700), draw(1...700), draw(1...400))
            guard m * n * k >= 1 << 18, m * n * k <= 40_000_000 else { continue }
            shapes += 1
            let (transposeA, transposeB, beta, pad) = (draw(0...1) == 1, draw(0...1) == 1, Double(draw(0...1)), draw(0...2))
            let (lda, ldb, ldc) = ((transposeA ? m : k) + pad, (transposeB ? k : n) + pad, n + pad)
            let a = (0..<((transposeA ? k : m) * lda)).map { _ in generator.uniform(-1, 1) }
            let b = (0..<((transposeB ? n : k) * ldb)).map { _ in generator.uniform(-1, 1) }
            let c0 = (0..<(m * ldc)).map { _ in generator.uniform(-1, 1) }
            func product<T: TensorScalar>(_: T.Type, threads: Int) -> [T] {
                configured.with(threads: threads).apply()
                let (a, b) = (a.map { T($0) }, b.map { T($0) })
                var c = c0.map { T($0) }
                a.withUnsafeBufferPointer { a in
                    b.withUnsafeBufferPointer { b in
                        c.withUnsafeMutableBufferPointer { c in
                            T.gemm(
                                transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 1, a: a.baseAddress!, lda: lda,
                                b: b.baseAddress!, ldb: ldb, beta: T(beta), c: c.baseAddress!, ldc: ldc)
                        }
                    }
                }
                return c
            }
            let label = "\(transposeA ? "T" : "N")\(transposeB ? "T" : "N") \(m)×\(n)×\(k), beta \(beta), padding \(pad)"
            let (single32, single64) = (product(Float.self, threads: 1), product(Double.self, threads: 1))
            for threads in [2, 3] {
                XCTAssertEqual(product(Float.self, threads: threads), single32, "float32 \(label), \(threads) threads")
                XCTAssertEqual(product(Double.self, threads: threads), single64, "float64 \(label), \(threads) threads")
            }
        }
    }

    /// Every product the autodiff rules make of a shape, in float64 and float32, on 2 and 3
    /// threads has the bits of the same product on one thread.
    func testSplitProductsMatchOneThread() {
        let configured = ComputeSettings.current
        defer { configured.apply() }
        // (m, k, n): rows split (m ≥ n), columns split (m < n; rows on BLAS), a partial last tile,
        // and the RL update's logits of one 65-token trajectory (split at 16 columns or rows,
        // OpenBLAS rounded 2% of its elements differently).
        for (index, (m, k, n)) in [(301, 96, 200), (20, 300, 517), (1030, 64, 272), (65, 32, 272)].enumerated() {
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
                    XCTAssertEqual(actual, expected, "float64 \(m)×\(k)×\(n) product \(position), \(threads) threads")
                }
                for (position, (actual, expected)) in zip(products(.float32), reference32).enumerated() {
                    XCTAssertEqual(actual, expected, "float32 \(m)×\(k)×\(n) product \(position), \(threads) threads")
                }
            }
        }
    }
}
