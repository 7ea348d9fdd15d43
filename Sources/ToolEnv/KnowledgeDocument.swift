extension Episode {
    /// The episode's knowledge base as text: one paragraph per entity, holding every fact about
    /// it in the order `Attribute` lists them ("The capital of Zelmar is Quorvin. The leader of
    /// Zelmar is Fekfanres. …"), entities in the world's order (countries, cities, people,
    /// companies).
    ///
    /// This is the text a language model would have been pretrained on: every name in it comes
    /// back several times, so predicting its later occurrences is copying. The cold start can
    /// mix such documents into its batches (`sft.document_fraction`).
    public var knowledgeBaseParagraphs: [String] {
        let order = Dictionary(uniqueKeysWithValues: Attribute.allCases.enumerated().map { ($1, $0) })
        return world.allNames.compactMap { name in
            let facts = world.facts.filter { $0.subject == name }.sorted { order[$0.attribute]! < order[$1.attribute]! }
            return facts.isEmpty ? nil : facts.map(\.text).joined(separator: " ")
        }
    }
}

extension Episode {
    /// The names and numbers of the episode's knowledge base, in the world's order: every
    /// entity's name, then every numeric fact's value. Copy drills are made of them (see
    /// `sft.copy_drill_fraction`): the things a policy copies from questions and observations.
    public var knowledgeBaseNamesAndNumbers: [String] {
        world.allNames + world.facts.filter { $0.attribute.value == .number }.map(\.value)
    }
}

/// One question of a fact-recall drill: the start of a fact's sentence, and how it ends.
public struct RecallQuestion: Equatable, Sendable {
    /// "The leader of Zikstu is".
    public let prompt: String
    /// " Fekfanres." when the listed facts hold it, " unknown." when they do not.
    public let answer: String
}

extension Episode {
    /// A fact-recall drill from the episode's knowledge base: `listed` of its facts in a random
    /// order, and `questions` sentences to complete from them, in the words the expert uses
    /// after a search (`ExpertSolver.foundFact`). Two in three ask about a listed fact and end
    /// with its value; the rest ask about an unlisted fact, preferably one whose attribute a
    /// listed fact shares (as an unanswerable question's search results do), and end with
    /// `unknown`. `drawSeed` picks the facts and their order.
    ///
    /// Completing "The leader of Zikstu is" means finding "Zikstu is" in the list and copying
    /// what follows, or noticing that it is not there: the lookup an answer and an unanswerable
    /// question both need, many times per drill instead of once per demonstration.
    public func factRecallDrill(listed: Int, questions: Int, drawSeed: UInt64) -> (facts: String, questions: [RecallQuestion]) {
        var generator = SeededGenerator(seed: drawSeed)
        let facts = generator.shuffled(world.facts)
        let shown = Array(facts.prefix(min(listed, facts.count - 1)))
        let hidden = facts.dropFirst(shown.count)
        let shownAttributes = Set(shown.map(\.attribute))
        let absentPool = hidden.filter { shownAttributes.contains($0.attribute) }
        var asked: [RecallQuestion] = []
        for index in 0..<questions {
            let isListed = index % 3 != 2
            let fact = isListed ? generator.element(of: shown) : generator.element(of: absentPool.isEmpty ? Array(hidden) : absentPool)
            asked.append(RecallQuestion(prompt: Fact.sentenceStart(topic: Fact.topic(fact.attribute, fact.subject)), answer: " \(isListed ? fact.value : TaskGenerator.unknownAnswer)."))
        }
        return (shown.map(\.text).joined(separator: " "), generator.shuffled(asked))
    }
}
