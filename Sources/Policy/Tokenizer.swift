import Foundation

/// Byte-level BPE tokenizer: ids 0–255 are bytes, 256–271 special tokens for dialogue and the
/// tool protocol, and ids from 272 up merged byte sequences, one per learned merge.
///
/// Text is always encoded from its bytes, so any UTF-8 string round-trips, and a prompt or a
/// tool result that *spells* `<call>` stays plain text: it can never inject a protocol token.
/// Special tokens enter a sequence only through `specialTokenID`, or through
/// `encode(_:allowingSpecialTokens: true)` for trusted text such as expert demonstrations
/// (tiktoken's `allowed_special`).
///
/// Pre-tokenization: a run of ASCII letters is one piece, and every other byte (spaces, digits,
/// punctuation) is a piece of its own. Merges apply inside a piece only, so
/// - a name is spelled by the same tokens wherever it stands (after a space, a parenthesis or a
///   tag), and copying it from a question or an observation means copying the same few tokens;
/// - numbers stay one token per digit, as in LLaMA's tokenizer, so arithmetic is digit by digit.
///
/// With no merges (`Tokenizer()`) this is the plain byte tokenizer: 272 ids, one per byte.
public struct Tokenizer: Sendable, Equatable {
    /// The special tokens, in id order from 256.
    public static let specialTokens: [String] = [
        "<|begin|>", "<|end|>", "<|pad|>",
        "<|user|>", "<|assistant|>",
        "<call>", "</call>", "<obs>", "</obs>", "<answer>", "</answer>",
        "<|reserved_0|>", "<|reserved_1|>", "<|reserved_2|>", "<|reserved_3|>", "<|reserved_4|>",
    ]

    /// Number of byte tokens.
    public static let byteCount = 256
    /// The vocabulary without merges: 256 bytes plus the special tokens (272). Merged tokens
    /// take the ids from here up.
    public static let baseVocabularySize = byteCount + specialTokens.count

    /// Two tokens whose concatenation becomes a new one.
    public struct Merge: Hashable, Sendable {
        public let left: Int
        public let right: Int
        public init(_ left: Int, _ right: Int) {
            self.left = left
            self.right = right
        }
    }

    /// The merges in rank order: merge i makes token `baseVocabularySize + i`.
    public let merges: [Merge]
    /// Token id of each merge's result.
    private let mergedID: [Merge: Int]
    /// The bytes of every non-special token, by id (special tokens: empty).
    private let bytesByID: [[UInt8]]
    private let idsBySpecialToken: [String: Int]

    /// The byte-level tokenizer: no merges.
    public init() {
        try! self.init(merges: [])
    }

    /// A tokenizer with `merges` in rank order. Each merge may only combine bytes and earlier
    /// merges' tokens.
    public init(merges: [Merge]) throws {
        var ids: [String: Int] = [:]
        for (index, token) in Tokenizer.specialTokens.enumerated() { ids[token] = Tokenizer.byteCount + index }
        idsBySpecialToken = ids
        var bytes = (0..<Tokenizer.byteCount).map { [UInt8($0)] } + [[UInt8]](repeating: [], count: Tokenizer.specialTokens.count)
        var mergedID: [Merge: Int] = [:]
        for (rank, merge) in merges.enumerated() {
            let id = Tokenizer.baseVocabularySize + rank
            for part in [merge.left, merge.right] {
                guard part >= 0, part < id, !(Tokenizer.byteCount..<Tokenizer.baseVocabularySize).contains(part) else {
                    throw PolicyError("merge \(rank) (\(merge.left), \(merge.right)) combines token \(part), which is a special token or not yet defined")
                }
            }
            guard mergedID[merge] == nil else { throw PolicyError("merge \(rank) (\(merge.left), \(merge.right)) appears twice") }
            mergedID[merge] = id
            bytes.append(bytes[merge.left] + bytes[merge.right])
        }
        self.merges = merges
        self.mergedID = mergedID
        bytesByID = bytes
    }

    public static func == (lhs: Tokenizer, rhs: Tokenizer) -> Bool { lhs.merges == rhs.merges }

    /// Size of the vocabulary: 272 plus one per merge.
    public var vocabularySize: Int { Tokenizer.baseVocabularySize + merges.count }

    /// The id of a special token spelled `text` (for example `"</call>"`), or nil.
    public func specialTokenID(_ text: String) -> Int? { idsBySpecialToken[text] }

    /// The id of a special token that must exist.
    public func id(of special: String) -> Int {
        guard let id = idsBySpecialToken[special] else { preconditionFailure("\(special) is not a special token") }
        return id
    }

    public var beginID: Int { id(of: "<|begin|>") }
    public var endID: Int { id(of: "<|end|>") }
    public var padID: Int { id(of: "<|pad|>") }

    /// Whether `id` is a special token.
    public func isSpecial(_ id: Int) -> Bool { (Tokenizer.byteCount..<Tokenizer.baseVocabularySize).contains(id) }

    /// The bytes token `id` stands for (empty for a special token).
    public func bytes(of id: Int) -> [UInt8] {
        precondition(id >= 0 && id < vocabularySize, "token id \(id) is outside the vocabulary 0..<\(vocabularySize)")
        return bytesByID[id]
    }

    /// Encodes `text`; spelled-out special tokens stay text.
    public func encode(_ text: String) -> [Int] { encode(bytes: Array(text.utf8)) }

    /// Encodes `text`; with `allowingSpecialTokens`, spellings of special tokens become their ids.
    /// Use that only on trusted text (expert demonstrations), never on prompts or tool results.
    public func encode(_ text: String, allowingSpecialTokens: Bool) -> [Int] {
        guard allowingSpecialTokens else { return encode(text) }
        let bytes = Array(text.utf8)
        var ids: [Int] = []
        ids.reserveCapacity(bytes.count)
        var plainStart = 0, index = 0
        outer: while index < bytes.count {
            if bytes[index] == UInt8(ascii: "<") {
                for (offset, token) in Tokenizer.specialTokens.enumerated() {
                    let tokenBytes = Array(token.utf8)
                    if index + tokenBytes.count <= bytes.count && Array(bytes[index..<(index + tokenBytes.count)]) == tokenBytes {
                        ids += encode(bytes: bytes[plainStart..<index])
                        ids.append(Tokenizer.byteCount + offset)
                        index += tokenBytes.count
                        plainStart = index
                        continue outer
                    }
                }
            }
            index += 1
        }
        ids += encode(bytes: bytes[plainStart..<bytes.count])
        return ids
    }

    /// Encodes plain bytes: letter runs through the merges, every other byte as itself.
    public func encode(bytes: some Collection<UInt8>) -> [Int] {
        let bytes = Array(bytes)
        var ids: [Int] = []
        ids.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            guard Tokenizer.isLetter(bytes[index]) else {
                ids.append(Int(bytes[index]))
                index += 1
                continue
            }
            let end = Tokenizer.letterRunEnd(bytes, from: index)
            ids += mergePiece(bytes[index..<end].map { Int($0) })
            index = end
        }
        return ids
    }

    /// Whether a byte belongs to a letter run (ASCII letters only: pieces never split a UTF-8
    /// sequence, whose bytes are all pieces of their own).
    static func isLetter(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    /// The end of the letter run that starts at `start` (a letter).
    static func letterRunEnd(_ bytes: [UInt8], from start: Int) -> Int {
        var end = start + 1
        while end < bytes.count && isLetter(bytes[end]) { end += 1 }
        return end
    }

    /// BPE on one piece: repeatedly merge the adjacent pair of lowest rank, as training did.
    func mergePiece(_ piece: [Int]) -> [Int] {
        var symbols = piece
        guard !merges.isEmpty else { return symbols }
        while symbols.count > 1 {
            var best: Int?
            for index in 0..<(symbols.count - 1) {
                if let id = mergedID[Merge(symbols[index], symbols[index + 1])], id < (best ?? .max) { best = id }
            }
            guard let id = best else { break }
            symbols = Tokenizer.applying(merges[id - Tokenizer.baseVocabularySize], as: id, to: symbols)
        }
        return symbols
    }

    /// `symbols` with every occurrence of `merge`'s pair, left to right, replaced by `id`.
    static func applying(_ merge: Merge, as id: Int, to symbols: [Int]) -> [Int] {
        var merged: [Int] = []
        merged.reserveCapacity(symbols.count)
        var index = 0
        while index < symbols.count {
            if index + 1 < symbols.count && symbols[index] == merge.left && symbols[index + 1] == merge.right {
                merged.append(id)
                index += 2
            } else {
                merged.append(symbols[index])
                index += 1
            }
        }
        return merged
    }

    /// Text for `ids`: byte runs decode as UTF-8 (invalid sequences become U+FFFD), special tokens
    /// as their spelling.
    public func decode(_ ids: [Int]) -> String {
        var text = ""
        var pending: [UInt8] = []
        func flush() {
            if !pending.isEmpty { text += String(decoding: pending, as: UTF8.self) }
            pending.removeAll(keepingCapacity: true)
        }
        for id in ids {
            precondition(id >= 0 && id < vocabularySize, "token id \(id) is outside the vocabulary 0..<\(vocabularySize)")
            if isSpecial(id) {
                flush()
                text += Tokenizer.specialTokens[id - Tokenizer.byteCount]
            } else {
                pending += bytesByID[id]
            }
        }
        flush()
        return text
    }

    /// The bytes of `ids`, skipping special tokens: what a tool call's or answer's text is.
    public func decodeBytes(_ ids: some Sequence<Int>) -> String {
        var bytes: [UInt8] = []
        for id in ids where !isSpecial(id) { bytes += bytesByID[id] }
        return String(decoding: bytes, as: UTF8.self)
    }
}

// MARK: - Training

extension Tokenizer {
    /// Learns `mergeCount` merges from `texts` by byte-pair encoding (Sennrich et al. 2016): count
    /// the letter runs, then repeatedly merge the most frequent adjacent pair of tokens. Ties go
    /// to the pair of lowest ids, so the result depends on the texts alone.
    ///
    /// - Throws: when the texts hold fewer than `mergeCount` pairs seen at least twice.
    public static func train(texts: some Sequence<String>, mergeCount: Int) throws -> Tokenizer {
        var wordCounts: [[UInt8]: Int] = [:]
        for text in texts {
            let bytes = Array(text.utf8)
            var index = 0
            while index < bytes.count {
                guard isLetter(bytes[index]) else { index += 1; continue }
                let end = letterRunEnd(bytes, from: index)
                if end - index > 1 { wordCounts[Array(bytes[index..<end]), default: 0] += 1 }
                index = end
            }
        }
        // Words in a fixed order, so that nothing depends on dictionary order.
        let sortedWords = wordCounts.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        var words = sortedWords.map { $0.key.map { Int($0) } }
        let counts = sortedWords.map(\.value)
        var pairCounts: [Merge: Int] = [:]
        var wordsWithPair: [Merge: Set<Int>] = [:]
        for (index, word) in words.enumerated() {
            for position in 0..<(word.count - 1) {
                let pair = Merge(word[position], word[position + 1])
                pairCounts[pair, default: 0] += counts[index]
                wordsWithPair[pair, default: []].insert(index)
            }
        }
        var merges: [Merge] = []
        merges.reserveCapacity(mergeCount)
        while merges.count < mergeCount {
            var best: (pair: Merge, count: Int)?
            for (pair, count) in pairCounts where count >= 2 {
                if let current = best {
                    if count > current.count || (count == current.count && (pair.left, pair.right) < (current.pair.left, current.pair.right)) {
                        best = (pair, count)
                    }
                } else {
                    best = (pair, count)
                }
            }
            guard let (pair, _) = best else {
                throw PolicyError("the tokenizer's training text supports only \(merges.count) merges (pairs seen at least twice), not \(mergeCount); lower the merge count or give more text")
            }
            let id = baseVocabularySize + merges.count
            merges.append(pair)
            for index in wordsWithPair[pair] ?? [] {
                let word = words[index], count = counts[index]
                let merged = applying(pair, as: id, to: word)
                guard merged.count != word.count else { continue }
                for position in 0..<(word.count - 1) {
                    let old = Merge(word[position], word[position + 1])
                    pairCounts[old, default: 0] -= count
                    if pairCounts[old] == 0 { pairCounts[old] = nil }
                }
                for position in 0..<max(merged.count - 1, 0) {
                    let new = Merge(merged[position], merged[position + 1])
                    pairCounts[new, default: 0] += count
                    wordsWithPair[new, default: []].insert(index)
                }
                words[index] = merged
            }
            wordsWithPair[pair] = nil
        }
        return try Tokenizer(merges: merges)
    }
}

// MARK: - Hugging Face tokenizer.json

extension Tokenizer {
    /// The file name `transformers` looks for in a model directory.
    public static let fileName = "tokenizer.json"

    /// GPT-2's printable stand-ins for bytes, which byte-level BPE files use as their alphabet.
    static let byteCharacters: [Character] = {
        let printable = Set(Array(33...126) + Array(161...172) + Array(174...255))
        var extra = 0
        return (0..<256).map { byte in
            var scalar = byte
            if !printable.contains(byte) {
                scalar = 256 + extra
                extra += 1
            }
            return Character(Unicode.Scalar(UInt32(scalar))!)
        }
    }()

    static func printable(_ bytes: [UInt8]) -> String { String(bytes.map { byteCharacters[Int($0)] }) }

    /// The tokenizer as a Hugging Face `tokenizers` file: a byte-level BPE model whose
    /// pre-tokenizer splits letter runs from single other characters as `encode` does, with the
    /// special tokens as added tokens.
    public func huggingFaceJSON() throws -> Data {
        var vocabulary: [String: Int] = [:]
        for id in 0..<vocabularySize where !isSpecial(id) { vocabulary[Tokenizer.printable(bytesByID[id])] = id }
        // The special tokens are in the model's vocabulary too: `tokenizers` gives an added token
        // the model's id for its content, and otherwise an id after the vocabulary (1280 + i
        // here, not 256 + i), whatever id `added_tokens` states.
        for (offset, token) in Tokenizer.specialTokens.enumerated() { vocabulary[token] = Tokenizer.byteCount + offset }
        let addedTokens: [[String: Any]] = Tokenizer.specialTokens.enumerated().map { offset, content in
            ["id": Tokenizer.byteCount + offset, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true]
        }
        let object: [String: Any] = [
            "version": "1.0",
            "truncation": NSNull(),
            "padding": NSNull(),
            "added_tokens": addedTokens,
            "normalizer": NSNull(),
            "pre_tokenizer": [
                "type": "Sequence",
                "pretokenizers": [
                    ["type": "Split", "pattern": ["Regex": "[A-Za-z]+|[^A-Za-z]"], "behavior": "Isolated", "invert": false],
                    ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false],
                ],
            ],
            "post_processor": NSNull(),
            "decoder": ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false],
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": vocabulary,
                "merges": merges.map { [Tokenizer.printable(bytesByID[$0.left]), Tokenizer.printable(bytesByID[$0.right])] },
            ] as [String: Any],
        ]
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }

    /// The file beside `tokenizer.json` that tells `AutoTokenizer` how to use it.
    public static let configFileName = "tokenizer_config.json"

    /// `tokenizer_config.json` for a model of `modelMaxLength` positions: the plain fast
    /// tokenizer class (`LlamaTokenizerFast` would add a BOS token the policy never saw), the
    /// special tokens' roles and ids, nothing added around the text, and `chatTemplate` (a Jinja
    /// template for `apply_chat_template`) when given.
    public func huggingFaceConfigJSON(modelMaxLength: Int, chatTemplate: String?) throws -> Data {
        let addedTokensDecoder = Dictionary(uniqueKeysWithValues: Tokenizer.specialTokens.enumerated().map { offset, content in
            (String(Tokenizer.byteCount + offset), ["content": content, "lstrip": false, "normalized": false, "rstrip": false, "single_word": false, "special": true] as [String: Any])
        })
        var object: [String: Any] = [
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": "<|begin|>",
            "eos_token": "<|end|>",
            "pad_token": "<|pad|>",
            "unk_token": NSNull(),
            "add_bos_token": false,
            "add_eos_token": false,
            "clean_up_tokenization_spaces": false,
            "model_max_length": modelMaxLength,
            "added_tokens_decoder": addedTokensDecoder,
        ]
        if let chatTemplate { object["chat_template"] = chatTemplate }
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }

    /// Reads a file written by `huggingFaceJSON()`. Checks that the special tokens, the bytes
    /// and every merge's id are where this tokenizer puts them; the error names the file.
    public static func load(huggingFaceJSON url: URL) throws -> Tokenizer {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw PolicyError("cannot read \(url.path): \(error.localizedDescription)") }
        func fail(_ reason: String) -> PolicyError { PolicyError("\(url.path): \(reason)") }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { throw fail("not a JSON object") }
        guard let model = object["model"] as? [String: Any], model["type"] as? String == "BPE",
            let vocabulary = model["vocab"] as? [String: Int], let mergeList = model["merges"] as? [Any]
        else { throw fail("model must be a BPE model with vocab and merges") }
        let added = (object["added_tokens"] as? [[String: Any]]) ?? []
        for (offset, token) in specialTokens.enumerated() {
            guard added.contains(where: { $0["content"] as? String == token && $0["id"] as? Int == byteCount + offset }) else {
                throw fail("added_tokens must hold \(token) with id \(byteCount + offset)")
            }
        }
        for byte in 0..<byteCount where vocabulary[printable([UInt8(byte)])] != byte {
            throw fail("vocab must give byte \(byte) the id \(byte)")
        }
        var bytesByPrintable: [String: [UInt8]] = [:]
        for byte in 0..<byteCount { bytesByPrintable[printable([UInt8(byte)])] = [UInt8(byte)] }
        var merges: [Merge] = []
        for (rank, entry) in mergeList.enumerated() {
            let parts: [String]
            if let pair = entry as? [String] { parts = pair } else if let text = entry as? String { parts = text.split(separator: " ", omittingEmptySubsequences: false).map(String.init) } else { parts = [] }
            guard parts.count == 2, let left = vocabulary[parts[0]], let right = vocabulary[parts[1]], let id = vocabulary[parts[0] + parts[1]] else {
                throw fail("merge \(rank) is not a pair of vocabulary tokens whose concatenation is in the vocabulary")
            }
            guard id == baseVocabularySize + rank else {
                throw fail("merge \(rank) makes token \(id), but this tokenizer numbers merges from \(baseVocabularySize) in rank order")
            }
            merges.append(Merge(left, right))
        }
        // The special tokens may be in the vocabulary (at their ids) or only in `added_tokens`.
        let specialsInVocabulary = specialTokens.enumerated().filter { vocabulary[$0.element] != nil }
        for (offset, token) in specialsInVocabulary where vocabulary[token] != byteCount + offset {
            throw fail("vocab must give \(token) the id \(byteCount + offset)")
        }
        guard vocabulary.count == byteCount + merges.count + specialsInVocabulary.count else {
            throw fail("vocab holds \(vocabulary.count) tokens; bytes, merges and special tokens account for \(byteCount + merges.count + specialsInVocabulary.count)")
        }
        do { return try Tokenizer(merges: merges) } catch let error as PolicyError { throw fail(error.description) }
    }
}
