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

    func testPaddedBatchForwardMatchesEachSequenceAlone() {
        var generator = RandomGenerator(seed: 5)
        let model = LlamaModel(configuration: tinyConfiguration(), generator: &generator)
        let sequences = [[1, 2, 3, 4, 5, 6], [7, 8, 9], [10]]
        let batch = TokenBatch(sequences: sequences, padding: ByteTokenizer().padID)
        let logits = withoutGradients { model.forward(batch).logits.doubles }
        let v = model.configuration.vocabularySize
        for (row, sequence) in sequences.enumerated() {
            let alone = fullLogits(model, sequence)
            let batched = Array(logits[(row * 6 * v)..<((row * 6 + sequence.count) * v)])
            XCTAssertLessThan(maxAbsoluteDifference(alone, batched), 1e-5)
        }
    }
}
