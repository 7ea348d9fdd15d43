import Policy
import Tensor
import XCTest

/// Packed sequences that share a prefix with an earlier one of their row (`PackedSequence`): the
/// row holds the prefix once, and every sequence is computed as if it were alone.
final class SharedPrefixPackingTests: XCTestCase {
    /// Row 0: a root of 5 tokens, a fork sharing its first 3, a fork of the fork sharing 4.
    /// Row 1: one token, then padding.
    func testLayout() {
        let batch = TokenBatch(packing: [
            [
                PackedSequence(tokens: [1, 2, 3, 4, 5]),
                PackedSequence(tokens: [1, 2, 3, 7, 8], host: 0, sharedLength: 3),
                PackedSequence(tokens: [1, 2, 3, 7, 9, 9], host: 1, sharedLength: 4),
            ],
            [PackedSequence(tokens: [6])],
        ], padding: 99)
        // Each fork computes its shared prefix's last token again, then its own.
        XCTAssertEqual(batch.tokens, [1, 2, 3, 4, 5, 3, 7, 8, 7, 9, 9] + [6] + [Int](repeating: 99, count: 10))
        XCTAssertEqual(batch.lengths, [11, 1])
        XCTAssertEqual(batch.sequenceStarts, [[0, 5, 8], [0]])
        XCTAssertEqual(batch.prefixes, [[[], [0, 1], [0, 1, 5]], [[]]])
        XCTAssertEqual(batch.locations(row: 0, sequence: 1), [0, 1, 5, 6, 7])
        XCTAssertEqual(batch.locations(row: 0, sequence: 2), [0, 1, 5, 8, 9, 10])
        XCTAssertEqual(Array(batch.positions[0..<11]), [0, 1, 2, 3, 4, 2, 3, 4, 3, 4, 5])
        XCTAssertEqual(batch.longestSequence, 6)
        let keys = try! XCTUnwrap(batch.keyRows)
        XCTAssertEqual(keys.keyLength, 16)
        XCTAssertEqual(Array(keys.indices[0..<16]), [0, 1, 2, 3, 4, 0, 1, 5, 6, 7, 0, 1, 5, 8, 9, 10])
        XCTAssertEqual(Array(keys.indices[16..<32]), [0] + Array(1..<11) + [Int](repeating: 10, count: 5))
        XCTAssertEqual(batch.attentionMask.problems, [
            [
                AttentionProblem(queryStart: 0, queryLength: 5, keyStart: 0, keyLength: 5, queryOffset: 0, visibleKeyLength: 5),
                AttentionProblem(queryStart: 5, queryLength: 3, keyStart: 5, keyLength: 5, queryOffset: 2, visibleKeyLength: 5),
                AttentionProblem(queryStart: 8, queryLength: 3, keyStart: 10, keyLength: 6, queryOffset: 3, visibleKeyLength: 6),
            ],
            [
                AttentionProblem(queryStart: 0, queryLength: 1, keyStart: 0, keyLength: 1, queryOffset: 0, visibleKeyLength: 1),
                AttentionProblem(queryStart: 1, queryLength: 10, keyStart: 1, keyLength: 15, queryOffset: 0, visibleKeyLength: 10),
            ],
        ])
    }

    /// Random trees of sequences: row 0 a root of 14 tokens, a fork of it after 6, a fork of that
    /// fork after 9, and a sibling root sharing only its first 3 (a group's prompt); row 1 a root
    /// and a fork sharing all but its last token, then an unrelated sequence.
    private let rows: [[PackedSequence]] = {
        var generator = RandomGenerator(seed: 12)
        func tokens(_ count: Int) -> [Int] { (0..<count).map { _ in Int(generator.next() % 256) } }
        let root = tokens(14)
        let fork = Array(root[..<6]) + tokens(8)
        let forkOfFork = Array(fork[..<9]) + tokens(7)
        let sibling = Array(root[..<3]) + tokens(10)
        let other = tokens(11)
        let nearCopy = Array(other[..<10]) + tokens(1)
        return [
            [
                PackedSequence(tokens: root), PackedSequence(tokens: fork, host: 0, sharedLength: 6),
                PackedSequence(tokens: forkOfFork, host: 1, sharedLength: 9), PackedSequence(tokens: sibling, host: 0, sharedLength: 3),
            ],
            [PackedSequence(tokens: other), PackedSequence(tokens: nearCopy, host: 0, sharedLength: 10), PackedSequence(tokens: tokens(5))],
        ]
    }()

    /// Each sequence's statistics read at its locations (a prediction of token i + 1 at
    /// `locations[i]`), (sequence, position) flattened in row order.
    private func gathered(_ perPosition: Tensor, batch: TokenBatch, predictions: Bool) -> Tensor {
        let width = perPosition.shape[1]
        var indices: [Int] = []
        for row in rows.indices {
            for sequence in rows[row].indices {
                let locations = batch.locations(row: row, sequence: sequence)
                indices += (predictions ? locations.dropLast() : locations[...]).map { row * width + $0 }
            }
        }
        return perPosition.reshaped([perPosition.count, 1]).embedding(indices, shape: [indices.count]).reshaped([indices.count])
    }

    /// Log-probabilities, entropies and values of every sequence equal those of the sequence run
    /// alone.
    func testSharedPrefixForwardEqualsSeparateForwards() {
        for (dtype, tolerance) in [(DType.float64, 1e-12), (.float32, 1e-5)] {
            var generator = RandomGenerator(seed: 4)
            let model = LlamaModel(configuration: tinyConfiguration(valueHead: true, tied: false, keyValueHeads: 2), dtype: dtype, generator: &generator)
            let batch = TokenBatch(packing: rows, padding: Tokenizer().padID)
            let statistics = model.tokenStatistics(batch)
            let logProbabilities = gathered(statistics.logProbabilities, batch: batch, predictions: true).doubles
            let entropies = gathered(statistics.entropies, batch: batch, predictions: false).doubles
            let values = gathered(statistics.values!, batch: batch, predictions: false).doubles
            var (predicted, read) = (0, 0)
            for sequence in rows.joined() {
                let alone = model.tokenStatistics(TokenBatch(sequences: [sequence.tokens], padding: Tokenizer().padID))
                let count = sequence.tokens.count
                XCTAssertLessThanOrEqual(maxAbsoluteDifference(Array(logProbabilities[predicted..<(predicted + count - 1)]), alone.logProbabilities.doubles), tolerance, "\(dtype) log-probabilities")
                XCTAssertLessThanOrEqual(maxAbsoluteDifference(Array(entropies[read..<(read + count)]), alone.entropies.doubles), tolerance, "\(dtype) entropies")
                XCTAssertLessThanOrEqual(maxAbsoluteDifference(Array(values[read..<(read + count)]), alone.values!.doubles), tolerance, "\(dtype) values")
                predicted += count - 1
                read += count
            }
        }
    }

    /// The gradient of the sequences' summed log-probabilities, each read at its own locations
    /// (so a shared prefix's predictions count once per sequence holding them), equals the sum of
    /// the sequences' gradients computed one by one (float64).
    func testSharedPrefixGradientsEqualTheSumOfSeparateGradients() {
        var generator = RandomGenerator(seed: 6)
        let model = LlamaModel(configuration: tinyConfiguration(keyValueHeads: 2), dtype: .float64, generator: &generator)
        let batch = TokenBatch(packing: rows, padding: Tokenizer().padID)
        let shared = gradients(of: gathered(model.tokenStatistics(batch).logProbabilities, batch: batch, predictions: true).sum(), withRespectTo: model.parameters)
        var separate = model.parameters.map { Tensor.zeros($0.shape, dtype: .float64) }
        for sequence in rows.joined() {
            let alone = gradients(of: model.tokenStatistics(TokenBatch(sequences: [sequence.tokens], padding: Tokenizer().padID)).logProbabilities.sum(), withRespectTo: model.parameters)
            separate = zip(separate, alone).map { $0 + $1 }
        }
        for (index, (actual, expected)) in zip(shared, separate).enumerated() {
            XCTAssertLessThanOrEqual(maxAbsoluteDifference(actual.doubles, expected.doubles), 1e-10, "parameter \(model.namedParameters[index].name)")
        }
    }

    /// The shared-prefix forward of a tiny float64 model against central differences.
    func testSharedPrefixModelGradientCheck() {
        var generator = RandomGenerator(seed: 8)
        let model = LlamaModel(configuration: tinyConfiguration(valueHead: true, tied: false, keyValueHeads: 2), dtype: .float64, generator: &generator)
        for parameter in model.parameters where parameter.rank == 2 { parameter.scaleInPlace(by: 10) }
        let batch = TokenBatch(packing: [
            [PackedSequence(tokens: [3, 50, 200, 4]), PackedSequence(tokens: [3, 50, 7, 9], host: 0, sharedLength: 2)],
            [PackedSequence(tokens: [2, 5])],
        ], padding: Tokenizer().padID)
        var picker = RandomGenerator(seed: 10)
        let elements = model.parameters.map { parameter in (0..<4).map { _ in Int(picker.next() % UInt64(parameter.count)) } }
        let report = GradientChecker().check(model.parameters, elements: elements) { _ in
            let statistics = model.tokenStatistics(batch)
            return statistics.logProbabilities.sum() + 0.1 * statistics.entropies.sum() + statistics.values!.squared().sum()
        }
        XCTAssertTrue(report.passed, report.description)
    }
}
