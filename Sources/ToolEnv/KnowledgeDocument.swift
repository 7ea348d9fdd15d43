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
