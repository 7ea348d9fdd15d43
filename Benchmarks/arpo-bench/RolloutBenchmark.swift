import ARPO
import Foundation
import Policy
import Tensor
import ToolEnv

/// Rollouts against the tool environment: trajectory-level sampling against ARPO's branching at
/// the same trajectory budget, through `RolloutEngine`, with a policy that calls tools.
enum RolloutBenchmark {
    /// Cold-starts a `size` policy on expert demonstrations (`SupervisedTrainer`, as the trainer's
    /// SFT phase does) and saves it to `directory`. The rollout benchmark needs a policy that
    /// writes calls; a random one never does.
    static func coldStart(_ size: ReferenceSize, threads: Int, steps: Int, directory: URL) throws -> ColdStartRecord {
        var configuration = size.coldStart
        configuration.steps = steps
        var modelConfiguration = size.model
        modelConfiguration.maxPositions = size.rollout.context
        var generator = RandomGenerator(seed: 0)
        let model = LlamaModel(configuration: modelConfiguration, generator: &generator)
        let optimizer = AdamW(
            named: model.namedParameters, hyperparameters: .init(weightDecay: configuration.weightDecay),
            noDecay: AdamW.defaultNoDecay(model.namedParameters.map(\.name)))
        let start = Timer.now()
        let trainer = SupervisedTrainer(model: model, optimizer: optimizer, configuration: configuration, environment: size.rollout.environment, seed: 0)
        let demonstrationSeconds = Timer.now() - start
        var tokens = 0
        var loss = Double.nan
        for step in 0..<steps {
            let result = trainer.step(step)
            tokens += result.tokens
            loss = result.loss
        }
        let trainingSeconds = Timer.now() - start - demonstrationSeconds
        try ModelCheckpoint.save(model, to: directory)
        return ColdStartRecord(
            config: size.rawValue, threads: threads, steps: steps, batchSize: configuration.batchSize, demonstrations: trainer.examples.count,
            demonstrationSeconds: demonstrationSeconds, trainingSeconds: trainingSeconds,
            tokensPerSecond: trainingSeconds > 0 ? Double(tokens) / trainingSeconds : 0, finalLoss: loss)
    }

    /// One warm-up batch per strategy, then `repetitions` rounds; each round runs both strategies
    /// on the same fresh episodes, in alternating order so that drifting load hits both alike.
    /// Tokens/s counts sampled tokens (`tokensGenerated`); tool calls per trajectory are executed
    /// calls over trajectories, summed over the timed rounds.
    static func measure(
        checkpoint: URL, size: ReferenceSize, threads: Int, repetitions: Int, policyDescription: String
    ) throws -> [BenchmarkResult] {
        let model = try ModelCheckpoint.load(from: checkpoint)
        let workload = size.rollout
        let label = ReferenceSize.matching(model.configuration)?.rawValue ?? "custom"
        let engines = [
            ("rollout-trajectory", RolloutEngine(policy: model, configuration: workload.trajectoryConfiguration)),
            ("rollout-arpo", RolloutEngine(policy: model, configuration: workload.branchingConfiguration)),
        ]
        func episodes(round: Int) -> [ToolEpisode] {
            (0..<workload.promptsPerBatch).map { index in
                Episode.sample(split: .train, seed: UInt64(round * workload.promptsPerBatch + index), config: workload.environment)
            }
        }
        var tokensPerSecond = [[Double]](repeating: [], count: engines.count)
        var tokens = [Int](repeating: 0, count: engines.count)
        var toolCalls = [Int](repeating: 0, count: engines.count)
        var trajectories = [Int](repeating: 0, count: engines.count)
        var policyCalls = [Int](repeating: 0, count: engines.count)
        var policyRows = [Int](repeating: 0, count: engines.count)
        var peaks = [Double](repeating: 0, count: engines.count)
        let canResetPeak = resetPeakResidentMemory()
        for round in 0...repetitions {
            let order = round % 2 == 0 ? Array(engines.indices) : engines.indices.reversed()
            for index in order {
                let templates = episodes(round: round)
                if canResetPeak { resetPeakResidentMemory() }
                let start = Timer.now()
                let batch = engines[index].1.run(episodes: templates, seed: UInt64(round))
                let seconds = Timer.now() - start
                peaks[index] = Swift.max(peaks[index], peakResidentMegabytes())
                guard round > 0 else { continue }  // warm-up
                tokensPerSecond[index].append(Double(batch.statistics.tokensGenerated) / seconds)
                tokens[index] += batch.statistics.tokensGenerated
                toolCalls[index] += batch.statistics.toolCallsExecuted
                trajectories[index] += batch.statistics.trajectories
                policyCalls[index] += batch.statistics.policyCalls
                policyRows[index] += batch.statistics.policyRows
            }
        }
        let parameters = model.parameterCount
        return engines.indices.map { index in
            var result = BenchmarkResult(benchmark: engines[index].0, threads: threads, unit: "tokens/s", measurement: Measurement(tokensPerSecond[index]))
            result.config = label
            result.repetitions = repetitions
            result.batch = "\(workload.promptsPerBatch)×\(workload.groupSize)"
            let strategy = index == 0
                ? "\(workload.groupSize) samples per prompt"
                : "budget \(workload.groupSize), \(workload.initialSamples) initial samples, entropy window \(workload.entropyWindow)"
            result.detail = "\(workload.promptsPerBatch) prompts, \(strategy), ≤\(workload.maxResponseTokens) response tokens; policy: \(policyDescription)"
            result.parameters = parameters
            result.tokensPerRepetition = Double(tokens[index]) / Double(repetitions)
            result.trajectoriesPerRepetition = Double(trajectories[index]) / Double(repetitions)
            result.toolCallsPerTrajectory = Double(toolCalls[index]) / Double(Swift.max(trajectories[index], 1))
            result.policyCallsPerRepetition = Double(policyCalls[index]) / Double(repetitions)
            result.rowsPerPolicyCall = Double(policyRows[index]) / Double(Swift.max(policyCalls[index], 1))
            // 2·params per sampled token; prefilled prompts and observations are not counted.
            result.modelGFLOPS = result.median * 2 * Double(parameters) / 1e9
            result.peakRssMB = canResetPeak ? peaks[index] : peakResidentMegabytes()
            return result
        }
    }
}
