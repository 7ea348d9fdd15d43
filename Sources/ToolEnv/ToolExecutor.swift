/// Runs validated calls against one world, and makes the degraded results fault injection
/// needs.
struct ToolExecutor {
    let world: World
    let topK: Int
    let order: SearchOrder

    /// The observation for a call that passed the action evaluator. `generator` orders the
    /// facts of a search under `SearchOrder.shuffled`; nothing else draws from it.
    func execute(_ call: ToolCall, generator: inout SeededGenerator) -> String {
        switch call {
        case let .calc(expression):
            do {
                return try Calculator.evaluate(expression).description
            } catch {
                // The action evaluator evaluated the same expression a moment ago.
                preconditionFailure("calc arguments were validated: \(error)")
            }
        case let .search(query):
            var hits = world.searchIndex.search(query, limit: topK)
            if hits.isEmpty { return ToolExecutor.noResults }
            if order == .shuffled { hits = generator.shuffled(hits) }
            return hits.map { world.searchIndex.documents[$0] }.joined(separator: " ")
        case let .lookup(entity, attributePhrase):
            guard let attribute = Attribute(phrase: attributePhrase),
                  let value = world.value(of: attribute, for: entity)
            else { return ToolExecutor.noLookupResult }
            return value
        }
    }

    /// A degraded result: empty for `calc`, nothing found for `lookup`, and for `search` either
    /// nothing found or facts that share no word with the query (irrelevant results).
    func degradedResult(for call: ToolCall, generator: inout SeededGenerator) -> String {
        switch call {
        case .calc:
            return ""
        case .lookup:
            return ToolExecutor.noLookupResult
        case let .search(query):
            if generator.chance(0.5) { return ToolExecutor.noResults }
            let queryTerms = Set(SearchIndex.terms(of: query))
            let unrelated = world.facts.map(\.text).filter { Set(SearchIndex.terms(of: $0)).isDisjoint(with: queryTerms) }
            if unrelated.isEmpty { return ToolExecutor.noResults }
            let shuffled = generator.shuffled(unrelated)
            return shuffled.prefix(topK).joined(separator: " ")
        }
    }

    /// A tool failure: an error or timeout text that asks for a retry.
    static func failureText(for tool: ToolName, generator: inout SeededGenerator) -> String {
        let reasons = ["timed out", "is unavailable", "had an internal error"]
        return "error: \(tool.rawValue) \(generator.element(of: reasons)), try again"
    }

    /// What `search` says when no fact matches.
    static let noResults = "no results"
    /// What `lookup` says when the knowledge base has no such fact.
    static let noLookupResult = "no result"
}
