import Foundation
import XCTest
@testable import ToolEnv

/// `env.call_format: json` on the built-in tools, the schema validator, and the built-in solver
/// writing JSON calls.
final class CallFormatTests: XCTestCase {
    func kind(_ content: String) -> EpisodeErrorKind? {
        if case let .invalid(kind, _, _) = ActionEvaluator.evaluate(policyText: "<call>\(content)</call>", format: .json) { return kind }
        return nil
    }

    func testJSONCallsToBuiltInToolsMeanWhatTheirCompactFormsMean() {
        XCTAssertEqual(ActionEvaluator.evaluate(policyText: #"Compute.<call>{"name": "calc", "arguments": {"expression": "12*7"}}</call>"#, format: .json), .valid(.calc(expression: "12*7")))
        XCTAssertEqual(ActionEvaluator.evaluate(policyText: #"<call> {"arguments": {"query": "capital of Zelmar"}, "name": "search"} </call>"#, format: .json), .valid(.search(query: "capital of Zelmar")))
        XCTAssertEqual(ActionEvaluator.evaluate(policyText: #"<call>{"name": "lookup", "arguments": {"entity": "Zelmar, Inc", "attribute": "capital"}}</call>"#, format: .json), .valid(.lookup(entity: "Zelmar, Inc", attribute: "capital")))
        // The compact form is not a JSON call, and the other way round.
        XCTAssertEqual(kind("calc(12*7)"), .malformedCall)
        XCTAssertEqual(ActionEvaluator.evaluate(policyText: #"<call>{"name": "calc", "arguments": {"expression": "1"}}</call>"#), .invalid(.malformedCall, observation: "error: malformed_call: expected tool(arguments)", tool: nil))
    }

    func testBrokenJSONCallsAreMalformedAndSchemaViolationsAreBadArguments() {
        XCTAssertEqual(kind(#"{"name": "calc", "arguments": {"expression": "1"}"#), .malformedCall)
        XCTAssertEqual(kind(""), .malformedCall)
        XCTAssertEqual(kind(#"{"arguments": {}}"#), .malformedCall)
        XCTAssertEqual(kind(#"{"name": "", "arguments": {}}"#), .malformedCall)
        XCTAssertEqual(kind(#"{"name": "calc", "arguments": "1+1"}"#), .malformedCall)
        XCTAssertEqual(kind(#"{"name": "calc", "arguments": {"expression": "1"}, "id": 3}"#), .malformedCall)
        XCTAssertEqual(kind(#"{"name": "python", "arguments": {"code": "1"}}"#), .unknownTool)
        XCTAssertEqual(kind(#"{"name": "calc", "arguments": {"expression": 1}}"#), .badArguments)
        XCTAssertEqual(kind(#"{"name": "calc", "arguments": {}}"#), .badArguments)
        XCTAssertEqual(kind(#"{"name": "calc", "arguments": {"expression": "1", "precision": 3}}"#), .badArguments)
        XCTAssertEqual(kind(#"{"name": "calc", "arguments": {"expression": "1/0"}}"#), .badArguments)
        XCTAssertEqual(kind(#"{"name": "lookup", "arguments": {"entity": "Zelmar", "attribute": "flag"}}"#), .badArguments)
        XCTAssertEqual(kind("{\"name\": \"calc\", \"arguments\": {\"expression\": \"" + String(repeating: "1+", count: 600) + "1\"}}"), .malformedCall)
        XCTAssertEqual(kind(#"{"name": "calc", "arguments": {"expression": "<obs>"}}"#), .malformedCall)
    }

    func testTheSchemaValidatorChecksTheKeywordsToolSchemasUse() throws {
        let schema = try JSONValue.parse("""
            {"type": "object", "required": ["n", "tags"], "properties": {
              "n": {"type": "integer", "minimum": 1, "maximum": 10},
              "x": {"type": ["number", "null"], "exclusiveMinimum": 0},
              "tags": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 3}, "minItems": 1, "maxItems": 2},
              "mode": {"enum": ["a", "b"]}, "flag": {"const": true},
              "either": {"anyOf": [{"type": "string"}, {"type": "boolean"}]},
              "one": {"oneOf": [{"type": "number"}, {"type": "integer"}]}
            }}
            """)
        func check(_ arguments: String) throws -> String? {
            JSONSchemaValidator.violation(of: try JSONValue.parse(arguments), against: schema)
        }
        XCTAssertNil(try check(#"{"n": 3, "tags": ["a"], "x": null, "mode": "b", "flag": true, "either": false, "extra": {}}"#))
        XCTAssertEqual(try check(#"{"n": 3.5, "tags": ["a"]}"#), "arguments.n must be integer, got number")
        XCTAssertEqual(try check(#"{"n": 0, "tags": ["a"]}"#), "arguments.n must be at least 1")
        XCTAssertEqual(try check(#"{"n": 11, "tags": ["a"]}"#), "arguments.n must be at most 10")
        XCTAssertEqual(try check(#"{"n": 1, "tags": ["a"], "x": 0}"#), "arguments.x must be above 0")
        XCTAssertEqual(try check(#"{"n": 1}"#), "arguments.tags is required")
        XCTAssertEqual(try check(#"{"n": 1, "tags": []}"#), "arguments.tags must have at least 1 elements")
        XCTAssertEqual(try check(#"{"n": 1, "tags": ["a", "b", "c"]}"#), "arguments.tags must have at most 2 elements")
        XCTAssertEqual(try check(#"{"n": 1, "tags": ["abcd"]}"#), "arguments.tags[0] must have at most 3 characters")
        XCTAssertEqual(try check(#"{"n": 1, "tags": [""]}"#), "arguments.tags[0] must have at least 1 characters")
        XCTAssertEqual(try check(#"{"n": 1, "tags": ["a"], "mode": "c"}"#), #"arguments.mode must be one of "a", "b""#)
        XCTAssertEqual(try check(#"{"n": 1, "tags": ["a"], "flag": false}"#), "arguments.flag must be true")
        XCTAssertEqual(try check(#"{"n": 1, "tags": ["a"], "either": 1}"#), "arguments.either matches none of the allowed forms")
        XCTAssertEqual(try check(#"{"n": 1, "tags": ["a"], "one": 2}"#), "arguments.one must match exactly one allowed form, matches 2")
        XCTAssertEqual(try check("[]"), "arguments must be object, got array")
    }

    func testCompactArgumentsFollowTheRequiredOrderAndTheSchemaTypes() throws {
        let tool = ToolDescription(name: "convert", description: "", inputSchema: try JSONValue.parse("""
            {"type": "object", "required": ["value", "unit", "exact"], "properties": {"value": {"type": "number"}, "unit": {"type": "string"}, "exact": {"type": "boolean"}}}
            """))
        XCTAssertEqual(try CallFormat.compactArguments(" 2.5 , mi, true", for: tool).get(), ["value": .number(2.5), "unit": .string("mi"), "exact": .bool(true)])
        XCTAssertEqual(CallFormat.compact.render(tool: tool, arguments: ["value": .number(2.5), "unit": .string("mi"), "exact": .bool(true)]), "convert(2.5, mi, true)")
        XCTAssertEqual(CallFormat.json.render(tool: tool, arguments: ["value": .number(3), "unit": .string("mi")]), #"{"arguments":{"unit":"mi","value":3},"name":"convert"}"#)
        XCTAssertThrowsError(try CallFormat.compactArguments("2.5, mi, yes", for: tool).get())
        XCTAssertThrowsError(try CallFormat.compactArguments("inf, mi, true", for: tool).get())
        // One property and nothing required: the whole text is that property.
        let single = ToolDescription(name: "define", description: "", inputSchema: try JSONValue.parse(#"{"type": "object", "properties": {"word": {"type": "string"}}}"#))
        XCTAssertEqual(try CallFormat.compactArguments("a, b", for: single).get(), ["word": .string("a, b")])
    }

    /// The built-in solver writes JSON calls under `call_format: json`, and its demonstrations
    /// still solve every family.
    func testTheExpertSolvesEveryFamilyWithJSONCalls() {
        let config = EnvironmentConfig(faults: .none, callFormat: .json)
        for family in TaskFamily.allCases {
            for seed in 0..<20 as Range<UInt64> {
                let episode = Episode(family: family, split: .train, seed: seed, config: config)
                let demonstration = ExpertSolver().demonstrate(episode)
                XCTAssertTrue(demonstration.reward.isCorrect, "\(family) \(seed): \(demonstration.transcript)")
                XCTAssertTrue(demonstration.reward.errors.isEmpty, "\(family) \(seed): \(demonstration.reward.errors)")
                XCTAssertTrue(demonstration.transcript.contains(#"<call>{"arguments":{"#), demonstration.transcript)
            }
        }
    }
}

/// `JSONValue`: booleans apart from numbers, and the compact text with sorted keys.
final class JSONValueTests: XCTestCase {
    func testBooleansNumbersAndTextRoundTrip() throws {
        let value = try JSONValue.parse(#"{"b": [true, 1, 0, false, 1.5, -2e3, "x\n\"q\"", null], "a": {}}"#)
        XCTAssertEqual(value, .object(["a": .object([:]), "b": .array([.bool(true), .number(1), .number(0), .bool(false), .number(1.5), .number(-2000), .string("x\n\"q\""), .null])]))
        XCTAssertEqual(value.compactText, #"{"a":{},"b":[true,1,0,false,1.5,-2000,"x\n\"q\"",null]}"#)
        XCTAssertEqual(try JSONValue.parse(value.compactText), value)
        XCTAssertEqual(JSONValue.number(3).typeName, "integer")
        XCTAssertEqual(JSONValue.number(3.5).typeName, "number")
        XCTAssertThrowsError(try JSONValue.parse("{\"a\": }"))
        XCTAssertThrowsError(try JSONValue.parse(String(repeating: "[", count: 100_000)))
    }
}
