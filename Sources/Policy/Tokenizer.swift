/// Byte-level tokenizer: ids 0–255 are bytes; ids from 256 up are special tokens for dialogue and
/// the tool protocol.
///
/// Text is always encoded as bytes, so any UTF-8 string round-trips and a prompt or a tool result
/// that *spells* `<call>` stays five plain bytes: it can never inject a protocol token. Special
/// tokens enter a sequence only through `Token`/`specialTokenID`, or through
/// `encode(_:allowingSpecialTokens: true)` for trusted text such as expert demonstrations
/// (tiktoken's `allowed_special`).
public struct ByteTokenizer: Sendable {
    /// The special tokens, in id order from 256.
    public static let specialTokens: [String] = [
        "<|begin|>", "<|end|>", "<|pad|>",
        "<|user|>", "<|assistant|>",
        "<call>", "</call>", "<obs>", "</obs>", "<answer>", "</answer>",
        "<|reserved_0|>", "<|reserved_1|>", "<|reserved_2|>", "<|reserved_3|>", "<|reserved_4|>",
    ]

    /// Number of byte tokens.
    public static let byteCount = 256
    /// Size of the vocabulary: 256 bytes plus the special tokens (272).
    public static let vocabularySize = byteCount + specialTokens.count

    private let idsBySpecialToken: [String: Int]

    public init() {
        var ids: [String: Int] = [:]
        for (index, token) in ByteTokenizer.specialTokens.enumerated() { ids[token] = ByteTokenizer.byteCount + index }
        idsBySpecialToken = ids
    }

    public var vocabularySize: Int { ByteTokenizer.vocabularySize }

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
    public func isSpecial(_ id: Int) -> Bool { id >= ByteTokenizer.byteCount }

    /// The UTF-8 bytes of `text` as token ids. Spelled-out special tokens stay bytes.
    public func encode(_ text: String) -> [Int] { text.utf8.map { Int($0) } }

    /// Encodes `text`; with `allowingSpecialTokens`, spellings of special tokens become their ids.
    /// Use that only on trusted text (expert demonstrations), never on prompts or tool results.
    public func encode(_ text: String, allowingSpecialTokens: Bool) -> [Int] {
        guard allowingSpecialTokens else { return encode(text) }
        let bytes = Array(text.utf8)
        var ids: [Int] = []
        ids.reserveCapacity(bytes.count)
        var index = 0
        outer: while index < bytes.count {
            if bytes[index] == UInt8(ascii: "<") {
                for (offset, token) in ByteTokenizer.specialTokens.enumerated() {
                    let tokenBytes = Array(token.utf8)
                    if index + tokenBytes.count <= bytes.count && Array(bytes[index..<(index + tokenBytes.count)]) == tokenBytes {
                        ids.append(ByteTokenizer.byteCount + offset)
                        index += tokenBytes.count
                        continue outer
                    }
                }
            }
            ids.append(Int(bytes[index]))
            index += 1
        }
        return ids
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
            if id < ByteTokenizer.byteCount {
                pending.append(UInt8(id))
            } else {
                flush()
                text += ByteTokenizer.specialTokens[id - ByteTokenizer.byteCount]
            }
        }
        flush()
        return text
    }

    /// The bytes of `ids`, skipping special tokens: what a tool call's or answer's text is.
    public func decodeBytes(_ ids: some Sequence<Int>) -> String {
        String(decoding: ids.compactMap { $0 < ByteTokenizer.byteCount ? UInt8($0) : nil }, as: UTF8.self)
    }
}
