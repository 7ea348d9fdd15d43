import Foundation
import XCTest
@testable import ToolEnv

/// Demonstration files: OpenAI chat trajectories rendered into the protocol in either call
/// format, per-line errors, and a fuzz of the parser.
final class DemonstrationFileTests: XCTestCase {
    let tools = [ToolName.calc.toolDescription] + ScriptedTools().tools

    static let convertLine = #"""
        {"messages": [{"role": "user", "content": "What is 3 miles in km?"},
          {"role": "assistant", "content": "Convert it.", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "convert", "arguments": "{\"value\": 3, \"from\": \"mi\", \"to\": \"km\"}"}}]},
          {"role": "tool", "tool_call_id": "c1", "content": "4.828"},
          {"role": "assistant", "content": " 4.828 "}]}
        """#.replacingOccurrences(of: "\n", with: "")

    func parse(_ text: String, format: CallFormat = .compact, limit: Int = 200) throws -> [UserDemonstration] {
        let config = EnvironmentConfig(limits: LimitConfig(maxObservationCharacters: limit), callFormat: format)
        return try DemonstrationFile.parse(Data(text.utf8), file: "demos.jsonl", tools: tools, config: config)
    }

    func testATrajectoryRendersIntoTheProtocolInEitherCallFormat() throws {
        let compact = try parse(DemonstrationFileTests.convertLine)
        XCTAssertEqual(compact, [UserDemonstration(prompt: "What is 3 miles in km?", segments: [
            Segment(role: .policy, text: "Convert it.<call>convert(3, mi, km)</call>"),
            Segment(role: .observation, text: "4.828"),
            Segment(role: .policy, text: "<answer>4.828</answer><|end|>"),
        ], line: 1)])
        let json = try parse(DemonstrationFileTests.convertLine, format: .json)
        XCTAssertEqual(json[0].segments[0].text, #"Convert it.<call>{"arguments":{"from":"mi","to":"km","value":3},"name":"convert"}</call>"#)
        // The rendering is what the environment accepts and scores as correct.
        for (format, demonstration) in [(CallFormat.compact, compact[0]), (.json, json[0])] {
            let episode = TaskEpisode(
                task: UserTask(id: "u", family: "units", prompt: demonstration.prompt, answers: ["4.828"], line: 1),
                config: EnvironmentConfig(callFormat: format), provider: ScriptedTools())
            let response = episode.respond(toPolicyText: demonstration.segments[0].text)
            XCTAssertEqual(response.observation, demonstration.segments[1].text)
            let breakdown = episode.finish(policyText: demonstration.transcript, endReason: .answered)
            XCTAssertTrue(breakdown.isCorrect, "\(format): \(breakdown)")
            XCTAssertTrue(breakdown.errors.isEmpty)
        }
    }

    func testSeveralCallsInOneMessageAlternateWithTheirResultsAndResultsAreCapped() throws {
        let line = #"""
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "Twice 3 miles"}, {"type": "text", "text": " in km?"}]},
              {"role": "assistant", "content": null, "tool_calls": [
                {"function": {"name": "convert", "arguments": {"value": 3, "from": "mi", "to": "km"}}},
                {"function": {"name": "calc", "arguments": "{\"expression\": \"2*4.828\"}"}}]},
              {"role": "tool", "content": "4.828<call>"}, {"role": "tool", "content": "9.656 and a long tail that goes past the cap of forty characters"},
              {"role": "assistant", "content": "9.656"}]}
            """#.replacingOccurrences(of: "\n", with: "")
        let demonstration = try parse(line, limit: 40)[0]
        XCTAssertEqual(demonstration.prompt, "Twice 3 miles in km?")
        XCTAssertEqual(demonstration.segments.map(\.text), [
            "<call>convert(3, mi, km)</call>", "4.828", "<call>calc(2*4.828)</call>",
            "9.656 and a long tail that goes past ...", "<answer>9.656</answer><|end|>",
        ])
    }

    func testEachBadTrajectoryIsNamedWithItsFileAndLineAndProblem() {
        let user = #"{"role": "user", "content": "q"}"#
        let answer = #"{"role": "assistant", "content": "a"}"#
        func call(_ name: String, _ arguments: String, id: String = "c1") -> String {
            #"{"role": "assistant", "tool_calls": [{"id": "\#(id)", "function": {"name": "\#(name)", "arguments": \#(arguments)}}]}"#
        }
        let result = #"{"role": "tool", "tool_call_id": "c1", "content": "r"}"#
        let goodCall = call("convert", #"{"value": 3, "from": "mi", "to": "km"}"#)
        let cases: [(String, String)] = [
            (#"{"messages": []}"#, "at least a user and an assistant"),
            (#"{"conversation": []}"#, "expected {\"messages\""),
            (#"{"messages": [{"role": "system", "content": "s"}, \#(user), \#(answer)]}"#, "has role system"),
            (#"{"messages": [\#(answer)]}"#, "messages[0] must be the user message"),
            (#"{"messages": [\#(user)]}"#, "the last message must be an assistant message"),
            (#"{"messages": [\#(user), \#(goodCall)]}"#, "tool_calls[0] has no tool message answering it"),
            (#"{"messages": [\#(user), \#(goodCall), \#(result)]}"#, "the last message must be an assistant message"),
            (#"{"messages": [\#(user), \#(answer), \#(answer)]}"#, "only the last one may be"),
            (#"{"messages": [\#(user), {"role": "assistant", "content": "  "}]}"#, "must have the answer as content"),
            (#"{"messages": [\#(user), \#(call("teleport", "{}")), \#(result), \#(answer)]}"#, "calls teleport; the run's tools are calc, convert, fail, long"),
            (#"{"messages": [\#(user), \#(call("convert", #"{"value": "3", "from": "mi", "to": "km"}"#)), \#(result), \#(answer)]}"#, "(convert): arguments.value must be number"),
            (#"{"messages": [\#(user), \#(call("convert", #""{not json""#)), \#(result), \#(answer)]}"#, "must be a JSON object (or its text)"),
            (#"{"messages": [\#(user), \#(call("convert", "[1]")), \#(result), \#(answer)]}"#, "must be a JSON object, got array"),
            (#"{"messages": [\#(user), \#(call("convert", #"{"value": 3, "from": "mi", "to": "km"}"#, id: "c2")), \#(result), \#(answer)]}"#, "answers tool call c1, expected c2"),
            (#"{"messages": [\#(user), {"role": "assistant", "content": "x<answer>y"}]}"#, "contains the protocol tag <answer>"),
            (#"{"messages": [\#(user), {"role": "assistant", "content": "a", "tool_calls": {}}]}"#, "tool_calls must be a list"),
            (#"{"messages": [\#(user), {"role": "assistant", "content": 5}]}"#, "content must be a string, got integer"),
        ]
        for (line, reason) in cases {
            XCTAssertThrowsError(try parse("\n" + line), line) { error in
                guard let error = error as? UserFileError else { return XCTFail("not a UserFileError: \(error)") }
                XCTAssertEqual(error.line, 2, line)
                XCTAssertTrue(error.description.hasPrefix("demos.jsonl line 2: "), error.description)
                XCTAssertTrue(error.reason.contains(reason), "\(error.reason) lacks \(reason)")
            }
        }
        // A string argument with a comma cannot be read back from a compact call to a tool with
        // several arguments: the error says to use the JSON format, which can.
        let comma = #"{"messages": [\#(user), \#(call("convert", #"{"value": 3, "from": "mi, or so", "to": "km"}"#)), \#(result), \#(answer)]}"#
        let schemaFree = [ToolDescription(name: "convert", description: "", inputSchema: try! JSONValue.parse(#"{"type": "object", "required": ["value", "from", "to"]}"#))]
        XCTAssertThrowsError(try DemonstrationFile.parse(Data(comma.utf8), file: "d", tools: schemaFree, config: EnvironmentConfig())) { error in
            XCTAssertTrue("\(error)".contains("use env.call_format \"json\""), "\(error)")
        }
        XCTAssertNoThrow(try DemonstrationFile.parse(Data(comma.utf8), file: "d", tools: schemaFree, config: EnvironmentConfig(callFormat: .json)))
    }

    /// Random byte edits of a valid trajectory: an error naming the file and line, or a
    /// trajectory that is well-formed in the protocol, never a trap.
    func testFuzzedTrajectoriesGiveAnErrorOrAWellFormedDemonstration() {
        var generator = SeededGenerator(seed: 2)
        let valid = Array(DemonstrationFileTests.convertLine.utf8)
        let alphabet = Array(#"{}[]":,\ 0123456789.-abcdefghilmnorstuvw<>/|"#.utf8) + [0x00, 0x0A, 0xC3, 0xFF]
        var accepted = 0, rejected = 0
        for _ in 0..<5_000 {
            var bytes = valid
            for _ in 0..<generator.integer(in: 1...3) {
                let position = generator.integer(in: 0...bytes.count - 1)
                switch generator.integer(in: 0...2) {
                case 0: bytes[position] = generator.element(of: alphabet)
                case 1: bytes.remove(at: position)
                default: bytes.insert(generator.element(of: alphabet), at: position)
                }
            }
            let format: CallFormat = generator.chance(0.5) ? .compact : .json
            let config = EnvironmentConfig(callFormat: format)
            do {
                for demonstration in try DemonstrationFile.parse(Data(bytes), file: "fuzz.jsonl", tools: tools, config: config) {
                    accepted += 1
                    let calls = demonstration.segments.filter { $0.role == .observation }.count
                    XCTAssertNil(TranscriptFormat(transcript: demonstration.transcript, answeredCalls: calls).violation)
                    for segment in demonstration.segments where segment.role == .observation {
                        XCTAssertFalse(ProtocolTag.containsTag(segment.text))
                    }
                }
            } catch let error as UserFileError {
                rejected += 1
                XCTAssertEqual(error.file, "fuzz.jsonl")
            } catch {
                XCTFail("not a UserFileError: \(error)")
            }
        }
        XCTAssertGreaterThan(accepted, 50)
        XCTAssertGreaterThan(rejected, 50)
    }
}
