import ARPO
import Foundation
import Policy
import Tensor
import ToolEnv
import Trainer

/// The RL memory soak (`--rl-soak-steps N`): a long run of whole RL steps of a run config's
/// algorithm (configs/multiturn.json by default: its model, prompts × group size, branching and
/// response limit), each a rollout batch then `ReinforcementLearner.update`, as `arpo-train`
/// takes them. Unlike the train step's memory check, every step has a different shape (response
/// lengths, branch points, packed rows), which is what exercises `StoragePool`'s eviction and the
/// rollout's caches; a leak of even a small tensor per step shows as resident memory growing with
/// the steps.
enum RLMemoryBenchmark {
    /// The step whose resident size is the baseline: by then the pool and OpenBLAS's buffers
    /// have seen a spread of shapes.
    static let earlyStep = 10

    /// Resident samples taken after the early step: the last step's, and about this many between.
    static let samplesBetween = 20

    /// Growth in MiB per 100 steps: the least-squares slope of resident size against step over
    /// the samples, times 100. A slope rather than last − first, because one RL step's batch can
    /// be longer than any before it and raise the resident size once without a leak; a leak
    /// raises every later sample.
    static func growthPer100Steps(_ samples: [ResidentSample]) -> Double {
        guard samples.count >= 2 else { return 0 }
        let count = Double(samples.count)
        let meanStep = samples.reduce(0) { $0 + Double($1.step) } / count
        let meanSize = samples.reduce(0) { $0 + $1.megabytes } / count
        var covariance = 0.0, variance = 0.0
        for sample in samples {
            covariance += (Double(sample.step) - meanStep) * (sample.megabytes - meanSize)
            variance += (Double(sample.step) - meanStep) * (Double(sample.step) - meanStep)
        }
        return variance > 0 ? covariance / variance * 100 : 0
    }

    static func measure(configPath: String, size: ReferenceSize, threads: Int, steps: Int, checkpoint: String?, coldStartSteps: Int?) throws -> [BenchmarkResult] {
        precondition(steps > earlyStep, "the soak needs more than \(earlyStep) steps")
        let c = try RLStepBenchmark.configuration(path: configPath, size: size)
        let (policy, codec, description) = try RLStepBenchmark.policy(c, checkpoint: checkpoint, coldStartSteps: coldStartSteps ?? RLStepBenchmark.defaultColdStartSteps(size))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("arpo-bench-rl-memory-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try ModelCheckpoint.save(policy, to: directory, tokenizer: codec.tokenizer)
        let learner = ReinforcementLearner(
            model: policy, reference: try RLStepBenchmark.copy(of: policy, in: directory),
            optimizer: RLStepBenchmark.optimizer(policy, weightDecay: c.rl.weightDecay), configuration: c.rl.update, algorithm: c.rl.algorithm.update)
        let engine = RolloutEngine(policy: policy, codec: codec, configuration: c.rl.rollout)

        let interval = Swift.max(1, (steps - earlyStep) / samplesBetween)
        var samples: [ResidentSample] = []
        var (trajectories, responseTokens, appliedUpdates, skippedUpdates) = (0, 0, 0, 0)
        let start = Timer.now()
        for step in 0..<steps {
            let prompts = (0..<c.rl.promptsPerStep).map { prompt in
                Episode.sample(split: .train, seed: Seed.derive(c.run.seed, .prompts, step * c.rl.promptsPerStep + prompt), config: c.env)
            }
            let batch = engine.run(episodes: prompts, seed: Seed.derive(c.run.seed, .rollout, step))
            let update = learner.update(batch, learningRate: c.rl.learningRate, seed: Seed.derive(c.run.seed, .updateShuffle, step))
            trajectories += batch.records.count
            responseTokens += batch.records.reduce(0) { $0 + $1.responseTokens.count }
            appliedUpdates += update.appliedUpdates
            skippedUpdates += update.skippedUpdates
            let done = step + 1
            if done >= earlyStep && ((done - earlyStep) % interval == 0 || done == steps) {
                samples.append(ResidentSample(step: done, megabytes: residentMegabytes()))
                print(String(format: "    [rl-memory] step %d/%d: VmRSS %.1f MB (%.1f s/step so far)", done, steps, samples.last!.megabytes, (Timer.now() - start) / Double(done)))
            }
        }
        let seconds = Timer.now() - start
        guard appliedUpdates > 0 else { throw BenchmarkError("rl-memory: every update was skipped for a non-finite loss or gradient") }

        var result = BenchmarkResult(benchmark: "rl-memory", threads: threads, unit: "MB", measurement: Measurement(samples.map(\.megabytes)))
        result.config = URL(fileURLWithPath: configPath).deletingPathExtension().lastPathComponent + (size == .tiny ? "-tiny" : "")
        result.batch = "\(c.rl.promptsPerStep)×\(c.rl.trajectoriesPerPrompt)"
        let perStep = String(format: "%.1f s/step, %.0f response tokens per trajectory", seconds / Double(steps), Double(responseTokens) / Double(Swift.max(trajectories, 1)))
        result.detail = "\(steps) \(c.rl.algorithm.rawValue) steps of \(c.rl.promptsPerStep) prompts × \(c.rl.trajectoriesPerPrompt) trajectories, ≤\(c.rl.maxResponseTokens) response tokens (\(perStep), \(skippedUpdates) updates skipped); VmRSS after step \(earlyStep), every \(interval) steps and at the end; policy: \(description)"
        result.parameters = policy.parameterCount
        result.steps = steps
        result.rssAfterStep10MB = samples.first?.megabytes
        result.rssAfterLastStepMB = samples.last?.megabytes
        result.residentSamples = samples
        result.rssGrowthPer100StepsMB = growthPer100Steps(samples)
        result.peakRssMB = peakResidentMegabytes()
        return [result]
    }
}

/// Resident memory (VmRSS, MiB) after a step of the RL memory soak.
struct ResidentSample: Codable, Equatable {
    let step: Int
    let megabytes: Double

    enum CodingKeys: String, CodingKey {
        case step
        case megabytes = "mb"
    }
}

extension PerformanceTargets {
    /// The RL memory soak's growth allowed, in MiB per 100 RL steps (the slope of its samples):
    /// a leak of 40 KB per step crosses it (one 256-token row of the multi-turn policy's logits
    /// is 1.3 MB), while one batch longer than any before it moves the slope far less.
    static let rlMemoryGrowthPer100Steps = 4.0
}
