/// The format check of a finished transcript (ARPO's "format" for the hierarchical reward).
///
/// A transcript (everything after `<|assistant|>`, tags and observations included) is
/// well-formed when all of these hold:
///
/// 1. Tags only appear in the shape
///    `text (<call>call</call><obs>observation</obs> text)* <answer>answer</answer> [<|end|>]`:
///    every `<call>` is closed by `</call>` before any other tag; every `</call>` is followed
///    at once by `<obs>` … `</obs>` (written by the environment), and `<obs>` appears nowhere
///    else; `<|user|>`, `<|assistant|>` and `<|pad|>` do not appear at all.
/// 2. There is exactly one `<answer>` … `</answer>`, after the last observation, and its text is
///    not empty or only whitespace.
/// 3. Nothing follows `</answer>` except one optional `<|end|>`; not even whitespace.
/// 4. The episode ended because the policy answered (`EndReason.answered`), so it stayed within
///    the token and tool-call limits.
///
/// Thinking text is free anywhere outside tags before the answer. A call whose content is
/// malformed, names an unknown tool or has bad arguments does not break the format (the policy
/// may recover from it); it is recorded as an error instead.
struct TranscriptFormat {
    /// The first rule broken, in words; nil when the transcript is well-formed (rule 4 is
    /// checked by the episode).
    let violation: String?
    /// The text of the first complete `<answer>` … `</answer>`, if any.
    let answer: String?
    /// Whether a call was left open or broken by a tag before the environment saw it: such a
    /// call is recorded as `malformed_call` at the end.
    let hasUnansweredMalformedCall: Bool

    private enum State {
        case free, inCall, awaitingObservation, inObservation, inAnswer, afterAnswer, ended
    }

    /// Checks `transcript`, in which the environment answered `answeredCalls` calls.
    init(transcript: String, answeredCalls: Int) {
        var state = State.free
        var violation: String?
        var answer: String?
        var answerText = ""
        var callIndex = -1
        var unansweredMalformed = false

        func fail(_ reason: String) {
            if violation == nil { violation = reason }
        }
        func brokenCall(_ reason: String) {
            fail(reason)
            // A call the environment answered was already labelled by the action evaluator.
            if callIndex >= answeredCalls { unansweredMalformed = true }
        }

        for piece in TranscriptPiece.split(transcript) {
            switch piece {
            case let .text(text):
                switch state {
                case .free, .inCall, .inObservation: break
                case .inAnswer: answerText += text
                case .awaitingObservation: fail("text between </call> and <obs>")
                case .afterAnswer: fail("text after </answer>")
                case .ended: fail("text after <|end|>")
                }
            case let .tag(tag):
                switch (tag, state) {
                case (.callOpen, .free):
                    callIndex += 1
                    state = .inCall
                case (.callClose, .inCall):
                    state = .awaitingObservation
                case (.observationOpen, .awaitingObservation):
                    state = .inObservation
                case (.observationClose, .inObservation):
                    state = .free
                case (.answerOpen, .free):
                    state = .inAnswer
                    answerText = ""
                case (.answerClose, .inAnswer):
                    if answer == nil { answer = answerText }
                    if answerText.allSatisfy(\.isWhitespace) { fail("empty answer") }
                    state = .afterAnswer
                case (.end, .afterAnswer):
                    state = .ended
                case (_, .inCall):
                    brokenCall("\(tag.rawValue) inside a call")
                    state = .free
                    // Re-read the tag outside the call so its own rules still apply.
                    TranscriptFormat.step(tag, &state)
                case (.answerOpen, .afterAnswer), (.answerOpen, .ended):
                    fail("more than one answer")
                case (.end, .ended):
                    fail("more than one <|end|>")
                case (.observationOpen, _), (.observationClose, _):
                    fail("\(tag.rawValue) not written by the environment")
                case (.user, _), (.assistant, _), (.pad, _):
                    fail("\(tag.rawValue) in the transcript")
                case (.end, _):
                    fail("<|end|> without an answer")
                default:
                    fail("\(tag.rawValue) out of place")
                }
            }
        }
        switch state {
        case .afterAnswer, .ended: break
        case .inCall: brokenCall("call left open")
        case .inAnswer: fail("answer left open")
        case .awaitingObservation: fail("call without an observation")
        case .inObservation: fail("observation left open")
        case .free: fail("no answer")
        }
        self.violation = violation
        self.answer = answer
        self.hasUnansweredMalformedCall = unansweredMalformed
    }

    /// After a broken call, the tag that broke it starts whatever it normally starts.
    private static func step(_ tag: ProtocolTag, _ state: inout State) {
        switch tag {
        case .callOpen: state = .inCall
        case .answerOpen: state = .inAnswer
        default: break
        }
    }
}
