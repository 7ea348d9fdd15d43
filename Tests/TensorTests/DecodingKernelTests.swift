import Tensor
import XCTest

/// The decode-path ops against their references: `cachedAttention` against
/// `scaledDotProductAttention` (float64, grouped-query heads, mixed cached lengths, several new
/// rows per sequence), `blockedMatmul` against `matmul`, `appendRows` against slice assignment;
/// and the storage version that invalidates copies derived from a tensor.
final class DecodingKernelTests: XCTestCase {
    /// Sequences with different cached lengths and new-row counts (a prefill from empty, decode
    /// steps, an observation of several rows), 4 query heads over 2 key heads; every new row
    /// equals the reference attention over that sequence's filled cache.
    func testCachedAttentionMatchesReferenceAttention() {
        let (heads, keyHeads, d, capacity) = (4, 2, 8, 24)
        let cachedLengths = [0, 5, 11, 17]
        let counts = [6, 1, 4, 1]
        let rows = counts.reduce(0, +)
        let query = randomTensor([rows, heads, d], seed: 1, in: -2...2)
        let keys = cachedLengths.indices.map { randomTensor([capacity, keyHeads, d], seed: 10 + UInt64($0), in: -2...2) }
        let values = cachedLengths.indices.map { randomTensor([capacity, keyHeads, d], seed: 20 + UInt64($0)) }
        for threads in [1, 2, 3] {
            let result = Tensor.cachedAttention(query: query, keys: keys, values: values, cachedLengths: cachedLengths, counts: counts, threadCount: threads).doubles
            var row = 0
            for sequence in counts.indices {
                let filled = cachedLengths[sequence] + counts[sequence]
                let reference = Tensor.scaledDotProductAttention(
                    query: query.sliced(axis: 0, row..<(row + counts[sequence])).reshaped([1, counts[sequence], heads, d]),
                    key: keys[sequence].sliced(axis: 0, 0..<filled).reshaped([1, filled, keyHeads, d]),
                    value: values[sequence].sliced(axis: 0, 0..<filled).reshaped([1, filled, keyHeads, d])).doubles
                let width = heads * d
                assertClose(Array(result[(row * width)..<((row + counts[sequence]) * width)]), reference, absoluteTolerance: 1e-12, "sequence \(sequence), \(threads) threads")
                row += counts[sequence]
            }
        }
    }

    /// The thread count splits work between sequences, never inside one, so float32
    /// results are identical bit for bit.
    func testCachedAttentionIsIndependentOfThreadCount() {
        let cachedLengths = [3, 30, 9], counts = [1, 1, 2]
        let query = randomTensor([4, 4, 16], seed: 3).converted(to: .float32)
        let keys = (0..<3).map { randomTensor([40, 4, 16], seed: 30 + UInt64($0)).converted(to: .float32) }
        let values = (0..<3).map { randomTensor([40, 4, 16], seed: 40 + UInt64($0)).converted(to: .float32) }
        let one = Tensor.cachedAttention(query: query, keys: keys, values: values, cachedLengths: cachedLengths, counts: counts, threadCount: 1).floats
        let two = Tensor.cachedAttention(query: query, keys: keys, values: values, cachedLengths: cachedLengths, counts: counts, threadCount: 2).floats
        XCTAssertEqual(one, two)
    }

    /// float32 attention (the AVX-512 kernel where the CPU has it, for head sizes that are
    /// multiples of 16; the portable kernel otherwise) equals the float64 computation of the
    /// same inputs to float32 rounding: grouped-query heads, visible lengths that leave partial
    /// vectors (1, 7, 17, 40 keys), several new rows in one sequence.
    func testCachedAttentionFloat32MatchesFloat64() {
        for d in [8, 16, 64] {
            let (heads, keyHeads, capacity) = (4, 2, 48)
            let cachedLengths = [0, 6, 16, 36], counts = [1, 1, 1, 4]
            let rows = counts.reduce(0, +)
            let query = randomTensor([rows, heads, d], seed: 80, in: -2...2)
            let keys = (0..<4).map { randomTensor([capacity, keyHeads, d], seed: 81 + UInt64($0), in: -2...2) }
            let values = (0..<4).map { randomTensor([capacity, keyHeads, d], seed: 90 + UInt64($0)) }
            let reference = Tensor.cachedAttention(query: query, keys: keys, values: values, cachedLengths: cachedLengths, counts: counts, threadCount: 1).doubles
            let single = Tensor.cachedAttention(
                query: query.converted(to: .float32), keys: keys.map { $0.converted(to: .float32) }, values: values.map { $0.converted(to: .float32) },
                cachedLengths: cachedLengths, counts: counts, threadCount: 2)
            assertClose(single.doubles, reference, absoluteTolerance: 2e-6, relativeTolerance: 1e-5, "head dimension \(d)")
        }
    }

    /// The packed few-row product (AVX-512 where available) equals `matmul` in float64 to float32
    /// rounding over row counts that leave partial 8-row tiles, column counts that leave partial
    /// 32-column panels, and past the row limit (BLAS); float32 values do not depend on the
    /// thread count; an unpacked matrix and a float64 one take the portable path.
    func testPackedMatmulMatchesMatmul() {
        for (rows, inner, columns) in [(1, 7, 5), (8, 32, 32), (9, 40, 33), (16, 256, 768), (23, 64, 100), (64, 48, 70), (300, 24, 40), (513, 16, 20)] {
            let input = randomTensor([rows, inner], seed: 100, in: -1...1)
            let matrix = randomTensor([inner, columns], seed: 101, in: -1...1)
            let reference = Tensor.matmul(input, matrix).doubles
            let packed = PackedMatrix(matrix.converted(to: .float32))
            XCTAssertEqual(packed.isPacked, PackedMatrix.isKernelAvailable)
            let single = input.converted(to: .float32)
            let results = withoutGradients { [1, 2, 3].map { single.matmul(packed, threadCount: $0).floats } }
            assertClose(results[0].map(Double.init), reference, absoluteTolerance: 1e-5 * Double(inner), relativeTolerance: 1e-5, "\(rows)×\(inner)×\(columns)")
            XCTAssertEqual(results[0], results[1], "\(rows)×\(inner)×\(columns): 1 and 2 threads")
            XCTAssertEqual(results[0], results[2], "\(rows)×\(inner)×\(columns): 1 and 3 threads")
            let unpacked = withoutGradients { single.matmul(PackedMatrix(matrix.converted(to: .float32), packing: false), threadCount: 2).doubles }
            assertClose(unpacked, reference, absoluteTolerance: 1e-5 * Double(inner), relativeTolerance: 1e-5, "\(rows)×\(inner)×\(columns) unpacked")
            let double = PackedMatrix(matrix)
            XCTAssertFalse(double.isPacked)
            assertClose(withoutGradients { input.matmul(double, threadCount: 2).doubles }, reference, absoluteTolerance: 1e-12, "\(rows)×\(inner)×\(columns) float64")
        }
    }

    /// The gate/up pair panels' fused SwiGLU equals the product followed by `swiGLU()` bit for
    /// bit in float32 (the kernel's epilogue is `ck_swiglu_forward`'s arithmetic) at any thread
    /// count, and the float64 reference to float32 rounding: widths that leave partial 16-column
    /// pairs, partial 8-row tiles, and past the row limit (BLAS, then `swiGLU()`).
    func testSwiGLUMatmulMatchesMatmulThenSwiGLU() {
        for (rows, inner, width) in [(1, 7, 5), (9, 40, 17), (16, 256, 768), (23, 64, 50), (513, 16, 20)] {
            let input = randomTensor([rows, inner], seed: 110, in: -1...1)
            let matrix = randomTensor([inner, 2 * width], seed: 111, in: -1...1)
            let reference = withoutGradients { Tensor.matmul(input, matrix).swiGLU().doubles }
            let single = input.converted(to: .float32), singleMatrix = matrix.converted(to: .float32)
            let pairs = PackedMatrix(singleMatrix, layout: .gateUpPairs)
            XCTAssertEqual(pairs.isPacked, PackedMatrix.isKernelAvailable)
            let separate = withoutGradients { single.matmul(PackedMatrix(singleMatrix), threadCount: 1).swiGLU().floats }
            for threads in [1, 2, 3] {
                let fused = withoutGradients { single.swiGLUMatmul(pairs, threadCount: threads).floats }
                XCTAssertEqual(fused, separate, "\(rows)×\(inner)×2·\(width), \(threads) threads")
            }
            assertClose(separate.map(Double.init), reference, absoluteTolerance: 1e-5 * Double(inner), relativeTolerance: 1e-5, "\(rows)×\(inner)×2·\(width)")
            let plain = withoutGradients { single.swiGLUMatmul(PackedMatrix(singleMatrix), threadCount: 2).floats }
            XCTAssertEqual(plain, separate, "\(rows)×\(inner)×2·\(width), .columns layout")
            let double = withoutGradients { input.swiGLUMatmul(PackedMatrix(matrix, layout: .gateUpPairs), threadCount: 2).doubles }
            assertClose(double, reference, absoluteTolerance: 1e-12, "\(rows)×\(inner)×2·\(width) float64")
        }
    }

    /// `addMatmul` leaves `target + input · matrix` in the target, the same bits as the separate
    /// product and sum, at any thread count; it bumps the storage version; past the row limit
    /// and in float64 it takes the portable path.
    func testAddMatmulAddsTheProductInPlace() {
        for (rows, inner, columns) in [(1, 7, 5), (9, 40, 33), (16, 768, 256), (513, 16, 20)] {
            let input = randomTensor([rows, inner], seed: 120, in: -1...1).converted(to: .float32)
            let packed = PackedMatrix(randomTensor([inner, columns], seed: 121, in: -1...1).converted(to: .float32))
            let start = randomTensor([rows, columns], seed: 122, in: -1...1).converted(to: .float32)
            let expected = withoutGradients { (start + input.matmul(packed, threadCount: 1)).floats }
            for threads in [1, 2, 3] {
                let target = start.copy()
                let version = target.storageVersion
                withoutGradients { target.addMatmul(input, packed, threadCount: threads) }
                XCTAssertEqual(target.floats, expected, "\(rows)×\(inner)×\(columns), \(threads) threads")
                XCTAssertGreaterThan(target.storageVersion, version)
            }
        }
        let input = randomTensor([3, 4], seed: 123), matrix = randomTensor([4, 5], seed: 124), target = randomTensor([3, 5], seed: 125)
        let expected = (target + Tensor.matmul(input, matrix)).doubles
        withoutGradients { target.addMatmul(input, PackedMatrix(matrix), threadCount: 2) }
        assertClose(target.doubles, expected, absoluteTolerance: 1e-14, "float64")
    }

    /// `rotaryAppend` returns the rotated query heads and writes the rotated keys and the values
    /// into each sequence's caches at its start, exactly as slicing the projection,
    /// `rotaryEmbedded` and `appendRows` do (bit for bit, float32 and float64), with grouped-query
    /// heads, sequences of 2, 1 and 3 new rows, and the caches' other rows untouched; a
    /// prefill-sized batch (300 rows), which splits its rows over the threads; and head size 64,
    /// whole vectors in the AVX-512 kernel (8 leaves a partial one).
    func testRotaryAppendMatchesRotaryThenAppendRows() {
        for (counts, starts, capacity, d) in [([2, 1, 3], [0, 7, 4], 10, 8), ([300, 5], [0, 20], 320, 8), ([3, 2], [5, 0], 12, 64)] {
            assertRotaryAppendMatchesReference(counts: counts, starts: starts, capacity: capacity, headDimension: d)
        }
    }

    private func assertRotaryAppendMatchesReference(counts: [Int], starts: [Int], capacity: Int, headDimension d: Int, file: StaticString = #filePath, line: UInt = #line) {
        let (heads, keyHeads) = (4, 2)
        let rotary = RotaryEmbedding(headDimension: d, maxPositions: capacity)
        let positions = zip(counts, starts).flatMap { count, start in start..<(start + count) }
        let rows = positions.count, keyWidth = keyHeads * d
        for dtype in [DType.float32, .float64] {
            let projection = randomTensor([rows, (heads + 2 * keyHeads) * d], seed: 130, in: -2...2).converted(to: dtype)
            let filler = counts.indices.map { randomTensor([capacity, keyHeads, d], seed: 131 + UInt64($0)).converted(to: dtype) }
            let keys = filler.map { $0.copy() }, values = filler.map { $0.copy() }
            let expectedKeys = filler.map { $0.copy() }, expectedValues = filler.map { $0.copy() }
            let (query, expectedQuery) = withoutGradients { () -> (Tensor, Tensor) in
                let expectedQuery = projection.sliced(axis: 1, 0..<(heads * d)).reshaped([1, rows, heads, d]).rotaryEmbedded(rotary, positions: positions)
                let rotatedKeys = projection.sliced(axis: 1, (heads * d)..<(heads * d + keyWidth)).reshaped([1, rows, keyHeads, d]).rotaryEmbedded(rotary, positions: positions)
                Tensor.appendRows(of: rotatedKeys.reshaped([rows, keyWidth]), counts: counts, into: expectedKeys, at: starts)
                Tensor.appendRows(of: projection.sliced(axis: 1, (heads * d + keyWidth)..<(heads * d + 2 * keyWidth)), counts: counts, into: expectedValues, at: starts)
                let query = Tensor.rotaryAppend(projection: projection, heads: heads, rotary: rotary, positions: positions, counts: counts, keyCaches: keys, valueCaches: values, at: starts)
                return (query, expectedQuery)
            }
            XCTAssertEqual(query.shape, [rows, heads, d], file: file, line: line)
            XCTAssertEqual(query.doubles, expectedQuery.doubles, "\(dtype) query, counts \(counts)", file: file, line: line)
            for sequence in counts.indices {
                XCTAssertEqual(keys[sequence].doubles, expectedKeys[sequence].doubles, "\(dtype) keys of sequence \(sequence), counts \(counts)", file: file, line: line)
                XCTAssertEqual(values[sequence].doubles, expectedValues[sequence].doubles, "\(dtype) values of sequence \(sequence), counts \(counts)", file: file, line: line)
            }
        }
    }

    /// Few rows (column blocks, several threads) and many rows (one GEMM) both equal `matmul`;
    /// the blocked path gives the same float32 values at any thread count.
    func testBlockedMatmulMatchesMatmul() {
        for (rows, inner, columns) in [(3, 40, 150), (16, 256, 272), (600, 64, 40), (5, 0, 7)] {
            let input = randomTensor([rows, inner], seed: 50)
            let matrix = randomTensor([inner, columns], seed: 51)
            let reference = Tensor.matmul(input, matrix).doubles
            for threads in [1, 2] {
                assertClose(input.blockedMatmul(matrix, threadCount: threads).doubles, reference, absoluteTolerance: 1e-10, "\(rows)×\(inner)×\(columns), \(threads) threads")
            }
        }
        let input = randomTensor([16, 256], seed: 52).converted(to: .float32)
        let matrix = randomTensor([256, 768], seed: 53).converted(to: .float32)
        XCTAssertEqual(input.blockedMatmul(matrix, threadCount: 1).floats, input.blockedMatmul(matrix, threadCount: 2).floats)
    }

    /// `blockedMatmul` records a matmul: gradients flow to both operands.
    func testBlockedMatmulGradient() {
        assertGradientCheckPasses([randomTensor([4, 5], seed: 54), randomTensor([5, 3], seed: 55)], "blockedMatmul") { inputs in
            inputs[0].blockedMatmul(inputs[1], threadCount: 2).sum()
        }
    }

    /// Rows of a column slice (rows strided) land at each destination's start, as slice
    /// assignment would put them, and nothing else changes.
    func testAppendRowsMatchesSliceAssignment() {
        let source = randomTensor([5, 12], seed: 60).sliced(axis: 1, 4..<10)  // (5, 6), row stride 12
        let destinations = [Tensor.zeros([4, 2, 3], dtype: .float64), Tensor.zeros([6, 2, 3], dtype: .float64)]
        let expected = [Tensor.zeros([4, 2, 3], dtype: .float64), Tensor.zeros([6, 2, 3], dtype: .float64)]
        expected[0].sliced(axis: 0, 1..<3).assign(source.sliced(axis: 0, 0..<2).reshaped([2, 2, 3]))
        expected[1].sliced(axis: 0, 3..<6).assign(source.sliced(axis: 0, 2..<5).reshaped([3, 2, 3]))
        Tensor.appendRows(of: source, counts: [2, 3], into: destinations, at: [1, 3])
        for (destination, wanted) in zip(destinations, expected) { XCTAssertEqual(destination.doubles, wanted.doubles) }
    }

    /// Every public in-place write bumps the storage version, seen through any view.
    func testStorageVersionCountsInPlaceWrites() {
        let tensor = Tensor.zeros([2, 3], dtype: .float64)
        let view = tensor.sliced(axis: 0, 1..<2)
        var last = tensor.storageVersion
        func assertBumped(_ what: String) {
            XCTAssertGreaterThan(view.storageVersion, last, what)
            last = view.storageVersion
        }
        tensor.assign(Tensor.ones([2, 3], dtype: .float64))
        assertBumped("assign")
        tensor.fill(2)
        assertBumped("fill")
        tensor.addInPlace(Tensor.ones([2, 3], dtype: .float64), scale: 0.5)
        assertBumped("addInPlace")
        tensor.scaleInPlace(by: 3)
        assertBumped("scaleInPlace")
        tensor.withUnsafeMutableBufferPointer(as: Double.self) { $0[0] = 1 }
        assertBumped("withUnsafeMutableBufferPointer")
        _ = withoutGradients { tensor * 2 }
        XCTAssertEqual(tensor.storageVersion, last, "reading does not bump the version")
    }
    /// swiGLU equals silu(gate) · up composed from primitives: in float64 to rounding, and in
    /// float32 (vectorised exp) within a few ulp, over gates from −100 to 100 and a row width
    /// that leaves a partial vector.
    func testSwiGLUMatchesComposedActivation() {
        let input = randomTensor([3, 2 * 21], seed: 70, in: -12...12)
        input.withUnsafeMutableBufferPointer(as: Double.self) { values in
            values[0] = -100
            values[1] = 100
            values[2] = -87.5
            values[3] = 0
        }
        let composed = input.sliced(axis: 1, 0..<21).silu() * input.sliced(axis: 1, 21..<42)
        assertClose(input.swiGLU().doubles, composed.doubles, absoluteTolerance: 1e-14, relativeTolerance: 1e-13, "float64")
        let single = input.converted(to: .float32)
        assertClose(single.swiGLU().doubles, composed.doubles, absoluteTolerance: 1e-6, relativeTolerance: 1e-6, "float32")
    }
}
