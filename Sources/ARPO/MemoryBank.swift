import Foundation

/// One trajectory kept in the memory bank: its tokens, which of them the policy wrote, and where
/// it came from.
public struct MemoryBankEntry: Codable, Equatable, Sendable {
    /// The bank's key: the task family of the trajectory's prompt.
    public var family: String
    /// Prompt token ids (`<|user|>` … `<|assistant|>`).
    public var promptTokens: [Int]
    /// Response token ids, the policy's and the observations', as the rollout recorded them.
    public var responseTokens: [Int]
    /// True on the policy's own tokens (the replay term trains these), false on observations.
    public var lossMask: [Bool]
    public var reward: Double
    /// The RL step (counted from 1) whose rollout sampled it.
    public var step: Int
    /// Its index among that rollout batch's records.
    public var record: Int

    public init(family: String, promptTokens: [Int], responseTokens: [Int], lossMask: [Bool], reward: Double, step: Int, record: Int) {
        precondition(lossMask.count == responseTokens.count, "the loss mask must match the \(responseTokens.count) response tokens")
        self.family = family
        self.promptTokens = promptTokens
        self.responseTokens = responseTokens
        self.lossMask = lossMask
        self.reward = reward
        self.step = step
        self.record = record
    }

    enum CodingKeys: String, CodingKey {
        case family, reward, step, record
        case promptTokens = "prompt_tokens"
        case responseTokens = "response_tokens"
        case lossMask = "loss_mask"
    }

    /// Whether `self` ranks before `other` in its family: higher reward first; among equal
    /// rewards the newer step (its tokens are closer to the current policy), then the lower
    /// record index. Two entries never tie, since (step, record) names one trajectory.
    public func ranks(before other: MemoryBankEntry) -> Bool {
        if reward != other.reward { return reward > other.reward }
        if step != other.step { return step > other.step }
        return record < other.record
    }

    /// The entry as a training row for the replay term (``ReinforcementLearner/accumulateReplayGradients(_:coefficient:cost:)``):
    /// a root trajectory of group `group` with no recorded log-probs.
    public func trajectoryRecord(group: Int) -> TrajectoryRecord {
        TrajectoryRecord(
            promptTokens: promptTokens, responseTokens: responseTokens, oldLogProbabilities: responseTokens.map { _ in 0 },
            entropies: responseTokens.map { _ in 0 }, lossMask: lossMask, reward: reward, groupIndex: group)
    }
}

/// AvaTaR's memory bank (docs/algorithms.md §5.7): the best-scoring trajectories seen so far in
/// RL, at most `capacity` per task family, replayed as positive rows in later updates.
///
/// Deterministic: which trajectories enter and which are evicted depends only on the rollout
/// batches and their order, never on timing or threads; ties are broken by
/// ``MemoryBankEntry/ranks(before:)``. Its JSON encoding (``encoded()``) is what a checkpoint
/// holds as `memory_bank.json`; token ids are integers and rewards are written as the shortest
/// decimal that reads back to the same Double, so a resumed run restores it bit for bit.
public struct MemoryBank: Equatable, Sendable {
    public static let fileName = "memory_bank.json"
    static let formatName = "arpo-memory-bank"

    /// Entries kept per family.
    public let capacity: Int
    /// Per family, its entries best first (``MemoryBankEntry/ranks(before:)``).
    public private(set) var families: [String: [MemoryBankEntry]] = [:]

    public init(capacity: Int) {
        precondition(capacity >= 1, "a memory bank keeps at least one trajectory per family")
        self.capacity = capacity
    }

    /// Entries over every family.
    public var count: Int { families.values.reduce(0) { $0 + $1.count } }

    /// Offers `candidates` to the bank and returns how many of them it kept. Each family keeps
    /// its `capacity` best entries, old and new together; of entries with identical prompt and
    /// response tokens (a policy that has converged samples the same answer many times) only the
    /// best-ranked one is kept, so that the bank holds distinct trajectories.
    @discardableResult
    public mutating func admit(_ candidates: [MemoryBankEntry]) -> Int {
        var byFamily: [String: [MemoryBankEntry]] = [:]
        for candidate in candidates { byFamily[candidate.family, default: []].append(candidate) }
        var kept = 0
        for family in byFamily.keys.sorted() {
            let newcomers = byFamily[family]!
            let ranked = (families[family] ?? []) + newcomers
            var seen = Set<[Int]>()
            var entries: [MemoryBankEntry] = []
            for entry in ranked.sorted(by: { $0.ranks(before: $1) }) where entries.count < capacity {
                // The prompt's length is part of the key: the same tokens split differently are
                // different trajectories.
                if seen.insert([entry.promptTokens.count] + entry.promptTokens + entry.responseTokens).inserted { entries.append(entry) }
            }
            kept += entries.filter { entry in newcomers.contains(entry) }.count
            families[family] = entries
        }
        return kept
    }

    /// The trajectories of a rollout batch that may enter the bank: per prompt group, in group
    /// order, the record with the highest reward (ties to the lowest index) among those whose
    /// score `admits` accepts, keyed by the family of the group's prompt.
    ///
    /// One per group: a group's trajectories answer one question, and often alike (ARPO's forks
    /// share their prefixes), so that several of them would fill a family's places with copies
    /// of one solution where the bank should hold solutions to different questions.
    ///
    /// - Parameters:
    ///   - families: per prompt group (`TrajectoryRecord.groupIndex`), its task family.
    ///   - step: the RL step (from 1) that sampled the batch.
    public static func candidates(
        in batch: RolloutBatch, families: [String], step: Int, admits: (EpisodeScore) -> Bool
    ) -> [MemoryBankEntry] {
        precondition(batch.scores.count == batch.records.count, "need one score per record")
        var best: [Int: Int] = [:]
        for (index, record) in batch.records.enumerated() where admits(batch.scores[index]) {
            if let current = best[record.groupIndex], batch.records[current].reward >= record.reward { continue }
            best[record.groupIndex] = index
        }
        return best.keys.sorted().map { group in
            let index = best[group]!, record = batch.records[index]
            precondition(families.indices.contains(group), "no family for group \(group)")
            return MemoryBankEntry(
                family: families[record.groupIndex], promptTokens: record.promptTokens, responseTokens: record.responseTokens,
                lossMask: record.lossMask, reward: record.reward, step: step, record: index)
        }
    }

    /// AvaTaR's contrastive pairs of a rollout batch (docs/algorithms.md §5.7): for each prompt
    /// group, in group order, that holds a trajectory `admits` refuses and whose family has an
    /// entry in the bank, one pair: the family's best entry as the chosen side, and the group's
    /// lowest-reward refused trajectory (ties to the lowest index) as the rejected one.
    ///
    /// - Parameter families: per prompt group (`TrajectoryRecord.groupIndex`), its task family.
    /// - Returns: per pair, the bank's entry and the index of the rejected record in the batch.
    public func contrastivePairs(
        in batch: RolloutBatch, families: [String], admits: (EpisodeScore) -> Bool
    ) -> [(chosen: MemoryBankEntry, rejected: Int)] {
        precondition(batch.scores.count == batch.records.count, "need one score per record")
        var lowest: [Int: Int] = [:]
        for (index, record) in batch.records.enumerated() where !admits(batch.scores[index]) {
            if let current = lowest[record.groupIndex], batch.records[current].reward <= record.reward { continue }
            lowest[record.groupIndex] = index
        }
        return lowest.keys.sorted().compactMap { group in
            precondition(families.indices.contains(group), "no family for group \(group)")
            guard let best = self.families[families[group]]?.first else { return nil }
            return (best, lowest[group]!)
        }
    }

    /// Every entry in replay order: the best of each family (families in name order), then the
    /// second best of each, and so on, so that a few rows cover every family.
    public var replayOrder: [MemoryBankEntry] {
        let names = families.keys.sorted()
        return (0..<capacity).flatMap { rank in names.compactMap { families[$0]!.indices.contains(rank) ? families[$0]![rank] : nil } }
    }

    /// The `count` entries replayed at RL step `step` (from 0): a window of ``replayOrder`` that
    /// starts at `step · count` modulo its length and wraps around, so that over successive
    /// steps every entry is replayed; all of them, once each, when the bank holds no more than
    /// `count`.
    public func replay(step: Int, count: Int) -> [MemoryBankEntry] {
        precondition(step >= 0 && count >= 0, "step and count count from 0")
        let order = replayOrder
        guard !order.isEmpty else { return [] }
        let start = (step % order.count) * (count % order.count) % order.count
        return (0..<Swift.min(count, order.count)).map { order[(start + $0) % order.count] }
    }

    // MARK: Persistence

    struct File: Codable {
        var format: String
        var capacity: Int
        var families: [String: [MemoryBankEntry]]
    }

    /// The bank as `memory_bank.json`: its format name, capacity and entries per family, best
    /// first, with sorted keys (the same bank always gives the same bytes).
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(File(format: MemoryBank.formatName, capacity: capacity, families: families))
    }

    /// Reads a bank that ``encoded()`` wrote, checking what it holds (the format, every entry's
    /// family, its mask's length, a finite reward and the order) and keeping at most `capacity`
    /// entries per family (the configured capacity may be lower than the one it was saved with).
    public static func decoded(_ data: Data, capacity: Int) throws -> MemoryBank {
        let file: File
        do { file = try JSONDecoder().decode(File.self, from: data) } catch {
            throw MemoryBankError("not a memory bank: \(error)")
        }
        guard file.format == formatName else { throw MemoryBankError("has format \"\(file.format)\", expected \"\(formatName)\"") }
        var bank = MemoryBank(capacity: capacity)
        for (family, entries) in file.families {
            for entry in entries {
                guard entry.family == family, entry.lossMask.count == entry.responseTokens.count, entry.reward.isFinite, entry.step >= 1, entry.record >= 0,
                    (entry.promptTokens + entry.responseTokens).allSatisfy({ $0 >= 0 })
                else { throw MemoryBankError("holds an invalid entry under \(family) (step \(entry.step), record \(entry.record))") }
            }
            guard zip(entries, entries.dropFirst()).allSatisfy({ $0.ranks(before: $1) }) else {
                throw MemoryBankError("lists the entries of \(family) out of order")
            }
            bank.families[family] = Array(entries.prefix(capacity))
        }
        return bank
    }
}

/// A `memory_bank.json` that cannot be read back.
public struct MemoryBankError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
