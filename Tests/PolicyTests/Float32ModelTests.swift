import Policy
import Tensor
import XCTest

/// A quickstart-sized model (width 256, 8 heads of 32, 2 layers) in float32 against the same
/// weights in float64, at two threads: the float32 path runs the AVX-512 attention row kernels
/// and split GEMMs, the float64 path the portable loops, so their agreement on a padded batch
/// of long sequences checks the fast path where the small fixture cannot.
final class Float32ModelTests: XCTestCase {
    func testFloat32LossAndGradientsMatchFloat64() {
        let configured = BLASRuntime.threadCount
        defer { BLASRuntime.setThreadCount(configured) }
        BLASRuntime.setThreadCount(2)
        let configuration = LlamaConfiguration(hiddenSize: 256, intermediateSize: 512, layerCount: 2, headCount: 8, maxPositions: 192)
        var generator = RandomGenerator(seed: 21)
        let reference = LlamaModel(configuration: configuration, dtype: .float64, generator: &generator)
        generator = RandomGenerator(seed: 21)
        let single = LlamaModel(configuration: configuration, dtype: .float32, generator: &generator)
        for (target, source) in zip(single.parameters, reference.parameters) {
            target.assign(source.converted(to: .float32))
        }
        var picker = RandomGenerator(seed: 22)
        let sequences = [190, 131, 77, 160].map { length in (0..<length).map { _ in Int(picker.next() % 256) } }
        let batch = TokenBatch(sequences: sequences, padding: ByteTokenizer().padID)
        func lossAndGradients(_ model: LlamaModel) -> (Double, [[Double]]) {
            for parameter in model.parameters { parameter.clearGradient() }
            let loss = model.tokenStatistics(batch).logProbabilities.sum()
            loss.backward()
            return (loss.item, model.parameters.map { $0.gradient!.doubles })
        }
        let (expectedLoss, expected) = lossAndGradients(reference)
        let (loss, actual) = lossAndGradients(single)
        XCTAssertEqual(loss, expectedLoss, accuracy: 1e-5 * abs(expectedLoss))
        // Float32 rounding gives about 1e-6 of the largest gradient; a wrong kernel gives far more.
        for (index, (a, e)) in zip(actual, expected).enumerated() {
            let scale = e.map(abs).max()!
            let worst = zip(a, e).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(worst, 2e-5 * scale, "parameter \(index): largest difference \(worst) against a largest gradient of \(scale)")
        }
    }
}
