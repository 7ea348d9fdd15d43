import XCTest
@testable import ToolEnv

final class AnswerEvaluatorTests: XCTestCase {
    private func evaluate(_ answer: String, _ gold: String, _ kind: AnswerKind) -> AnswerEvaluation {
        AnswerEvaluator.evaluate(answer: answer, gold: gold, kind: kind, tolerance: RewardConfig().numericTolerance)
    }

    func testTextNormalisation() {
        XCTAssertEqual(AnswerEvaluator.normalize("  The  Quorvin! "), "quorvin")
        XCTAssertEqual(AnswerEvaluator.normalize("An apple, a day"), "apple day")
        XCTAssertTrue(evaluate("quorvin.", "Quorvin", .text).isCorrect)
        XCTAssertTrue(evaluate("The Quorvin", "Quorvin", .text).isCorrect)
        XCTAssertFalse(evaluate("Quorvina", "Quorvin", .text).isCorrect)
        XCTAssertFalse(evaluate("", "Quorvin", .text).isCorrect)
        XCTAssertFalse(evaluate("...", "Quorvin", .text).isCorrect, "nothing left after normalisation is not a match")
    }

    func testTokenF1() {
        XCTAssertEqual(AnswerEvaluator.tokenF1("quorvin zelmar", "quorvin"), 2.0 / 3.0, accuracy: 1e-12)
        XCTAssertEqual(AnswerEvaluator.tokenF1("a b c", "a b c"), 1)
        XCTAssertEqual(AnswerEvaluator.tokenF1("x", "y"), 0)
        XCTAssertEqual(AnswerEvaluator.tokenF1("", "y"), 0)
        let partial = evaluate("Quorvin or Zelmar", "Quorvin", .text)
        XCTAssertFalse(partial.isCorrect)
        XCTAssertEqual(partial.score(.exact), 0)
        XCTAssertEqual(partial.score(.f1), 0.5, accuracy: 1e-12)
    }

    func testNumbers() {
        XCTAssertEqual(AnswerEvaluator.parseNumber("52301"), 52301)
        XCTAssertEqual(AnswerEvaluator.parseNumber(" 52,301. "), 52301)
        XCTAssertEqual(AnswerEvaluator.parseNumber("-3.5"), -3.5)
        XCTAssertEqual(AnswerEvaluator.parseNumber("−12"), -12)
        XCTAssertEqual(AnswerEvaluator.parseNumber("+7"), 7)
        XCTAssertEqual(AnswerEvaluator.parseNumber("1,234,567"), 1_234_567)
        for text in ["", "-", "12,34", "1,2345", "12 34", "1e5", "twelve", "3..", ".5.", "52301 people", "1.2.3", "0x10"] {
            XCTAssertNil(AnswerEvaluator.parseNumber(text), text)
        }
        XCTAssertTrue(evaluate("84.0", "84", .number).isCorrect)
        XCTAssertTrue(evaluate("4519.8", "4519.8", .number).isCorrect)
        XCTAssertTrue(evaluate("1000000.0000001", "1000000", .number).isCorrect, "within the relative tolerance")
        XCTAssertFalse(evaluate("1000001", "1000000", .number).isCorrect, "off by one is wrong even for large numbers")
        XCTAssertFalse(evaluate("3427153", "3427152", .number).isCorrect)
        XCTAssertFalse(evaluate("84 85", "84", .number).isCorrect)
        let wrong = evaluate("83", "84", .number)
        XCTAssertEqual(wrong.numericMatch, false)
        XCTAssertEqual(wrong.score(.f1), 0, "numbers never earn partial credit")
    }

    func testUnanswerable() {
        for answer in ["unknown", "Unknown.", "not in the knowledge base", "I don't know", "Cannot be determined"] {
            XCTAssertTrue(evaluate(answer, "unknown", .unanswerable).isCorrect, answer)
        }
        for answer in ["Quorvin", "1962", "unknown 1962", ""] {
            XCTAssertFalse(evaluate(answer, "unknown", .unanswerable).isCorrect, answer)
        }
        XCTAssertFalse(evaluate("unknown", "Quorvin", .text).isCorrect, "saying unknown to an answerable question is wrong")
    }
}
