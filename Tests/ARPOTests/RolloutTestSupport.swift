import ARPO
import Foundation
import Policy
import Tensor
import ToolEnv

/// Counts every tool execution across all forks of a toy episode family.
final class ToolLedger {
    var executions: [String] = []
}

/// A toy episode: any call returns "7"; the answer `1` scores 1.
final class ToyEpisode: ToolEpisode {
    let ledger: ToolLedger
    let prompt = "q"
    var calls = 0
    let maxCalls: Int

    init(ledger: ToolLedger, maxCalls: Int = 8) {
        self.ledger = ledger
        self.maxCalls = maxCalls
    }

    func respond(toPolicyText text: String) -> ToolReply {
        calls += 1
        if calls > maxCalls { return ToolReply(observation: "over limit", wasExecuted: false, mustEnd: true) }
        ledger.executions.append(text)
        return ToolReply(observation: "7", wasExecuted: true, mustEnd: false)
    }

    func finish(policyText: String, endReason: EndReason) -> EpisodeScore {
        let correct = endReason == .answered && policyText.contains("<answer>1</answer>")
        return EpisodeScore(reward: correct ? 1 : 0, isCorrect: correct)
    }

    func forkEpisode() -> ToolEpisode {
        let copy = ToyEpisode(ledger: ledger, maxCalls: maxCalls)
        copy.calls = calls
        return copy
    }
}

/// A policy that writes a fixed script, with the entropy of each segment set by the test.
///
/// Segment s (s = 0 before the first observation) writes "ab<call>q</call>" while s < `calls`,
/// then "<answer>1</answer><|end|>". The scripted token gets logit `peaks[s]` and every other
/// token 0, so with greedy sampling the path is fixed while the entropy is whatever the peak
/// makes it.
final class ScriptedPolicy: RolloutPolicy {
    final class State: DecodingState {
        var tokens: [Int]
        var promptLength: Int?
        init(tokens: [Int], promptLength: Int?) {
            self.tokens = tokens
            self.promptLength = promptLength
        }
        var length: Int { tokens.count }
        func fork(length: Int) -> DecodingState { State(tokens: Array(tokens[0..<length]), promptLength: promptLength) }
    }

    let codec = ProtocolCodec()
    let calls: Int
    let peaks: [Double]
    let vocabularySize = Tokenizer.baseVocabularySize
    let maxPositions = 512
    var extendCalls = 0

    init(calls: Int, peaks: [Double]) {
        self.calls = calls
        self.peaks = peaks
    }

    func newState(capacity: Int) -> DecodingState { State(tokens: [], promptLength: nil) }

    func script(segment: Int) -> [Int] {
        let tokenizer = codec.tokenizer
        if segment < calls { return tokenizer.encode("ab<call>q</call>", allowingSpecialTokens: true) }
        return tokenizer.encode("<answer>1</answer><|end|>", allowingSpecialTokens: true)
    }

    func extend(_ states: [DecodingState], with tokens: [[Int]]) -> Tensor {
        extendCalls += 1
        var rows: [Double] = []
        for (state, appended) in zip(states, tokens) {
            let state = state as! State
            if state.promptLength == nil { state.promptLength = appended.count }
            state.tokens += appended
            let response = Array(state.tokens[state.promptLength!...])
            // The segment is the number of observations so far; the position within it counts
            // tokens after the last `</obs>`.
            let segment = response.filter { $0 == codec.observationCloseID }.count
            let lastObservation = response.lastIndex(of: codec.observationCloseID).map { $0 + 1 } ?? 0
            let position = response.count - lastObservation
            let script = self.script(segment: segment)
            var logits = [Double](repeating: 0, count: vocabularySize)
            logits[script[Swift.min(position, script.count - 1)]] = peaks[Swift.min(segment, peaks.count - 1)]
            rows += logits
        }
        return Tensor(shape: [states.count, vocabularySize], values: rows, dtype: .float32)
    }

    /// The normalised step entropy (mean over the window / ln V) of a segment written with `peak`.
    static func normalizedEntropy(peak: Double, vocabulary: Int = Tokenizer.baseVocabularySize) -> Double {
        let others = Double(vocabulary - 1)
        let total = Foundation.exp(peak) + others
        let p = Foundation.exp(peak) / total, q = 1 / total
        let entropy = -(p * Foundation.log(p) + others * q * Foundation.log(q))
        return entropy / Foundation.log(Double(vocabulary))
    }
}

/// A record's JSON encoding as an object, key by key: what a metrics or decision line holds.
func encodedFields<Record: Encodable>(_ record: Record) throws -> [String: Any] {
    (try JSONSerialization.jsonObject(with: JSONEncoder().encode(record)) as? [String: Any]) ?? [:]
}
