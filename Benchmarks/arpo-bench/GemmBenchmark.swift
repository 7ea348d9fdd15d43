import ArgumentParser
import COpenBLAS
import Foundation
import Tensor

/// sgemm through the tensor API against raw `cblas_sgemm`, at the shapes the base policy uses.
///
/// Both paths compute `C[M, N] = A[M, K] · W[N, K]ᵀ`, the layout of a `torch.nn.Linear` weight, so
/// the tensor path's `linear` hands BLAS exactly the transpose flag the raw path uses. The tensor
/// path includes everything a model pays: allocating the output and recording nothing in no-grad
/// mode.
struct GemmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm", abstract: "sgemm GFLOPS through the tensor API and through raw BLAS.")

    /// (M, N, K): the base config's projections over a 16 × 256 batch, a decode step, and a
    /// single-token matrix-vector product.
    static let defaultShapes: [[Int]] = [[4096, 256, 768], [4096, 768, 256], [16, 256, 256], [1, 256, 1024]]

    @OptionGroup var options: CommonOptions

    @Option(name: .long, parsing: .singleValue, help: "A shape M,N,K to measure (repeatable; default: the base config's shapes).")
    var shape: [String] = []

    func run() throws {
        let shapes = try shape.isEmpty ? GemmCommand.defaultShapes : shape.map(GemmCommand.parseShape)
        let results = GemmCommand.measure(shapes: shapes, threadCounts: options.threadCounts, repetitions: options.repetitions)
        GemmCommand.printResults(results)
        if let path = options.json {
            try BenchmarkReport(results: results).write(to: path)
            print("wrote \(path)")
        }
    }

    static func parseShape(_ text: String) throws -> [Int] {
        let parts = text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 3, parts.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--shape takes three positive integers M,N,K, got '\(text)'")
        }
        return parts
    }

    static func measure(shapes: [[Int]], threadCounts: [Int], repetitions: Int) -> [BenchmarkResult] {
        var results: [BenchmarkResult] = []
        for threads in threadCounts {
            BLASRuntime.setThreadCount(threads)
            for shape in shapes {
                let (m, n, k) = (shape[0], shape[1], shape[2])
                let flops = 2.0 * Double(m) * Double(n) * Double(k)
                var generator = RandomGenerator(seed: 42)
                let input = Tensor.normal([m, k], generator: &generator)
                let weight = Tensor.normal([n, k], generator: &generator)

                let tensorSeconds = withoutGradients {
                    Timer.secondsPerCall(repetitions: repetitions) { _ = input.linear(weight) }
                }
                let output = UnsafeMutablePointer<Float>.allocate(capacity: m * n)
                defer { output.deallocate() }
                let blasSeconds = input.withUnsafeBufferPointer(as: Float.self) { a in
                    weight.withUnsafeBufferPointer(as: Float.self) { w in
                        Timer.secondsPerCall(repetitions: repetitions) {
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, a.baseAddress, Int32(k), w.baseAddress, Int32(k), 0, output, Int32(n))
                        }
                    }
                }
                for (path, seconds) in [("tensor", tensorSeconds), ("blas", blasSeconds)] {
                    var result = BenchmarkResult(benchmark: "gemm", threads: threads, unit: "GFLOPS", measurement: Measurement(seconds.map { flops / $0 / 1e9 }))
                    result.shape = shape
                    result.path = path
                    results.append(result)
                }
            }
        }
        return results
    }

    static func printResults(_ results: [BenchmarkResult]) {
        print("OpenBLAS core: \(BLASRuntime.coreName)")
        var rows: [[String]] = []
        var index = 0
        while index + 1 < results.count {
            let tensor = results[index], blas = results[index + 1]
            let overhead = (blas.median / tensor.median - 1) * 100
            rows.append([
                tensor.shape!.map(String.init).joined(separator: "×"), "\(tensor.threads)",
                String(format: "%.1f", tensor.median), String(format: "%.1f", blas.median),
                String(format: "%+.1f%%", overhead),
                String(format: "%.1f–%.1f", tensor.min, tensor.max),
            ])
            index += 2
        }
        printTable(header: ["M×N×K", "threads", "tensor GFLOPS", "BLAS GFLOPS", "tensor overhead", "tensor min–max"], rows: rows)
    }
}
