import Policy
import Tensor
import XCTest

/// Packed batches: several sequences per row, each computed as if it were alone.
final class PackingTests: XCTestCase {
    /// Seven sequences of 1 to 17 tokens in three packed rows; row 1 is longer than the tiny
    /// model's 32 positions (a row may be, as long as each sequence fits), row 2 is one sequence.
    private let rows: [[[Int]]] = {
        var generator = RandomGenerator(seed: 11)
        func sequence(_ length: Int) -> [Int] { (0..<length).map { _ in Int(generator.next() % 256) } }
        return [[sequence(5), sequence(9), sequence(1)], [sequence(17), sequence(16), sequence(4)], [sequence(12)]]
    }()

    func testPackedBatchLayout() {
        let batch = TokenBatch(packing: [[[1, 2, 3], [4, 5]], [[6]], []], padding: 99)
        XCTAssertEqual(batch.length, 5)
        XCTAssertEqual(batch.lengths, [5, 1, 0])
        XCTAssertEqual(batch.tokens, [1, 2, 3, 4, 5, 6, 99, 99, 99, 99, 99, 99, 99, 99, 99])
        XCTAssertEqual(batch.sequenceStarts, [[0, 3], [0], []])
        XCTAssertEqual(batch.positions, [0, 1, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(batch.longestSequence, 3)
        // A row's padding is a segment of its own; an empty row is all padding.
        XCTAssertEqual(batch.attentionMask.segmentStarts, [[0, 3], [0, 1], [0]])
        XCTAssertNil(TokenBatch(sequences: [[1, 2], [3]], padding: 0).attentionMask.segmentStarts)
    }

    /// Log-probabilities, entropies and values of every packed sequence equal those of the
    /// sequence run alone, and the entry that would predict the next sequence's first token is 0.
    private func assertPackedEqualsSeparate(dtype: DType, tolerance: Double, file: StaticString = #filePath, line: UInt = #line) {
        var generator = RandomGenerator(seed: 4)
        let model = LlamaModel(configuration: tinyConfiguration(valueHead: true, tied: false, keyValueHeads: 2), dtype: dtype, generator: &generator)
        let packed = TokenBatch(packing: rows, padding: Tokenizer().padID)
        XCTAssertGreaterThan(packed.length, model.configuration.maxPositions, file: file, line: line)
        let statistics = model.tokenStatistics(packed)
        let (logProbabilities, entropies, values) = (statistics.logProbabilities.doubles, statistics.entropies.doubles, statistics.values!.doubles)
        let width = packed.length - 1
        for (row, sequences) in rows.enumerated() {
            var start = 0
            for (index, sequence) in sequences.enumerated() {
                let alone = model.tokenStatistics(TokenBatch(sequences: [sequence], padding: Tokenizer().padID))
                let name = "\(dtype) row \(row) sequence \(index)"
                let predicted = sequence.count - 1
                assertClose(Array(logProbabilities[(row * width + start)..<(row * width + start + predicted)]), alone.logProbabilities.doubles, tolerance, "\(name) log-probabilities", file: file, line: line)
                assertClose(Array(entropies[(row * packed.length + start)..<(row * packed.length + start + sequence.count)]), alone.entropies.doubles, tolerance, "\(name) entropies", file: file, line: line)
                assertClose(Array(values[(row * packed.length + start)..<(row * packed.length + start + sequence.count)]), alone.values!.doubles, tolerance, "\(name) values", file: file, line: line)
                start += sequence.count
                if start < packed.lengths[row] {
                    XCTAssertEqual(logProbabilities[row * width + start - 1], 0, "\(name): its last token does not predict the next sequence", file: file, line: line)
                }
            }
        }
    }

    func testPackedForwardEqualsSeparateForwardsInFloat64() {
        assertPackedEqualsSeparate(dtype: .float64, tolerance: 1e-12)
    }

    func testPackedForwardEqualsSeparateForwardsInFloat32() {
        assertPackedEqualsSeparate(dtype: .float32, tolerance: 1e-5)
    }

    /// The gradient of a packed batch's summed log-probabilities equals the sum of the
    /// sequences' gradients computed one by one (float64).
    func testPackedGradientsEqualTheSumOfSeparateGradients() {
        var generator = RandomGenerator(seed: 6)
        let model = LlamaModel(configuration: tinyConfiguration(keyValueHeads: 2), dtype: .float64, generator: &generator)
        let packed = TokenBatch(packing: rows, padding: Tokenizer().padID)
        let packedGradients = gradients(of: model.tokenStatistics(packed).logProbabilities.sum(), withRespectTo: model.parameters)
        var separate = model.parameters.map { Tensor.zeros($0.shape, dtype: .float64) }
        // A one-token sequence predicts nothing and adds nothing.
        for sequence in rows.joined() where sequence.count > 1 {
            let alone = gradients(of: model.tokenStatistics(TokenBatch(sequences: [sequence], padding: Tokenizer().padID)).logProbabilities.sum(), withRespectTo: model.parameters)
            separate = zip(separate, alone).map { $0 + $1 }
        }
        for (index, (actual, expected)) in zip(packedGradients, separate).enumerated() {
            assertClose(actual.doubles, expected.doubles, 1e-10, "parameter \(model.namedParameters[index].name)")
        }
    }

    /// The packed forward of a tiny float64 model against central differences.
    func testPackedModelGradientCheck() {
        var generator = RandomGenerator(seed: 8)
        let model = LlamaModel(configuration: tinyConfiguration(valueHead: true, tied: false, keyValueHeads: 2), dtype: .float64, generator: &generator)
        for parameter in model.parameters where parameter.rank == 2 { parameter.scaleInPlace(by: 10) }
        let batch = TokenBatch(packing: [[[3, 50, 200], [7, 9, 260, 1]], [[2, 5]]], padding: Tokenizer().padID)
        var picker = RandomGenerator(seed: 10)
        let elements = model.parameters.map { parameter in (0..<4).map { _ in Int(picker.next() % UInt64(parameter.count)) } }
        let report = GradientChecker().check(model.parameters, elements: elements) { _ in
            let statistics = model.tokenStatistics(batch)
            return statistics.logProbabilities.sum() + 0.1 * statistics.entropies.sum() + statistics.values!.squared().sum()
        }
        XCTAssertTrue(report.passed, report.description)
    }

    private func assertClose(_ actual: [Double], _ expected: [Double], _ tolerance: Double, _ name: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, "\(name): lengths differ", file: file, line: line)
        guard actual.count == expected.count else { return }
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(actual, expected), tolerance, name, file: file, line: line)
    }
}
