import ArgumentParser
import COpenBLAS
import Foundation
import Tensor

/// sgemm through the tensor API against raw `cblas_sgemm`, at the shapes a reference policy uses.
///
/// Both paths compute `C[M, N] = A[M, K] · W[N, K]ᵀ`, the layout of a `torch.nn.Linear` weight, so
/// the tensor path's `linear` hands BLAS exactly the transpose flag the raw path uses. The tensor
/// path includes everything a model pays: allocating the output, recording nothing in no-grad
/// mode, and splitting the product over the kernel threads with one single-threaded BLAS call
/// per block. The raw path is one `cblas_sgemm` on OpenBLAS's own threads.
struct GemmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm", abstract: "sgemm GFLOPS through the tensor API and through raw BLAS.")

    @OptionGroup var options: CommonOptions

    @Option(name: .long, parsing: .singleValue, help: "A shape M,N,K to measure (repeatable; default: the config's shapes).")
    var shape: [String] = []

    func validate() throws {
        for text in shape { _ = try GemmCommand.parseShape(text) }
    }

    func run() throws {
        let shapes = try shape.isEmpty ? nil : shape.map(GemmCommand.parseShape)
        // Explicit shapes belong to no config: measure them once per thread count (and kernel).
        let cases = options.cases(.gemm, sizes: shapes == nil ? options.sizes : [options.sizes[0]]).map { gemmCase in
            var gemmCase = gemmCase
            gemmCase.shapes = shapes
            return gemmCase
        }
        try BenchmarkRunner(options: options, coldStartSteps: nil).run(cases)
    }

    static func parseShape(_ text: String) throws -> [Int] {
        let parts = text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 3, parts.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--shape takes three positive integers M,N,K, got '\(text)'")
        }
        return parts
    }

    /// (M, N, K) of the products a config's policy computes: over the B × T training batch, the
    /// gate/up projections (BT, F, C), the down projection (BT, C, F) and the LM head (BT, V, C);
    /// in a decode step over B sequences, the attention projections (B, C, C) and gate/up (B, F, C).
    /// For base: (4096, 768, 256), (4096, 256, 768), (4096, 272, 256), (16, 256, 256), (16, 768, 256).
    static func shapes(for size: ReferenceSize) -> [[Int]] {
        let model = size.model
        let (rows, c, f, v, b) = (size.batchSize * size.context, model.hiddenSize, model.intermediateSize, model.vocabularySize, size.batchSize)
        return [[rows, f, c], [rows, c, f], [rows, v, c], [b, c, c], [b, f, c]]
    }

    /// Tensor-API and raw GFLOPS of each shape at the current thread count, tensor then BLAS.
    static func measure(shapes: [[Int]], config: String, threads: Int, repetitions: Int) -> [BenchmarkResult] {
        var results: [BenchmarkResult] = []
        for shape in shapes {
            let (m, n, k) = (shape[0], shape[1], shape[2])
            let flops = 2.0 * Double(m) * Double(n) * Double(k)
            var generator = RandomGenerator(seed: 42)
            let input = Tensor.normal([m, k], generator: &generator)
            let weight = Tensor.normal([n, k], generator: &generator)

            let output = UnsafeMutablePointer<Float>.allocate(capacity: m * n)
            defer { output.deallocate() }
            // The two paths' rounds alternate, so that both see the same machine.
            let seconds = input.withUnsafeBufferPointer(as: Float.self) { a in
                weight.withUnsafeBufferPointer(as: Float.self) { w in
                    withoutGradients {
                        Timer.interleavedSecondsPerCall(repetitions: repetitions, pause: 0.15, [
                            { _ = input.linear(weight) },
                            {
                                BLASRuntime.withLibraryThreadCount(threads) {
                                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, a.baseAddress, Int32(k), w.baseAddress, Int32(k), 0, output, Int32(n))
                                }
                            },
                        ])
                    }
                }
            }
            for (path, seconds) in [("tensor", seconds[0]), ("blas", seconds[1])] {
                var result = BenchmarkResult(benchmark: "gemm", threads: threads, unit: "GFLOPS", measurement: Measurement(seconds.map { flops / $0 / 1e9 }))
                result.config = config
                result.shape = shape
                result.path = path
                result.repetitions = repetitions
                result.modelGFLOPS = result.median
                results.append(result)
            }
        }
        let peak = peakResidentMegabytes()
        for index in results.indices { results[index].peakRssMB = peak }
        return results
    }

    /// Raw `cblas_sgemm` GFLOPS of a `size`³ product at `threads` threads: the peak that model
    /// FLOP rates are reported as a fraction of.
    static func peak(size: Int, threads: Int, repetitions: Int) -> Measurement {
        ComputeSettings.current.with(threads: threads).apply()
        var generator = RandomGenerator(seed: 3)
        let a = Tensor.normal([size, size], generator: &generator)
        let b = Tensor.normal([size, size], generator: &generator)
        let output = UnsafeMutablePointer<Float>.allocate(capacity: size * size)
        defer { output.deallocate() }
        let n = Int32(size)
        let seconds = a.withUnsafeBufferPointer(as: Float.self) { a in
            b.withUnsafeBufferPointer(as: Float.self) { b in
                BLASRuntime.withLibraryThreadCount(threads) {
                    Timer.secondsPerCall(repetitions: repetitions) {
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a.baseAddress, n, b.baseAddress, n, 0, output, n)
                    }
                }
            }
        }
        return Measurement(seconds.map { 2 * pow(Double(size), 3) / $0 / 1e9 })
    }
}
