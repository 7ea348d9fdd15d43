import Tensor
import XCTest

// Shared helpers for the tensor tests: seeded float64 inputs for gradient checks and assertions
// that state their tolerances.

/// A float64 tensor of `shape` drawn uniformly from `range` with a fixed seed.
func randomTensor(_ shape: [Int], seed: UInt64, in range: ClosedRange<Double> = -1...1) -> Tensor {
    var generator = RandomGenerator(seed: seed)
    return Tensor.uniform(shape, low: range.lowerBound, high: range.upperBound, dtype: .float64, generator: &generator)
}

/// `randomTensor` converted to float32, as a leaf that records its gradient.
func float32Leaf(_ shape: [Int], seed: UInt64, in range: ClosedRange<Double> = -1...1) -> Tensor {
    let tensor = randomTensor(shape, seed: seed, in: range).converted(to: .float32)
    tensor.requiresGradient = true
    return tensor
}

/// A float64 tensor whose elements have random signs and magnitudes in `magnitudes`, so that no
/// element sits within a central-difference step of a kink at zero (relu, abs).
func randomTensorAwayFromZero(_ shape: [Int], seed: UInt64, magnitudes: ClosedRange<Double> = 0.1...1) -> Tensor {
    var generator = RandomGenerator(seed: seed)
    let count = shape.reduce(1, *)
    let values = (0..<count).map { _ -> Double in
        let magnitude = generator.uniform(magnitudes.lowerBound, magnitudes.upperBound)
        return generator.uniform() < 0.5 ? -magnitude : magnitude
    }
    return Tensor(shape: shape, values: values)
}

/// Runs `GradientChecker()` (central differences with ε = 1e-6; an element passes when
/// |analytic − numeric| ≤ 1e-5 + 1e-3·|numeric|, PyTorch gradcheck's defaults) and fails with the
/// checker's report when any element is out of tolerance.
func assertGradientCheckPasses(
    _ inputs: [Tensor], _ name: String,
    file: StaticString = #filePath, line: UInt = #line,
    _ function: ([Tensor]) -> Tensor
) {
    let report = GradientChecker().check(inputs, function)
    XCTAssertTrue(report.passed, "\(name): \(report)", file: file, line: line)
}

/// Asserts that `actual` and `expected` have the same length and differ by at most
/// `absoluteTolerance + relativeTolerance·|expected|` element by element.
func assertClose(
    _ actual: [Double], _ expected: [Double],
    absoluteTolerance: Double, relativeTolerance: Double = 0, _ name: String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertEqual(actual.count, expected.count, "\(name): element counts differ", file: file, line: line)
    guard actual.count == expected.count else { return }
    var failures: [String] = []
    for index in 0..<actual.count {
        let error = Swift.abs(actual[index] - expected[index])
        // Written so that NaN fails.
        if !(error <= absoluteTolerance + relativeTolerance * Swift.abs(expected[index])) {
            failures.append("[\(index)] \(actual[index]) vs expected \(expected[index])")
        }
    }
    XCTAssertTrue(
        failures.isEmpty,
        "\(name): \(failures.count) of \(actual.count) elements out of tolerance: " + failures.prefix(8).joined(separator: "; "),
        file: file, line: line)
}

/// Asserts every element of `values` is exactly zero.
func assertAllZero(_ values: [Double], _ name: String, file: StaticString = #filePath, line: UInt = #line) {
    let nonzero = values.enumerated().filter { $0.element != 0 }
    XCTAssertTrue(nonzero.isEmpty, "\(name): nonzero at \(nonzero.prefix(8).map { "[\($0.offset)] \($0.element)" })", file: file, line: line)
}
