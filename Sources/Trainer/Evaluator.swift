import ARPO
import Foundation
import Policy
import RunRecords
import Tensor
import ToolEnv

/// Held-out evaluation: one greedy episode per eval-split seed 0..<episodes.
public struct EvaluationResult {
    public var accuracy: Double
    public var accuracyByFamily: [String: Double]
    public var episodesByFamily: [String: Int]
    /// Fraction of episodes whose transcript broke the protocol's format.
    public var formatErrorRate: Double
    /// Fraction of episodes whose answer came right after a tool result that reported a failure
    /// (`ignored_tool_failure` among the episode's errors).
    public var ignoredToolFailureRate: Double
    public var toolCallsPerEpisode: Double
    public var meanReward: Double
    public var episodes: Int
    /// A few transcripts: question, gold answer, the policy's text, reward, correctness.
    public var samples: [EvaluationSample]
}

public enum Evaluator {
    /// Plays `episodes` eval-split episodes greedily, all in one batched rollout.
    public static func evaluate(
        model: LlamaModel, environment: EnvironmentConfig, split: Split = .eval, episodes: Int, maxResponseTokens: Int,
        sampleCount: Int, codec: ProtocolCodec = ProtocolCodec(), seedOffset: UInt64 = 0
    ) -> EvaluationResult {
        let played = EpisodeSource(generated: environment).evaluationEpisodes(split: split, count: episodes, seedOffset: seedOffset)
        return evaluate(model: model, episodes: played, maxResponseTokens: maxResponseTokens, sampleCount: sampleCount, codec: codec)
    }

    /// Plays `played` greedily, all in one batched rollout, and reports accuracy per family.
    public static func evaluate(
        model: LlamaModel, episodes played: [LabelledEpisode], maxResponseTokens: Int, sampleCount: Int, codec: ProtocolCodec = ProtocolCodec()
    ) -> EvaluationResult {
        summarize(play(model: model, episodes: played, maxResponseTokens: maxResponseTokens, codec: codec), of: played, sampleCount: sampleCount, codec: codec)
    }

    /// What one held-out episode gave: the index of its episode, the response and the score.
    public struct Outcome: Codable {
        public var episode: Int
        public var responseTokens: [Int]
        public var score: EpisodeScore
    }

    /// Plays `played` greedily, all in one batched rollout; `firstEpisode` is the index of
    /// `played[0]` among the evaluation's episodes (a rank of a data-parallel job plays a slice).
    public static func play(model: LlamaModel, episodes played: [LabelledEpisode], maxResponseTokens: Int, codec: ProtocolCodec, firstEpisode: Int = 0) -> [Outcome] {
        let configuration = RolloutConfiguration(maxResponseTokens: maxResponseTokens, sampling: SamplingParameters(greedy: true), strategy: .trajectory(groupSize: 1))
        let batch = RolloutEngine(policy: model, codec: codec, configuration: configuration).run(episodes: played.map { $0 as ToolEpisode }, seed: 0)
        return zip(batch.records, batch.scores).map { Outcome(episode: firstEpisode + $0.groupIndex, responseTokens: $0.responseTokens, score: $1) }
    }

    /// Accuracy per family and the rest over `outcomes` of the episodes `played`, the first
    /// `sampleCount` outcomes' transcripts as samples.
    public static func summarize(_ outcomes: [Outcome], of played: [LabelledEpisode], sampleCount: Int, codec: ProtocolCodec) -> EvaluationResult {
        var correctByFamily: [String: Int] = [:], countByFamily: [String: Int] = [:]
        var formatErrors = 0, ignoredToolFailures = 0, toolCalls = 0, rewardTotal = 0.0, correct = 0
        var samples: [EvaluationSample] = []
        for outcome in outcomes {
            let episode = played[outcome.episode]
            let score = outcome.score
            let family = episode.familyName
            countByFamily[family, default: 0] += 1
            if score.isCorrect {
                correct += 1
                correctByFamily[family, default: 0] += 1
            }
            if let breakdown = score.breakdown {
                if !breakdown.formatCorrect { formatErrors += 1 }
                if breakdown.errors.contains(.ignoredToolFailure) { ignoredToolFailures += 1 }
                toolCalls += breakdown.executedToolCalls
            }
            rewardTotal += score.reward
            if samples.count < sampleCount {
                samples.append(EvaluationSample(
                    family: family, question: episode.prompt, goldAnswer: episode.goldAnswerText,
                    transcript: codec.text(outcome.responseTokens[...]), reward: score.reward, correct: score.isCorrect))
            }
        }
        let total = Double(max(outcomes.count, 1))
        var accuracyByFamily: [String: Double] = [:]
        for (family, count) in countByFamily { accuracyByFamily[family] = Double(correctByFamily[family] ?? 0) / Double(count) }
        return EvaluationResult(
            accuracy: Double(correct) / total,
            accuracyByFamily: accuracyByFamily,
            episodesByFamily: countByFamily,
            formatErrorRate: Double(formatErrors) / total,
            ignoredToolFailureRate: Double(ignoredToolFailures) / total,
            toolCallsPerEpisode: Double(toolCalls) / total,
            meanReward: rewardTotal / total,
            episodes: outcomes.count,
            samples: samples)
    }
}
