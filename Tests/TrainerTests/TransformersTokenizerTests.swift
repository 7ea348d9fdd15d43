import ARPO
import Foundation
import Policy
import Tensor
import ToolEnv
@testable import Trainer
import XCTest

/// A model directory the trainer writes holds a tokenizer that Hugging Face loads:
/// `AutoTokenizer.from_pretrained(directory)` encodes text to exactly this project's token ids
/// (special tokens included) and decodes them back, and `apply_chat_template` renders a
/// conversation as the trainer renders it (`DemonstrationFile`, `ProtocolCodec`), for the byte
/// tokenizer and a learned byte-level BPE, in both call formats.
///
/// Needs a Python with transformers and jinja2: set `ARPO_TRANSFORMERS_PYTHON` to its
/// interpreter (skipped otherwise, saying so). scripts/check_transformers.py makes the comparison.
final class TransformersTokenizerTests: XCTestCase {
    /// Texts whose ids must agree: protocol tags, names, digits and arithmetic, whitespace,
    /// non-ASCII bytes, near misses of tags, and whole transcripts.
    static let texts = [
        "",
        "<|user|>Who leads Zikstu?<|assistant|>",
        "<call>search(leader of Zikstu)</call><obs>Zikstu is led by Fekfanres.</obs><answer>Fekfanres</answer><|end|>",
        "calc(12*7) = 84; 3.14159 + 2 = 5.14159; -0.5e3",
        "lookup(Zelmar, capital)  Quorvin\n\tand  double  spaces \r\n",
        "Zürich, naïve café, 東京, 🙂, ÆØÅ",
        "<cal> <|user| </answer <answer>x</answer> <|reserved_3|><|pad|><|begin|>",
        "thethethe aaaa ZZZ zZ the The THE",
    ]

    /// Demonstration lines (OpenAI chat format) whose rendering `apply_chat_template` must
    /// reproduce: thinking before calls, a call without thinking, two arguments in the tool's
    /// order, content as parts, non-ASCII text, and an answer the rendering trims.
    static let conversations = [
        #"{"messages": [{"role": "user", "content": "What is 12*7, in Zürich?"}, {"role": "assistant", "content": "Compute it.", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "calc", "arguments": {"expression": "12*7"}}}]}, {"role": "tool", "tool_call_id": "c1", "content": "84"}, {"role": "assistant", "content": " 84\n"}]}"#,
        #"{"messages": [{"role": "user", "content": "How many districts has the capital of Zelmar?"}, {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "lookup", "arguments": {"entity": "Zelmar", "attribute": "capital"}}}]}, {"role": "tool", "content": "Quorvin"}, {"role": "assistant", "content": [{"type": "text", "text": "Then the size of Quorvin."}], "tool_calls": [{"type": "function", "function": {"name": "search", "arguments": {"query": "districts of Quorvin — café"}}}]}, {"role": "tool", "content": "Quorvin has 12 districts (東京)."}, {"role": "assistant", "content": "12"}]}"#,
    ]

    func testAutoTokenizerEncodesOurIDsAndRendersTheProtocol() throws {
        guard let python = ProcessInfo.processInfo.environment["ARPO_TRANSFORMERS_PYTHON"] else {
            throw XCTSkip("set ARPO_TRANSFORMERS_PYTHON to a Python with transformers and jinja2 to run this check")
        }
        let probe = try runProcess(URL(fileURLWithPath: python), ["-c", "import transformers, jinja2"])
        guard probe.status == 0 else {
            throw XCTSkip("\(python) cannot import transformers and jinja2 (pip install transformers jinja2): \(probe.error.split(separator: "\n").last ?? "")")
        }
        var bpe = TokenizerConfiguration()
        bpe.kind = .bpe
        bpe.merges = 400
        bpe.trainingEpisodes = 400
        let learned = try bpe.makeTokenizer(environment: EnvironmentConfig(), seed: 0)
        let episodes = (0..<4).map { Episode.sample(split: .train, seed: UInt64($0)) }
        let texts = Self.texts + episodes.map(\.prompt) + episodes.map { ExpertSolver().demonstrate($0).transcript }

        let root = try temporaryDirectory(self)
        // The byte tokenizer in reference/ with compact calls; the BPE in a checkpoint with json calls.
        for (name, tokenizer, callFormat) in [("byte", Tokenizer(), CallFormat.compact), ("bpe", learned, .json)] {
            let run = RunDirectory(root.appendingPathComponent(name))
            try FileManager.default.createDirectory(at: run.url, withIntermediateDirectories: true)
            var generator = RandomGenerator(seed: 1)
            let configuration = LlamaConfiguration(vocabularySize: tokenizer.vocabularySize, hiddenSize: 16, intermediateSize: 32, layerCount: 1, headCount: 2, maxPositions: 64)
            let model = LlamaModel(configuration: configuration, generator: &generator)
            let directory: URL
            if name == "byte" {
                try run.saveReference(model: model, tokenizer: tokenizer, callFormat: callFormat)
                directory = run.referenceURL
            } else {
                let state = RunState(phase: .sft, sftStep: 1, rlStep: 0, generator: generator, consecutiveNonfinite: 0, referencePolicy: nil, accuracyAfterSFT: nil, toolCallsExecuted: 0, elapsedSeconds: 1)
                try run.saveCheckpoint(model: model, tokenizer: tokenizer, callFormat: callFormat, optimizer: AdamW(named: model.namedParameters), state: state, globalStep: 1, keep: 1)
                directory = try XCTUnwrap(run.latestCheckpoint()).appendingPathComponent("model")
            }
            let encodings = texts.map { ["text": $0, "ids": tokenizer.encode($0, allowingSpecialTokens: true)] as [String: Any] }
            let chats = try self.chats(ProtocolCodec(tokenizer: tokenizer), saved: callFormat)
            let expected = "{\"encodings\": \(try jsonText(encodings)), \"chats\": [\(chats.joined(separator: ", "))]}"
            let expectedURL = root.appendingPathComponent("\(name)-expected.json")
            try Data(expected.utf8).write(to: expectedURL)
            let check = try runProcess(URL(fileURLWithPath: python), [checkScript.path, directory.path, expectedURL.path], timeout: 600)
            XCTAssertEqual(check.status, 0, "\(name): \(check.output)\n\(check.error)")
            XCTAssertTrue(check.output.contains("encodings: \(texts.count) of \(texts.count) agree"), "\(name): \(check.output)")
            let chatCount = 1 + 2 * Self.conversations.count
            XCTAssertTrue(check.output.contains("chats: \(chatCount) of \(chatCount) agree"), "\(name): \(check.output)")
            print("transformers tokenizer (\(name), \(callFormat.rawValue) calls): \(check.output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    /// The chats to check, each a JSON object with the messages as written (key order kept:
    /// a compact call lists its arguments' values in the order the object gives them), the
    /// template arguments, and the text and ids the trainer gives the conversation: the
    /// prompt with a generation prompt, then each conversation rendered by `DemonstrationFile`
    /// in the directory's call format (`saved`, the template's default) and in the other one
    /// (the template argument `call_format`).
    func chats(_ codec: ProtocolCodec, saved: CallFormat) throws -> [String] {
        let question = "What is 12*7, in Zürich?"
        var chats = [try chat(messages: #"[{"role": "user", "content": "What is 12*7, in Zürich?"}]"#, generationPrompt: true, arguments: [:], text: "<|user|>\(question)<|assistant|>", ids: codec.promptTokens(question))]
        let tools = ToolName.allCases.map(\.toolDescription)
        for line in Self.conversations {
            let messages = try XCTUnwrap(line.range(of: #"\[.*\]"#, options: .regularExpression).map { String(line[$0]) })
            for format in CallFormat.allCases {
                let demonstration = try XCTUnwrap(DemonstrationFile.parse(Data(line.utf8), file: "chat", tools: tools, config: EnvironmentConfig(callFormat: format)).first)
                let ids = codec.promptTokens(demonstration.prompt) + demonstration.segments.flatMap { segment in
                    segment.role == .policy ? codec.tokenizer.encode(segment.text, allowingSpecialTokens: true) : codec.observationTokens(segment.text)
                }
                let text = "<|user|>\(demonstration.prompt)<|assistant|>" + demonstration.transcript
                chats.append(try chat(messages: messages, generationPrompt: false, arguments: format == saved ? [:] : ["call_format": format.rawValue], text: text, ids: ids))
            }
        }
        return chats
    }

    func chat(messages: String, generationPrompt: Bool, arguments: [String: String], text: String, ids: [Int]) throws -> String {
        let fields: [String: Any] = ["add_generation_prompt": generationPrompt, "template_arguments": arguments, "text": text, "ids": ids]
        return "{\"messages\": \(messages), " + String(try jsonText(fields).dropFirst())
    }

    func jsonText(_ object: Any) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    var checkScript: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scripts/check_transformers.py")
    }
}
