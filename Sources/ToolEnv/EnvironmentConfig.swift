import Foundation

/// Everything that shapes the environment: the task mix, difficulty, faults, limits, search and
/// reward terms.
///
/// Every field has a default, and decoding falls back to it for a missing key, so `{}` decodes
/// to `EnvironmentConfig()`. JSON keys are snake_case; each struct's `CodingKeys.allCases` lists
/// its keys so that a caller can reject unknown ones. Call `validate()` after decoding.
///
///     {
///       "task_mix": {"arithmetic": 1, "single_hop": 1, "multi_hop": 1, "compose": 1, "unanswerable": 0.5},
///       "difficulty": 2,
///       "family_difficulty": {"compose": 3},
///       "faults": {"failure_probability": 0.05, "degraded_probability": 0.05, "draws": "shared"},
///       "limits": {"max_tool_calls": 8, "max_observation_characters": 200},
///       "search": {"top_k": 2, "order": "relevance"},
///       "reward": {"bad_format_reward": -1, "multi_tool_bonus": 0.1, "answer_scoring": "exact",
///                  "numeric_tolerance": 1e-9, "tool_efficiency": false, "tool_efficiency_c": 10,
///                  "tool_efficiency_form": "group-free", "error_penalties": {}}
///     }
public struct EnvironmentConfig: Codable, Equatable, Sendable {
    /// The relative weight of each task family when an episode's family is sampled
    /// (`Episode.sample`). Families left out have weight 0. Key `task_mix`.
    public var taskMix: [TaskFamily: Double]
    /// The difficulty of every family without an override, 1...3. Key `difficulty`.
    public var difficulty: Int
    /// Per-family difficulty overrides, 1...3. Key `family_difficulty`.
    public var familyDifficulty: [TaskFamily: Int]
    /// Injected tool faults. Key `faults`.
    public var faults: FaultConfig
    /// Per-episode limits. Key `limits`.
    public var limits: LimitConfig
    /// The `search` tool. Key `search`.
    public var search: SearchConfig
    /// The reward. Key `reward`.
    public var reward: RewardConfig
    /// The user's task files, which replace the generated families of their split. Key `tasks`.
    public var tasks: TaskFilesConfig
    /// A JSONL file of expert trajectories in OpenAI chat format, which the cold start trains on
    /// instead of the built-in solver's. Key `demonstrations`, default none.
    public var demonstrations: String?
    /// How the policy writes a call. Key `call_format`, `"compact"` (default) or `"json"`.
    public var callFormat: CallFormat
    /// MCP tool servers started over stdio for the run, by name, in the shape other MCP clients
    /// read (`{"units": {"command": "python3", "args": ["server.py"]}}`). Key `mcp_servers`,
    /// default none. They serve the task files' episodes.
    public var mcpServers: [String: MCPServerConfig]

    /// The default mix: the four answerable families equally, unanswerable questions at half
    /// weight (about one episode in nine).
    public static let defaultTaskMix: [TaskFamily: Double] = [
        .arithmetic: 1, .singleHop: 1, .multiHop: 1, .compose: 1, .unanswerable: 0.5,
    ]

    /// A configuration; every argument defaults to the documented default.
    public init(
        taskMix: [TaskFamily: Double] = EnvironmentConfig.defaultTaskMix,
        difficulty: Int = 2,
        familyDifficulty: [TaskFamily: Int] = [:],
        faults: FaultConfig = FaultConfig(),
        limits: LimitConfig = LimitConfig(),
        search: SearchConfig = SearchConfig(),
        reward: RewardConfig = RewardConfig(),
        tasks: TaskFilesConfig = TaskFilesConfig(),
        demonstrations: String? = nil,
        callFormat: CallFormat = .compact,
        mcpServers: [String: MCPServerConfig] = [:]
    ) {
        self.taskMix = taskMix
        self.difficulty = difficulty
        self.familyDifficulty = familyDifficulty
        self.faults = faults
        self.limits = limits
        self.search = search
        self.reward = reward
        self.tasks = tasks
        self.demonstrations = demonstrations
        self.callFormat = callFormat
        self.mcpServers = mcpServers
    }

    /// The JSON keys.
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case taskMix = "task_mix"
        case difficulty
        case familyDifficulty = "family_difficulty"
        case faults
        case limits
        case search
        case reward
        case tasks
        case demonstrations
        case callFormat = "call_format"
        case mcpServers = "mcp_servers"
    }

    /// Decodes, using the default for every missing key.
    /// - Throws: `DecodingError` for a wrongly typed value or a map key that is not a task family.
    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = EnvironmentConfig()
        if let mix = try container.decodeIfPresent([String: Double].self, forKey: .taskMix) {
            taskMix = try ConfigDecoding.enumKeyed(mix, forKey: .taskMix, in: container)
        } else {
            taskMix = defaults.taskMix
        }
        difficulty = try container.decodeIfPresent(Int.self, forKey: .difficulty) ?? defaults.difficulty
        if let overrides = try container.decodeIfPresent([String: Int].self, forKey: .familyDifficulty) {
            familyDifficulty = try ConfigDecoding.enumKeyed(overrides, forKey: .familyDifficulty, in: container)
        } else {
            familyDifficulty = defaults.familyDifficulty
        }
        faults = try container.decodeIfPresent(FaultConfig.self, forKey: .faults) ?? defaults.faults
        limits = try container.decodeIfPresent(LimitConfig.self, forKey: .limits) ?? defaults.limits
        search = try container.decodeIfPresent(SearchConfig.self, forKey: .search) ?? defaults.search
        reward = try container.decodeIfPresent(RewardConfig.self, forKey: .reward) ?? defaults.reward
        tasks = try container.decodeIfPresent(TaskFilesConfig.self, forKey: .tasks) ?? defaults.tasks
        demonstrations = try container.decodeIfPresent(String.self, forKey: .demonstrations)
        callFormat = try container.decodeIfPresent(CallFormat.self, forKey: .callFormat) ?? defaults.callFormat
        mcpServers = try container.decodeIfPresent([String: MCPServerConfig].self, forKey: .mcpServers) ?? defaults.mcpServers
    }

    /// Encodes every field, maps with their string keys, unset files as null.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(ConfigDecoding.stringKeyed(taskMix), forKey: .taskMix)
        try container.encode(difficulty, forKey: .difficulty)
        try container.encode(ConfigDecoding.stringKeyed(familyDifficulty), forKey: .familyDifficulty)
        try container.encode(faults, forKey: .faults)
        try container.encode(limits, forKey: .limits)
        try container.encode(search, forKey: .search)
        try container.encode(reward, forKey: .reward)
        try container.encode(tasks, forKey: .tasks)
        try container.encode(demonstrations, forKey: .demonstrations)
        try container.encode(callFormat, forKey: .callFormat)
        try container.encode(mcpServers, forKey: .mcpServers)
    }

    /// Whether the user's tasks replace the generated families in `split`.
    public func usesTaskFile(_ split: Split) -> Bool {
        (split == .train ? tasks.train : tasks.eval) != nil
    }

    /// The difficulty used for `family`: its override if any, else `difficulty`.
    public func difficulty(for family: TaskFamily) -> Int {
        familyDifficulty[family] ?? difficulty
    }

    /// Checks every value.
    /// - Throws: `EnvironmentConfigError` naming the key path, e.g.
    ///   `faults.failure_probability must be in [0, 1], got 1.5`.
    public func validate() throws {
        var total = 0.0
        for family in TaskFamily.allCases {
            let weight = taskMix[family] ?? 0
            guard weight.isFinite, weight >= 0 else {
                throw EnvironmentConfigError(keyPath: "task_mix.\(family.rawValue)", reason: "must be a finite number >= 0, got \(weight)")
            }
            total += weight
        }
        guard total > 0 else {
            throw EnvironmentConfigError(keyPath: "task_mix", reason: "must give some family a positive weight")
        }
        guard (1...3).contains(difficulty) else {
            throw EnvironmentConfigError(keyPath: "difficulty", reason: "must be in 1...3, got \(difficulty)")
        }
        for family in TaskFamily.allCases {
            if let value = familyDifficulty[family], !(1...3).contains(value) {
                throw EnvironmentConfigError(keyPath: "family_difficulty.\(family.rawValue)", reason: "must be in 1...3, got \(value)")
            }
        }
        do { try faults.validate() } catch let error as EnvironmentConfigError { throw error.nested(under: "faults") }
        do { try limits.validate() } catch let error as EnvironmentConfigError { throw error.nested(under: "limits") }
        do { try search.validate() } catch let error as EnvironmentConfigError { throw error.nested(under: "search") }
        do { try reward.validate() } catch let error as EnvironmentConfigError { throw error.nested(under: "reward") }
        try validateUserFiles()
    }

    /// Checks the task files, demonstrations and tool servers.
    func validateUserFiles() throws {
        do { try tasks.validate() } catch let error as EnvironmentConfigError { throw error.nested(under: "tasks") }
        if let demonstrations, demonstrations.isEmpty {
            throw EnvironmentConfigError(keyPath: "demonstrations", reason: "must be a file path or null, got an empty string")
        }
        if !mcpServers.isEmpty && tasks.train == nil {
            throw EnvironmentConfigError(
                keyPath: "mcp_servers", reason: "needs env.tasks.train: the generated task families use the built-in tools only")
        }
        for name in mcpServers.keys.sorted() {
            do { try mcpServers[name]!.validate() } catch let error as EnvironmentConfigError { throw error.nested(under: "mcp_servers.\(name)") }
            let isValidName = !name.isEmpty && name.count <= 64 && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
            guard isValidName else {
                throw EnvironmentConfigError(keyPath: "mcp_servers", reason: "server names must be 1 to 64 ASCII letters, digits, _ or -, got \"\(name)\"")
            }
        }
    }
}

/// Whose fault draws an executed call shares.
public enum FaultDraws: String, Codable, CaseIterable, Sendable {
    /// The draw depends on the episode's seed, the call's position and its text only: every
    /// trajectory of a group that makes the same call at the same position meets the same fault
    /// (the default; a prompt's trajectories then differ only by what the policy wrote).
    case shared
    /// Each trajectory of a rollout draws from its own stream (`Episode.fork(faultStream:)`),
    /// so the same call can fail in one trajectory and succeed in its sibling. A fork shares its
    /// parent's prefix, results included, and draws anew only for the calls it makes itself.
    case perTrajectory = "per-trajectory"
}

/// Injected tool faults, drawn independently for every executed call (LAM Simulator: tools
/// fail, and the policy should learn to retry).
public struct FaultConfig: Codable, Equatable, Sendable {
    /// Probability that an executed call fails with an error or timeout text. Key
    /// `failure_probability`, default 0.05.
    public var failureProbability: Double
    /// Probability that an executed call returns a degraded result: empty, or irrelevant facts
    /// for `search`. Key `degraded_probability`, default 0.05.
    public var degradedProbability: Double
    /// Whether the trajectories of a rollout share their fault draws. Key `draws`, `"shared"`
    /// (default) or `"per-trajectory"`.
    public var draws: FaultDraws

    /// Fault probabilities; the sum must be at most 1.
    public init(failureProbability: Double = 0.05, degradedProbability: Double = 0.05, draws: FaultDraws = .shared) {
        self.failureProbability = failureProbability
        self.degradedProbability = degradedProbability
        self.draws = draws
    }

    /// No faults at all.
    public static let none = FaultConfig(failureProbability: 0, degradedProbability: 0)

    /// The JSON keys.
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case failureProbability = "failure_probability"
        case degradedProbability = "degraded_probability"
        case draws
    }

    /// Decodes, using the default for every missing key.
    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = FaultConfig()
        failureProbability = try container.decodeIfPresent(Double.self, forKey: .failureProbability) ?? defaults.failureProbability
        degradedProbability = try container.decodeIfPresent(Double.self, forKey: .degradedProbability) ?? defaults.degradedProbability
        draws = try container.decodeIfPresent(FaultDraws.self, forKey: .draws) ?? defaults.draws
    }

    /// Checks every value.
    /// - Throws: `EnvironmentConfigError` with a key path relative to this struct.
    public func validate() throws {
        try ConfigDecoding.requireProbability(failureProbability, "failure_probability")
        try ConfigDecoding.requireProbability(degradedProbability, "degraded_probability")
        guard failureProbability + degradedProbability <= 1 else {
            throw EnvironmentConfigError(
                keyPath: "degraded_probability",
                reason: "plus failure_probability must be at most 1, got \(failureProbability + degradedProbability)"
            )
        }
    }
}

/// Per-episode limits.
public struct LimitConfig: Codable, Equatable, Sendable {
    /// The most tool calls an episode may attempt. Every `</call>` counts, well-formed or not, so
    /// that malformed calls cannot be spammed for free. The call after the last allowed one gets
    /// an `over_call_limit` observation and the episode must end. Key `max_tool_calls`,
    /// default 8.
    public var maxToolCalls: Int
    /// The longest observation, in characters; longer results are cut and end with `...`.
    /// Key `max_observation_characters`, default 200.
    public var maxObservationCharacters: Int

    /// Limits.
    public init(maxToolCalls: Int = 8, maxObservationCharacters: Int = 200) {
        self.maxToolCalls = maxToolCalls
        self.maxObservationCharacters = maxObservationCharacters
    }

    /// The JSON keys.
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case maxToolCalls = "max_tool_calls"
        case maxObservationCharacters = "max_observation_characters"
    }

    /// Decodes, using the default for every missing key.
    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = LimitConfig()
        maxToolCalls = try container.decodeIfPresent(Int.self, forKey: .maxToolCalls) ?? defaults.maxToolCalls
        maxObservationCharacters = try container.decodeIfPresent(Int.self, forKey: .maxObservationCharacters)
            ?? defaults.maxObservationCharacters
    }

    /// Checks every value.
    /// - Throws: `EnvironmentConfigError` with a key path relative to this struct.
    public func validate() throws {
        guard (1...100).contains(maxToolCalls) else {
            throw EnvironmentConfigError(keyPath: "max_tool_calls", reason: "must be in 1...100, got \(maxToolCalls)")
        }
        // Below about 40 characters even a single fact or error message no longer fits.
        guard (40...10_000).contains(maxObservationCharacters) else {
            throw EnvironmentConfigError(
                keyPath: "max_observation_characters", reason: "must be in 40...10000, got \(maxObservationCharacters)"
            )
        }
    }
}

/// The order in which `search` returns its facts.
public enum SearchOrder: String, Codable, CaseIterable, Sendable {
    /// Best match first, as BM25 ranks them (the default).
    case relevance
    /// The same `top_k` facts in a random order drawn per call from the episode's seed, so the
    /// matching fact is not always first. A policy must then find the fact about the entity it
    /// asked for, which is also what tells it that an unanswerable question's entity is absent.
    case shuffled
}

/// The `search` tool.
public struct SearchConfig: Codable, Equatable, Sendable {
    /// How many facts a search returns at most. Key `top_k`, default 2.
    public var topK: Int
    /// Whether they come best first or shuffled. Key `order`, default `relevance`.
    public var order: SearchOrder

    /// Search settings.
    public init(topK: Int = 2, order: SearchOrder = .relevance) {
        self.topK = topK
        self.order = order
    }

    /// The JSON keys.
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case topK = "top_k"
        case order
    }

    /// Decodes, using the default for every missing key.
    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = SearchConfig()
        topK = try container.decodeIfPresent(Int.self, forKey: .topK) ?? defaults.topK
        order = try container.decodeIfPresent(SearchOrder.self, forKey: .order) ?? defaults.order
    }

    /// Checks every value.
    /// - Throws: `EnvironmentConfigError` with a key path relative to this struct.
    public func validate() throws {
        guard (1...10).contains(topK) else {
            throw EnvironmentConfigError(keyPath: "top_k", reason: "must be in 1...10, got \(topK)")
        }
    }
}

/// Which form of OTC-PO's tool-efficiency factor the reward uses.
public enum ToolEfficiencyForm: String, Codable, CaseIterable, Sendable {
    /// cos(m·π / (2m + c)) from the episode alone, computed by `Episode.finish` (the default).
    case groupFree = "group-free"
    /// sin(f·π / (2n)) against n, the fewest executed calls among the prompt group's correct
    /// trajectories (`RewardFunction.applyToolEfficiency`): applied by the rollout per prompt
    /// group, after every trajectory has finished and before the advantages. A single episode
    /// (evaluation, `sample`) has no group and keeps the group-free factor.
    case group
}

/// How an answer is scored against the gold answer.
public enum AnswerScoring: String, Codable, CaseIterable, Sendable {
    /// 1 for a correct answer (exact match after normalisation, or numeric match), else 0.
    case exact
    /// Token F1 against the gold answer for text answers (ARPO's QA score); numbers and
    /// unanswerable questions are still scored 1 or 0. Partial credit can be had by listing
    /// several names, which is why this is not the default.
    case f1
}

/// The reward terms (ARPO section 6 of the project notes, with OTC-PO and error-oriented
/// options). See `RewardFunction` for the formulas.
public struct RewardConfig: Codable, Equatable, Sendable {
    /// The whole reward when the format is wrong. Key `bad_format_reward`, default -1.
    public var badFormatReward: Double
    /// Added when the answer is correct and more than one kind of tool was executed. Key
    /// `multi_tool_bonus`, default 0.1. The released ARPO code adds it when the answer score is
    /// positive; the two agree under `exact` scoring, and under `f1` a positive score includes
    /// the partial credit that listing several names earns, which the bonus should not add to.
    public var multiToolBonus: Double
    /// How the answer is scored. Key `answer_scoring`, `"exact"` (default) or `"f1"`.
    public var answerScoring: AnswerScoring
    /// Relative tolerance for numeric answers: |answer - gold| <= tolerance * max(1, |gold|).
    /// Key `numeric_tolerance`, default 1e-9: it forgives float formatting (`84.0`), never an
    /// off-by-one, since gold answers reach a few million.
    public var numericTolerance: Double
    /// Whether the answer score is multiplied by the OTC-PO tool-efficiency factor. Key
    /// `tool_efficiency`, default false.
    public var toolEfficiency: Bool
    /// The smoothing constant c of the group-free efficiency factor cos(m*pi/(2m+c)). Key
    /// `tool_efficiency_c`, default 10 (one call keeps 0.97 of the reward, four keep 0.77).
    public var toolEfficiencyC: Double
    /// The factor's form when `toolEfficiency` is on. Key `tool_efficiency_form`,
    /// `"group-free"` (default) or `"group"`.
    public var toolEfficiencyForm: ToolEfficiencyForm
    /// A penalty subtracted for every occurrence of an error kind (error-oriented scoring);
    /// kinds left out cost nothing. Key `error_penalties`, e.g. `{"malformed_call": 0.1}`;
    /// default empty.
    public var errorPenalties: [EpisodeErrorKind: Double]

    /// Reward terms.
    public init(
        badFormatReward: Double = -1,
        multiToolBonus: Double = 0.1,
        answerScoring: AnswerScoring = .exact,
        numericTolerance: Double = 1e-9,
        toolEfficiency: Bool = false,
        toolEfficiencyC: Double = 10,
        toolEfficiencyForm: ToolEfficiencyForm = .groupFree,
        errorPenalties: [EpisodeErrorKind: Double] = [:]
    ) {
        self.badFormatReward = badFormatReward
        self.multiToolBonus = multiToolBonus
        self.answerScoring = answerScoring
        self.numericTolerance = numericTolerance
        self.toolEfficiency = toolEfficiency
        self.toolEfficiencyC = toolEfficiencyC
        self.toolEfficiencyForm = toolEfficiencyForm
        self.errorPenalties = errorPenalties
    }

    /// The JSON keys.
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case badFormatReward = "bad_format_reward"
        case multiToolBonus = "multi_tool_bonus"
        case answerScoring = "answer_scoring"
        case numericTolerance = "numeric_tolerance"
        case toolEfficiency = "tool_efficiency"
        case toolEfficiencyC = "tool_efficiency_c"
        case toolEfficiencyForm = "tool_efficiency_form"
        case errorPenalties = "error_penalties"
    }

    /// Decodes, using the default for every missing key.
    /// - Throws: `DecodingError` for a wrongly typed value or an unknown error kind.
    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = RewardConfig()
        badFormatReward = try container.decodeIfPresent(Double.self, forKey: .badFormatReward) ?? defaults.badFormatReward
        multiToolBonus = try container.decodeIfPresent(Double.self, forKey: .multiToolBonus) ?? defaults.multiToolBonus
        answerScoring = try container.decodeIfPresent(AnswerScoring.self, forKey: .answerScoring) ?? defaults.answerScoring
        numericTolerance = try container.decodeIfPresent(Double.self, forKey: .numericTolerance) ?? defaults.numericTolerance
        toolEfficiency = try container.decodeIfPresent(Bool.self, forKey: .toolEfficiency) ?? defaults.toolEfficiency
        toolEfficiencyC = try container.decodeIfPresent(Double.self, forKey: .toolEfficiencyC) ?? defaults.toolEfficiencyC
        toolEfficiencyForm = try container.decodeIfPresent(ToolEfficiencyForm.self, forKey: .toolEfficiencyForm) ?? defaults.toolEfficiencyForm
        if let penalties = try container.decodeIfPresent([String: Double].self, forKey: .errorPenalties) {
            errorPenalties = try ConfigDecoding.enumKeyed(penalties, forKey: .errorPenalties, in: container)
        } else {
            errorPenalties = defaults.errorPenalties
        }
    }

    /// Encodes every field, the penalty map with string keys.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(badFormatReward, forKey: .badFormatReward)
        try container.encode(multiToolBonus, forKey: .multiToolBonus)
        try container.encode(answerScoring, forKey: .answerScoring)
        try container.encode(numericTolerance, forKey: .numericTolerance)
        try container.encode(toolEfficiency, forKey: .toolEfficiency)
        try container.encode(toolEfficiencyC, forKey: .toolEfficiencyC)
        try container.encode(toolEfficiencyForm, forKey: .toolEfficiencyForm)
        try container.encode(ConfigDecoding.stringKeyed(errorPenalties), forKey: .errorPenalties)
    }

    /// The penalty for one occurrence of `kind` (0 when not configured).
    public func penalty(for kind: EpisodeErrorKind) -> Double {
        errorPenalties[kind] ?? 0
    }

    /// Checks every value.
    /// - Throws: `EnvironmentConfigError` with a key path relative to this struct.
    public func validate() throws {
        guard badFormatReward.isFinite else {
            throw EnvironmentConfigError(keyPath: "bad_format_reward", reason: "must be finite, got \(badFormatReward)")
        }
        guard multiToolBonus.isFinite, multiToolBonus >= 0 else {
            throw EnvironmentConfigError(keyPath: "multi_tool_bonus", reason: "must be a finite number >= 0, got \(multiToolBonus)")
        }
        guard numericTolerance.isFinite, numericTolerance >= 0, numericTolerance < 1 else {
            throw EnvironmentConfigError(keyPath: "numeric_tolerance", reason: "must be in [0, 1), got \(numericTolerance)")
        }
        guard toolEfficiencyC.isFinite, toolEfficiencyC > 0 else {
            throw EnvironmentConfigError(keyPath: "tool_efficiency_c", reason: "must be a finite number > 0, got \(toolEfficiencyC)")
        }
        for kind in EpisodeErrorKind.allCases {
            if let penalty = errorPenalties[kind], !(penalty.isFinite && penalty >= 0) {
                throw EnvironmentConfigError(
                    keyPath: "error_penalties.\(kind.rawValue)", reason: "must be a finite number >= 0, got \(penalty)"
                )
            }
        }
    }
}

/// A configuration value out of range, named by its key path
/// (`faults.failure_probability must be in [0, 1], got 1.5`).
public struct EnvironmentConfigError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// The dotted JSON key path of the bad value, relative to the struct that was validated.
    public let keyPath: String
    /// What is wrong with it.
    public let reason: String

    /// An error for the value at `keyPath`.
    public init(keyPath: String, reason: String) {
        self.keyPath = keyPath
        self.reason = reason
    }

    /// `"<key path> <reason>"`.
    public var description: String { "\(keyPath) \(reason)" }
    /// Same as `description`, for `localizedDescription`.
    public var errorDescription: String? { description }

    /// The same error seen from the enclosing struct, whose key for this one is `key`.
    public func nested(under key: String) -> EnvironmentConfigError {
        EnvironmentConfigError(keyPath: key + "." + keyPath, reason: reason)
    }
}

/// Helpers shared by the config structs.
enum ConfigDecoding {
    /// Converts a string-keyed JSON object to an enum-keyed dictionary, rejecting unknown keys
    /// by name (Swift's own enum-keyed decoding would expect an array).
    static func enumKeyed<Key: RawRepresentable & CaseIterable & Hashable, Value, Keys: CodingKey>(
        _ map: [String: Value], forKey key: Keys, in container: KeyedDecodingContainer<Keys>
    ) throws -> [Key: Value] where Key.RawValue == String {
        var result: [Key: Value] = [:]
        for (name, value) in map {
            guard let typedKey = Key(rawValue: name) else {
                let expected = Key.allCases.map(\.rawValue).joined(separator: ", ")
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: container,
                    debugDescription: "\(key.stringValue).\(name) is not a known key; expected one of \(expected)"
                )
            }
            result[typedKey] = value
        }
        return result
    }

    /// The string-keyed form of an enum-keyed dictionary, for encoding as a JSON object.
    static func stringKeyed<Key: RawRepresentable & Hashable, Value>(_ map: [Key: Value]) -> [String: Value] where Key.RawValue == String {
        var result: [String: Value] = [:]
        for (key, value) in map { result[key.rawValue] = value }
        return result
    }

    static func requireProbability(_ value: Double, _ keyPath: String) throws {
        guard value.isFinite, (0...1).contains(value) else {
            throw EnvironmentConfigError(keyPath: keyPath, reason: "must be in [0, 1], got \(value)")
        }
    }
}
