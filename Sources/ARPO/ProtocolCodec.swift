import Policy
import ToolEnv

/// Maps between the environment's strings and the policy's tokens.
///
/// A transcript is `<|user|>` question `<|assistant|>` then the policy's text, where each tool
/// result arrives as `<obs>` result `</obs>`. Questions and tool results are encoded as bytes, so
/// they can never inject a protocol token; only the policy's own sampled special tokens (and the
/// trusted expert demonstrations) carry tags.
public struct ProtocolCodec: Sendable {
    public let tokenizer: Tokenizer
    public let userID: Int, assistantID: Int, callOpenID: Int, callCloseID: Int
    public let observationOpenID: Int, observationCloseID: Int, answerOpenID: Int, answerCloseID: Int, endID: Int

    public init(tokenizer: Tokenizer = Tokenizer()) {
        self.tokenizer = tokenizer
        func id(_ tag: ProtocolTag) -> Int {
            guard let id = tokenizer.specialTokenID(tag.rawValue) else { preconditionFailure("the tokenizer lacks \(tag.rawValue)") }
            return id
        }
        userID = id(.user)
        assistantID = id(.assistant)
        callOpenID = id(.callOpen)
        callCloseID = id(.callClose)
        observationOpenID = id(.observationOpen)
        observationCloseID = id(.observationClose)
        answerOpenID = id(.answerOpen)
        answerCloseID = id(.answerClose)
        endID = id(.end)
    }

    /// `<|user|>` question `<|assistant|>`.
    public func promptTokens(_ question: String) -> [Int] {
        [userID] + tokenizer.encode(question) + [assistantID]
    }

    /// `<obs>` result `</obs>`, the result as plain bytes.
    public func observationTokens(_ observation: String) -> [Int] {
        [observationOpenID] + tokenizer.encode(observation) + [observationCloseID]
    }

    /// Text of response tokens as the environment reads it: special tokens as their tags.
    public func text(_ tokens: ArraySlice<Int>) -> String { tokenizer.decode(Array(tokens)) }

    /// An expert demonstration as response tokens with their loss mask: policy segments are
    /// trusted text whose tags become special tokens (mask 1); each observation segment becomes
    /// `<obs>` bytes `</obs>` (mask 0).
    public func responseTokens(of demonstration: Demonstration) -> (tokens: [Int], lossMask: [Bool]) {
        responseTokens(of: demonstration.segments)
    }

    /// The response tokens and loss mask of a demonstration's segments (the built-in solver's
    /// or a user's file's), as `responseTokens(of:)` describes.
    public func responseTokens(of segments: [Segment]) -> (tokens: [Int], lossMask: [Bool]) {
        var tokens: [Int] = [], mask: [Bool] = []
        for segment in segments {
            switch segment.role {
            case .policy:
                let ids = tokenizer.encode(segment.text, allowingSpecialTokens: true)
                tokens += ids
                mask += [Bool](repeating: true, count: ids.count)
            case .observation:
                let ids = observationTokens(segment.text)
                tokens += ids
                mask += [Bool](repeating: false, count: ids.count)
            }
        }
        return (tokens, mask)
    }
}
