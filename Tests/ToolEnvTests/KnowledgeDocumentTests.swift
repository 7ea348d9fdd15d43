import Foundation
import XCTest
@testable import ToolEnv

/// The knowledge base as text: one paragraph per entity, every fact once.
final class KnowledgeDocumentTests: XCTestCase {
    func testEveryFactAppearsOnceInItsSubjectsParagraphInAttributeOrder() {
        for difficulty in 1...3 {
            for family in TaskFamily.allCases {
                let episode = Episode(family: family, split: .train, seed: 17, config: EnvironmentConfig(difficulty: difficulty))
                let paragraphs = episode.knowledgeBaseParagraphs
                let subjects = episode.world.allNames.filter { name in episode.world.facts.contains { $0.subject == name } }
                XCTAssertEqual(paragraphs.count, subjects.count)
                for (paragraph, subject) in zip(paragraphs, subjects) {
                    let facts = episode.world.facts.filter { $0.subject == subject }
                    let ordered = Attribute.allCases.flatMap { attribute in facts.filter { $0.attribute == attribute } }
                    XCTAssertEqual(paragraph, ordered.map(\.text).joined(separator: " "))
                }
                let total = paragraphs.map { $0.components(separatedBy: ". The ").count }.reduce(0, +)
                XCTAssertEqual(total, episode.world.facts.count, "difficulty \(difficulty), \(family)")
            }
        }
    }

    func testAnUnanswerableTasksMissingFactIsNotInTheText() {
        var found = 0
        for seed in UInt64(0)..<40 {
            let episode = Episode(family: .unanswerable, split: .train, seed: seed, config: EnvironmentConfig(difficulty: 2))
            guard let step = episode.task.plan.last else { continue }
            XCTAssertFalse(episode.knowledgeBaseParagraphs.joined(separator: " ").contains("The \(step.topic) is"), "seed \(seed)")
            found += 1
        }
        XCTAssertGreaterThan(found, 30)
    }
}
