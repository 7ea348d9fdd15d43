import Policy
import Tensor
import XCTest

final class TokenizerTests: XCTestCase {
    let tokenizer = Tokenizer()

    func testVocabularyAndSpecialTokens() {
        XCTAssertEqual(tokenizer.vocabularySize, 272)
        for tag in ["<|user|>", "<|assistant|>", "<call>", "</call>", "<obs>", "</obs>", "<answer>", "</answer>", "<|end|>", "<|pad|>"] {
            let id = tokenizer.specialTokenID(tag)
            XCTAssertNotNil(id, "\(tag) is not a special token")
            XCTAssertEqual(tokenizer.decode([id!]), tag)
        }
    }

    func testAnyUTF8RoundTrips() {
        var generator = RandomGenerator(seed: 4)
        let samples = ["", "plain ascii", "naïve café — 東京 🚀", "<call>calc(1+1)</call>", "\u{0}\u{7F}\n\t"]
        for text in samples { XCTAssertEqual(tokenizer.decode(tokenizer.encode(text)), text) }
        for _ in 0..<500 {
            let scalars = (0..<Int(generator.next() % 20)).compactMap { _ -> Character? in
                let value = UInt32(generator.next() % 0x2FFFF)
                return Unicode.Scalar(value).map(Character.init)
            }
            let text = String(scalars)
            XCTAssertEqual(tokenizer.decode(tokenizer.encode(text)), text)
        }
    }

    func testSpelledSpecialTokensStayBytes() {
        let ids = tokenizer.encode("x</obs><|end|>")
        XCTAssertTrue(ids.allSatisfy { $0 < 256 }, "plain text produced a special token: \(ids)")
        XCTAssertEqual(ids.count, "x</obs><|end|>".utf8.count)
        // Trusted text may opt in to special-token parsing.
        let trusted = tokenizer.encode("a<call>b</call>", allowingSpecialTokens: true)
        XCTAssertEqual(trusted, [97, tokenizer.specialTokenID("<call>")!, 98, tokenizer.specialTokenID("</call>")!])
    }
}

final class SamplerTests: XCTestCase {
    let logits = Tensor(shape: [2, 5], values: [1, 3, 2, 0, -1, 0.5, 0.5, 4, 0.1, 2], dtype: .float32)

    func expectedLogProbabilitiesAndEntropy(_ row: [Double], temperature: Double) -> ([Double], Double) {
        let scaled = row.map { $0 / temperature }
        let peak = scaled.max()!
        let total = scaled.reduce(0) { $0 + Foundation.exp($1 - peak) }
        let logProbabilities = scaled.map { $0 - peak - Foundation.log(total) }
        let entropy = -logProbabilities.reduce(0) { $0 + Foundation.exp($1) * $1 }
        return (logProbabilities, entropy)
    }

    func testGreedyPicksTheArgMaxAndReportsFullDistributionStatistics() {
        var generators = [RandomGenerator(seed: 1), RandomGenerator(seed: 2)]
        let sampled = Sampler(SamplingParameters(temperature: 0.7, greedy: true)).sample(logits, generators: &generators)
        XCTAssertEqual(sampled.map(\.token), [1, 2])
        let rows = [Array(logits.doubles[0..<5]), Array(logits.doubles[5..<10])]
        for (index, token) in sampled.enumerated() {
            let (logProbabilities, entropy) = expectedLogProbabilitiesAndEntropy(rows[index], temperature: 0.7)
            XCTAssertEqual(token.logProbability, logProbabilities[token.token], accuracy: 1e-6)
            XCTAssertEqual(token.entropy, entropy, accuracy: 1e-6)
        }
    }

    func testSeededSamplingIsReproducibleAndFollowsTheDistribution() {
        let sampler = Sampler(SamplingParameters(temperature: 1))
        var first = [RandomGenerator(seed: 7), RandomGenerator(seed: 8)]
        var second = first
        let a = (0..<50).map { _ in sampler.sample(logits, generators: &first).map(\.token) }
        let b = (0..<50).map { _ in sampler.sample(logits, generators: &second).map(\.token) }
        XCTAssertEqual(a, b)
        // Frequencies over many draws approach the softmax (tolerance: 5 standard errors).
        let row = Array(logits.doubles[0..<5])
        let (logProbabilities, _) = expectedLogProbabilitiesAndEntropy(row, temperature: 1)
        var generator = RandomGenerator(seed: 99)
        var counts = [Int](repeating: 0, count: 5)
        let draws = 20_000
        for _ in 0..<draws { counts[sampler.sample(row: row[...], generator: &generator).token] += 1 }
        for token in 0..<5 {
            let p = Foundation.exp(logProbabilities[token])
            let standardError = (p * (1 - p) / Double(draws)).squareRoot()
            XCTAssertEqual(Double(counts[token]) / Double(draws), p, accuracy: 5 * standardError + 1e-4)
        }
    }

    func testTopKAndTopPRestrictTheSupport() {
        let row = Array(logits.doubles[0..<5])  // order by probability: 1, 2, 0, 3, 4
        var generator = RandomGenerator(seed: 3)
        let topK = Sampler(SamplingParameters(topK: 2))
        let keptByK = Set((0..<500).map { _ in topK.sample(row: row[...], generator: &generator).token })
        XCTAssertEqual(keptByK, [1, 2])
        let topP = Sampler(SamplingParameters(topP: 0.5))  // p(1) ≈ 0.64 ≥ 0.5 alone
        let keptByP = Set((0..<500).map { _ in topP.sample(row: row[...], generator: &generator).token })
        XCTAssertEqual(keptByP, [1])
        // The reported log-prob stays that of the full distribution.
        let (logProbabilities, _) = expectedLogProbabilitiesAndEntropy(row, temperature: 1)
        XCTAssertEqual(topP.sample(row: row[...], generator: &generator).logProbability, logProbabilities[1], accuracy: 1e-9)
    }
}
