import ARPO
import Distributed
import Foundation
import Policy
import RunRecords
import Tensor
import ToolEnv

/// A failure that stops a run (not a configuration error): non-finite updates, I/O.
public struct TrainingError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// How a run ended.
public enum RunOutcome: Equatable {
    case completed
    /// Stopped by SIGINT/SIGTERM after saving a checkpoint.
    case interrupted(signal: Int32)
}

/// The whole job: cold-start SFT, freezing the reference policy, the RL loop with periodic
/// held-out evaluation, checkpoints, metrics and the final report.
public final class TrainingRun {
    public let configuration: TrainingConfiguration
    public let directory: RunDirectory
    let console: Console
    /// The codec of the run's tokenizer, set when the run starts or resumes.
    var codec = ProtocolCodec()
    /// Faults and an early stop injected from outside the configuration (tests, partial runs).
    let hooks: RunHooks
    /// Where episodes come from (generated, or the user's files and tool servers), open while
    /// the run runs.
    var source: EpisodeSource
    /// The ranks of a data-parallel job (`mpirun`, docs/distributed.md); rank 0 alone writes
    /// the run directory. One process by default.
    public let communicator: Communicator

    public init(configuration: TrainingConfiguration, output: URL, console: Console, hooks: RunHooks = RunHooks(), communicator: Communicator = SingleProcessCommunicator()) {
        self.communicator = communicator
        self.configuration = configuration
        directory = RunDirectory(output, writer: hooks.writer)
        self.console = console
        self.hooks = hooks
        source = EpisodeSource(generated: configuration.env)
    }

    /// The weights of `sft.init_from`. The architecture must match the configured one except for
    /// the value head: a cold start shared by GRPO, ARPO and PPO runs has none, so a run that
    /// wants one keeps `fresh`'s newly initialised head, and one that does not drops it.
    func initialModel(from directory: URL, fresh: LlamaModel) throws -> LlamaModel {
        do {
            try CheckpointManifest.verifyIfPresent(modelDirectory: directory)
            let loaded = try ModelCheckpoint.load(from: directory)
            var found = loaded.configuration
            found.valueHead = configuration.model.valueHead
            guard found == configuration.model else {
                _ = try ModelCheckpoint.load(from: directory, expected: configuration.model)
                throw TrainingError("\(directory.path) does not match the configured model")
            }
            var parameters = Dictionary(uniqueKeysWithValues: loaded.namedParameters.map { ($0.name, $0.tensor) })
            parameters[LlamaModel.valueHeadWeightKey] = fresh.valueHeadWeight
            parameters[LlamaModel.valueHeadBiasKey] = fresh.valueHeadBias
            return try LlamaModel(configuration: configuration.model, parameters: parameters)
        } catch {
            throw TrainingError("sft.init_from: \(error)")
        }
    }

    var sftSteps: Int { configuration.sft.steps }
    var globalStepAfterSFT: Int { sftSteps }

    func makeSupervisedOptimizer(_ model: LlamaModel) -> AdamW {
        AdamW(named: model.namedParameters, hyperparameters: .init(beta1: configuration.sft.adamBetas[0], beta2: configuration.sft.adamBetas[1], weightDecay: configuration.sft.weightDecay), noDecay: AdamW.defaultNoDecay(model.namedParameters.map(\.name)))
    }

    func makeReinforcementOptimizer(_ model: LlamaModel) -> AdamW {
        AdamW(named: model.namedParameters, hyperparameters: .init(beta1: configuration.rl.adamBetas[0], beta2: configuration.rl.adamBetas[1], weightDecay: configuration.rl.weightDecay), noDecay: AdamW.defaultNoDecay(model.namedParameters.map(\.name)))
    }

    /// What a session of the run works on: the policy, its optimizer, where the run is, and the
    /// open logs. The phases below share it instead of capturing locals of one long function.
    final class Session {
        var model: LlamaModel
        var optimizer: AdamW
        var state: RunState
        /// The memory bank of best trajectories, when either of `rl.memory_bank`'s coefficients is above 0.
        var memoryBank: MemoryBank?
        /// The logs, open on rank 0 alone (nil on the other ranks, which write nothing).
        let metrics: JSONLinesLog?
        let evaluations: JSONLinesLog?
        let stop: StopSignal
        /// When this session started (monotonic clock), and the wall time of earlier sessions.
        let started: Double
        let elapsedBefore: Double

        init(
            model: LlamaModel, optimizer: AdamW, state: RunState, memoryBank: MemoryBank?, metrics: JSONLinesLog?, evaluations: JSONLinesLog?, stop: StopSignal,
            started: Double
        ) {
            self.model = model
            self.optimizer = optimizer
            self.state = state
            self.memoryBank = memoryBank
            self.metrics = metrics
            self.evaluations = evaluations
            self.stop = stop
            self.started = started
            elapsedBefore = state.elapsedSeconds
        }

        /// Wall seconds of the whole run, over every session.
        func elapsed() -> Double { elapsedBefore + monotonicSeconds() - started }
    }

    /// Runs (or resumes) the job: resume or start, the supervised phase, the reinforcement phase,
    /// the summary. Checks `stop` between steps.
    public func run(resume: Bool, stop: StopSignal) throws -> RunOutcome {
        configuration.run.computeSettings.apply()
        console.plainProgressInterval = configuration.run.logEverySeconds
        let started = monotonicSeconds()
        // The user's files are read and their servers started before anything is written.
        source = try EpisodeSource.open(environment: configuration.env)
        defer {
            reportToolServers()
            source.close()
        }
        announceUserFiles()
        try checkDistributable()
        if communicator.size > 1 {
            console.line("Data parallel on \(communicator.size) MPI ranks, \(configuration.run.threads) threads each; rank 0 writes \(directory.url.path)")
        }
        let (model, optimizer, state, memoryBank) = try resume ? resumeFromCheckpoint() : start()
        // Checked before the run directory is written, so a prompt that does not fit leaves no trace.
        try source.checkPromptLengths(codec: codec, maxPositions: configuration.model.maxPositions, minimumResponse: configuration.rl.maxResponseTokens)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let isRoot = communicator.isRoot
        if isRoot { try directory.writeFile(try encoder.encode(configuration), to: directory.configURL) }
        let session = Session(
            model: model, optimizer: optimizer, state: state, memoryBank: memoryBank, metrics: isRoot ? try JSONLinesLog(url: directory.metricsURL) : nil,
            evaluations: isRoot ? try JSONLinesLog(url: directory.evaluationURL) : nil, stop: stop, started: started)

        if session.state.phase == .sft {
            if let outcome = try supervisedPhase(session) { return outcome }
            try freezeReference(session)
        }
        if session.state.phase == .rl {
            if let outcome = try reinforcementPhase(session) { return outcome }
            try summarize(session)
        }
        return .completed
    }

    // MARK: Resume or start

    /// How the MCP servers did in this session: calls, failures by kind, restarts.
    func reportToolServers() {
        guard let servers = source.servers else { return }
        let failures = servers.failureCounts.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.value) \($0.key.rawValue)" }
        console.line("Tool servers: \(servers.calls) calls, \(failures.isEmpty ? "no failures" : failures.joined(separator: ", ")), \(servers.restarts) restarts")
    }

    /// Says which of the user's files the run reads, and what the generated families still
    /// supply.
    func announceUserFiles() {
        let env = configuration.env
        guard let train = env.tasks.train else { return }
        console.line("Tasks: \(source.trainTasks?.count ?? 0) from \(train) for RL" + (env.tasks.eval.map { ", \(source.evalTasks?.count ?? 0) from \($0) for evaluation" } ?? ""))
        if env.tasks.eval == nil {
            console.warning("env.tasks.eval is not set: held-out evaluation plays the generated task families, not your tasks")
        }
        if env.demonstrations == nil && configuration.sft.steps == 0 && configuration.sft.initFrom == nil {
            console.warning("no env.demonstrations and no cold start (sft.steps 0, no sft.init_from): RL from random weights will not find the call syntax, so the policy is unlikely to call a tool or answer in the protocol")
        }
    }

    /// Loads the latest checkpoint that verifies and drops the log records written after it,
    /// which are redone. When `latest`'s checkpoint fails verification (a corrupt or truncated
    /// file, non-finite weights, a missing manifest), says so and falls back to the newest older
    /// one that verifies; when none does, throws naming each and why. With the memory bank on,
    /// it is the checkpoint's (empty when the checkpoint holds none).
    func resumeFromCheckpoint() throws -> (LlamaModel, AdamW, RunState, MemoryBank?) {
        communicator.isRoot ? try resumeOnRoot() : try resumeOnOtherRank()
    }

    /// A run resumes on as many ranks as it trained on: which examples and prompts each rank
    /// computes, and so the order of every float sum, depends on the number.
    func checkWorldSize(_ state: RunState) throws {
        let trained = state.worldSize ?? 1
        guard trained != communicator.size else { return }
        throw WorldSizeMismatch(description: "--resume: \(directory.url.path) was trained on \(trained) process\(trained == 1 ? "" : "es") (world_size in its checkpoint's state.json) and this job has \(communicator.size); which examples and prompts each step trains on depends on the number of ranks, so resume it with \(trained == 1 ? "a plain arpo-train" : "mpirun -np \(trained)")")
    }

    /// A resume on another number of ranks than the run's; not a reason to try an older checkpoint.
    struct WorldSizeMismatch: Error, CustomStringConvertible {
        let description: String
    }

    /// On a rank other than 0: loads the checkpoint rank 0 chose (the output directory is on a
    /// filesystem every rank sees), after rank 0 has put back what a failed save set aside. No
    /// memory bank: it runs on one process only (``checkDistributable()``).
    func resumeOnOtherRank() throws -> (LlamaModel, AdamW, RunState, MemoryBank?) {
        let c = configuration
        let name = communicator.broadcast("")
        guard !name.isEmpty else { throw TrainingError("--resume: rank 0 found no checkpoint to resume from") }
        let checkpoint = directory.checkpointsURL.appendingPathComponent(name)
        let (model, optimizer, state) = try RunDirectory.loadCheckpoint(checkpoint, configuration: c.model) { phase, model in
            phase == .sft ? self.makeSupervisedOptimizer(model) : self.makeReinforcementOptimizer(model)
        }
        try checkWorldSize(state)
        codec = ProtocolCodec(tokenizer: try ModelCheckpoint.loadTokenizer(from: checkpoint.appendingPathComponent("model"), vocabularySize: c.model.vocabularySize))
        return (model, optimizer, state, nil)
    }

    /// On rank 0: ``resumeFromCheckpoint()``'s choice of checkpoint, which it tells the other
    /// ranks (an empty name when there is none).
    func resumeOnRoot() throws -> (LlamaModel, AdamW, RunState, MemoryBank?) {
        do {
            let resumed = try resumeOnRootAlone()
            _ = communicator.broadcast(resumed.checkpoint)
            return (resumed.model, resumed.optimizer, resumed.state, resumed.memoryBank)
        } catch {
            _ = communicator.broadcast("")
            throw error
        }
    }

    func resumeOnRootAlone() throws -> (model: LlamaModel, optimizer: AdamW, state: RunState, memoryBank: MemoryBank?, checkpoint: String) {
        let c = configuration
        for restored in try directory.restoreSetAsideDirectories() {
            console.warning("\(restored.path) was found set aside by a save that did not finish; it is back in place")
        }
        let (candidates, latestProblem) = directory.resumeCandidates()
        guard !candidates.isEmpty else {
            throw TrainingError("--resume: \(directory.checkpointsURL.path) holds no checkpoint to resume from")
        }
        var failures: [String] = latestProblem.map { [$0] } ?? []
        for checkpoint in candidates {
            do {
                let (model, optimizer, state) = try RunDirectory.loadCheckpoint(checkpoint, configuration: c.model) { phase, model in
                    phase == .sft ? self.makeSupervisedOptimizer(model) : self.makeReinforcementOptimizer(model)
                }
                // Refused before anything in the directory changes.
                try checkWorldSize(state)
                let tokenizer = try ModelCheckpoint.loadTokenizer(from: checkpoint.appendingPathComponent("model"), vocabularySize: c.model.vocabularySize)
                let bankSettings = c.rl.memoryBank
                let saved = bankSettings.isEnabled ? try RunDirectory.loadMemoryBank(checkpoint, capacity: bankSettings.capacity) : nil
                if bankSettings.isEnabled && saved == nil && state.rlStep > 0 {
                    console.warning("\(checkpoint.lastPathComponent) holds no memory bank (the run kept none when it was saved); the bank starts empty")
                }
                let memoryBank = bankSettings.isEnabled ? saved ?? MemoryBank(capacity: bankSettings.capacity) : nil
                if !failures.isEmpty {
                    console.warning("the latest checkpoint does not verify, so the run resumes from \(checkpoint.lastPathComponent), the newest that does:\n  " + failures.joined(separator: "\n  "))
                }
                directory.setAsideCheckpoints(after: checkpoint.lastPathComponent)
                codec = ProtocolCodec(tokenizer: tokenizer)
                let resumedStep = globalStep(state)
                try JSONLinesLog.truncate(directory.metricsURL, throughStep: resumedStep)
                try JSONLinesLog.truncate(directory.evaluationURL, throughStep: resumedStep)
                console.line("Resuming \(directory.url.path) from \(checkpoint.lastPathComponent) (\(state.phase.rawValue), step \(resumedStep))")
                return (model, optimizer, state, memoryBank, checkpoint.lastPathComponent)
            } catch let mismatch as WorldSizeMismatch {
                throw mismatch
            } catch {
                failures.append("\(checkpoint.lastPathComponent): \(error)")
            }
        }
        throw TrainingError("--resume: no checkpoint in \(directory.checkpointsURL.path) verifies:\n  " + failures.joined(separator: "\n  "))
    }

    /// A new run: random weights (or `sft.init_from`'s) and the tokenizer, in a directory that
    /// must not already hold a run.
    func start() throws -> (LlamaModel, AdamW, RunState, MemoryBank?) {
        let c = configuration
        let fileManager = FileManager.default
        // `latest` alone counts too: it can name a checkpoint a crash left set aside.
        let latestFile = fileManager.fileExists(atPath: directory.latestURL.path) ? directory.latestURL : nil
        if communicator.isRoot, let existing = (try? directory.latestCheckpoint()) ?? directory.checkpointDirectories().first ?? latestFile {
            throw TrainingError("\(directory.url.path) already holds a run (\(existing.lastPathComponent)); pass --resume to continue it or --output to start elsewhere")
        }
        var generator = RandomGenerator(seed: c.run.seed)
        var model = LlamaModel(configuration: c.model, generator: &generator)
        let tokenizerStart = monotonicSeconds()
        if let initial = c.sft.initFrom {
            // Loaded before anything is written, so a bad directory leaves no trace. The
            // weights' own tokenizer comes with them.
            model = try initialModel(from: URL(fileURLWithPath: initial), fresh: model)
            do {
                codec = ProtocolCodec(tokenizer: try ModelCheckpoint.loadTokenizer(from: URL(fileURLWithPath: initial), vocabularySize: c.model.vocabularySize))
            } catch { throw TrainingError("sft.init_from: \(error)") }
        } else {
            codec = ProtocolCodec(tokenizer: try c.tokenizer.makeTokenizer(environment: c.env, seed: c.run.seed, userTexts: source.tokenizerTexts))
            if c.tokenizer.kind == .bpe {
                let texts = source.tokenizerTexts == nil ? "\(c.tokenizer.trainingEpisodes) train episodes" : "the texts of \(c.env.tasks.train ?? "") and \(c.env.demonstrations ?? "no demonstrations")"
                console.line(String(format: "Tokenizer: byte-level BPE, %d merges learned from %@ in %.1fs", c.tokenizer.merges, texts, monotonicSeconds() - tokenizerStart))
            }
        }
        if communicator.isRoot {
            try fileManager.createDirectory(at: directory.url, withIntermediateDirectories: true)
            for url in [directory.metricsURL, directory.evaluationURL] { try? fileManager.removeItem(at: url) }
        }
        if let initial = c.sft.initFrom { console.line("Starting from the weights in \(initial)") }
        let state = RunState(phase: .sft, sftStep: 0, rlStep: 0, generator: generator, consecutiveNonfinite: 0, referencePolicy: nil, accuracyAfterSFT: nil, toolCallsExecuted: 0, elapsedSeconds: 0, worldSize: communicator.size)
        let memoryBank = c.rl.memoryBank.isEnabled ? MemoryBank(capacity: c.rl.memoryBank.capacity) : nil
        return (model, makeSupervisedOptimizer(model), state, memoryBank)
    }

    // MARK: Between steps

    /// Saves a checkpoint, after fsyncing the logs so that their records up to it are on disk
    /// with it. A failed write (a full disk, a permission) stops the run, naming the path and the
    /// error; the previous checkpoint and `latest` are left as they were.
    func checkpoint(_ session: Session) throws {
        session.state.elapsedSeconds = session.elapsed()
        session.state.worldSize = communicator.size
        guard communicator.isRoot, let metrics = session.metrics, let evaluations = session.evaluations else { return }
        let name = RunDirectory.checkpointName(globalStep(session.state))
        do {
            try metrics.synchronize(with: directory.writer)
            try evaluations.synchronize(with: directory.writer)
            try directory.saveCheckpoint(
                model: session.model, tokenizer: codec.tokenizer, callFormat: configuration.env.callFormat, optimizer: session.optimizer, state: session.state,
                memoryBank: session.memoryBank, globalStep: globalStep(session.state), keep: configuration.run.keepCheckpoints)
        } catch {
            let previous: String
            do {
                previous = try directory.latestCheckpoint().map {
                    "checkpoints/latest still names \($0.lastPathComponent), which is intact; free space or fix the permission, then continue with --resume"
                } ?? "the run has no earlier checkpoint"
            } catch let latestProblem {
                // Both renames of a re-save failed: the old checkpoint is only under its set-aside name.
                previous = "\(latestProblem); --resume puts back the checkpoint the failed save set aside"
            }
            throw TrainingError("checkpoint \(name) not saved: \(error). " + previous)
        }
    }

    /// On SIGINT or SIGTERM, a checkpoint and the outcome that ends the run; otherwise nil.
    func stopIfRequested(_ session: Session) throws -> RunOutcome? {
        if let limit = hooks.stopAfterGlobalStep, globalStep(session.state) >= limit { session.stop.request() }
        guard let signal = agreedSignal(session.stop) else { return nil }
        try checkpoint(session)
        // The other ranks exit once rank 0's checkpoint is in place.
        communicator.barrier()
        console.line("Received \(signal == SIGTERM ? "SIGTERM" : "SIGINT"): saved checkpoint \(RunDirectory.checkpointName(globalStep(session.state))); continue with --resume")
        return .interrupted(signal: signal)
    }

    /// Counts a skipped update; too many in a row stop the run rather than train on garbage.
    func noteNonfinite(_ session: Session, _ phase: RunState.Phase, _ step: Int) throws {
        session.state.consecutiveNonfinite += 1
        console.warning("\(phase.rawValue) step \(step): non-finite loss or gradient, update skipped (\(session.state.consecutiveNonfinite) in a row)")
        if session.state.consecutiveNonfinite >= configuration.run.maxConsecutiveNonfinite {
            throw TrainingError("stopped: \(session.state.consecutiveNonfinite) consecutive updates had a non-finite loss or gradient (last at \(phase.rawValue) step \(step)); the last good checkpoint is in \(directory.checkpointsURL.path). Lower the learning rate or max_gradient_norm and resume.")
        }
    }

    // MARK: Supervised phase

    /// The supervised cold start, from `session.state.sftStep` to `sft.steps`. Returns an outcome
    /// when a stop was requested.
    func supervisedPhase(_ session: Session) throws -> RunOutcome? {
        let c = configuration
        if sftSteps == 0 {
            // A reused cold start (`sft.init_from`) or none: no demonstrations to generate.
            console.line("SFT: 0 steps (\(session.model.parameterCount) parameters\(c.sft.initFrom.map { " from \($0)" } ?? ", random weights"))")
            return nil
        }
        let trainer = SupervisedTrainer(
            model: session.model, optimizer: session.optimizer, configuration: c.sft, environment: c.env, seed: c.run.seed, maxResponseTokens: c.rl.maxResponseTokens,
            codec: codec, userDemonstrations: source.demonstrations)
        trainer.communicator = communicator
        try reportLeftOutDemonstrations(trainer)
        let demonstrations = c.sft.freshDemonstrations
            ? "\(c.sft.batchSize) fresh expert demonstrations each"
            : "\(trainer.examples.count) \(c.env.demonstrations.map { "demonstrations from \($0)" } ?? "expert demonstrations")"
        console.line("SFT: \(sftSteps) steps on \(demonstrations) (\(session.model.parameterCount) parameters, vocabulary \(c.model.vocabularySize))")
        let phaseStart = monotonicSeconds(), firstStep = session.state.sftStep
        while session.state.sftStep < sftSteps {
            if let outcome = try stopIfRequested(session) { return outcome }
            let stepStart = monotonicSeconds()
            trainer.hooks = hooks.updateHooks(.sft, step: session.state.sftStep + 1)
            let result = trainer.step(session.state.sftStep)
            session.state.sftStep += 1
            if result.skipped { try noteNonfinite(session, .sft, session.state.sftStep) } else { session.state.consecutiveNonfinite = 0 }
            let seconds = monotonicSeconds() - stepStart
            var record = StepMetrics(phase: "sft", step: globalStep(session.state))
            record.phaseStep = session.state.sftStep
            record.loss = finiteOrNil(result.loss)
            record.policyLoss = finiteOrNil(result.policyLoss)
            record.gradientNorm = finiteOrNil(result.gradientNorm)
            record.learningRate = result.learningRate
            record.tokens = result.tokens
            record.tokensPerSecond = Double(result.tokens) / seconds
            record.seconds = seconds
            record.skipped = result.skipped
            try session.metrics?.append(record)
            let rate = (monotonicSeconds() - phaseStart) / Double(session.state.sftStep - firstStep)
            console.progress(
                String(format: "[sft] step %d/%d  loss %.4f  %.0f tok/s  ETA %@", session.state.sftStep, sftSteps, result.loss, Double(result.tokens) / seconds, formatDuration(rate * Double(sftSteps - session.state.sftStep))),
                always: session.state.sftStep == firstStep + 1 || session.state.sftStep == sftSteps)
            if session.state.sftStep % c.run.checkpointEvery == 0 && session.state.sftStep < sftSteps { try checkpoint(session) }
        }
        return nil
    }

    /// Says which demonstrations do not fit the response or context limits; throws when none fits.
    func reportLeftOutDemonstrations(_ trainer: SupervisedTrainer) throws {
        let c = configuration
        if trainer.tooLongUserDemonstrations > 0, let file = c.env.demonstrations {
            console.warning("left out \(trainer.tooLongUserDemonstrations) of the demonstrations in \(file): longer than rl.max_response_tokens (\(c.rl.maxResponseTokens)) or the context (model.max_position_embeddings \(c.model.maxPositions))")
        }
        if !trainer.tooLong.isEmpty {
            let counts = trainer.tooLong.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.value) \($0.key.rawValue)" }.joined(separator: ", ")
            let limits = "rl.max_response_tokens (\(c.rl.maxResponseTokens)) or the context (model.max_position_embeddings \(c.model.maxPositions))"
            let dropped = trainer.tooLong.values.reduce(0, +)
            // A few long fault-retry demonstrations are expected; a family that mostly
            // does not fit is a configuration problem.
            if dropped * 20 < dropped + trainer.examples.count {
                console.line("Left out \(counts) demonstrations longer than \(limits)")
            } else {
                console.warning("left out \(counts) demonstrations longer than \(limits); the policy cannot finish such episodes either — raise those limits or lower env.limits.max_observation_characters / env.search.top_k")
            }
        }
        if trainer.examples.isEmpty {
            if let file = c.env.demonstrations {
                throw TrainingError("no demonstration in \(file) fits rl.max_response_tokens (\(c.rl.maxResponseTokens)) and model.max_position_embeddings (\(c.model.maxPositions)); raise them")
            }
            throw TrainingError("no expert demonstration fits rl.max_response_tokens (\(c.rl.maxResponseTokens)) and model.max_position_embeddings (\(c.model.maxPositions)); raise them or lower env.limits.max_observation_characters")
        }
    }

    /// Evaluates the cold-started policy, freezes it as the KL reference and moves to RL with a
    /// fresh optimizer.
    func freezeReference(_ session: Session) throws {
        let evaluation = evaluate(session.model)
        session.state.accuracyAfterSFT = evaluation.accuracy
        try session.evaluations?.append(HeldOutEvaluation(evaluation, step: globalStep(session.state), phase: "sft", toolCallsExecutedTotal: 0))
        console.line(String(format: "After SFT: held-out accuracy %.3f, format errors %.3f, %.2f tool calls per episode", evaluation.accuracy, evaluation.formatErrorRate, evaluation.toolCallsPerEpisode))
        if communicator.isRoot {
            do { try directory.saveReference(model: session.model, tokenizer: codec.tokenizer, callFormat: configuration.env.callFormat) } catch {
                throw TrainingError("the reference policy not saved: \(error)")
            }
        }
        // The other ranks load the reference rank 0 wrote.
        communicator.barrier()
        session.state.referencePolicy = directory.referenceURL.lastPathComponent
        session.state.phase = .rl
        session.optimizer = makeReinforcementOptimizer(session.model)
        try checkpoint(session)
    }

    // MARK: Reinforcement phase

    /// RL from `session.state.rlStep` to `rl.steps`, with periodic held-out evaluation. Returns an
    /// outcome when a stop was requested.
    func reinforcementPhase(_ session: Session) throws -> RunOutcome? {
        let c = configuration
        guard let referenceName = session.state.referencePolicy else { throw TrainingError("checkpoint is in the RL phase but names no reference policy") }
        let reference = try directory.loadReference(referenceName, configuration: c.model)
        let learner = ReinforcementLearner(
            model: session.model, reference: reference, optimizer: session.optimizer, configuration: c.rl.update, algorithm: c.rl.algorithm.update)
        learner.communicator = communicator
        var rollout = c.rl.rollout
        // Trees show each fork opportunity's decision, so the engine keeps them when trees are written.
        if c.rl.treesEvery > 0, case .branching(var branching) = rollout.strategy {
            branching.decisionLog = true
            rollout.strategy = .branching(branching)
        }
        let engine = RolloutEngine(policy: session.model, codec: codec, configuration: rollout)
        // rl.branching.decision_log: one line per fork opportunity; on resume, lines past the checkpoint are redone.
        let decisionsURL = directory.url.appendingPathComponent("fork_decisions.jsonl")
        let isRoot = communicator.isRoot
        if c.rl.branching.decisionLog && isRoot { try JSONLinesLog.truncate(decisionsURL, throughStep: globalStep(session.state)) }
        let forkDecisions = c.rl.branching.decisionLog && isRoot ? try JSONLinesLog(url: decisionsURL) : nil
        // rl.trees_every: the rollout trees of every k-th step, one line per prompt group, redone past the checkpoint on resume.
        let treesURL = directory.url.appendingPathComponent("trees.jsonl")
        if c.rl.treesEvery > 0 && isRoot { try JSONLinesLog.truncate(treesURL, throughStep: globalStep(session.state)) }
        let trees = c.rl.treesEvery > 0 && isRoot ? try JSONLinesLog(url: treesURL) : nil
        let schedule = LearningRateSchedule(peak: c.rl.learningRate, warmupSteps: c.rl.warmupSteps, totalSteps: c.rl.steps, decay: c.rl.schedule)
        console.line("RL (\(c.rl.algorithm.rawValue)): \(c.rl.steps) steps × \(c.rl.promptsPerStep) prompts × \(c.rl.trajectoriesPerPrompt) trajectories")
        if let bank = session.memoryBank {
            console.line("Memory bank: the best \(bank.capacity) trajectories per task family, \(c.rl.memoryBank.rowsPerStep) replayed per step with weight \(c.rl.memoryBank.coefficient)")
        }
        if c.rl.dpoSteps > 0 { console.line("DPO stage: the first \(c.rl.dpoSteps) steps train on the preference pairs at fork points alone (β \(c.rl.loss.dpoBeta))") }
        let phaseStart = monotonicSeconds(), firstStep = session.state.rlStep
        while session.state.rlStep < c.rl.steps {
            if let outcome = try stopIfRequested(session) { return outcome }
            let step = session.state.rlStep
            let rolloutStart = monotonicSeconds()
            // This rank's prompts of the step (all of them on one process), each group whole.
            let prompts = share(of: c.rl.promptsPerStep)
            let episodes = prompts.map { index -> LabelledEpisode in
                source.trainingEpisode(seed: Seed.derive(c.run.seed, .prompts, step * c.rl.promptsPerStep + index))
            }
            let localBatch = engine.run(episodes: episodes, seed: Seed.derive(c.run.seed, .rollout, step), firstGroup: prompts.lowerBound)
            // The step's whole batch, for its records (on one process, the batch itself).
            let batch = communicator.size == 1 ? localBatch
                : RolloutBatch.merged(communicator.allGather(RankRollout(records: localBatch.records, scores: localBatch.scores, statistics: localBatch.statistics)))
            let rolloutSeconds = monotonicSeconds() - rolloutStart
            let updateStart = monotonicSeconds()
            let learningRate = schedule.rate(at: step)
            learner.hooks = hooks.updateHooks(.rl, step: step + 1)
            // rl.dpo_steps: the DPO stage trains on the batch's preference pairs alone.
            let preferenceOnly = step < c.rl.dpoSteps
            // rl.memory_bank: the bank as it stood before this step's rollout is replayed, so a
            // trajectory is not trained on twice in the step that sampled it.
            let replay = c.rl.memoryBank.coefficient == 0 ? [] : session.memoryBank.map { bank in
                bank.replay(step: step, count: c.rl.memoryBank.rowsPerStep).enumerated().map { $0.element.trajectoryRecord(group: $0.offset) }
            } ?? []
            // The task family of each of this rank's groups: of the whole batch's, since the bank runs on one process only.
            let families = episodes.map(\.familyName)
            let contrast = c.rl.memoryBank.contrastiveCoefficient > 0 ? session.memoryBank.map { bank in
                bank.contrastivePairs(in: batch, families: families, admits: c.rl.memoryBank.admits).enumerated().map { index, pair in
                    ContrastivePair(chosen: pair.chosen.trajectoryRecord(group: index), rejected: batch.records[pair.rejected])
                }
            } ?? [] : []
            let update = preferenceOnly
                ? learner.preferenceUpdate(localBatch, learningRate: learningRate, seed: Seed.derive(c.run.seed, .updateShuffle, step))
                : learner.update(localBatch, learningRate: learningRate, seed: Seed.derive(c.run.seed, .updateShuffle, step), replay: replay, contrast: contrast)
            let updateSeconds = monotonicSeconds() - updateStart
            session.state.rlStep += 1
            let admitted = session.memoryBank?.admit(
                MemoryBank.candidates(in: batch, families: families, step: session.state.rlStep, admits: c.rl.memoryBank.admits))
            session.state.toolCallsExecuted += batch.statistics.toolCallsExecuted
            if update.skippedUpdates > 0 && update.appliedUpdates == 0 { try noteNonfinite(session, .rl, session.state.rlStep) } else { session.state.consecutiveNonfinite = 0 }
            var record = reinforcementRecord(
                session.state, batch: batch, update: update, learningRate: learningRate, rolloutSeconds: rolloutSeconds, updateSeconds: updateSeconds)
            if let bank = session.memoryBank {
                record.memoryBankSize = bank.count
                record.memoryBankAdmitted = admitted
                // Each term's fields stay null while its coefficient is 0.
                if c.rl.memoryBank.coefficient > 0 {
                    record.memoryBankReplayedRows = update.replayedRows ?? 0
                    record.memoryBankReplayLoss = finiteOrNil(update.replayLoss)
                }
                if c.rl.memoryBank.contrastiveCoefficient > 0 {
                    record.memoryBankContrastivePairs = update.contrastivePairs ?? 0
                    record.memoryBankContrastiveLoss = finiteOrNil(update.contrastiveLoss)
                }
            }
            try session.metrics?.append(record)
            for decision in batch.statistics.forkDecisions { try forkDecisions?.append(ForkDecisionLine(step: globalStep(session.state), decision: decision)) }
            if let trees, session.state.rlStep % c.rl.treesEvery == 0 {
                // The advantages the update trained on; PPO's come from the value head during the update, so its trees have none.
                let advantages = c.rl.algorithm == .ppo ? nil : c.rl.advantage.groupAdvantages(for: batch.records)
                for tree in RolloutTree.trees(of: batch, step: globalStep(session.state), codec: codec, advantages: advantages) { try trees.append(tree) }
            }
            var evaluated: Double?
            if c.eval.every > 0 && session.state.rlStep % c.eval.every == 0 && session.state.rlStep < c.rl.steps {
                let evaluation = evaluate(session.model)
                evaluated = evaluation.accuracy
                try session.evaluations?.append(HeldOutEvaluation(evaluation, step: globalStep(session.state), phase: "rl", toolCallsExecutedTotal: session.state.toolCallsExecuted))
            }
            let rate = (monotonicSeconds() - phaseStart) / Double(session.state.rlStep - firstStep)
            console.progress(String(format: "[%@] step %d/%d  reward %.3f  acc %.3f%@  %.0f tok/s  ETA %@", preferenceOnly ? "dpo" : "rl", session.state.rlStep, c.rl.steps, record.rewardMean ?? .nan, record.accuracy ?? .nan,
                                    evaluated.map { String(format: "  held-out %.3f", $0) } ?? "", record.tokensPerSecond ?? .nan, formatDuration(rate * Double(c.rl.steps - session.state.rlStep))),
                             always: evaluated != nil || session.state.rlStep == firstStep + 1 || session.state.rlStep == c.rl.steps)
            if session.state.rlStep % c.run.checkpointEvery == 0 && session.state.rlStep < c.rl.steps { try checkpoint(session) }
        }
        return nil
    }

    /// The metrics.jsonl record of one RL step.
    func reinforcementRecord(
        _ state: RunState, batch: RolloutBatch, update: UpdateMetrics, learningRate: Double, rolloutSeconds: Double, updateSeconds: Double
    ) -> StepMetrics {
        let statistics = batch.statistics
        let rewards = batch.scores.map(\.reward)
        let rewardMean = rewards.reduce(0, +) / Double(max(rewards.count, 1))
        let responseLengths = batch.records.map { Double($0.responseTokens.count) }
        var record = StepMetrics(phase: "rl", step: globalStep(state))
        record.phaseStep = state.rlStep
        record.algorithm = configuration.rl.algorithm.rawValue
        record.rewardMean = rewardMean
        record.rewardStd = (rewards.reduce(0) { $0 + ($1 - rewardMean) * ($1 - rewardMean) } / Double(max(rewards.count, 1))).squareRoot()
        record.accuracy = Double(batch.scores.filter(\.isCorrect).count) / Double(max(batch.scores.count, 1))
        record.learningRate = learningRate
        record.trajectories = batch.records.count
        record.toolCallsExecuted = statistics.toolCallsExecuted
        record.toolCallsExecutedTotal = state.toolCallsExecuted
        record.toolCallsPerTrajectory = Double(statistics.toolCallsExecuted) / Double(max(batch.records.count, 1))
        record.toolCallsWritten = statistics.toolCallsWritten
        record.tokensGenerated = statistics.tokensGenerated
        record.forks = statistics.forks
        record.forksDeclinedByRule = statistics.forksDeclinedByRule
        record.forksBlockedByBudget = statistics.forksBlockedByBudget
        record.toolCallsPerAnsweredEpisode = mean(batch.scores.compactMap { $0.breakdown?.endReason == .answered ? Double($0.breakdown!.executedToolCalls) : nil })
        record.responseLengthMean = responseLengths.reduce(0, +) / Double(max(responseLengths.count, 1))
        record.entropyAfterToolResults = mean(statistics.entropiesAfterToolResults)
        record.initialEntropy = mean(statistics.initialEntropies)
        func entropies(after k: Int) -> [Double] { k <= statistics.entropiesAfterToolResult.count ? statistics.entropiesAfterToolResult[k - 1] : [] }
        func forks(after k: Int) -> Int { k <= statistics.forksAfterToolResult.count ? statistics.forksAfterToolResult[k - 1] : 0 }
        record.entropyAfterToolResult1 = mean(entropies(after: 1))
        record.entropyAfterToolResult2 = mean(entropies(after: 2))
        record.entropyAfterToolResult3 = mean(entropies(after: 3))
        record.forksAfterToolResult1 = forks(after: 1)
        record.forksAfterToolResult2 = forks(after: 2)
        record.forksAfterToolResult3 = forks(after: 3)
        record.entropyDeltaAtForks = mean(statistics.entropyDeltasAtForks)
        record.entropyDeltaElsewhere = mean(statistics.entropyDeltasElsewhere)
        record.rolloutSeconds = rolloutSeconds
        record.updateSeconds = updateSeconds
        record.environmentSeconds = statistics.environmentSeconds
        record.rolloutTokensPerSecond = Double(statistics.tokensGenerated) / rolloutSeconds
        record.tokensPerSecond = Double(statistics.tokensGenerated) / (rolloutSeconds + updateSeconds)
        record.loss = finiteOrNil(update.loss.loss)
        record.policyLoss = finiteOrNil(update.loss.policyLoss)
        record.valueLoss = finiteOrNil(update.loss.valueLoss)
        record.clipFractionLow = finiteOrNil(update.loss.clipFractionLow)
        record.clipFractionHigh = finiteOrNil(update.loss.clipFractionHigh)
        record.approximateKL = finiteOrNil(update.loss.approximateKL)
        record.referenceKL = finiteOrNil(update.loss.referenceKL)
        record.entropy = finiteOrNil(update.loss.entropy)
        record.gradientNorm = finiteOrNil(update.gradientNorm)
        record.explainedVariance = finiteOrNil(update.explainedVariance)
        record.appliedUpdates = update.appliedUpdates
        record.skippedUpdates = update.skippedUpdates
        record.trainedTokens = update.loss.tokenCount
        record.meanAbsoluteAdvantage = finiteOrNil(update.meanAbsoluteAdvantage)
        record.rolloutLogProbabilityDriftMean = finiteOrNil(update.rolloutLogProbabilityDriftMean)
        record.rolloutLogProbabilityDriftMax = finiteOrNil(update.rolloutLogProbabilityDriftMax)
        record.dpoPairs = update.preferencePairs
        record.dpoLoss = finiteOrNil(update.preferenceLoss)
        return record
    }

    // MARK: Summary

    /// The final held-out evaluation, the last checkpoint and summary.json.
    func summarize(_ session: Session) throws {
        let c = configuration
        let state = session.state
        let final = evaluate(session.model)
        try session.evaluations?.append(HeldOutEvaluation(final, step: globalStep(state), phase: "rl", toolCallsExecutedTotal: state.toolCallsExecuted, isFinal: true))
        session.state.phase = .done
        try checkpoint(session)
        guard communicator.isRoot else { return }
        var summary = RunSummary()
        summary.accuracyAfterSFT = state.accuracyAfterSFT
        summary.accuracyAfterRL = final.accuracy
        summary.accuracyByFamilyAfterRL = final.accuracyByFamily
        summary.formatErrorRateAfterRL = final.formatErrorRate
        summary.toolCallsPerEpisodeAfterRL = final.toolCallsPerEpisode
        summary.toolCallsExecuted = state.toolCallsExecuted
        summary.algorithm = c.rl.algorithm.rawValue
        summary.sftSteps = sftSteps
        summary.rlSteps = c.rl.steps
        summary.wallSeconds = session.elapsed()
        summary.parameters = session.model.parameterCount
        summary.seed = c.run.seed
        summary.worldSize = communicator.size
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do { try directory.writeFile(try encoder.encode(summary), to: directory.summaryURL) } catch {
            throw TrainingError("summary.json not saved: \(error)")
        }
        console.summary(String(format: "Held-out accuracy: %.3f after SFT → %.3f after RL (%d tool calls executed in RL, %@)", state.accuracyAfterSFT ?? .nan, final.accuracy, state.toolCallsExecuted, formatDuration(session.elapsed())))
        console.line("Outputs in \(directory.url.path): config.json, metrics.jsonl, eval.jsonl, summary.json, checkpoints/")
    }

    func globalStep(_ state: RunState) -> Int { state.sftStep + state.rlStep }

    /// The held-out evaluation; on several ranks each plays a consecutive slice of the episodes
    /// and the outcomes, gathered in rank order, are summarised as one process's would be.
    func evaluate(_ model: LlamaModel) -> EvaluationResult {
        let episodes = source.evaluationEpisodes(split: .eval, count: configuration.eval.episodes)
        guard communicator.size > 1 else {
            return Evaluator.evaluate(
                model: model, episodes: episodes, maxResponseTokens: configuration.rl.maxResponseTokens, sampleCount: configuration.eval.sampleTrajectories, codec: codec)
        }
        let slice = share(of: episodes.count)
        let outcomes = Evaluator.play(model: model, episodes: Array(episodes[slice]), maxResponseTokens: configuration.rl.maxResponseTokens, codec: codec, firstEpisode: slice.lowerBound)
        return Evaluator.summarize(communicator.allGather(outcomes).flatMap { $0 }, of: episodes, sampleCount: configuration.eval.sampleTrajectories, codec: codec)
    }
}

/// The mean, or nil (null in the record) when nothing was measured.
func mean(_ values: [Double]) -> Double? {
    values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
}

/// Nil (null in the record) for NaN and ±infinity, which JSON cannot hold.
func finiteOrNil(_ value: Double?) -> Double? { value.flatMap { $0.isFinite ? $0 : nil } }
