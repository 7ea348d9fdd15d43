@testable import Tensor
import XCTest

/// Float32 attention against the same inputs in float64 (the BLAS path, itself checked against
/// composed attention and by gradient checks): the output and the gradients of q, k and v, within
/// float32 rounding, and the same output bits from a forward without gradients (which keeps no
/// probabilities). Query and key entries are drawn from [−2, 2], values and the cotangent from
/// [−1, 1], with seeds `seed` to `seed + 3`.
func assertAttentionFloat32MatchesFloat64(
    batch: Int, queryLength: Int, keyLength: Int, heads: Int, keyHeads: Int, headDimension: Int,
    mask: AttentionMask = .causal, scale: Double? = nil, seed: UInt64,
    file: StaticString = #filePath, line: UInt = #line
) {
    let queryShape = [batch, queryLength, heads, headDimension]
    let keyShape = [batch, keyLength, keyHeads, headDimension]
    let inputs64 = [
        randomTensor(queryShape, seed: seed, in: -2...2),
        randomTensor(keyShape, seed: seed + 1, in: -2...2),
        randomTensor(keyShape, seed: seed + 2),
    ]
    let cotangent64 = randomTensor(queryShape, seed: seed + 3)
    let inputs32 = inputs64.map { $0.converted(to: .float32) }
    for tensor in inputs64 + inputs32 { tensor.requiresGradient = true }

    func run(_ inputs: [Tensor], _ cotangent: Tensor) -> [Tensor] {
        let attended = Tensor.scaledDotProductAttention(query: inputs[0], key: inputs[1], value: inputs[2], mask: mask, scale: scale)
        return [attended] + gradients(of: (attended * cotangent).sum(), withRespectTo: inputs)
    }
    let expected = run(inputs64, cotangent64)
    let actual = run(inputs32, cotangent64.converted(to: .float32))
    for (index, name) in ["output", "query gradient", "key gradient", "value gradient"].enumerated() {
        XCTAssertEqual(actual[index].dtype, .float32, file: file, line: line)
        assertClose(actual[index].doubles, expected[index].doubles, absoluteTolerance: 2e-5, relativeTolerance: 1e-4, name, file: file, line: line)
    }

    let unrecorded = withoutGradients {
        Tensor.scaledDotProductAttention(query: inputs32[0], key: inputs32[1], value: inputs32[2], mask: mask, scale: scale)
    }
    XCTAssertEqual(unrecorded.doubles, actual[0].doubles, "output without gradients", file: file, line: line)
}

/// The float32 attention kernels (`ck_attention_forward` and `ck_attention_backward`, AVX-512)
/// against the float64 path (BLAS products over 64-row blocks, itself checked against composed
/// attention and by gradient checks): outputs and the gradients of q, k and v, over head sizes
/// around the 16- and 32-column vectors, lengths around the 8-row tiles, grouped heads, offsets,
/// ragged key lengths, queries that see no key, and packed rows (one kernel call per segment).
final class TrainingAttentionKernelTests: XCTestCase {
    private func assertKernelsMatchFloat64(
        batch: Int, queryLength: Int, keyLength: Int, heads: Int, keyHeads: Int, headDimension: Int,
        mask: AttentionMask = .causal, scale: Double? = nil, seed: UInt64, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        try XCTSkipUnless(Kernels.usesAttentionKernels(.float32), "needs AVX-512")
        assertAttentionFloat32MatchesFloat64(
            batch: batch, queryLength: queryLength, keyLength: keyLength, heads: heads, keyHeads: keyHeads,
            headDimension: headDimension, mask: mask, scale: scale, seed: seed, file: file, line: line)
    }

    func testCausalWithRowAndColumnTails() throws {
        // T = 37: four full 8-row tiles and a tail of 5; D = 16: one half-filled 32-column chunk.
        try assertKernelsMatchFloat64(batch: 2, queryLength: 37, keyLength: 37, heads: 2, keyHeads: 2, headDimension: 16, seed: 1_101)
    }

    func testBaseHeadSizeWithGroupedHeads() throws {
        // D = 64 as in the base config; 4 query heads on 2 key heads sum into dK and dV; T = 70
        // crosses two 32-key panels and ends inside a third.
        try assertKernelsMatchFloat64(batch: 1, queryLength: 70, keyLength: 70, heads: 4, keyHeads: 2, headDimension: 64, seed: 1_111)
    }

    func testHeadSizesThatAreNotWholeVectors() throws {
        // D = 20: a 16-lane vector and a 4-lane tail; D = 48: one full chunk and a half one.
        try assertKernelsMatchFloat64(batch: 2, queryLength: 9, keyLength: 9, heads: 1, keyHeads: 1, headDimension: 20, seed: 1_121)
        try assertKernelsMatchFloat64(batch: 1, queryLength: 33, keyLength: 33, heads: 2, keyHeads: 1, headDimension: 48, seed: 1_131)
    }

    func testFewerQueriesThanKeysAlignedAtTheEnd() throws {
        // A cached prefix of 35 keys: every query row sees past the first 32-key panel.
        try assertKernelsMatchFloat64(batch: 2, queryLength: 5, keyLength: 40, heads: 2, keyHeads: 1, headDimension: 32, seed: 1_141)
    }

    func testRaggedKeyLengthsAndExplicitScale() throws {
        // Per-row offsets and key lengths: keys past a row's length get no gradient, and rows of
        // the second batch row start at position 3. Key length 13 ends inside an 8-key tile.
        let mask = AttentionMask(queryOffsets: [1, 3], keyLengths: [13, 6])
        try assertKernelsMatchFloat64(batch: 2, queryLength: 11, keyLength: 17, heads: 2, keyHeads: 2, headDimension: 16, mask: mask, scale: 0.3, seed: 1_151)
    }

    func testQueriesThatSeeNoKeyGetZeros() throws {
        // More queries than keys with the default alignment: the first 6 rows sit before every
        // key. A batch row with key length 0 sees nothing at all.
        try assertKernelsMatchFloat64(batch: 1, queryLength: 14, keyLength: 8, heads: 2, keyHeads: 2, headDimension: 16, seed: 1_161)
        let mask = AttentionMask(queryOffsets: [0, 0], keyLengths: [0, 9])
        try assertKernelsMatchFloat64(batch: 2, queryLength: 9, keyLength: 9, heads: 1, keyHeads: 1, headDimension: 16, mask: mask, seed: 1_171)
    }

    func testPackedSegments() throws {
        // Segments of 37, 1 and 33 positions in row 0 (tails of the 8-row tiles and the 32-key
        // panels at every segment's own origin) and one of 71 in row 1; grouped heads, so each
        // segment's dK and dV rows sum over two query heads.
        let mask = AttentionMask(segmentStarts: [[0, 37, 38], [0]])
        try assertKernelsMatchFloat64(batch: 2, queryLength: 71, keyLength: 71, heads: 4, keyHeads: 2, headDimension: 20, mask: mask, seed: 1_181)
    }
}
