import XCTest
@testable import ToolEnv

final class SplitTests: XCTestCase {
    private func names(_ split: Split, seeds: Range<UInt64>) -> Set<String> {
        var result = Set<String>()
        for seed in seeds {
            for family in TaskFamily.allCases where family != .arithmetic {
                let episode = Episode(family: family, split: split, seed: seed, config: EnvironmentConfig(difficulty: 3))
                result.formUnion(episode.entityNames.map { $0.lowercased() })
                // Names that appear only in the question (an unanswerable task's missing entity).
                for word in episode.prompt.split(whereSeparator: { !$0.isLetter }) where word.first!.isUppercase {
                    result.insert(word.lowercased())
                }
            }
        }
        return result
    }

    func testSplitsShareNoEntityNames() {
        // The same seeds in both splits, so any leak through the seed would show.
        let train = names(.train, seeds: 0..<300)
        let eval = names(.eval, seeds: 0..<300)
        XCTAssertGreaterThan(train.count, 1000)
        XCTAssertGreaterThan(eval.count, 1000)
        // Question words such as "What" are in both; entity names are not.
        let questionWords: Set<String> = ["what", "who", "which", "how", "in", "when", "where", "find", "tell", "name", "compute"]
        XCTAssertEqual(train.intersection(eval).subtracting(questionWords), [])
    }

    func testNamesBelongToTheirSplit() {
        for seed in UInt64(0)..<200 {
            for split in Split.allCases {
                let episode = Episode(family: .multiHop, split: split, seed: seed)
                for name in episode.entityNames {
                    XCTAssertEqual(NameGenerator.split(of: name), split, name)
                }
            }
        }
    }

    func testSplitsShareNoArithmeticQuestions() {
        var train = Set<String>()
        var eval = Set<String>()
        for seed in UInt64(0)..<3000 {
            let config = EnvironmentConfig(difficulty: 1)  // the smallest expression space
            train.insert(Episode(family: .arithmetic, split: .train, seed: seed, config: config).task.plan[0].arguments)
            eval.insert(Episode(family: .arithmetic, split: .eval, seed: seed, config: config).task.plan[0].arguments)
        }
        XCTAssertEqual(train.intersection(eval), [])
    }

    func testTheSameSeedInTwoSplitsGivesUnrelatedEpisodes() {
        var sameQuestion = 0
        for seed in UInt64(0)..<200 {
            let train = Episode(family: .arithmetic, split: .train, seed: seed)
            let eval = Episode(family: .arithmetic, split: .eval, seed: seed)
            if train.prompt == eval.prompt { sameQuestion += 1 }
            XCTAssertNotEqual(train.streamSeed, eval.streamSeed)
        }
        XCTAssertEqual(sameQuestion, 0)
    }

    func testNamesAreInventedAndWellFormed() {
        var generator = SeededGenerator(seed: 1)
        var names = NameGenerator(split: .train)
        var seen = Set<String>()
        for _ in 0..<2000 {
            let name = names.next(using: &generator)
            XCTAssertTrue((4...10).contains(name.count), name)
            XCTAssertTrue(name.first!.isUppercase)
            XCTAssertTrue(name.dropFirst().allSatisfy { $0.isLowercase }, name)
            XCTAssertFalse(NameGenerator.reservedWords.contains(name.lowercased()), name)
            XCTAssertTrue(seen.insert(name).inserted, "names are unique within a generator")
        }
    }
}
