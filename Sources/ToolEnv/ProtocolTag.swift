/// The tags of the episode protocol.
///
/// The policy's tokenizer has one special token per tag, spelled with exactly these strings; the
/// environment works on plain strings and finds the tags by their spelling, and the rollout
/// engine maps between strings and tokens.
///
/// A transcript reads:
/// `<|user|>question<|assistant|>thinking<call>search(capital of Zelmar)</call><obs>result</obs>…<answer>Quorvin</answer><|end|>`
/// The environment only ever sees what follows `<|assistant|>`.
public enum ProtocolTag: String, CaseIterable, Sendable {
    /// Opens the user's turn (the prompt).
    case user = "<|user|>"
    /// Opens the policy's turn.
    case assistant = "<|assistant|>"
    /// Opens a tool call written by the policy: `<call>name(arguments)</call>`.
    case callOpen = "<call>"
    /// Closes a tool call; the environment answers as soon as it is written.
    case callClose = "</call>"
    /// Opens an observation, written by the environment (never trained on).
    case observationOpen = "<obs>"
    /// Closes an observation.
    case observationClose = "</obs>"
    /// Opens the policy's final answer.
    case answerOpen = "<answer>"
    /// Closes the policy's final answer.
    case answerClose = "</answer>"
    /// Ends the policy's turn; nothing may follow it.
    case end = "<|end|>"
    /// Padding for batched sequences; never part of a transcript.
    case pad = "<|pad|>"
}

extension ProtocolTag {
    /// The tag's UTF-8 bytes. Tags are found byte by byte, never with `String` comparison,
    /// which would treat a tag followed by a combining mark as a different character.
    var bytes: [UInt8] { Array(rawValue.utf8) }

    /// Every tag's bytes, in `allCases` order.
    static let allBytes: [(tag: ProtocolTag, bytes: [UInt8])] = allCases.map { ($0, Array($0.rawValue.utf8)) }

    /// The tag spelled at `index` of `bytes`, if any.
    static func tag(in bytes: [UInt8], at index: Int) -> ProtocolTag? {
        guard bytes[index] == UInt8(ascii: "<") else { return nil }
        for (tag, tagBytes) in allBytes where index + tagBytes.count <= bytes.count {
            var matches = true
            for offset in 1..<tagBytes.count where bytes[index + offset] != tagBytes[offset] {
                matches = false
                break
            }
            if matches { return tag }
        }
        return nil
    }

    /// Removes every tag spelling from `text`.
    ///
    /// Observations and prompts must never contain a tag: the tokenizer would turn it into a
    /// special token and the policy would see, say, a fake end of observation. One pass that
    /// checks the end of the output after every byte also removes tags that only appear once
    /// another is removed (`<ca<obs>ll>`).
    static func removingTags(from text: String) -> String {
        guard text.utf8.contains(UInt8(ascii: "<")) else { return text }
        var output: [UInt8] = []
        output.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            output.append(byte)
            guard byte == UInt8(ascii: ">") else { continue }
            for (_, tagBytes) in allBytes where output.count >= tagBytes.count {
                if output[(output.count - tagBytes.count)...].elementsEqual(tagBytes) {
                    output.removeLast(tagBytes.count)
                    break
                }
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Whether `text` spells any tag.
    static func containsTag(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.indices.contains { tag(in: bytes, at: $0) != nil }
    }
}

/// A transcript split into tags and the text between them.
enum TranscriptPiece: Equatable {
    case text(String)
    case tag(ProtocolTag)

    /// Splits `text` at every tag.
    static func split(_ text: String) -> [TranscriptPiece] {
        let bytes = Array(text.utf8)
        var pieces: [TranscriptPiece] = []
        var textStart = 0
        var index = 0
        while index < bytes.count {
            if let tag = ProtocolTag.tag(in: bytes, at: index) {
                if index > textStart {
                    pieces.append(.text(String(decoding: bytes[textStart..<index], as: UTF8.self)))
                }
                pieces.append(.tag(tag))
                index += tag.rawValue.utf8.count
                textStart = index
            } else {
                index += 1
            }
        }
        if textStart < bytes.count {
            pieces.append(.text(String(decoding: bytes[textStart...], as: UTF8.self)))
        }
        return pieces
    }
}
