/// How a group's trajectory rewards become per-token advantages (docs/algorithms.md §4).
///
/// All six modes start from the group-normalised A_i = (r_i − mean(r)) / (std(r) + ε) (or
/// r_i − mean(r) for Dr. GRPO) over the trajectories that share a `groupIndex`. They differ in
/// how the scalar reaches the tokens:
///
/// - ``grpo`` and ``arpoSoft`` compute the same numbers for every group, branched or not: each
///   trajectory is its own training row with A_i on each of its policy tokens, a shared prefix
///   included. ``arpoSoft`` exists to name ARPO's default attribution (docs/algorithms.md §4.2, "soft"); on
///   a forest-free group (no forks) it is plain GRPO by definition, and on a branched group the
///   shared prefix, trained once per row with the same ratio, effectively gets the mean
///   advantage of its descendants.
/// - ``arpoHard`` (the ARPO paper's hard attribution) keeps every row's copy of a token shared
///   by d trajectories, each with the mean of their d advantages; a token of a trajectory's own
///   segment gets its A_i. With one update per batch (ρ = 1) this is exactly ``arpoSoft``'s
///   gradient; the two differ only once ratios move (several mini-batches or epochs), through
///   the clip.
/// - ``arpoHardOnce`` trains a shared token once, in the row of the root-most trajectory holding
///   it, with the same mean; the other rows do not train it. A prefix shared by d trajectories
///   then weighs 1/d of what it weighs under the other modes: a different estimator, kept for
///   comparison.
/// - ``drGRPO`` is ``grpo`` without the division by the standard deviation (Dr. GRPO).
/// - ``tree`` (PORTool, Tree-GRPO) adds to w_g·A_i a fork-relative term: on the tokens after a
///   fork point, w_f times the trajectory's reward normalised against every trajectory that
///   passes through that fork point, so the choice made at the fork gets its own credit.
public enum AdvantageMode: String, Codable, CaseIterable, Sendable {
    /// Group-normalised A_i on every policy token of each row (GRPO).
    case grpo
    /// A_i = r_i − mean(r), no division by std (Dr. GRPO), on every policy token of each row.
    case drGRPO = "dr-grpo"
    /// ARPO's soft attribution (the paper's default): numerically identical to ``grpo``.
    case arpoSoft = "arpo-soft"
    /// ARPO's hard attribution as the paper writes it: every row's copy of a shared token gets
    /// the mean advantage of the trajectories sharing it.
    case arpoHard = "arpo-hard"
    /// Hard attribution with each shared token trained once, in one row, with that mean.
    case arpoHardOnce = "arpo-hard-once"
    /// Group advantage plus a fork-relative advantage on the tokens after each fork point
    /// (docs/algorithms.md §4.4), weighted by `group_weight` and `fork_weight`.
    case tree

    /// Whether A_i is divided by std(r) + ε (every mode but ``drGRPO``).
    public var dividesByStandardDeviation: Bool { self != .drGRPO }
}

/// Advantage settings: the group modes (GRPO, Dr. GRPO, ARPO soft and hard) and PPO's GAE.
///
/// JSON keys are snake_case and every one has a default, so `{}` decodes to the defaults:
///
/// | key | default | meaning |
/// | --- | --- | --- |
/// | `mode` | `"arpo-soft"` | `"grpo"`, `"dr-grpo"`, `"arpo-soft"`, `"arpo-hard"`, `"arpo-hard-once"` (``AdvantageMode``) |
/// | `std_epsilon` | `1e-6` | ε in (r − mean) / (std + ε) |
/// | `gamma` | `1.0` | γ of GAE (PPO) |
/// | `lambda` | `0.95` | λ of GAE (PPO) |
/// | `whiten` | `true` | whiten PPO's advantages over the batch's policy tokens |
/// | `group_weight` | `1.0` | w_g, the group term's weight under `tree` |
/// | `fork_weight` | `1.0` | w_f, the fork-relative term's weight under `tree` |
///
/// `mode` and `std_epsilon` apply to the group-based algorithms; `gamma`, `lambda` and
/// `whiten` to PPO; the two weights only to `tree`.
public struct AdvantageConfiguration: Codable, Equatable, Sendable {
    public var mode: AdvantageMode = .arpoSoft
    /// ε added to the group's standard deviation.
    public var standardDeviationEpsilon = 1e-6
    /// γ: GAE's discount per policy token.
    public var gamma = 1.0
    /// λ: GAE's bias–variance trade-off.
    public var lambda = 0.95
    /// Whether PPO's advantages are whitened (masked mean 0, std 1) over the rollout batch.
    public var whiten = true
    /// w_g: the weight of the group-relative A_i under ``AdvantageMode/tree``.
    public var groupWeight = 1.0
    /// w_f: the weight of the fork-relative advantage under ``AdvantageMode/tree``.
    public var forkWeight = 1.0

    public init() {}

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case mode, gamma, lambda, whiten
        case standardDeviationEpsilon = "std_epsilon"
        case groupWeight = "group_weight"
        case forkWeight = "fork_weight"
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = AdvantageConfiguration()
        mode = try container.decodeChoiceIfPresent(AdvantageMode.self, forKey: .mode) ?? defaults.mode
        standardDeviationEpsilon = try container.decodeIfPresent(Double.self, forKey: .standardDeviationEpsilon) ?? defaults.standardDeviationEpsilon
        gamma = try container.decodeIfPresent(Double.self, forKey: .gamma) ?? defaults.gamma
        lambda = try container.decodeIfPresent(Double.self, forKey: .lambda) ?? defaults.lambda
        whiten = try container.decodeIfPresent(Bool.self, forKey: .whiten) ?? defaults.whiten
        groupWeight = try container.decodeIfPresent(Double.self, forKey: .groupWeight) ?? defaults.groupWeight
        forkWeight = try container.decodeIfPresent(Double.self, forKey: .forkWeight) ?? defaults.forkWeight
    }

    /// Checks every value's range; the error names the key and what is allowed, e.g.
    /// `lambda must be in [0, 1], got 1.5`.
    public func validate() throws {
        try requireSetting(standardDeviationEpsilon >= 0 && standardDeviationEpsilon < 1, CodingKeys.standardDeviationEpsilon, "in [0, 1)", standardDeviationEpsilon)
        try requireSetting(gamma >= 0 && gamma <= 1, CodingKeys.gamma, "in [0, 1]", gamma)
        try requireSetting(lambda >= 0 && lambda <= 1, CodingKeys.lambda, "in [0, 1]", lambda)
        try requireSetting(groupWeight >= 0 && groupWeight <= 100, CodingKeys.groupWeight, "in [0, 100]", groupWeight)
        try requireSetting(forkWeight >= 0 && forkWeight <= 100, CodingKeys.forkWeight, "in [0, 100]", forkWeight)
        try requireSetting(groupWeight > 0 || forkWeight > 0, CodingKeys.forkWeight, "above 0 when group_weight is 0 (both 0 trains nothing)", forkWeight)
    }
}

// MARK: - Configuration helpers shared with the loss configuration

/// Throws a ``ConfigurationError`` naming `key` and the allowed range when `condition` fails.
func requireSetting<Key: CodingKey>(_ condition: Bool, _ key: Key, _ allowed: String, _ value: Any) throws {
    if !condition { throw ConfigurationError("\(key.stringValue) must be \(allowed), got \(value)") }
}

extension KeyedDecodingContainer {
    /// Decodes a string-valued choice, rejecting an unknown value with a message that lists the
    /// allowed ones (the coding path names the key).
    func decodeChoiceIfPresent<Choice: RawRepresentable & CaseIterable>(_ type: Choice.Type, forKey key: Key) throws -> Choice?
    where Choice.RawValue == String {
        guard let raw = try decodeIfPresent(String.self, forKey: key) else { return nil }
        guard let choice = Choice(rawValue: raw) else {
            let allowed = Choice.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
            throw DecodingError.dataCorruptedError(
                forKey: key, in: self, debugDescription: "\(key.stringValue) must be one of \(allowed), got \"\(raw)\"")
        }
        return choice
    }
}
