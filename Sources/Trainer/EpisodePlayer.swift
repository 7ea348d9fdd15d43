import ARPO
import Foundation
import Policy
import Tensor
import ToolEnv

/// Finds the model directory in a path that is a model directory (config.json and
/// model.safetensors), a checkpoint (`…/step-N` holding `model/`) or a run directory (its latest
/// checkpoint).
public func resolveModelDirectory(_ path: String) throws -> URL {
    let url = URL(fileURLWithPath: path)
    let fileManager = FileManager.default
    func isModel(_ candidate: URL) -> Bool { fileManager.fileExists(atPath: candidate.appendingPathComponent(ModelCheckpoint.weightsFile).path) }
    if isModel(url) { return url }
    if isModel(url.appendingPathComponent("model")) { return url.appendingPathComponent("model") }
    if let latest = try RunDirectory(url).latestCheckpoint(), isModel(latest.appendingPathComponent("model")) {
        return latest.appendingPathComponent("model")
    }
    var isDirectory: ObjCBool = false
    guard fileManager.fileExists(atPath: url.path, isDirectory: &isDirectory) else { throw TrainingError("--checkpoint \(path) does not exist") }
    throw TrainingError("--checkpoint \(path) holds no model: expected config.json and model.safetensors, a checkpoint with model/, or a run directory with checkpoints/latest")
}

/// A trained policy as the commands use it: the model of a model directory and the codec of its
/// tokenizer.
public struct LoadedPolicy {
    public let model: LlamaModel
    public let codec: ProtocolCodec

    /// Loads `directory` (a model directory, see `resolveModelDirectory`), verified against its
    /// checkpoint's manifest when it has one.
    public init(directory: URL) throws {
        try CheckpointManifest.verifyIfPresent(modelDirectory: directory)
        model = try ModelCheckpoint.load(from: directory)
        codec = ProtocolCodec(tokenizer: try ModelCheckpoint.loadTokenizer(from: directory, vocabularySize: model.configuration.vocabularySize))
    }
}

/// An episode whose question the user wrote, answered with the tools of a generated world.
final class CustomPromptEpisode: ToolEpisode {
    let prompt: String
    let world: Episode

    init(prompt: String, world: Episode) {
        self.prompt = prompt
        self.world = world
    }

    func respond(toPolicyText text: String) -> ToolReply { world.respond(toPolicyText: text) as ToolReply }

    func finish(policyText: String, endReason: EndReason) -> EpisodeScore {
        // No gold answer: report the format and tool use, not correctness.
        let breakdown: RewardBreakdown = world.finish(policyText: policyText, endReason: endReason)
        return EpisodeScore(reward: .nan, isCorrect: false, breakdown: breakdown)
    }

    func forkEpisode() -> ToolEpisode { CustomPromptEpisode(prompt: prompt, world: world.fork()) }
}

/// One episode played by a policy, with per-token statistics for display and `--json`.
public struct PlayedEpisode {
    public var question: String
    public var goldAnswer: String?
    public var family: String?
    /// The whole sequence: prompt and response tokens.
    public var tokens: [Int]
    public var promptLength: Int
    /// Per response token, under the temperature-1 distribution; nil for observation tokens.
    public var logProbabilities: [Double?]
    public var entropies: [Double?]
    public var lossMask: [Bool]
    public var reward: Double?
    public var isCorrect: Bool?
    public var toolCallsExecuted: Int
    public var text: String
    /// The text after the prompt.
    public var responseText: String

    /// `--json` output.
    public var json: [String: Any] {
        [
            "text": text, "tokens": tokens, "prompt_length": promptLength,
            "logprobs": logProbabilities.map { $0 as Any? ?? NSNull() }, "entropies": entropies.map { $0 as Any? ?? NSNull() },
            "question": question, "gold_answer": goldAnswer ?? NSNull(), "family": family ?? NSNull(),
            "reward": reward.map { $0.isFinite ? $0 as Any : NSNull() } ?? NSNull(), "correct": isCorrect ?? NSNull(),
            "tool_calls_executed": toolCallsExecuted,
        ]
    }

    /// Readable transcript with calls and observations marked.
    public var readable: String {
        var lines = ["USER: \(question)"]
        var response = responseText
        response = response.replacingOccurrences(of: "<call>", with: "\n  CALL → ").replacingOccurrences(of: "</call>", with: "")
        response = response.replacingOccurrences(of: "<obs>", with: "\n  OBSERVATION ← ").replacingOccurrences(of: "</obs>", with: "\n")
        response = response.replacingOccurrences(of: "<answer>", with: "\n  ANSWER: ").replacingOccurrences(of: "</answer>", with: "")
        response = response.replacingOccurrences(of: "<|end|>", with: "\n  [end]")
        lines.append("ASSISTANT: " + response)
        if let goldAnswer { lines.append("gold answer: \(goldAnswer)") }
        if let reward, reward.isFinite { lines.append("reward: \(reward)  correct: \(isCorrect ?? false)  tool calls executed: \(toolCallsExecuted)") }
        return lines.joined(separator: "\n")
    }
}

public enum EpisodePlayer {
    /// Plays one episode; `prompt` replaces the task's question (the task's world still answers
    /// the tools).
    public static func play(
        model: LlamaModel, environment: EnvironmentConfig, family: TaskFamily?, split: Split, seed: UInt64, prompt: String?,
        greedy: Bool, temperature: Double, maxResponseTokens: Int, codec: ProtocolCodec = ProtocolCodec()
    ) -> PlayedEpisode {
        let episode = family.map { Episode(family: $0, split: split, seed: seed, config: environment) } ?? Episode.sample(split: split, seed: seed, config: environment)
        let played: ToolEpisode = prompt.map { CustomPromptEpisode(prompt: $0, world: episode) } ?? episode
        let configuration = RolloutConfiguration(
            maxResponseTokens: maxResponseTokens, sampling: SamplingParameters(temperature: temperature, greedy: greedy), strategy: .trajectory(groupSize: 1))
        let batch = RolloutEngine(policy: model, codec: codec, configuration: configuration).run(episodes: [played], seed: seed)
        let record = batch.records[0]
        let tokens = record.promptTokens + record.responseTokens
        let statistics = withoutGradients { model.tokenStatistics(TokenBatch(sequences: [tokens], padding: codec.tokenizer.padID)) }
        let logProbabilities = statistics.logProbabilities.doubles, entropies = statistics.entropies.doubles
        var tokenLogProbabilities: [Double?] = [], tokenEntropies: [Double?] = []
        for (offset, isPolicyToken) in record.lossMask.enumerated() {
            // Response token at sequence position p was predicted at position p − 1.
            let position = record.promptTokens.count + offset - 1
            tokenLogProbabilities.append(isPolicyToken ? logProbabilities[position] : nil)
            tokenEntropies.append(isPolicyToken ? entropies[position] : nil)
        }
        let score = batch.scores[0]
        return PlayedEpisode(
            question: played.prompt, goldAnswer: prompt == nil ? episode.task.goldAnswer : nil, family: prompt == nil ? episode.family.rawValue : nil,
            tokens: tokens, promptLength: record.promptTokens.count, logProbabilities: tokenLogProbabilities, entropies: tokenEntropies,
            lossMask: record.lossMask, reward: prompt == nil ? score.reward : nil, isCorrect: prompt == nil ? score.isCorrect : nil,
            toolCallsExecuted: batch.statistics.toolCallsExecuted, text: codec.text(tokens[...]), responseText: codec.text(tokens[record.promptTokens.count...]))
    }
}
