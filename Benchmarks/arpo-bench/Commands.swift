import ArgumentParser
import Foundation

/// The memory-growth check's options (`train` and `all`).
struct MemoryCheckOptions: ParsableArguments {
    @Flag(name: .long, help: "Also run the memory-growth check: resident size after step 10 and after --steps train steps.")
    var memoryCheck = false

    @Option(name: .long, help: "Train steps of the memory-growth check.")
    var steps: Int = 1000

    func validate() throws {
        guard steps > 10 else { throw ValidationError("--steps must be more than 10 (the check compares step 10 with the last), got \(steps)") }
    }

    func cases(_ options: CommonOptions) -> [BenchmarkCase] {
        memoryCheck ? options.cases(.trainMemory, steps: steps) : []
    }
}

/// The rollout benchmark's policy options (`rollout` and `all`).
struct PolicyOptions: ParsableArguments {
    @Option(name: .long, help: "A trained policy directory (model.safetensors, config.json); default: cold-start one per config.")
    var checkpoint: String?

    @Option(name: .long, help: "SFT steps of the cold start when no --checkpoint is given (default: 200).")
    var coldStartSteps: Int?

    @Option(name: .long, help: "Keep each cold-started policy in DIR/<config> (for a later --checkpoint) instead of deleting it.")
    var keepColdStart: String?

    func validate() throws {
        if let checkpoint {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: checkpoint, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ValidationError("--checkpoint \(checkpoint) is not a directory")
            }
        }
        if let coldStartSteps, coldStartSteps < 0 { throw ValidationError("--cold-start-steps must be at least 0, got \(coldStartSteps)") }
        if keepColdStart != nil && checkpoint != nil { throw ValidationError("--keep-cold-start keeps a cold start, which --checkpoint skips; give one of them") }
    }

    /// Rollout cases: one per size and thread count, or with a checkpoint one per thread count
    /// (its architecture is its config).
    func cases(_ options: CommonOptions) -> [BenchmarkCase] {
        guard let checkpoint else { return options.cases(.rollout) }
        let path = URL(fileURLWithPath: checkpoint).standardizedFileURL.path
        return options.threadCounts.map {
            BenchmarkCase(kind: .rollout, size: options.sizes[0], threads: $0, repetitions: options.repetitions, checkpoint: path, policyDescription: path)
        }
    }
}

struct AllCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "all", abstract: "Every benchmark: gemm, forward, train, decode and rollout.")

    @OptionGroup var options: CommonOptions
    @OptionGroup var policy: PolicyOptions
    @OptionGroup var memory: MemoryCheckOptions

    func run() throws {
        let cases = options.cases(.gemm) + options.cases(.forward) + options.cases(.train) + memory.cases(options)
            + options.cases(.decode) + policy.cases(options)
        try BenchmarkRunner(options: options, coldStartSteps: policy.coldStartSteps, keepColdStart: policy.keepColdStart).run(cases)
    }
}

struct ForwardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward", abstract: "Training-forward tokens/s on batch 16 × context, without gradients.")

    @OptionGroup var options: CommonOptions

    func run() throws {
        try BenchmarkRunner(options: options, coldStartSteps: nil).run(options.cases(.forward))
    }
}

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Train-step tokens/s on batch 16 × context: forward, backward and AdamW.")

    @OptionGroup var options: CommonOptions
    @OptionGroup var memory: MemoryCheckOptions

    func run() throws {
        try BenchmarkRunner(options: options, coldStartSteps: nil).run(options.cases(.train) + memory.cases(options))
    }
}

struct DecodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode", abstract: "Batched KV-cache decoding: 16 sequences, 32-token prompt, 96 sampled tokens each.")

    @OptionGroup var options: CommonOptions

    func run() throws {
        try BenchmarkRunner(options: options, coldStartSteps: nil).run(options.cases(.decode))
    }
}

struct RolloutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollout", abstract: "Rollout tokens/s against the tool environment: trajectory-level against ARPO branching.")

    @OptionGroup var options: CommonOptions
    @OptionGroup var policy: PolicyOptions

    func run() throws {
        try BenchmarkRunner(options: options, coldStartSteps: policy.coldStartSteps, keepColdStart: policy.keepColdStart).run(policy.cases(options))
    }
}

/// The child side of process isolation: measures one case and writes its output as JSON.
struct RunCaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run-case", shouldDisplay: false)

    @Option(name: .long, help: "The case, as JSON.")
    var `case`: String

    @Option(name: .long, help: "Where to write the case's output JSON.")
    var output: String

    func run() throws {
        let benchmarkCase = try JSONDecoder().decode(BenchmarkCase.self, from: Data(`case`.utf8))
        let result = try benchmarkCase.run()
        try JSONEncoder().encode(result).write(to: URL(fileURLWithPath: output), options: .atomic)
    }
}
