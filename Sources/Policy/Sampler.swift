import Foundation
import Tensor

/// How the next token is chosen.
public struct SamplingParameters: Codable, Equatable, Sendable {
    /// Logits are divided by this before softmax; must be positive.
    public var temperature: Double = 1
    /// Keep only the k most likely tokens (nil: all).
    public var topK: Int? = nil
    /// Keep the smallest set of most likely tokens whose probability reaches p (nil: all).
    public var topP: Double? = nil
    /// Take the most likely token (ties: the lowest id).
    public var greedy: Bool = false

    public init(temperature: Double = 1, topK: Int? = nil, topP: Double? = nil, greedy: Bool = false) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.greedy = greedy
    }

    enum CodingKeys: String, CodingKey {
        case temperature
        case topK = "top_k"
        case topP = "top_p"
        case greedy
    }
}

/// One sampled token with what RL needs to know about it.
public struct SampledToken: Equatable, Sendable {
    public let token: Int
    /// log p(token) under the full temperature-scaled distribution (before top-k/top-p
    /// truncation): the "old policy" log-prob that training recomputes from logits / temperature.
    public let logProbability: Double
    /// Entropy of the full temperature-scaled distribution, in nats.
    public let entropy: Double
}

/// Draws tokens from logits. Reproducible: each sequence brings its own seeded generator, so a
/// sequence's tokens do not depend on which other sequences share its batch.
public struct Sampler: Sendable {
    public let parameters: SamplingParameters

    public init(_ parameters: SamplingParameters) {
        precondition(parameters.temperature > 0 && parameters.temperature.isFinite, "temperature must be positive, got \(parameters.temperature)")
        if let topK = parameters.topK { precondition(topK >= 1, "top_k must be at least 1, got \(topK)") }
        if let topP = parameters.topP { precondition(topP > 0 && topP <= 1, "top_p must be in (0, 1], got \(topP)") }
        self.parameters = parameters
    }

    /// Samples one token per row of `logits` (B, V), drawing from `generators[b]` for row b.
    public func sample(_ logits: Tensor, generators: inout [RandomGenerator]) -> [SampledToken] {
        precondition(logits.rank == 2 && generators.count == logits.shape[0], "sample needs (B, V) logits and one generator per row, got \(logits.shape) and \(generators.count)")
        let vocabulary = logits.shape[1]
        let values = logits.doubles
        return (0..<logits.shape[0]).map { row in
            sample(row: values[(row * vocabulary)..<((row + 1) * vocabulary)], generator: &generators[row])
        }
    }

    /// Samples from one row of logits.
    public func sample(row logits: ArraySlice<Double>, generator: inout RandomGenerator) -> SampledToken {
        let inverseTemperature = 1 / parameters.temperature
        let base = logits.startIndex
        let n = logits.count
        var peak = -Double.infinity
        for value in logits { peak = Swift.max(peak, value * inverseTemperature) }
        var total = 0.0
        var probabilities = [Double](repeating: 0, count: n)
        for j in 0..<n {
            let e = exp(logits[base + j] * inverseTemperature - peak)
            probabilities[j] = e
            total += e
        }
        let logTotal = log(total)
        var entropy = 0.0
        for j in 0..<n {
            probabilities[j] /= total
            if probabilities[j] > 0 { entropy -= probabilities[j] * (logits[base + j] * inverseTemperature - peak - logTotal) }
        }
        func logProbability(_ token: Int) -> Double { logits[base + token] * inverseTemperature - peak - logTotal }

        if parameters.greedy {
            var best = 0
            for j in 1..<n where logits[base + j] > logits[base + best] { best = j }
            return SampledToken(token: best, logProbability: logProbability(best), entropy: entropy)
        }
        // Draws from `candidates` in their order by cumulative probability, `mass` their total.
        func draw<Candidates: BidirectionalCollection<Int>>(_ candidates: Candidates, mass: Double) -> Int {
            let target = generator.uniform() * mass
            var cumulative = 0.0
            for candidate in candidates {
                cumulative += probabilities[candidate]
                if target < cumulative { return candidate }
            }
            return candidates.last!
        }
        // Without truncation, the whole vocabulary in id order: no candidate list to build or sort.
        guard parameters.topK != nil || parameters.topP != nil else {
            let chosen = draw(0..<n, mass: 1)
            return SampledToken(token: chosen, logProbability: logProbability(chosen), entropy: entropy)
        }
        // Candidates in descending probability, truncated.
        var candidates = Array(0..<n)
        candidates.sort { probabilities[$0] > probabilities[$1] || (probabilities[$0] == probabilities[$1] && $0 < $1) }
        if let topK = parameters.topK, topK < candidates.count { candidates.removeLast(candidates.count - topK) }
        if let topP = parameters.topP {
            var cumulative = 0.0
            var keep = 0
            while keep < candidates.count {
                cumulative += probabilities[candidates[keep]]
                keep += 1
                if cumulative >= topP { break }
            }
            candidates.removeLast(candidates.count - keep)
        }
        let chosen = draw(candidates, mass: candidates.reduce(0) { $0 + probabilities[$1] })
        return SampledToken(token: chosen, logProbability: logProbability(chosen), entropy: entropy)
    }
}
