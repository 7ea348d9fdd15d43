import Tensor
import XCTest

/// The fused `scaledDotProductAttention` against attention composed from primitives (matmul of
/// permuted views, scale, maskedFill with −∞, softmax, matmul), in float64: forward values and
/// the gradients of q, k and v.
final class AttentionReferenceTests: XCTestCase {
    /// Attention composed from primitive ops, with the same mask semantics as `AttentionMask`:
    /// query i of batch row b sits at position `offsets[b] + i` and sees keys j ≤ that position
    /// with j < `lengths[b]`. Every query must see at least one key (a fully masked softmax row
    /// is NaN here, zeros in the fused op).
    private func composedAttention(
        query: Tensor, key: Tensor, value: Tensor, offsets: [Int], lengths: [Int], scale: Double
    ) -> Tensor {
        composedAttention(query: query, key: key, value: value, scale: scale) { b, i, j in j <= offsets[b] + i && j < lengths[b] }
    }

    /// Attention composed from primitive ops where query i of batch row b sees key j when
    /// `sees(b, i, j)`.
    private func composedAttention(
        query: Tensor, key: Tensor, value: Tensor, scale: Double, sees: (Int, Int, Int) -> Bool
    ) -> Tensor {
        // query (B, Tq, H, D), key and value (B, Tk, Hkv, D).
        let (batch, queryLength, heads, headDimension) = (query.shape[0], query.shape[1], query.shape[2], query.shape[3])
        let (keyLength, keyHeads) = (key.shape[1], key.shape[2])
        let group = heads / keyHeads
        // Repeat each key/value head `group` times: head h reads key head h / group.
        func repeatHeads(_ tensor: Tensor) -> Tensor {
            tensor.unsqueezed(3).expanded(to: [batch, keyLength, keyHeads, group, headDimension])
                .reshaped([batch, keyLength, heads, headDimension])
        }
        let queryHeads = query.permuted([0, 2, 1, 3])            // (B, H, Tq, D)
        let keyColumns = repeatHeads(key).permuted([0, 2, 3, 1])  // (B, H, D, Tk)
        let valueHeads = repeatHeads(value).permuted([0, 2, 1, 3]) // (B, H, Tk, D)
        let scores = Tensor.matmul(queryHeads, keyColumns) * scale // (B, H, Tq, Tk)

        var maskValues: [Double] = []
        for b in 0..<batch {
            for i in 0..<queryLength {
                for j in 0..<keyLength {
                    maskValues.append(sees(b, i, j) ? 0 : 1)
                }
            }
        }
        let mask = Tensor(shape: [batch, 1, queryLength, keyLength], values: maskValues)
        let probabilities = scores.maskedFill(mask, with: -.infinity).softmax()
        return Tensor.matmul(probabilities, valueHeads).permuted([0, 2, 1, 3]) // (B, Tq, H, D)
    }

    private func assertFusedMatchesComposed(
        batch: Int, queryLength: Int, keyLength: Int, heads: Int, keyHeads: Int, headDimension: Int,
        mask: AttentionMask, offsets: [Int], lengths: [Int], scale: Double?, seed: UInt64,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        assertFusedMatchesComposed(
            batch: batch, queryLength: queryLength, keyLength: keyLength, heads: heads, keyHeads: keyHeads, headDimension: headDimension,
            mask: mask, scale: scale, seed: seed, file: file, line: line) { b, i, j in j <= offsets[b] + i && j < lengths[b] }
    }

    private func assertFusedMatchesComposed(
        batch: Int, queryLength: Int, keyLength: Int, heads: Int, keyHeads: Int, headDimension: Int,
        mask: AttentionMask, scale: Double?, seed: UInt64,
        file: StaticString = #filePath, line: UInt = #line, sees: (Int, Int, Int) -> Bool
    ) {
        let query = randomTensor([batch, queryLength, heads, headDimension], seed: seed, in: -2...2)
        let key = randomTensor([batch, keyLength, keyHeads, headDimension], seed: seed + 1, in: -2...2)
        let value = randomTensor([batch, keyLength, keyHeads, headDimension], seed: seed + 2)
        let cotangent = randomTensor([batch, queryLength, heads, headDimension], seed: seed + 3)
        for tensor in [query, key, value] { tensor.requiresGradient = true }

        let fused = Tensor.scaledDotProductAttention(query: query, key: key, value: value, mask: mask, scale: scale)
        let composed = composedAttention(
            query: query, key: key, value: value, scale: scale ?? 1 / Double(headDimension).squareRoot(), sees: sees)
        XCTAssertEqual(fused.shape, [batch, queryLength, heads, headDimension], file: file, line: line)
        // Both are exact float64 computations of the same function: agreement to 1e-12.
        assertClose(fused.doubles, composed.doubles, absoluteTolerance: 1e-12, "forward", file: file, line: line)

        let fusedGradients = gradients(of: (fused * cotangent).sum(), withRespectTo: [query, key, value])
        let composedGradients = gradients(of: (composed * cotangent).sum(), withRespectTo: [query, key, value])
        for (index, name) in ["query", "key", "value"].enumerated() {
            assertClose(
                fusedGradients[index].doubles, composedGradients[index].doubles, absoluteTolerance: 1e-12,
                "gradient of \(name)", file: file, line: line)
        }
    }

    func testCausalSquareMatchesComposed() {
        assertFusedMatchesComposed(
            batch: 2, queryLength: 4, keyLength: 4, heads: 2, keyHeads: 2, headDimension: 3,
            mask: .causal, offsets: [0, 0], lengths: [4, 4], scale: nil, seed: 601)
    }

    func testCausalGroupedQueryWithShorterQueriesMatchesComposed() {
        // H = 4 query heads over Hkv = 2 key heads; Tq = 3 < Tk = 5, aligned at the end.
        assertFusedMatchesComposed(
            batch: 2, queryLength: 3, keyLength: 5, heads: 4, keyHeads: 2, headDimension: 4,
            mask: .causal, offsets: [2, 2], lengths: [5, 5], scale: nil, seed: 611)
    }

    func testCustomMaskMatchesComposed() {
        // Per-row offsets and key lengths (a KV-cache step with ragged rows), explicit scale.
        let mask = AttentionMask(queryOffsets: [1, 3], keyLengths: [3, 6])
        assertFusedMatchesComposed(
            batch: 2, queryLength: 3, keyLength: 6, heads: 4, keyHeads: 2, headDimension: 4,
            mask: mask, offsets: [1, 3], lengths: [3, 6], scale: 0.3, seed: 621)
    }

    func testMultiQueryAttentionMatchesComposed() {
        // One key head shared by all three query heads; a single-token decode step.
        let mask = AttentionMask(queryOffsets: [4], keyLengths: [5])
        assertFusedMatchesComposed(
            batch: 1, queryLength: 1, keyLength: 5, heads: 3, keyHeads: 1, headDimension: 2,
            mask: mask, offsets: [4], lengths: [5], scale: nil, seed: 631)
    }

    func testCausalAcrossSeveralQueryBlocksMatchesComposed() {
        // Tq = 150 spans three 64-row query blocks, the last one partial; each block's GEMMs
        // stop at its last visible key. Grouped heads, so two query heads share dK and dV.
        assertFusedMatchesComposed(
            batch: 2, queryLength: 150, keyLength: 150, heads: 4, keyHeads: 2, headDimension: 4,
            mask: .causal, offsets: [0, 0], lengths: [150, 150], scale: nil, seed: 661)
    }

    func testRaggedMaskAcrossQueryBlocksMatchesComposed() {
        // Offsets and key lengths that cut blocks mid-way: row 0 sees at most 90 keys, row 1
        // starts 10 positions in.
        let mask = AttentionMask(queryOffsets: [0, 10], keyLengths: [90, 140])
        assertFusedMatchesComposed(
            batch: 2, queryLength: 130, keyLength: 140, heads: 2, keyHeads: 1, headDimension: 3,
            mask: mask, offsets: [0, 10], lengths: [90, 140], scale: nil, seed: 671)
    }

    func testPackedSegmentsMatchComposedBlockDiagonalMask() {
        // Segments of 70, 70 and 10 positions in row 0 (the first two span two 64-row query
        // blocks each) and of 149 and 1 in row 1: each query sees the keys of its own segment up
        // to itself.
        let starts = [[0, 70, 140], [0, 149]]
        func segment(_ b: Int, _ position: Int) -> Int { starts[b].lastIndex { $0 <= position }! }
        assertFusedMatchesComposed(
            batch: 2, queryLength: 150, keyLength: 150, heads: 4, keyHeads: 2, headDimension: 4,
            mask: AttentionMask(segmentStarts: starts), scale: nil, seed: 681) { b, i, j in
            j <= i && segment(b, i) == segment(b, j)
        }
    }

    /// `AttentionMask(problems:)` as a tree of shared prefixes lays it out: row 0 holds a
    /// 70-query sequence over its own 70 keys, then a 20-query sequence that sees a 40-key
    /// prefix before its own 20, then 5 padding queries whose
    /// problem also takes 3 filler keys no query sees; row 1 a 95-query sequence with a 30-key
    /// prefix (its queries cross a 64-row block) and filler. Each query sees its problem's keys
    /// up to the prefix plus itself; the filler keys get no gradient.
    func testProblemsWithPrefixesMatchComposed() {
        let problems = [
            [
                AttentionProblem(queryStart: 0, queryLength: 70, keyStart: 0, keyLength: 70, queryOffset: 0, visibleKeyLength: 70),
                AttentionProblem(queryStart: 70, queryLength: 20, keyStart: 70, keyLength: 60, queryOffset: 40, visibleKeyLength: 60),
                AttentionProblem(queryStart: 90, queryLength: 5, keyStart: 130, keyLength: 8, queryOffset: 0, visibleKeyLength: 5),
            ],
            [AttentionProblem(queryStart: 0, queryLength: 95, keyStart: 0, keyLength: 138, queryOffset: 30, visibleKeyLength: 125)],
        ]
        func problem(_ b: Int, _ i: Int) -> AttentionProblem { problems[b].last { $0.queryStart <= i }! }
        assertFusedMatchesComposed(
            batch: 2, queryLength: 95, keyLength: 138, heads: 4, keyHeads: 2, headDimension: 4,
            mask: AttentionMask(problems: problems), scale: nil, seed: 711) { b, i, j in
            let p = problem(b, i)
            return j >= p.keyStart && j - p.keyStart <= p.queryOffset + i - p.queryStart && j - p.keyStart < p.visibleKeyLength
        }
    }

    func testPackedSegmentsEqualSeparateAttention() {
        // Each segment of a packed row gives what attention over that sequence alone gives, and
        // so do the gradients (float64 and float32).
        for dtype in [DType.float64, .float32] {
            let starts = [0, 5, 75, 76]
            let (length, heads, keyHeads, d) = (90, 4, 2, 8)
            let query = randomTensor([1, length, heads, d], seed: 691, in: -2...2).converted(to: dtype)
            let key = randomTensor([1, length, keyHeads, d], seed: 692, in: -2...2).converted(to: dtype)
            let value = randomTensor([1, length, keyHeads, d], seed: 693).converted(to: dtype)
            let cotangent = randomTensor([1, length, heads, d], seed: 694).converted(to: dtype)
            for tensor in [query, key, value] { tensor.requiresGradient = true }
            let packed = Tensor.scaledDotProductAttention(query: query, key: key, value: value, mask: AttentionMask(segmentStarts: [starts]))
            let packedGradients = gradients(of: (packed * cotangent).sum(), withRespectTo: [query, key, value])
            let tolerance = dtype == .float64 ? 1e-12 : 1e-5
            for (index, start) in starts.enumerated() {
                let end = index + 1 < starts.count ? starts[index + 1] : length
                func piece(_ tensor: Tensor) -> Tensor { tensor.detached().sliced(axis: 1, start..<end).contiguous() }
                let (q, k, v) = (piece(query), piece(key), piece(value))
                for tensor in [q, k, v] { tensor.requiresGradient = true }
                let alone = Tensor.scaledDotProductAttention(query: q, key: k, value: v)
                assertClose(packed.detached().sliced(axis: 1, start..<end).contiguous().doubles, alone.doubles, absoluteTolerance: tolerance, "\(dtype) output of segment \(index)")
                let aloneGradients = gradients(of: (alone * piece(cotangent)).sum(), withRespectTo: [q, k, v])
                for (which, name) in ["query", "key", "value"].enumerated() {
                    assertClose(
                        packedGradients[which].sliced(axis: 1, start..<end).contiguous().doubles, aloneGradients[which].doubles,
                        absoluteTolerance: tolerance, "\(dtype) gradient of \(name), segment \(index)")
                }
            }
        }
    }

    func testQueryThatSeesNoKeyGetsZeros() {
        // Offset −1 puts query 0 before every key: its output and its gradients are zero.
        let query = randomTensor([1, 2, 2, 2], seed: 641), key = randomTensor([1, 3, 1, 2], seed: 642)
        let value = randomTensor([1, 3, 1, 2], seed: 643)
        query.requiresGradient = true
        let output = Tensor.scaledDotProductAttention(
            query: query, key: key, value: value, mask: AttentionMask(queryOffsets: [-1], keyLengths: [3]))
        let values = output.doubles
        assertAllZero(Array(values[0..<4]), "output of the query that sees nothing")
        // Query 1 sees only key 0: its output is value row 0 for both heads.
        let valueRow = Array(value.doubles[0..<2])
        XCTAssertEqual(Array(values[4..<8]), valueRow + valueRow)
        let gradient = gradients(of: (output * output).sum(), withRespectTo: [query])[0].doubles
        assertAllZero(Array(gradient[0..<4]), "query gradient of the masked query")
    }

    func testFloat32MatchesFloat64() {
        // The float32 path (sgemm) agrees with float64 to float32 precision.
        let query = randomTensor([2, 3, 4, 4], seed: 651), key = randomTensor([2, 5, 2, 4], seed: 652)
        let value = randomTensor([2, 5, 2, 4], seed: 653)
        let reference = Tensor.scaledDotProductAttention(query: query, key: key, value: value)
        let single = Tensor.scaledDotProductAttention(
            query: query.converted(to: .float32), key: key.converted(to: .float32), value: value.converted(to: .float32))
        XCTAssertEqual(single.dtype, .float32)
        assertClose(single.doubles, reference.doubles, absoluteTolerance: 1e-5)
    }

    func testFloat32ForwardAndGradientsMatchFloat64AcrossBlocks() {
        // Three query blocks, rows of every width from 1 to 130 (whole vectors and tails of the
        // AVX-512 row kernels), a ragged key length, 4 query heads on 2 key heads.
        assertAttentionFloat32MatchesFloat64(
            batch: 2, queryLength: 130, keyLength: 130, heads: 4, keyHeads: 2, headDimension: 16,
            mask: AttentionMask(queryOffsets: [0, 0], keyLengths: [130, 97]), seed: 661)
    }

    func testFloat32ProblemsWithPrefixesMatchFloat64() {
        // A prefix of 64 keys before 66 queries (over two query blocks), and filler keys.
        let problems = [[
            AttentionProblem(queryStart: 0, queryLength: 64, keyStart: 0, keyLength: 64, queryOffset: 0, visibleKeyLength: 64),
            AttentionProblem(queryStart: 64, queryLength: 66, keyStart: 64, keyLength: 134, queryOffset: 64, visibleKeyLength: 130),
        ]]
        assertAttentionFloat32MatchesFloat64(
            batch: 1, queryLength: 130, keyLength: 198, heads: 4, keyHeads: 2, headDimension: 16,
            mask: AttentionMask(problems: problems), seed: 721)
    }

    func testFloat32PackedSegmentsMatchFloat64() {
        // Packed rows in float32 (the BLAS path here, the kernels on AVX-512): a 100-position
        // segment over two query blocks, a single position, and a row that is one segment.
        assertAttentionFloat32MatchesFloat64(
            batch: 2, queryLength: 130, keyLength: 130, heads: 4, keyHeads: 2, headDimension: 16,
            mask: AttentionMask(segmentStarts: [[0, 100, 101], [0]]), seed: 701)
    }
}
