import ArgumentParser
import Foundation
import Tensor

/// `arpo-bench`: the tokens/sec and GFLOPS harness. Performance targets live here, never in
/// timed unit tests. Always run it from a release build: `swift run -c release arpo-bench`.
@main
struct ArpoBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "arpo-bench",
        abstract: "Measures the trainer's speed: sgemm, forward, train step, batched decoding, rollouts and the RL step.",
        discussion: """
            Every figure is the median of several timed repetitions after a warm-up, with min and \
            max beside it, and, for model throughputs, the model FLOP rate as a fraction of a raw \
            2048³ sgemm at the same thread count. Each benchmark runs in a child process of the \
            harness, so its peak resident size (VmHWM) is its own. The table shows each \
            performance target with pass or miss; --json writes every figure. The "vs PyTorch" \
            columns are PyTorch measured here, in the same run, by scripts/pytorch_bench.py under \
            the Python that --pytorch-python or ARPO_PYTORCH_PYTHON names (one with torch: \
            `python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch`); without \
            one they stay empty. On CPUs with \
            AVX-512 the harness re-executes itself with OPENBLAS_CORETYPE=SkylakeX unless that \
            variable is already set.
            """,
        subcommands: [
            AllCommand.self, GemmCommand.self, ForwardCommand.self, TrainCommand.self, DecodeCommand.self, RolloutCommand.self,
            RLStepCommand.self, ScalingCommand.self,
            RunCaseCommand.self,
        ],
        defaultSubcommand: AllCommand.self
    )

    static func main() {
        BLASRuntime.reexecWithFastestKernelsIfNeeded()
        // Line-buffered even into a file or pipe, so a long run's progress shows as it goes.
        setvbuf(stdout, nil, _IOLBF, 0)
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}

/// Options every benchmark shares.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: "Reference config: small or base (repeatable; default: both).")
    var config: [ReferenceSize] = []

    @Option(name: .long, help: "BLAS threads (repeatable; default: 1 and 2, each measured).")
    var threads: [Int] = []

    @Option(name: .long, help: "Timed repetitions per figure.")
    var repetitions: Int = 7

    @Option(name: .long, help: "Write the figures as JSON to this path.")
    var json: String?

    @Option(name: .long, help: "Before each benchmark, wait up to this many seconds for other processes to leave the CPUs idle.")
    var waitForIdle: Double = 0

    @Option(name: .long, help: "Float32 matmul precision of the forward and train figures: highest (float32 BLAS), high (bfloat16 ×3 on AMX) or medium (bfloat16 on AMX); repeatable; default: highest.")
    var matmulPrecision: [MatmulPrecision] = []

    @Option(name: .customLong("float32-gemm"), help: "Kernel of float32 products at highest precision in the gemm (tensor path), forward and train figures: blocked (the AVX-512 kernel) or openblas; repeatable; default: blocked where AVX-512 runs.")
    var float32GEMM: [Float32GEMMKernel] = []

    @Option(name: .long, help: "A Python with torch that measures PyTorch's train and decode figures in the same run (scripts/pytorch_bench.py), for the vs PyTorch columns; default: $ARPO_PYTORCH_PYTHON; without either the columns stay empty.")
    var pytorchPython: String?

    @Flag(name: .long, help: .hidden)
    var inProcess = false

    func validate() throws {
        guard waitForIdle >= 0 else { throw ValidationError("--wait-for-idle must be at least 0, got \(waitForIdle)") }
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1, got \(repetitions)") }
        for count in threads where count < 1 {
            throw ValidationError("--threads must be at least 1, got \(count)")
        }
    }

    var threadCounts: [Int] { threads.isEmpty ? [1, 2] : threads }
    var sizes: [ReferenceSize] { config.isEmpty ? [.small, .base] : config }

    /// One case of `kind` per size (`sizes`, or the configs asked for) and thread count, for the
    /// model's own products (forward, train) per matmul precision, and for float32 products (those
    /// and gemm) per kernel.
    func cases(_ kind: BenchmarkCase.Kind, sizes: [ReferenceSize]? = nil, steps: Int? = nil) -> [BenchmarkCase] {
        let precisions: [MatmulPrecision?] = [.forward, .train, .trainMemory].contains(kind) ? (matmulPrecision.isEmpty ? [.highest] : matmulPrecision) : [nil]
        let variants: [(MatmulPrecision?, Float32GEMMKernel?)] = precisions.flatMap { precision in
            let float32 = kind.runsFloat32GEMMs && (precision ?? .highest) == .highest
            let kernels: [Float32GEMMKernel?] = float32 && !float32GEMM.isEmpty ? float32GEMM : [nil]
            return kernels.map { (precision, $0) }
        }
        return (sizes ?? self.sizes).flatMap { size in
            threadCounts.flatMap { threads in
                variants.map { BenchmarkCase(kind: kind, size: size, threads: threads, repetitions: repetitions, matmulPrecision: $0.0, float32GEMM: $0.1, steps: steps) }
            }
        }
    }
}

extension MatmulPrecision: ExpressibleByArgument {}
extension Float32GEMMKernel: ExpressibleByArgument {}
