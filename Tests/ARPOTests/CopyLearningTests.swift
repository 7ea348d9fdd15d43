import ARPO
import Foundation
import Policy
import Tensor
import ToolEnv
import XCTest

/// Copying is what multi-turn tool use rests on: a name or a number goes from the question into
/// a call, and from an observation into the next call or the answer. A transformer copies with
/// induction heads: a head that attends to the token after the previous occurrence of the
/// current one, reading what an earlier head wrote about each position's predecessor. This
/// checks that the model, the loss and AdamW learn one: a small policy trained on sequences
/// that repeat a random string must come to predict the repetition. It fails when attention
/// cannot find earlier positions by content or by offset (a broken causal mask or rotary
/// embedding, a wrong attention gradient) or when the optimizer stops learning.
final class CopyLearningTests: XCTestCase {
    func testASmallPolicyLearnsToCopyARepeatedString() {
        var generator = RandomGenerator(seed: 1)
        let model = LlamaModel(configuration: LlamaConfiguration(hiddenSize: 64, intermediateSize: 128, layerCount: 2, headCount: 4, maxPositions: 64), generator: &generator)
        let optimizer = AdamW(named: model.namedParameters, hyperparameters: .init(weightDecay: 0))
        let half = 24, batchSize = 16, steps = 320
        let letters = Array("abcdefghijklmnopqrstuvwxyz".utf8).map(Int.init)
        let tokenizer = Tokenizer()
        var repetitionLosses: [Double] = []
        for _ in 0..<steps {
            // <|begin|> s s, s 24 random letters: the second s is predictable only by copying.
            let sequences = (0..<batchSize).map { _ -> [Int] in
                let string = (0..<half).map { _ in letters[Int(generator.next() % 26)] }
                return [tokenizer.beginID] + string + string
            }
            let batch = TokenBatch(sequences: sequences, padding: tokenizer.padID)
            let width = batch.length - 1
            optimizer.zeroGradients()
            let logProbabilities = model.tokenStatistics(batch).logProbabilities
            let loss = -logProbabilities.sum() / Double(batchSize * width)
            loss.backward()
            _ = optimizer.clipGradientNorm(to: 1)
            optimizer.update(learningRate: 1e-3)
            // Positions half + 1 … 2·half − 1 predict the second copy's letters 2 … 24.
            let values = logProbabilities.doubles
            var total = 0.0
            for row in 0..<batchSize { for position in (half + 1)..<width { total -= values[row * width + position] } }
            repetitionLosses.append(total / Double(batchSize * (width - half - 1)))
        }
        let first = repetitionLosses.prefix(10).reduce(0, +) / 10, last = repetitionLosses.suffix(20).reduce(0, +) / 20
        // Without copying each letter costs ln 26 ≈ 3.26 nats; a policy that copies pays little.
        XCTAssertGreaterThan(first, 3.0, "the repetition starts out unpredictable")
        XCTAssertLessThan(last, 0.5, "the repetition's loss went \(first) → \(last): the policy did not learn to copy")
    }
}
