import Policy
import Tensor
import XCTest

/// A quickstart-sized model (width 256, 8 heads of 32, 2 layers) in float32 against the same
/// weights in float64, at two threads: the float32 path runs the AVX-512 attention row kernels
/// and split GEMMs, the float64 path the portable loops, so their agreement on a padded batch
/// of long sequences checks the fast path where the small fixture cannot.
final class Float32ModelTests: XCTestCase {
    func testFloat32LossAndGradientsMatchFloat64() {
        // Float32 rounding gives about 1e-6 of the largest gradient; a wrong kernel gives far more.
        assertModelMatchesFloat64(at: .highest, lossTolerance: 1e-5, gradientTolerance: 2e-5)
    }

    /// The reduced matmul precisions (AMX bfloat16) through the whole model, forward and backward:
    /// `high` (about 16 significant bits per operand) stays within a few 1e-5 of the largest
    /// gradient, `medium` (8 bits) within a few 1e-3.
    func testReducedMatmulPrecisionsMatchFloat64WithinTheirRounding() throws {
        try XCTSkipUnless(BLASRuntime.hasAMX, "no AMX on this CPU: every precision computes as highest")
        let high = assertModelMatchesFloat64(at: .high, lossTolerance: 2e-5, gradientTolerance: 2e-4)
        let medium = assertModelMatchesFloat64(at: .medium, lossTolerance: 2e-3, gradientTolerance: 2e-2)
        // Each precision is what it says: medium's rounding shows, and high's is far smaller.
        XCTAssertGreaterThan(medium, 20 * high, "medium's worst relative gradient error \(medium) against high's \(high)")
    }

    /// Loss and gradients of a quickstart-sized float32 model at `precision` against the same
    /// model in float64; returns the worst gradient difference relative to its parameter's
    /// largest gradient.
    @discardableResult
    private func assertModelMatchesFloat64(
        at precision: MatmulPrecision, lossTolerance: Double, gradientTolerance: Double,
        file: StaticString = #filePath, line: UInt = #line
    ) -> Double {
        let configured = ComputeSettings.current
        defer { configured.with(matmulPrecision: .highest).apply() }
        let settings = configured.with(threads: 2)
        settings.apply()
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
        let batch = TokenBatch(sequences: sequences, padding: Tokenizer().padID)
        func lossAndGradients(_ model: LlamaModel) -> (Double, [[Double]]) {
            for parameter in model.parameters { parameter.clearGradient() }
            let loss = model.tokenStatistics(batch).logProbabilities.sum()
            loss.backward()
            return (loss.item, model.parameters.map { $0.gradient!.doubles })
        }
        let (expectedLoss, expected) = lossAndGradients(reference)
        settings.with(matmulPrecision: precision).apply()
        let (loss, actual) = lossAndGradients(single)
        XCTAssertEqual(loss, expectedLoss, accuracy: lossTolerance * abs(expectedLoss), "\(precision) loss", file: file, line: line)
        var worstRelative = 0.0
        for (index, (a, e)) in zip(actual, expected).enumerated() {
            let scale = e.map(abs).max()!
            let worst = zip(a, e).map { abs($0 - $1) }.max()!
            worstRelative = max(worstRelative, worst / scale)
            XCTAssertLessThan(worst, gradientTolerance * scale, "\(precision) parameter \(index): largest difference \(worst) against a largest gradient of \(scale)", file: file, line: line)
        }
        return worstRelative
    }
}
