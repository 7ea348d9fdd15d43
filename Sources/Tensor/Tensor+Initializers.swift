import CLAPACKE
import Foundation

extension Tensor {
    /// Fills a new tensor from `draw`, called once per element in row-major order.
    static func generated(_ shape: [Int], dtype: DType, _ draw: () -> Double) -> Tensor {
        let result = Tensor(shape: shape, dtype: dtype, zeroed: false)
        switch dtype {
        case .float32:
            let p = result.pointer(Float.self)
            for index in 0..<result.count { p[index] = Float(draw()) }
        case .float64:
            let p = result.pointer(Double.self)
            for index in 0..<result.count { p[index] = draw() }
        }
        return result
    }

    /// Uniform in [low, high).
    public static func uniform(_ shape: [Int], low: Double, high: Double, dtype: DType = .float32, generator: inout RandomGenerator) -> Tensor {
        generated(shape, dtype: dtype) { generator.uniform(low, high) }
    }

    /// Normal with the given mean and standard deviation.
    public static func normal(_ shape: [Int], mean: Double = 0, standardDeviation: Double = 1, dtype: DType = .float32, generator: inout RandomGenerator) -> Tensor {
        generated(shape, dtype: dtype) { mean + standardDeviation * generator.normal() }
    }

    /// Normal truncated to mean ± `bound` standard deviations by redrawing (as
    /// `torch.nn.init.trunc_normal_` with a = −2σ, b = 2σ by default).
    public static func truncatedNormal(_ shape: [Int], mean: Double = 0, standardDeviation: Double = 1, bound: Double = 2, dtype: DType = .float32, generator: inout RandomGenerator) -> Tensor {
        precondition(bound > 0, "truncation bound must be positive")
        return generated(shape, dtype: dtype) {
            var z = generator.normal()
            while Swift.abs(z) > bound { z = generator.normal() }
            return mean + standardDeviation * z
        }
    }

    /// A `(rows, columns)` matrix with orthonormal rows or columns (whichever are fewer), times
    /// `gain`: the PPO-standard initialisation for policy and value heads.
    ///
    /// Draws a Gaussian matrix and takes Q of its QR factorisation through LAPACK (`?geqrf`,
    /// `?orgqr`), with each column's sign set by R's diagonal so the result is uniformly
    /// distributed over orthogonal matrices (Mezzadri 2007).
    public static func orthogonal(rows: Int, columns: Int, gain: Double = 1, dtype: DType = .float32, generator: inout RandomGenerator) -> Tensor {
        precondition(rows > 0 && columns > 0, "orthogonal initialisation needs a non-empty matrix, got \(rows)×\(columns)")
        // Factor the tall orientation (m ≥ n) and transpose back for wide matrices.
        let m = Swift.max(rows, columns), n = Swift.min(rows, columns)
        var a = (0..<(m * n)).map { _ in generator.normal() }
        var tau = [Double](repeating: 0, count: n)
        _ = BLASRuntime.singleThreadedLibrary  // LAPACK on one thread, like every BLAS call
        let factorStatus = LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, Int32(m), Int32(n), &a, Int32(n), &tau)
        precondition(factorStatus == 0, "LAPACKE_dgeqrf failed with status \(factorStatus)")
        let signs = (0..<n).map { a[$0 * n + $0] < 0 ? -1.0 : 1.0 }
        let formStatus = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, Int32(m), Int32(n), Int32(n), &a, Int32(n), &tau)
        precondition(formStatus == 0, "LAPACKE_dorgqr failed with status \(formStatus)")
        var values = [Double](repeating: 0, count: rows * columns)
        for i in 0..<m {
            for j in 0..<n {
                let q = a[i * n + j] * signs[j] * gain
                if rows >= columns { values[i * columns + j] = q } else { values[j * columns + i] = q }
            }
        }
        return Tensor(shape: [rows, columns], values: values, dtype: dtype)
    }
}
