import ARPO
import Foundation
import Policy
import Tensor
import ToolEnv
import Trainer

/// One whole RL step as `arpo-train` takes it, on a run config's model (configs/multiturn.json by
/// default): a rollout batch against the tool environment, then `ReinforcementLearner.update`
/// (the reference policy's log-probs, advantages, forward and backward passes, AdamW), for GRPO
/// and ARPO from the same policy, their steps alternating. Beside them, the supervised train step
/// of the same model (the config's SFT batches, packed as the cold start packs them), whose
/// tokens/s the update's is set against.
enum RLStepBenchmark {
    /// The run config the workload comes from, shrunk to seconds for the smoke test's `tiny`.
    static func configuration(path: String, size: ReferenceSize) throws -> TrainingConfiguration {
        let overrides = size == .tiny ? try tinyOverrides.map(ConfigurationOverride.init(parsing:)) : []
        return try ConfigurationLoader.load(from: URL(fileURLWithPath: path), overrides: overrides)
    }

    /// A width-32 policy on the byte tokenizer, 2 prompts of 2 trajectories with 16 response
    /// tokens: the whole benchmark runs in seconds in a debug build. Its figures mean nothing.
    static let tinyOverrides = [
        "tokenizer.kind=byte", "model.hidden_size=32", "model.intermediate_size=64", "model.num_hidden_layers=1",
        "model.num_attention_heads=2", "rl.prompts_per_step=2", "rl.group_size=2", "rl.branching.budget=2",
        "rl.branching.initial_samples=1", "rl.max_response_tokens=16", "sft.batch_size=2", "sft.demonstrations=4",
        "sft.fresh_demonstrations=false", "sft.copy_drill_fraction=0",
    ]

    /// The response limit of demonstrations: the RL limit, as the trainer's cold start has it,
    /// except for `tiny`, whose 16 RL response tokens no demonstration fits.
    static func supervisedResponseLimit(_ c: TrainingConfiguration) -> Int? {
        c.rl.maxResponseTokens < 32 ? nil : c.rl.maxResponseTokens
    }

    /// Cold-start steps when no `--checkpoint` is given.
    static func defaultColdStartSteps(_ size: ReferenceSize) -> Int { size == .tiny ? 2 : 200 }

    /// Supervised steps per timed round of the SFT figure.
    static func supervisedStepsPerRound(_ size: ReferenceSize) -> Int { size == .tiny ? 1 : 4 }

    /// The policy: loaded from `checkpoint` (weights and tokenizer), or cold-started here from
    /// random weights with the config's tokenizer and SFT for `coldStartSteps` steps.
    static func policy(_ c: TrainingConfiguration, checkpoint: String?, coldStartSteps: Int) throws -> (LlamaModel, ProtocolCodec, String) {
        if let checkpoint {
            let url = URL(fileURLWithPath: checkpoint)
            let model = try ModelCheckpoint.load(from: url, expected: c.model)
            let tokenizer = try ModelCheckpoint.loadTokenizer(from: url, vocabularySize: c.model.vocabularySize)
            return (model, ProtocolCodec(tokenizer: tokenizer), checkpoint)
        }
        let codec = ProtocolCodec(tokenizer: try c.tokenizer.makeTokenizer(environment: c.env, seed: c.run.seed))
        var generator = RandomGenerator(seed: c.run.seed)
        let model = LlamaModel(configuration: c.model, generator: &generator)
        var sft = c.sft
        sft.steps = coldStartSteps
        let trainer = SupervisedTrainer(
            model: model, optimizer: optimizer(model, weightDecay: sft.weightDecay), configuration: sft, environment: c.env, seed: c.run.seed,
            maxResponseTokens: supervisedResponseLimit(c), codec: codec)
        guard !trainer.examples.isEmpty else { throw BenchmarkError("rl-step: no expert demonstration fits the config's limits") }
        for step in 0..<coldStartSteps { _ = trainer.step(step) }
        return (model, codec, "cold start, \(coldStartSteps) SFT steps")
    }

    static func optimizer(_ model: LlamaModel, weightDecay: Double) -> AdamW {
        AdamW(named: model.namedParameters, hyperparameters: .init(weightDecay: weightDecay), noDecay: AdamW.defaultNoDecay(model.namedParameters.map(\.name)))
    }

    /// A fresh copy of `model`'s weights (through a checkpoint in `directory`).
    static func copy(of model: LlamaModel, in directory: URL) throws -> LlamaModel {
        try ModelCheckpoint.load(from: directory, expected: model.configuration)
    }

    /// One algorithm's run: its own policy, frozen reference, optimizer, learner and engine.
    struct Run {
        let name: String
        let configuration: ReinforcementConfiguration
        let learner: ReinforcementLearner
        let engine: RolloutEngine
        var step = 0
        var samples: [StepSample] = []
    }

    /// What one RL step did and took.
    struct StepSample {
        var rolloutSeconds: Double
        var cost: UpdateCost
        var trajectories: Int
        var responseTokens: Int
        var toolCalls: Int

        var seconds: Double { rolloutSeconds + cost.seconds }
    }

    /// A warm-up step per algorithm, then `repetitions` rounds: in each, one RL step of GRPO and
    /// one of ARPO (order alternating) and a few supervised steps, so all three see the same
    /// machine. Each algorithm's steps continue one run (prompts and seeds as `arpo-train` draws
    /// them), so the policy moves as it would.
    static func measure(configPath: String, size: ReferenceSize, threads: Int, repetitions: Int, checkpoint: String?, coldStartSteps: Int?) throws -> [BenchmarkResult] {
        let c = try configuration(path: configPath, size: size)
        let steps = coldStartSteps ?? defaultColdStartSteps(size)
        let (policy, codec, description) = try policy(c, checkpoint: checkpoint, coldStartSteps: steps)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("arpo-bench-rl-step-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try ModelCheckpoint.save(policy, to: directory, tokenizer: codec.tokenizer)

        var runs: [Run] = []
        for algorithm in [Algorithm.grpo, .arpo] {
            var rl = c.rl
            rl.algorithm = algorithm
            let model = try copy(of: policy, in: directory)
            let learner = ReinforcementLearner(
                model: model, reference: try copy(of: policy, in: directory), optimizer: optimizer(model, weightDecay: rl.weightDecay),
                configuration: rl.update, algorithm: algorithm.update)
            runs.append(Run(name: algorithm.rawValue, configuration: rl, learner: learner, engine: RolloutEngine(policy: model, codec: codec, configuration: rl.rollout)))
        }
        func step(_ index: Int) -> StepSample {
            let run = runs[index]
            let prompts = (0..<c.rl.promptsPerStep).map { prompt in
                Episode.sample(split: .train, seed: Seed.derive(c.run.seed, .prompts, run.step * c.rl.promptsPerStep + prompt), config: c.env)
            }
            let start = Timer.now()
            let batch = run.engine.run(episodes: prompts, seed: Seed.derive(c.run.seed, .rollout, run.step))
            let rolloutSeconds = Timer.now() - start
            let update = run.learner.update(batch, learningRate: c.rl.learningRate, seed: Seed.derive(c.run.seed, .updateShuffle, run.step))
            runs[index].step += 1
            return StepSample(
                rolloutSeconds: rolloutSeconds, cost: update.cost, trajectories: batch.records.count,
                responseTokens: batch.records.reduce(0) { $0 + $1.responseTokens.count }, toolCalls: batch.statistics.toolCallsExecuted)
        }

        // The supervised step: the config's SFT batches on its own copy of the policy; batches are
        // built before the clock starts (fresh demonstrations are generated per step).
        let supervisedModel = try copy(of: policy, in: directory)
        var sft = c.sft
        sft.steps = 1_000_000
        let supervised = SupervisedTrainer(
            model: supervisedModel, optimizer: optimizer(supervisedModel, weightDecay: sft.weightDecay), configuration: sft,
            environment: c.env, seed: c.run.seed &+ 1, maxResponseTokens: supervisedResponseLimit(c), codec: codec)
        var supervisedStep = 0
        func supervisedRound(_ count: Int) -> Double {
            let batches = (0..<count).map { supervised.batch(step: supervisedStep + $0) }
            supervisedStep += count
            var tokens = 0
            let start = Timer.now()
            for batch in batches {
                supervised.optimizer.zeroGradients()
                tokens += supervised.lossAndGradients(of: batch).tokens
                _ = supervised.optimizer.clipGradientNorm(to: sft.maxGradientNorm)
                supervised.optimizer.update(learningRate: sft.learningRate)
            }
            return Double(tokens) / (Timer.now() - start)
        }

        for index in runs.indices { _ = step(index) }  // warm-up
        _ = supervisedRound(1)
        var supervisedSamples: [Double] = []
        for round in 0..<repetitions {
            let order = round % 2 == 0 ? Array(runs.indices) : runs.indices.reversed()
            for index in order { runs[index].samples.append(step(index)) }
            supervisedSamples.append(supervisedRound(supervisedStepsPerRound(size)))
        }

        let label = URL(fileURLWithPath: configPath).deletingPathExtension().lastPathComponent + (size == .tiny ? "-tiny" : "")
        let parameters = policy.parameterCount
        var supervisedResult = BenchmarkResult(benchmark: "sft-step", threads: threads, unit: "tokens/s", measurement: Measurement(supervisedSamples))
        supervisedResult.config = label
        supervisedResult.repetitions = repetitions
        supervisedResult.batch = "\(sft.batchSize) examples\(sft.packing ? ", packed" : "")"
        supervisedResult.detail = "the config's SFT batches (\(sft.batchSize) examples\(sft.packing ? " packed into rows" : "")): tokenStatistics → weighted NLL → backward → clip → AdamW; tokens are the examples', padding not counted"
        supervisedResult.parameters = parameters
        supervisedResult.modelGFLOPS = supervisedResult.median * 6 * Double(parameters) / 1e9
        supervisedResult.peakRssMB = peakResidentMegabytes()

        let results = runs.map { run -> BenchmarkResult in
            let samples = run.samples
            var result = BenchmarkResult(benchmark: "rl-step-\(run.name)", threads: threads, unit: "s/step", measurement: Measurement(samples.map(\.seconds)))
            result.config = label
            result.repetitions = repetitions
            let trajectories = Double(samples.map(\.trajectories).reduce(0, +)) / Double(samples.count)
            result.batch = "\(c.rl.promptsPerStep)×\(run.configuration.trajectoriesPerPrompt)"
            result.detail = "\(c.rl.promptsPerStep) prompts × \(run.configuration.trajectoriesPerPrompt) trajectories, ≤\(c.rl.maxResponseTokens) response tokens, \(c.rl.epochs) epoch(s) × \(c.rl.miniBatches) mini-batch(es), micro-batches of \(c.rl.microBatchSize), KL coefficient \(c.rl.loss.klCoefficient); policy: \(description)"
            result.parameters = parameters
            func median(_ value: (StepSample) -> Double) -> Double { Measurement(samples.map(value)).median }
            result.phaseSeconds = [
                "rollout": median(\.rolloutSeconds),
                "reference": median(\.cost.frozenSeconds),
                "advantages": median(\.cost.advantageSeconds),
                "forward_backward": median(\.cost.forwardBackwardSeconds),
                "optimizer": median(\.cost.optimizerSeconds),
            ]
            let updateRates = samples.map { Double($0.cost.tokens) / $0.cost.seconds }
            result.updateTokensPerSecond = Measurement(updateRates).median
            result.updateTokensPerStep = Double(samples.map(\.cost.tokens).reduce(0, +)) / Double(samples.count)
            let padded = Double(samples.map(\.cost.paddedTokens).reduce(0, +))
            let tokens = Double(samples.map(\.cost.tokens).reduce(0, +))
            let shared = Double(samples.map(\.cost.sharedTokens).reduce(0, +))
            result.paddingFraction = padded > 0 ? 1 - (tokens - shared) / padded : 0
            result.sharedPrefixFraction = tokens > 0 ? shared / tokens : 0
            result.trajectoriesPerRepetition = trajectories
            result.responseTokensPerTrajectory = Double(samples.map(\.responseTokens).reduce(0, +)) / Double(Swift.max(samples.map(\.trajectories).reduce(0, +), 1))
            result.toolCallsPerTrajectory = Double(samples.map(\.toolCalls).reduce(0, +)) / Double(Swift.max(samples.map(\.trajectories).reduce(0, +), 1))
            result.supervisedTokensPerSecond = supervisedResult.median
            result.peakRssMB = peakResidentMegabytes()
            return result
        }
        return results + [supervisedResult]
    }
}
