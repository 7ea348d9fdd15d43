import Foundation
import Policy
import Tensor
import XCTest

/// The tokenizer files of a model directory, as `transformers` reads them: `tokenizer.json` (the
/// byte-level BPE: vocabulary, merges in rank order, special tokens) and `tokenizer_config.json`
/// (the class, the special tokens' roles, the chat template), for the byte tokenizer and a
/// learned BPE. Whether `AutoTokenizer` then encodes as we do is checked against transformers
/// itself (TrainerTests' TransformersTokenizerTests).
final class HuggingFaceTokenizerFilesTests: XCTestCase {
    func learnedTokenizer() throws -> Tokenizer {
        try Tokenizer.train(texts: ["The leader of Zikstu is Fekfanres.", "Zikstu Zikstu leader leader of the the", "Quorvin is the capital of Zelmar."], mergeCount: 12)
    }

    func object(_ data: Data) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func testTokenizerJSONSpellsEveryTokenInGPT2BytesWithTheMergesInRankOrder() throws {
        for tokenizer in [Tokenizer(), try learnedTokenizer()] {
            let file = try object(tokenizer.huggingFaceJSON())
            let model = try XCTUnwrap(file["model"] as? [String: Any])
            XCTAssertEqual(model["type"] as? String, "BPE")
            let vocabulary = try XCTUnwrap(model["vocab"] as? [String: Int])
            XCTAssertEqual(Set(vocabulary.values), Set(0..<tokenizer.vocabularySize))
            let added = try XCTUnwrap(file["added_tokens"] as? [[String: Any]])
            XCTAssertEqual(added.count, Tokenizer.specialTokens.count)
            for (offset, token) in Tokenizer.specialTokens.enumerated() {
                let entry = try XCTUnwrap(added.first { $0["id"] as? Int == Tokenizer.byteCount + offset }, token)
                XCTAssertEqual(entry["content"] as? String, token)
                XCTAssertEqual(entry["special"] as? Bool, true, token)
                XCTAssertEqual(entry["normalized"] as? Bool, false, "a normalized added token is matched after normalization: \(token)")
                XCTAssertEqual(entry["lstrip"] as? Bool, false, token)
                XCTAssertEqual(entry["rstrip"] as? Bool, false, token)
            }
            // GPT-2's byte alphabet: "A" is itself, the space "Ġ", the newline "Ċ", byte 0 "Ā".
            XCTAssertEqual(vocabulary["A"], 65)
            XCTAssertEqual(vocabulary["Ġ"], 32)
            XCTAssertEqual(vocabulary["Ċ"], 10)
            XCTAssertEqual(vocabulary["Ā"], 0)
            // Merge i is the pair of its parts' spellings and makes token 272 + i.
            let merges = try XCTUnwrap(model["merges"] as? [[String]])
            XCTAssertEqual(merges.count, tokenizer.merges.count)
            for (rank, merge) in tokenizer.merges.enumerated() {
                let left = String(decoding: tokenizer.bytes(of: merge.left), as: UTF8.self)
                let right = String(decoding: tokenizer.bytes(of: merge.right), as: UTF8.self)
                XCTAssertEqual(merges[rank], [left, right], "merge \(rank)")
                XCTAssertEqual(vocabulary[left + right], Tokenizer.baseVocabularySize + rank, "merge \(rank)")
            }
            // Nothing is added around the text, and letter runs are split from every other
            // character as `encode` splits them.
            XCTAssertTrue(file["post_processor"] is NSNull)
            XCTAssertTrue(file["normalizer"] is NSNull)
            let preTokenizer = try XCTUnwrap(file["pre_tokenizer"] as? [String: Any])
            let steps = try XCTUnwrap(preTokenizer["pretokenizers"] as? [[String: Any]])
            XCTAssertEqual((steps.first?["pattern"] as? [String: String])?["Regex"], "[A-Za-z]+|[^A-Za-z]")
            XCTAssertEqual(steps.last?["type"] as? String, "ByteLevel")
            XCTAssertEqual(steps.last?["use_regex"] as? Bool, false)
        }
    }

    func testTokenizerConfigNamesThePlainFastClassTheSpecialTokensAndTheChatTemplate() throws {
        for tokenizer in [Tokenizer(), try learnedTokenizer()] {
            let config = try object(tokenizer.huggingFaceConfigJSON(modelMaxLength: 384, chatTemplate: "{{- 'template' -}}"))
            XCTAssertEqual(config["tokenizer_class"] as? String, "PreTrainedTokenizerFast", "not LlamaTokenizerFast, which would add a BOS token")
            XCTAssertEqual(config["bos_token"] as? String, "<|begin|>")
            XCTAssertEqual(config["eos_token"] as? String, "<|end|>")
            XCTAssertEqual(config["pad_token"] as? String, "<|pad|>")
            XCTAssertTrue(config["unk_token"] is NSNull, "byte-level BPE has no unknown token")
            XCTAssertEqual(config["add_bos_token"] as? Bool, false)
            XCTAssertEqual(config["add_eos_token"] as? Bool, false)
            XCTAssertEqual(config["clean_up_tokenization_spaces"] as? Bool, false, "decoding must not remove spaces before punctuation")
            XCTAssertEqual(config["model_max_length"] as? Int, 384)
            XCTAssertEqual(config["chat_template"] as? String, "{{- 'template' -}}")
            let decoder = try XCTUnwrap(config["added_tokens_decoder"] as? [String: [String: Any]])
            XCTAssertEqual(decoder.count, Tokenizer.specialTokens.count)
            for (offset, token) in Tokenizer.specialTokens.enumerated() {
                let entry = try XCTUnwrap(decoder[String(Tokenizer.byteCount + offset)], token)
                XCTAssertEqual(entry["content"] as? String, token)
                XCTAssertEqual(entry["special"] as? Bool, true, token)
            }
            let withoutTemplate = try object(tokenizer.huggingFaceConfigJSON(modelMaxLength: 64, chatTemplate: nil))
            XCTAssertNil(withoutTemplate["chat_template"])
            XCTAssertEqual(withoutTemplate["model_max_length"] as? Int, 64)
        }
    }

    func testAModelDirectoryHoldsBothTokenizerFiles() throws {
        let tokenizer = try learnedTokenizer()
        var generator = RandomGenerator(seed: 4)
        let configuration = LlamaConfiguration(vocabularySize: tokenizer.vocabularySize, hiddenSize: 16, intermediateSize: 24, layerCount: 1, headCount: 2, maxPositions: 48)
        let model = LlamaModel(configuration: configuration, generator: &generator)
        let files = Dictionary(uniqueKeysWithValues: try ModelCheckpoint.files(model, tokenizer: tokenizer, chatTemplate: "T").map { ($0.name, $0.data) })
        XCTAssertEqual(Set(files.keys), [ModelCheckpoint.weightsFile, ModelCheckpoint.configFile, Tokenizer.fileName, Tokenizer.configFileName])
        XCTAssertEqual(files[Tokenizer.fileName], try tokenizer.huggingFaceJSON())
        XCTAssertEqual(files[Tokenizer.configFileName], try tokenizer.huggingFaceConfigJSON(modelMaxLength: 48, chatTemplate: "T"))

        let directory = try temporaryDirectory(self).appendingPathComponent("model")
        try ModelCheckpoint.save(model, to: directory, tokenizer: tokenizer, chatTemplate: "T")
        let saved = try object(Data(contentsOf: directory.appendingPathComponent(Tokenizer.configFileName)))
        XCTAssertEqual(saved["chat_template"] as? String, "T")
        XCTAssertEqual(try ModelCheckpoint.loadTokenizer(from: directory, vocabularySize: tokenizer.vocabularySize), tokenizer)
    }
}
