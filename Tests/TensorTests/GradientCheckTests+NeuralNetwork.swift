import Tensor
import XCTest

/// Gradient checks of the neural-network ops (losses, normalisation, rotary embedding, fused
/// attention) and of a small composed network.
final class NeuralNetworkGradientCheckTests: XCTestCase {
    // MARK: Losses

    func testCrossEntropyWithPerTokenWeights() {
        // logits (B=2, T=3, V=5); two of the six tokens are masked out with weight 0.
        let logits = randomTensor([2, 3, 5], seed: 401, in: -2...2)
        let targets = [4, 0, 2, 2, 1, 3]
        let weights = Tensor(shape: [2, 3], values: [1, 0, 1, 0.5, 0, 2])
        assertGradientCheckPasses([logits], "weighted crossEntropy") {
            Tensor.crossEntropy(logits: $0[0], targets: targets, weights: weights)
        }
        assertGradientCheckPasses([logits], "unweighted crossEntropy") {
            Tensor.crossEntropy(logits: $0[0], targets: targets)
        }

        logits.requiresGradient = true
        let loss = Tensor.crossEntropy(logits: logits, targets: targets, weights: weights)
        let gradient = gradients(of: loss, withRespectTo: [logits])[0].doubles
        for maskedRow in [1, 4] {
            assertAllZero(Array(gradient[(maskedRow * 5)..<(maskedRow * 5 + 5)]), "masked token \(maskedRow)")
        }
        for keptRow in [0, 2, 3, 5] {
            XCTAssertTrue(gradient[(keptRow * 5)..<(keptRow * 5 + 5)].contains { $0 != 0 }, "token \(keptRow) must get a gradient")
        }
    }

    func testNegativeLogLikelihood() {
        let logits = randomTensor([4, 5], seed: 402, in: -2...2)
        assertGradientCheckPasses([logits], "negativeLogLikelihood") { $0[0].negativeLogLikelihood(targets: [0, 4, 2, 2]) }
    }

    func testSwiGLU() {
        // Gates across both tails of the sigmoid; up of either sign.
        let gate = randomTensor([2, 3, 5], seed: 404, in: -6...6)
        let up = randomTensor([2, 3, 5], seed: 405, in: -2...2)
        assertGradientCheckPasses([gate, up], "swiGLU") { Tensor.swiGLU(gate: $0[0], up: $0[1]) }
    }

    func testSwiGLUMatchesComposedOps() {
        // The fused op against silu(gate) · up, forward and both gradients, in float64.
        let gate = randomTensor([3, 7], seed: 406, in: -6...6), up = randomTensor([3, 7], seed: 407, in: -2...2)
        let cotangent = randomTensor([3, 7], seed: 408)
        gate.requiresGradient = true
        up.requiresGradient = true
        let fused = Tensor.swiGLU(gate: gate, up: up), composed = gate.silu() * up
        assertClose(fused.doubles, composed.doubles, absoluteTolerance: 1e-15)
        let fusedGradients = gradients(of: (fused * cotangent).sum(), withRespectTo: [gate, up])
        let composedGradients = gradients(of: (composed * cotangent).sum(), withRespectTo: [gate, up])
        for index in 0..<2 {
            assertClose(fusedGradients[index].doubles, composedGradients[index].doubles, absoluteTolerance: 1e-14, "gradient \(index)")
        }
    }

    func testSoftmaxEntropy() {
        let logits = randomTensor([2, 3, 5], seed: 403, in: -2...2)
        assertGradientCheckPasses([logits], "softmaxEntropy") { $0[0].softmaxEntropy() }
    }

    func testEntropyOfLogProbabilities() {
        // Any input is taken as log p, so the check runs on raw values as well as on log-softmax
        // rows; 37 columns exercise the eight-lane sums and their tail.
        let x = randomTensor([2, 3, 37], seed: 411, in: -3...1)
        assertGradientCheckPasses([x], "entropyOfLogProbabilities") { $0[0].entropyOfLogProbabilities() }
        assertGradientCheckPasses([x], "entropyOfLogProbabilities of logSoftmax") { $0[0].logSoftmax().entropyOfLogProbabilities() }
    }

    // MARK: Normalisation

    func testRMSNormalized() {
        // x (B=2, T=3, C=6), weight (C).
        let x = randomTensor([2, 3, 6], seed: 404, in: -2...2)
        let weight = randomTensor([6], seed: 405, in: 0.5...1.5)
        assertGradientCheckPasses([x, weight], "rmsNormalized") { $0[0].rmsNormalized(weight: $0[1], epsilon: 1e-5) }
        // C = 37: the row sums run in SIMD lanes and a scalar tail.
        let wide = randomTensor([2, 37], seed: 412, in: -2...2)
        let wideWeight = randomTensor([37], seed: 413, in: 0.5...1.5)
        assertGradientCheckPasses([wide, wideWeight], "rmsNormalized, wide rows") { $0[0].rmsNormalized(weight: $0[1], epsilon: 1e-5) }
        assertGradientCheckPasses([x, weight], "rmsNormalized of a permuted view") {
            $0[0].permuted([1, 0, 2]).rmsNormalized(weight: $0[1], epsilon: 1e-5)
        }
    }

    func testLayerNormalized() {
        let x = randomTensor([2, 3, 6], seed: 406, in: -2...2)
        let weight = randomTensor([6], seed: 407, in: 0.5...1.5), bias = randomTensor([6], seed: 408)
        assertGradientCheckPasses([x, weight, bias], "layerNormalized") {
            $0[0].layerNormalized(weight: $0[1], bias: $0[2], epsilon: 1e-5)
        }
    }

    // MARK: Rotary embedding

    func testRotaryEmbeddedWithPerRowPositions() {
        // x (B=2, T=3, H=2, D=4); one explicit position per (batch, time) pair, with gaps and a
        // repeat, as a packed or left-padded batch has.
        let rotary = RotaryEmbedding(headDimension: 4, maxPositions: 16)
        let x = randomTensor([2, 3, 2, 4], seed: 409)
        assertGradientCheckPasses([x], "rotaryEmbedded per-row positions") {
            $0[0].rotaryEmbedded(rotary, positions: [0, 5, 9, 3, 3, 12])
        }
        assertGradientCheckPasses([x], "rotaryEmbedded shared positions") {
            $0[0].rotaryEmbedded(rotary, positions: [2, 7, 15])
        }
    }

    func testRotaryEmbeddedInVectorLanes() {
        // D = 20: eight pairs in one vector, two in the scalar tail.
        let rotary = RotaryEmbedding(headDimension: 20, maxPositions: 16)
        let x = randomTensor([1, 3, 2, 20], seed: 414)
        assertGradientCheckPasses([x], "rotaryEmbedded, D = 20") { $0[0].rotaryEmbedded(rotary, positions: [1, 8, 14]) }
    }

    func testRotaryEmbeddedOfPermutedView() {
        // Keys produced in (B, H, T, D) order and permuted to (B, T, H, D).
        let rotary = RotaryEmbedding(headDimension: 6, maxPositions: 8)
        let x = randomTensor([1, 2, 3, 6], seed: 410)
        assertGradientCheckPasses([x], "rotaryEmbedded of permuted view") {
            $0[0].permuted([0, 2, 1, 3]).rotaryEmbedded(rotary, positions: [1, 4, 6])
        }
    }

    // MARK: Attention

    func testScaledDotProductAttentionCausal() {
        // q (B=2, Tq=3, H=4, D=4), k and v (B=2, Tk=5, Hkv=2, D=4): grouped-query heads, and
        // Tq ≠ Tk so the default causal mask is aligned at the end (offset 2).
        let query = randomTensor([2, 3, 4, 4], seed: 411)
        let key = randomTensor([2, 5, 2, 4], seed: 412)
        let value = randomTensor([2, 5, 2, 4], seed: 413)
        assertGradientCheckPasses([query, key, value], "causal grouped-query attention") {
            Tensor.scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2])
        }
    }

    func testScaledDotProductAttentionCustomMask() {
        // Row 0: queries at positions 2, 3, 4 with 4 valid keys, so visible keys are 3, 4, 4.
        // Row 1: queries at −1, 0, 1 with 5 valid keys: the first query sees nothing (zeros out).
        let query = randomTensor([2, 3, 4, 4], seed: 414)
        let key = randomTensor([2, 5, 2, 4], seed: 415)
        let value = randomTensor([2, 5, 2, 4], seed: 416)
        let mask = AttentionMask(queryOffsets: [2, -1], keyLengths: [4, 5])
        assertGradientCheckPasses([query, key, value], "attention with queryOffsets and keyLengths") {
            Tensor.scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], mask: mask, scale: 0.7)
        }
    }

    func testScaledDotProductAttentionOverPackedSegments() {
        // Row 0 packs segments of 3, 2 and 2 positions; row 1 one of 6 and one of a single
        // position (it sees only itself). Grouped-query heads: 4 query heads on 2 key heads.
        let query = randomTensor([2, 7, 4, 4], seed: 431)
        let key = randomTensor([2, 7, 2, 4], seed: 432)
        let value = randomTensor([2, 7, 2, 4], seed: 433)
        let mask = AttentionMask(segmentStarts: [[0, 3, 5], [0, 6]])
        assertGradientCheckPasses([query, key, value], "attention over packed segments") {
            Tensor.scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], mask: mask, scale: 0.8)
        }
    }

    func testScaledDotProductAttentionOverProblemsWithPrefixes() {
        // Row 0: a sequence of 3 queries over its own 3 keys, then one of 2 queries that sees a
        // 2-key prefix before its own 2 keys, and a filler key. Row 1: 5 queries after a 1-key
        // prefix, and 2 filler keys. 4 query heads on 2 key heads.
        let query = randomTensor([2, 5, 4, 4], seed: 441)
        let key = randomTensor([2, 8, 2, 4], seed: 442)
        let value = randomTensor([2, 8, 2, 4], seed: 443)
        let mask = AttentionMask(problems: [
            [
                AttentionProblem(queryStart: 0, queryLength: 3, keyStart: 0, keyLength: 3, queryOffset: 0, visibleKeyLength: 3),
                AttentionProblem(queryStart: 3, queryLength: 2, keyStart: 3, keyLength: 5, queryOffset: 2, visibleKeyLength: 4),
            ],
            [AttentionProblem(queryStart: 0, queryLength: 5, keyStart: 0, keyLength: 8, queryOffset: 1, visibleKeyLength: 6)],
        ])
        assertGradientCheckPasses([query, key, value], "attention over problems with prefixes") {
            Tensor.scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], mask: mask, scale: 0.8)
        }
    }

    func testScaledDotProductAttentionOfProjectedViews() {
        // q, k, v as slices of one fused projection (B=1, T=4, H=2, 3·D=9): non-contiguous views.
        let fused = randomTensor([1, 4, 2, 9], seed: 417)
        assertGradientCheckPasses([fused], "attention of sliced views") {
            let pieces = $0[0].split(axis: 3, sizes: [3, 3, 3])
            return Tensor.scaledDotProductAttention(query: pieces[0], key: pieces[1], value: pieces[2])
        }
    }

    // MARK: Composed network

    func testTwoLayerMLPWithRMSNormAndCrossEntropy() {
        // x (B=2, T=3, C=6) → linear (8) + bias → RMSNorm → SiLU → linear (V=5) + bias → weighted
        // cross-entropy. Checked with respect to every parameter at once.
        let input = randomTensor([2, 3, 6], seed: 418, in: -2...2)
        let targets = [1, 4, 0, 3, 3, 2]
        let weights = Tensor(shape: [2, 3], values: [1, 1, 0, 1, 1, 1])
        let firstWeight = randomTensor([8, 6], seed: 419, in: -0.6...0.6)
        let firstBias = randomTensor([8], seed: 420, in: -0.1...0.1)
        let normWeight = randomTensor([8], seed: 421, in: 0.8...1.2)
        let secondWeight = randomTensor([5, 8], seed: 422, in: -0.6...0.6)
        let secondBias = randomTensor([5], seed: 423, in: -0.1...0.1)
        let parameters = [firstWeight, firstBias, normWeight, secondWeight, secondBias]

        func loss(_ parameters: [Tensor]) -> Tensor {
            let hidden = (input.linear(parameters[0]) + parameters[1])
                .rmsNormalized(weight: parameters[2], epsilon: 1e-6)
                .silu()
            let logits = hidden.linear(parameters[3]) + parameters[4]
            return Tensor.crossEntropy(logits: logits, targets: targets, weights: weights)
        }
        assertGradientCheckPasses(parameters, "two-layer MLP", loss)

        // Every parameter gets a non-trivial gradient (the check above would pass vacuously for a
        // parameter the loss ignored).
        for (index, gradient) in gradients(of: loss(parameters), withRespectTo: parameters).enumerated() {
            XCTAssertGreaterThan(gradient.doubles.map(Swift.abs).max() ?? 0, 1e-4, "parameter \(index)")
        }
    }

    // MARK: The checker itself

    func testGradientCheckerCatchesAWrongGradient() {
        // x · detached(x) has true derivative 2x but autodiff sees only x: the check must fail.
        let x = randomTensor([4], seed: 424, in: 0.5...1.5)
        let report = GradientChecker().check([x]) { $0[0] * $0[0].detached() }
        XCTAssertFalse(report.passed)
        XCTAssertEqual(report.failureCount, 4)
        XCTAssertEqual(report.checkedCount, 4)
    }
}
