@testable import ARPO
import Foundation
import Policy
import Tensor
import ToolEnv
import XCTest

/// The memory bank of best trajectories (AvaTaR; docs/algorithms.md §5.7): which trajectories it
/// keeps, in what order, what it replays, its file, and the replay term against the cold start's
/// loss on the same tokens.
final class MemoryBankTests: XCTestCase {
    func entry(_ family: String, reward: Double, step: Int, record: Int, tokens: [Int]? = nil) -> MemoryBankEntry {
        let response = tokens ?? [20 + step, 30 + record, 40]
        return MemoryBankEntry(
            family: family, promptTokens: [5, 6], responseTokens: response, lossMask: response.map { _ in true }, reward: reward, step: step, record: record)
    }

    func names(_ entries: [MemoryBankEntry]?) -> [String] { (entries ?? []).map { "\($0.reward)@\($0.step).\($0.record)" } }

    /// Per family the `capacity` best: higher reward first, equal rewards to the newer step, then
    /// the lower record index; a worse newcomer is not admitted, a better one evicts the worst.
    func testEachFamilyKeepsItsBestWithTiesBrokenByStepThenRecord() {
        var bank = MemoryBank(capacity: 3)
        XCTAssertEqual(bank.admit([
            entry("calc", reward: 1, step: 1, record: 4), entry("calc", reward: 1.1, step: 1, record: 2),
            entry("calc", reward: 1, step: 1, record: 0), entry("calc", reward: 0.5, step: 1, record: 1),
            entry("search", reward: 1, step: 1, record: 3),
        ]), 4)
        XCTAssertEqual(names(bank.families["calc"]), ["1.1@1.2", "1.0@1.0", "1.0@1.4"])
        XCTAssertEqual(names(bank.families["search"]), ["1.0@1.3"])
        XCTAssertEqual(bank.count, 4)

        // Step 2: an equal reward ranks above step 1's (newer), a lower one is not admitted.
        XCTAssertEqual(bank.admit([entry("calc", reward: 1, step: 2, record: 7), entry("calc", reward: 0.9, step: 2, record: 1)]), 1)
        XCTAssertEqual(names(bank.families["calc"]), ["1.1@1.2", "1.0@2.7", "1.0@1.0"])
        // Offered in another order, the same candidates give the same bank.
        var other = MemoryBank(capacity: 3)
        other.admit([entry("search", reward: 1, step: 1, record: 3), entry("calc", reward: 0.5, step: 1, record: 1), entry("calc", reward: 1, step: 1, record: 0),
                     entry("calc", reward: 1.1, step: 1, record: 2), entry("calc", reward: 1, step: 1, record: 4)])
        other.admit([entry("calc", reward: 0.9, step: 2, record: 1), entry("calc", reward: 1, step: 2, record: 7)])
        XCTAssertEqual(other, bank)
    }

    /// Identical token sequences are kept once, as the best-ranked of them (here the newer).
    func testIdenticalTrajectoriesAreKeptOnce() {
        var bank = MemoryBank(capacity: 3)
        bank.admit([entry("calc", reward: 1, step: 1, record: 0, tokens: [9, 9]), entry("calc", reward: 1, step: 1, record: 1, tokens: [9, 9])])
        XCTAssertEqual(names(bank.families["calc"]), ["1.0@1.0"])
        XCTAssertEqual(bank.admit([entry("calc", reward: 1, step: 2, record: 5, tokens: [9, 9]), entry("calc", reward: 1, step: 2, record: 6, tokens: [9, 8])]), 2)
        XCTAssertEqual(names(bank.families["calc"]), ["1.0@2.5", "1.0@2.6"])
    }

    /// Candidates: the records the admission rule accepts (correct, and at least `min_reward`),
    /// keyed by their group's family, with their tokens and mask.
    /// Candidates: per prompt group, the admitted record (correct, and at least `min_reward`)
    /// with the highest reward, ties to the lowest index, keyed by the group's family, with its
    /// tokens and mask.
    func testCandidatesAreEachGroupsBestAdmittedRecordKeyedByItsFamily() {
        func record(_ group: Int, _ reward: Double) -> TrajectoryRecord {
            TrajectoryRecord(promptTokens: [1, 2 + group], responseTokens: [7, 8, 9], oldLogProbabilities: [-1, 0, -1], entropies: [0, 0, 0],
                             lossMask: [true, false, true], reward: reward, groupIndex: group)
        }
        let rewards: [(group: Int, reward: Double)] = [(0, 1), (0, 0), (1, 1.1), (1, -1), (0, 1), (2, 1), (2, 1.1)]
        let batch = RolloutBatch(
            records: rewards.map { record($0.group, $0.reward) },
            scores: rewards.map { EpisodeScore(reward: $0.reward, isCorrect: $0.reward >= 1) }, statistics: RolloutStatistics())
        let families = ["calc", "search", "calc"]
        var settings = MemoryBankConfiguration()
        let correct = MemoryBank.candidates(in: batch, families: families, step: 3, admits: settings.admits)
        XCTAssertEqual(correct.map(\.family), ["calc", "search", "calc"])
        XCTAssertEqual(correct.map(\.record), [0, 2, 6], "group 0's two of reward 1: the lower index; group 2's higher reward")
        XCTAssertEqual(correct[1], MemoryBankEntry(family: "search", promptTokens: [1, 3], responseTokens: [7, 8, 9], lossMask: [true, false, true], reward: 1.1, step: 3, record: 2))
        settings.minimumReward = 1.05
        XCTAssertEqual(MemoryBank.candidates(in: batch, families: families, step: 3, admits: settings.admits).map(\.record), [2, 6])
        settings.requireCorrect = false
        settings.minimumReward = -0.5
        XCTAssertEqual(MemoryBank.candidates(in: batch, families: ["calc", "search", "calc"], step: 3, admits: settings.admits).map(\.record), [0, 2, 6])
        // Without a correct one, a group's best refused trajectory, when the rule lets it in.
        settings.minimumReward = -1
        let failed = RolloutBatch(
            records: [record(0, 0), record(1, -1)], scores: [EpisodeScore(reward: 0, isCorrect: false), EpisodeScore(reward: -1, isCorrect: false)],
            statistics: RolloutStatistics())
        XCTAssertEqual(MemoryBank.candidates(in: failed, families: families, step: 3, admits: settings.admits).map(\.reward), [0, -1])
    }

    // MARK: Replay

    /// Replay order interleaves the families rank by rank; a step's window of it starts at
    /// step · count and wraps, so successive steps replay every entry.
    func testReplayWindowRotatesOverEveryEntry() {
        var bank = MemoryBank(capacity: 3)
        XCTAssertEqual(bank.replay(step: 0, count: 4), [])
        bank.admit([
            entry("b", reward: 2, step: 1, record: 0), entry("b", reward: 1, step: 1, record: 1), entry("b", reward: 0, step: 1, record: 2),
            entry("a", reward: 2, step: 1, record: 3), entry("a", reward: 1, step: 1, record: 4),
        ])
        XCTAssertEqual(bank.replayOrder.map(\.record), [3, 0, 4, 1, 2])
        XCTAssertEqual(bank.replay(step: 0, count: 2).map(\.record), [3, 0])
        XCTAssertEqual(bank.replay(step: 1, count: 2).map(\.record), [4, 1])
        XCTAssertEqual(bank.replay(step: 2, count: 2).map(\.record), [2, 3])
        XCTAssertEqual(bank.replay(step: 7, count: 8).map(\.record).sorted(), [0, 1, 2, 3, 4], "all of them, once each")
    }

    /// `memory_bank.json` reads back to the same bank, and the same bank always gives the same
    /// bytes; rewards that have no short decimal survive exactly.
    func testTheFileRoundTripsBitForBit() throws {
        var bank = MemoryBank(capacity: 2)
        bank.admit([entry("calc", reward: 0.1 + 0.2, step: 1, record: 0), entry("calc", reward: 1.0 / 3.0, step: 2, record: 1),
                    entry("unanswerable", reward: 1.1, step: 2, record: 5, tokens: [271, 0, 255])])
        let data = try bank.encoded()
        let read = try MemoryBank.decoded(data, capacity: 2)
        XCTAssertEqual(read, bank)
        XCTAssertEqual(read.families["calc"]!.map(\.reward.bitPattern), [(1.0 / 3.0).bitPattern, (0.1 + 0.2).bitPattern])
        XCTAssertEqual(try read.encoded(), data)
        XCTAssertEqual(try MemoryBank.decoded(data, capacity: 1).families["calc"]!.map(\.step), [2], "a lower capacity keeps the best")
    }

    func testAFileThatIsNotABankIsRefused() throws {
        var bank = MemoryBank(capacity: 2)
        bank.admit([entry("calc", reward: 1, step: 1, record: 0), entry("calc", reward: 0.5, step: 1, record: 1)])
        let text = String(decoding: try bank.encoded(), as: UTF8.self)
        func refusal(_ text: String) -> String {
            do { _ = try MemoryBank.decoded(Data(text.utf8), capacity: 2); return "" } catch { return "\(error)" }
        }
        XCTAssertTrue(refusal("{}").hasPrefix("not a memory bank"), refusal("{}"))
        XCTAssertTrue(refusal(text.replacingOccurrences(of: "arpo-memory-bank", with: "other")).contains("has format \"other\""))
        let swapped = text.replacingOccurrences(of: "\"reward\":1,", with: "\"reward\":0.25,")
        XCTAssertTrue(refusal(swapped).contains("lists the entries of calc out of order"), refusal(swapped))
        let shortMask = text.replacingOccurrences(of: "\"loss_mask\":[true,true,true]", with: "\"loss_mask\":[true]")
        XCTAssertTrue(refusal(shortMask).contains("holds an invalid entry under calc"), refusal(shortMask))
    }

    // MARK: The replay term

    /// L_replay = −(1/N) Σ m_t log π_t, and its gradient −m_t / N, by hand on a (2, 3) tensor.
    func testReplayLossAndGradientByHand() {
        let logProbabilities = Tensor(shape: [2, 3], values: [-0.5, -1.25, -2, -0.25, -3, -1], dtype: .float64)
        logProbabilities.requiresGradient = true
        let mask = Tensor(shape: [2, 3], values: [1, 0, 1, 1, 1, 0], dtype: .float64)
        let loss = ReplayLoss.negativeLogLikelihood(logProbabilities: logProbabilities, policyMask: mask, normalizer: 8)
        XCTAssertEqual(loss.item, (0.5 + 2 + 0.25 + 3) / 8, accuracy: 1e-15)
        loss.backward()
        XCTAssertEqual(logProbabilities.gradient!.doubles, [-0.125, 0, -0.125, -0.125, -0.125, 0])
    }

    func learner(coefficient: Double, microBatchSize: Int = 4, miniBatches: Int = 1) -> ReinforcementLearner {
        var generator = RandomGenerator(seed: 8)
        let model = LlamaModel(configuration: LlamaConfiguration(hiddenSize: 32, intermediateSize: 48, layerCount: 2, headCount: 4, maxPositions: 32), generator: &generator)
        return ReinforcementLearner(
            model: model, reference: model.copy(), optimizer: AdamW(named: model.namedParameters, hyperparameters: .init(weightDecay: 0)),
            configuration: UpdateConfiguration(miniBatches: miniBatches, microBatchSize: microBatchSize, replayCoefficient: coefficient), algorithm: .groupRelative)
    }

    /// Bank trajectories, one with an observation (mask false) and two of the same prompt.
    let replayEntries = [
        MemoryBankEntry(family: "calc", promptTokens: [259, 10, 11, 260], responseTokens: [20, 21, 22, 23, 24], lossMask: [true, true, false, false, true], reward: 1, step: 1, record: 0),
        MemoryBankEntry(family: "calc", promptTokens: [259, 10, 11, 260], responseTokens: [20, 21, 30, 31], lossMask: [true, true, true, true], reward: 1, step: 1, record: 1),
        MemoryBankEntry(family: "search", promptTokens: [259, 12, 260], responseTokens: [40, 41, 42], lossMask: [true, true, true], reward: 1.1, step: 2, record: 3),
    ]

    /// The replay term at coefficient 1 is the cold start's loss on the same tokens (a token
    /// mean of −log π over the policy's tokens), value and gradient, however the rows are packed.
    func testTheReplayTermIsTheColdStartLossOnTheSameTokens() {
        let examples = replayEntries.map {
            SupervisedTrainer.Example(tokens: $0.promptTokens + $0.responseTokens, lossMask: $0.promptTokens.map { _ in false } + $0.lossMask)
        }
        let reference = learner(coefficient: 1)
        var settings = SupervisedConfiguration()
        settings.packing = false
        let supervised = SupervisedTrainer(
            model: reference.model, optimizer: reference.optimizer, configuration: settings, environment: EnvironmentConfig(), seed: 0, userDemonstrations: [])
        reference.optimizer.zeroGradients()
        let expected = supervised.lossAndGradients(of: examples).loss
        let expectedGradients = reference.model.parameters.map { $0.gradient!.doubles }

        for microBatchSize in [1, 4] {
            let learner = learner(coefficient: 1, microBatchSize: microBatchSize)
            learner.optimizer.zeroGradients()
            var cost = UpdateCost()
            let records = replayEntries.enumerated().map { $0.element.trajectoryRecord(group: $0.element.family == "calc" ? 0 : 1) }
            let loss = learner.accumulateReplayGradients(records, coefficient: 1, cost: &cost)!
            XCTAssertEqual(loss, expected, accuracy: 1e-5, "micro-batch \(microBatchSize)")
            XCTAssertGreaterThan(loss, 1)
            for (got, want) in zip(learner.model.parameters.map { $0.gradient!.doubles }, expectedGradients) {
                for (x, y) in zip(got, want) { XCTAssertEqual(x, y, accuracy: 1e-5) }
            }
            if microBatchSize == 4 { XCTAssertGreaterThan(cost.sharedTokens, 0, "the two rows of one prompt share it") }
        }
    }

    func batch() -> RolloutBatch {
        func record(_ tokens: [Int], reward: Double, group: Int) -> TrajectoryRecord {
            TrajectoryRecord(promptTokens: [259, 13 + group, 260], responseTokens: tokens, oldLogProbabilities: tokens.map { _ in -2 }, entropies: tokens.map { _ in 0 },
                             lossMask: tokens.map { _ in true }, reward: reward, groupIndex: group)
        }
        let records = [record([50, 51, 52], reward: 1, group: 0), record([50, 53], reward: 0, group: 0), record([54, 55], reward: 1, group: 1), record([56], reward: 0, group: 1)]
        return RolloutBatch(records: records, scores: records.map { EpisodeScore(reward: $0.reward, isCorrect: $0.reward == 1) }, statistics: RolloutStatistics())
    }

    /// In the update: at coefficient 0 replay rows change nothing, bit for bit; on, the step's
    /// loss gains λ × the replay term, and the metrics report the rows and the term.
    func testTheUpdateAddsTheReplayTermOnlyWhenItsCoefficientIsPositive() {
        let records = replayEntries.enumerated().map { $0.element.trajectoryRecord(group: $0.offset) }
        let plain = learner(coefficient: 0)
        let withoutRows = plain.update(batch(), learningRate: 1e-3, seed: 1)
        let off = learner(coefficient: 0)
        let offMetrics = off.update(batch(), learningRate: 1e-3, seed: 1, replay: records)
        XCTAssertEqual(plain.model.parameters.map(\.doubles), off.model.parameters.map(\.doubles))
        XCTAssertEqual(offMetrics.loss, withoutRows.loss)
        XCTAssertNil(offMetrics.replayedRows)
        XCTAssertNil(offMetrics.replayLoss)

        let on = learner(coefficient: 0.5)
        let onMetrics = on.update(batch(), learningRate: 1e-3, seed: 1, replay: records)
        XCTAssertEqual(onMetrics.replayedRows, 3)
        let replayLoss = try! XCTUnwrap(onMetrics.replayLoss)
        XCTAssertEqual(onMetrics.loss.loss, withoutRows.loss.loss + 0.5 * replayLoss, accuracy: 1e-6)
        XCTAssertEqual(onMetrics.loss.policyLoss, withoutRows.loss.policyLoss, accuracy: 1e-6)
        XCTAssertNotEqual(on.model.parameters.map(\.doubles), plain.model.parameters.map(\.doubles))

        // The replay term raises the likelihood of the bank's tokens.
        var cost = UpdateCost()
        on.optimizer.zeroGradients()
        plain.optimizer.zeroGradients()
        let after = on.accumulateReplayGradients(records, coefficient: 1, cost: &cost)!
        let without = plain.accumulateReplayGradients(records, coefficient: 1, cost: &cost)!
        XCTAssertLessThan(after, without)
    }

    // MARK: The contrastive term

    /// One pair per group that holds a refused trajectory and whose family is in the bank: the
    /// family's best entry against the group's lowest-reward refused trajectory (ties to the
    /// lowest index).
    func testContrastivePairsTakeEachGroupsWorstRefusedTrajectoryAgainstItsFamilysBest() {
        var bank = MemoryBank(capacity: 2)
        bank.admit([entry("calc", reward: 1, step: 1, record: 0), entry("calc", reward: 1.1, step: 1, record: 1), entry("search", reward: 1, step: 1, record: 2)])
        func record(_ group: Int, _ reward: Double) -> TrajectoryRecord {
            TrajectoryRecord(promptTokens: [1, 2], responseTokens: [3], oldLogProbabilities: [0], entropies: [0], lossMask: [true], reward: reward, groupIndex: group)
        }
        let rewards: [(Int, Double)] = [(0, 1), (0, 0), (0, -1), (1, 1), (2, 0), (3, 0), (3, 0), (3, 1)]
        let batch = RolloutBatch(
            records: rewards.map { record($0.0, $0.1) }, scores: rewards.map { EpisodeScore(reward: $0.1, isCorrect: $0.1 == 1) }, statistics: RolloutStatistics())
        let pairs = bank.contrastivePairs(in: batch, families: ["calc", "search", "compose", "calc"], admits: MemoryBankConfiguration().admits)
        XCTAssertEqual(pairs.map(\.rejected), [2, 5], "group 1 has no refused trajectory, compose is not in the bank")
        XCTAssertEqual(pairs.map(\.chosen.record), [1, 1], "calc's best")
    }

    /// A batch whose groups' rewards are all equal: every advantage is 0, so only the memory
    /// bank's terms move the policy.
    func flatBatch() -> RolloutBatch {
        func record(_ tokens: [Int], group: Int) -> TrajectoryRecord {
            TrajectoryRecord(promptTokens: [259, 13 + group, 260], responseTokens: tokens, oldLogProbabilities: tokens.map { _ in -2 }, entropies: tokens.map { _ in 0 },
                             lossMask: tokens.map { _ in true }, reward: 0, groupIndex: group)
        }
        let records = [record([50, 51, 52], group: 0), record([50, 53], group: 0), record([54, 55, 56, 57], group: 1)]
        return RolloutBatch(records: records, scores: records.map { _ in EpisodeScore(reward: 0, isCorrect: false) }, statistics: RolloutStatistics())
    }

    /// The contrastive term is the DPO loss on (bank trajectory, fresh trajectory): ln 2 per pair
    /// while the policy is the reference; a step on it alone lowers it, the policy now preferring
    /// the bank's responses. At coefficient 0 the pairs change nothing, bit for bit.
    func testTheContrastiveTermIsTheDPOLossOnTheBankAgainstAFreshTrajectory() {
        let batch = flatBatch()
        let contrast = [
            ContrastivePair(chosen: replayEntries[0].trajectoryRecord(group: 0), rejected: batch.records[1]),
            ContrastivePair(chosen: replayEntries[2].trajectoryRecord(group: 1), rejected: batch.records[2]),
        ]
        func learner(_ coefficient: Double) -> ReinforcementLearner {
            let base = self.learner(coefficient: 0)
            var configuration = base.configuration
            configuration.contrastiveCoefficient = coefficient
            configuration.loss.dpoBeta = 0.5
            return ReinforcementLearner(model: base.model, reference: base.reference, optimizer: base.optimizer, configuration: configuration, algorithm: .groupRelative)
        }
        let plain = learner(0)
        _ = plain.update(batch, learningRate: 1e-2, seed: 1)
        let off = learner(0)
        let offMetrics = off.update(batch, learningRate: 1e-2, seed: 1, contrast: contrast)
        XCTAssertEqual(off.model.parameters.map(\.doubles), plain.model.parameters.map(\.doubles))
        XCTAssertNil(offMetrics.contrastivePairs)

        let on = learner(1)
        let first = on.update(batch, learningRate: 1e-2, seed: 1, contrast: contrast)
        XCTAssertEqual(first.contrastivePairs, 2)
        XCTAssertEqual(first.contrastiveLoss!, log(2), accuracy: 1e-6, "z = 0 while the policy is the reference")
        XCTAssertEqual(first.loss.loss, first.loss.policyLoss + log(2), accuracy: 1e-6)
        let second = on.update(batch, learningRate: 1e-2, seed: 2, contrast: contrast)
        XCTAssertLessThan(second.contrastiveLoss!, log(2) - 1e-3)
    }

    /// With several mini-batches, row j trains in the (j mod m)-th of each epoch's m: each row
    /// once per epoch.
    func testReplayRowsAreSpreadOverTheMiniBatches() {
        let records = replayEntries.enumerated().map { $0.element.trajectoryRecord(group: $0.offset) }
        let split = learner(coefficient: 1, miniBatches: 2)
        let metrics = split.update(batch(), learningRate: 1e-3, seed: 1, replay: records)
        XCTAssertEqual(metrics.appliedUpdates, 2)
        XCTAssertEqual(metrics.replayedRows, 3)
        XCTAssertNotNil(metrics.replayLoss)
    }
}
