import XCTest
@testable import ToolEnv

final class ActionEvaluatorTests: XCTestCase {
    private func label(_ policyText: String) -> EpisodeErrorKind? {
        if case let .invalid(kind, _, _) = ActionEvaluator.evaluate(policyText: policyText) { return kind }
        return nil
    }

    func testValidCalls() {
        XCTAssertEqual(ActionEvaluator.evaluate(policyText: "Let me compute.<call>calc(12*7)</call>"), .valid(.calc(expression: "12*7")))
        XCTAssertEqual(ActionEvaluator.evaluate(policyText: "<call> search (capital of Zelmar) </call>"), .valid(.search(query: "capital of Zelmar")))
        XCTAssertEqual(ActionEvaluator.evaluate(policyText: "<call>lookup(Zelmar, birth_year)</call>"), .valid(.lookup(entity: "Zelmar", attribute: "birth year")))
        XCTAssertEqual(ActionEvaluator.evaluate(callContent: "calc((1+2)*3)"), .valid(.calc(expression: "(1+2)*3")))
    }

    func testTheLastCallIsEvaluated() {
        let text = "<call>calc(1+1)</call> then <call>search(mayor of Telmi)</call>"
        XCTAssertEqual(ActionEvaluator.evaluate(policyText: text), .valid(.search(query: "mayor of Telmi")))
        XCTAssertEqual(ActionEvaluator.evaluate(policyText: "<call>calc(2)</call>trailing thoughts"), .valid(.calc(expression: "2")))
    }

    func testMalformedCalls() {
        let malformed = [
            "no tags at all",
            "calc(1+2)</call>",  // no opening tag
            "<call>calc(1+2)",  // no closing tag
            "<call></call>",
            "<call>   </call>",
            "<call>calc</call>",
            "<call>calc(1+2</call>",
            "<call>calc 1+2)</call>",
            "<call>(1+2)</call>",
            "<call>9calc(1)</call>",
            "<call>calc(1)x</call>",
            "<call>calc(<obs>1</obs>)</call>",  // a tag inside the call
            "<call>calc(1)<call>calc(2)</call>",  // the content of the last pair is fine...
        ]
        for text in malformed.dropLast() {
            XCTAssertEqual(label(text), .malformedCall, text)
        }
        XCTAssertEqual(ActionEvaluator.evaluate(policyText: malformed.last!), .valid(.calc(expression: "2")), "...since only the last <call> counts")
        XCTAssertEqual(label("<call>calc(1)</call></call>"), .malformedCall, "the last </call> encloses a tag")
        XCTAssertEqual(label("<call>" + String(repeating: "a", count: 400) + "(1)</call>"), .malformedCall)
    }

    func testUnknownTool() {
        guard case let .invalid(kind, observation, tool) = ActionEvaluator.evaluate(policyText: "<call>weather(Zelmar)</call>") else {
            return XCTFail("expected a rejection")
        }
        XCTAssertEqual(kind, .unknownTool)
        XCTAssertNil(tool)
        XCTAssertEqual(observation, "error: unknown_tool: weather; tools are calc, search, lookup")
        XCTAssertEqual(label("<call>Calc(1)</call>"), .unknownTool, "tool names are case-sensitive")
    }

    func testBadArgumentsNameTheTool() {
        guard case let .invalid(kind, observation, tool) = ActionEvaluator.evaluate(policyText: "<call>calc(1/0)</call>") else {
            return XCTFail("expected a rejection")
        }
        XCTAssertEqual(kind, .badArguments)
        XCTAssertEqual(tool, .calc)
        XCTAssertEqual(observation, "error: bad_arguments: calc: division by zero")
        XCTAssertEqual(label("<call>calc(2^0.5)</call>"), .badArguments)
        XCTAssertEqual(label("<call>search()</call>"), .badArguments)
        XCTAssertEqual(label("<call>lookup(a)</call>"), .badArguments)
    }

    func testErrorObservationsNeverEchoTags() {
        for text in ["<call>x<y>(1)</call>", "<call>lookup(a, <|end|>)</call>", "<call>calc(<|pad|>)</call>"] {
            if case let .invalid(_, observation, _) = ActionEvaluator.evaluate(policyText: text) {
                XCTAssertFalse(ProtocolTag.containsTag(observation), observation)
            } else {
                XCTFail("\(text) should be rejected")
            }
        }
    }
}
