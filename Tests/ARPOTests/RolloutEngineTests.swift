import ARPO
import Foundation
import Policy
import Tensor
import ToolEnv
import XCTest

final class RolloutEngineTests: XCTestCase {
    func branching(budget: Int, initial: Int, window: Int, rule: BranchRule = .threshold, beta: Double = 0.2) -> RolloutConfiguration {
        var settings = BranchingConfiguration()
        settings.budget = budget
        settings.initialSamples = initial
        settings.entropyWindow = window
        settings.branchFactor = 2
        settings.rule = rule
        settings.beta = beta
        return RolloutConfiguration(maxResponseTokens: 200, sampling: SamplingParameters(greedy: true), strategy: .branching(settings))
    }

    /// Low entropy before the first call, high after the first result, low after the second:
    /// with the threshold rule (fork iff 0.5 + 0.2·ΔH > 0.5, i.e. ΔH > 0) every root forks once,
    /// after its first result and nowhere else.
    func testForksExactlyWhereTheThresholdRuleSaysAndRespectsTheBudget() {
        let ledger = ToolLedger()
        let policy = ScriptedPolicy(calls: 2, peaks: [12, 2, 12])
        let engine = RolloutEngine(policy: policy, configuration: branching(budget: 6, initial: 2, window: 3))
        let batch = engine.run(episodes: [ToyEpisode(ledger: ledger), ToyEpisode(ledger: ledger)], seed: 1)

        // Per group: 2 roots fork → 4; top-up of max(1, ⌈2/2⌉) = 1 root, which forks → 6.
        for group in 0..<2 {
            XCTAssertEqual(batch.records.filter { $0.groupIndex == group }.count, 6, "group \(group) does not hold exactly the budget")
        }
        XCTAssertEqual(batch.statistics.forks, 6)
        XCTAssertEqual(batch.statistics.forkedTrajectories, 6)
        XCTAssertEqual(batch.statistics.topUpTrajectories, 2)
        let expectedDelta = ScriptedPolicy.normalizedEntropy(peak: 2) - ScriptedPolicy.normalizedEntropy(peak: 12)
        XCTAssertEqual(batch.statistics.entropyDeltasAtForks.count, 6)
        for delta in batch.statistics.entropyDeltasAtForks { XCTAssertEqual(delta, expectedDelta, accuracy: 1e-5) }
        // Decisions after the second result (ΔH ≈ 0, not > 0) never fork: one per trajectory
        // (children included, since they reach the second call themselves).
        XCTAssertEqual(batch.statistics.entropyDeltasElsewhere.count, 12)
        for delta in batch.statistics.entropyDeltasElsewhere { XCTAssertEqual(delta, 0, accuracy: 1e-6) }

        // No call on a shared prefix runs twice: roots run 2 calls, forks only their second.
        XCTAssertEqual(ledger.executions.count, 2 * (3 * 2 + 3 * 1))
        XCTAssertEqual(batch.statistics.toolCallsExecuted, ledger.executions.count)
        // Each of the 12 transcripts holds 2 executed calls, a fork's inherited first call included.
        XCTAssertEqual(batch.statistics.toolCallsWritten, 12 * 2)
        // Every trajectory solved the task, and forks hold their parent's prefix exactly.
        XCTAssertTrue(batch.scores.allSatisfy(\.isCorrect))
        for record in batch.records {
            guard let parent = record.parent else { continue }
            let parentRecord = batch.records[parent]
            XCTAssertEqual(Array(record.responseTokens[0..<record.forkPosition]), Array(parentRecord.responseTokens[0..<record.forkPosition]))
            XCTAssertEqual(Array(record.oldLogProbabilities[0..<record.forkPosition]), Array(parentRecord.oldLogProbabilities[0..<record.forkPosition]))
            // The fork position is right after the first observation's `</obs>`.
            XCTAssertEqual(record.responseTokens[record.forkPosition - 1], engine.codec.observationCloseID)
        }
    }

    /// Entropy low before the first call, high after the 1st result, low after the 2nd and
    /// middling after the 3rd: with the threshold rule (fork iff ΔH > 0) the root forks after its
    /// 1st and 3rd results, its child (which inherits the 1st) after its 3rd, and the forks
    /// started after a 3rd result only answer. Budget 4 = root + 3 forks, so nothing is blocked
    /// and there is no top-up.
    func testEntropyAndForksAreRecordedByToolResult() {
        let policy = ScriptedPolicy(calls: 3, peaks: [12, 2, 12, 6])
        let engine = RolloutEngine(policy: policy, configuration: branching(budget: 4, initial: 1, window: 3))
        let batch = engine.run(episodes: [ToyEpisode(ledger: ToolLedger())], seed: 2)
        XCTAssertEqual(batch.records.count, 4)
        XCTAssertEqual(batch.statistics.topUpTrajectories, 0)
        XCTAssertEqual(batch.statistics.forksAfterToolResult, [1, 0, 2])
        XCTAssertEqual(batch.statistics.forks, 3)
        let entropies = batch.statistics.entropiesAfterToolResult
        XCTAssertEqual(entropies.map(\.count), [1, 2, 2], "the root measures every result; its child only those after the one it inherits")
        for (k, peak) in [(0, 2.0), (1, 12.0), (2, 6.0)] {
            for entropy in entropies[k] { XCTAssertEqual(entropy, ScriptedPolicy.normalizedEntropy(peak: peak), accuracy: 1e-5, "after result \(k + 1)") }
        }
        XCTAssertEqual(batch.statistics.entropiesAfterToolResults.count, 5, "the by-result lists split the pooled one")
    }

    func testNoForkWhenEntropyFallsAfterToolResults() {
        let ledger = ToolLedger()
        let policy = ScriptedPolicy(calls: 2, peaks: [2, 12, 12])
        let engine = RolloutEngine(policy: policy, configuration: branching(budget: 4, initial: 2, window: 3))
        let batch = engine.run(episodes: [ToyEpisode(ledger: ledger)], seed: 3)
        XCTAssertEqual(batch.statistics.forks, 0)
        XCTAssertEqual(batch.records.count, 4, "the group is topped up to the budget with fresh samples")
        XCTAssertEqual(batch.statistics.topUpTrajectories, 2)
        XCTAssertEqual(ledger.executions.count, 8, "independent samples each run their own calls")
    }

    /// The top-up starts ⌈missing · roots / trajectories⌉ roots: where nothing forked that is
    /// every missing trajectory at once, so the group fills in one more round (a fixed half
    /// would take 3, 2 and then 1 root in three rounds); where every root forked once, half.
    func testTopUpSizeFollowsTheGroupsForkYield() {
        let oneRound = ScriptedPolicy(calls: 1, peaks: [2, 12])
        let trajectoryLevel = RolloutConfiguration(maxResponseTokens: 200, sampling: SamplingParameters(greedy: true), strategy: .trajectory(groupSize: 2))
        _ = RolloutEngine(policy: oneRound, configuration: trajectoryLevel).run(episodes: [ToyEpisode(ledger: ToolLedger())], seed: 1)

        let neverForks = ScriptedPolicy(calls: 1, peaks: [2, 12])
        let unforked = RolloutEngine(policy: neverForks, configuration: branching(budget: 8, initial: 2, window: 2))
            .run(episodes: [ToyEpisode(ledger: ToolLedger())], seed: 1)
        XCTAssertEqual(unforked.statistics.forks, 0)
        XCTAssertEqual(unforked.records.count, 8)
        XCTAssertEqual(unforked.statistics.topUpTrajectories, 6, "all six missing trajectories start together")
        XCTAssertEqual(neverForks.extendCalls, 2 * oneRound.extendCalls, "the initial round and one top-up round")
        XCTAssertEqual(unforked.statistics.policyCalls, neverForks.extendCalls)
        XCTAssertEqual(unforked.statistics.policyRows, oneRound.extendCalls * 2 + oneRound.extendCalls * 6)

        // Every root forks once after its result: 2 roots → 4; top-up ⌈4 · 2 / 4⌉ = 2 → 8.
        let alwaysForks = ScriptedPolicy(calls: 1, peaks: [12, 2])
        let forked = RolloutEngine(policy: alwaysForks, configuration: branching(budget: 8, initial: 2, window: 2))
            .run(episodes: [ToyEpisode(ledger: ToolLedger())], seed: 1)
        XCTAssertEqual(forked.records.count, 8)
        XCTAssertEqual(forked.statistics.topUpTrajectories, 2)
        XCTAssertEqual(forked.statistics.forkedTrajectories, 4)
    }

    func testStochasticRuleFollowsItsFormula() {
        // β·ΔH ≫ 1: clip(u + βΔH, 0, 1) = 1 ≥ τ always, so every root forks after its first result.
        let always = RolloutEngine(policy: ScriptedPolicy(calls: 1, peaks: [12, 2]), configuration: branching(budget: 4, initial: 2, window: 2, rule: .stochastic, beta: 100))
        XCTAssertEqual(always.run(episodes: [ToyEpisode(ledger: ToolLedger())], seed: 5).statistics.forks, 2)
        // β·ΔH ≪ −1: clip(…) = 0 < τ always, so nothing forks.
        let never = RolloutEngine(policy: ScriptedPolicy(calls: 1, peaks: [2, 12]), configuration: branching(budget: 4, initial: 2, window: 2, rule: .stochastic, beta: 100))
        XCTAssertEqual(never.run(episodes: [ToyEpisode(ledger: ToolLedger())], seed: 5).statistics.forks, 0)
    }

    func testTrajectoryLevelSamplingRunsIndependentGroups() {
        let ledger = ToolLedger()
        let policy = ScriptedPolicy(calls: 3, peaks: [5])
        let configuration = RolloutConfiguration(maxResponseTokens: 200, sampling: SamplingParameters(greedy: true), strategy: .trajectory(groupSize: 3))
        let batch = RolloutEngine(policy: policy, configuration: configuration).run(episodes: [ToyEpisode(ledger: ledger), ToyEpisode(ledger: ledger)], seed: 2)
        XCTAssertEqual(batch.records.count, 6)
        XCTAssertEqual(ledger.executions.count, 18)
        XCTAssertEqual(batch.statistics.forks, 0)
        XCTAssertTrue(batch.records.allSatisfy { $0.parent == nil })
        // Observation tokens carry loss mask 0, zero log-prob and zero entropy; policy tokens mask 1.
        let codec = ProtocolCodec()
        for record in batch.records {
            var insideObservation = false
            for (index, token) in record.responseTokens.enumerated() {
                if token == codec.observationOpenID { insideObservation = true }
                XCTAssertEqual(record.lossMask[index], !insideObservation, "token \(index) has the wrong loss mask")
                if insideObservation { XCTAssertEqual(record.oldLogProbabilities[index], 0) }
                if token == codec.observationCloseID { insideObservation = false }
            }
            XCTAssertEqual(codec.text(record.responseTokens[...]), "ab<call>q</call><obs>7</obs>ab<call>q</call><obs>7</obs>ab<call>q</call><obs>7</obs><answer>1</answer><|end|>")
        }
        // Each step is one batched policy call for all six sequences: the prompt prefill plus one
        // call per generated position of the (identical) trajectories.
        let generatedPerTrajectory = batch.records[0].lossMask.filter { $0 }.count
        XCTAssertEqual(policy.extendCalls, generatedPerTrajectory)
    }

    func testTokenLimitAndCallLimitEndEpisodes() {
        let ledger = ToolLedger()
        let configuration = RolloutConfiguration(maxResponseTokens: 12, sampling: SamplingParameters(greedy: true), strategy: .trajectory(groupSize: 1))
        let limited = RolloutEngine(policy: ScriptedPolicy(calls: 5, peaks: [5]), configuration: configuration).run(episodes: [ToyEpisode(ledger: ledger)], seed: 1)
        XCTAssertLessThanOrEqual(limited.records[0].responseTokens.count, 12)
        XCTAssertFalse(limited.scores[0].isCorrect)
        let callLimited = RolloutEngine(
            policy: ScriptedPolicy(calls: 5, peaks: [5]),
            configuration: RolloutConfiguration(maxResponseTokens: 500, sampling: SamplingParameters(greedy: true), strategy: .trajectory(groupSize: 1))
        ).run(episodes: [ToyEpisode(ledger: ledger, maxCalls: 2)], seed: 1)
        XCTAssertFalse(callLimited.scores[0].isCorrect)
        XCTAssertEqual(callLimited.statistics.toolCallsExecuted, 2)
        // Without forks every executed call is in one transcript; the refused third is in neither.
        XCTAssertEqual(callLimited.statistics.toolCallsWritten, 2)
    }

    /// The log-probs recorded while sampling equal what the training forward pass recomputes
    /// for the same sequence: the PPO ratio starts at exactly 1.
    func testRecordedLogProbabilitiesMatchTheTrainingForwardPass() {
        var generator = RandomGenerator(seed: 8)
        let model = LlamaModel(configuration: LlamaConfiguration(hiddenSize: 32, intermediateSize: 48, layerCount: 2, headCount: 4, maxPositions: 96), generator: &generator)
        let configuration = RolloutConfiguration(maxResponseTokens: 40, sampling: SamplingParameters(temperature: 0.8), strategy: .trajectory(groupSize: 3))
        let environment = EnvironmentConfig()
        let episodes = (0..<2).map { Episode(family: .arithmetic, split: .train, seed: UInt64($0), config: environment) as ToolEpisode }
        let batch = RolloutEngine(policy: model, configuration: configuration).run(episodes: episodes, seed: 4)
        XCTAssertEqual(batch.records.count, 6)
        for record in batch.records {
            let sequence = record.promptTokens + record.responseTokens
            let statistics = withoutGradients { model.tokenStatistics(TokenBatch(sequences: [sequence], padding: 0), temperature: 0.8) }
            let recomputed = statistics.logProbabilities.doubles
            for (offset, isPolicyToken) in record.lossMask.enumerated() where isPolicyToken {
                let position = record.promptTokens.count + offset - 1
                XCTAssertEqual(record.oldLogProbabilities[offset], recomputed[position], accuracy: 2e-4)
                XCTAssertEqual(record.entropies[offset], statistics.entropies.doubles[position], accuracy: 2e-4)
            }
        }
    }
}
