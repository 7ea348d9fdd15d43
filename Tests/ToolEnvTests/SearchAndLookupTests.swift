import Foundation
import XCTest
@testable import ToolEnv

final class SearchAndLookupTests: XCTestCase {
    private let noFaults = EnvironmentConfig(faults: .none)

    /// The tools of an episode, called directly through `respond`.
    private func observe(_ call: String, in episode: Episode) -> ToolResponse {
        episode.respond(toPolicyText: "<call>\(call)</call>")
    }

    func testSearchRanksTheAskedFactFirstInEveryWorld() {
        // The contract the expert and the policy rely on: "ATTRIBUTE of ENTITY" finds that fact
        // at rank 1, for every fact of many generated worlds at every difficulty.
        for difficulty in 1...3 {
            for seed in UInt64(0)..<40 {
                var generator = SeededGenerator(seed: seed)
                let world = World.generate(split: seed % 2 == 0 ? .train : .eval, difficulty: difficulty, generator: &generator)
                for fact in world.facts {
                    let hits = world.searchIndex.search("\(fact.attribute.phrase) of \(fact.subject)", limit: 2)
                    XCTAssertEqual(hits.first.map { world.facts[$0] }, fact, "difficulty \(difficulty), seed \(seed)")
                }
            }
        }
    }

    func testSearchReturnsTopKFactsBestFirst() {
        let episode = Episode(family: .singleHop, split: .train, seed: 11, config: noFaults)
        let fact = episode.world.facts[5]
        let response = observe("search(\(fact.attribute.phrase) of \(fact.subject))", in: episode)
        XCTAssertNil(response.error)
        XCTAssertTrue(response.wasExecuted)
        XCTAssertTrue(response.observation.hasPrefix(fact.text), response.observation)
        // Default top_k is 2: two sentences.
        XCTAssertEqual(response.observation.filter { $0 == "." }.count, 2, response.observation)

        let wide = EnvironmentConfig(faults: .none, search: SearchConfig(topK: 4))
        let wideEpisode = Episode(family: .singleHop, split: .train, seed: 11, config: wide)
        let wideResponse = observe("search(\(fact.attribute.phrase) of \(fact.subject))", in: wideEpisode)
        XCTAssertEqual(wideResponse.observation.filter { $0 == "." }.count, 4)
    }

    func testShuffledOrderReturnsTheSameFactsInAnOrderThatDoesNotRevealTheMatch() throws {
        let shuffled = EnvironmentConfig(faults: .none, search: SearchConfig(topK: 2, order: .shuffled))
        XCTAssertEqual(try JSONDecoder().decode(SearchConfig.self, from: Data(#"{"order": "shuffled"}"#.utf8)).order, .shuffled)
        var matchFirst = 0
        let episodes = 400
        for seed in UInt64(0)..<UInt64(episodes) {
            let ranked = Episode(family: .singleHop, split: .train, seed: seed, config: noFaults)
            let fact = ranked.world.facts[Int(seed) % ranked.world.facts.count]
            let call = "search(\(fact.attribute.phrase) of \(fact.subject))"
            let best = observe(call, in: ranked).observation
            let episode = Episode(family: .singleHop, split: .train, seed: seed, config: shuffled)
            let observation = observe(call, in: episode).observation
            let sentences = { (text: String) in text.split(separator: ".").map { $0.trimmingCharacters(in: .whitespaces) }.sorted() }
            XCTAssertEqual(sentences(observation), sentences(best), "seed \(seed): the same top_k facts")
            if observation.hasPrefix(fact.text) { matchFirst += 1 }
            // The order is drawn from the episode's seed: the same episode, the same order.
            let again = Episode(family: .singleHop, split: .train, seed: seed, config: shuffled)
            XCTAssertEqual(observe(call, in: again).observation, observation)
        }
        // With two facts the match comes first with probability 1/2: 200 of 400, sd 10.
        XCTAssertEqual(Double(matchFirst), Double(episodes) / 2, accuracy: 40)
    }

    func testSearchIsCaseInsensitiveAndIgnoresStopWords() {
        let episode = Episode(family: .singleHop, split: .train, seed: 12, config: noFaults)
        let fact = episode.world.facts[0]
        let query = "WHAT IS THE \(fact.attribute.phrase.uppercased()) OF \(fact.subject.uppercased())?"
        XCTAssertTrue(observe("search(\(query))", in: episode).observation.hasPrefix(fact.text))
    }

    func testEmptySearchResultSaysSo() {
        let episode = Episode(family: .singleHop, split: .train, seed: 13, config: noFaults)
        let response = observe("search(zzqqxx)", in: episode)
        XCTAssertEqual(response.observation, "no results")
        XCTAssertNil(response.error, "an empty result is a valid answer, not an error")
        XCTAssertTrue(response.wasExecuted)
    }

    func testBM25PrefersRarerTermsAndShorterDocuments() {
        let index = SearchIndex(documents: [
            "The capital of Zelmar is Quorvin.",
            "The capital of Brixa is Telmi.",
            "The population of Quorvin is 52301.",
        ])
        // "zelmar" occurs once, "capital" twice: the document with both ranks first, then the
        // one with only "capital".
        XCTAssertEqual(index.search("capital of Zelmar", limit: 3), [0, 1])
        XCTAssertEqual(index.search("Quorvin", limit: 3), [0, 2])
        XCTAssertEqual(index.search("of the is", limit: 3), [], "stop words alone match nothing")
        let scores = index.scores(for: "zelmar")
        XCTAssertGreaterThan(scores[0], 0)
        XCTAssertEqual(scores[1], 0)
    }

    func testSearchArgumentErrors() {
        let episode = Episode(family: .singleHop, split: .train, seed: 14, config: noFaults)
        for call in ["search()", "search(   )", "search(the of is)", "search(\(String(repeating: "a", count: 101)))"] {
            let response = observe(call, in: episode)
            XCTAssertEqual(response.error, .badArguments, call)
            XCTAssertFalse(response.wasExecuted)
            XCTAssertTrue(response.observation.hasPrefix("error: bad_arguments: search:"), response.observation)
        }
    }

    func testLookupReturnsTheValue() {
        let config = EnvironmentConfig(faults: .none, limits: LimitConfig(maxToolCalls: 20))
        let episode = Episode(family: .singleHop, split: .train, seed: 15, config: config)
        for fact in episode.world.facts.prefix(10) {
            let response = observe("lookup(\(fact.subject), \(fact.attribute.phrase))", in: episode)
            XCTAssertEqual(response.observation, fact.value)
            XCTAssertEqual(response.call?.tool, .lookup)
        }
        let fact = episode.world.facts[0]
        let forgiving = observe("lookup( \(fact.subject.lowercased()) , \(fact.attribute.phrase.uppercased().replacingOccurrences(of: " ", with: "_")) )", in: episode)
        XCTAssertEqual(forgiving.observation, fact.value, "case, spaces and underscores are forgiven")
    }

    func testLookupMissesAndErrors() {
        let episode = Episode(family: .singleHop, split: .train, seed: 16, config: noFaults)
        XCTAssertEqual(observe("lookup(Nobodyhere, capital)", in: episode).observation, "no result")
        for call in ["lookup(Zelmar)", "lookup(Zelmar, capital, extra)", "lookup(, capital)", "lookup(Zelmar, colour)"] {
            let response = observe(call, in: episode)
            XCTAssertEqual(response.error, .badArguments, call)
            XCTAssertTrue(response.observation.hasPrefix("error: bad_arguments: lookup:"), response.observation)
        }
    }

    func testCalcThroughTheEpisode() {
        let episode = Episode(family: .arithmetic, split: .train, seed: 17, config: noFaults)
        XCTAssertEqual(observe("calc(2*(3+4))", in: episode).observation, "14")
        let zero = observe("calc(1/0)", in: episode)
        XCTAssertEqual(zero.error, .badArguments)
        XCTAssertEqual(zero.observation, "error: bad_arguments: calc: division by zero")
        let syntax = observe("calc(2+)", in: episode)
        XCTAssertEqual(syntax.observation, "error: bad_arguments: calc: expression ends too early")
    }
}
