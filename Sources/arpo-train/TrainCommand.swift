import ArgumentParser
import Foundation
import Trainer

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Run the whole job from a config: SFT, then RL, with evaluation and checkpoints (the default command).")

    @Option(name: .long, help: "The run's JSON config (sections model, env, sft, rl, eval, run; see the README).")
    var config: String

    @Flag(name: .long, help: "Continue from the latest checkpoint in the output directory.")
    var resume = false

    @Option(name: .long, help: "Output directory (overrides run.output).")
    var output: String?

    @Flag(name: .long, help: "Validate the config, print the resolved config, and write nothing.")
    var dryRun = false

    @Flag(name: .long, help: "Print only errors and the final summary lines.")
    var quiet = false

    func run() throws {
        var configuration = try ConfigurationLoader.load(from: URL(fileURLWithPath: config))
        if let output { configuration.run.output = output }
        if dryRun {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(configuration), as: UTF8.self))
            return
        }
        let console = Console(quiet: quiet)
        let stop = StopSignal()
        stop.install()
        let run = TrainingRun(configuration: configuration, output: URL(fileURLWithPath: configuration.run.output), console: console)
        // Test hook: stop (as on SIGINT) after this many steps, to test resume deterministically.
        if let text = ProcessInfo.processInfo.environment["ARPO_STOP_AFTER_STEPS"], let steps = Int(text) { run.stopAfterGlobalStep = steps }
        switch try run.run(resume: resume, stop: stop) {
        case .completed: return
        case .interrupted(let signal): throw ExitCode(128 + signal)
        }
    }
}
