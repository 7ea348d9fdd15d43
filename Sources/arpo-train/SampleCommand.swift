import ArgumentParser
import Foundation
import Policy
import ToolEnv
import Trainer

struct SampleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Play one episode against the environment and print it, calls and observations marked.")

    @Option(name: .long, help: "A model directory, a checkpoint or a run directory.")
    var checkpoint: String

    @Option(name: .long, help: "Your own question (the tools answer from the world of --seed).")
    var prompt: String?

    @Option(name: .long, help: "A task family: \(TaskFamily.allCases.map(\.rawValue).joined(separator: ", ")).")
    var task: String?

    @Option(name: .long, help: "Episode seed.")
    var seed: UInt64 = 0

    @Option(name: .long, help: "Split the episode comes from: eval or train.")
    var split: String = "eval"

    @Flag(name: .long, help: "Greedy decoding instead of sampling.")
    var greedy = false

    @Option(name: .long, help: "Sampling temperature.")
    var temperature = 1.0

    @Option(name: .long, help: "Response token limit (default: what the model's context leaves after the prompt).")
    var maxResponseTokens: Int?

    @Option(name: .long, help: "A run config whose env to play in (default: the built-in defaults).")
    var config: String?

    @Flag(name: .long, help: "Print one JSON object: text, tokens, prompt_length, logprobs, entropies (temperature 1; null for observation tokens).")
    var json = false

    func validate() throws {
        guard (prompt == nil) != (task == nil) else { throw ValidationError("give exactly one of --prompt TEXT or --task FAMILY (with --seed S)") }
        if let task, TaskFamily(rawValue: task) == nil {
            throw ValidationError("--task must be one of \(TaskFamily.allCases.map(\.rawValue).joined(separator: ", ")), got \(task)")
        }
        guard Split(rawValue: split) != nil else { throw ValidationError("--split must be eval or train, got \(split)") }
        guard temperature > 0 else { throw ValidationError("--temperature must be positive, got \(temperature)") }
        if let maxResponseTokens, maxResponseTokens < 1 { throw ValidationError("--max-response-tokens must be positive, got \(maxResponseTokens)") }
    }

    func run() throws {
        let policy = try LoadedPolicy(directory: resolveModelDirectory(checkpoint))
        let (model, codec) = (policy.model, policy.codec)
        let environment = try config.map { try ConfigurationLoader.load(from: URL(fileURLWithPath: $0)).env } ?? TrainingConfiguration().env
        let promptLength = prompt.map { codec.promptTokens($0).count } ?? TrainingConfiguration.promptAllowance
        let room = model.configuration.maxPositions - promptLength - 1
        guard room >= 1 else {
            throw ValidationError("the prompt (\(promptLength) tokens) leaves no room for a response in max_position_embeddings \(model.configuration.maxPositions)")
        }
        if let maxResponseTokens, maxResponseTokens > room {
            throw ValidationError("--max-response-tokens \(maxResponseTokens) does not fit: max_position_embeddings \(model.configuration.maxPositions) leaves at most \(room) after a \(promptLength)-token prompt")
        }
        let played = EpisodePlayer.play(
            model: model, environment: environment, family: task.flatMap(TaskFamily.init(rawValue:)), split: Split(rawValue: split)!,
            seed: seed, prompt: prompt, greedy: greedy, temperature: temperature, maxResponseTokens: maxResponseTokens ?? room, codec: codec)
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: played.json, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(played.readable)
        }
    }
}
