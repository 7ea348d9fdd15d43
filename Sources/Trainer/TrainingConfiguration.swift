import ARPO
import Foundation
import Policy
import Tensor
import ToolEnv

/// A run's configuration: one JSON file in sections `model`, `env`, `sft`, `rl`, `eval`, `run`.
/// Every key with a sensible default has one, so `{}` is a valid (quickstart-sized) config.
public struct TrainingConfiguration: Codable, Equatable, Sendable {
    /// Width 128, 2 layers, 4 heads, MLP 384, 320 positions (room for a prompt and
    /// `rl.max_response_tokens`).
    public var model = LlamaConfiguration()
    public var tokenizer = TokenizerConfiguration()
    public var env = EnvironmentConfig()
    public var sft = SupervisedConfiguration()
    public var rl = ReinforcementConfiguration()
    public var eval = EvaluationConfiguration()
    public var run = RunConfiguration()

    public init() {}

    /// Positions kept for the prompt (`<|user|>` question `<|assistant|>`): the environment's
    /// questions are under 100 bytes at every difficulty (a test checks this).
    public static let promptAllowance = 128

    public enum CodingKeys: String, CodingKey, CaseIterable { case model, tokenizer, env, sft, rl, eval, run }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = TrainingConfiguration()
        model = try container.decodeIfPresent(LlamaConfiguration.self, forKey: .model) ?? defaults.model
        tokenizer = try container.decodeIfPresent(TokenizerConfiguration.self, forKey: .tokenizer) ?? defaults.tokenizer
        // The tokenizer decides the vocabulary; a config that states `model.vocab_size` must agree.
        let modelKeys = try? container.nestedContainer(keyedBy: LlamaConfiguration.CodingKeys.self, forKey: .model)
        if modelKeys?.contains(.vocabularySize) != true { model.vocabularySize = tokenizer.vocabularySize }
        env = try container.decodeIfPresent(EnvironmentConfig.self, forKey: .env) ?? defaults.env
        sft = try container.decodeIfPresent(SupervisedConfiguration.self, forKey: .sft) ?? defaults.sft
        rl = try container.decodeIfPresent(ReinforcementConfiguration.self, forKey: .rl) ?? defaults.rl
        eval = try container.decodeIfPresent(EvaluationConfiguration.self, forKey: .eval) ?? defaults.eval
        run = try container.decodeIfPresent(RunConfiguration.self, forKey: .run) ?? defaults.run
    }

    /// Checks every value's range and the constraints between sections; the error names the key
    /// path and what is allowed.
    public func validate() throws {
        do { try model.validate(path: "model") } catch let error as PolicyError { throw ConfigurationError(error.description) }
        do { try env.validate() } catch let error as EnvironmentConfigError { throw ConfigurationError("env.\(error.keyPath) \(error.reason)") }
        try tokenizer.validate(path: "tokenizer")
        if model.vocabularySize != tokenizer.vocabularySize {
            throw ConfigurationError("model.vocab_size must equal the tokenizer's vocabulary (\(tokenizer.kind == .byte ? "272 for the byte tokenizer" : "272 + tokenizer.merges = \(tokenizer.vocabularySize)")), got \(model.vocabularySize); leave it out to have it set")
        }
        try sft.validate(path: "sft")
        try rl.validate(path: "rl")
        try eval.validate(path: "eval")
        try run.validate(path: "run")
        try validateUserFiles()
        if rl.algorithm == .ppo && !model.valueHead {
            throw ConfigurationError("model.value_head must be true when rl.algorithm is \"ppo\" (PPO's critic is the value head)")
        }
        if TrainingConfiguration.promptAllowance + rl.maxResponseTokens > model.maxPositions {
            throw ConfigurationError("rl.max_response_tokens must be at most model.max_position_embeddings (\(model.maxPositions)) − \(TrainingConfiguration.promptAllowance) tokens kept for the prompt = \(model.maxPositions - TrainingConfiguration.promptAllowance), got \(rl.maxResponseTokens)")
        }
    }
}

extension TrainingConfiguration {
    /// The constraints between the user's files and the cold start. A task file without
    /// demonstrations is refused while `sft.steps` > 0: the cold start would then train on the
    /// built-in solver's demonstrations of the generated families, which never show the user's
    /// tools or tasks, and the run would look like it trains while teaching the wrong thing.
    func validateUserFiles() throws {
        if let train = env.tasks.train, env.demonstrations == nil, sft.steps > 0 {
            throw ConfigurationError(
                "env.tasks.train (\(train)) needs env.demonstrations while sft.steps is \(sft.steps): the cold start would train on the built-in solver's demonstrations of the generated families, not your tasks and tools. Give env.demonstrations (a JSONL of chat-format trajectories), or set sft.steps to 0 and start from a cold-started policy with sft.init_from; from random weights, RL alone will not find the call syntax")
        }
        if env.demonstrations != nil && sft.freshDemonstrations {
            throw ConfigurationError("sft.fresh_demonstrations must be false with env.demonstrations: the demonstrations come from the file, not the generator")
        }
    }
}

/// The RL algorithms.
public enum Algorithm: String, Codable, CaseIterable, Sendable {
    /// Group-normalised advantages over G independent samples per prompt.
    case grpo
    /// Clipped PPO with a value head and GAE, over G independent samples per prompt.
    case ppo
    /// ARPO: entropy-based adaptive branching and advantage attribution.
    case arpo
}

extension Algorithm {
    /// The advantage estimator family the algorithm trains with.
    public var update: UpdateAlgorithm { self == .ppo ? .proximal : .groupRelative }
}

/// The RL phase.
public struct ReinforcementConfiguration: Codable, Equatable, Sendable {
    public var algorithm: Algorithm = .arpo
    /// RL steps (one rollout batch and its updates each).
    public var steps = 40
    /// Prompts per rollout batch.
    public var promptsPerStep = 8
    /// G: trajectories per prompt for GRPO and PPO. ARPO uses `branching.budget` (M); keep them
    /// equal to compare at the same trajectory budget.
    public var groupSize = 8
    public var branching = BranchingConfiguration()
    /// Response tokens (policy and observations) per trajectory.
    public var maxResponseTokens = 120
    public var temperature = 1.0
    /// 0 keeps every token.
    public var topK = 0
    /// 1 keeps every token.
    public var topP = 1.0
    public var learningRate = 1e-4
    public var warmupSteps = 0
    public var schedule: LearningRateSchedule.Decay = .constant
    public var weightDecay = 0.0
    /// AdamW's β1 and β2.
    public var adamBetas = [0.9, 0.999]
    public var maxGradientNorm = 1.0
    /// Passes over each rollout batch.
    public var epochs = 1
    /// Optimizer steps per epoch (the batch is split into this many mini-batches).
    public var miniBatches = 1
    /// Rows per forward/backward pass inside a mini-batch (gradient accumulation).
    public var microBatchSize = 16
    public var loss = PolicyLossConfiguration()
    public var advantage = AdvantageConfiguration()
    /// Every this many RL steps, the step's rollout trees (one per prompt group, with each node's
    /// text, tool call, entropy, fork decision, reward and advantage) go to `trees.jsonl`; 0
    /// writes none.
    public var treesEvery = 0
    /// The DPO stage (TTPA): the first this many of the `steps` train on the rollout's
    /// preference pairs at fork points alone (`ReinforcementLearner.preferenceUpdate`), after
    /// which RL proper runs; 0: no stage. Needs `arpo`, whose forks make the pairs.
    public var dpoSteps = 0
    /// The memory bank of best trajectories (AvaTaR), replayed as positive rows in the update;
    /// off while its coefficient is 0.
    public var memoryBank = MemoryBankConfiguration()

    public init() {}

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case algorithm, steps, branching, temperature, epochs, schedule, loss, advantage
        case treesEvery = "trees_every"
        case dpoSteps = "dpo_steps"
        case memoryBank = "memory_bank"
        case promptsPerStep = "prompts_per_step"
        case groupSize = "group_size"
        case maxResponseTokens = "max_response_tokens"
        case topK = "top_k"
        case topP = "top_p"
        case learningRate = "learning_rate"
        case warmupSteps = "warmup_steps"
        case weightDecay = "weight_decay"
        case adamBetas = "adam_betas"
        case maxGradientNorm = "max_gradient_norm"
        case miniBatches = "mini_batches"
        case microBatchSize = "micro_batch_size"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ReinforcementConfiguration()
        algorithm = try c.decodeIfPresent(Algorithm.self, forKey: .algorithm) ?? d.algorithm
        steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? d.steps
        promptsPerStep = try c.decodeIfPresent(Int.self, forKey: .promptsPerStep) ?? d.promptsPerStep
        groupSize = try c.decodeIfPresent(Int.self, forKey: .groupSize) ?? d.groupSize
        branching = try c.decodeIfPresent(BranchingConfiguration.self, forKey: .branching) ?? d.branching
        maxResponseTokens = try c.decodeIfPresent(Int.self, forKey: .maxResponseTokens) ?? d.maxResponseTokens
        temperature = try c.decodeIfPresent(Double.self, forKey: .temperature) ?? d.temperature
        topK = try c.decodeIfPresent(Int.self, forKey: .topK) ?? d.topK
        topP = try c.decodeIfPresent(Double.self, forKey: .topP) ?? d.topP
        learningRate = try c.decodeIfPresent(Double.self, forKey: .learningRate) ?? d.learningRate
        warmupSteps = try c.decodeIfPresent(Int.self, forKey: .warmupSteps) ?? d.warmupSteps
        schedule = try c.decodeIfPresent(LearningRateSchedule.Decay.self, forKey: .schedule) ?? d.schedule
        weightDecay = try c.decodeIfPresent(Double.self, forKey: .weightDecay) ?? d.weightDecay
        adamBetas = try c.decodeIfPresent([Double].self, forKey: .adamBetas) ?? d.adamBetas
        maxGradientNorm = try c.decodeIfPresent(Double.self, forKey: .maxGradientNorm) ?? d.maxGradientNorm
        epochs = try c.decodeIfPresent(Int.self, forKey: .epochs) ?? d.epochs
        miniBatches = try c.decodeIfPresent(Int.self, forKey: .miniBatches) ?? d.miniBatches
        microBatchSize = try c.decodeIfPresent(Int.self, forKey: .microBatchSize) ?? d.microBatchSize
        loss = try c.decodeIfPresent(PolicyLossConfiguration.self, forKey: .loss) ?? d.loss
        advantage = try c.decodeIfPresent(AdvantageConfiguration.self, forKey: .advantage) ?? d.advantage
        treesEvery = try c.decodeIfPresent(Int.self, forKey: .treesEvery) ?? d.treesEvery
        dpoSteps = try c.decodeIfPresent(Int.self, forKey: .dpoSteps) ?? d.dpoSteps
        memoryBank = try c.decodeIfPresent(MemoryBankConfiguration.self, forKey: .memoryBank) ?? d.memoryBank
    }

    func validate(path: String) throws {
        try require(steps >= 0 && steps <= 1_000_000, path, CodingKeys.steps, "in 0...1000000", steps)
        try require(promptsPerStep >= 1 && promptsPerStep <= 1024, path, CodingKeys.promptsPerStep, "in 1...1024", promptsPerStep)
        try require(groupSize >= 1 && groupSize <= 256, path, CodingKeys.groupSize, "in 1...256", groupSize)
        try branching.validate(path: "\(path).branching")
        try require(maxResponseTokens >= 8 && maxResponseTokens <= 65536, path, CodingKeys.maxResponseTokens, "in 8...65536", maxResponseTokens)
        try require(temperature > 0 && temperature <= 10, path, CodingKeys.temperature, "in (0, 10]", temperature)
        try require(topK >= 0, path, CodingKeys.topK, "at least 0 (0 keeps every token)", topK)
        try require(topP > 0 && topP <= 1, path, CodingKeys.topP, "in (0, 1]", topP)
        try require(learningRate > 0 && learningRate < 1, path, CodingKeys.learningRate, "in (0, 1)", learningRate)
        try require(warmupSteps >= 0, path, CodingKeys.warmupSteps, "at least 0", warmupSteps)
        try require(weightDecay >= 0 && weightDecay < 1, path, CodingKeys.weightDecay, "in [0, 1)", weightDecay)
        try require(adamBetas.count == 2 && adamBetas.allSatisfy { $0 >= 0 && $0 < 1 }, path, CodingKeys.adamBetas, "two values [β1, β2], each in [0, 1)", "\(adamBetas)")
        try require(maxGradientNorm > 0, path, CodingKeys.maxGradientNorm, "positive", maxGradientNorm)
        try require(epochs >= 1 && epochs <= 100, path, CodingKeys.epochs, "in 1...100", epochs)
        try require(miniBatches >= 1 && miniBatches <= 1024, path, CodingKeys.miniBatches, "in 1...1024", miniBatches)
        try require(microBatchSize >= 1 && microBatchSize <= 4096, path, CodingKeys.microBatchSize, "in 1...4096", microBatchSize)
        try require(treesEvery >= 0, path, CodingKeys.treesEvery, "at least 0 (0 writes no trees)", treesEvery)
        try require(dpoSteps >= 0 && dpoSteps <= steps, path, CodingKeys.dpoSteps, "in 0...\(CodingKeys.steps.stringValue) (\(steps))", dpoSteps)
        if dpoSteps > 0 && algorithm != .arpo {
            throw ConfigurationError("\(path).\(CodingKeys.dpoSteps.stringValue) needs \(path).algorithm arpo: only ARPO's forks make preference pairs, got \(algorithm.rawValue)")
        }
        do { try loss.validate() } catch let error as ConfigurationError { throw ConfigurationError("\(path).loss.\(error.description)") }
        do { try advantage.validate() } catch let error as ConfigurationError { throw ConfigurationError("\(path).advantage.\(error.description)") }
        try memoryBank.validate(path: "\(path).\(CodingKeys.memoryBank.stringValue)")
    }

    /// Trajectories per prompt once a rollout batch is complete.
    public var trajectoriesPerPrompt: Int { algorithm == .arpo ? branching.budget : groupSize }

    /// The learner's settings.
    public var update: UpdateConfiguration {
        UpdateConfiguration(
            epochs: epochs, miniBatches: miniBatches, microBatchSize: microBatchSize, maxGradientNorm: maxGradientNorm,
            temperature: temperature, loss: loss, advantage: advantage, maxResponseTokens: maxResponseTokens,
            replayCoefficient: memoryBank.coefficient, contrastiveCoefficient: memoryBank.contrastiveCoefficient)
    }

    /// The rollout engine's settings for this algorithm.
    public var rollout: RolloutConfiguration {
        let sampling = SamplingParameters(temperature: temperature, topK: topK > 0 ? topK : nil, topP: topP < 1 ? topP : nil)
        let strategy: RolloutConfiguration.Strategy = algorithm == .arpo ? .branching(branching) : .trajectory(groupSize: groupSize)
        return RolloutConfiguration(maxResponseTokens: maxResponseTokens, sampling: sampling, strategy: strategy)
    }
}

/// Held-out evaluation: greedy decoding on the eval split.
public struct EvaluationConfiguration: Codable, Equatable, Sendable {
    /// RL steps between evaluations (also run after SFT and at the end). 0: only those two.
    public var every = 10
    /// Episodes per evaluation (fixed eval-split seeds 0..<episodes, so evaluations compare).
    public var episodes = 64
    /// Transcripts logged in eval.jsonl per evaluation.
    public var sampleTrajectories = 3

    public init() {}

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case every, episodes
        case sampleTrajectories = "sample_trajectories"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = EvaluationConfiguration()
        every = try c.decodeIfPresent(Int.self, forKey: .every) ?? d.every
        episodes = try c.decodeIfPresent(Int.self, forKey: .episodes) ?? d.episodes
        sampleTrajectories = try c.decodeIfPresent(Int.self, forKey: .sampleTrajectories) ?? d.sampleTrajectories
    }

    func validate(path: String) throws {
        try require(every >= 0, path, CodingKeys.every, "at least 0", every)
        try require(episodes >= 1 && episodes <= 100_000, path, CodingKeys.episodes, "in 1...100000", episodes)
        try require(sampleTrajectories >= 0 && sampleTrajectories <= episodes, path, CodingKeys.sampleTrajectories, "in 0...eval.episodes", sampleTrajectories)
    }
}

/// Seeds, threads, the output directory and checkpointing.
public struct RunConfiguration: Codable, Equatable, Sendable {
    /// `threads` and `matmul_precision` as the process's compute settings (float32 products at
    /// `highest` on the blocked kernel where it runs).
    public var computeSettings: ComputeSettings {
        ComputeSettings(threads: threads, matmulPrecision: matmulPrecision)
    }

    public var seed: UInt64 = 0
    /// BLAS threads (and the figure reproducibility is promised for).
    public var threads = 2
    /// How float32 matrix products round their operands (`MatmulPrecision`): "highest" (float32),
    /// "high" (bfloat16 ×3 on AMX) or "medium" (bfloat16 on AMX), as PyTorch's
    /// `torch.set_float32_matmul_precision`. Decoding during rollouts stays float32.
    public var matmulPrecision = MatmulPrecision.highest
    public var output = "runs/quickstart"
    /// Steps between checkpoints in each phase (a final one is always written).
    public var checkpointEvery = 10
    /// A run stops after this many consecutive updates with a non-finite loss or gradient.
    public var maxConsecutiveNonfinite = 3
    /// Checkpoints kept (older ones are deleted); at least 1.
    public var keepCheckpoints = 2
    /// Off a terminal (a log file, a pipe), the seconds between progress lines; 0 prints every
    /// step. Evaluations and each phase's first and last step are always printed.
    public var logEverySeconds = 10.0

    public init() {}

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case seed, threads, output
        case matmulPrecision = "matmul_precision"
        case checkpointEvery = "checkpoint_every"
        case maxConsecutiveNonfinite = "max_consecutive_nonfinite"
        case keepCheckpoints = "keep_checkpoints"
        case logEverySeconds = "log_every_seconds"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = RunConfiguration()
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        threads = try c.decodeIfPresent(Int.self, forKey: .threads) ?? d.threads
        matmulPrecision = try c.decodeIfPresent(MatmulPrecision.self, forKey: .matmulPrecision) ?? d.matmulPrecision
        output = try c.decodeIfPresent(String.self, forKey: .output) ?? d.output
        checkpointEvery = try c.decodeIfPresent(Int.self, forKey: .checkpointEvery) ?? d.checkpointEvery
        maxConsecutiveNonfinite = try c.decodeIfPresent(Int.self, forKey: .maxConsecutiveNonfinite) ?? d.maxConsecutiveNonfinite
        keepCheckpoints = try c.decodeIfPresent(Int.self, forKey: .keepCheckpoints) ?? d.keepCheckpoints
        logEverySeconds = try c.decodeIfPresent(Double.self, forKey: .logEverySeconds) ?? d.logEverySeconds
    }

    func validate(path: String) throws {
        try require(threads >= 1 && threads <= 256, path, CodingKeys.threads, "in 1...256", threads)
        try require(!output.isEmpty, path, CodingKeys.output, "a non-empty path", "\"\"")
        try require(checkpointEvery >= 1, path, CodingKeys.checkpointEvery, "at least 1", checkpointEvery)
        try require(maxConsecutiveNonfinite >= 1, path, CodingKeys.maxConsecutiveNonfinite, "at least 1", maxConsecutiveNonfinite)
        try require(keepCheckpoints >= 1, path, CodingKeys.keepCheckpoints, "at least 1", keepCheckpoints)
        try require(logEverySeconds >= 0 && logEverySeconds.isFinite, path, CodingKeys.logEverySeconds, "a number of seconds, at least 0", logEverySeconds)
    }
}

func require<Key: CodingKey>(_ condition: Bool, _ path: String, _ key: Key, _ allowed: String, _ value: Any) throws {
    if !condition { throw ConfigurationError("\(path).\(key.stringValue) must be \(allowed), got \(value)") }
}
