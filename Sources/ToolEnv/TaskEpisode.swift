import Foundation

/// Tools that live outside the environment (MCP servers): what a `TaskEpisode` calls besides
/// the built-in `calc`. Calls may come from several threads at once.
public protocol ToolProvider: AnyObject, Sendable {
    /// Every tool, as listed when the provider started.
    var tools: [ToolDescription] { get }
    /// Runs `tool` with arguments that satisfy its input schema; never throws: every failure is
    /// an outcome the policy sees.
    func call(tool: String, arguments: [String: JSONValue]) -> ToolOutcome
}

/// What a provided tool returned.
public struct ToolOutcome: Equatable, Sendable {
    /// The observation text: the result, or what went wrong.
    public let text: String
    /// Set when the call failed.
    public let failure: ToolFailure?

    public init(text: String, failure: ToolFailure? = nil) {
        self.text = text
        self.failure = failure
    }
}

/// How a provided tool's call failed. The episode shows the policy an error observation and
/// records the call as a failed execution (`ToolFault.failure`), as for an injected fault, so an
/// answer right after it is `ignored_tool_failure`.
public enum ToolFailure: String, Codable, CaseIterable, Sendable {
    /// The tool answered with an error result (`isError`).
    case errorResult = "error_result"
    /// No answer within the server's `timeout_seconds`.
    case timeout
    /// The server died during the call (it is restarted for the next one).
    case serverCrash = "server_crash"
    /// The answer was not a tool result the trainer can read (no text content).
    case malformedResult = "malformed_result"
}

/// An episode of a user's task: the question and accepted answers of a task file, the built-in
/// `calc` and the provider's tools (MCP servers).
///
/// It follows `Episode`'s protocol: `respond` answers each call (the call limit, the action
/// evaluator, then the tool), `finish` checks the format and scores the answer with
/// `AnswerEvaluator` against each accepted answer. Calls are written in `config.callFormat`; a
/// provided tool's arguments are checked against its input schema before it runs, and a call
/// that breaks it is `bad_arguments`. No faults are injected: real tools fail on their own.
public final class TaskEpisode {
    /// The task.
    public let task: UserTask
    /// The configuration (limits, reward, call format).
    public let config: EnvironmentConfig
    /// Every response given so far, in order.
    public private(set) var responses: [ToolResponse] = []
    /// Every error recorded so far, in order (`finish` adds answer-level errors).
    public private(set) var errors: [EpisodeErrorKind] = []
    /// Whether `finish` has been called.
    public private(set) var isFinished = false
    /// The names of the tools executed so far, one per executed call.
    public private(set) var executedToolNames: [String] = []
    /// How each failed provided-tool call failed, in order.
    public private(set) var toolFailures: [ToolFailure] = []

    let provider: ToolProvider?

    /// - Precondition: `config.validate()` does not throw.
    public init(task: UserTask, config: EnvironmentConfig, provider: ToolProvider?) {
        precondition((try? config.validate()) != nil, "invalid EnvironmentConfig; call validate() first")
        self.task = task
        self.config = config
        self.provider = provider
    }

    private init(copying other: TaskEpisode) {
        task = other.task
        config = other.config
        provider = other.provider
        responses = other.responses
        errors = other.errors
        isFinished = other.isFinished
        executedToolNames = other.executedToolNames
        toolFailures = other.toolFailures
    }

    /// The question.
    public var prompt: String { task.prompt }

    /// Whether the episode's tools include a provider's (whose calls may be slow).
    public var hasToolProvider: Bool { provider != nil }

    /// Calls that were executed so far.
    public var executedToolCalls: Int { executedToolNames.count }

    /// A copy that continues independently from this point (ARPO's fork).
    public func fork() -> TaskEpisode { TaskEpisode(copying: self) }

    /// The tools a call may name: the provider's, and `calc` unless the provider has its own.
    public var toolNames: [String] {
        let provided = provider?.tools.map(\.name) ?? []
        return (provided.contains(ToolName.calc.rawValue) ? [] : [ToolName.calc.rawValue]) + provided
    }

    /// Answers the call the policy just closed (see `Episode.respond(toPolicyText:)`).
    ///
    /// - Precondition: the episode is not finished.
    public func respond(toPolicyText text: String) -> ToolResponse {
        precondition(!isFinished, "respond(toPolicyText:) after finish")
        var response: ToolResponse
        if responses.count >= config.limits.maxToolCalls {
            response = ToolResponse(
                observation: "error: over_call_limit: \(config.limits.maxToolCalls) calls used, the episode ends",
                wasExecuted: false, call: nil, tool: nil, error: .overCallLimit, fault: nil, episodeMustEnd: true)
        } else {
            response = answer(policyText: text)
        }
        response = ToolResponse(
            observation: Episode.capped(response.observation, limit: config.limits.maxObservationCharacters),
            wasExecuted: response.wasExecuted, call: response.call, tool: response.tool, error: response.error,
            fault: response.fault, episodeMustEnd: response.episodeMustEnd)
        responses.append(response)
        if let error = response.error { errors.append(error) }
        return response
    }

    private func answer(policyText text: String) -> ToolResponse {
        func rejected(_ kind: EpisodeErrorKind, _ observation: String) -> ToolResponse {
            ToolResponse(observation: observation, wasExecuted: false, call: nil, tool: nil, error: kind, fault: nil, episodeMustEnd: false)
        }
        let content: String
        switch ActionEvaluator.callContent(in: text) {
        case let .success(found): content = found
        case let .failure(problem): return rejected(.malformedCall, "error: malformed_call: \(problem.detail)")
        }
        let call: ParsedCall
        switch config.callFormat.parse(content) {
        case let .success(parsed): call = parsed
        case let .failure(problem): return rejected(.malformedCall, "error: malformed_call: \(problem.detail)")
        }
        guard let provider, let tool = provider.tools.first(where: { $0.name == call.name }) else {
            guard call.name == ToolName.calc.rawValue else {
                return rejected(.unknownTool, "error: unknown_tool: \(ActionEvaluator.clipped(call.name)); tools are \(toolNames.joined(separator: ", "))")
            }
            return calculate(content)
        }
        var arguments: [String: JSONValue]
        switch call.arguments {
        case let .object(object): arguments = object
        case let .text(argumentText):
            switch CallFormat.compactArguments(argumentText, for: tool) {
            case let .success(object): arguments = object
            case let .failure(problem): return rejected(.badArguments, "error: bad_arguments: \(tool.name): \(problem.detail)")
            }
        }
        if let problem = JSONSchemaValidator.violation(of: .object(arguments), against: tool.inputSchema) {
            return rejected(.badArguments, "error: bad_arguments: \(tool.name): \(problem)")
        }
        let outcome = provider.call(tool: tool.name, arguments: arguments)
        executedToolNames.append(tool.name)
        if let failure = outcome.failure { toolFailures.append(failure) }
        return ToolResponse(
            observation: outcome.text, wasExecuted: true, call: nil, tool: nil, error: nil,
            fault: outcome.failure == nil ? nil : .failure, episodeMustEnd: false)
    }

    /// The built-in `calc`, by the action evaluator's rules.
    private func calculate(_ content: String) -> ToolResponse {
        switch ActionEvaluator.evaluate(callContent: content, format: config.callFormat) {
        case let .invalid(kind, observation, tool):
            return ToolResponse(observation: observation, wasExecuted: false, call: nil, tool: tool, error: kind, fault: nil, episodeMustEnd: false)
        case let .valid(call):
            guard case let .calc(expression) = call, let value = try? Calculator.evaluate(expression) else {
                preconditionFailure("a valid calc call evaluates")
            }
            executedToolNames.append(ToolName.calc.rawValue)
            return ToolResponse(observation: value.description, wasExecuted: true, call: call, tool: .calc, error: nil, fault: nil, episodeMustEnd: false)
        }
    }

    /// Scores the finished episode as `Episode.finish` does, with the answer scored against
    /// every accepted answer, and the multi-tool bonus earned by two different tool names.
    ///
    /// - Precondition: not already finished.
    public func finish(policyText: String, endReason: EndReason) -> RewardBreakdown {
        precondition(!isFinished, "finish called twice")
        isFinished = true
        return RewardFunction.score(
            policyText: policyText, endReason: endReason, responses: responses, errors: &errors,
            evaluate: { answer in task.evaluate(answer, tolerance: config.reward.numericTolerance) },
            distinctToolsUsed: Set(executedToolNames).count, executedToolCalls: executedToolCalls,
            toolKindsUsed: executedToolNames.contains(ToolName.calc.rawValue) ? [.calc] : [], reward: config.reward
        )
    }
}
