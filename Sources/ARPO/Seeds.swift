/// The random streams a run draws from, each derived from `run.seed` (or from a rollout's seed)
/// by ``Seed/derive(_:_:_:)``. A stream's constants are part of what a seed means: changing one
/// changes every run of every seed, and the metrics the tests pin with it.
public enum SeedStream: CaseIterable, Sendable {
    /// The train-split episodes a BPE tokenizer learns its merges from; index: the episode.
    /// The offset 2³⁹ keeps these episode seeds apart from the cold start's (2⁴⁰ and up) and
    /// the RL prompts' (small).
    case tokenizerEpisodes
    /// The cold start's pool of demonstrations, train-split episode seeds; index: the
    /// demonstration. The offset 2⁴⁰ keeps them apart from the RL prompts' seeds (small).
    case demonstrations
    /// The shuffle of the demonstration pool in each epoch; index: the epoch.
    case demonstrationShuffle
    /// The generator of an SFT step's knowledge-base documents and copy drills; index: the step.
    /// Their episode seeds are its draws tagged with bit 42 (documents) or 43 (drills).
    case documents
    /// The generator of an SFT step's membership drills; index: the step. Their episode seeds
    /// are its draws tagged with bit 44.
    case membershipDrills
    /// The generator of an SFT step's fact-recall drills; index: the step. Their episode seeds
    /// are its draws tagged with bit 45.
    case recallDrills
    /// The generator of an SFT step's fresh demonstrations (`sft.fresh_demonstrations`); index:
    /// the step. Their episode seeds are its draws tagged with bit 41.
    case freshDemonstrations
    /// The RL prompts, train-split episode seeds counted from 0; index: RL step × prompts per
    /// step + prompt.
    case prompts
    /// The sampling of an RL step's rollout (``RolloutEngine/run(episodes:seed:)``); index: the
    /// RL step.
    case rollout
    /// The mini-batch shuffles of an RL step's update
    /// (``ReinforcementLearner/update(_:learningRate:seed:)``); index: the RL step.
    case updateShuffle
    /// The generator a rollout group's trajectories split from, derived from the rollout's seed;
    /// index: the group. The golden-ratio multiplier spreads neighbouring groups apart.
    case rolloutGroup

    /// (offset, base multiplier, index multiplier) of `offset + base · baseMultiplier + index ·
    /// indexMultiplier`.
    var constants: (offset: UInt64, baseMultiplier: UInt64, indexMultiplier: UInt64) {
        switch self {
        case .tokenizerEpisodes: return (1 << 39, 1_000_003, 1)
        case .demonstrations: return (1 << 40, 1_000_003, 1)
        case .demonstrationShuffle: return (0x5F7, 1, 0x9E37_79B9)
        case .documents: return (0xD0C5, 1, 0x9E37_79B9_7F4A_7C15)
        case .membershipDrills: return (0x3E3B, 1, 0x9E37_79B9_7F4A_7C15)
        case .recallDrills: return (0x2EC4, 1, 0x9E37_79B9_7F4A_7C15)
        case .freshDemonstrations: return (0xF2E5, 1, 0x9E37_79B9_7F4A_7C15)
        case .prompts: return (0, 7_919, 1)
        case .rollout: return (0, 31, 1)
        case .updateShuffle: return (0, 1, 1)
        case .rolloutGroup: return (0, 1, 0x9E37_79B9_7F4A_7C15)
        }
    }
}

/// Where every derived seed comes from.
public enum Seed {
    /// The seed of draw `index` of `stream` under `base`: `offset + base · baseMultiplier +
    /// index · indexMultiplier` with the stream's constants, in wrapping 64-bit arithmetic.
    ///
    /// - Precondition: `index >= 0`.
    public static func derive(_ base: UInt64, _ stream: SeedStream, _ index: Int) -> UInt64 {
        precondition(index >= 0, "a seed stream's index counts from 0, got \(index)")
        let constants = stream.constants
        return constants.offset &+ base &* constants.baseMultiplier &+ UInt64(index) &* constants.indexMultiplier
    }
}
