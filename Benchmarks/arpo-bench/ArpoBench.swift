import ArgumentParser
import Foundation
import Tensor

/// `arpo-bench`: the tokens/sec and GFLOPS harness. Performance targets live here, never in
/// timed unit tests. Always run it from a release build: `swift run -c release arpo-bench all`.
@main
struct ArpoBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "arpo-bench",
        abstract: "Measures GEMM throughput through the tensor API and raw BLAS.",
        discussion: """
            Every figure is the median of several timed repetitions after a warm-up, with min and \
            max beside it. On CPUs with AVX-512 the harness re-executes itself with \
            OPENBLAS_CORETYPE=SkylakeX unless that variable is already set.
            """,
        subcommands: [GemmCommand.self],
        defaultSubcommand: GemmCommand.self
    )

    static func main() {
        BLASRuntime.reexecWithFastestKernelsIfNeeded()
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
    @Option(name: .long, help: "BLAS threads (default: 1 and 2, each measured).")
    var threads: [Int] = []

    @Option(name: .long, help: "Timed repetitions per figure.")
    var repetitions: Int = 7

    @Option(name: .long, help: "Write the figures as JSON to this path.")
    var json: String?

    func validate() throws {
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1, got \(repetitions)") }
        for count in threads where count < 1 {
            throw ValidationError("--threads must be at least 1, got \(count)")
        }
    }

    var threadCounts: [Int] { threads.isEmpty ? [1, 2] : threads }
}
