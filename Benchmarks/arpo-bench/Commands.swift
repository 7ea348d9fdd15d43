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

/// The rl-step benchmark's options (`rl-step` and `all`).
struct RLStepOptions: ParsableArguments {
    @Option(name: .customLong("rl-config"), help: "The run config whose model and RL settings rl-step runs (default: configs/multiturn.json).")
    var rlConfig: String?

    @Option(name: .customLong("rl-checkpoint"), help: "rl-step's policy: a directory with model.safetensors, config.json and the tokenizer (a run's reference/, say); default: cold-start one from the config.")
    var rlCheckpoint: String?

    @Option(name: .customLong("rl-cold-start-steps"), help: "SFT steps of rl-step's cold start when no --rl-checkpoint is given (default: 200).")
    var rlColdStartSteps: Int?

    @Option(name: .customLong("rl-soak-steps"), help: "Also run the RL memory soak (rl-memory): this many RL steps of the config's algorithm, resident size after step 10, every few steps and at the end.")
    var rlSoakSteps: Int?

    var configPath: String { rlConfig ?? repositoryFile("configs/multiturn.json") }

    func validate() throws {
        guard FileManager.default.fileExists(atPath: configPath) else { throw ValidationError("--rl-config \(configPath) does not exist") }
        if let rlCheckpoint {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: rlCheckpoint, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ValidationError("--rl-checkpoint \(rlCheckpoint) is not a directory")
            }
        }
        if let rlColdStartSteps, rlColdStartSteps < 0 { throw ValidationError("--rl-cold-start-steps must be at least 0, got \(rlColdStartSteps)") }
        if let rlSoakSteps, rlSoakSteps <= RLMemoryBenchmark.earlyStep {
            throw ValidationError("--rl-soak-steps must be more than \(RLMemoryBenchmark.earlyStep) (the soak compares step \(RLMemoryBenchmark.earlyStep) with the later ones), got \(rlSoakSteps)")
        }
    }

    /// One case per thread count, on the config's own model (`--config tiny` shrinks it for the
    /// smoke test; the reference configs do not apply).
    func cases(_ options: CommonOptions) -> [BenchmarkCase] {
        let size: ReferenceSize = options.config.contains(.tiny) ? .tiny : .base
        let checkpoint = rlCheckpoint.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        return options.threadCounts.map {
            BenchmarkCase(kind: .rlStep, size: size, threads: $0, repetitions: options.repetitions, steps: rlColdStartSteps, checkpoint: checkpoint, trainingConfig: configPath)
        }
    }

    /// The RL memory soak, one case per thread count, when `--rl-soak-steps` asks for it.
    func soakCases(_ options: CommonOptions) -> [BenchmarkCase] {
        guard let rlSoakSteps else { return [] }
        return cases(options).map {
            var soak = $0
            soak.kind = .rlMemory
            soak.repetitions = 1
            soak.soakSteps = rlSoakSteps
            return soak
        }
    }
}

struct AllCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "all", abstract: "Every benchmark: gemm, forward, train, decode, rollout and rl-step (and rl-memory with --rl-soak-steps).")

    @OptionGroup var options: CommonOptions
    @OptionGroup var policy: PolicyOptions
    @OptionGroup var memory: MemoryCheckOptions
    @OptionGroup var rlStep: RLStepOptions

    /// The benchmarks `all` can run, in the order it runs them.
    enum Benchmark: String, CaseIterable, ExpressibleByArgument {
        case gemm, forward, train, decode, rollout
        case rlStep = "rl-step"
        case rlMemory = "rl-memory"
    }

    @Option(name: .long, help: "Run only these benchmarks (repeatable: gemm, forward, train, decode, rollout, rl-step, rl-memory; default: all), into one table and one JSON.")
    var only: [Benchmark] = []

    func validate() throws {
        if only.contains(.rlMemory) && rlStep.rlSoakSteps == nil { throw ValidationError("--only rl-memory needs --rl-soak-steps N") }
    }

    func run() throws {
        let chosen = Set(only.isEmpty ? Benchmark.allCases : only)
        var cases: [BenchmarkCase] = []
        if chosen.contains(.gemm) { cases += options.cases(.gemm) }
        if chosen.contains(.forward) { cases += options.cases(.forward) }
        if chosen.contains(.train) { cases += options.cases(.train) + memory.cases(options) }
        if chosen.contains(.decode) { cases += options.cases(.decode) }
        if chosen.contains(.rollout) { cases += policy.cases(options) }
        if chosen.contains(.rlStep) { cases += rlStep.cases(options) }
        if chosen.contains(.rlMemory) { cases += rlStep.soakCases(options) }
        try BenchmarkRunner(options: options, coldStartSteps: policy.coldStartSteps, keepColdStart: policy.keepColdStart).run(cases)
    }
}

struct RLStepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rl-step",
        abstract: "Whole RL steps on a run config's model (configs/multiturn.json): rollout, reference log-probs, advantages, forward+backward, optimizer; GRPO and ARPO alternating, beside the supervised step's tokens/s.")

    @OptionGroup var options: CommonOptions
    @OptionGroup var rlStep: RLStepOptions

    func run() throws {
        try BenchmarkRunner(options: options, coldStartSteps: nil).run(rlStep.cases(options) + rlStep.soakCases(options))
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
