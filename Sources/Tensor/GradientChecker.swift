/// Compares autodiff gradients with central differences, as PyTorch's `gradcheck` does.
///
/// The inputs must be `float64`. For a function with a non-scalar output, the checked scalar is
/// ⟨output, R⟩ with a fixed random cotangent R, which checks the whole vector-Jacobian product.
/// An element passes when |analytic − numeric| ≤ atol + rtol·|numeric|.
public struct GradientChecker {
    public var epsilon: Double
    public var absoluteTolerance: Double
    public var relativeTolerance: Double

    /// PyTorch gradcheck's defaults: ε = 1e-6, atol = 1e-5, rtol = 1e-3.
    public init(epsilon: Double = 1e-6, absoluteTolerance: Double = 1e-5, relativeTolerance: Double = 1e-3) {
        self.epsilon = epsilon
        self.absoluteTolerance = absoluteTolerance
        self.relativeTolerance = relativeTolerance
    }

    /// The outcome of one check.
    public struct Report: CustomStringConvertible {
        /// Largest |analytic − numeric| over every checked element.
        public var maxAbsoluteError: Double = 0
        /// Elements checked.
        public var checkedCount = 0
        /// One line per element out of tolerance (at most 10 kept).
        public var failures: [String] = []
        public var failureCount = 0
        public var passed: Bool { failureCount == 0 && checkedCount > 0 }

        public var description: String {
            "checked \(checkedCount) elements, max abs error \(maxAbsoluteError), \(failureCount) failures" + (failures.isEmpty ? "" : ":\n" + failures.joined(separator: "\n"))
        }
    }

    /// Checks the gradient of `function` with respect to every element of `inputs` (or of the
    /// `elements` chosen per input, for large tensors).
    ///
    /// `inputs` are used in place: their `requiresGradient` is set, and each element is nudged by
    /// ±ε and restored.
    public func check(
        _ inputs: [Tensor], elements: [[Int]]? = nil, seed: UInt64 = 0x5EED, _ function: ([Tensor]) -> Tensor
    ) -> Report {
        for input in inputs {
            precondition(input.dtype == .float64, "gradient checks run in float64; got \(input.dtype) for shape \(input.shape)")
            precondition(input.isContiguous, "gradient check inputs must be contiguous")
            input.requiresGradient = true
        }
        // Fix the cotangent once, from the output's shape.
        let probe = withoutGradients { function(inputs) }
        var generator = RandomGenerator(seed: seed)
        let cotangent = Tensor.uniform(probe.shape, low: 0.5, high: 1.5, dtype: .float64, generator: &generator)
        func objective() -> Tensor { (function(inputs) * cotangent).sum() }

        let analytic = gradients(of: objective(), withRespectTo: inputs)
        var report = Report()
        for (inputIndex, input) in inputs.enumerated() {
            let analyticValues = analytic[inputIndex].doubles
            let chosen = elements?[inputIndex] ?? Array(0..<input.count)
            input.withUnsafeMutableBufferPointer(as: Double.self) { values in
                for element in chosen {
                    let original = values[element]
                    values[element] = original + epsilon
                    let plus = withoutGradients { objective().item }
                    values[element] = original - epsilon
                    let minus = withoutGradients { objective().item }
                    values[element] = original
                    let numeric = (plus - minus) / (2 * epsilon)
                    let error = Swift.abs(analyticValues[element] - numeric)
                    report.checkedCount += 1
                    report.maxAbsoluteError = Swift.max(report.maxAbsoluteError, error)
                    if !(error <= absoluteTolerance + relativeTolerance * Swift.abs(numeric)) {
                        report.failureCount += 1
                        if report.failures.count < 10 {
                            report.failures.append("input \(inputIndex) element \(element): analytic \(analyticValues[element]), numeric \(numeric)")
                        }
                    }
                }
            }
        }
        return report
    }
}
