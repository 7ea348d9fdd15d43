import ARPO
import Foundation
import Policy
import ToolEnv
import ToolServers

/// An episode the evaluator can report on: its family and gold answer.
public protocol LabelledEpisode: ToolEpisode {
    /// The family label for per-family accuracy.
    var familyName: String { get }
    /// The answer reported as gold (the first accepted one of a user task).
    var goldAnswerText: String { get }
}

extension Episode: LabelledEpisode {
    public var familyName: String { family.rawValue }
    public var goldAnswerText: String { task.goldAnswer }
}

extension TaskEpisode: LabelledEpisode {
    public var familyName: String { task.family }
    public var goldAnswerText: String { task.answers[0] }
}

/// Where a run's episodes come from: per split, the generated families or the user's task file
/// (`env.tasks`), the user's demonstrations (`env.demonstrations`) and the tools the user's
/// tasks call.
///
/// `load` reads and checks every file before the run writes anything, so a bad line stops the
/// run with an error naming the file and the line.
public final class EpisodeSource {
    public let environment: EnvironmentConfig
    /// The training tasks, when `env.tasks.train` is given.
    public let trainTasks: [UserTask]?
    /// The held-out tasks, when `env.tasks.eval` is given.
    public let evalTasks: [UserTask]?
    /// The cold start's demonstrations, when `env.demonstrations` is given.
    public let demonstrations: [UserDemonstration]?
    /// The tools besides the built-in ones (MCP servers), when configured.
    public let provider: ToolProvider?

    /// The generated families alone: no file is read.
    public init(generated environment: EnvironmentConfig) {
        self.environment = environment
        trainTasks = nil
        evalTasks = nil
        demonstrations = nil
        provider = nil
    }

    /// Reads the configured task and demonstration files; `provider` serves the tasks' tools.
    /// - Throws: `UserFileError` naming the file and line of the first problem.
    public init(environment: EnvironmentConfig, provider: ToolProvider? = nil) throws {
        self.environment = environment
        self.provider = provider
        trainTasks = try environment.tasks.train.map { try TaskFile.load(path: $0) }
        evalTasks = try environment.tasks.eval.map { try TaskFile.load(path: $0) }
        let tools = EpisodeSource.tools(environment: environment, provider: provider)
        demonstrations = try environment.demonstrations.map { try DemonstrationFile.load(path: $0, tools: tools, config: environment) }
    }

    /// The tools a demonstration may call: with a training task file, `calc` and the provider's
    /// tools (what a `TaskEpisode` offers); otherwise the built-in tools.
    static func tools(environment: EnvironmentConfig, provider: ToolProvider?) -> [ToolDescription] {
        guard environment.tasks.train != nil else { return ToolName.allCases.map(\.toolDescription) }
        let provided = provider?.tools ?? []
        return (provided.contains { $0.name == ToolName.calc.rawValue } ? [] : [ToolName.calc.toolDescription]) + provided
    }

    /// The training episode drawn for `seed`: a generated one, or the task file's task at a
    /// position the seed picks.
    public func trainingEpisode(seed: UInt64) -> LabelledEpisode {
        guard let trainTasks else { return Episode.sample(split: .train, seed: seed, config: environment) }
        return TaskEpisode(task: trainTasks[Int(seed % UInt64(trainTasks.count))], config: environment, provider: provider)
    }

    /// The episodes of an evaluation: `count` generated ones of `split` from seed `seedOffset`
    /// on, or the first `count` tasks of the split's task file (all of them when it has fewer).
    public func evaluationEpisodes(split: Split, count: Int, seedOffset: UInt64 = 0) -> [LabelledEpisode] {
        guard let tasks = split == .train ? trainTasks : evalTasks else {
            return (0..<count).map { Episode.sample(split: split, seed: seedOffset + UInt64($0), config: environment) }
        }
        return tasks.prefix(count).map { TaskEpisode(task: $0, config: environment, provider: provider) }
    }

    /// The texts a BPE tokenizer learns from when the user's tasks replace the generated ones:
    /// the training prompts and the demonstrations' text; nil with the generated families.
    public var tokenizerTexts: [String]? {
        guard let trainTasks else { return nil }
        return trainTasks.map(\.prompt) + (demonstrations ?? []).flatMap { [$0.prompt] + $0.segments.map(\.text) }
    }

    /// Checks that every task's and demonstration's prompt leaves room in the context for a
    /// response of at least `minimumResponse` tokens.
    /// - Throws: `UserFileError` naming the file and line of the first prompt that does not.
    public func checkPromptLengths(codec: ProtocolCodec, maxPositions: Int, minimumResponse: Int) throws {
        let limit = maxPositions - minimumResponse
        let files: [(String?, [(prompt: String, line: Int)])] = [
            (environment.tasks.train, (trainTasks ?? []).map { ($0.prompt, $0.line) }),
            (environment.tasks.eval, (evalTasks ?? []).map { ($0.prompt, $0.line) }),
            (environment.demonstrations, (demonstrations ?? []).map { ($0.prompt, $0.line) }),
        ]
        for case let (file?, prompts) in files {
            for (prompt, line) in prompts {
                let length = codec.promptTokens(prompt).count
                if length > limit {
                    throw UserFileError(
                        file: file, line: line,
                        reason: "the prompt is \(length) tokens; model.max_position_embeddings (\(maxPositions)) leaves room for prompts of at most \(limit) beside \(minimumResponse) response tokens")
                }
            }
        }
    }
}

extension EpisodeSource {
    /// Starts the configured MCP servers, then reads the files (`init(environment:provider:)`).
    /// Call `close()` when done, on every path: it stops the servers.
    /// - Throws: `ToolServerError` for a server that cannot start, `UserFileError` for a bad
    ///   file (after stopping the servers).
    public static func open(environment: EnvironmentConfig) throws -> EpisodeSource {
        let servers = environment.mcpServers.isEmpty ? nil : try MCPToolProvider.start(environment.mcpServers)
        do {
            return try EpisodeSource(environment: environment, provider: servers)
        } catch {
            servers?.stop()
            throw error
        }
    }

    /// The MCP servers, when configured.
    public var servers: MCPToolProvider? { provider as? MCPToolProvider }

    /// Stops the tool servers, if any; safe to call more than once.
    public func close() { servers?.stop() }
}
