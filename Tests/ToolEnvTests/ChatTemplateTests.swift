import XCTest
@testable import ToolEnv

/// The chat template of a model directory's `tokenizer_config.json`, as text: Jinja cannot run
/// here, so `transformers` renders it in TrainerTests' TransformersTokenizerTests, against
/// `DemonstrationFile`'s rendering of the same conversations.
final class ChatTemplateTests: XCTestCase {
    func testTheTemplateWritesEveryProtocolTagAndDefaultsToItsCallFormat() {
        for format in CallFormat.allCases {
            let template = format.chatTemplate
            XCTAssertTrue(template.contains("else '\(format.rawValue)'"), "\(format): the default call format")
            for tag in [ProtocolTag.user, .assistant, .callOpen, .callClose, .observationOpen, .observationClose, .answerOpen, .answerClose, .end] {
                XCTAssertTrue(template.contains(tag.rawValue), "\(format): the template lacks \(tag.rawValue)")
            }
            // The policy's turn has no tag of its own beyond these, and padding never appears.
            XCTAssertFalse(template.contains(ProtocolTag.pad.rawValue))
            XCTAssertFalse(template.contains("<|begin|>"), "the trainer's prompts have no begin token")
        }
        XCTAssertNotEqual(CallFormat.compact.chatTemplate, CallFormat.json.chatTemplate)
    }

    /// Every line trims the whitespace around it, so the newlines between them render as
    /// nothing: a stray newline would be a token the policy never saw.
    func testEveryLineTrimsTheWhitespaceAroundIt() {
        for line in CallFormat.compact.chatTemplate.split(separator: "\n") {
            XCTAssertTrue(line.hasPrefix("{%-") || line.hasPrefix("{{-"), String(line))
            XCTAssertTrue(line.hasSuffix("-%}") || line.hasSuffix("-}}"), String(line))
        }
    }

    /// A json call is written as `render(tool:arguments:)` writes it: sorted keys, no spaces,
    /// `arguments` before `name`.
    func testAJSONCallHasTheShapeTheEnvironmentRenders() {
        let rendered = CallFormat.json.render(tool: ToolName.calc.toolDescription, arguments: ["expression": .string("12*7")])
        XCTAssertEqual(rendered, #"{"arguments":{"expression":"12*7"},"name":"calc"}"#)
        XCTAssertTrue(CallFormat.json.chatTemplate.contains(#"'<call>{"arguments":' + arguments + ',"name":' + function['name'] | tojson + '}</call>'"#))
        XCTAssertTrue(CallFormat.json.chatTemplate.contains("tojson(separators=(',', ':'), sort_keys=true)"))
    }
}
