import Foundation
import Policy
import Tensor

/// The policy benchmarks: training forward, train step, memory growth, batched decoding. Each
/// runs the package's own model code on a freshly initialised reference-config policy; token ids
/// are random, which changes nothing in the arithmetic.
enum ModelBenchmarks {
    /// A model of `size` with the seed every benchmark uses.
    static func makeModel(_ size: ReferenceSize) -> LlamaModel {
        var generator = RandomGenerator(seed: 42)
        return LlamaModel(configuration: size.model, generator: &generator)
    }

    /// B × T random tokens, every row full length.
    static func makeBatch(_ size: ReferenceSize) -> TokenBatch {
        var generator = RandomGenerator(seed: 7)
        let (b, t) = (size.batchSize, size.context)
        let tokens = (0..<(b * t)).map { _ in Int(generator.next() % UInt64(size.model.vocabularySize)) }
        return TokenBatch(tokens: tokens, batchSize: b, length: t, lengths: [Int](repeating: t, count: b))
    }

    /// A result with the figures every model benchmark shares.
    static func makeResult(
        _ benchmark: String, _ size: ReferenceSize, threads: Int, tokens: Int, secondsPerCall: [Double], flopsPerToken: Double, parameters: Int, batch: String, detail: String
    ) -> BenchmarkResult {
        var result = BenchmarkResult(benchmark: benchmark, threads: threads, unit: "tokens/s", measurement: Measurement(secondsPerCall.map { Double(tokens) / $0 }))
        result.config = size.rawValue
        result.repetitions = secondsPerCall.count
        result.batch = batch
        result.detail = detail
        result.parameters = parameters
        result.tokensPerRepetition = Double(tokens)
        result.modelGFLOPS = result.median * flopsPerToken / 1e9
        result.peakRssMB = peakResidentMegabytes()
        return result
    }

    // MARK: - Forward

    /// The training forward over B × T tokens without recording gradients (logits included).
    static func forward(_ size: ReferenceSize, threads: Int, repetitions: Int) -> BenchmarkResult {
        let model = makeModel(size)
        let batch = makeBatch(size)
        let seconds = withoutGradients {
            Timer.secondsPerCall(repetitions: repetitions) { _ = model.forward(batch) }
        }
        return makeResult(
            "forward", size, threads: threads, tokens: batch.tokens.count, secondsPerCall: seconds,
            flopsPerToken: 2 * Double(model.parameterCount), parameters: model.parameterCount,
            batch: "\(batch.batchSize)×\(batch.length)", detail: "\(batch.batchSize)×\(batch.length) tokens, no-grad forward to logits")
    }

    // MARK: - Train step

    /// One optimizer step as RL and SFT take it: `tokenStatistics` (forward, log-softmax,
    /// entropies), masked mean NLL, backward, AdamW.
    final class TrainStep {
        let model: LlamaModel
        let optimizer: AdamW
        let batch: TokenBatch
        let maskedCount: Double
        private(set) var lastLoss = Double.nan

        init(_ size: ReferenceSize) {
            model = makeModel(size)
            optimizer = AdamW(named: model.namedParameters, noDecay: AdamW.defaultNoDecay(model.namedParameters.map(\.name)))
            batch = makeBatch(size)
            // tokenStatistics masks every position whose next token is padding.
            maskedCount = Double(batch.lengths.reduce(0) { $0 + Swift.max($1 - 1, 0) })
        }

        func run() {
            let start = Timer.now()
            optimizer.zeroGradients()
            let logProbabilities = model.tokenStatistics(batch).logProbabilities  // (B, T−1)
            let loss = -logProbabilities.sum() / maskedCount
            let forwardEnd = Timer.now()
            loss.backward()
            let backwardEnd = Timer.now()
            optimizer.update(learningRate: 1e-4)
            lastLoss = loss.item
            phases.add(["forward": forwardEnd - start, "backward": backwardEnd - forwardEnd, "optimizer": Timer.now() - backwardEnd])
        }

        var phases = PhaseClock()
    }

    /// The train step, and after it the same step's GEMMs replayed alone as the tensor API makes
    /// them (`GEMMReplay`): the tokens/s the step's GEMMs alone allow is the machine's limit for it.
    /// Last, the replay timed call by call gives the GEMM time by shape (`gemm_shapes`).
    static func train(_ size: ReferenceSize, threads: Int, repetitions: Int) throws -> BenchmarkResult {
        let step = TrainStep(size)
        step.run()
        step.run()
        // Every step allocates the same, so the step's peak is reached by now; read it before the
        // replay's buffers exist.
        let peakRSS = peakResidentMegabytes()
        let replay = GEMMReplay(GEMMRecorder.recording { step.run() }.calls, threads: threads)
        // Measured one after the other: alternating rounds would time each step right after the
        // replay has filled the caches with its own buffers, which cost the step about 5%.
        let seconds = Timer.secondsPerCall(repetitions: repetitions) { step.run() }
        let replaySeconds = Timer.secondsPerCall(repetitions: repetitions) { replay.run() }
        guard step.lastLoss.isFinite else { throw BenchmarkError("train: the loss became \(step.lastLoss)") }
        var result = makeResult(
            "train", size, threads: threads, tokens: step.batch.tokens.count, secondsPerCall: seconds,
            flopsPerToken: 6 * Double(step.model.parameterCount), parameters: step.model.parameterCount,
            batch: "\(step.batch.batchSize)×\(step.batch.length)", detail: "\(step.batch.batchSize)×\(step.batch.length) tokens, tokenStatistics → masked mean NLL → backward → AdamW")
        result.phaseFractions = step.phases.fractions
        result.peakRssMB = peakRSS
        let gemmSeconds = Measurement(replaySeconds)
        result.gemmBoundTokensPerSecond = Double(step.batch.tokens.count) / gemmSeconds.median
        result.gemmShareOfStep = gemmSeconds.median / Measurement(seconds).median
        result.gemmCallsPerStep = replay.calls.count
        result.gemmGFLOPS = replay.flops / gemmSeconds.median / 1e9
        result.gemmShapes = replay.timeByShape(repetitions: repetitions)
        return result
    }

    /// `steps` train steps, sampling the resident size (VmRSS) every few steps from step 10 on:
    /// median, min and max are over those samples; a leak shows as the last sample above the
    /// first.
    static func trainMemory(_ size: ReferenceSize, threads: Int, steps: Int) throws -> BenchmarkResult {
        precondition(steps > 10, "the memory check needs more than 10 steps")
        let step = TrainStep(size)
        let interval = Swift.max(1, steps / 100)
        var samples: [Double] = []
        var afterStep10 = 0.0
        let start = Timer.now()
        for index in 1...steps {
            step.run()
            if index == 10 { afterStep10 = residentMegabytes() }
            if index >= 10 && (index % interval == 0 || index == steps) { samples.append(residentMegabytes()) }
        }
        let seconds = Timer.now() - start
        guard step.lastLoss.isFinite else { throw BenchmarkError("train-memory: the loss became \(step.lastLoss)") }
        var result = BenchmarkResult(benchmark: "train-memory", threads: threads, unit: "MB", measurement: Measurement(samples))
        result.config = size.rawValue
        result.batch = "\(step.batch.batchSize)×\(step.batch.length)"
        result.detail = String(format: "%d train steps (%.0f tokens/s overall), VmRSS every %d steps from step 10", steps, Double(steps * step.batch.tokens.count) / seconds, interval)
        result.parameters = step.model.parameterCount
        result.steps = steps
        result.rssAfterStep10MB = afterStep10
        result.rssAfterLastStepMB = samples.last
        result.peakRssMB = peakResidentMegabytes()
        return result
    }

    // MARK: - Batched decoding

    /// B sequences: prefill a prompt each, then sample `decodeNewTokens` per sequence with the
    /// KV cache, one batched `extend` per token. The time covers cache allocation, prefill and
    /// sampling; only the sampled tokens are counted.
    static func decode(_ size: ReferenceSize, threads: Int, repetitions: Int) -> BenchmarkResult {
        let model = makeModel(size)
        let sampler = Sampler(SamplingParameters())
        var promptGenerator = RandomGenerator(seed: 11)
        let (b, promptLength, newTokens) = (size.batchSize, size.decodePromptTokens, size.decodeNewTokens)
        let prompts = (0..<b).map { _ in (0..<promptLength).map { _ in Int(promptGenerator.next() % UInt64(size.model.vocabularySize)) } }
        var round: UInt64 = 0
        var phases = PhaseClock()
        let seconds = Timer.secondsPerCall(repetitions: repetitions) {
            round += 1
            var generators = (0..<UInt64(b)).map { RandomGenerator(seed: round &* 1000 &+ $0) }
            var (extendSeconds, sampleSeconds) = (0.0, 0.0)
            let start = Timer.now()
            let caches = (0..<b).map { _ in KVCache(model: model, capacity: promptLength + newTokens) }
            var logits = model.extend(caches, with: prompts)  // (B, V)
            let prefillEnd = Timer.now()
            for index in 0..<newTokens {
                let sampleStart = Timer.now()
                let sampled = sampler.sample(logits, generators: &generators)
                let extendStart = Timer.now()
                sampleSeconds += extendStart - sampleStart
                if index + 1 < newTokens { logits = model.extend(caches, with: sampled.map { [$0.token] }) }
                extendSeconds += Timer.now() - extendStart
            }
            phases.add(["prefill": prefillEnd - start, "extend": extendSeconds, "sample": sampleSeconds])
        }
        var result = makeResult(
            "decode", size, threads: threads, tokens: b * newTokens, secondsPerCall: seconds,
            flopsPerToken: 2 * Double(model.parameterCount), parameters: model.parameterCount,
            batch: "\(b)×(\(promptLength)+\(newTokens))", detail: "\(b) sequences, \(promptLength)-token prompt, \(newTokens) sampled tokens each (KV cache, temperature 1)")
        result.phaseFractions = phases.fractions
        return result
    }
}

/// Seconds spent in named phases, summed over calls.
struct PhaseClock {
    private(set) var seconds: [String: Double] = [:]

    mutating func add(_ phases: [String: Double]) {
        for (name, value) in phases { seconds[name, default: 0] += value }
    }

    /// Each phase's share of the total.
    var fractions: [String: Double] {
        let total = seconds.values.reduce(0, +)
        return total > 0 ? seconds.mapValues { $0 / total } : [:]
    }
}

/// A benchmark that could not produce a figure.
struct BenchmarkError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
