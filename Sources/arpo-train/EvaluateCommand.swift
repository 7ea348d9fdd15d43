import ArgumentParser
import Foundation
import Policy
import ToolEnv
import Trainer

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Greedy held-out evaluation of a checkpoint: accuracy per task family, format errors, tool calls per episode.")

    @Option(name: .long, help: "A model directory, a checkpoint (…/checkpoints/step-N) or a run directory (its latest checkpoint).")
    var checkpoint: String

    @Option(name: .long, help: "Episodes to play (eval seeds 0..<N, or the first N tasks of the config's task file for the split).")
    var episodes = 64

    @Option(name: .long, help: "Split to evaluate on: eval or train.")
    var split: String = "eval"

    @Option(name: .long, help: "A run config whose env and rl.max_response_tokens to use (default: the built-in defaults).")
    var config: String?

    @Flag(name: .long, help: "Print the result as one JSON object.")
    var json = false

    func validate() throws {
        guard episodes >= 1 else { throw ValidationError("--episodes must be at least 1, got \(episodes)") }
        guard Split(rawValue: split) != nil else { throw ValidationError("--split must be eval or train, got \(split)") }
    }

    func run() throws {
        let configuration = try config.map { try ConfigurationLoader.load(from: URL(fileURLWithPath: $0)) } ?? TrainingConfiguration()
        let policy = try LoadedPolicy(directory: resolveModelDirectory(checkpoint))
        let source = try EpisodeSource.open(environment: configuration.env)
        defer { source.close() }
        let result = Evaluator.evaluate(
            model: policy.model, episodes: source.evaluationEpisodes(split: Split(rawValue: split)!, count: episodes),
            maxResponseTokens: configuration.rl.maxResponseTokens, sampleCount: json ? 3 : 0, codec: policy.codec)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
            return
        }
        print(String(format: "accuracy %.3f over %d episodes (%@ split)", result.accuracy, result.episodes, split))
        for family in result.accuracyByFamily.keys.sorted() {
            print(String(format: "  %-14@ %.3f  (%d episodes)", family as NSString, result.accuracyByFamily[family]!, result.episodesByFamily[family] ?? 0))
        }
        print(String(format: "format error rate %.3f, tool calls per episode %.2f, mean reward %.3f", result.formatErrorRate, result.toolCallsPerEpisode, result.meanReward))
    }
}
