import Foundation
import Policy
import Tensor
import XCTest

/// The byte-level BPE: training on a hand-checked corpus, encoding by merge rank, round trips,
/// special tokens, pre-tokenization and the tokenizer.json file.
final class BPETokenizerTests: XCTestCase {
    /// "aaab" ×3 and "ab" ×2: the pair counts are (a, a) 6, (a, b) 5, so the first merge is
    /// "aa" (id 272). Then "aaab" is [aa, a, b]: (aa, a) 3, (a, b) 3 + 2 = 5, so the second is
    /// "ab" (273). Then "aaab" is [aa, ab]: (aa, ab) 3, the third merge (274).
    func testTrainingMergesTheMostFrequentPairFirst() throws {
        let tokenizer = try Tokenizer.train(texts: ["aaab aaab", "aaab", "ab, ab!"], mergeCount: 3)
        let a = Int(UInt8(ascii: "a")), b = Int(UInt8(ascii: "b"))
        XCTAssertEqual(tokenizer.merges, [Tokenizer.Merge(a, a), Tokenizer.Merge(a, b), Tokenizer.Merge(272, 273)])
        XCTAssertEqual(tokenizer.vocabularySize, 275)
        XCTAssertEqual(tokenizer.encode("aaab"), [274])
        XCTAssertEqual(tokenizer.encode("ab aaaa"), [273, 32, 272, 272])
        XCTAssertEqual(tokenizer.bytes(of: 274), Array("aaab".utf8))
    }

    func testTiesGoToTheLowestPairAndTooFewPairsIsAnError() throws {
        // "xy" and "ab" twice each: a tie, broken towards (a, b).
        let tokenizer = try Tokenizer.train(texts: ["xy ab xy ab"], mergeCount: 1)
        XCTAssertEqual(tokenizer.merges, [Tokenizer.Merge(Int(UInt8(ascii: "a")), Int(UInt8(ascii: "b")))])
        XCTAssertThrowsError(try Tokenizer.train(texts: ["xy ab xy ab"], mergeCount: 3)) { error in
            XCTAssertTrue("\(error)".contains("supports only 2 merges"), "\(error)")
        }
    }

    func testEncodingAppliesMergesByRankNotByPosition() throws {
        // Merges: (b, c) first, then (a, b). "abc" must become [a, bc], not [ab, c].
        let a = Int(UInt8(ascii: "a")), b = Int(UInt8(ascii: "b")), c = Int(UInt8(ascii: "c"))
        let tokenizer = try Tokenizer(merges: [Tokenizer.Merge(b, c), Tokenizer.Merge(a, b)])
        XCTAssertEqual(tokenizer.encode("abc"), [a, 272])
        XCTAssertEqual(tokenizer.encode("abab"), [273, 273])
    }

    func testMergesCannotUseSpecialOrLaterTokens() {
        XCTAssertThrowsError(try Tokenizer(merges: [Tokenizer.Merge(97, 256)]))
        XCTAssertThrowsError(try Tokenizer(merges: [Tokenizer.Merge(97, 272)]))
        XCTAssertThrowsError(try Tokenizer(merges: [Tokenizer.Merge(97, 98), Tokenizer.Merge(97, 98)]))
    }

    /// A tokenizer trained on names and words like the environment's.
    func trainedTokenizer() throws -> Tokenizer {
        var generator = RandomGenerator(seed: 11)
        let syllables = ["zik", "stu", "fek", "fan", "res", "bra", "sfe", "to", "shen", "brem", "qu", "or", "vin"]
        var texts: [String] = []
        for _ in 0..<400 {
            let name = (0..<2).map { _ in syllables[Int(generator.next() % UInt64(syllables.count))] }.joined()
            let capitalized = name.prefix(1).uppercased() + name.dropFirst()
            texts.append("The leader of \(capitalized) is \(capitalized).")
        }
        return try Tokenizer.train(texts: texts, mergeCount: 60)
    }

    func testANameIsSpelledTheSameWayWhereverItStands() throws {
        let tokenizer = try trainedTokenizer()
        let name = tokenizer.encode("Zikstu")
        XCTAssertLessThan(name.count, 6, "the name is not merged: \(name)")
        for context in ["leader of Zikstu)", "(Zikstu", "<answer>Zikstu</answer>", "Zikstu."] {
            let ids = tokenizer.encode(context, allowingSpecialTokens: true)
            XCTAssertTrue(ids.indices.contains { Array(ids[$0...].prefix(name.count)) == name }, "\(context) does not hold \(name): \(ids)")
        }
    }

    func testDigitsSpacesAndPunctuationStayOneTokenPerByte() throws {
        let tokenizer = try trainedTokenizer()
        XCTAssertEqual(tokenizer.encode("1984 (x) + 2.5"), Array("1984 (x) + 2.5".utf8).map(Int.init))
    }

    func testAnyUTF8RoundTripsAndSpelledSpecialTokensStayText() throws {
        let tokenizer = try trainedTokenizer()
        var generator = RandomGenerator(seed: 4)
        for text in ["", "The leader of Zikstu is Fekfan.", "naïve café — 東京 🚀", "</obs><|end|>", "\u{0}\u{7F}\n\t"] {
            XCTAssertEqual(tokenizer.decode(tokenizer.encode(text)), text)
        }
        for _ in 0..<300 {
            let characters = (0..<Int(generator.next() % 24)).compactMap { _ -> Character? in
                let pool: UInt32 = generator.next() % 2 == 0 ? 128 : 0x2FFFF
                return Unicode.Scalar(UInt32(generator.next() % UInt64(pool))).map(Character.init)
            }
            let text = String(characters)
            XCTAssertEqual(tokenizer.decode(tokenizer.encode(text)), text)
            XCTAssertEqual(tokenizer.decodeBytes(tokenizer.encode(text)), text)
        }
        let ids = tokenizer.encode("x</obs><|end|>")
        XCTAssertFalse(ids.contains(where: tokenizer.isSpecial), "plain text produced a special token: \(ids)")
        let trusted = tokenizer.encode("Zikstu<call>x</call>", allowingSpecialTokens: true)
        XCTAssertEqual(Array(trusted.suffix(3)), [tokenizer.id(of: "<call>"), 120, tokenizer.id(of: "</call>")])
        XCTAssertEqual(tokenizer.decode(trusted), "Zikstu<call>x</call>")
        XCTAssertEqual(tokenizer.decodeBytes(trusted), "Zikstux")
    }

    func testTrainingDependsOnTheTextsAlone() throws {
        XCTAssertEqual(try trainedTokenizer(), try trainedTokenizer())
    }

    func testTheFileRoundTripsAndBadFilesNameTheProblem() throws {
        let tokenizer = try trainedTokenizer()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bpe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent(Tokenizer.fileName)
        try tokenizer.huggingFaceJSON().write(to: url)
        XCTAssertEqual(try Tokenizer.load(huggingFaceJSON: url), tokenizer)
        try Tokenizer().huggingFaceJSON().write(to: url)
        XCTAssertEqual(try Tokenizer.load(huggingFaceJSON: url), Tokenizer())

        var object = try JSONSerialization.jsonObject(with: tokenizer.huggingFaceJSON()) as! [String: Any]
        var model = object["model"] as! [String: Any]
        var merges = model["merges"] as! [[String]]
        merges.swapAt(0, 1)
        model["merges"] = merges
        object["model"] = model
        try JSONSerialization.data(withJSONObject: object).write(to: url)
        XCTAssertThrowsError(try Tokenizer.load(huggingFaceJSON: url)) { error in
            XCTAssertTrue("\(error)".contains(url.path) && "\(error)".contains("merge 0"), "\(error)")
        }
        try Data("{".utf8).write(to: url)
        XCTAssertThrowsError(try Tokenizer.load(huggingFaceJSON: url)) { error in
            XCTAssertTrue("\(error)".contains(url.path), "\(error)")
        }
    }

    /// `tokenizers` (what `AutoTokenizer` loads) gives an added token the model vocabulary's id
    /// for its content and otherwise an id after the vocabulary, whatever `added_tokens` states;
    /// so the special tokens stand in `model.vocab` at their own ids (256 + i).
    func testSpecialTokensStandInTheVocabularyAtTheirIDs() throws {
        let tokenizer = try trainedTokenizer()
        let object = try JSONSerialization.jsonObject(with: tokenizer.huggingFaceJSON()) as! [String: Any]
        let vocabulary = (object["model"] as! [String: Any])["vocab"] as! [String: Int]
        XCTAssertEqual(vocabulary.count, tokenizer.vocabularySize)
        for (offset, token) in Tokenizer.specialTokens.enumerated() {
            XCTAssertEqual(vocabulary[token], Tokenizer.byteCount + offset, token)
        }
        XCTAssertEqual(Set(vocabulary.values).count, vocabulary.count, "two tokens share an id")

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bpe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent(Tokenizer.fileName)
        func write(vocabulary: [String: Int]) throws {
            var file = object, model = object["model"] as! [String: Any]
            model["vocab"] = vocabulary
            file["model"] = model
            try JSONSerialization.data(withJSONObject: file).write(to: url)
        }
        // Without the special tokens in the vocabulary (only in added_tokens) the file still loads.
        try write(vocabulary: vocabulary.filter { !Tokenizer.specialTokens.contains($0.key) })
        XCTAssertEqual(try Tokenizer.load(huggingFaceJSON: url), tokenizer)
        // A special token at another id is refused, naming it.
        var moved = vocabulary
        moved[Tokenizer.specialTokens[0]] = tokenizer.vocabularySize
        try write(vocabulary: moved)
        XCTAssertThrowsError(try Tokenizer.load(huggingFaceJSON: url)) { error in
            XCTAssertTrue("\(error)".contains(Tokenizer.specialTokens[0]) && "\(error)".contains("\(Tokenizer.byteCount)"), "\(error)")
        }
    }
}
