import Foundation

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
    /// Removes every tag spelling from `text`.
    ///
    /// Observations and prompts must never contain a tag: the tokenizer would turn it into a
    /// special token and the policy would see, say, a fake end of observation.
    static func removingTags(from text: String) -> String {
        guard text.contains("<") else { return text }
        var result = text
        var changed = true
        // Repeat, because removing one tag can join the halves of another ("<ca<obs>ll>").
        while changed {
            changed = false
            for tag in ProtocolTag.allCases where result.contains(tag.rawValue) {
                result = result.replacingOccurrences(of: tag.rawValue, with: "")
                changed = true
            }
        }
        return result
    }

    /// The first tag spelled in `text`, if any.
    static func firstTag(in text: Substring) -> ProtocolTag? {
        guard text.contains("<") else { return nil }
        return ProtocolTag.allCases.first { text.contains($0.rawValue) }
    }
}
