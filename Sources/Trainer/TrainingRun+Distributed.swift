import ARPO
import Distributed
import Foundation
import RunRecords

/// One rank's rollout batch as it travels to the others.
struct RankRollout: Codable {
    var records: [TrajectoryRecord]
    var scores: [EpisodeScore]
    var statistics: RolloutStatistics
}

extension RolloutBatch {
    /// The step's whole batch from every rank's, in rank order: what one process would have
    /// rolled out (up to each group's random draws, which are its own). Group indices and
    /// parents are renumbered into the whole batch; counters add, lists concatenate, and the
    /// environment's seconds are the slowest rank's.
    static func merged(_ parts: [RankRollout]) -> RolloutBatch {
        var records: [TrajectoryRecord] = [], scores: [EpisodeScore] = []
        var statistics = RolloutStatistics()
        var groupOffset = 0
        for part in parts {
            let recordOffset = records.count
            for var record in part.records {
                record.groupIndex += groupOffset
                record.parent = record.parent.map { $0 + recordOffset }
                records.append(record)
            }
            scores += part.scores
            let s = part.statistics
            statistics.toolCallsExecuted += s.toolCallsExecuted
            statistics.toolCallsWritten += s.toolCallsWritten
            statistics.tokensGenerated += s.tokensGenerated
            statistics.tokensPrefilled += s.tokensPrefilled
            statistics.forks += s.forks
            statistics.forksDeclinedByRule += s.forksDeclinedByRule
            statistics.forksBlockedByBudget += s.forksBlockedByBudget
            statistics.forkedTrajectories += s.forkedTrajectories
            statistics.topUpTrajectories += s.topUpTrajectories
            statistics.policyCalls += s.policyCalls
            statistics.policyRows += s.policyRows
            statistics.entropyDeltasAtForks += s.entropyDeltasAtForks
            statistics.entropyDeltasElsewhere += s.entropyDeltasElsewhere
            statistics.entropiesAfterToolResults += s.entropiesAfterToolResults
            statistics.initialEntropies += s.initialEntropies
            for (index, entropies) in s.entropiesAfterToolResult.enumerated() {
                if index == statistics.entropiesAfterToolResult.count { statistics.entropiesAfterToolResult.append([]) }
                statistics.entropiesAfterToolResult[index] += entropies
            }
            for (index, forks) in s.forksAfterToolResult.enumerated() {
                if index == statistics.forksAfterToolResult.count { statistics.forksAfterToolResult.append(0) }
                statistics.forksAfterToolResult[index] += forks
            }
            statistics.forkDecisions += s.forkDecisions.map { decision in
                var decision = decision
                decision.group += groupOffset
                decision.trajectory += recordOffset
                return decision
            }
            statistics.globalSamples += s.globalSamples
            statistics.trajectories += s.trajectories
            statistics.environmentSeconds = max(statistics.environmentSeconds, s.environmentSeconds)
            groupOffset += (part.records.map(\.groupIndex).max() ?? -1) + 1
        }
        return RolloutBatch(records: records, scores: scores, statistics: statistics)
    }
}

extension TrainingRun {
    /// The slice of `count` items (prompts of a step, held-out episodes) that this rank plays:
    /// consecutive, the first `count % size` ranks one longer.
    func share(of count: Int) -> Range<Int> {
        let size = communicator.size, rank = communicator.rank
        let base = count / size, extra = count % size
        let start = rank * base + min(rank, extra)
        return start..<(start + base + (rank < extra ? 1 : 0))
    }

    /// Refuses what a run on several ranks cannot do: fewer prompts per step than ranks, the
    /// DPO terms, whose preference pairs are not yet spread over ranks, and the memory bank
    /// (`rl.memory_bank`), whose admissions, replay rows and contrastive pairs are not either.
    func checkDistributable() throws {
        let c = configuration, size = communicator.size
        guard size > 1 else { return }
        if c.rl.steps > 0 && c.rl.promptsPerStep < size {
            throw TrainingError("rl.prompts_per_step (\(c.rl.promptsPerStep)) is less than the \(size) MPI ranks: every rank rolls out whole prompt groups, so give each at least one")
        }
        if c.rl.dpoSteps > 0 || c.rl.loss.dpoCoefficient > 0 {
            throw TrainingError("rl.dpo_steps and rl.loss.dpo_coefficient run on one process only; this job has \(size) MPI ranks")
        }
        if c.rl.memoryBank.isEnabled {
            throw TrainingError("rl.memory_bank (coefficient \(c.rl.memoryBank.coefficient), contrastive_coefficient \(c.rl.memoryBank.contrastiveCoefficient)) runs on one process only; this job has \(size) MPI ranks, so set both to 0 or run a plain arpo-train")
        }
    }

    /// The agreed stop: the signal any rank received (the highest number when several did), so
    /// that every rank stops at the same step boundary.
    func agreedSignal(_ stop: StopSignal) -> Int32? {
        let own = Int(stop.signal ?? 0)
        let signal = communicator.size == 1 ? own : communicator.maximum(own)
        return signal == 0 ? nil : Int32(signal)
    }
}
