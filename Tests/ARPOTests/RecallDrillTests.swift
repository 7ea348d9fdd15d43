import ARPO
import Foundation
import Policy
import Tensor
import ToolEnv
import XCTest

/// Fact-recall drills: listed facts, then sentences completed with the listed value or
/// `unknown`, right, and trained on the completions only.
final class RecallDrillTests: XCTestCase {
    func makeTrainer(recallDrillFraction: Double, copyDrillFraction: Double = 0) -> SupervisedTrainer {
        drillTrainer {
            $0.copyDrillFraction = copyDrillFraction
            $0.recallDrillFraction = recallDrillFraction
        }
    }

    func testSentencesEndWithTheListedValueOrUnknownAndOnlyTheEndingsAreTrained() {
        let trainer = makeTrainer(recallDrillFraction: 0.25, copyDrillFraction: 0.125)
        let batch = trainer.batch(step: 4)
        XCTAssertEqual(batch.count, 8)
        let tokenizer = Tokenizer()
        let recall = batch.filter(\.isDocument).filter { tokenizer.decode($0.tokens).contains("\nThe ") }
        XCTAssertEqual(recall.count, 2)
        for drill in recall {
            let lines = tokenizer.decode(drill.tokens).components(separatedBy: "\n").filter { !$0.isEmpty }
            // "The leader of Zikstu is Fekfanres." sentences, split back into (start, value).
            let listed = lines[0].components(separatedBy: ". ").map { $0.hasSuffix(".") ? String($0.dropLast()) : $0 }
            XCTAssertEqual(listed.count, SupervisedTrainer.recallFacts)
            var valueOf: [String: String] = [:]
            for fact in listed {
                let parts = fact.components(separatedBy: " is ")
                XCTAssertEqual(parts.count, 2, fact)
                valueOf[parts[0]] = parts[1]
            }
            let questions = lines.dropFirst()
            XCTAssertEqual(questions.count, SupervisedTrainer.recallQuestions)
            var endings: [String] = []
            for line in questions {
                XCTAssertTrue(line.hasSuffix("."), line)
                let parts = String(line.dropLast()).components(separatedBy: " is ")
                XCTAssertEqual(parts.count, 2, line)
                XCTAssertEqual(parts[1], valueOf[parts[0]] ?? "unknown", line)
                endings.append(" \(parts[1]).")
            }
            XCTAssertEqual(endings.filter { $0 == " unknown." }.count, SupervisedTrainer.recallQuestions / 3)
            let trained = zip(drill.tokens, drill.lossMask).filter(\.1).map(\.0)
            XCTAssertEqual(tokenizer.decode(trained), endings.joined())
        }
        XCTAssertNotEqual(recall[0].tokens, recall[1].tokens)
        XCTAssertEqual(makeTrainer(recallDrillFraction: 0.25, copyDrillFraction: 0.125).batch(step: 4).map(\.tokens), batch.map(\.tokens))
    }

    func testUnknownQuestionsAskAboutAnAttributeTheListHolds() {
        // As an unanswerable question's search results do: the attribute is there, the entity not.
        var sharing = 0, total = 0
        for seed in UInt64(0)..<200 {
            let episode = Episode.sample(split: .train, seed: seed, config: EnvironmentConfig(difficulty: 1, faults: .none))
            let drill = episode.factRecallDrill(listed: 6, questions: 6, drawSeed: seed)
            for question in drill.questions where question.answer == " unknown." {
                total += 1
                let attribute = question.prompt.components(separatedBy: " of ")[0]
                if drill.facts.contains(attribute + " of ") { sharing += 1 }
                XCTAssertFalse(drill.facts.contains(question.prompt), "\(question.prompt) is listed")
            }
        }
        XCTAssertEqual(total, 400)
        XCTAssertGreaterThan(sharing, 360)
    }

    func testRecallDrillsLeaveTheOtherStreamsAsTheyWere() {
        let without = makeTrainer(recallDrillFraction: 0, copyDrillFraction: 0.125).batch(step: 1)
        let with = makeTrainer(recallDrillFraction: 0.25, copyDrillFraction: 0.125).batch(step: 1)
        XCTAssertEqual(with.first { $0.isDocument }?.tokens, without.first { $0.isDocument }?.tokens)
        let demonstrations: ([SupervisedTrainer.Example]) -> [[Int]] = { $0.filter { !$0.isDocument }.map(\.tokens) }
        XCTAssertEqual(demonstrations(with), Array(demonstrations(without).prefix(demonstrations(with).count)))
    }

    func testTheFractionIsCheckedAgainstTheOtherDrills() throws {
        var configuration = SupervisedConfiguration()
        configuration.batchSize = 8
        configuration.copyDrillFraction = 0.5
        configuration.recallDrillFraction = 0.5
        XCTAssertThrowsError(try configuration.validate(path: "sft"))
        configuration.copyDrillFraction = 0
        configuration.recallDrillFraction = 1.5
        XCTAssertThrowsError(try configuration.validate(path: "sft")) { XCTAssertTrue("\($0)".contains("recall_drill_fraction"), "\($0)") }
        configuration.recallDrillFraction = 0.25
        XCTAssertNoThrow(try configuration.validate(path: "sft"))
        let decoded = try JSONDecoder().decode(SupervisedConfiguration.self, from: Data(#"{"recall_drill_fraction": 0.25}"#.utf8))
        XCTAssertEqual(decoded.recallDrillFraction, 0.25)
    }
}
