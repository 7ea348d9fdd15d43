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
/// Error observations start with `error: <label>:` so the policy can learn to recognise and
/// recover from them, and never contain protocol tags.
public enum ActionEvaluator {
    /// The longest call content accepted, in characters.
    public static let maximumCallLength = 300
    /// The longest search query accepted, in characters.
    public static let maximumQueryLength = 100
    /// The longest lookup entity accepted, in characters.
    public static let maximumEntityLength = 40

    /// Evaluates the last `<call>` … `</call>` in `policyText` (what the policy wrote since the
    /// last observation). Text after the last `</call>` is ignored.
    public static func evaluate(policyText: String) -> ActionEvaluation {
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
        guard let closing = lastClose else { return malformed("no closing call tag") }
        guard let opening = openBeforeClose else { return malformed("no opening call tag") }
        let contentStart = opening + ProtocolTag.callOpen.rawValue.utf8.count
        return evaluate(callContent: String(decoding: bytes[contentStart..<closing], as: UTF8.self))
    }

    /// Evaluates the text between `<call>` and `</call>`.
    public static func evaluate(callContent: String) -> ActionEvaluation {
        guard callContent.count <= maximumCallLength else {
            return malformed("call longer than \(maximumCallLength) characters")
        }
        if ProtocolTag.containsTag(callContent) {
            return malformed("tag inside a call")
        }
        let content = callContent.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !content.isEmpty else { return malformed("empty call, expected tool(arguments)") }

        // The name: an ASCII letter, then letters, digits or underscores.
        var nameEnd = content.startIndex
        for character in content {
            guard character.isASCII, character.isLetter || character.isNumber || character == "_" else { break }
            if nameEnd == content.startIndex && !character.isLetter { break }
            nameEnd = content.index(after: nameEnd)
        }
        let name = String(content[..<nameEnd])
        guard !name.isEmpty else { return malformed("expected tool(arguments)") }
        let rest = content[nameEnd...].drop(while: { $0 == " " })
        guard rest.first == "(", rest.last == ")", rest.count >= 2 else {
            return malformed("expected \(name)(arguments)")
        }
        let arguments = String(rest.dropFirst().dropLast())

        guard let tool = ToolName(rawValue: name) else {
            let known = ToolName.allCases.map(\.rawValue).joined(separator: ", ")
            return .invalid(.unknownTool, observation: "error: unknown_tool: \(clipped(name)); tools are \(known)", tool: nil)
        }
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
        let entity = parts[0].trimmingCharacters(in: .whitespaces)
        let attributeText = parts[1].trimmingCharacters(in: .whitespaces)
        guard !entity.isEmpty, entity.count <= maximumEntityLength else {
            return badArguments(.lookup, "entity must be 1 to \(maximumEntityLength) characters")
        }
        guard let attribute = Attribute(phrase: attributeText) else {
            return badArguments(.lookup, "unknown attribute \(clipped(attributeText))")
        }
        return .valid(.lookup(entity: entity, attribute: attribute.phrase))
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
