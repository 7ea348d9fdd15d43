import Policy
import Tensor
import XCTest

/// KV-cache decoding must equal the full forward pass.
final class DecodingTests: XCTestCase {
    /// Logits of every position of `sequence` from the full (uncached) forward pass: (T, V).
    func fullLogits(_ model: LlamaModel, _ sequence: [Int]) -> [Double] {
        withoutGradients { model.forward(TokenBatch(sequences: [sequence], padding: 0)).logits.doubles }
    }

    func assertMatchesFullForward(_ model: LlamaModel, sequence: [Int], position: Int, cachedLogits: [Double], file: StaticString = #filePath, line: UInt = #line) {
        let v = model.configuration.vocabularySize
        let full = fullLogits(model, Array(sequence[...position]))
        let reference = Array(full[(position * v)..<((position + 1) * v)])
        let error = maxAbsoluteDifference(cachedLogits, reference)
        XCTAssertLessThanOrEqual(error, 1e-4, "cached logits at position \(position) differ from the full pass by \(error)", file: file, line: line)
    }

    /// Three sequences of different lengths are prefilled in one call, decode together, one gets an
    /// observation appended in one prefill step, and one is forked; every step's logits match.
    func testBatchedDecodingWithObservationAndForkMatchesFullForward() {
        var generator = RandomGenerator(seed: 11)
        let configuration = LlamaConfiguration(hiddenSize: 32, intermediateSize: 48, layerCount: 2, headCount: 4, keyValueHeadCount: 2, maxPositions: 48)
        let model = LlamaModel(configuration: configuration, generator: &generator)
        // Larger weights make the logits sensitive, so a cache bug cannot hide in small numbers.
        for parameter in model.parameters where parameter.rank == 2 { parameter.scaleInPlace(by: 10) }
        var sequences = [[5, 17, 200, 33, 90], [1, 2, 3, 4, 5, 6, 7, 8, 9], [260, 42, 7]]
        let caches = sequences.map { _ in KVCache(model: model) }

        let prefill = model.extendReturningAllLogits(caches, with: sequences)
        for (index, logits) in prefill.enumerated() {
            let v = configuration.vocabularySize
            let values = logits.doubles
            for position in 0..<sequences[index].count {
                assertMatchesFullForward(model, sequence: sequences[index], position: position, cachedLogits: Array(values[(position * v)..<((position + 1) * v)]))
            }
        }
        // Decode three steps together (one token each).
        for step in 0..<3 {
            let next = sequences.indices.map { (step * 31 + $0 * 7) % 256 }
            for index in sequences.indices { sequences[index].append(next[index]) }
            let logits = model.extend(caches, with: next.map { [$0] }).doubles
            let v = configuration.vocabularySize
            for index in sequences.indices {
                assertMatchesFullForward(model, sequence: sequences[index], position: sequences[index].count - 1, cachedLogits: Array(logits[(index * v)..<((index + 1) * v)]))
            }
        }
        // Sequence 1 receives an observation (several tokens in one step) while sequences 0 and
        // 2 each decode one token in the same call.
        let observation = [263, 70, 71, 72, 73, 264]
        let appended = [[99], observation, [100]]
        for index in sequences.indices { sequences[index] += appended[index] }
        let mixed = model.extend(caches, with: appended).doubles
        for index in sequences.indices {
            let v = configuration.vocabularySize
            assertMatchesFullForward(model, sequence: sequences[index], position: sequences[index].count - 1, cachedLogits: Array(mixed[(index * v)..<((index + 1) * v)]))
        }
        // Fork sequence 1 and continue parent and child differently.
        let child = caches[1].fork()
        XCTAssertEqual(child.length, caches[1].length)
        var childSequence = sequences[1]
        sequences[1].append(11)
        childSequence.append(12)
        let forked = model.extend([caches[1], child], with: [[11], [12]]).doubles
        let v = configuration.vocabularySize
        assertMatchesFullForward(model, sequence: sequences[1], position: sequences[1].count - 1, cachedLogits: Array(forked[0..<v]))
        assertMatchesFullForward(model, sequence: childSequence, position: childSequence.count - 1, cachedLogits: Array(forked[v..<(2 * v)]))
        // The fork is independent: extending the child again leaves the parent's cache alone.
        childSequence.append(13)
        _ = model.extend([child], with: [[13]])
        sequences[1].append(14)
        let parentAgain = model.extend([caches[1]], with: [[14]]).doubles
        assertMatchesFullForward(model, sequence: sequences[1], position: sequences[1].count - 1, cachedLogits: parentAgain)
    }

    /// Caches start small and double: decoding across the 64- and 128-row growths, and a fork
    /// taken after a growth, still match the full pass.
    func testDecodingAcrossCacheGrowthAndForkMatchesFullForward() {
        var generator = RandomGenerator(seed: 13)
        let configuration = LlamaConfiguration(hiddenSize: 16, intermediateSize: 24, layerCount: 2, headCount: 4, keyValueHeadCount: 2, maxPositions: 160)
        let model = LlamaModel(configuration: configuration, generator: &generator)
        for parameter in model.parameters where parameter.rank == 2 { parameter.scaleInPlace(by: 5) }
        var sequences = [Array(0..<60).map { ($0 * 37 + 3) % 256 }, [7, 8, 9]]
        let caches = sequences.map { _ in KVCache(model: model) }
        _ = model.extend(caches, with: sequences)
        var child: KVCache?
        var childSequence: [Int] = []
        for step in 0..<75 {
            let next = sequences.indices.map { (step * 13 + $0 * 101) % 256 }
            for index in sequences.indices { sequences[index].append(next[index]) }
            let logits = model.extend(caches, with: next.map { [$0] }).doubles
            let v = configuration.vocabularySize
            // Checking every position would make the test slow; the steps around each growth
            // (after 64 and 128 positions) and a few others are checked.
            if [3, 4, 5, 40, 67, 68, 74].contains(step) {
                for index in sequences.indices {
                    assertMatchesFullForward(model, sequence: sequences[index], position: sequences[index].count - 1, cachedLogits: Array(logits[(index * v)..<((index + 1) * v)]))
                }
            }
            if step == 70 {
                child = caches[0].fork(length: 100)
                childSequence = Array(sequences[0].prefix(100))
            }
        }
        childSequence.append(42)
        let forked = model.extend([child!], with: [[42]]).doubles
        assertMatchesFullForward(model, sequence: childSequence, position: childSequence.count - 1, cachedLogits: forked)
    }

    /// Head dimensions that are multiples of 16 take the vectorised cache attention (on AVX-512
    /// CPUs), and 12 sequences with a 40-row prefill take both the few-row packed products and
    /// BLAS: decoding still matches the full pass for every sequence.
    func testBatchedDecodingWithWideHeadsMatchesFullForward() {
        for (heads, keyValueHeads) in [(4, 2), (2, 1)] {
            var generator = RandomGenerator(seed: 19)
            let configuration = LlamaConfiguration(hiddenSize: 64, intermediateSize: 96, layerCount: 2, headCount: heads, keyValueHeadCount: keyValueHeads, maxPositions: 64)
            let model = LlamaModel(configuration: configuration, generator: &generator)
            for parameter in model.parameters where parameter.rank == 2 { parameter.scaleInPlace(by: 5) }
            var sequences = (0..<12).map { index in (0..<(3 + index)).map { ($0 * 29 + index * 11) % 256 } }
            let caches = sequences.map { _ in KVCache(model: model) }
            _ = model.extend(caches, with: sequences)
            let v = configuration.vocabularySize
            for step in 0..<20 {
                let next = sequences.indices.map { (step * 17 + $0 * 5) % 256 }
                for index in sequences.indices { sequences[index].append(next[index]) }
                let logits = model.extend(caches, with: next.map { [$0] }).doubles
                guard [0, 19].contains(step) else { continue }
                for index in sequences.indices {
                    assertMatchesFullForward(model, sequence: sequences[index], position: sequences[index].count - 1, cachedLogits: Array(logits[(index * v)..<((index + 1) * v)]))
                }
            }
        }
    }

    /// The decode path keeps fused copies of the weights; an optimizer step writes the parameters
    /// in place, and the next decode step must use the new values.
    func testDecodingAfterOptimizerStepUsesUpdatedWeights() {
        var generator = RandomGenerator(seed: 17)
        let model = LlamaModel(configuration: tinyConfiguration(keyValueHeads: 2), generator: &generator)
        let sequence = [3, 1, 4, 1, 5, 9, 2, 6]
        let before = model.extend([KVCache(model: model)], with: [sequence]).doubles
        assertMatchesFullForward(model, sequence: sequence, position: sequence.count - 1, cachedLogits: before)

        let optimizer = AdamW(named: model.namedParameters, hyperparameters: .init(weightDecay: 0))
        (-model.tokenStatistics(TokenBatch(sequences: [sequence], padding: 0)).logProbabilities.sum()).backward()
        optimizer.update(learningRate: 1e-2)
        let after = model.extend([KVCache(model: model)], with: [sequence]).doubles
        XCTAssertGreaterThan(maxAbsoluteDifference(before, after), 1e-3, "the step changed the logits")
        assertMatchesFullForward(model, sequence: sequence, position: sequence.count - 1, cachedLogits: after)

        // `load(from:)` writes the parameters too.
        var otherGenerator = RandomGenerator(seed: 18)
        let other = LlamaModel(configuration: model.configuration, generator: &otherGenerator)
        model.load(from: other)
        let loaded = model.extend([KVCache(model: model)], with: [sequence]).doubles
        assertMatchesFullForward(model, sequence: sequence, position: sequence.count - 1, cachedLogits: loaded)
    }

    func testPaddedBatchForwardMatchesEachSequenceAlone() {
        var generator = RandomGenerator(seed: 5)
        let model = LlamaModel(configuration: tinyConfiguration(), generator: &generator)
        let sequences = [[1, 2, 3, 4, 5, 6], [7, 8, 9], [10]]
        let batch = TokenBatch(sequences: sequences, padding: Tokenizer().padID)
        let logits = withoutGradients { model.forward(batch).logits.doubles }
        let v = model.configuration.vocabularySize
        for (row, sequence) in sequences.enumerated() {
            let alone = fullLogits(model, sequence)
            let batched = Array(logits[(row * 6 * v)..<((row * 6 + sequence.count) * v)])
            XCTAssertLessThan(maxAbsoluteDifference(alone, batched), 1e-5)
        }
    }
}
