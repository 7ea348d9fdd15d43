import XCTest
@testable import ToolEnv

final class FormatTests: XCTestCase {
    private func violation(_ transcript: String, answeredCalls: Int = 0) -> String? {
        TranscriptFormat(transcript: transcript, answeredCalls: answeredCalls).violation
    }

    func testWellFormedTranscripts() {
        XCTAssertNil(violation("<answer>84</answer><|end|>"))
        XCTAssertNil(violation("<answer>84</answer>"), "<|end|> is optional")
        XCTAssertNil(violation("Think.<call>calc(12*7)</call><obs>84</obs>So<answer>84</answer><|end|>", answeredCalls: 1))
        XCTAssertNil(violation("<call>x</call><obs>error</obs><call>calc(1)</call><obs></obs> <answer>1</answer><|end|>", answeredCalls: 2))
        let format = TranscriptFormat(transcript: "a<answer> Quorvin </answer><|end|>", answeredCalls: 0)
        XCTAssertEqual(format.answer, " Quorvin ")
    }

    func testEveryRuleIsEnforced() {
        let broken: [(String, String)] = [
            ("no answer at all", "no answer"),
            ("<answer>1</answer> ", "whitespace after </answer>"),
            ("<answer>1</answer><|end|>more", "text after <|end|>"),
            ("<answer>1</answer>x<|end|>", "text between </answer> and <|end|>"),
            ("<answer>1</answer><answer>2</answer>", "two answers"),
            ("<answer>  </answer><|end|>", "empty answer"),
            ("<answer>1", "answer left open"),
            ("<call>calc(1)", "call left open"),
            ("<call>calc(1)</call><answer>1</answer>", "a call without an observation"),
            ("<obs>84</obs><answer>84</answer>", "an observation the policy wrote"),
            ("</obs><answer>84</answer>", "a stray </obs>"),
            ("<call>calc(1)</call><obs>1<answer>1</answer>", "observation left open"),
            ("<|user|>hi<answer>1</answer>", "<|user|>"),
            ("<|assistant|><answer>1</answer>", "<|assistant|>"),
            ("<answer>1</answer><|pad|>", "<|pad|>"),
            ("<|end|>", "<|end|> without an answer"),
            ("</answer>", "a stray </answer>"),
            ("<answer>1<call>calc(1)</call></answer>", "a call inside the answer"),
            ("<call>calc(<answer>1</answer>", "an answer inside a call"),
            ("<answer>1</answer><|end|><|end|>", "two ends"),
        ]
        for (transcript, description) in broken {
            XCTAssertNotNil(violation(transcript), description)
        }
    }

    func testACallBrokenBeforeTheEnvironmentSawItIsMalformed() {
        XCTAssertTrue(TranscriptFormat(transcript: "<call>calc(1)", answeredCalls: 0).hasUnansweredMalformedCall)
        XCTAssertTrue(TranscriptFormat(transcript: "<call>calc(<answer>1</answer>", answeredCalls: 0).hasUnansweredMalformedCall)
        // The environment answered this call and labelled it already: not counted twice.
        XCTAssertFalse(TranscriptFormat(transcript: "<call>a<answer>b</call><obs>e</obs><answer>1</answer>", answeredCalls: 1).hasUnansweredMalformedCall)
        XCTAssertFalse(TranscriptFormat(transcript: "<answer>1</answer>", answeredCalls: 0).hasUnansweredMalformedCall)
    }

    func testATagFollowedByACombiningMarkIsStillATag() {
        // Tags are matched on bytes: a combining accent after ">" must not hide </answer>.
        let transcript = "<answer>1</answer>\u{301}"
        XCTAssertEqual(violation(transcript), "text after </answer>")
        XCTAssertEqual(TranscriptFormat(transcript: transcript, answeredCalls: 0).answer, "1")
    }

    func testFinishAppliesTheFormatPenalty() {
        let episode = Episode(family: .arithmetic, split: .train, seed: 1, config: .faultFree)
        var policy = ScriptedPolicy(episode)
        policy.call("<call>calc(\(episode.task.plan[0].arguments))</call>")
        let reward = policy.finish("<answer>\(episode.task.goldAnswer)</answer><|end|> trailing")
        XCTAssertFalse(reward.formatCorrect)
        XCTAssertEqual(reward.formatViolation, "text after <|end|>")
        XCTAssertEqual(reward.total, -1)
        XCTAssertEqual(reward.formatReward, -1)
        XCTAssertFalse(reward.isCorrect, "a right answer in a broken format does not count as solved")
        XCTAssertEqual(reward.answerScore, 1, "the answer itself is still scored, for logs")
    }

    func testTokenLimitIsAFormatErrorAndOverLength() {
        let episode = Episode(family: .arithmetic, split: .train, seed: 2, config: .faultFree)
        var policy = ScriptedPolicy(episode)
        let reward = policy.finish("Let me think about this for a very long", endReason: .tokenLimit)
        XCTAssertEqual(reward.total, -1)
        XCTAssertEqual(reward.errors, [.overLength, .noAnswer])
        XCTAssertEqual(reward.endReason, .tokenLimit)
    }

    func testCallCutByTheTokenLimitIsMalformed() {
        let episode = Episode(family: .arithmetic, split: .train, seed: 3, config: .faultFree)
        var policy = ScriptedPolicy(episode)
        let reward = policy.finish("<call>calc(1+", endReason: .tokenLimit)
        XCTAssertEqual(reward.errors, [.malformedCall, .overLength, .noAnswer])
    }

    func testMalformedCallsDoNotBreakTheFormatWhenThePolicyRecovers() {
        let episode = Episode(family: .arithmetic, split: .train, seed: 4, config: .faultFree)
        var policy = ScriptedPolicy(episode)
        policy.call("<call>calc 1+2</call>")
        policy.call("<call>calculator(1)</call>")
        policy.call("<call>calc(1/0)</call>")
        policy.call("<call>calc(\(episode.task.plan[0].arguments))</call>")
        let reward = policy.finish("<answer>\(episode.task.goldAnswer)</answer><|end|>")
        XCTAssertTrue(reward.formatCorrect)
        XCTAssertTrue(reward.isCorrect)
        XCTAssertEqual(reward.total, 1)
        XCTAssertEqual(reward.errors, [.malformedCall, .unknownTool, .badArguments])
        XCTAssertEqual(reward.executedToolCalls, 1)
        XCTAssertEqual(reward.toolCallAttempts, 4)
    }
}
