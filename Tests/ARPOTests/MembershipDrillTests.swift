import ARPO
import Foundation
import Policy
import Tensor
import ToolEnv
import XCTest

/// Membership drills: a list, then `ITEM? yes|no` questions whose answers are right and trained.
final class MembershipDrillTests: XCTestCase {
    func makeTrainer(membershipDrillFraction: Double, copyDrillFraction: Double = 0) -> SupervisedTrainer {
        drillTrainer {
            $0.copyDrillFraction = copyDrillFraction
            $0.membershipDrillFraction = membershipDrillFraction
        }
    }

    func testQuestionsAreAnsweredRightHalfYesHalfNoWithTheLossOnTheAnswersOnly() {
        let trainer = makeTrainer(membershipDrillFraction: 0.25, copyDrillFraction: 0.125)
        let batch = trainer.batch(step: 4)
        XCTAssertEqual(batch.count, 8)
        // 1 copy drill (two equal lines), then 2 membership drills (a list and its questions).
        let drills = batch.filter(\.isDocument)
        XCTAssertEqual(drills.count, 3)
        let membership = drills.filter { Tokenizer().decode($0.tokens).contains("?") }
        XCTAssertEqual(membership.count, 2)
        let tokenizer = Tokenizer()
        for drill in membership {
            let lines = tokenizer.decode(drill.tokens).components(separatedBy: "\n").filter { !$0.isEmpty }
            let listed = Set(lines[0].split(separator: " ").map(String.init))
            XCTAssertEqual(listed.count, SupervisedTrainer.membershipItems)
            let questions = lines.dropFirst()
            XCTAssertEqual(questions.count, SupervisedTrainer.membershipQuestions)
            var answers: [String] = []
            for line in questions {
                let parts = line.components(separatedBy: "? ")
                XCTAssertEqual(parts.count, 2, line)
                XCTAssertEqual(parts[1], listed.contains(parts[0]) ? "yes" : "no", line)
                answers.append(parts[1])
            }
            XCTAssertEqual(answers.filter { $0 == "yes" }.count, SupervisedTrainer.membershipQuestions / 2)
            // The trained tokens spell the answers, in order, and nothing else.
            let trained = zip(drill.tokens, drill.lossMask).filter(\.1).map(\.0)
            XCTAssertEqual(tokenizer.decode(trained), answers.joined())
        }
        XCTAssertNotEqual(membership[0].tokens, membership[1].tokens)
        // A function of (seed, step): a second trainer draws the same batch.
        XCTAssertEqual(makeTrainer(membershipDrillFraction: 0.25, copyDrillFraction: 0.125).batch(step: 4).map(\.tokens), batch.map(\.tokens))
    }

    func testMembershipDrillsLeaveTheOtherStreamsAsTheyWere() {
        // Adding membership drills replaces demonstrations at the batch's end of the demonstration
        // part, but the copy drills and the demonstrations drawn are those of a run without them.
        let without = makeTrainer(membershipDrillFraction: 0, copyDrillFraction: 0.125).batch(step: 1)
        let with = makeTrainer(membershipDrillFraction: 0.25, copyDrillFraction: 0.125).batch(step: 1)
        let copyDrill: ([SupervisedTrainer.Example]) -> [Int]? = { $0.first { $0.isDocument }?.tokens }
        XCTAssertEqual(copyDrill(with), copyDrill(without))
        let demonstrations: ([SupervisedTrainer.Example]) -> [[Int]] = { $0.filter { !$0.isDocument }.map(\.tokens) }
        XCTAssertEqual(demonstrations(with), Array(demonstrations(without).prefix(demonstrations(with).count)))
    }

    func testTheFractionIsCheckedAgainstTheOtherDrills() {
        var configuration = SupervisedConfiguration()
        configuration.batchSize = 8
        configuration.copyDrillFraction = 0.5
        configuration.membershipDrillFraction = 0.5
        XCTAssertThrowsError(try configuration.validate(path: "sft"))
        configuration.membershipDrillFraction = 1.5
        configuration.copyDrillFraction = 0
        XCTAssertThrowsError(try configuration.validate(path: "sft"))
        configuration.membershipDrillFraction = 0.25
        XCTAssertNoThrow(try configuration.validate(path: "sft"))
    }
}

/// A cold start for the drill tests: a width-32 policy, batches of 8 fresh difficulty-1
/// demonstrations without faults, and the drill fractions `configure` sets.
func drillTrainer(_ configure: (inout SupervisedConfiguration) -> Void) -> SupervisedTrainer {
    var generator = RandomGenerator(seed: 3)
    let model = LlamaModel(configuration: LlamaConfiguration(hiddenSize: 32, intermediateSize: 64, layerCount: 1, headCount: 2, maxPositions: 512), generator: &generator)
    var configuration = SupervisedConfiguration()
    configuration.batchSize = 8
    configuration.steps = 10
    configuration.freshDemonstrations = true
    configuration.demonstrations = 16
    configure(&configuration)
    let environment = EnvironmentConfig(difficulty: 1, faults: .none)
    return SupervisedTrainer(model: model, optimizer: AdamW(named: model.namedParameters), configuration: configuration, environment: environment, seed: 5)
}
