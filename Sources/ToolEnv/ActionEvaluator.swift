import Foundation

/// The fixed taxonomy of errors an episode can record (TTPA's error-oriented scoring).
public enum EpisodeErrorKind: String, Codable, CaseIterable, Sendable {
    /// A call that does not parse: no opening tag, no `name(arguments)` shape, a tag inside the
    /// call, or a call left open at the end of the episode.
    case malformedCall = "malformed_call"
    /// A well-formed call to a tool that does not exist.
    case unknownTool = "unknown_tool"
    /// A known tool with arguments it cannot use (an expression that does not evaluate, an
    /// empty query, an unknown attribute, ...).
    case badArguments = "bad_arguments"
    /// The policy answered right after an observation that reported a failure (an injected
    /// failure or degraded result, or an error observation) instead of retrying.
    case ignoredToolFailure = "ignored_tool_failure"
    /// The episode ended without a complete `<answer>…</answer>`.
    case noAnswer = "no_answer"
    /// An answer was given and it is not correct.
    case wrongAnswer = "wrong_answer"
    /// A call was attempted after the per-episode call limit.
    case overCallLimit = "over_call_limit"
    /// The episode hit the token limit.
    case overLength = "over_length"
}

/// A call that passed the action evaluator.
public enum ToolCall: Equatable, Sendable {
    /// `calc(expression)`: the expression is known to evaluate.
    case calc(expression: String)
    /// `search(query)`.
    case search(query: String)
    /// `lookup(entity, attribute)`; `attribute` is one of the known attribute phrases.
    case lookup(entity: String, attribute: String)

    /// The tool this call runs.
    public var tool: ToolName {
        switch self {
        case .calc: return .calc
        case .search: return .search
        case .lookup: return .lookup
        }
    }
}

/// The action evaluator's verdict on one call.
public enum ActionEvaluation: Equatable, Sendable {
    /// Well-formed, a known tool, valid arguments.
    case valid(ToolCall)
    /// Rejected, with its error label, the error observation to show the policy, and the tool
    /// named in the call when it is a known one.
    case invalid(EpisodeErrorKind, observation: String, tool: ToolName?)
}

/// The per-action evaluator (LAM Simulator): checks a call's syntax, tool name and arguments
/// before anything runs, and labels every rejection from the error taxonomy.
///
/// Call syntax, inside `<call>` … `</call>`: optional whitespace, a tool name (an ASCII letter
/// followed by letters, digits or `_`), optional spaces, `(`, the arguments, and `)` as the last
/// non-space character. The arguments are everything between the first `(` and that last `)`.
///
/// - `calc(expression)`: the expression must evaluate (`Calculator`); any calculator error is
///   `bad_arguments`.
/// - `search(query)`: 1 to 100 characters with at least one searchable word.
/// - `lookup(entity, attribute)`: exactly one comma; a non-empty entity of at most 40
///   characters; an attribute among `capital`, `leader`, `area`, `main export`, `population`,
///   `mayor`, `founding year`, `birth year`, `home city`, `profession`, `founder`,
///   `headquarters`, `employee count`, `main product`.
///
/// Under `env.call_format: json` the same calls are `{"name": "calc", "arguments":
/// {"expression": "2*3"}}` (`CallFormat`), checked against each tool's input schema
/// (`ToolName.toolDescription`) and then by the rules above.
///
/// Error observations start with `error: <label>:` so the policy can learn to recognise and
/// recover from them, and never contain protocol tags.
public enum ActionEvaluator {
    /// The longest compact call content accepted, in characters.
    public static let maximumCallLength = 300
    /// The longest search query accepted, in characters.
    public static let maximumQueryLength = 100
    /// The longest lookup entity accepted, in characters.
    public static let maximumEntityLength = 40

    /// Evaluates the last `<call>` … `</call>` in `policyText` (what the policy wrote since the
    /// last observation), written in `format`. Text after the last `</call>` is ignored.
    public static func evaluate(policyText: String, format: CallFormat = .compact) -> ActionEvaluation {
        switch callContent(in: policyText) {
        case let .success(content): return evaluate(callContent: content, format: format)
        case let .failure(problem): return malformed(problem.detail)
        }
    }

    /// The text between the last `<call>` and the last `</call>` after it, found as tags (not
    /// substrings), or why there is none.
    public static func callContent(in policyText: String) -> Result<String, CallSyntaxError> {
        // The last </call>, then the last <call> before it, found as tags (not substrings).
        var lastClose: Int?
        var openBeforeClose: Int?
        var lastOpen: Int?
        let bytes = Array(policyText.utf8)
        for index in bytes.indices where bytes[index] == UInt8(ascii: "<") {
            switch ProtocolTag.tag(in: bytes, at: index) {
            case .callOpen?: lastOpen = index
            case .callClose?:
                lastClose = index
                openBeforeClose = lastOpen
            default: break
            }
        }
        guard let closing = lastClose else { return .failure(CallSyntaxError("no closing call tag")) }
        guard let opening = openBeforeClose else { return .failure(CallSyntaxError("no opening call tag")) }
        let contentStart = opening + ProtocolTag.callOpen.rawValue.utf8.count
        return .success(String(decoding: bytes[contentStart..<closing], as: UTF8.self))
    }

    /// Evaluates the text between `<call>` and `</call>`, written in `format`. A JSON call to a
    /// built-in tool is checked against the tool's input schema (`ToolName.toolDescription`),
    /// then by the same rules as its compact form.
    public static func evaluate(callContent: String, format: CallFormat) -> ActionEvaluation {
        guard format == .json else { return evaluate(callContent: callContent) }
        let call: ParsedCall
        switch format.parse(callContent) {
        case let .success(parsed): call = parsed
        case let .failure(problem): return malformed(problem.detail)
        }
        guard let tool = ToolName(rawValue: call.name) else { return unknownTool(call.name, known: ToolName.allCases.map(\.rawValue)) }
        guard case let .object(arguments) = call.arguments else { preconditionFailure("a JSON call's arguments are an object") }
        if let problem = JSONSchemaValidator.violation(of: .object(arguments), against: tool.toolDescription.inputSchema) {
            return badArguments(tool, problem)
        }
        switch tool {
        case .calc: return evaluateCalc(arguments["expression"]?.stringValue ?? "")
        case .search: return evaluateSearch(arguments["query"]?.stringValue ?? "")
        case .lookup: return evaluateLookup(entity: arguments["entity"]?.stringValue ?? "", attributeText: arguments["attribute"]?.stringValue ?? "")
        }
    }

    /// Evaluates the text between `<call>` and `</call>`, in the compact format.
    public static func evaluate(callContent: String) -> ActionEvaluation {
        let call: ParsedCall
        switch CallFormat.compact.parse(callContent) {
        case let .success(parsed): call = parsed
        case let .failure(problem): return malformed(problem.detail)
        }
        guard case let .text(arguments) = call.arguments else { preconditionFailure("a compact call's arguments are text") }
        guard let tool = ToolName(rawValue: call.name) else { return unknownTool(call.name, known: ToolName.allCases.map(\.rawValue)) }
        switch tool {
        case .calc: return evaluateCalc(arguments)
        case .search: return evaluateSearch(arguments)
        case .lookup: return evaluateLookup(arguments)
        }
    }

    static func evaluateCalc(_ arguments: String) -> ActionEvaluation {
        do {
            _ = try Calculator.evaluate(arguments)
            return .valid(.calc(expression: arguments.trimmingCharacters(in: .whitespaces)))
        } catch let error as CalculatorError {
            return badArguments(.calc, error.message)
        } catch {
            preconditionFailure("Calculator.evaluate throws only CalculatorError, got \(error)")
        }
    }

    static func evaluateSearch(_ arguments: String) -> ActionEvaluation {
        let query = arguments.trimmingCharacters(in: .whitespaces)
        guard !query.isEmpty else { return badArguments(.search, "empty query") }
        guard query.count <= maximumQueryLength else {
            return badArguments(.search, "query longer than \(maximumQueryLength) characters")
        }
        guard !SearchIndex.terms(of: query).isEmpty else {
            return badArguments(.search, "query has no searchable words")
        }
        return .valid(.search(query: query))
    }

    static func evaluateLookup(_ arguments: String) -> ActionEvaluation {
        let parts = arguments.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return badArguments(.lookup, "expected lookup(entity, attribute)") }
        return evaluateLookup(entity: parts[0].trimmingCharacters(in: .whitespaces), attributeText: parts[1].trimmingCharacters(in: .whitespaces))
    }

    static func evaluateLookup(entity: String, attributeText: String) -> ActionEvaluation {
        guard !entity.isEmpty, entity.count <= maximumEntityLength else {
            return badArguments(.lookup, "entity must be 1 to \(maximumEntityLength) characters")
        }
        guard let attribute = Attribute(phrase: attributeText) else {
            return badArguments(.lookup, "unknown attribute \(clipped(attributeText))")
        }
        return .valid(.lookup(entity: entity, attribute: attribute.phrase))
    }

    /// `unknown_tool`, naming the tools there are.
    static func unknownTool(_ name: String, known: [String]) -> ActionEvaluation {
        .invalid(.unknownTool, observation: "error: unknown_tool: \(clipped(name)); tools are \(known.joined(separator: ", "))", tool: nil)
    }

    static func malformed(_ detail: String) -> ActionEvaluation {
        .invalid(.malformedCall, observation: "error: malformed_call: \(detail)", tool: nil)
    }

    static func badArguments(_ tool: ToolName, _ detail: String) -> ActionEvaluation {
        .invalid(.badArguments, observation: "error: bad_arguments: \(tool.rawValue): \(detail)", tool: tool)
    }

    /// Echoed user text, kept short so an error message always fits the observation cap.
    static func clipped(_ text: String) -> String {
        text.count <= 24 ? text : String(text.prefix(24)) + "..."
    }
}
