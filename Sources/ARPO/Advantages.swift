/// Per-token advantages for a batch of trajectories, aligned with each record's
/// `responseTokens`.
public struct TokenAdvantages: Equatable, Sendable {
    /// A per record, per response token; exactly 0 wherever `trainMask` is false.
    public var advantages: [[Double]]
    /// Which tokens the loss trains on: the record's policy tokens (`lossMask`), and under
    /// `arpo-hard-once` only those the row owns, so that a shared prefix counts once.
    public var trainMask: [[Bool]]
    /// A_i per trajectory for the group modes; nil for GAE.
    public var trajectoryAdvantages: [Double]?
    /// GAE's returns A + V per token (before any whitening of A), 0 off the policy tokens; nil
    /// for the group modes.
    public var returns: [[Double]]?

    public init(advantages: [[Double]], trainMask: [[Bool]], trajectoryAdvantages: [Double]? = nil, returns: [[Double]]? = nil) {
        precondition(advantages.count == trainMask.count, "advantages and train mask must have one row per record")
        self.advantages = advantages
        self.trainMask = trainMask
        self.trajectoryAdvantages = trajectoryAdvantages
        self.returns = returns
    }

    /// Number of trained tokens over the batch.
    public var trainTokenCount: Int { trainMask.reduce(0) { $0 + $1.reduce(0) { $0 + ($1 ? 1 : 0) } } }
}

/// The advantage estimators: GRPO's group normalisation with ARPO's soft and hard attribution
/// over the branching tree (docs/algorithms.md §4.2), and PPO's GAE with whitening (§4.3).
///
/// Everything here is plain `Double` arithmetic on arrays: advantages are constants of the loss.
public enum AdvantageEstimator {
    // MARK: - Group normalisation (GRPO, Dr. GRPO)

    /// A_i = (r_i − mean(r)) / (std(r) + ε) over each group of records sharing a group index,
    /// or A_i = r_i − mean(r) without the division (Dr. GRPO).
    ///
    /// The standard deviation is the unbiased one (divisor n − 1), as `torch.std` computes it
    /// in the GRPO reference implementations. A group of one has no spread: its A is 0. A group
    /// whose rewards are all equal gets A = 0 too (0 / (0 + ε)).
    ///
    /// - Parameters:
    ///   - rewards: r_i per trajectory.
    ///   - groupIndices: the group of each trajectory, same count as `rewards`; groups may be
    ///     interleaved.
    ///   - dividingByStandardDeviation: false for Dr. GRPO.
    ///   - epsilon: ε ≥ 0.
    public static func groupNormalized(
        rewards: [Double], groupIndices: [Int], dividingByStandardDeviation: Bool = true, epsilon: Double = 1e-6
    ) -> [Double] {
        precondition(rewards.count == groupIndices.count, "one group index per reward: \(rewards.count) rewards, \(groupIndices.count) indices")
        precondition(epsilon >= 0, "epsilon must be non-negative, got \(epsilon)")
        precondition(rewards.allSatisfy(\.isFinite), "rewards must be finite")
        var members: [Int: [Int]] = [:]
        for (record, group) in groupIndices.enumerated() { members[group, default: []].append(record) }
        var advantages = [Double](repeating: 0, count: rewards.count)
        for records in members.values where records.count > 1 {
            let count = Double(records.count)
            let mean = records.reduce(0) { $0 + rewards[$1] } / count
            let variance = records.reduce(0) { $0 + (rewards[$1] - mean) * (rewards[$1] - mean) } / (count - 1)
            // A constant group has no spread: its advantages are 0 by definition (with ε = 0 the
            // rounding error of the mean would otherwise be divided by a rounding-sized std).
            let groupRewards = records.map { rewards[$0] }
            guard groupRewards.min() != groupRewards.max() else { continue }
            let scale = dividingByStandardDeviation ? 1 / (variance.squareRoot() + epsilon) : 1
            for record in records { advantages[record] = (rewards[record] - mean) * scale }
        }
        return advantages
    }

    // MARK: - Attribution over the branching tree (ARPO §3.2)

    /// Token advantages and train masks for one of the group modes.
    ///
    /// - ``AdvantageMode/grpo``, ``AdvantageMode/arpoSoft``, ``AdvantageMode/drGRPO``: row i
    ///   carries A_i on every policy token (its `lossMask`), a shared prefix included.
    /// - ``AdvantageMode/arpoHard``, ``AdvantageMode/arpoHardOnce``: position p of record j is
    ///   inherited from `parent(j)` when p < `forkPosition(j)`, recursively; the root-most record
    ///   holding it *owns* it, and the d records whose chain maps to (owner, p) share it. Under
    ///   `arpoHard` every one of those d rows trains the token with A = the mean of their A_k
    ///   (the ARPO paper's per-trajectory objective); under `arpoHardOnce` only the owner's row
    ///   trains it, with that mean, and the other rows get train mask false.
    ///
    /// Advantages are 0 wherever the train mask is false (observation tokens, and under
    /// `arpoHardOnce` shared tokens in non-owning rows), so those positions cannot leak into a
    /// loss.
    ///
    /// Preconditions (programmer errors in the rollout): a parent comes earlier in the array and
    /// belongs to the same group, `forkPosition` ≤ both the parent's and the record's response
    /// length, and the inherited tokens (ids and loss mask) equal the parent's.
    /// - ``AdvantageMode/tree``: see
    ///   ``treeAdvantages(for:trajectoryAdvantages:groupWeight:forkWeight:epsilon:)``; the
    ///   weights are used by this mode only.
    public static func tokenAdvantages(
        for records: [TrajectoryRecord], mode: AdvantageMode, epsilon: Double = 1e-6, groupWeight: Double = 1, forkWeight: Double = 1
    ) -> TokenAdvantages {
        validateTree(records)
        let trajectoryAdvantages = groupNormalized(
            rewards: records.map(\.reward), groupIndices: records.map(\.groupIndex),
            dividingByStandardDeviation: mode.dividesByStandardDeviation, epsilon: epsilon)
        switch mode {
        case .grpo, .drGRPO, .arpoSoft:
            let advantages = records.indices.map { record in
                records[record].lossMask.map { $0 ? trajectoryAdvantages[record] : 0 }
            }
            return TokenAdvantages(advantages: advantages, trainMask: records.map(\.lossMask), trajectoryAdvantages: trajectoryAdvantages)
        case .arpoHard:
            return hardAttribution(records, trajectoryAdvantages: trajectoryAdvantages, trainingSharedTokensOnce: false)
        case .arpoHardOnce:
            return hardAttribution(records, trajectoryAdvantages: trajectoryAdvantages, trainingSharedTokensOnce: true)
        case .tree:
            return treeAdvantages(for: records, trajectoryAdvantages: trajectoryAdvantages, groupWeight: groupWeight, forkWeight: forkWeight, epsilon: epsilon)
        }
    }

    // MARK: - Tree advantages (PORTool, Tree-GRPO; docs/algorithms.md §4.4)

    /// A fork point of a branched group: `record` continued past response position `position`
    /// and one or more copies were forked from it there (their `forkPosition`).
    struct ForkPoint: Hashable, Comparable {
        let record: Int
        let position: Int

        static func < (left: ForkPoint, right: ForkPoint) -> Bool {
            (left.record, left.position) < (right.record, right.position)
        }
    }

    /// Whether `record` holds `point.record`'s first `point.position` response tokens, so that its
    /// path runs through the fork point: it is that record, or every fork on its parent chain up
    /// to that record inherited at least those tokens.
    static func passesThrough(_ record: Int, _ point: ForkPoint, _ records: [TrajectoryRecord]) -> Bool {
        var current = record
        while current != point.record {
            guard let parent = records[current].parent, records[current].forkPosition >= point.position else { return false }
            current = parent
        }
        return true
    }

    /// Tree advantages: on policy token p of row i,
    ///
    ///     A_{i,p} = w_g · A_i + w_f · B_{i,F(i,p)}
    ///
    /// with A_i the group-normalised advantage, F(i, p) the deepest fork point on i's path at or
    /// before p, and B_{i,F} = (r_i − mean_{j ∈ T(F)} r_j) / (std_{j ∈ T(F)} r_j + ε), T(F) being
    /// every trajectory whose path runs through F (i included; the unbiased std, as the group's).
    /// Before the first fork point of its path, or under a fork point whose trajectories all have
    /// the same reward, B = 0. Every row trains all its policy tokens, as under `arpo-soft`.
    ///
    /// Why this credits the fork: the tokens of row i between two consecutive fork points F and
    /// F' of its path are held by exactly the trajectories through F', so under soft attribution
    /// their B terms add up to |T(F')| times the normalised gain mean(T(F')) − mean(T(F)): the
    /// value of the branch taken at F over the fork point's own (PORTool's fork-relative credit).
    public static func treeAdvantages(
        for records: [TrajectoryRecord], trajectoryAdvantages: [Double], groupWeight: Double, forkWeight: Double, epsilon: Double
    ) -> TokenAdvantages {
        precondition(trajectoryAdvantages.count == records.count, "one trajectory advantage per record")
        let points = Set(records.compactMap { record in record.parent.map { ForkPoint(record: $0, position: record.forkPosition) } }).sorted()
        // Per record, the fork-relative advantage under each fork point of its path.
        var forkAdvantages = [[(position: Int, advantage: Double)]](repeating: [], count: records.count)
        for point in points {
            let members = records.indices.filter { passesThrough($0, point, records) }
            let advantages = groupNormalized(
                rewards: members.map { records[$0].reward }, groupIndices: [Int](repeating: 0, count: members.count), epsilon: epsilon)
            for (member, advantage) in zip(members, advantages) { forkAdvantages[member].append((point.position, advantage)) }
        }
        let advantages = records.indices.map { index -> [Double] in
            let path = forkAdvantages[index].sorted { $0.position < $1.position }
            var next = 0, forkAdvantage = 0.0
            return records[index].lossMask.indices.map { position in
                while next < path.count && path[next].position <= position {
                    forkAdvantage = path[next].advantage
                    next += 1
                }
                return records[index].lossMask[position] ? groupWeight * trajectoryAdvantages[index] + forkWeight * forkAdvantage : 0
            }
        }
        return TokenAdvantages(advantages: advantages, trainMask: records.map(\.lossMask), trajectoryAdvantages: trajectoryAdvantages)
    }

    /// The (record, position) that owns position `position` of record `record`: follow the
    /// parent chain while the position lies in the inherited prefix.
    static func owner(of position: Int, in record: Int, _ records: [TrajectoryRecord]) -> (record: Int, position: Int) {
        var current = record
        while let parent = records[current].parent, position < records[current].forkPosition { current = parent }
        return (current, position)
    }

    private struct TokenKey: Hashable {
        let record: Int
        let position: Int
    }

    private static func hardAttribution(_ records: [TrajectoryRecord], trajectoryAdvantages: [Double], trainingSharedTokensOnce: Bool) -> TokenAdvantages {
        // Sum and count of the advantages of the records sharing each owned token.
        var shared: [TokenKey: (sum: Double, count: Int)] = [:]
        for record in records.indices {
            for position in records[record].responseTokens.indices where records[record].lossMask[position] {
                let (owner, ownerPosition) = owner(of: position, in: record, records)
                let key = TokenKey(record: owner, position: ownerPosition)
                let entry = shared[key] ?? (0, 0)
                shared[key] = (entry.sum + trajectoryAdvantages[record], entry.count + 1)
            }
        }
        var advantages: [[Double]] = []
        var trainMask: [[Bool]] = []
        for record in records.indices {
            let count = records[record].responseTokens.count
            var rowAdvantages = [Double](repeating: 0, count: count)
            var rowMask = [Bool](repeating: false, count: count)
            for position in 0..<count where records[record].lossMask[position] {
                // A row owns exactly its positions at or after its own fork position.
                let owns = records[record].parent == nil || position >= records[record].forkPosition
                if trainingSharedTokensOnce && !owns { continue }
                let (owner, ownerPosition) = owner(of: position, in: record, records)
                let entry = shared[TokenKey(record: owner, position: ownerPosition)]!
                rowAdvantages[position] = entry.sum / Double(entry.count)
                rowMask[position] = true
            }
            advantages.append(rowAdvantages)
            trainMask.append(rowMask)
        }
        return TokenAdvantages(advantages: advantages, trainMask: trainMask, trajectoryAdvantages: trajectoryAdvantages)
    }

    /// Checks the parent links that attribution relies on.
    static func validateTree(_ records: [TrajectoryRecord]) {
        for (index, record) in records.enumerated() {
            guard let parent = record.parent else {
                precondition(record.forkPosition == 0, "record \(index): a root has fork position 0, got \(record.forkPosition)")
                continue
            }
            precondition(parent >= 0 && parent < index, "record \(index): parent \(parent) must come earlier in the array")
            let parentRecord = records[parent]
            precondition(
                parentRecord.groupIndex == record.groupIndex,
                "record \(index): parent \(parent) is in group \(parentRecord.groupIndex), not \(record.groupIndex)")
            precondition(
                record.forkPosition >= 0 && record.forkPosition <= parentRecord.responseTokens.count && record.forkPosition <= record.responseTokens.count,
                "record \(index): fork position \(record.forkPosition) exceeds the parent's \(parentRecord.responseTokens.count) or its own \(record.responseTokens.count) response tokens")
            for position in 0..<record.forkPosition {
                precondition(
                    record.responseTokens[position] == parentRecord.responseTokens[position] && record.lossMask[position] == parentRecord.lossMask[position],
                    "record \(index): inherited token \(position) differs from parent \(parent)'s")
            }
        }
    }

    // MARK: - GAE (PPO)

    /// GAE(γ, λ) over the policy tokens of one trajectory, with the reward on its last policy
    /// token.
    ///
    /// Observation tokens are skipped, not treated as steps: for the k-th policy token at
    /// position t_k, the next value is V at the next policy token t_{k+1} (0 after the last):
    ///
    ///     δ_k = r_k + γ · V(t_{k+1}) − V(t_k),    A_k = δ_k + γλ · A_{k+1},    R_k = A_k + V(t_k)
    ///
    /// with r_k = `reward` for the last policy token and 0 before it. Advantages and returns are
    /// 0 at observation tokens (their values are never read).
    ///
    /// - Parameters:
    ///   - values: V_old per response token (the value head at rollout time).
    ///   - policyMask: true at policy tokens (`lossMask`).
    /// - Returns: A and R per response token.
    public static func generalizedAdvantageEstimates(
        reward: Double, values: [Double], policyMask: [Bool], gamma: Double, lambda: Double
    ) -> (advantages: [Double], returns: [Double]) {
        precondition(values.count == policyMask.count, "\(values.count) values for \(policyMask.count) response tokens")
        var advantages = [Double](repeating: 0, count: values.count)
        var returns = [Double](repeating: 0, count: values.count)
        let policyPositions = policyMask.indices.filter { policyMask[$0] }
        var nextValue = 0.0, nextAdvantage = 0.0
        for (step, position) in policyPositions.enumerated().reversed() {
            let reward = step == policyPositions.count - 1 ? reward : 0
            let delta = reward + gamma * nextValue - values[position]
            let advantage = delta + gamma * lambda * nextAdvantage
            advantages[position] = advantage
            returns[position] = advantage + values[position]
            nextValue = values[position]
            nextAdvantage = advantage
        }
        return (advantages, returns)
    }

    /// PPO's advantages for a batch: GAE per trajectory (see
    /// ``generalizedAdvantageEstimates(reward:values:policyMask:gamma:lambda:)``), then, if
    /// `whiten`, the advantages are whitened over every policy token of the batch. Returns are
    /// A + V from the un-whitened A (the critic's target does not depend on the whitening).
    ///
    /// - Parameter values: V_old per record, aligned with `responseTokens`.
    public static func generalizedAdvantageEstimates(
        for records: [TrajectoryRecord], values: [[Double]], gamma: Double, lambda: Double, whiten: Bool
    ) -> TokenAdvantages {
        precondition(values.count == records.count, "\(values.count) value rows for \(records.count) records")
        var advantages: [[Double]] = [], returns: [[Double]] = []
        for (record, rowValues) in zip(records, values) {
            let row = generalizedAdvantageEstimates(reward: record.reward, values: rowValues, policyMask: record.lossMask, gamma: gamma, lambda: lambda)
            advantages.append(row.advantages)
            returns.append(row.returns)
        }
        let mask = records.map(\.lossMask)
        return TokenAdvantages(advantages: whiten ? whitened(advantages, mask: mask) : advantages, trainMask: mask, returns: returns)
    }

    /// (x − mean) / √(var + ε) over the masked entries of all rows, 0 elsewhere.
    ///
    /// Mean and variance are over the masked entries only; the variance is unbiased (n − 1),
    /// as in TRL's `masked_whiten`, so the result has mean 0 and unbiased std 1 (up to ε).
    /// Fewer than two masked entries: the masked entries become x − mean (0 for a single one).
    public static func whitened(_ rows: [[Double]], mask: [[Bool]], epsilon: Double = 1e-8) -> [[Double]] {
        precondition(rows.count == mask.count && zip(rows, mask).allSatisfy { $0.count == $1.count }, "values and mask must have the same shape")
        var sum = 0.0, count = 0
        for (row, rowMask) in zip(rows, mask) {
            for (value, isMasked) in zip(row, rowMask) where isMasked {
                sum += value
                count += 1
            }
        }
        guard count > 0 else { return rows.map { $0.map { _ in 0 } } }
        let mean = sum / Double(count)
        var squares = 0.0
        for (row, rowMask) in zip(rows, mask) {
            for (value, isMasked) in zip(row, rowMask) where isMasked { squares += (value - mean) * (value - mean) }
        }
        let scale = count > 1 ? 1 / (squares / Double(count - 1) + epsilon).squareRoot() : 1
        return zip(rows, mask).map { row, rowMask in
            zip(row, rowMask).map { value, isMasked in isMasked ? (value - mean) * scale : 0 }
        }
    }
}

extension AdvantageConfiguration {
    /// Token advantages for the group-based algorithms (GRPO, ARPO) under this `mode`.
    public func groupAdvantages(for records: [TrajectoryRecord]) -> TokenAdvantages {
        AdvantageEstimator.tokenAdvantages(
            for: records, mode: mode, epsilon: standardDeviationEpsilon, groupWeight: groupWeight, forkWeight: forkWeight)
    }

    /// PPO's advantages and returns: GAE(`gamma`, `lambda`) on the old values, whitened if
    /// `whiten`.
    public func generalizedAdvantageEstimates(for records: [TrajectoryRecord], values: [[Double]]) -> TokenAdvantages {
        AdvantageEstimator.generalizedAdvantageEstimates(for: records, values: values, gamma: gamma, lambda: lambda, whiten: whiten)
    }
}
