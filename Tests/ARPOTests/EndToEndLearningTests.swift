import ARPO
import Foundation
import Policy
import Tensor
import ToolEnv
import XCTest

/// "Answer with the number in the observation": any call returns "7"; the answer scores 1 when
/// it is 7, 0 for another answer, −1 without the answer format.
final class DigitEpisode: ToolEpisode {
    let digit = 7
    let prompt = "n?"
    var calls = 0

    init() {}

    func respond(toPolicyText text: String) -> ToolReply {
        calls += 1
        return ToolReply(observation: "\(digit)", wasExecuted: true, mustEnd: calls > 3)
    }

    func finish(policyText: String, endReason: EndReason) -> EpisodeScore {
        guard endReason == .answered, let open = policyText.range(of: "<answer>"), let close = policyText.range(of: "</answer>"), open.upperBound <= close.lowerBound else {
            return EpisodeScore(reward: -1, isCorrect: false)
        }
        let correct = policyText[open.upperBound..<close.lowerBound] == "\(digit)"
        return EpisodeScore(reward: correct ? 1 : 0, isCorrect: correct)
    }

    func forkEpisode() -> ToolEpisode {
        let copy = DigitEpisode()
        copy.calls = calls
        return copy
    }
}

/// End to end on the toy task: a briefly cold-started policy trained with each of GRPO, PPO and
/// ARPO raises its mean reward.
final class EndToEndLearningTests: XCTestCase {
    let codec = ProtocolCodec()

    /// A tiny policy warmed up on the protocol only: call, read the observation, answer with a
    /// digit, where the demonstrations' answers are every digit alike. It starts near reward 0.1
    /// (one answer in ten right) and only the reward can teach it which digit to give.
    func warmStartedModel(valueHead: Bool) -> LlamaModel {
        var generator = RandomGenerator(seed: 5)
        let configuration = LlamaConfiguration(hiddenSize: 32, intermediateSize: 64, layerCount: 2, headCount: 2, maxPositions: 48, valueHead: valueHead)
        let model = LlamaModel(configuration: configuration, generator: &generator)
        let optimizer = AdamW(named: model.namedParameters, hyperparameters: .init(weightDecay: 0))
        let sequences = (0..<10).map { digit -> (tokens: [Int], mask: [Bool]) in
            let prompt = codec.promptTokens("n?")
            let call = codec.tokenizer.encode("<call>get()</call>", allowingSpecialTokens: true)
            let observation = codec.observationTokens("7")
            let answer = codec.tokenizer.encode("<answer>\(digit)</answer><|end|>", allowingSpecialTokens: true)
            let tokens = prompt + call + observation + answer
            let mask = [Bool](repeating: false, count: prompt.count) + [Bool](repeating: true, count: call.count)
                + [Bool](repeating: false, count: observation.count) + [Bool](repeating: true, count: answer.count)
            return (tokens, mask)
        }
        let batch = TokenBatch(sequences: sequences.map(\.tokens), padding: codec.tokenizer.padID)
        let width = batch.length - 1
        var weights = [Double](repeating: 0, count: sequences.count * width)
        for (row, sequence) in sequences.enumerated() {
            for position in 0..<(sequence.tokens.count - 1) where sequence.mask[position + 1] { weights[row * width + position] = 1 }
        }
        let weightTensor = Tensor(shape: [sequences.count, width], values: weights, dtype: .float32)
        let count = weights.reduce(0, +)
        for _ in 0..<60 {
            optimizer.zeroGradients()
            (-(model.tokenStatistics(batch).logProbabilities * weightTensor).sum() / count).backward()
            optimizer.update(learningRate: 1e-2)
        }
        return model
    }

    /// Mean reward of 64 sampled trajectories.
    func meanReward(_ model: LlamaModel, seed: UInt64) -> Double {
        let configuration = RolloutConfiguration(maxResponseTokens: 24, strategy: .trajectory(groupSize: 8))
        let batch = RolloutEngine(policy: model, configuration: configuration).run(episodes: (0..<8).map { _ in DigitEpisode() }, seed: seed)
        return batch.scores.map(\.reward).reduce(0, +) / Double(batch.scores.count)
    }

    func train(_ model: LlamaModel, strategy: RolloutConfiguration.Strategy, algorithm: UpdateAlgorithm, advantage: AdvantageConfiguration = AdvantageConfiguration()) -> (before: Double, after: Double) {
        let before = meanReward(model, seed: 1000)
        let reference = model.copy()
        let optimizer = AdamW(named: model.namedParameters, hyperparameters: .init(weightDecay: 0))
        let learner = ReinforcementLearner(
            model: model, reference: reference, optimizer: optimizer,
            configuration: UpdateConfiguration(epochs: 2, miniBatches: 2, microBatchSize: 32, advantage: advantage), algorithm: algorithm)
        let engine = RolloutEngine(policy: model, configuration: RolloutConfiguration(maxResponseTokens: 24, strategy: strategy))
        for step in 0..<10 {
            let episodes = (0..<4).map { _ in DigitEpisode() as ToolEpisode }
            let batch = engine.run(episodes: episodes, seed: UInt64(step))
            let update = learner.update(batch, learningRate: 3e-3, seed: UInt64(step))
            XCTAssertEqual(update.skippedUpdates, 0)
        }
        return (before, meanReward(model, seed: 1000))
    }

    func testGRPORaisesMeanReward() {
        let result = train(warmStartedModel(valueHead: false), strategy: .trajectory(groupSize: 8), algorithm: .groupRelative, advantage: {
            var settings = AdvantageConfiguration()
            settings.mode = .grpo
            return settings
        }())
        XCTAssertGreaterThan(result.after, result.before + 0.2, "GRPO: mean reward \(result.before) → \(result.after)")
    }

    func testPPORaisesMeanReward() {
        let result = train(warmStartedModel(valueHead: true), strategy: .trajectory(groupSize: 8), algorithm: .proximal)
        XCTAssertGreaterThan(result.after, result.before + 0.2, "PPO: mean reward \(result.before) → \(result.after)")
    }

    func testARPORaisesMeanReward() {
        var branching = BranchingConfiguration()
        branching.budget = 8
        branching.initialSamples = 4
        branching.entropyWindow = 3
        let result = train(warmStartedModel(valueHead: false), strategy: .branching(branching), algorithm: .groupRelative)
        XCTAssertGreaterThan(result.after, result.before + 0.2, "ARPO: mean reward \(result.before) → \(result.after)")
        print("ARPO toy task: mean reward \(result.before) → \(result.after)")
    }
}
