import Foundation
import RunRecords

/// A run directory as the report reads it: its configuration, every step's metrics, every
/// held-out evaluation and, once the run has finished, its summary.
///
/// Loading needs `config.json`, `metrics.jsonl` and `eval.jsonl`. `summary.json` is written only
/// when a run finishes, so a run without it still loads (``isFinished`` is false): the report
/// draws it in the charts, marked unfinished, and leaves it out of the summary table.
public struct ReportRun: Sendable {
    /// The run directory.
    public var directory: URL
    /// "arpo", "grpo" or "ppo": `rl.algorithm` in `config.json`.
    public var algorithm: String
    /// The algorithm with `rl.advantage.mode` where that changes its numbers, the tree signals
    /// and the tool-efficiency form when `env.reward.tool_efficiency` is on: what the report
    /// groups runs by (see ``TrainingMethod/init(_:algorithm:)``).
    public var method: TrainingMethod
    /// `run.seed` in `config.json`, if present.
    public var seed: UInt64?
    /// The experiment's sizes from `config.json`.
    public var sizes: ExperimentSizes
    /// Every line of `metrics.jsonl`, SFT and RL, in file order.
    public var metrics: [StepMetrics]
    /// Every line of `eval.jsonl` in file order; the first is the post-SFT evaluation.
    public var evaluations: [HeldOutEvaluation]
    /// `summary.json`, or nil while the run has not finished.
    public var summary: RunSummary?
    /// Every line of `trees.jsonl` (`rl.trees_every`) in file order; empty when the run wrote none.
    public var trees: [RolloutTree] = []
    /// The keys of `config.json` the Markdown results document describes the experiment with.
    var configuration: ReportConfigurationFile
    /// When `sft.init_from` names another run's `reference/`, that run's `config.json` and
    /// `summary.json`: how the shared cold start was trained and how long it took. Nil when there
    /// is none or it cannot be read.
    var coldStart: (directory: URL, configuration: ReportConfigurationFile?, summary: RunSummary?)?

    /// The directory's last path component, which is how the page names the run.
    public var name: String { directory.lastPathComponent }

    /// Whether the run wrote `summary.json`.
    public var isFinished: Bool { summary != nil }

    /// The RL lines of `metrics.jsonl`.
    public var reinforcementMetrics: [StepMetrics] { metrics.filter { $0.phase == "rl" } }

    /// `tool_calls_executed` over `trajectories`, each summed over `steps`: every execution once,
    /// a fork's inherited calls in its parent only. Nil without trajectories.
    static func toolCallsExecutedPerTrajectory(over steps: [StepMetrics]) -> Double? {
        let trajectories = steps.compactMap(\.trajectories).reduce(0, +)
        return trajectories > 0 ? Double(steps.compactMap(\.toolCallsExecuted).reduce(0, +)) / Double(trajectories) : nil
    }

    /// `tool_calls_written` over `trajectories`, over the steps that record it: every trajectory's
    /// calls, inherited ones included, as if each had been sampled on its own.
    static func toolCallsWrittenPerTrajectory(over steps: [StepMetrics]) -> Double? {
        let recorded = steps.filter { $0.toolCallsWritten != nil }
        let trajectories = recorded.compactMap(\.trajectories).reduce(0, +)
        return trajectories > 0 ? Double(recorded.compactMap(\.toolCallsWritten).reduce(0, +)) / Double(trajectories) : nil
    }

    /// `tool_calls_per_answered_episode`, mean over the steps that record it (a step where no
    /// trajectory answered has none), each step weighing the same.
    static func toolCallsWrittenPerAnsweredEpisode(over steps: [StepMetrics]) -> Double? {
        MeanAndStandardDeviation(steps.compactMap(\.toolCallsPerAnsweredEpisode).filter(\.isFinite))?.mean
    }

    /// Updates per rollout batch, `rl.epochs` × `rl.mini_batches` (1 × 1 when `config.json`
    /// predates the keys).
    var updatesPerRolloutBatch: Int {
        (configuration.rl?.epochs ?? 1) * (configuration.rl?.miniBatches ?? 1)
    }

    /// Reads a run directory written by `arpo-train train`.
    ///
    /// - Throws: ``ReportError`` naming the file (and for a JSON Lines file the line number) when
    ///   the directory does not exist, a required file is missing, or a file is not valid JSON of
    ///   the expected shape.
    public static func load(from directory: URL) throws -> ReportRun {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory) else {
            throw ReportError(file: directory.path, problem: "run directory does not exist")
        }
        guard isDirectory.boolValue else {
            throw ReportError(file: directory.path, problem: "is a file, not a run directory")
        }
        // The file names are RunDirectory's; the report reads them on its own so that it depends
        // on nothing but Foundation.
        let configURL = directory.appendingPathComponent("config.json")
        let metricsURL = directory.appendingPathComponent("metrics.jsonl")
        let evaluationURL = directory.appendingPathComponent("eval.jsonl")
        let summaryURL = directory.appendingPathComponent("summary.json")
        let configuration = try decodeObject(ReportConfigurationFile.self, from: configURL)
        guard let algorithm = configuration.rl?.algorithm else {
            throw ReportError(file: configURL.path, problem: "has no rl.algorithm")
        }
        let sizes = ExperimentSizes(
            sftSteps: configuration.sft?.steps,
            rlSteps: configuration.rl?.steps,
            promptsPerStep: configuration.rl?.promptsPerStep,
            // ARPO's trajectories per prompt are its branching budget M; GRPO and PPO sample G.
            trajectoriesPerPrompt: algorithm == "arpo" ? configuration.rl?.branching?.budget : configuration.rl?.groupSize)
        let metrics = try decodeLines(StepMetrics.self, from: metricsURL)
        let evaluations = try decodeLines(HeldOutEvaluation.self, from: evaluationURL)
        let summary = FileManager.default.fileExists(atPath: summaryURL.path) ? try decodeObject(RunSummary.self, from: summaryURL) : nil
        let treesURL = directory.appendingPathComponent("trees.jsonl")
        let trees = FileManager.default.fileExists(atPath: treesURL.path) ? try decodeLines(RolloutTree.self, from: treesURL) : []
        // `init_from` is a path as the run was given it (relative to where it started); compare.sh
        // trains and reports from the same directory. It is context only, so a cold start that
        // has moved is left undescribed rather than an error.
        let coldStart = configuration.sft?.initFrom.map { initial in
            let run = URL(fileURLWithPath: initial).deletingLastPathComponent()
            return (run.standardizedFileURL,
                    try? decodeObject(ReportConfigurationFile.self, from: run.appendingPathComponent("config.json")),
                    try? decodeObject(RunSummary.self, from: run.appendingPathComponent("summary.json")))
        }
        return ReportRun(
            directory: directory, algorithm: algorithm, method: TrainingMethod(configuration, algorithm: algorithm),
            seed: configuration.run?.seed, sizes: sizes,
            metrics: metrics, evaluations: evaluations, summary: summary, trees: trees,
            configuration: configuration, coldStart: coldStart)
    }

    /// Decodes a file holding one JSON object.
    static func decodeObject<Value: Decodable>(_ type: Value.Type, from url: URL) throws -> Value {
        let data = try readFile(url)
        do {
            return try JSONDecoder().decode(Value.self, from: data)
        } catch {
            throw ReportError(file: url.path, problem: explain(error))
        }
    }

    /// Decodes a JSON Lines file, one object per non-blank line; an error names the line (from 1).
    static func decodeLines<Value: Decodable>(_ type: Value.Type, from url: URL) throws -> [Value] {
        let data = try readFile(url)
        let decoder = JSONDecoder()
        var values: [Value] = []
        for (index, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\r") }) { continue }
            do {
                values.append(try decoder.decode(Value.self, from: Data(line)))
            } catch {
                throw ReportError(file: url.path, line: index + 1, problem: explain(error))
            }
        }
        return values
    }

    static func readFile(_ url: URL) throws -> Data {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw ReportError(file: url.path, problem: "missing; is \(url.deletingLastPathComponent().lastPathComponent) a run directory written by `arpo-train train`?")
        }
        do {
            return try Data(contentsOf: url)
        } catch {
            throw ReportError(file: url.path, problem: "cannot be read: \(error.localizedDescription)")
        }
    }

    /// A decoding error in a sentence that names the offending field, instead of the decoder's
    /// coding-path dump.
    static func explain(_ error: Error) -> String {
        func field(_ path: [CodingKey]) -> String {
            path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        func kind(_ type: Any.Type) -> String {
            switch type {
            case is Int.Type, is UInt64.Type: return "an integer"
            case is Double.Type: return "a number"
            case is String.Type: return "a string"
            case is Bool.Type: return "true or false"
            default: return "a JSON object"
            }
        }
        guard let error = error as? DecodingError else { return "\(error)" }
        switch error {
        case .typeMismatch(let type, let context):
            return context.codingPath.isEmpty ? "is not a JSON object" : "field \"\(field(context.codingPath))\" is not \(kind(type))"
        case .valueNotFound(let type, let context):
            return "field \"\(field(context.codingPath))\" is null, expected \(kind(type))"
        case .keyNotFound(let key, let context):
            return "missing field \"\(field(context.codingPath + [key]))\""
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                return "not valid JSON" + (context.underlyingError.map { " (\(($0 as NSError).localizedDescription))" } ?? "")
            }
            return "field \"\(field(context.codingPath))\": \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}

extension TrainingMethod {
    /// The method of a run with this `config.json`, whose `rl.algorithm` is `algorithm`: the one
    /// place the report reads a method from a configuration. A coefficient or rule missing from
    /// an older config is the trainer's default (off, `stochastic`).
    init(_ configuration: ReportConfigurationFile, algorithm: String) {
        let rl = configuration.rl
        self.init(
            algorithm: algorithm, advantageMode: rl?.advantage?.mode,
            usesDPO: (rl?.loss?.dpoCoefficient ?? 0) > 0,
            usesMemoryBank: (rl?.memoryBank?.coefficient ?? 0) > 0 || (rl?.memoryBank?.contrastiveCoefficient ?? 0) > 0,
            usesEntropyBalancedBranching: rl?.branching?.rule == "entropy-balanced",
            toolEfficiencyForm: configuration.env?.reward?.trainingToolEfficiencyForm)
    }
}

/// The experiment's sizes, from `config.json`.
public struct ExperimentSizes: Equatable, Sendable {
    /// `sft.steps`.
    public var sftSteps: Int?
    /// `rl.steps`.
    public var rlSteps: Int?
    /// `rl.prompts_per_step`.
    public var promptsPerStep: Int?
    /// `rl.branching.budget` for ARPO, `rl.group_size` for GRPO and PPO.
    public var trajectoriesPerPrompt: Int?

    /// Sizes as given; nil where `config.json` does not say.
    public init(sftSteps: Int? = nil, rlSteps: Int? = nil, promptsPerStep: Int? = nil, trajectoriesPerPrompt: Int? = nil) {
        self.sftSteps = sftSteps
        self.rlSteps = rlSteps
        self.promptsPerStep = promptsPerStep
        self.trajectoriesPerPrompt = trajectoriesPerPrompt
    }
}

/// The keys of `config.json` the report reads; everything else is ignored. Every key is
/// optional, so a config written by an older trainer still loads.
struct ReportConfigurationFile: Decodable {
    struct Model: Decodable {
        var hiddenSize: Int?
        var intermediateSize: Int?
        var layers: Int?
        var attentionHeads: Int?
        var keyValueHeads: Int?
        var contextLength: Int?
        var valueHead: Bool?

        enum CodingKeys: String, CodingKey {
            case hiddenSize = "hidden_size"
            case intermediateSize = "intermediate_size"
            case layers = "num_hidden_layers"
            case attentionHeads = "num_attention_heads"
            case keyValueHeads = "num_key_value_heads"
            case contextLength = "max_position_embeddings"
            case valueHead = "value_head"
        }
    }
    struct Environment: Decodable {
        struct Reward: Decodable {
            var toolEfficiency: Bool?
            var toolEfficiencyForm: String?

            enum CodingKeys: String, CodingKey {
                case toolEfficiency = "tool_efficiency"
                case toolEfficiencyForm = "tool_efficiency_form"
            }

            /// The factor's form when it is on (`group-free` when the key is missing, the
            /// trainer's default), nil when it is off.
            var trainingToolEfficiencyForm: String? {
                toolEfficiency == true ? toolEfficiencyForm ?? "group-free" : nil
            }
        }
        var taskMix: [String: Double]?
        var difficulty: Int?
        var reward: Reward?

        enum CodingKeys: String, CodingKey {
            case difficulty, reward
            case taskMix = "task_mix"
        }
    }
    struct Supervised: Decodable {
        var steps: Int?
        var batchSize: Int?
        var demonstrations: Int?
        var initFrom: String?

        enum CodingKeys: String, CodingKey {
            case steps, demonstrations
            case batchSize = "batch_size"
            case initFrom = "init_from"
        }
    }
    struct Reinforcement: Decodable {
        struct Branching: Decodable {
            var budget: Int?
            var initialSamples: Int?
            var branchFactor: Int?
            var threshold: Double?
            /// "stochastic", "threshold" or "entropy-balanced" (AEPO).
            var rule: String?

            enum CodingKeys: String, CodingKey {
                case budget, threshold, rule
                case initialSamples = "initial_samples"
                case branchFactor = "branch_factor"
            }
        }
        struct Advantage: Decodable {
            var mode: String?
        }
        struct Loss: Decodable {
            var dpoCoefficient: Double?

            enum CodingKeys: String, CodingKey {
                case dpoCoefficient = "dpo_coefficient"
            }
        }
        struct MemoryBank: Decodable {
            var coefficient: Double?
            var contrastiveCoefficient: Double?

            enum CodingKeys: String, CodingKey {
                case coefficient
                case contrastiveCoefficient = "contrastive_coefficient"
            }
        }
        var algorithm: String?
        var steps: Int?
        var promptsPerStep: Int?
        var groupSize: Int?
        var branching: Branching?
        var advantage: Advantage?
        var loss: Loss?
        var memoryBank: MemoryBank?
        var epochs: Int?
        var miniBatches: Int?
        var maxResponseTokens: Int?
        var learningRate: Double?

        enum CodingKeys: String, CodingKey {
            case algorithm, steps, branching, advantage, epochs
            case loss
            case memoryBank = "memory_bank"
            case miniBatches = "mini_batches"
            case promptsPerStep = "prompts_per_step"
            case groupSize = "group_size"
            case maxResponseTokens = "max_response_tokens"
            case learningRate = "learning_rate"
        }
    }
    struct Evaluation: Decodable {
        var every: Int?
        var episodes: Int?
    }
    struct Run: Decodable {
        var seed: UInt64?
        var threads: Int?
    }

    var model: Model?
    var env: Environment?
    var sft: Supervised?
    var rl: Reinforcement?
    var eval: Evaluation?
    var run: Run?
}
