import ARPO
import ArgumentParser
import Policy
import ToolEnv

/// A reference config: the policy architecture and the workload every benchmark runs on it.
///
/// `small` (width 128, 2 layers, 4 heads, MLP 384, context 128) and `base` (width 256, 4 layers,
/// 4 heads, MLP 768, context 256) run batch 16. `tiny` is hidden from the help: a width-32 policy
/// and a few tokens, so that the smoke test runs the whole harness in seconds in a debug build.
/// Its figures mean nothing.
enum ReferenceSize: String, CaseIterable, Codable, ExpressibleByArgument {
    case small, base, tiny

    /// What `--help` lists (`tiny` is the smoke test's).
    static var allValueStrings: [String] { ["small", "base"] }

    /// The policy architecture; its `maxPositions` is the context T of forward and train.
    var model: LlamaConfiguration {
        switch self {
        case .small: return LlamaConfiguration(hiddenSize: 128, intermediateSize: 384, layerCount: 2, headCount: 4, maxPositions: 128)
        case .base: return LlamaConfiguration(hiddenSize: 256, intermediateSize: 768, layerCount: 4, headCount: 4, maxPositions: 256)
        case .tiny: return LlamaConfiguration(hiddenSize: 32, intermediateSize: 64, layerCount: 1, headCount: 2, maxPositions: 16)
        }
    }

    /// B: rows of the forward and train batch, and sequences decoded together.
    var batchSize: Int { self == .tiny ? 2 : 16 }

    /// T: the context of the training forward (the config's `max_position_embeddings`).
    var context: Int { model.maxPositions }

    /// Prompt tokens prefilled before batched decoding.
    var decodePromptTokens: Int { self == .tiny ? 4 : 32 }

    /// Tokens sampled per sequence in batched decoding (the only ones counted).
    var decodeNewTokens: Int { self == .tiny ? 4 : 96 }

    /// Side of the square sgemm whose raw-BLAS GFLOPS is the peak that model FLOP rates are a
    /// fraction of.
    var peakSize: Int { self == .tiny ? 128 : 2048 }

    /// The rollout workload on this size.
    var rollout: RolloutWorkload {
        switch self {
        case .small, .base: return RolloutWorkload()
        case .tiny: return RolloutWorkload(promptsPerBatch: 2, groupSize: 2, initialSamples: 1, entropyWindow: 4, maxResponseTokens: 16)
        }
    }

    /// The cold start that gives the rollout benchmark a policy that calls tools, when no
    /// `--checkpoint` is given: quickstart's SFT settings, shortened.
    var coldStart: SupervisedConfiguration {
        var configuration = SupervisedConfiguration()
        switch self {
        case .small, .base:
            configuration.steps = 200
        case .tiny:
            configuration.steps = 2
            configuration.batchSize = 2
            configuration.demonstrations = 4
        }
        return configuration
    }

    /// The reference size with this architecture (context aside), if any.
    static func matching(_ configuration: LlamaConfiguration) -> ReferenceSize? {
        allCases.first { size in
            var candidate = configuration
            candidate.maxPositions = size.model.maxPositions
            return candidate == size.model
        }
    }
}

/// The rollout benchmark's batch: `promptsPerBatch` episodes, each with `groupSize` trajectories
/// (trajectory-level) or a budget of `groupSize` (ARPO), as in the quickstart config.
struct RolloutWorkload: Codable, Equatable {
    var promptsPerBatch = 8
    var groupSize = 8
    /// ARPO's N: global samples started per prompt before any fork.
    var initialSamples = 4
    /// ARPO's k.
    var entropyWindow = 20
    var maxResponseTokens = 120
    /// The policy's `max_position_embeddings` for rollouts: prompts run up to 200 tokens and
    /// observations up to 200 characters, which neither reference context (128, 256) holds, so
    /// the rollout policy keeps the architecture and takes the quickstart's 320 positions.
    var context = 320

    /// The environment episodes are drawn from: the quickstart's (difficulty 1, default task mix
    /// and faults).
    var environment: EnvironmentConfig { EnvironmentConfig(difficulty: 1) }

    var trajectoryConfiguration: RolloutConfiguration {
        RolloutConfiguration(maxResponseTokens: maxResponseTokens, strategy: .trajectory(groupSize: groupSize))
    }

    var branchingConfiguration: RolloutConfiguration {
        var branching = BranchingConfiguration()
        branching.budget = groupSize
        branching.initialSamples = initialSamples
        branching.entropyWindow = entropyWindow
        return RolloutConfiguration(maxResponseTokens: maxResponseTokens, strategy: .branching(branching))
    }
}
