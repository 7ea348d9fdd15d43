import Tensor
import XCTest

/// Float32 products at each `MatmulPrecision` against float64: the AMX bfloat16 kernels in every
/// transpose combination, beta 0 and 1, odd sizes (tiles cut by m, n and k), the depth cut, and
/// the same bits on every thread count. Tests of the reduced precisions skip on CPUs without AMX.
final class MatmulPrecisionTests: XCTestCase {
    /// The settings a test found, restored (at `highest` precision) after it.
    private var configured = ComputeSettings(threads: 1)

    override func setUp() {
        super.setUp()
        configured = ComputeSettings.current
    }

    override func tearDown() {
        configured.with(matmulPrecision: .highest).apply()
        super.tearDown()
    }

    /// A row-major float32 matrix stored as `rows × columns` with a padded leading dimension, and
    /// its values as Double.
    private struct Operand {
        let values: [Float]
        let leadingDimension: Int

        init(rows: Int, columns: Int, seed: UInt64) {
            leadingDimension = columns + 3
            var generator = RandomGenerator(seed: seed)
            values = (0..<(rows * leadingDimension)).map { _ in Float(generator.uniform(-1, 1)) }
        }
    }

    /// C = op(A)·op(B) (+ C when accumulating) through `Float.gemm` at the current precision.
    /// Returns C and, per element, the float64 product and Σ|a·b| (the scale of its rounding).
    private func product(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, accumulate: Bool, seed: UInt64
    ) -> (actual: [Float], expected: [Double], scale: [Double]) {
        let a = Operand(rows: transposeA ? k : m, columns: transposeA ? m : k, seed: seed)
        let b = Operand(rows: transposeB ? n : k, columns: transposeB ? k : n, seed: seed + 1)
        let initial = Operand(rows: m, columns: n, seed: seed + 2)
        let ldc = initial.leadingDimension
        var c = initial.values
        a.values.withUnsafeBufferPointer { pa in
            b.values.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    Float.gemm(
                        transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                        alpha: 1, a: pa.baseAddress!, lda: a.leadingDimension, b: pb.baseAddress!, ldb: b.leadingDimension,
                        beta: accumulate ? 1 : 0, c: pc.baseAddress!, ldc: ldc)
                }
            }
        }
        var actual: [Float] = [], expected: [Double] = [], scale: [Double] = []
        for i in 0..<m {
            for j in 0..<n {
                var sum = accumulate ? Double(initial.values[i * ldc + j]) : 0
                var magnitude = abs(sum)
                for p in 0..<k {
                    let x = Double(transposeA ? a.values[p * a.leadingDimension + i] : a.values[i * a.leadingDimension + p])
                    let y = Double(transposeB ? b.values[j * b.leadingDimension + p] : b.values[p * b.leadingDimension + j])
                    sum += x * y
                    magnitude += abs(x * y)
                }
                actual.append(c[i * ldc + j])
                expected.append(sum)
                scale.append(magnitude)
            }
            // The padding past column n is never written.
            for j in n..<ldc where c[i * ldc + j] != initial.values[i * ldc + j] {
                XCTFail("row \(i): padding column \(j) was written")
            }
        }
        return (actual, expected, scale)
    }

    /// Shapes above the reduced-precision threshold (2^18 multiply-adds) that cut tiles in every
    /// direction, plus a depth-cut weight-gradient shape.
    private let shapes: [(m: Int, n: Int, k: Int)] = [(70, 90, 100), (33, 257, 65), (130, 40, 60), (17, 300, 64), (24, 40, 600)]

    /// The worst |C − C₆₄| / Σ|a·b| over every shape, transpose pair and beta.
    private func worstRelativeError(file: StaticString = #filePath, line: UInt = #line) -> Double {
        var worst = 0.0
        var seed: UInt64 = 900
        for shape in shapes {
            for (transposeA, transposeB) in [(false, false), (false, true), (true, false), (true, true)] {
                for accumulate in [false, true] {
                    seed += 3
                    let (actual, expected, scale) = product(transposeA: transposeA, transposeB: transposeB, m: shape.m, n: shape.n, k: shape.k, accumulate: accumulate, seed: seed)
                    for index in actual.indices {
                        let error = abs(Double(actual[index]) - expected[index]) / scale[index]
                        // Written so that NaN counts as the worst.
                        if !(error <= worst) { worst = error }
                    }
                }
            }
        }
        return worst
    }

    func testHighPrecisionWithinItsRoundingInEveryLayout() throws {
        try XCTSkipUnless(BLASRuntime.hasAMX, "no AMX on this CPU")
        configured.with(matmulPrecision: .high).apply()
        XCTAssertEqual(BLASRuntime.effectiveMatmulPrecision, .high)
        // hi + lo carries x to within 2⁻¹⁸|x|, and the dropped lo·lo is below 2⁻¹⁸|a·b|: about
        // 1.1e-5 of Σ|a·b| at worst, plus float32 accumulation (measured: 1e-6 to 1.1e-5).
        XCTAssertLessThan(worstRelativeError(), 2e-5)
    }

    func testMediumPrecisionWithinBfloat16Rounding() throws {
        try XCTSkipUnless(BLASRuntime.hasAMX, "no AMX on this CPU")
        configured.with(matmulPrecision: .medium).apply()
        // Each operand within 2⁻⁹ of itself: the product within about 2⁻⁸ of Σ|a·b|. That the
        // error is of bfloat16's size shows the operands really were rounded.
        let worst = worstRelativeError()
        XCTAssertLessThan(worst, 4e-3)
        XCTAssertGreaterThan(worst, 2e-4)
    }

    func testHighestIsFloat32() {
        configured.with(matmulPrecision: .highest).apply()
        XCTAssertEqual(BLASRuntime.effectiveMatmulPrecision, .highest)
        XCTAssertLessThan(worstRelativeError(), 2e-6)
    }

    /// One operand element a = 1 + 2⁻⁹ + 2⁻²⁰ times 1 (all other products 0), so each precision's
    /// rounding of the operand shows exactly: float32 keeps a; high's hi = 1 and lo = 2⁻⁹ (2⁻²⁰
    /// is below lo's half spacing) give 1 + 2⁻⁹; medium's bfloat16 gives 1.
    func testEachPrecisionRoundsOperandsAsDocumented() throws {
        let a = Float(1 + 0x1p-9 + 0x1p-20)
        let size = 64
        var left = [Float](repeating: 0, count: size * size), right = [Float](repeating: 0, count: size * size)
        for row in 0..<size { left[row * size] = a }
        for column in 0..<size { right[column] = 1 }
        func result(_ precision: MatmulPrecision) -> Float {
            configured.with(matmulPrecision: precision).apply()
            var c = [Float](repeating: 0, count: size * size)
            Float.gemm(transposeA: false, transposeB: false, m: size, n: size, k: size, alpha: 1, a: left, lda: size, b: right, ldb: size, beta: 0, c: &c, ldc: size)
            XCTAssertEqual(Set(c).count, 1, "\(precision): every element is the same product")
            return c[0]
        }
        XCTAssertEqual(result(.highest), a)
        try XCTSkipUnless(BLASRuntime.hasAMX, "no AMX on this CPU")
        XCTAssertEqual(result(.high), Float(1 + 0x1p-9))
        XCTAssertEqual(result(.medium), 1)
    }

    /// Row and column blocks of a split product, and the depth cut, give the same bits on one to
    /// three threads: each element's arithmetic does not depend on where its block sits.
    func testSameBitsOnEveryThreadCount() throws {
        try XCTSkipUnless(BLASRuntime.hasAMX, "no AMX on this CPU")
        for precision in [MatmulPrecision.high, .medium] {
            configured.with(matmulPrecision: precision).apply()
            for (index, shape) in [(m: 200, n: 96, k: 80), (m: 48, n: 300, k: 70), (m: 96, n: 64, k: 2000)].enumerated() {
                var results: [[Float]] = []
                for threads in 1...3 {
                    configured.with(matmulPrecision: precision).with(threads: threads).apply()
                    results.append(product(transposeA: index == 2, transposeB: index == 1, m: shape.m, n: shape.n, k: shape.k, accumulate: index == 1, seed: 77).actual)
                }
                XCTAssertEqual(results[0], results[1], "\(precision) \(shape): 1 and 2 threads")
                XCTAssertEqual(results[0], results[2], "\(precision) \(shape): 1 and 3 threads")
            }
        }
    }

    /// Through the tensor ops: a linear layer's forward and all its gradients at high precision,
    /// against float64.
    func testLinearAndItsGradientsAtHighPrecision() throws {
        try XCTSkipUnless(BLASRuntime.hasAMX, "no AMX on this CPU")
        let input64 = randomTensor([4, 40, 96], seed: 31), weight64 = randomTensor([72, 96], seed: 32)
        let upstream64 = randomTensor([4, 40, 72], seed: 33)
        func run(_ dtype: DType) -> [[Double]] {
            let input = input64.converted(to: dtype), weight = weight64.converted(to: dtype)
            input.requiresGradient = true
            weight.requiresGradient = true
            let output = input.linear(weight)
            let grads = gradients(of: output, withRespectTo: [input, weight], seed: upstream64.converted(to: dtype))
            return [output.doubles] + grads.map(\.doubles)
        }
        let expected = run(.float64)
        configured.with(matmulPrecision: .high).apply()
        let actual = run(.float32)
        for (name, (a, e)) in zip(["output", "input gradient", "weight gradient"], zip(actual, expected)) {
            let scale = e.map(abs).max()!
            assertClose(a, e, absoluteTolerance: 1e-4 * scale, name)
        }
    }
}
