import Foundation

/// One expert trajectory of a user's demonstration file, rendered into the episode protocol.
public struct UserDemonstration: Equatable, Sendable {
    /// The question (the user message).
    public let prompt: String
    /// The policy's text (thinking, calls in the run's call format, the answer) and the tool
    /// results, as `ExpertSolver` writes them: the cold start trains on the policy segments only.
    public let segments: [Segment]
    /// The line of the file it came from (1-based).
    public let line: Int

    /// The transcript as `Episode.finish` reads it.
    public var transcript: String { Demonstration.transcript(of: segments) }
}

/// Reads demonstration files: JSONL, one trajectory per line, in OpenAI's chat format:
///
///     {"messages": [
///       {"role": "user", "content": "How many km is 3 miles?"},
///       {"role": "assistant", "content": "Convert it.", "tool_calls": [{"id": "c1", "type": "function",
///         "function": {"name": "convert", "arguments": "{\"value\": 3, \"from\": \"mi\", \"to\": \"km\"}"}}]},
///       {"role": "tool", "tool_call_id": "c1", "content": "4.828032"},
///       {"role": "assistant", "content": "4.828"}]}
///
/// The first message is the one user message; then assistant messages, each with optional
/// thinking `content` and optional `tool_calls`, each call followed by its `tool` message (by
/// `tool_call_id` when both give one, else in order); the last message is an assistant message
/// without calls whose content is the answer. A call's `arguments` may be a JSON string (OpenAI)
/// or an object. The rendering writes each call in the run's call format, checks it against
/// the tool's input schema as the environment will, caps each tool result as the environment
/// caps observations, and ends with `<answer>…</answer><|end|>`.
public enum DemonstrationFile {
    /// Reads and renders the file at `path`.
    /// - Parameter tools: the run's tools (the provider's and the built-in ones a call may name).
    public static func load(path: String, tools: [ToolDescription], config: EnvironmentConfig) throws -> [UserDemonstration] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw UserFileError(file: path, line: nil, reason: "cannot read the file (\(error.localizedDescription))")
        }
        return try parse(data, file: path, tools: tools, config: config)
    }

    /// Reads and renders a file's contents; `file` names it in errors.
    public static func parse(_ data: Data, file: String, tools: [ToolDescription], config: EnvironmentConfig) throws -> [UserDemonstration] {
        var demonstrations: [UserDemonstration] = []
        let renderer = Renderer(tools: tools, config: config)
        for (number, object) in try JSONLines.objects(in: data, file: file) {
            do { demonstrations.append(try renderer.render(object, line: number)) } catch let problem as LineProblem {
                throw UserFileError(file: file, line: number, reason: problem.reason)
            }
        }
        guard !demonstrations.isEmpty else { throw UserFileError(file: file, line: nil, reason: "holds no demonstrations") }
        return demonstrations
    }

    /// Renders one line's messages.
    struct Renderer {
        let tools: [ToolDescription]
        let config: EnvironmentConfig

        func render(_ object: [String: JSONValue], line: Int) throws -> UserDemonstration {
            guard case let .array(messages)? = object["messages"], !messages.isEmpty else {
                throw LineProblem("expected {\"messages\": [...]} with at least a user and an assistant message")
            }
            let parsed = try messages.enumerated().map { try Message($0.element, index: $0.offset) }
            guard parsed[0].role == "user", let prompt = parsed[0].content, !prompt.allSatisfy(\.isWhitespace) else {
                throw LineProblem("messages[0] must be the user message with the question (the protocol has no system turn)")
            }
            var segments: [Segment] = []
            var pending = ""  // policy text since the last tool result
            var index = 1
            while index < parsed.count {
                let message = parsed[index]
                guard message.role == "assistant" else {
                    throw LineProblem("messages[\(index)] has role \(ActionEvaluator.clipped(message.role)); expected assistant (tool messages follow the call they answer)")
                }
                let text = try policyText(message.content, at: index)
                if message.toolCalls.isEmpty {
                    guard index == parsed.count - 1 else {
                        throw LineProblem("messages[\(index)] is an assistant message without tool calls before the end; only the last one may be (its content is the answer)")
                    }
                    guard let answer = message.content?.trimmingCharacters(in: .whitespacesAndNewlines), !answer.isEmpty else {
                        throw LineProblem("messages[\(index)] is the final assistant message and must have the answer as content")
                    }
                    pending += ProtocolTag.answerOpen.rawValue + answer + ProtocolTag.answerClose.rawValue + ProtocolTag.end.rawValue
                    segments.append(Segment(role: .policy, text: pending))
                    return try checked(UserDemonstration(prompt: prompt, segments: segments, line: line))
                }
                pending += text
                for (callIndex, call) in message.toolCalls.enumerated() {
                    let resultIndex = index + 1 + callIndex
                    guard resultIndex < parsed.count, parsed[resultIndex].role == "tool" else {
                        throw LineProblem("messages[\(index)].tool_calls[\(callIndex)] has no tool message answering it")
                    }
                    let result = parsed[resultIndex]
                    if let expected = call.id, let actual = result.toolCallID, expected != actual {
                        throw LineProblem("messages[\(resultIndex)] answers tool call \(ActionEvaluator.clipped(actual)), expected \(ActionEvaluator.clipped(expected)) (results come in the order of the calls)")
                    }
                    pending += ProtocolTag.callOpen.rawValue + (try callContent(call, at: "messages[\(index)].tool_calls[\(callIndex)]")) + ProtocolTag.callClose.rawValue
                    segments.append(Segment(role: .policy, text: pending))
                    segments.append(Segment(role: .observation, text: Episode.capped(result.content ?? "", limit: config.limits.maxObservationCharacters)))
                    pending = ""
                }
                index += 1 + message.toolCalls.count
            }
            throw LineProblem("the last message must be an assistant message whose content is the answer")
        }

        /// Thinking text, which must not spell a protocol tag (it would become a special token).
        func policyText(_ content: String?, at index: Int) throws -> String {
            guard let content else { return "" }
            if let tag = ProtocolTag.allCases.first(where: { content.contains($0.rawValue) }) {
                throw LineProblem("messages[\(index)].content contains the protocol tag \(tag.rawValue)")
            }
            return content
        }

        /// The call in the run's format, after the checks the environment makes: a known tool,
        /// arguments that satisfy its schema, and a text that reads back as the same call.
        func callContent(_ call: Message.Call, at path: String) throws -> String {
            guard let tool = tools.first(where: { $0.name == call.name }) else {
                throw LineProblem("\(path) calls \(ActionEvaluator.clipped(call.name)); the run's tools are \(tools.map(\.name).joined(separator: ", "))")
            }
            if let problem = JSONSchemaValidator.violation(of: .object(call.arguments), against: tool.inputSchema) {
                throw LineProblem("\(path) (\(tool.name)): \(problem)")
            }
            let content = config.callFormat.render(tool: tool, arguments: call.arguments)
            let readBack: [String: JSONValue]?
            switch config.callFormat.parse(content).map(\.arguments) {
            case let .success(.object(object)): readBack = object
            case let .success(.text(text)): readBack = try? CallFormat.compactArguments(text, for: tool).get()
            case .failure: readBack = nil
            }
            guard readBack == call.arguments else {
                throw LineProblem("\(path) (\(tool.name)) cannot be written as a \(config.callFormat.rawValue) call that reads back the same (\(ActionEvaluator.clipped(content))); use env.call_format \"json\" or shorter arguments without commas")
            }
            return content
        }

        /// Refuses a rendering the environment would not accept as well-formed.
        func checked(_ demonstration: UserDemonstration) throws -> UserDemonstration {
            let calls = demonstration.segments.filter { $0.role == .observation }.count
            guard calls <= config.limits.maxToolCalls else {
                throw LineProblem("makes \(calls) tool calls, more than env.limits.max_tool_calls (\(config.limits.maxToolCalls))")
            }
            if let violation = TranscriptFormat(transcript: demonstration.transcript, answeredCalls: calls).violation {
                throw LineProblem("the rendered trajectory breaks the protocol: \(violation)")
            }
            return demonstration
        }
    }

    /// One chat message, checked for shape.
    struct Message {
        struct Call {
            let id: String?
            let name: String
            let arguments: [String: JSONValue]
        }

        let role: String
        let content: String?
        let toolCalls: [Call]
        let toolCallID: String?

        init(_ value: JSONValue, index: Int) throws {
            let path = "messages[\(index)]"
            guard case let .object(members) = value, let role = members["role"]?.stringValue else {
                throw LineProblem("\(path) must be a message {\"role\": …, \"content\": …}")
            }
            guard ["user", "assistant", "tool"].contains(role) else {
                throw LineProblem("\(path) has role \(ActionEvaluator.clipped(role)); expected user, assistant or tool (the protocol has no system turn)")
            }
            self.role = role
            content = try Message.text(members["content"], path: "\(path).content")
            toolCallID = members["tool_call_id"]?.stringValue
            switch members["tool_calls"] {
            case nil, .null?: toolCalls = []
            case let .array(calls)? where role == "assistant":
                toolCalls = try calls.enumerated().map { try Message.call($0.element, path: "\(path).tool_calls[\($0.offset)]") }
            default: throw LineProblem("\(path).tool_calls must be a list, on an assistant message")
            }
        }

        /// A string, null, or a list of content parts whose `text` fields are joined.
        static func text(_ value: JSONValue?, path: String) throws -> String? {
            switch value {
            case nil, .null?: return nil
            case let .string(text)?: return text
            case let .array(parts)?:
                return try parts.map { part -> String in
                    guard let text = part.objectValue?["text"]?.stringValue else { throw LineProblem("\(path) parts must be {\"type\": \"text\", \"text\": …}") }
                    return text
                }.joined()
            case let other?: throw LineProblem("\(path) must be a string, got \(other.typeName)")
            }
        }

        static func call(_ value: JSONValue, path: String) throws -> Call {
            guard let function = value.objectValue?["function"]?.objectValue, let name = function["name"]?.stringValue else {
                throw LineProblem("\(path) must be {\"type\": \"function\", \"function\": {\"name\": …, \"arguments\": …}}")
            }
            let arguments: [String: JSONValue]
            switch function["arguments"] {
            case nil, .null?: arguments = [:]
            case let .object(object)?: arguments = object
            case let .string(text)?:
                guard let object = (try? JSONValue.parse(text))?.objectValue else {
                    throw LineProblem("\(path).function.arguments must be a JSON object (or its text)")
                }
                arguments = object
            case let other?: throw LineProblem("\(path).function.arguments must be a JSON object, got \(other.typeName)")
            }
            return Call(id: value.objectValue?["id"]?.stringValue, name: name, arguments: arguments)
        }
    }
}
