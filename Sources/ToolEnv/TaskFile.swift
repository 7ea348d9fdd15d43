import Foundation

/// One task of a user's task file: a question and the answers that count as right.
public struct UserTask: Equatable, Sendable {
    /// The task's `id`, or `line N` when the line gives none.
    public let id: String
    /// The family for per-family metrics: `family`, else `data_source`, else `tasks`.
    public let family: String
    /// The question (the episode's prompt).
    public let prompt: String
    /// The accepted answers, in the file's order; the first is the one reported as gold. Each
    /// that reads as a plain number (`42`, `-3.5`, `1,234`) is compared numerically within
    /// `reward.numeric_tolerance`, the others as text (exact match after normalisation, or F1).
    public let answers: [String]
    /// The line of the file it came from (1-based).
    public let line: Int

    public init(id: String, family: String, prompt: String, answers: [String], line: Int) {
        self.id = id
        self.family = family
        self.prompt = prompt
        self.answers = answers
        self.line = line
    }

    /// The family label of tasks that give none.
    public static let defaultFamily = "tasks"

    /// The best evaluation of `answer` over the accepted answers: correct when any accepts it,
    /// with the highest token F1.
    public func evaluate(_ answer: String, tolerance: Double) -> AnswerEvaluation {
        let evaluations = answers.map { gold in
            AnswerEvaluator.evaluate(answer: answer, gold: gold, kind: UserTask.kind(of: gold), tolerance: tolerance)
        }
        return evaluations.first(where: \.isCorrect) ?? evaluations.max { $0.tokenF1 < $1.tokenF1 }!
    }

    /// `.number` for a gold answer that reads as a plain number, else `.text`.
    static func kind(of gold: String) -> AnswerKind {
        AnswerEvaluator.parseNumber(gold) != nil ? .number : .text
    }
}

/// A problem with a line of a user's file (task file or demonstrations), naming the file and the
/// line: `tasks.jsonl line 7: answer must be a string, a number or a list of them, got object`.
public struct UserFileError: Error, Equatable, CustomStringConvertible, LocalizedError {
    public let file: String
    /// 1-based; nil for a problem with the whole file.
    public let line: Int?
    public let reason: String

    public init(file: String, line: Int?, reason: String) {
        self.file = file
        self.line = line
        self.reason = reason
    }

    public var description: String { "\(file)\(line.map { " line \($0)" } ?? ""): \(reason)" }
    public var errorDescription: String? { description }
}

/// Reads task files: JSONL, one task per line, in either of two shapes.
///
/// - Ours: `{"prompt": "What is 3 miles in km?", "answer": 4.828, "family": "units", "id": "u1"}`.
///   `answer` is a string, a number, or a list of accepted answers; `family` and `id` are
///   optional.
/// - verl's and TRL's: `{"prompt": [{"role": "user", "content": "…"}], "reward_model":
///   {"ground_truth": "…"}, "data_source": "units"}`, where `data_source` is the family.
///
/// Other keys (verl's `ability`, `extra_info`) are ignored. Blank lines are skipped. Every
/// problem is a `UserFileError` naming the file and the line, raised before any task is used.
public enum TaskFile {
    /// Reads and checks the file at `path`.
    public static func load(path: String) throws -> [UserTask] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw UserFileError(file: path, line: nil, reason: "cannot read the file (\(error.localizedDescription))")
        }
        return try parse(data, file: path)
    }

    /// Reads the tasks of a file's contents; `file` names it in errors.
    public static func parse(_ data: Data, file: String) throws -> [UserTask] {
        var tasks: [UserTask] = []
        for (number, object) in try JSONLines.objects(in: data, file: file) {
            do { tasks.append(try task(object, line: number)) } catch let problem as LineProblem {
                throw UserFileError(file: file, line: number, reason: problem.reason)
            }
        }
        guard !tasks.isEmpty else { throw UserFileError(file: file, line: nil, reason: "holds no tasks") }
        return tasks
    }

    static func task(_ object: [String: JSONValue], line: Int) throws -> UserTask {
        let prompt = try promptText(object["prompt"])
        let groundTruth: JSONValue?
        switch object["reward_model"] {
        case nil: groundTruth = nil
        case let .object(rewardModel)?: groundTruth = rewardModel["ground_truth"]
        case let other?: throw LineProblem("reward_model must be an object with ground_truth, got \(other.typeName)")
        }
        let answerValue: JSONValue
        switch (object["answer"], groundTruth) {
        case let (answer?, nil): answerValue = answer
        case let (nil, truth?): answerValue = truth
        case (.some, .some): throw LineProblem("give answer or reward_model.ground_truth, not both")
        case (nil, nil): throw LineProblem("no answer: give answer (or reward_model.ground_truth)")
        }
        let answers = try answerTexts(answerValue)
        let family = try label(object["family"], "family") ?? label(object["data_source"], "data_source") ?? UserTask.defaultFamily
        let id = try identifier(object["id"]) ?? "line \(line)"
        return UserTask(id: id, family: family, prompt: prompt, answers: answers, line: line)
    }

    /// The question: a string, or chat messages with exactly one `user` message.
    static func promptText(_ value: JSONValue?) throws -> String {
        let text: String
        switch value {
        case nil: throw LineProblem("no prompt")
        case let .string(prompt)?: text = prompt
        case let .array(messages)?:
            var userContents: [String] = []
            for (index, message) in messages.enumerated() {
                guard case let .object(members) = message, let role = members["role"]?.stringValue else {
                    throw LineProblem("prompt[\(index)] must be a message {\"role\": …, \"content\": …}")
                }
                guard role == "user" else {
                    throw LineProblem("prompt[\(index)] has role \(ActionEvaluator.clipped(role)); a prompt holds one user message (the protocol has no system turn)")
                }
                guard let content = members["content"]?.stringValue else { throw LineProblem("prompt[\(index)].content must be a string") }
                userContents.append(content)
            }
            guard userContents.count == 1 else { throw LineProblem("prompt must hold exactly one user message, found \(userContents.count)") }
            text = userContents[0]
        case let other?: throw LineProblem("prompt must be a string or a list of messages, got \(other.typeName)")
        }
        guard !text.allSatisfy(\.isWhitespace) else { throw LineProblem("prompt is empty") }
        guard text.count <= maximumPromptCharacters else {
            throw LineProblem("prompt has \(text.count) characters, more than \(maximumPromptCharacters)")
        }
        return text
    }

    /// The longest prompt read, in characters; the run also checks that each fits the context.
    public static let maximumPromptCharacters = 10_000

    static func answerTexts(_ value: JSONValue) throws -> [String] {
        func one(_ element: JSONValue, _ path: String) throws -> String {
            let text: String
            switch element {
            case let .string(answer): text = answer.trimmingCharacters(in: .whitespacesAndNewlines)
            case let .number(number):
                text = JSONValue.numberText(number)
                guard number.isFinite, AnswerEvaluator.parseNumber(text) != nil else {
                    throw LineProblem("\(path) \(text) cannot be compared as a plain decimal number; write it as a string")
                }
            default: throw LineProblem("\(path) must be a string, a number or a list of them, got \(element.typeName)")
            }
            guard !text.isEmpty else { throw LineProblem("\(path) is empty") }
            if let tag = ProtocolTag.allCases.first(where: { text.contains($0.rawValue) }) {
                throw LineProblem("\(path) contains the protocol tag \(tag.rawValue), which the policy cannot write in an answer")
            }
            return text
        }
        guard case let .array(elements) = value else { return [try one(value, "answer")] }
        guard !elements.isEmpty else { throw LineProblem("answer is an empty list") }
        return try elements.enumerated().map { try one($0.element, "answer[\($0.offset)]") }
    }

    static func label(_ value: JSONValue?, _ key: String) throws -> String? {
        switch value {
        case nil, .null?: return nil
        case let .string(text)? where !text.isEmpty && text.count <= 64: return text
        default: throw LineProblem("\(key) must be a string of 1 to 64 characters")
        }
    }

    static func identifier(_ value: JSONValue?) throws -> String? {
        switch value {
        case nil, .null?: return nil
        case let .string(text)?: return text
        case let .number(number)? where number.isFinite: return JSONValue.numberText(number)
        default: throw LineProblem("id must be a string or a number")
        }
    }
}

/// A problem with one line, before the file and line number are attached.
struct LineProblem: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

/// The lines of a JSONL file as JSON objects.
enum JSONLines {
    /// Every non-blank line (1-based number, object), or the first line that is not UTF-8, not
    /// JSON or not an object.
    static func objects(in data: Data, file: String) throws -> [(Int, [String: JSONValue])] {
        var result: [(Int, [String: JSONValue])] = []
        let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        for (index, bytes) in lines.enumerated() {
            let number = index + 1
            guard let text = String(bytes: bytes, encoding: .utf8) else {
                throw UserFileError(file: file, line: number, reason: "not UTF-8 text")
            }
            if text.allSatisfy(\.isWhitespace) { continue }
            let value: JSONValue
            do { value = try JSONValue.parse(text) } catch let error as JSONValueError {
                throw UserFileError(file: file, line: number, reason: error.reason)
            }
            guard case let .object(object) = value else {
                throw UserFileError(file: file, line: number, reason: "must be a JSON object, got \(value.typeName)")
            }
            result.append((number, object))
        }
        return result
    }
}
