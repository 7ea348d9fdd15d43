/// Settings of the memory bank of best trajectories (AvaTaR; docs/algorithms.md §5.7): which
/// trajectories enter it, how many it keeps per task family, and how strongly its replayed rows
/// weigh in the RL update.
///
/// JSON keys are snake_case and every one has a default, so `{}` decodes to the defaults, with
/// the bank off:
///
/// | key | default | meaning |
/// | --- | --- | --- |
/// | `coefficient` | `0` | λ_bank, weight of the replayed rows' negative log-likelihood; 0 replays nothing |
/// | `capacity` | `4` | trajectories kept per task family |
/// | `rows_per_step` | `8` | bank trajectories replayed in each RL step's update |
/// | `require_correct` | `true` | only trajectories whose episode ended with a correct answer enter |
/// | `min_reward` | `null` | and only those with at least this reward; null: no bound |
/// | `contrastive_coefficient` | `0` | weight of the DPO term on (bank trajectory, fresh refused trajectory of the same family) pairs |
public struct MemoryBankConfiguration: Codable, Equatable, Sendable {
    /// λ_bank: the replay term's weight in each optimizer step's loss. With it and
    /// `contrastiveCoefficient` both 0 (the defaults) there is no bank at all: nothing is
    /// admitted, replayed or checkpointed, and the update is the one without the terms, bit for
    /// bit.
    public var coefficient = 0.0
    /// Trajectories kept per task family.
    public var capacity = 4
    /// Bank trajectories replayed per RL step (fewer while the bank holds fewer).
    public var rowsPerStep = 8
    /// Whether a trajectory must have ended with a correct answer to enter.
    public var requireCorrect = true
    /// The least reward with which a trajectory enters; nil: no bound.
    public var minimumReward: Double? = nil
    /// The weight of AvaTaR's contrast: the DPO term (β `rl.loss.dpo_beta`) on pairs of a bank
    /// trajectory (chosen) and a trajectory of the current batch of the same family that the
    /// bank refuses (rejected). 0 (the default) leaves it out.
    public var contrastiveCoefficient = 0.0

    public init() {}

    /// Whether the bank is kept at all: either of its terms is on.
    public var isEnabled: Bool { coefficient > 0 || contrastiveCoefficient > 0 }

    /// Whether a finished episode's trajectory may enter the bank.
    public func admits(_ score: EpisodeScore) -> Bool {
        (!requireCorrect || score.isCorrect) && score.reward >= (minimumReward ?? -Double.infinity) && score.reward.isFinite
    }

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case coefficient, capacity
        case rowsPerStep = "rows_per_step"
        case requireCorrect = "require_correct"
        case minimumReward = "min_reward"
        case contrastiveCoefficient = "contrastive_coefficient"
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = MemoryBankConfiguration()
        coefficient = try container.decodeIfPresent(Double.self, forKey: .coefficient) ?? defaults.coefficient
        capacity = try container.decodeIfPresent(Int.self, forKey: .capacity) ?? defaults.capacity
        rowsPerStep = try container.decodeIfPresent(Int.self, forKey: .rowsPerStep) ?? defaults.rowsPerStep
        requireCorrect = try container.decodeIfPresent(Bool.self, forKey: .requireCorrect) ?? defaults.requireCorrect
        minimumReward = try container.decodeIfPresent(Double.self, forKey: .minimumReward) ?? defaults.minimumReward
        contrastiveCoefficient = try container.decodeIfPresent(Double.self, forKey: .contrastiveCoefficient) ?? defaults.contrastiveCoefficient
    }

    /// Writes every key, `min_reward` as null when unset, so that the encoding of the defaults
    /// lists every known key.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(coefficient, forKey: .coefficient)
        try container.encode(capacity, forKey: .capacity)
        try container.encode(rowsPerStep, forKey: .rowsPerStep)
        try container.encode(requireCorrect, forKey: .requireCorrect)
        // `encode` of an optional writes null for nil, where `encodeIfPresent` would drop the key.
        try container.encode(minimumReward, forKey: .minimumReward)
        try container.encode(contrastiveCoefficient, forKey: .contrastiveCoefficient)
    }

    /// Checks every value's range; the error names the key path (`path` is the section's, such
    /// as `rl.memory_bank`) and what is allowed.
    public func validate(path: String) throws {
        try requireSetting(coefficient >= 0 && coefficient.isFinite, path, CodingKeys.coefficient, "a finite number at least 0 (0 replays nothing)", coefficient)
        try requireSetting(
            contrastiveCoefficient >= 0 && contrastiveCoefficient.isFinite, path, CodingKeys.contrastiveCoefficient, "a finite number at least 0 (0 trains no contrastive pair)",
            contrastiveCoefficient)
        try requireSetting(capacity >= 1 && capacity <= 100_000, path, CodingKeys.capacity, "in 1...100000", capacity)
        try requireSetting(rowsPerStep >= 1 && rowsPerStep <= 4096, path, CodingKeys.rowsPerStep, "in 1...4096", rowsPerStep)
        if let minimumReward {
            try requireSetting(minimumReward.isFinite, path, CodingKeys.minimumReward, "null or a finite number", minimumReward)
        }
    }
}
