/// The kinds of invented entity a world holds.
enum EntityKind: CaseIterable, Sendable {
    case country, city, person, company
}

/// What an attribute's value is.
enum AttributeValue: Equatable, Sendable {
    /// Another entity of the world, so questions can chain through it.
    case entity(EntityKind)
    /// A whole number (population, year, ...).
    case number
    /// A common word (a product, a profession, ...).
    case word
}

/// The attributes facts are about. The raw value is the phrase used in facts, questions,
/// search queries and `lookup` (`"birth year"`).
enum Attribute: String, CaseIterable, Sendable {
    case capital
    case leader
    case area
    case mainExport = "main export"
    case population
    case mayor
    case foundingYear = "founding year"
    case birthYear = "birth year"
    case homeCity = "home city"
    case profession
    case founder
    case headquarters
    case employeeCount = "employee count"
    case mainProduct = "main product"

    var phrase: String { rawValue }

    var value: AttributeValue {
        switch self {
        case .capital, .homeCity, .headquarters: return .entity(.city)
        case .leader, .mayor, .founder: return .entity(.person)
        case .area, .population, .foundingYear, .birthYear, .employeeCount: return .number
        case .mainExport, .profession, .mainProduct: return .word
        }
    }

    /// The attributes every entity of `kind` has.
    static func attributes(of kind: EntityKind) -> [Attribute] {
        switch kind {
        case .country: return [.capital, .leader, .area, .mainExport]
        case .city: return [.population, .mayor, .foundingYear]
        case .person: return [.birthYear, .homeCity, .profession]
        case .company: return [.founder, .headquarters, .foundingYear, .employeeCount, .mainProduct]
        }
    }

    /// Parses a phrase as written by the policy: case, spaces and underscores are forgiven.
    init?(phrase: String) {
        let words = phrase.lowercased()
            .split(whereSeparator: { $0 == " " || $0 == "_" || $0 == "\t" })
            .joined(separator: " ")
        self.init(rawValue: words)
    }
}

/// One fact of a knowledge base: "The capital of Zelmar is Quorvin."
struct Fact: Equatable, Sendable {
    let subject: String
    let attribute: Attribute
    let value: String

    /// Every fact reads the same way, so a small policy can learn to read them.
    var text: String { Fact.sentenceStart(topic: Fact.topic(attribute, subject)) + " \(value)." }

    /// "capital of Zelmar": what a search asks for, and what a fact's sentence is about.
    static func topic(_ attribute: Attribute, _ subject: String) -> String { "\(attribute.phrase) of \(subject)" }

    /// "The capital of Zelmar is": how every fact's sentence begins, in the knowledge base, in
    /// the expert's found-fact sentences and in fact-recall drills alike.
    static func sentenceStart(topic: String) -> String { "The \(topic) is" }
}

/// One episode's knowledge base: invented entities, their facts, and a search index over them.
///
/// A world is immutable once built; it is generated per episode from the episode's seed, so
/// episodes on different threads share nothing mutable.
struct World: Sendable {
    /// Entity names by kind, in generation order.
    let countries: [String]
    let cities: [String]
    let people: [String]
    let companies: [String]
    /// The facts, in the (shuffled) order the search index numbers them.
    let facts: [Fact]
    let searchIndex: SearchIndex

    init(countries: [String], cities: [String], people: [String], companies: [String], facts: [Fact]) {
        self.countries = countries
        self.cities = cities
        self.people = people
        self.companies = companies
        self.facts = facts
        searchIndex = SearchIndex(documents: facts.map(\.text))
    }

    /// The value of `attribute` for `subject` (names compared case-insensitively), if the
    /// knowledge base holds it.
    func value(of attribute: Attribute, for subject: String) -> String? {
        // A scan: worlds hold at most 78 facts and lookups are rare, so a dictionary would
        // cost more to build than it saves.
        if let fact = facts.first(where: { $0.attribute == attribute && $0.subject == subject }) {
            return fact.value
        }
        let lowered = subject.lowercased()
        return facts.first { $0.attribute == attribute && $0.subject.lowercased() == lowered }?.value
    }

    /// The same world without the fact about `attribute` of `subject`.
    func removingFact(about subject: String, attribute: Attribute) -> World {
        World(
            countries: countries, cities: cities, people: people, companies: companies,
            facts: facts.filter { !($0.subject == subject && $0.attribute == attribute) }
        )
    }

    /// Every entity name.
    var allNames: [String] { countries + cities + people + companies }

    /// The names of entities of `kind`.
    func names(of kind: EntityKind) -> [String] {
        switch kind {
        case .country: return countries
        case .city: return cities
        case .person: return people
        case .company: return companies
        }
    }
}

// MARK: - Generation

extension World {
    /// Common words used as values; they are not names, so they may appear in both splits.
    static let exports = ["tea", "copper", "wool", "salt", "glass", "rice", "timber", "silk", "coffee", "iron"]
    static let professions = ["baker", "pilot", "teacher", "painter", "doctor", "farmer", "sailor", "judge", "chemist", "weaver"]
    static let products = ["engines", "lamps", "clocks", "bicycles", "paper", "radios", "boots", "mirrors", "rope", "tiles"]

    /// Generates a world of invented entities for `split` at `difficulty` (1...3).
    ///
    /// Sizes grow with difficulty (countries, cities, people, companies): 2, 3, 3, 2 at 1;
    /// 3, 5, 5, 3 at 2; 4, 7, 7, 4 at 3; that is 36, 57 and 78 facts. Each country's capital is
    /// a different city and each city has a different mayor. Facts about area, exports,
    /// professions, products and employee counts are distractors: they share words and numbers
    /// with the facts questions ask about.
    static func generate(split: Split, difficulty: Int, generator: inout SeededGenerator) -> World {
        precondition((1...3).contains(difficulty), "difficulty must be in 1...3")
        var names = NameGenerator(split: split)
        let countries = (0..<(difficulty + 1)).map { _ in names.next(using: &generator) }
        let cities = (0..<(2 * difficulty + 1)).map { _ in names.next(using: &generator) }
        let people = (0..<(2 * difficulty + 1)).map { _ in names.next(using: &generator) }
        let companies = (0..<(difficulty + 1)).map { _ in names.next(using: &generator) }

        var facts: [Fact] = []
        let capitals = generator.shuffled(cities)
        for (index, country) in countries.enumerated() {
            facts.append(Fact(subject: country, attribute: .capital, value: capitals[index]))
            facts.append(Fact(subject: country, attribute: .leader, value: generator.element(of: people)))
            facts.append(Fact(subject: country, attribute: .area, value: String(generator.integer(in: 1_000...99_999))))
            facts.append(Fact(subject: country, attribute: .mainExport, value: generator.element(of: exports)))
        }
        let mayors = generator.shuffled(people)
        for (index, city) in cities.enumerated() {
            facts.append(Fact(subject: city, attribute: .population, value: String(generator.integer(in: 10_000...999_999))))
            facts.append(Fact(subject: city, attribute: .mayor, value: mayors[index]))
            facts.append(Fact(subject: city, attribute: .foundingYear, value: String(generator.integer(in: 1100...1950))))
        }
        for person in people {
            facts.append(Fact(subject: person, attribute: .birthYear, value: String(generator.integer(in: 1920...2005))))
            facts.append(Fact(subject: person, attribute: .homeCity, value: generator.element(of: cities)))
            facts.append(Fact(subject: person, attribute: .profession, value: generator.element(of: professions)))
        }
        for company in companies {
            facts.append(Fact(subject: company, attribute: .founder, value: generator.element(of: people)))
            facts.append(Fact(subject: company, attribute: .headquarters, value: generator.element(of: cities)))
            facts.append(Fact(subject: company, attribute: .foundingYear, value: String(generator.integer(in: 1850...2020))))
            facts.append(Fact(subject: company, attribute: .employeeCount, value: String(generator.integer(in: 20...90_000))))
            facts.append(Fact(subject: company, attribute: .mainProduct, value: generator.element(of: products)))
        }
        // Shuffled so that a fact's position says nothing about the entity it is about.
        return World(countries: countries, cities: cities, people: people, companies: companies, facts: generator.shuffled(facts))
    }
}

/// Invents pronounceable names from syllables, partitioned between the splits.
///
/// A name belongs to the split given by the lowest bit of its stable hash, so no train name
/// can ever appear in eval and vice versa, while both splits draw from the same style of name.
/// Names are two or three syllables, at most ten letters, never a word the environment uses
/// elsewhere, and unique within one generator.
struct NameGenerator {
    static let onsets = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
                         "br", "dr", "kr", "tr", "th", "sh", "gl", "st"]
    static let vowels = ["a", "e", "i", "o", "u"]
    static let codas = ["", "", "", "n", "r", "l", "s", "m", "k", "x"]

    /// Words that must never be names: they appear in facts, questions and queries.
    static let reservedWords: Set<String> = {
        var words = Set(SearchIndex.stopWords)
        for attribute in Attribute.allCases {
            for word in attribute.phrase.split(separator: " ") { words.insert(String(word)) }
        }
        words.formUnion(World.exports)
        words.formUnion(World.professions)
        words.formUnion(World.products)
        words.formUnion(["unknown", "twice", "thrice", "plus", "minus", "times", "half", "sum", "error", "result", "results"])
        return words
    }()

    let split: Split
    private(set) var used: Set<String> = []

    init(split: Split, excluding names: [String] = []) {
        self.split = split
        used = Set(names.map { $0.lowercased() })
    }

    /// A fresh name of this generator's split.
    mutating func next(using generator: inout SeededGenerator) -> String {
        while true {
            let syllableCount = generator.chance(0.7) ? 2 : 3
            var name = ""
            for _ in 0..<syllableCount {
                name += generator.element(of: NameGenerator.onsets)
                name += generator.element(of: NameGenerator.vowels)
                name += generator.element(of: NameGenerator.codas)
            }
            guard name.count >= 4, name.count <= 10 else { continue }
            guard NameGenerator.split(of: name) == split else { continue }
            guard !NameGenerator.reservedWords.contains(name), !used.contains(name) else { continue }
            used.insert(name)
            return name.prefix(1).uppercased() + name.dropFirst()
        }
    }

    /// The split a name belongs to (case-insensitive).
    static func split(of name: String) -> Split {
        StableHash.finalize(StableHash.of(name.lowercased())) & 1 == 0 ? .train : .eval
    }
}
