import ARPO
import Foundation
import Policy
import Tensor
import ToolEnv
import XCTest

/// The fork rule (docs/algorithms.md §3): the stochastic rule's fork rate, β's scale under each
/// entropy normalisation, and what the rollout logs about each fork opportunity.
final class ForkRuleTests: XCTestCase {
    func settings(rule: BranchRule, alpha: Double, beta: Double, threshold: Double = 0.5, normalization: EntropyNormalization = .sumOverLogVocabulary, window: Int = 20) -> BranchingConfiguration {
        var settings = BranchingConfiguration()
        settings.rule = rule
        settings.alpha = alpha
        settings.beta = beta
        settings.threshold = threshold
        settings.entropyNormalization = normalization
        settings.entropyWindow = window
        return settings
    }

    /// The fraction of `draws` decisions that fork.
    func forkRate(_ settings: BranchingConfiguration, delta: Double, draws: Int, seed: UInt64) -> Double {
        var generator = RandomGenerator(seed: seed)
        var forks = 0
        for _ in 0..<draws where settings.decide(entropyDelta: delta, vocabularySize: 272, generator: &generator).fork { forks += 1 }
        return Double(forks) / Double(draws)
    }

    /// Over 20,000 seeded draws per case, the stochastic rule forks at rate clip(α + β·ΔH, 0, 1)
    /// within 5 binomial standard deviations (at most 5·√(0.25 / 20,000) ≈ 0.018; with the fixed
    /// seeds the test cannot flake). The cases keep α + β·ΔH apart from 1 − τ + β·ΔH, the rate of
    /// the rule "fork when clip(u + β·ΔH) ≥ τ", so that rule fails them; and the clipped ends
    /// fork never or always.
    func testStochasticRuleForksWithProbabilityAlphaPlusBetaDeltaClipped() {
        let draws = 20_000
        let cases: [(alpha: Double, beta: Double, delta: Double, probability: Double)] = [
            (0.5, 0.2, 0, 0.5),
            (0.3, 0.2, 1, 0.5),
            (0.1, 0.5, 0.6, 0.4),
            (0.8, 0.2, -1.5, 0.5),
            (0.2, 0.2, 0.5, 0.3),
            (0.9, 0.3, 1, 1),
            (0.2, 0.4, -1, 0),
        ]
        for (index, item) in cases.enumerated() {
            let rule = settings(rule: .stochastic, alpha: item.alpha, beta: item.beta)
            let rate = forkRate(rule, delta: item.delta, draws: draws, seed: 100 + UInt64(index))
            let deviation = (item.probability * (1 - item.probability) / Double(draws)).squareRoot()
            XCTAssertEqual(rate, item.probability, accuracy: 5 * deviation, "α \(item.alpha), β \(item.beta), ΔH \(item.delta)")
        }
    }

    /// β is stated on the released code's scale (a sum over the k-token window / ln|V|), so the
    /// rule sees ΔH × k under `mean-log-vocab` and ΔH × k / ln|V| under `mean`. With α = 0.4,
    /// τ = 0.5, β = 0.2, k = 20 the threshold rule forks when ΔH > 0.1 / (0.2 · 20) = 0.025 on
    /// the mean: ΔH = 0.03 gives 0.4 + 0.2 · 20 · 0.03 = 0.52 > 0.5 (fork), ΔH = 0.02 gives
    /// 0.48 (no fork). Unscaled, 0.4 + 0.2 · 0.03 = 0.406 would never fork.
    func testBetaActsOnTheReleasedCodesScaleUnderEveryNormalization() {
        let vocabulary = 272
        let logVocabulary = log(Double(vocabulary))
        var generator = RandomGenerator(seed: 1)
        let onMean = settings(rule: .threshold, alpha: 0.4, beta: 0.2, normalization: .meanOverLogVocabulary)
        XCTAssertEqual(onMean.ruleScale(vocabularySize: vocabulary), 20)
        XCTAssertTrue(onMean.decide(entropyDelta: 0.03, vocabularySize: vocabulary, generator: &generator).fork)
        XCTAssertEqual(onMean.decide(entropyDelta: 0.03, vocabularySize: vocabulary, generator: &generator).score, 0.52, accuracy: 1e-12)
        XCTAssertFalse(onMean.decide(entropyDelta: 0.02, vocabularySize: vocabulary, generator: &generator).fork)
        // The threshold rule draws nothing.
        XCTAssertEqual(generator, RandomGenerator(seed: 1))
        XCTAssertNil(onMean.decide(entropyDelta: 0.03, vocabularySize: vocabulary, generator: &generator).draw)

        // The same step-entropy change in each unit gives the same score: 0.5 + 0.2 · 20 · 0.05 = 0.7.
        let inNats = settings(rule: .stochastic, alpha: 0.5, beta: 0.2, normalization: .mean)
        let onSum = settings(rule: .stochastic, alpha: 0.5, beta: 0.2, normalization: .sumOverLogVocabulary)
        let onMeanStochastic = settings(rule: .stochastic, alpha: 0.5, beta: 0.2, normalization: .meanOverLogVocabulary)
        XCTAssertEqual(inNats.ruleScale(vocabularySize: vocabulary), 20 / logVocabulary, accuracy: 1e-12)
        XCTAssertEqual(onSum.ruleScale(vocabularySize: vocabulary), 1)
        for (rule, delta) in [(onMeanStochastic, 0.05), (onSum, 1.0), (inNats, 0.05 * logVocabulary)] {
            XCTAssertEqual(rule.decide(entropyDelta: delta, vocabularySize: vocabulary, generator: &generator).score, 0.7, accuracy: 1e-12, "\(rule.entropyNormalization)")
            let rate = forkRate(rule, delta: delta, draws: 20_000, seed: 7)
            XCTAssertEqual(rate, 0.7, accuracy: 5 * (0.21 / 20_000).squareRoot(), "\(rule.entropyNormalization)")
        }
    }

    func testDefaultsAreTheReleasedCodesStochasticRule() {
        let defaults = BranchingConfiguration()
        XCTAssertEqual(defaults.rule, .stochastic)
        XCTAssertEqual(defaults.alpha, 0.5)
        XCTAssertEqual(defaults.beta, 0.2)
        XCTAssertFalse(defaults.decisionLog)
        let decoded = try? JSONDecoder().decode(BranchingConfiguration.self, from: Data(#"{"decision_log": true, "rule": "threshold"}"#.utf8))
        XCTAssertEqual(decoded?.decisionLog, true)
        XCTAssertEqual(decoded?.rule, .threshold)
    }

    func branching(budget: Int, initial: Int, window: Int, log: Bool = true) -> RolloutConfiguration {
        var settings = BranchingConfiguration()
        settings.budget = budget
        settings.initialSamples = initial
        settings.entropyWindow = window
        settings.rule = .threshold
        settings.decisionLog = log
        return RolloutConfiguration(maxResponseTokens: 200, sampling: SamplingParameters(greedy: true), strategy: .branching(settings))
    }

    /// Two roots, budget 3, entropy up after the (only) tool result: both roots' rule says fork
    /// at the same decoding step; the first adds the third trajectory and the second finds the
    /// group full. The fork decisions record both, with turn 1, H_init, H and ΔH of the window.
    func testForksBlockedByTheBudgetAreCountedApartFromThoseTheRuleDeclines() {
        let policy = ScriptedPolicy(calls: 1, peaks: [12, 2])
        let batch = RolloutEngine(policy: policy, configuration: branching(budget: 3, initial: 2, window: 2)).run(episodes: [ToyEpisode(ledger: ToolLedger())], seed: 1)
        XCTAssertEqual(batch.records.count, 3)
        XCTAssertEqual(batch.statistics.forks, 1)
        XCTAssertEqual(batch.statistics.forksBlockedByBudget, 1)
        XCTAssertEqual(batch.statistics.forksDeclinedByRule, 0)
        let decisions = batch.statistics.forkDecisions
        XCTAssertEqual(decisions.map(\.outcome), [.forked, .blockedByBudget])
        XCTAssertEqual(decisions.map(\.trajectory), [0, 1])
        let low = ScriptedPolicy.normalizedEntropy(peak: 12), high = ScriptedPolicy.normalizedEntropy(peak: 2)
        for decision in decisions {
            XCTAssertEqual(decision.turn, 1)
            XCTAssertEqual(decision.group, 0)
            XCTAssertEqual(decision.initialEntropy, low, accuracy: 1e-5)
            XCTAssertEqual(decision.entropy, high, accuracy: 1e-5)
            XCTAssertEqual(decision.entropyDelta, high - low, accuracy: 1e-5)
            XCTAssertEqual(decision.ruleEntropyDelta, 2 * decision.entropyDelta, accuracy: 1e-12, "k = 2 under mean-log-vocab")
            XCTAssertEqual(decision.score, 0.5 + 0.2 * decision.ruleEntropyDelta, accuracy: 1e-12)
            XCTAssertNil(decision.draw)
        }
        XCTAssertEqual(try encodedFields(decisions[0])["outcome"] as? String, "forked")
        XCTAssertTrue(try encodedFields(decisions[1])["draw"] is NSNull)
        XCTAssertEqual(try encodedFields(decisions[1])["outcome"] as? String, "blocked_by_budget")
    }

    /// Entropy down after each result: the rule declines every opportunity (two per trajectory,
    /// turns 1 and 2), and the budget never comes into it.
    func testDeclinedForksAreCountedPerOpportunity() {
        let policy = ScriptedPolicy(calls: 2, peaks: [2, 12, 12])
        let batch = RolloutEngine(policy: policy, configuration: branching(budget: 4, initial: 2, window: 3)).run(episodes: [ToyEpisode(ledger: ToolLedger())], seed: 3)
        XCTAssertEqual(batch.statistics.forks, 0)
        XCTAssertEqual(batch.statistics.forksBlockedByBudget, 0)
        XCTAssertEqual(batch.statistics.forksDeclinedByRule, 8, "4 trajectories, 2 results each")
        XCTAssertEqual(batch.statistics.forkDecisions.count, 8)
        XCTAssertEqual(batch.statistics.forkDecisions.filter { $0.turn == 2 }.count, 4)
        XCTAssertTrue(batch.statistics.forkDecisions.allSatisfy { $0.outcome == .declinedByRule })
        XCTAssertEqual(batch.statistics.entropyDeltasElsewhere.count, 8)
        // Without the decision log nothing is kept, and the counts are the same.
        let unlogged = RolloutEngine(policy: ScriptedPolicy(calls: 2, peaks: [2, 12, 12]), configuration: branching(budget: 4, initial: 2, window: 3, log: false))
            .run(episodes: [ToyEpisode(ledger: ToolLedger())], seed: 3)
        XCTAssertTrue(unlogged.statistics.forkDecisions.isEmpty)
        XCTAssertEqual(unlogged.statistics.forksDeclinedByRule, 8)
    }
}
