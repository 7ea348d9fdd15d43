import Foundation
import XCTest
@testable import ToolEnv

/// Task files: both shapes, every accepted answer form, per-line errors, scoring, and a fuzz of
/// the parser.
final class TaskFileTests: XCTestCase {
    func parse(_ text: String) throws -> [UserTask] { try TaskFile.parse(Data(text.utf8), file: "tasks.jsonl") }

    func error(_ text: String) -> UserFileError? {
        do {
            _ = try parse(text)
            return nil
        } catch let error as UserFileError {
            return error
        } catch {
            XCTFail("not a UserFileError: \(error)")
            return nil
        }
    }

    func testOurShapeAndTheVerlShapeReadTheSameTask() throws {
        let tasks = try parse("""
            {"prompt": "What is 3 miles in km?", "answer": 4.828, "family": "units", "id": "u1"}

            {"prompt": [{"role": "user", "content": "What is 3 miles in km?"}], "reward_model": {"ground_truth": "4.828", "style": "rule"}, "data_source": "units", "extra_info": {"index": 3}}
            {"prompt": "Capital of France?", "answer": ["Paris", "paris, France"], "id": 7}
            """)
        XCTAssertEqual(tasks.count, 3)
        XCTAssertEqual(tasks[0], UserTask(id: "u1", family: "units", prompt: "What is 3 miles in km?", answers: ["4.828"], line: 1))
        XCTAssertEqual(tasks[1], UserTask(id: "line 3", family: "units", prompt: "What is 3 miles in km?", answers: ["4.828"], line: 3))
        XCTAssertEqual(tasks[2].answers, ["Paris", "paris, France"])
        XCTAssertEqual(tasks[2].family, UserTask.defaultFamily)
        XCTAssertEqual(tasks[2].id, "7")
    }

    func testEachBadLineIsNamedWithItsFileAndLineAndProblem() {
        let valid = #"{"prompt": "q", "answer": "a"}"#
        let cases: [(String, Int?, String)] = [
            (valid + "\n{\"prompt\": \"q\", \"answer\": \"a\"", 2, "not valid JSON"),
            (valid + "\n[1, 2]", 2, "must be a JSON object, got array"),
            (#"{"prompt": "q"}"#, 1, "no answer"),
            (#"{"prompt": "q", "answer": "a", "reward_model": {"ground_truth": "b"}}"#, 1, "not both"),
            (#"{"answer": "a"}"#, 1, "no prompt"),
            (#"{"prompt": "  ", "answer": "a"}"#, 1, "prompt is empty"),
            (#"{"prompt": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "q"}], "answer": "a"}"#, 1, "has role system"),
            (#"{"prompt": [], "answer": "a"}"#, 1, "exactly one user message, found 0"),
            (#"{"prompt": "q", "answer": {"x": 1}}"#, 1, "answer must be a string, a number or a list of them, got object"),
            (#"{"prompt": "q", "answer": []}"#, 1, "answer is an empty list"),
            (#"{"prompt": "q", "answer": ["a", ""]}"#, 1, "answer[1] is empty"),
            (#"{"prompt": "q", "answer": "x</answer>"}"#, 1, "protocol tag </answer>"),
            (#"{"prompt": "q", "answer": 1e-7}"#, 1, "write it as a string"),
            (#"{"prompt": "q", "answer": "a", "family": 3}"#, 1, "family must be a string"),
            (#"{"prompt": "q", "answer": "a", "reward_model": "a"}"#, 1, "reward_model must be an object"),
            (#"{"prompt": "q", "answer": "a", "id": [1]}"#, 1, "id must be a string or a number"),
            ("\n\n", nil, "holds no tasks"),
        ]
        for (text, line, reason) in cases {
            guard let error = error(text) else {
                XCTFail("accepted: \(text)")
                continue
            }
            XCTAssertEqual(error.file, "tasks.jsonl")
            XCTAssertEqual(error.line, line, text)
            XCTAssertTrue(error.reason.contains(reason), "\(error.description) lacks \(reason)")
            XCTAssertTrue(error.description.hasPrefix("tasks.jsonl" + (line.map { " line \($0): " } ?? ": ")), error.description)
        }
        var invalidUTF8 = Data((valid + "\n").utf8)
        invalidUTF8.append(contentsOf: [0x22, 0xFF, 0xFE, 0x22])
        XCTAssertThrowsError(try TaskFile.parse(invalidUTF8, file: "t.jsonl")) { error in
            XCTAssertEqual((error as? UserFileError)?.description, "t.jsonl line 2: not UTF-8 text")
        }
        XCTAssertThrowsError(try TaskFile.load(path: "/nonexistent/tasks.jsonl")) { error in
            XCTAssertTrue("\(error)".hasPrefix("/nonexistent/tasks.jsonl: cannot read the file"), "\(error)")
        }
    }

    func testAnswersAreScoredByTheAnswerEvaluatorAgainstEveryAcceptedAnswer() throws {
        let tasks = try parse("""
            {"prompt": "q", "answer": 52301}
            {"prompt": "q", "answer": ["Paris", "City of Light"]}
            {"prompt": "q", "reward_model": {"ground_truth": "1,234.5"}}
            """)
        XCTAssertTrue(tasks[0].evaluate("52,301", tolerance: 1e-9).isCorrect)
        XCTAssertTrue(tasks[0].evaluate("52301.0", tolerance: 1e-9).isCorrect)
        XCTAssertFalse(tasks[0].evaluate("52302", tolerance: 1e-9).isCorrect)
        XCTAssertFalse(tasks[0].evaluate("about 52301", tolerance: 1e-9).isCorrect)
        XCTAssertTrue(tasks[1].evaluate("the city of light", tolerance: 0).isCorrect)
        XCTAssertTrue(tasks[1].evaluate("Paris.", tolerance: 0).isCorrect)
        let partial = tasks[1].evaluate("light city", tolerance: 0)
        XCTAssertFalse(partial.isCorrect)
        XCTAssertEqual(partial.tokenF1, 0.8, accuracy: 1e-12)  // 2 of 2 predicted, 2 of 3 expected
        XCTAssertTrue(tasks[2].evaluate("1234.5", tolerance: 1e-9).isCorrect)
    }

    /// Random byte edits of valid lines: the parser throws a `UserFileError` or returns tasks
    /// that satisfy every documented rule, and never traps.
    func testFuzzedLinesGiveAnErrorOrAValidTask() {
        let valid = [
            #"{"prompt": "What is 3 miles in km?", "answer": 4.828, "family": "units", "id": "u1"}"#,
            #"{"prompt": [{"role": "user", "content": "Capital of Zelmar?"}], "reward_model": {"ground_truth": ["Quorvin", "Q"]}, "data_source": "geo"}"#,
            #"{"prompt": "q\u00e9\n", "answer": [1, "2"], "id": 3}"#,
        ]
        var generator = SeededGenerator(seed: 29)
        let alphabet = Array(#"{}[]":,\ 0123456789.eE+-truefalsnl"#.utf8) + [0x00, 0x0A, 0xC3, 0xA9, 0xFF]
        var accepted = 0, rejected = 0
        for _ in 0..<20_000 {
            var bytes = Array(generator.element(of: valid).utf8)
            for _ in 0..<generator.integer(in: 1...4) {
                let position = generator.integer(in: 0...bytes.count - 1)
                switch generator.integer(in: 0...2) {
                case 0: bytes[position] = generator.element(of: alphabet)
                case 1: bytes.remove(at: position)
                default: bytes.insert(generator.element(of: alphabet), at: position)
                }
                if bytes.isEmpty { bytes = [0x7B] }
            }
            do {
                for task in try TaskFile.parse(Data(bytes), file: "fuzz.jsonl") {
                    accepted += 1
                    XCTAssertFalse(task.prompt.allSatisfy(\.isWhitespace))
                    XCTAssertFalse(task.answers.isEmpty)
                    XCTAssertFalse(task.family.isEmpty)
                    for answer in task.answers {
                        XCTAssertFalse(answer.isEmpty)
                        XCTAssertFalse(ProtocolTag.containsTag(answer))
                        _ = task.evaluate(answer, tolerance: 1e-9)
                    }
                }
            } catch let error as UserFileError {
                rejected += 1
                XCTAssertEqual(error.file, "fuzz.jsonl")
                XCTAssertFalse(error.reason.isEmpty)
            } catch {
                XCTFail("not a UserFileError: \(error)")
            }
        }
        // Both outcomes happen, so the fuzz reaches past the JSON parser.
        XCTAssertGreaterThan(accepted, 100)
        XCTAssertGreaterThan(rejected, 100)
    }
}

/// A scripted tool server: `convert(value, from, to)` for miles and kilometres, `fail`, which
/// always fails with the outcome it was made with, and `long`, a long result full of tags.
final class ScriptedTools: ToolProvider, @unchecked Sendable {
    let failure: ToolFailure
    private(set) var calls: [(String, [String: JSONValue])] = []

    init(failure: ToolFailure = .timeout) { self.failure = failure }

    let tools = [
        ToolDescription(name: "convert", description: "Converts a length.", inputSchema: try! JSONValue.parse("""
            {"type": "object", "properties": {"value": {"type": "number"}, "from": {"type": "string", "enum": ["mi", "km"]},
             "to": {"type": "string", "enum": ["mi", "km"]}}, "required": ["value", "from", "to"], "additionalProperties": false}
            """)),
        ToolDescription(name: "fail", description: "Always fails.", inputSchema: try! JSONValue.parse(#"{"type": "object"}"#)),
        ToolDescription(name: "long", description: "A long result with tags in it.", inputSchema: try! JSONValue.parse(#"{"type": "object"}"#)),
    ]

    func call(tool: String, arguments: [String: JSONValue]) -> ToolOutcome {
        calls.append((tool, arguments))
        if tool == "long" { return ToolOutcome(text: String(repeating: "x<obs>", count: 50)) }
        guard tool == "convert", case let .number(value)? = arguments["value"] else { return ToolOutcome(text: "error: \(tool) \(failure.rawValue)", failure: failure) }
        let factor = arguments["from"] == .string("mi") ? 1.609344 : 1 / 1.609344
        return ToolOutcome(text: String(format: "%.3f", value * factor))
    }
}

/// `TaskEpisode`: calls in either format to the provider's tools and `calc`, the schema checks,
/// failures as faults, and scoring.
final class TaskEpisodeTests: XCTestCase {
    let task = UserTask(id: "u1", family: "units", prompt: "What is 3 miles in km?", answers: ["4.828"], line: 1)

    func episode(_ format: CallFormat, tools: ScriptedTools = ScriptedTools()) -> TaskEpisode {
        TaskEpisode(task: task, config: EnvironmentConfig(callFormat: format), provider: tools)
    }

    func testCompactAndJSONCallsReachTheToolWithTypedArguments() {
        let tools = ScriptedTools()
        let compact = episode(.compact, tools: tools)
        let first = compact.respond(toPolicyText: "Convert.<call>convert(3, mi, km)</call>")
        XCTAssertEqual(first.observation, "4.828")
        XCTAssertTrue(first.wasExecuted)
        XCTAssertNil(first.error)
        let json = episode(.json, tools: tools)
        XCTAssertEqual(json.respond(toPolicyText: #"<call>{"name": "convert", "arguments": {"value": 3, "from": "mi", "to": "km"}}</call>"#).observation, "4.828")
        XCTAssertEqual(tools.calls.count, 2)
        XCTAssertEqual(tools.calls[0].1, tools.calls[1].1)
        XCTAssertEqual(tools.calls[0].1, ["value": .number(3), "from": .string("mi"), "to": .string("km")])
        let breakdown = json.finish(policyText: #"<call>{"name": "convert", "arguments": {"value": 3, "from": "mi", "to": "km"}}</call><obs>4.828</obs><answer>4.828</answer><|end|>"#, endReason: .answered)
        XCTAssertTrue(breakdown.isCorrect)
        XCTAssertEqual(breakdown.executedToolCalls, 1)
        XCTAssertEqual(breakdown.total, 1, accuracy: 1e-12)
    }

    func testMalformedCallsAndSchemaViolationsAreRecordedAndNotRun() {
        let tools = ScriptedTools()
        let cases: [(CallFormat, String, EpisodeErrorKind, String)] = [
            (.json, #"{"name": "convert", "arguments": {"value": 3"#, .malformedCall, "not valid JSON"),
            (.json, #"["convert"]"#, .malformedCall, "expected a JSON object"),
            (.json, #"{"name": "convert", "arguments": [3]}"#, .malformedCall, "arguments must be a JSON object"),
            (.json, #"{"name": "convert", "arguments": {}, "extra": 1}"#, .malformedCall, "unexpected key extra"),
            (.json, #"{"name": "teleport", "arguments": {}}"#, .unknownTool, "tools are calc, convert, fail, long"),
            (.json, #"{"name": "convert", "arguments": {"value": "3", "from": "mi", "to": "km"}}"#, .badArguments, "arguments.value must be number, got string"),
            (.json, #"{"name": "convert", "arguments": {"value": 3, "from": "mi"}}"#, .badArguments, "arguments.to is required"),
            (.json, #"{"name": "convert", "arguments": {"value": 3, "from": "yd", "to": "km"}}"#, .badArguments, "arguments.from must be one of"),
            (.json, #"{"name": "convert", "arguments": {"value": 3, "from": "mi", "to": "km", "round": true}}"#, .badArguments, "round is not an argument"),
            (.compact, "convert(3, mi)", .badArguments, "expected convert(value, from, to)"),
            (.compact, "convert(three, mi, km)", .badArguments, "value must be a number"),
            (.compact, "convert 3", .malformedCall, "expected convert(arguments)"),
        ]
        for (format, content, kind, detail) in cases {
            let episode = episode(format, tools: tools)
            let response = episode.respond(toPolicyText: "<call>\(content)</call>")
            XCTAssertEqual(response.error, kind, content)
            XCTAssertFalse(response.wasExecuted, content)
            XCTAssertTrue(response.observation.hasPrefix("error: \(kind.rawValue): "), response.observation)
            XCTAssertTrue(response.observation.contains(detail), "\(response.observation) lacks \(detail)")
            XCTAssertEqual(episode.errors, [kind])
        }
        XCTAssertTrue(tools.calls.isEmpty, "a rejected call reached the tool")
    }

    func testBuiltInCalcWorksBesideTheProvidedToolsInBothFormats() {
        XCTAssertEqual(episode(.compact).respond(toPolicyText: "<call>calc(3*1.609344)</call>").observation, "4.828032")
        let json = episode(.json).respond(toPolicyText: #"<call>{"name": "calc", "arguments": {"expression": "3*1.609344"}}</call>"#)
        XCTAssertEqual(json.observation, "4.828032")
        XCTAssertEqual(json.call, .calc(expression: "3*1.609344"))
        XCTAssertEqual(episode(.json).respond(toPolicyText: #"<call>{"name": "calc", "arguments": {"expression": 3}}</call>"#).error, .badArguments)
        let alone = TaskEpisode(task: task, config: EnvironmentConfig(), provider: nil)
        XCTAssertEqual(alone.respond(toPolicyText: "<call>search(miles)</call>").observation, "error: unknown_tool: search; tools are calc")
    }

    func testAFailedToolCallIsAFaultAndAnsweringRightAfterItIsIgnoredToolFailure() {
        for failure in ToolFailure.allCases {
            let episode = episode(.compact, tools: ScriptedTools(failure: failure))
            let response = episode.respond(toPolicyText: "<call>fail()</call>")
            XCTAssertTrue(response.wasExecuted)
            XCTAssertEqual(response.fault, .failure)
            XCTAssertTrue(response.reportsFailure)
            XCTAssertEqual(episode.toolFailures, [failure])
            let breakdown = episode.finish(policyText: "<call>fail()</call><obs>\(response.observation)</obs><answer>4.828</answer>", endReason: .answered)
            XCTAssertTrue(breakdown.isCorrect)
            XCTAssertEqual(breakdown.errors, [.ignoredToolFailure])
        }
    }

    func testTheCallLimitAndTheObservationCapApplyAsInGeneratedEpisodes() {
        let config = EnvironmentConfig(limits: LimitConfig(maxToolCalls: 1, maxObservationCharacters: 40))
        let episode = TaskEpisode(task: task, config: config, provider: ScriptedTools())
        XCTAssertEqual(episode.respond(toPolicyText: "<call>long()</call>").observation, String(repeating: "x", count: 37) + "...")
        let over = episode.respond(toPolicyText: "<call>calc(1)</call>")
        XCTAssertTrue(over.episodeMustEnd)
        XCTAssertEqual(over.error, .overCallLimit)
        let fork = episode.fork()
        XCTAssertEqual(fork.responses.count, 2)
        XCTAssertEqual(fork.executedToolCalls, 1)
    }
}
