import ArgumentParser
import Foundation
import Tensor
import Trainer

/// `arpo-train`: the command line. It maps options to configuration and calls the library.
@main
struct ArpoTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "arpo-train",
        abstract: "Train a small tool-using LLaMA policy with ARPO, GRPO or PPO on CPU.",
        discussion: """
            `arpo-train --config run.json` runs the whole job: cold-start SFT on expert \
            demonstrations, then RL, with held-out evaluation, checkpoints and metrics in the \
            output directory. Errors in the config or the checkpoint exit with code 2.

            Options of `train`, the default command:
              --config <file>   the run's JSON config (sections model, env, sft, rl, eval, run)
              --resume          continue from the latest checkpoint in the output directory
              --output <dir>    output directory (overrides run.output)
              --set <key.path=value>
                                override one config key (repeatable), e.g. --set rl.steps=0
              --dry-run         validate, print the resolved config, write nothing
              --quiet           print only errors and the final summary
            `arpo-train help <subcommand>` documents every option of each command.
            """,
        subcommands: [TrainCommand.self, EvaluateCommand.self, SampleCommand.self, ReportCommand.self],
        defaultSubcommand: TrainCommand.self
    )

    static func main() {
        BLASRuntime.reexecWithFastestKernelsIfNeeded()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let exit as ExitCode {
            Foundation.exit(exit.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            FileHandle.standardError.write(Data("error: \(fullMessage(for: error).replacingOccurrences(of: "Error: ", with: ""))\n".utf8))
            // Every input error (usage, config, checkpoint) is exit code 2.
            Foundation.exit(2)
        }
    }
}
