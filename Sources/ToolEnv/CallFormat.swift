import Foundation

/// How the policy writes a tool call between `<call>` and `</call>` (key `env.call_format`).
public enum CallFormat: String, Codable, CaseIterable, Sendable {
    /// `name(arguments)`: `calc(2*(3+4))`, `search(capital of Zelmar)`, `lookup(Zelmar,
    /// capital)`. A tool with several arguments takes them comma-separated in the order of its
    /// schema's `required` list. Short, so a byte-level policy pays few tokens per call.
    case compact
    /// `{"name": "convert", "arguments": {"value": 3, "from": "mi", "to": "km"}}`, as Hermes and
    /// Qwen write tool calls: typed arguments, checked against the tool's input schema.
    case json
}

/// A call read off the text between `<call>` and `</call>`, before its tool is known.
public struct ParsedCall: Equatable, Sendable {
    /// The tool name as written.
    public let name: String
    /// The arguments: the text inside the parentheses (compact), or the `arguments` object
    /// (json).
    public let arguments: Arguments

    public enum Arguments: Equatable, Sendable {
        case text(String)
        case object([String: JSONValue])
    }
}

extension CallFormat {
    /// The longest call content accepted, in characters: JSON spells out argument names and
    /// quotes, so it gets more room.
    public var maximumCallLength: Int { self == .compact ? ActionEvaluator.maximumCallLength : 1000 }

    /// Reads the name and arguments of a call's content (the text between the tags).
    /// - Returns: the call, or the `malformed_call` observation's detail.
    public func parse(_ callContent: String) -> Result<ParsedCall, CallSyntaxError> {
        guard callContent.count <= maximumCallLength else {
            return .failure(CallSyntaxError("call longer than \(maximumCallLength) characters"))
        }
        if ProtocolTag.containsTag(callContent) { return .failure(CallSyntaxError("tag inside a call")) }
        let content = callContent.trimmingCharacters(in: .whitespacesAndNewlines)
        switch self {
        case .compact: return CallFormat.parseCompact(content)
        case .json: return CallFormat.parseJSON(content)
        }
    }

    static func parseCompact(_ content: String) -> Result<ParsedCall, CallSyntaxError> {
        guard !content.isEmpty else { return .failure(CallSyntaxError("empty call, expected tool(arguments)")) }
        // The name: an ASCII letter, then letters, digits or underscores.
        var nameEnd = content.startIndex
        for character in content {
            guard character.isASCII, character.isLetter || character.isNumber || character == "_" else { break }
            if nameEnd == content.startIndex && !character.isLetter { break }
            nameEnd = content.index(after: nameEnd)
        }
        let name = String(content[..<nameEnd])
        guard !name.isEmpty else { return .failure(CallSyntaxError("expected tool(arguments)")) }
        let rest = content[nameEnd...].drop(while: { $0 == " " })
        guard rest.first == "(", rest.last == ")", rest.count >= 2 else {
            return .failure(CallSyntaxError("expected \(name)(arguments)"))
        }
        return .success(ParsedCall(name: name, arguments: .text(String(rest.dropFirst().dropLast()))))
    }

    static func parseJSON(_ content: String) -> Result<ParsedCall, CallSyntaxError> {
        guard !content.isEmpty else { return .failure(CallSyntaxError("empty call, expected {\"name\": …, \"arguments\": {…}}")) }
        guard let value = try? JSONValue.parse(content) else { return .failure(CallSyntaxError("not valid JSON")) }
        guard case let .object(members) = value else { return .failure(CallSyntaxError("expected a JSON object with name and arguments")) }
        guard let name = members["name"]?.stringValue, !name.isEmpty else {
            return .failure(CallSyntaxError("expected a non-empty string name"))
        }
        if let unexpected = members.keys.sorted().first(where: { $0 != "name" && $0 != "arguments" }) {
            return .failure(CallSyntaxError("unexpected key \(ActionEvaluator.clipped(unexpected)); a call has name and arguments"))
        }
        switch members["arguments"] {
        case nil: return .success(ParsedCall(name: name, arguments: .object([:])))
        case let .object(arguments)?: return .success(ParsedCall(name: name, arguments: .object(arguments)))
        default: return .failure(CallSyntaxError("arguments must be a JSON object"))
        }
    }

    /// The call content that invokes `tool` with `arguments`: `name(a, b)` with the values of the
    /// tool's compact argument names in order, or the JSON object with sorted keys.
    public func render(tool: ToolDescription, arguments: [String: JSONValue]) -> String {
        switch self {
        case .json:
            return JSONValue.object(["name": .string(tool.name), "arguments": .object(arguments)]).compactText
        case .compact:
            let values = tool.compactArgumentNames.map { name -> String in
                switch arguments[name] {
                case let .string(text)?: return text
                case let value?: return value.compactText
                case nil: return ""
                }
            }
            return tool.name + "(" + values.joined(separator: ", ") + ")"
        }
    }

    /// The arguments object of a compact call to `tool`: the text split at commas into the
    /// tool's compact argument names (the last takes any further commas), each converted to its
    /// schema type (a number, an integer, true or false; a string as written, trimmed).
    /// - Returns: the object, or the `bad_arguments` detail.
    public static func compactArguments(_ text: String, for tool: ToolDescription) -> Result<[String: JSONValue], CallSyntaxError> {
        let names = tool.compactArgumentNames
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if names.isEmpty {
            return trimmed.isEmpty ? .success([:]) : .failure(CallSyntaxError("\(tool.name) takes no arguments in compact form; write \(tool.name)()"))
        }
        var pieces = trimmed.split(separator: ",", maxSplits: names.count - 1, omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        if names.count == 1 { pieces = [trimmed] }
        guard pieces.count == names.count else {
            return .failure(CallSyntaxError("expected \(tool.name)(\(names.joined(separator: ", ")))"))
        }
        var arguments: [String: JSONValue] = [:]
        for (name, piece) in zip(names, pieces) {
            switch tool.argumentType(name) {
            case "number", "integer":
                guard let number = Double(piece), number.isFinite else {
                    return .failure(CallSyntaxError("\(name) must be a number, got \(ActionEvaluator.clipped(piece))"))
                }
                arguments[name] = .number(number)
            case "boolean":
                guard piece == "true" || piece == "false" else {
                    return .failure(CallSyntaxError("\(name) must be true or false, got \(ActionEvaluator.clipped(piece))"))
                }
                arguments[name] = .bool(piece == "true")
            default:
                arguments[name] = .string(piece)
            }
        }
        return .success(arguments)
    }
}

/// Why a call's text could not be read, in words for the error observation.
public struct CallSyntaxError: Error, Equatable, CustomStringConvertible {
    public let detail: String
    public init(_ detail: String) { self.detail = detail }
    public var description: String { detail }
}
