import Foundation

/// BM25 ranking over a small set of short documents (the facts of one world).
///
/// score(q, d) = sum over distinct query terms t in d of
///     idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl)),
/// idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5)), with k1 = 1.2 and b = 0.75
/// (Robertson and Zaragoza, 2009). Terms are lowercase ASCII letter-and-digit runs; stop words
/// are dropped from documents and queries alike. Ties go to the earlier document, so results
/// are deterministic.
struct SearchIndex: Sendable {
    static let termFrequencySaturation = 1.2  // k1
    static let lengthNormalization = 0.75  // b

    /// Words too common to rank by; they match everything.
    static let stopWords: [String] = [
        "the", "of", "is", "a", "an", "in", "what", "who", "was", "which", "does", "did", "for",
        "to", "and", "are", "where", "when", "how", "many", "much", "find", "me", "tell", "with",
        "by", "on", "at", "its", "their", "it", "whose",
    ]
    private static let stopWordSet = Set(stopWords)

    let documents: [String]
    /// Each distinct term's number; documents and queries are compared as term numbers.
    private let termNumbers: [String: Int]
    private let documentTerms: [[Int]]
    /// How many documents hold each term, by term number.
    private let documentFrequency: [Int]
    private let averageLength: Double

    init(documents: [String]) {
        self.documents = documents
        var numbers: [String: Int] = [:]
        var frequency: [Int] = []
        var allTerms: [[Int]] = []
        allTerms.reserveCapacity(documents.count)
        for document in documents {
            var terms: [Int] = []
            for term in SearchIndex.terms(of: document) {
                let number: Int
                if let known = numbers[term] {
                    number = known
                } else {
                    number = frequency.count
                    numbers[term] = number
                    frequency.append(0)
                }
                // Facts are a handful of terms, so a linear check for repeats is cheapest.
                if !terms.contains(number) { frequency[number] += 1 }
                terms.append(number)
            }
            allTerms.append(terms)
        }
        termNumbers = numbers
        documentTerms = allTerms
        documentFrequency = frequency
        let totalLength = allTerms.reduce(0) { $0 + $1.count }
        averageLength = documents.isEmpty ? 1 : max(1, Double(totalLength) / Double(documents.count))
    }

    /// The searchable terms of `text`, in order.
    static func terms(of text: String) -> [String] {
        var terms: [String] = []
        var current: [UInt8] = []
        func flush() {
            if !current.isEmpty {
                let term = String(decoding: current, as: UTF8.self)
                if !stopWordSet.contains(term) { terms.append(term) }
                current.removeAll(keepingCapacity: true)
            }
        }
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                current.append(byte)
            case UInt8(ascii: "A")...UInt8(ascii: "Z"):
                current.append(byte + 32)
            default:
                flush()
            }
        }
        flush()
        return terms
    }

    /// The BM25 score of every document for `query`.
    func scores(for query: String) -> [Double] {
        // Query terms that no document holds score nothing and are dropped here.
        var queryTerms: [Int] = []
        for term in SearchIndex.terms(of: query) {
            if let number = termNumbers[term], !queryTerms.contains(number) { queryTerms.append(number) }
        }
        let count = Double(documents.count)
        let k1 = SearchIndex.termFrequencySaturation
        let b = SearchIndex.lengthNormalization
        let inverseFrequencies = queryTerms.map { term -> Double in
            let frequency = Double(documentFrequency[term])
            return log(1 + (count - frequency + 0.5) / (frequency + 0.5))
        }
        return documentTerms.map { terms in
            var score = 0.0
            let lengthFactor = k1 * (1 - b + b * Double(terms.count) / averageLength)
            for (term, inverseFrequency) in zip(queryTerms, inverseFrequencies) {
                let termFrequency = Double(terms.reduce(0) { $0 + ($1 == term ? 1 : 0) })
                guard termFrequency > 0 else { continue }
                score += inverseFrequency * termFrequency * (k1 + 1) / (termFrequency + lengthFactor)
            }
            return score
        }
    }

    /// The indices of the best `limit` documents with a positive score, best first.
    func search(_ query: String, limit: Int) -> [Int] {
        let scores = scores(for: query)
        let ranked = scores.indices
            .filter { scores[$0] > 0 }
            .sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
        return Array(ranked.prefix(limit))
    }
}
