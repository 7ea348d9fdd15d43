import Foundation
import ARPO
import RunRecords
@testable import ToolEnv
@testable import Trainer
import XCTest

/// The records of metrics.jsonl, eval.jsonl and summary.json: the keys written, null for a
/// missing value, and lines written before a key existed still loading.
final class RunRecordsTests: XCTestCase {
    func keys(_ data: Data) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func testSupervisedLineHasTheSFTKeysWithNullForANonFiniteLoss() throws {
        var record = StepMetrics(phase: "sft", step: 3)
        record.phaseStep = 3
        record.loss = nil
        record.learningRate = 0.003
        record.tokens = 40
        record.skipped = true
        let data = try JSONEncoder().encode(record)
        let object = try keys(data)
        XCTAssertEqual(Set(object.keys), ["phase", "step", "phase_step", "loss", "policy_loss", "gradient_norm", "learning_rate",
                                          "tokens", "tokens_per_second", "seconds", "skipped"])
        XCTAssertTrue(object["loss"] is NSNull)
        XCTAssertEqual(object["tokens"] as? Int, 40)
        XCTAssertEqual(try JSONDecoder().decode(StepMetrics.self, from: data), record)
    }

    func testReinforcementLineWritesEveryRLKeyAndAnOlderLineStillDecodes() throws {
        var record = StepMetrics(phase: "rl", step: 5)
        record.forks = 2
        record.entropyAfterToolResults = nil
        let object = try keys(try JSONEncoder().encode(record))
        for key in ["reward_mean", "tool_calls_written", "tool_calls_per_answered_episode", "forks", "entropy_after_tool_results", "entropy_initial", "entropy_after_tool_result_1", "forks_after_tool_result_3", "approx_kl", "rollout_logprob_drift_max", "dpo_pairs", "dpo_loss", "memory_bank_size", "memory_bank_admitted", "memory_bank_replayed_rows", "memory_bank_replay_loss", "memory_bank_contrastive_pairs", "memory_bank_contrastive_loss"] {
            XCTAssertNotNil(object[key], "RL line lacks \(key)")
        }
        XCTAssertTrue(object["entropy_after_tool_results"] is NSNull)
        XCTAssertEqual(object["forks"] as? Int, 2)
        XCTAssertNil(object["skipped"], "an RL line has no SFT keys")

        let older = try JSONDecoder().decode(StepMetrics.self, from: Data(#"{"phase": "rl", "step": 7, "reward_mean": 0.5}"#.utf8))
        XCTAssertEqual(older.rewardMean, 0.5)
        XCTAssertNil(older.forks)
    }

    func testEvaluationLineMarksOnlyTheFinalOneAndToleratesSamplesItDoesNotRead() throws {
        let result = EvaluationResult(
            accuracy: 0.5, accuracyByFamily: ["arithmetic": 0.5], episodesByFamily: ["arithmetic": 2], formatErrorRate: 0,
            ignoredToolFailureRate: 0.5, toolCallsPerEpisode: 1, meanReward: 0.2, episodes: 2,
            samples: [EvaluationSample(family: "arithmetic", question: "1+1?", goldAnswer: "2", transcript: "<answer>2</answer>", reward: 1, correct: true)])
        let middle = try keys(try JSONEncoder().encode(HeldOutEvaluation(result, step: 4, phase: "rl", toolCallsExecutedTotal: 9)))
        XCTAssertNil(middle["final"])
        XCTAssertEqual(middle["tool_calls_executed_total"] as? Int, 9)
        XCTAssertEqual(Set(middle.keys), ["step", "phase", "tool_calls_executed_total", "accuracy", "accuracy_by_family", "episodes_by_family",
                                          "format_error_rate", "ignored_tool_failure_rate", "tool_calls_per_episode", "mean_reward", "episodes", "samples"])
        XCTAssertEqual(middle["ignored_tool_failure_rate"] as? Double, 0.5)
        let final = try keys(try JSONEncoder().encode(HeldOutEvaluation(result, step: 5, phase: "rl", toolCallsExecutedTotal: 9, isFinal: true)))
        XCTAssertEqual(final["final"] as? Bool, true)
        // `arpo-train eval --json`: the measurements alone.
        XCTAssertNil(try keys(try JSONEncoder().encode(result))["step"])

        let sparse = try JSONDecoder().decode(HeldOutEvaluation.self, from: Data(#"{"step": 2, "accuracy": 0.25, "samples": [{"transcript": "x"}]}"#.utf8))
        XCTAssertEqual(sparse.accuracy, 0.25)
        XCTAssertNil(sparse.samples)
        XCTAssertNil(sparse.ignoredToolFailureRate, "a line written before the key loads")
    }

    /// `ignored_tool_failure_rate`: the episodes whose answer came right after a tool result
    /// reporting a failure, over all episodes. Of four episodes where every call fails, one
    /// answers right after its failed call; one calls again after the failure, then answers
    /// after a second failure; two answer without calling.
    func testEvaluationCountsEpisodesThatIgnoredAToolFailure() {
        let config = EnvironmentConfig(faults: FaultConfig(failureProbability: 1, degradedProbability: 0))
        let episodes = (0..<4).map { Episode(family: .arithmetic, split: .eval, seed: UInt64($0), config: config) }
        func play(_ episode: Episode, calls: Int) -> Evaluator.Outcome {
            var transcript = ""
            for _ in 0..<calls {
                let call = "<call>calc(\(episode.task.plan[0].arguments))</call>"
                let response: ToolResponse = episode.respond(toPolicyText: call)
                transcript += call + "<obs>" + response.observation + "</obs>"
            }
            let breakdown: RewardBreakdown = episode.finish(policyText: transcript + "<answer>\(episode.task.goldAnswer)</answer><|end|>", endReason: .answered)
            return Evaluator.Outcome(episode: 0, responseTokens: [], score: EpisodeScore(reward: breakdown.total, isCorrect: breakdown.isCorrect, breakdown: breakdown))
        }
        var outcomes = [play(episodes[0], calls: 1), play(episodes[1], calls: 2), play(episodes[2], calls: 0), play(episodes[3], calls: 0)]
        for index in outcomes.indices { outcomes[index].episode = index }
        let result = Evaluator.summarize(outcomes, of: episodes, sampleCount: 0, codec: ProtocolCodec())
        XCTAssertEqual(result.ignoredToolFailureRate, 2.0 / 4.0)
        XCTAssertEqual(HeldOutEvaluation(result, step: 9).ignoredToolFailureRate, 0.5)
    }

    func testSummaryWritesNullForAnUnmeasuredAccuracyAfterSFT() throws {
        var summary = RunSummary()
        summary.accuracyAfterRL = 0.75
        let object = try keys(try JSONEncoder().encode(summary))
        XCTAssertTrue(object["accuracy_after_sft"] is NSNull)
        XCTAssertEqual(object["accuracy_after_rl"] as? Double, 0.75)
    }
}
