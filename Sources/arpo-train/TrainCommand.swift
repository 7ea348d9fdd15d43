import ArgumentParser
import Distributed
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

    @Option(name: .customLong("set"), help: ArgumentHelp(
        "Override one config key before it is checked (repeatable; later ones win). VALUE is JSON when it parses as JSON (10, 1e-4, true, null, \"text\", {...}), else the text itself: --set rl.steps=0 --set sft.init_from=runs/x/reference.",
        valueName: "key.path=value"))
    var overrides: [String] = []

    @Flag(name: .long, help: "Validate the config, print the resolved config, and write nothing.")
    var dryRun = false

    @Flag(name: .long, help: "Print only errors and the final summary lines.")
    var quiet = false

    func validate() throws {
        for override in overrides {
            do { _ = try ConfigurationOverride(parsing: override) } catch { throw ValidationError("\(error)") }
        }
    }

    func run() throws {
        // Under mpirun, every rank runs this; without a launcher, one plain process.
        let communicator = try Launch.communicator()
        do {
            try train(communicator)
            communicator.finalize()
        } catch let exit as ExitCode {
            communicator.finalize()
            throw exit
        } catch where communicator.size > 1 {
            // A rank that fails takes the job down, naming itself and the cause; the others
            // would otherwise wait in their next collective.
            communicator.abort("\(error)", code: 2)
        }
    }

    func train(_ communicator: Communicator) throws {
        let overrides = try self.overrides.map(ConfigurationOverride.init(parsing:))
        var configuration = try ConfigurationLoader.load(from: URL(fileURLWithPath: config), overrides: overrides)
        if let output { configuration.run.output = output }
        if dryRun && communicator.isRoot {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(configuration), as: UTF8.self))
        }
        if dryRun { return }
        let console = Console(quiet: quiet, silent: !communicator.isRoot, plain: communicator.size > 1)
        let stop = StopSignal()
        stop.install()
        // ARPO_STOP_AFTER_STEPS=N stops the run as SIGINT would once N global steps are done: for
        // partial runs, and for the end-to-end tests of kill and resume, which run this binary.
        // Read here alone (docs/configuration.md).
        let stopAfter = ProcessInfo.processInfo.environment["ARPO_STOP_AFTER_STEPS"].flatMap { Int($0) }
        let run = TrainingRun(
            configuration: configuration, output: URL(fileURLWithPath: configuration.run.output), console: console,
            hooks: RunHooks(stopAfterGlobalStep: stopAfter), communicator: communicator)
        switch try run.run(resume: resume, stop: stop) {
        case .completed: return
        case .interrupted(let signal):
            // Every rank stopped at the same step and has passed the barrier after rank 0's
            // checkpoint; under mpirun, MPI_Finalize could wait for SIGKILL (MPICommunicator).
            communicator.exitAfterAgreedStop(code: 128 + signal)
        }
    }
}
