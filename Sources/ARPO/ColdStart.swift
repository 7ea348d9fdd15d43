import Foundation
import Policy
import Tensor
import ToolEnv

/// Cold-start supervised fine-tuning on expert demonstrations (ARPO.md §7), with the loss on
/// the policy's tokens only: observations and the prompt are context. A tiny policy that starts
/// from random weights never discovers the call syntax by RL alone.
public final class SupervisedTrainer {
    public struct Example {
        public let tokens: [Int]
        /// lossMask[t]: whether token t is the policy's (trained).
        public let lossMask: [Bool]
    }

    public let model: LlamaModel
    public let optimizer: AdamW
    public let configuration: SupervisedConfiguration
    public let examples: [Example]
    /// Demonstrations left out because they do not fit the response limit or the context, per
    /// task family: teaching them would teach answers the policy can never finish in RL.
    public let tooLong: [TaskFamily: Int]
    let schedule: LearningRateSchedule
    let seed: UInt64

    /// - Parameter maxResponseTokens: the RL response limit; longer demonstrations are dropped
    ///   (counted in `tooLong`), as are those whose prompt and response exceed the context.
    public init(model: LlamaModel, optimizer: AdamW, configuration: SupervisedConfiguration, environment: EnvironmentConfig, seed: UInt64, maxResponseTokens: Int? = nil, codec: ProtocolCodec = ProtocolCodec()) {
        self.model = model
        self.optimizer = optimizer
        self.configuration = configuration
        self.seed = seed
        schedule = LearningRateSchedule(peak: configuration.learningRate, warmupSteps: configuration.warmupSteps, totalSteps: configuration.steps, decay: configuration.schedule)
        let solver = ExpertSolver()
        let maxPositions = model.configuration.maxPositions
        var tooLong: [TaskFamily: Int] = [:]
        // Demonstrations come from the train split; their seeds are offset so they never coincide
        // with the RL prompts' seeds (which count from 0).
        examples = (0..<configuration.demonstrations).compactMap { index in
            let episode = Episode.sample(split: .train, seed: 1 << 40 &+ seed &* 1_000_003 &+ UInt64(index), config: environment)
            let demonstration = solver.demonstrate(episode)
            // With faults on, a few demonstrations in ten thousand run out of calls: never teach those.
            guard demonstration.endReason == .answered, demonstration.reward.isCorrect else { return nil }
            let prompt = codec.promptTokens(episode.prompt)
            let response = codec.responseTokens(of: demonstration)
            guard prompt.count + response.tokens.count <= maxPositions, response.tokens.count <= maxResponseTokens ?? .max else {
                tooLong[episode.task.family, default: 0] += 1
                return nil
            }
            return Example(tokens: prompt + response.tokens, lossMask: [Bool](repeating: false, count: prompt.count) + response.lossMask)
        }
        self.tooLong = tooLong
    }

    /// The examples of step `step`: consecutive slices of a per-epoch shuffle, derived from
    /// (seed, epoch) alone so that a resumed run draws the same batches.
    public func batchIndices(step: Int) -> [Int] {
        let count = examples.count, size = configuration.batchSize
        return (0..<size).map { offset in
            let position = step * size + offset
            let epoch = position / count
            var generator = RandomGenerator(seed: seed &+ 0x5F7 &+ UInt64(epoch) &* 0x9E37_79B9)
            var order = Array(0..<count)
            order.shuffle(using: &generator)
            return order[position % count]
        }
    }

    public struct StepResult {
        public var loss: Double
        public var gradientNorm: Double
        /// Tokens in the batch (what tokens/s counts).
        public var tokens: Int
        public var learningRate: Double
        /// Whether a non-finite loss or gradient skipped the update.
        public var skipped: Bool
    }

    /// One optimizer step; a non-finite loss or gradient skips the update.
    /// `poisonGradients` (tests) makes the gradient NaN to exercise that path.
    public func step(_ step: Int, poisonGradients: Bool = false) -> StepResult {
        let chosen = batchIndices(step: step).map { examples[$0] }
        let batch = TokenBatch(sequences: chosen.map(\.tokens), padding: ByteTokenizer().padID)
        // Weight of position t: whether token t + 1 is the policy's.
        let width = batch.length - 1
        var weights = [Double](repeating: 0, count: batch.batchSize * width)
        for (row, example) in chosen.enumerated() {
            for position in 0..<(example.tokens.count - 1) where example.lossMask[position + 1] {
                weights[row * width + position] = 1
            }
        }
        let trainedTokens = Int(weights.reduce(0, +))
        optimizer.zeroGradients()
        let logProbabilities = model.tokenStatistics(batch).logProbabilities
        let loss = -(logProbabilities * Tensor(shape: [batch.batchSize, width], values: weights, dtype: model.dtype)).sum() / Double(max(trainedTokens, 1))
        let learningRate = schedule.rate(at: step)
        guard loss.item.isFinite else {
            optimizer.zeroGradients()
            return StepResult(loss: loss.item, gradientNorm: .nan, tokens: trainedTokens, learningRate: learningRate, skipped: true)
        }
        loss.backward()
        if poisonGradients { model.embedding.gradient?.fill(.nan) }
        let norm = optimizer.clipGradientNorm(to: configuration.maxGradientNorm)
        guard norm.isFinite else {
            optimizer.zeroGradients()
            return StepResult(loss: loss.item, gradientNorm: norm, tokens: trainedTokens, learningRate: learningRate, skipped: true)
        }
        optimizer.update(learningRate: learningRate)
        return StepResult(loss: loss.item, gradientNorm: norm, tokens: batch.lengths.reduce(0, +), learningRate: learningRate, skipped: false)
    }
}

/// Cold-start supervised fine-tuning on expert demonstrations (ARPO.md §7): loss on the policy's
/// tokens only.
public struct SupervisedConfiguration: Codable, Equatable, Sendable {
    /// Optimizer steps.
    public var steps = 300
    /// Demonstrations per step.
    public var batchSize = 16
    /// Peak learning rate.
    public var learningRate = 3e-3
    public var warmupSteps = 10
    public var schedule: LearningRateSchedule.Decay = .cosine
    /// Distinct demonstrations generated (train split) and cycled through.
    public var demonstrations = 2000
    public var weightDecay = 0.0
    public var maxGradientNorm = 1.0
    /// A Hugging Face model directory (such as an earlier run's `reference/`) whose weights the
    /// cold start begins from instead of a random initialisation; with `steps` 0 it reuses that
    /// cold start as it is. Nil: random initialisation.
    public var initFrom: String?

    public init() {}

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case steps, schedule, demonstrations
        case initFrom = "init_from"
        case batchSize = "batch_size"
        case learningRate = "learning_rate"
        case warmupSteps = "warmup_steps"
        case weightDecay = "weight_decay"
        case maxGradientNorm = "max_gradient_norm"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = SupervisedConfiguration()
        steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? d.steps
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
        learningRate = try c.decodeIfPresent(Double.self, forKey: .learningRate) ?? d.learningRate
        warmupSteps = try c.decodeIfPresent(Int.self, forKey: .warmupSteps) ?? d.warmupSteps
        schedule = try c.decodeIfPresent(LearningRateSchedule.Decay.self, forKey: .schedule) ?? d.schedule
        demonstrations = try c.decodeIfPresent(Int.self, forKey: .demonstrations) ?? d.demonstrations
        weightDecay = try c.decodeIfPresent(Double.self, forKey: .weightDecay) ?? d.weightDecay
        maxGradientNorm = try c.decodeIfPresent(Double.self, forKey: .maxGradientNorm) ?? d.maxGradientNorm
        initFrom = try c.decodeIfPresent(String.self, forKey: .initFrom)
    }

    /// Writes every key, `init_from` as null when unset, so the resolved config shows it.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(steps, forKey: .steps)
        try c.encode(batchSize, forKey: .batchSize)
        try c.encode(learningRate, forKey: .learningRate)
        try c.encode(warmupSteps, forKey: .warmupSteps)
        try c.encode(schedule, forKey: .schedule)
        try c.encode(demonstrations, forKey: .demonstrations)
        try c.encode(weightDecay, forKey: .weightDecay)
        try c.encode(maxGradientNorm, forKey: .maxGradientNorm)
        try c.encode(initFrom, forKey: .initFrom)
    }

    public func validate(path: String) throws {
        try requireSetting(steps >= 0 && steps <= 1_000_000, path, CodingKeys.steps, "in 0...1000000", steps)
        try requireSetting(batchSize >= 1 && batchSize <= 4096, path, CodingKeys.batchSize, "in 1...4096", batchSize)
        try requireSetting(learningRate > 0 && learningRate < 1, path, CodingKeys.learningRate, "in (0, 1)", learningRate)
        try requireSetting(warmupSteps >= 0, path, CodingKeys.warmupSteps, "at least 0", warmupSteps)
        try requireSetting(demonstrations >= 1 && demonstrations <= 1_000_000, path, CodingKeys.demonstrations, "in 1...1000000", demonstrations)
        try requireSetting(weightDecay >= 0 && weightDecay < 1, path, CodingKeys.weightDecay, "in [0, 1)", weightDecay)
        try requireSetting(maxGradientNorm > 0, path, CodingKeys.maxGradientNorm, "positive", maxGradientNorm)
        try requireSetting(initFrom.map { !$0.isEmpty } ?? true, path, CodingKeys.initFrom, "a model directory path or null", "an empty string")
    }
}

func requireSetting<Key: CodingKey>(_ condition: Bool, _ path: String, _ key: Key, _ allowed: String, _ value: Any) throws {
    if !condition { throw ConfigurationError("\(path).\(key.stringValue) must be \(allowed), got \(value)") }
}
