/// An injected fault on an executed call.
public enum ToolFault: String, Codable, Sendable {
    /// The tool failed: an error or timeout text that asks for a retry.
    case failure
    /// The tool returned a degraded result: empty, or facts irrelevant to the query.
    case degraded
}

/// The environment's answer to one call.
public struct ToolResponse: Equatable, Sendable {
    /// The observation text, without the `<obs>` `</obs>` wrappers (the rollout engine adds
    /// them as special tokens). Never contains a protocol tag; at most
    /// `max_observation_characters` characters; may be empty (a degraded `calc` result).
    public let observation: String
    /// Whether the call passed the action evaluator and was run (injected failures included).
    /// Rejected calls and calls over the limit are not executions.
    public let wasExecuted: Bool
    /// The validated call, when it passed the action evaluator.
    public let call: ToolCall?
    /// The tool the call named, when it is a known one.
    public let tool: ToolName?
    /// The error label, when the call was rejected or over the limit.
    public let error: EpisodeErrorKind?
    /// The injected fault, if any. The policy only sees the observation; this is for logs and
    /// for the expert solver, which retries on it.
    public let fault: ToolFault?
    /// Whether the episode must end now (the call was over the tool-call limit); the rollout
    /// engine then finishes with `EndReason.callLimit`.
    public let episodeMustEnd: Bool

    /// Whether the observation reports a failure: an error label or an injected fault. An
    /// answer right after such an observation is `ignored_tool_failure`.
    public var reportsFailure: Bool { error != nil || fault != nil }
}

/// One episode: a task, the knowledge base behind it, and the record of the policy's calls.
///
/// Protocol: the policy writes text; a call is `<call>NAME(ARGS)</call>`; the environment
/// answers with an observation that the rollout engine wraps in `<obs>` … `</obs>`; the episode
/// ends at `<answer>TEXT</answer>` (then `<|end|>`), at the token limit or at the tool-call
/// limit.
///
/// An episode is a pure function of (family, split, seed, config) and the calls made on it.
/// It is used by one thread at a time; different episodes share nothing mutable, so they can
/// run on different threads. Use `fork()` to branch a partial rollout (ARPO): the branch
/// continues from the same record of calls.
public final class Episode {
    /// The task family.
    public let family: TaskFamily
    /// The split.
    public let split: Split
    /// The seed the episode was made from.
    public let seed: UInt64
    /// The configuration.
    public let config: EnvironmentConfig
    /// The task: question, gold answer, family and difficulty.
    public let task: EpisodeTask
    /// Every response given so far, in order.
    public private(set) var responses: [ToolResponse] = []
    /// Every error recorded so far, in order (`finish` adds answer-level errors).
    public private(set) var errors: [EpisodeErrorKind] = []
    /// Whether `finish` has been called.
    public private(set) var isFinished = false

    let world: World
    /// The seed every other random stream of this episode is derived from.
    let streamSeed: UInt64
    /// Which fault stream the calls still to come draw from: 0, the shared one, unless a fork
    /// was given its own (`fork(faultStream:)`).
    public private(set) var faultStream: UInt64 = 0

    /// Creates the episode for `family` in `split` from `seed`.
    ///
    /// - Precondition: `config.validate()` does not throw.
    public init(family: TaskFamily, split: Split, seed: UInt64, config: EnvironmentConfig = EnvironmentConfig()) {
        precondition((try? config.validate()) != nil, "invalid EnvironmentConfig; call validate() first")
        self.family = family
        self.split = split
        self.seed = seed
        self.config = config
        // The split and family are folded into every stream, so (train, s) and (eval, s) are
        // unrelated episodes; disjoint names are guaranteed separately by NameGenerator.
        streamSeed = StableHash.combine(Episode.splitSeed(seed, split), StableHash.of(family.rawValue))
        let difficulty = config.difficulty(for: family)
        var worldGenerator = SeededGenerator(seed: StableHash.combine(streamSeed, Stream.world.rawValue))
        let baseWorld = World.generate(split: split, difficulty: difficulty, generator: &worldGenerator)
        var taskGenerator = SeededGenerator(seed: StableHash.combine(streamSeed, Stream.task.rawValue))
        (task, world) = TaskGenerator.generate(
            family: family, difficulty: difficulty, split: split, world: baseWorld, generator: &taskGenerator
        )
    }

    private init(copying other: Episode) {
        family = other.family
        split = other.split
        seed = other.seed
        config = other.config
        task = other.task
        world = other.world
        streamSeed = other.streamSeed
        responses = other.responses
        errors = other.errors
        isFinished = other.isFinished
        faultStream = other.faultStream
    }

    /// The family `sample(split:seed:config:)` picks: drawn from `config.taskMix` in proportion
    /// to the weights.
    public static func sampledFamily(split: Split, seed: UInt64, config: EnvironmentConfig) -> TaskFamily {
        var generator = SeededGenerator(seed: StableHash.combine(splitSeed(seed, split), Stream.family.rawValue))
        let weights = TaskFamily.allCases.map { config.taskMix[$0] ?? 0 }
        let total = weights.reduce(0, +)
        precondition(total > 0, "task_mix has no positive weight")
        var draw = generator.unitInterval() * total
        for (family, weight) in zip(TaskFamily.allCases, weights) where weight > 0 {
            if draw < weight { return family }
            draw -= weight
        }
        // Rounding can leave the draw a hair above the last weight.
        return TaskFamily.allCases[weights.lastIndex(where: { $0 > 0 })!]
    }

    /// An episode whose family is drawn from the configured mix.
    public static func sample(split: Split, seed: UInt64, config: EnvironmentConfig = EnvironmentConfig()) -> Episode {
        Episode(family: sampledFamily(split: split, seed: seed, config: config), split: split, seed: seed, config: config)
    }

    /// The user's question; the rollout engine wraps it in `<|user|>` … `<|assistant|>`.
    public var prompt: String { task.question }

    /// The knowledge base's facts, in index order (for inspection and tests).
    public var knowledgeBase: [String] { world.facts.map(\.text) }

    /// The names of the entities in the knowledge base.
    public var entityNames: [String] { world.allNames }

    /// Calls that were executed so far.
    public var executedToolCalls: Int { responses.reduce(0) { $0 + ($1.wasExecuted ? 1 : 0) } }

    /// The kinds of tool executed so far.
    public var toolKindsUsed: Set<ToolName> { Set(responses.compactMap { $0.wasExecuted ? $0.call?.tool : nil }) }

    /// Whether the episode must end (a call went over the limit).
    public var mustEnd: Bool { responses.last?.episodeMustEnd ?? false }

    /// A copy that continues independently from this point (ARPO's partial-rollout fork).
    /// Faults depend only on the seed, the call's position, its text and the fault stream, which
    /// the copy keeps, so a branch that makes the same call as its sibling sees the same result.
    public func fork() -> Episode {
        Episode(copying: self)
    }

    /// A copy that continues from this point, as `fork()`, whose later calls draw their faults
    /// from stream `faultStream` instead (0 is the shared stream). The calls made so far keep
    /// their results; the trainer gives each trajectory its own stream under
    /// `faults.draws: per-trajectory`.
    public func fork(faultStream: UInt64) -> Episode {
        let copy = Episode(copying: self)
        copy.faultStream = faultStream
        return copy
    }

    /// Answers the call the policy just closed.
    ///
    /// `text` is what the policy wrote since the last observation (or since the prompt), ending
    /// with `</call>`; the last `<call>` … `</call>` in it is the call. In order:
    /// 1. If the episode already made `max_tool_calls` attempts: an `over_call_limit` error
    ///    observation, `episodeMustEnd` set, nothing run.
    /// 2. The action evaluator: a malformed call, unknown tool or bad arguments gets an error
    ///    observation naming the problem, is recorded in `errors`, and is not executed.
    /// 3. A fault draw for the executed call: a failure (probability
    ///    `faults.failure_probability`) or a degraded result (`faults.degraded_probability`).
    /// 4. Otherwise the tool runs.
    /// The observation is cut to `limits.max_observation_characters` and stripped of tags.
    ///
    /// - Precondition: the episode is not finished.
    public func respond(toPolicyText text: String) -> ToolResponse {
        precondition(!isFinished, "respond(toPolicyText:) after finish")
        let attempt = responses.count
        let response: ToolResponse
        if attempt >= config.limits.maxToolCalls {
            response = ToolResponse(
                observation: "error: over_call_limit: \(config.limits.maxToolCalls) calls used, the episode ends",
                wasExecuted: false, call: nil, tool: nil, error: .overCallLimit, fault: nil, episodeMustEnd: true
            )
        } else {
            switch ActionEvaluator.evaluate(policyText: text, format: config.callFormat) {
            case let .invalid(kind, observation, tool):
                response = ToolResponse(
                    observation: observation, wasExecuted: false, call: nil, tool: tool, error: kind, fault: nil,
                    episodeMustEnd: false
                )
            case let .valid(call):
                response = execute(call, attempt: attempt, text: text)
            }
        }
        let final = ToolResponse(
            observation: Episode.capped(response.observation, limit: config.limits.maxObservationCharacters), wasExecuted: response.wasExecuted, call: response.call,
            tool: response.tool, error: response.error, fault: response.fault, episodeMustEnd: response.episodeMustEnd
        )
        responses.append(final)
        if let error = final.error { errors.append(error) }
        return final
    }

    private func execute(_ call: ToolCall, attempt: Int, text: String) -> ToolResponse {
        // The fault draw depends on the seed, the attempt's position, the call's text and the
        // fault stream only, so it is reproducible, and identical across forks that share a
        // stream (stream 0 keeps the draws the environment always made).
        var streamRoot = StableHash.combine(streamSeed, Stream.faults.rawValue)
        if faultStream != 0 { streamRoot = StableHash.combine(streamRoot, faultStream) }
        var faultGenerator = SeededGenerator(seed: StableHash.combine(streamRoot, StableHash.combine(UInt64(attempt), StableHash.of(text))))
        let executor = ToolExecutor(world: world, topK: config.search.topK, order: config.search.order)
        let draw = faultGenerator.unitInterval()
        let fault: ToolFault?
        let observation: String
        if draw < config.faults.failureProbability {
            fault = .failure
            observation = ToolExecutor.failureText(for: call.tool, generator: &faultGenerator)
        } else if draw < config.faults.failureProbability + config.faults.degradedProbability {
            fault = .degraded
            observation = executor.degradedResult(for: call, generator: &faultGenerator)
        } else {
            fault = nil
            observation = executor.execute(call, generator: &faultGenerator)
        }
        return ToolResponse(
            observation: observation, wasExecuted: true, call: call, tool: call.tool, error: nil, fault: fault,
            episodeMustEnd: false
        )
    }

    /// Tags removed, then cut to `limit` characters with a visible `...`: every observation,
    /// whichever episode or demonstration it comes from.
    static func capped(_ observation: String, limit: Int) -> String {
        let clean = ProtocolTag.removingTags(from: observation)
        guard clean.count > limit else { return clean }
        return String(clean.prefix(limit - 3)) + "..."
    }

    /// Scores the finished episode.
    ///
    /// `policyText` is everything after the prompt: the policy's text with its tags, and each
    /// observation between `<obs>` and `</obs>`. The format is checked as described on
    /// `TranscriptFormat` (well-formed tags, exactly one non-empty answer at the end followed
    /// only by an optional `<|end|>`, and `endReason == .answered`). The reward is
    /// `RewardFunction.total` of the terms; tool usage comes from the recorded responses, not
    /// from the text.
    ///
    /// Errors added here: `malformed_call` for a call left open or broken by a tag that the
    /// environment never answered; `over_length` at the token limit; `over_call_limit` at the
    /// call limit if `respond` had not recorded it; `no_answer` without a complete answer;
    /// `wrong_answer` for an answer that is not correct; `ignored_tool_failure` when the answer
    /// follows an observation that reported a failure (`ToolResponse.reportsFailure`).
    ///
    /// - Precondition: not already finished.
    public func finish(policyText: String, endReason: EndReason) -> RewardBreakdown {
        precondition(!isFinished, "finish called twice")
        isFinished = true
        let kinds = ToolName.allCases.filter(toolKindsUsed.contains)
        return RewardFunction.score(
            policyText: policyText, endReason: endReason, responses: responses, errors: &errors,
            evaluate: { answer in
                AnswerEvaluator.evaluate(answer: answer, gold: task.goldAnswer, kind: task.answerKind, tolerance: config.reward.numericTolerance)
            },
            distinctToolsUsed: kinds.count, executedToolCalls: executedToolCalls, toolKindsUsed: kinds, reward: config.reward
        )
    }

    /// The seed with the split folded in: the root of every stream of the episode.
    static func splitSeed(_ seed: UInt64, _ split: Split) -> UInt64 {
        StableHash.combine(seed, split.bit &+ 1)
    }

    /// Salts that separate the episode's random streams.
    enum Stream: UInt64 {
        case world = 1, task, faults, expert, family
    }

    /// The expert solver's phrasing stream.
    func expertGenerator() -> SeededGenerator {
        SeededGenerator(seed: StableHash.combine(streamSeed, Stream.expert.rawValue))
    }
}
