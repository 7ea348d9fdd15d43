import ARPO
import Foundation
import Policy
import Tensor
import ToolEnv
import XCTest

/// AEPO's entropy-balanced branching (docs/algorithms.md §3.1): the split of the budget between
/// global samples and branches, the penalty on consecutive forks, and both in the rollout.
final class EntropyBalancedBranchingTests: XCTestCase {
    func balanced(budget: Int = 16, sensitivity: Double = 0.5, penalty: Double = 0.05, normalization: EntropyNormalization = .sumOverLogVocabulary, window: Int = 20) -> BranchingConfiguration {
        var settings = BranchingConfiguration()
        settings.rule = .entropyBalanced
        settings.budget = budget
        settings.splitSensitivity = sensitivity
        settings.consecutiveForkPenalty = penalty
        settings.entropyNormalization = normalization
        settings.entropyWindow = window
        return settings
    }

    /// m = clamp(round(M·σ(κ·s·(H_root − H̄_tool))), 1, M) with M = 16, κ = 0.5 and, under
    /// `sum-log-vocab`, s = 1:
    /// - equal entropies: σ(0) = 0.5, m = 8;
    /// - H_root − H̄_tool = 2: σ(1) = 0.7310585786300049, 16 · 0.731… = 11.70, m = 12;
    /// - H_root − H̄_tool = −2: σ(−1) = 0.2689414213699951, 16 · 0.269… = 4.30, m = 4;
    /// - −20: σ(−10) = 4.5e-5, 16 · σ = 0.0007, rounded 0, clamped to 1;
    /// - +20: σ(10) = 0.9999546, 16 · σ = 15.9993, m = 16.
    /// Under `mean-log-vocab` with k = 20, s = 20: a mean gap of 0.1 is 2 on the rule's scale, m = 12.
    func testTheBudgetIsSplitBySigmoidOfTheEntropyGap() {
        let settings = balanced()
        XCTAssertEqual(settings.globalSampleCount(rootEntropy: 0.3, toolEntropy: 0.3, vocabularySize: 272), 8)
        XCTAssertEqual(settings.globalSampleCount(rootEntropy: 2.5, toolEntropy: 0.5, vocabularySize: 272), 12)
        XCTAssertEqual(settings.globalSampleCount(rootEntropy: 0.5, toolEntropy: 2.5, vocabularySize: 272), 4)
        XCTAssertEqual(settings.globalSampleCount(rootEntropy: 0, toolEntropy: 20, vocabularySize: 272), 1)
        XCTAssertEqual(settings.globalSampleCount(rootEntropy: 20, toolEntropy: 0, vocabularySize: 272), 16)
        let mean = balanced(normalization: .meanOverLogVocabulary, window: 20)
        XCTAssertEqual(mean.globalSampleCount(rootEntropy: 0.35, toolEntropy: 0.25, vocabularySize: 272), 12)
        // κ = 0 ignores the entropies: always M/2.
        XCTAssertEqual(balanced(sensitivity: 0).globalSampleCount(rootEntropy: 20, toolEntropy: 0, vocabularySize: 272), 8)
    }

    /// The fork probability is clip((α + β·s·ΔH)·max(0, 1 − λ·l), 0, 1). With α = 0.5,
    /// β = 0.2, ΔH = 1.5 (s = 1), the unpenalised score is 0.8; λ = 0.05 scales it by 1, 0.9,
    /// 0.8 and 0.5 for l = 0, 2, 4 and 10 (0.8, 0.72, 0.64, 0.4), and λ = 0.5 at l = 3 takes it
    /// to max(0, −0.5) = 0: never. The draw decides exactly as u < score, and over 20,000
    /// seeded draws the rate is within 5 binomial standard deviations of the score.
    func testConsecutiveForksScaleTheForkProbabilityDown() {
        let settings = balanced()
        let cases: [(forks: Int, penalty: Double, score: Double)] = [(0, 0.05, 0.8), (2, 0.05, 0.72), (4, 0.05, 0.64), (10, 0.05, 0.4), (3, 0.5, 0)]
        for (index, item) in cases.enumerated() {
            var rule = settings
            rule.consecutiveForkPenalty = item.penalty
            var generator = RandomGenerator(seed: 40 + UInt64(index))
            var forks = 0
            let draws = 20_000
            for _ in 0..<draws {
                let decision = rule.decide(entropyDelta: 1.5, vocabularySize: 272, consecutiveForks: item.forks, generator: &generator)
                XCTAssertEqual(decision.score, item.score, accuracy: 1e-12)
                XCTAssertEqual(decision.fork, decision.draw! < item.score)
                if decision.fork { forks += 1 }
            }
            let deviation = Swift.max((item.score * (1 - item.score) / Double(draws)).squareRoot(), 1e-9)
            XCTAssertEqual(Double(forks) / Double(draws), item.score, accuracy: 5 * deviation, "l = \(item.forks), λ = \(item.penalty)")
        }
        // The other rules ignore l.
        var stochastic = settings
        stochastic.rule = .stochastic
        var generator = RandomGenerator(seed: 1)
        XCTAssertEqual(stochastic.decide(entropyDelta: 1.5, vocabularySize: 272, consecutiveForks: 10, generator: &generator).score, 0.8, accuracy: 1e-12)
    }

    func rollout(peaks: [Double], calls: Int, budget: Int, sensitivity: Double, penalty: Double) -> (RolloutBatch, RolloutEngine) {
        var settings = balanced(budget: budget, sensitivity: sensitivity, penalty: penalty, normalization: .meanOverLogVocabulary, window: 3)
        settings.beta = 100
        settings.decisionLog = true
        let configuration = RolloutConfiguration(maxResponseTokens: 200, sampling: SamplingParameters(greedy: true), strategy: .branching(settings))
        let engine = RolloutEngine(policy: ScriptedPolicy(calls: calls, peaks: peaks), configuration: configuration)
        return (engine.run(episodes: [ToyEpisode(ledger: ToolLedger())], seed: 7), engine)
    }

    /// A question far more uncertain than its tool results (peak 2 before the first call, 12
    /// after every result; κ = 100 makes σ 1): the probe's split starts the whole budget as
    /// global samples right after the probe, nothing is left to top up, and with ΔH < 0 and
    /// β = 100 nothing forks.
    func testAnUncertainQuestionGetsTheWholeBudgetAsGlobalSamples() {
        let (batch, _) = rollout(peaks: [2, 12, 12], calls: 2, budget: 6, sensitivity: 100, penalty: 0.05)
        XCTAssertEqual(batch.statistics.globalSamples, [6])
        XCTAssertEqual(batch.records.count, 6)
        XCTAssertEqual(batch.statistics.topUpTrajectories, 0)
        XCTAssertEqual(batch.statistics.forks, 0)
        XCTAssertTrue(batch.records.allSatisfy { $0.parent == nil })
    }

    /// Tool results far more uncertain than the question (peak 12 before the first call, 2
    /// after each of three results; κ = 100 makes σ 0): the probe is the only global sample.
    /// With β = 100 the score is ≫ 1, so with λ = 1 the probability is 1 at l = 0 and 0 at
    /// l = 1: the probe forks after result 1, is held back after result 2 (it forked at the
    /// result right before), forks again after result 3. Its copy from result 1 inherits l = 1:
    /// held back after result 2, forks after result 3. Budget 4 = probe + 3 forks, no top-up.
    func testConsecutiveForksOnAPathArePenalisedAndTheProbeIsTheOnlyGlobalSample() {
        let (batch, _) = rollout(peaks: [12, 2, 2, 2], calls: 3, budget: 4, sensitivity: 100, penalty: 1)
        XCTAssertEqual(batch.statistics.globalSamples, [1])
        XCTAssertEqual(batch.records.count, 4)
        XCTAssertEqual(batch.statistics.topUpTrajectories, 0)
        let decisions = batch.statistics.forkDecisions
        let probe = decisions.filter { $0.trajectory == 0 }
        XCTAssertEqual(probe.map(\.turn), [1, 2, 3])
        XCTAssertEqual(probe.map(\.outcome), [.forked, .declinedByRule, .forked])
        XCTAssertEqual(probe.map(\.consecutiveForks), [0, 1, 0])
        XCTAssertEqual(probe[1].score, 0, "the penalty takes the score to 0 after a fork")
        let copy = decisions.filter { $0.trajectory == 1 }
        XCTAssertEqual(batch.records[1].parent, 0)
        XCTAssertEqual(copy.map(\.turn), [2, 3])
        XCTAssertEqual(copy.map(\.outcome), [.declinedByRule, .forked])
        XCTAssertEqual(copy.map(\.consecutiveForks), [1, 0])
        XCTAssertEqual(try encodedFields(copy[0])["consecutive_forks"] as? Int, 1)
        // Without the penalty the rule says fork after every result (the budget then blocks
        // some), and the probe forks after its first two.
        let (unpenalised, _) = rollout(peaks: [12, 2, 2, 2], calls: 3, budget: 4, sensitivity: 100, penalty: 0)
        let probeOutcomes = unpenalised.statistics.forkDecisions.filter { $0.trajectory == 0 }.map(\.outcome)
        XCTAssertEqual(Array(probeOutcomes.prefix(2)), [.forked, .forked])
        XCTAssertEqual(probeOutcomes.count, 3)
        XCTAssertFalse(unpenalised.statistics.forkDecisions.contains { $0.outcome == .declinedByRule })
    }

    func testConfigurationKeysDecodeAndAreValidatedNamingTheKey() throws {
        let decoded = try JSONDecoder().decode(
            BranchingConfiguration.self, from: Data(#"{"rule": "entropy-balanced", "split_sensitivity": 2, "consecutive_fork_penalty": 0.25}"#.utf8))
        XCTAssertEqual(decoded.rule, .entropyBalanced)
        XCTAssertEqual(decoded.splitSensitivity, 2)
        XCTAssertEqual(decoded.consecutiveForkPenalty, 0.25)
        let defaults = try JSONDecoder().decode(BranchingConfiguration.self, from: Data("{}".utf8))
        XCTAssertEqual(defaults.splitSensitivity, 0.5)
        XCTAssertEqual(defaults.consecutiveForkPenalty, 0.05)
        XCTAssertEqual(defaults.rule, .stochastic)
        func message(_ change: (inout BranchingConfiguration) -> Void) -> String? {
            var settings = BranchingConfiguration()
            change(&settings)
            do { try settings.validate(path: "rl.branching") } catch { return (error as? ConfigurationError)?.description ?? "\(error)" }
            return nil
        }
        XCTAssertEqual(message { $0.consecutiveForkPenalty = 1.5 }, "rl.branching.consecutive_fork_penalty must be in [0, 1], got 1.5")
        XCTAssertEqual(message { $0.splitSensitivity = .infinity }, "rl.branching.split_sensitivity must be a finite number in [-1000, 1000], got inf")
        XCTAssertNil(message { $0.consecutiveForkPenalty = 0 })
    }
}
