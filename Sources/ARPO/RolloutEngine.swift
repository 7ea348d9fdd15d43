import Foundation
import Policy
import Tensor
import ToolEnv

/// What a rollout batch produced: one record per trajectory, its score, and the engine's
/// statistics.
public struct RolloutBatch {
    public var records: [TrajectoryRecord]
    public var scores: [EpisodeScore]
    public var statistics: RolloutStatistics
}

/// Counters of one rollout batch (the metrics ARPO's efficiency claim rests on).
public struct RolloutStatistics: Codable, Equatable, Sendable {
    /// Tool calls the environment executed. A forked branch shares its prefix's calls, which ran
    /// once, so this counts executions, not calls written in text.
    public var toolCallsExecuted = 0
    /// Tokens sampled from the policy (observation tokens and shared prefixes not counted).
    public var tokensGenerated = 0
    /// Tokens prefilled: prompts and observations.
    public var tokensPrefilled = 0
    /// Fork events (each adds up to Z − 1 trajectories).
    public var forks = 0
    /// Fork opportunities the rule declined, and those where the rule said fork but the group
    /// already held its budget: the two causes that `entropyDeltasElsewhere` mixes.
    public var forksDeclinedByRule = 0
    public var forksBlockedByBudget = 0
    /// Trajectories added by forks.
    public var forkedTrajectories = 0
    /// Root trajectories started to top a group up to the budget.
    public var topUpTrajectories = 0
    /// Batched policy calls (`extend`), and the sequences they advanced in all: rows per call is
    /// what a decoding step's cost is spread over.
    public var policyCalls = 0
    public var policyRows = 0
    /// Normalised ΔH where a fork was taken, and where one was considered but not taken.
    public var entropyDeltasAtForks: [Double] = []
    public var entropyDeltasElsewhere: [Double] = []
    /// Normalised step entropy just after tool results, and over the first window after the prompt.
    public var entropiesAfterToolResults: [Double] = []
    public var initialEntropies: [Double] = []
    /// One record per fork opportunity, kept only with `rl.branching.decision_log`.
    public var forkDecisions: [ForkDecision] = []
    /// Trajectories in the batch.
    public var trajectories = 0
    /// Wall seconds spent inside the environment (tool calls and scoring), the share of a rollout
    /// that running tools concurrently with decoding could hide.
    public var environmentSeconds = 0.0

    public init() {}
}

/// Runs batches of episodes with a policy in no-grad mode, with batched KV-cache decoding.
///
/// Every live sequence of every prompt advances in one `extend` call per step. When a sequence
/// writes `</call>`, the text since its last observation goes to the environment, and the
/// observation comes back as `<obs>` … `</obs>` in the next step's prefill (loss mask 0). A
/// sequence ends at `<|end|>`, at `maxResponseTokens` or when the environment says the call limit
/// is reached.
///
/// Tool calls run inline between decoding steps: the simulated tools answer in microseconds,
/// far less than one decoding step, so a thread hand-off would cost more than it hides.
///
/// With `.branching`, this is ARPO's entropy-based adaptive rollout (docs/algorithms.md §3): each
/// trajectory's initial step entropy is measured over its first k tokens; k tokens after each
/// tool result the step entropy is measured again, ΔH = H − H_init, and the fork rule decides
/// whether Z − 1 copies continue from the position right after that result. A copy takes the
/// parent's KV cache prefix and a fork of its episode, so neither the prefix nor its tool calls
/// are computed twice. Forking stops at the budget M; a group that finishes short of M is
/// topped up with fresh samples, which may fork in turn. Unlike the released code, the initial
/// entropy is kept per trajectory and the decision uses the window after the newest result.
public final class RolloutEngine {
    public let policy: RolloutPolicy
    public let codec: ProtocolCodec
    public let configuration: RolloutConfiguration
    let sampler: Sampler

    public init(policy: RolloutPolicy, codec: ProtocolCodec = ProtocolCodec(), configuration: RolloutConfiguration) {
        precondition(configuration.maxResponseTokens >= 1, "max response tokens must be positive")
        self.policy = policy
        self.codec = codec
        self.configuration = configuration
        sampler = Sampler(configuration.sampling)
    }

    /// A snapshot taken right after a tool result, from which ARPO forks.
    struct ForkPoint {
        let stateLength: Int
        let responseCount: Int
        let episode: ToolEpisode
        /// Tool results received up to this point (the decision's turn).
        let turn: Int
        /// Logits after the result's last token: a fork samples its first token from these.
        let logits: [Double]
        /// Policy tokens written after the result so far (the entropy window).
        var windowEntropies: [Double] = []
    }

    /// One trajectory being generated.
    final class Sequence {
        let index: Int
        let group: Int
        let state: DecodingState
        let episode: ToolEpisode
        var generator: RandomGenerator
        let promptTokens: [Int]
        var tokens: [Int] = [], logProbabilities: [Double] = [], entropies: [Double] = [], lossMask: [Bool] = []
        /// Tokens to feed to the policy next (prompt, observation, or the last sampled token).
        var pendingInput: [Int] = []
        /// Logits to sample from without a policy call (a fresh fork's first step).
        var pendingLogits: [Double]?
        /// Where the policy's current segment (since the last observation) starts.
        var segmentStart = 0
        var initialWindow: [Double] = []
        var initialEntropy: Double?
        var forkPoint: ForkPoint?
        /// Set when the next logits follow a tool result: the fork point is completed with them.
        var awaitingForkLogits: (stateLength: Int, responseCount: Int, episode: ToolEpisode)?
        /// Tool results received so far, the inherited ones included.
        var toolResults = 0
        let parent: Int?
        let forkPosition: Int
        var finished = false
        var score: EpisodeScore?

        init(index: Int, group: Int, state: DecodingState, episode: ToolEpisode, generator: RandomGenerator, promptTokens: [Int], parent: Int?, forkPosition: Int) {
            self.index = index
            self.group = group
            self.state = state
            self.episode = episode
            self.generator = generator
            self.promptTokens = promptTokens
            self.parent = parent
            self.forkPosition = forkPosition
        }
    }

    /// Runs one group per episode template (the template itself is never played; each
    /// trajectory plays a fork of it). `seed` fixes every random draw.
    public func run(episodes templates: [ToolEpisode], seed: UInt64) -> RolloutBatch {
        withoutGradients { runRecordingNothing(templates, seed: seed) }
    }

    private func runRecordingNothing(_ templates: [ToolEpisode], seed: UInt64) -> RolloutBatch {
        var statistics = RolloutStatistics()
        var sequences: [Sequence] = []
        var groupGenerators = (0..<templates.count).map { RandomGenerator(seed: seed &+ UInt64($0) &* 0x9E37_79B9_7F4A_7C15) }
        let prompts = templates.map { codec.promptTokens($0.prompt) }
        let budget = configuration.trajectoriesPerPrompt
        let branching: BranchingConfiguration? = {
            if case .branching(let settings) = configuration.strategy { return settings }
            return nil
        }()
        let vocabularyLog = Foundation.log(Double(policy.vocabularySize))

        func capacity(_ group: Int) -> Int { Swift.min(policy.maxPositions, prompts[group].count + configuration.maxResponseTokens) }
        func startRoot(group: Int) {
            precondition(prompts[group].count < policy.maxPositions, "prompt of \(prompts[group].count) tokens does not fit max_position_embeddings \(policy.maxPositions)")
            let sequence = Sequence(
                index: sequences.count, group: group, state: policy.newState(capacity: capacity(group)),
                episode: templates[group].forkEpisode(trajectory: sequences.count),
                generator: groupGenerators[group].split(), promptTokens: prompts[group], parent: nil, forkPosition: 0)
            sequence.pendingInput = prompts[group]
            statistics.tokensPrefilled += prompts[group].count
            sequences.append(sequence)
        }
        var groupCounts = [Int](repeating: 0, count: templates.count)
        var groupRoots = [Int](repeating: 0, count: templates.count)
        for group in templates.indices {
            let initial = branching?.initialSamples ?? budget
            for _ in 0..<initial { startRoot(group: group) }
            groupCounts[group] = initial
            groupRoots[group] = initial
        }

        /// The normalised step entropy of a window of token entropies.
        func stepEntropy(_ window: [Double]) -> Double {
            guard !window.isEmpty else { return 0 }
            let total = window.reduce(0, +)
            switch branching?.entropyNormalization ?? .meanOverLogVocabulary {
            case .meanOverLogVocabulary: return total / Double(window.count) / vocabularyLog
            case .sumOverLogVocabulary: return total / vocabularyLog
            case .mean: return total / Double(window.count)
            }
        }

        /// Decides whether to fork at `sequence`'s pending fork point, and forks.
        func decideFork(_ sequence: Sequence) {
            guard let settings = branching, let point = sequence.forkPoint else { return }
            sequence.forkPoint = nil
            let after = stepEntropy(point.windowEntropies)
            statistics.entropiesAfterToolResults.append(after)
            let initial = sequence.initialEntropy ?? stepEntropy(sequence.initialWindow)
            let delta = after - initial
            let decision = settings.decide(entropyDelta: delta, vocabularySize: policy.vocabularySize, generator: &sequence.generator)
            let room = budget - groupCounts[sequence.group]
            let outcome: ForkOutcome = !decision.fork ? .declinedByRule : room > 0 ? .forked : .blockedByBudget
            if settings.decisionLog {
                statistics.forkDecisions.append(ForkDecision(
                    group: sequence.group, trajectory: sequence.index, turn: point.turn, initialEntropy: initial, entropy: after,
                    entropyDelta: delta, ruleEntropyDelta: delta * settings.ruleScale(vocabularySize: policy.vocabularySize),
                    score: decision.score, draw: decision.draw, outcome: outcome))
            }
            guard outcome == .forked else {
                if outcome == .declinedByRule { statistics.forksDeclinedByRule += 1 } else { statistics.forksBlockedByBudget += 1 }
                statistics.entropyDeltasElsewhere.append(delta)
                return
            }
            statistics.entropyDeltasAtForks.append(delta)
            statistics.forks += 1
            let copies = Swift.min(settings.branchFactor - 1, room)
            for _ in 0..<copies {
                let child = Sequence(
                    index: sequences.count, group: sequence.group, state: sequence.state.fork(length: point.stateLength),
                    episode: point.episode.forkEpisode(trajectory: sequences.count), generator: sequence.generator.split(), promptTokens: sequence.promptTokens,
                    parent: sequence.index, forkPosition: point.responseCount)
                child.tokens = Array(sequence.tokens[0..<point.responseCount])
                child.logProbabilities = Array(sequence.logProbabilities[0..<point.responseCount])
                child.entropies = Array(sequence.entropies[0..<point.responseCount])
                child.lossMask = Array(sequence.lossMask[0..<point.responseCount])
                child.segmentStart = point.responseCount
                child.initialEntropy = initial
                child.initialWindow = sequence.initialWindow
                child.pendingLogits = point.logits
                child.toolResults = point.turn
                sequences.append(child)
            }
            groupCounts[sequence.group] += copies
            statistics.forkedTrajectories += copies
        }

        func finish(_ sequence: Sequence, _ reason: EndReason) {
            if sequence.forkPoint != nil { decideFork(sequence) }
            sequence.finished = true
            let scoreStart = DispatchTime.now().uptimeNanoseconds
            sequence.score = sequence.episode.finish(policyText: codec.text(sequence.tokens[...]), endReason: reason)
            statistics.environmentSeconds += Double(DispatchTime.now().uptimeNanoseconds - scoreStart) * 1e-9
        }

        /// Acts on a sampled token: end, tool call, limit, or continue.
        func step(_ sequence: Sequence, sampled token: Int) {
            let used = sequence.promptTokens.count + sequence.tokens.count
            let roomLeft = configuration.maxResponseTokens - sequence.tokens.count
            let capacityLeft = Swift.min(policy.maxPositions, sequence.promptTokens.count + configuration.maxResponseTokens) - used
            if token == codec.endID {
                finish(sequence, .answered)
                return
            }
            if token == codec.callCloseID {
                if case .branching = configuration.strategy {
                    // A first segment shorter than k tokens: the initial entropy is over what there is.
                    if sequence.initialEntropy == nil {
                        sequence.initialEntropy = stepEntropy(sequence.initialWindow)
                        statistics.initialEntropies.append(sequence.initialEntropy!)
                    }
                    // A new call closed inside the window after the previous result: decide on what
                    // was measured, before this call's result arrives.
                    if sequence.forkPoint != nil { decideFork(sequence) }
                }
                let toolStart = DispatchTime.now().uptimeNanoseconds
                let reply = sequence.episode.respond(toPolicyText: codec.text(sequence.tokens[sequence.segmentStart...]))
                statistics.environmentSeconds += Double(DispatchTime.now().uptimeNanoseconds - toolStart) * 1e-9
                if reply.wasExecuted { statistics.toolCallsExecuted += 1 }
                if reply.mustEnd {
                    finish(sequence, .callLimit)
                    return
                }
                let observation = codec.observationTokens(reply.observation)
                // The observation must fit with room for at least one more policy token.
                guard observation.count < roomLeft, observation.count < capacityLeft else {
                    finish(sequence, .tokenLimit)
                    return
                }
                statistics.tokensPrefilled += observation.count
                sequence.tokens += observation
                sequence.logProbabilities += [Double](repeating: 0, count: observation.count)
                sequence.entropies += [Double](repeating: 0, count: observation.count)
                sequence.lossMask += [Bool](repeating: false, count: observation.count)
                sequence.pendingInput = [token] + observation
                sequence.segmentStart = sequence.tokens.count
                sequence.toolResults += 1
                if case .branching = configuration.strategy {
                    // The state will hold prompt + everything up to the observation's end after the
                    // next extend; the fork point is completed with the logits that call returns.
                    sequence.awaitingForkLogits = (sequence.promptTokens.count + sequence.tokens.count, sequence.tokens.count, sequence.episode.forkEpisode())
                }
                return
            }
            if roomLeft <= 0 || capacityLeft <= 0 {
                finish(sequence, .tokenLimit)
                return
            }
            sequence.pendingInput = [token]
        }

        while true {
            // Top up a group that finished short of the budget as soon as none of its sequences is
            // live (so no fork can still fill it); the fresh samples may fork. Waiting for every
            // group instead left the last steps of each round decoding a handful of sequences,
            // at nearly the cost per step of a full batch.
            //
            // The top-up starts as many roots as the group's yield so far (trajectories per root)
            // says will fill the budget: all the missing ones where nothing forked, half where
            // every root forked once. Each round runs a whole episode length with only these
            // sequences, so a round that cannot fill the budget costs almost a full batch's steps;
            // a fixed half left groups that rarely fork three or four rounds deep.
            var live = sequences.filter { !$0.finished }
            let liveGroups = Set(live.map(\.group))
            let firstNew = sequences.count
            for group in templates.indices where groupCounts[group] < budget && !liveGroups.contains(group) {
                let missing = budget - groupCounts[group]
                let count = branching == nil ? missing : (missing * groupRoots[group] + groupCounts[group] - 1) / groupCounts[group]
                for _ in 0..<count { startRoot(group: group) }
                groupCounts[group] += count
                groupRoots[group] += count
                statistics.topUpTrajectories += count
            }
            live += sequences[firstNew...]
            if live.isEmpty { break }
            // One batched policy call for every sequence with input; fresh forks reuse logits.
            let feeding = live.filter { $0.pendingLogits == nil }
            var logitRows: [Int: [Double]] = [:]
            if !feeding.isEmpty {
                let logits = policy.extend(feeding.map(\.state), with: feeding.map(\.pendingInput))
                statistics.policyCalls += 1
                statistics.policyRows += feeding.count
                let values = logits.doubles
                let width = policy.vocabularySize
                for (row, sequence) in feeding.enumerated() {
                    logitRows[sequence.index] = Array(values[(row * width)..<((row + 1) * width)])
                }
            }
            for sequence in live {
                let logits = sequence.pendingLogits ?? logitRows[sequence.index]!
                sequence.pendingLogits = nil
                if let pending = sequence.awaitingForkLogits {
                    sequence.forkPoint = ForkPoint(
                        stateLength: pending.stateLength, responseCount: pending.responseCount, episode: pending.episode, turn: sequence.toolResults, logits: logits)
                    sequence.awaitingForkLogits = nil
                }
                let sampled = sampler.sample(row: logits[...], generator: &sequence.generator)
                statistics.tokensGenerated += 1
                sequence.tokens.append(sampled.token)
                sequence.logProbabilities.append(sampled.logProbability)
                sequence.entropies.append(sampled.entropy)
                sequence.lossMask.append(true)
                if let settings = branching {
                    if sequence.initialEntropy == nil {
                        sequence.initialWindow.append(sampled.entropy)
                        if sequence.initialWindow.count >= settings.entropyWindow {
                            sequence.initialEntropy = stepEntropy(sequence.initialWindow)
                            statistics.initialEntropies.append(sequence.initialEntropy!)
                        }
                    }
                    if sequence.forkPoint != nil {
                        sequence.forkPoint!.windowEntropies.append(sampled.entropy)
                        if sequence.forkPoint!.windowEntropies.count >= settings.entropyWindow { decideFork(sequence) }
                    }
                }
                step(sequence, sampled: sampled.token)
            }
        }

        // Rewards that depend on the whole group (OTC-PO's tool efficiency against the group's
        // fewest calls) are settled now that every trajectory of the group has finished, and
        // before anything reads a reward.
        var members = [[Int]](repeating: [], count: templates.count)
        for sequence in sequences { members[sequence.group].append(sequence.index) }
        for (group, indices) in members.enumerated() {
            let scores = templates[group].scoreGroup(indices.map { sequences[$0].score! })
            precondition(scores.count == indices.count, "scoreGroup must return one score per trajectory")
            for (index, score) in zip(indices, scores) { sequences[index].score = score }
        }

        let records = sequences.map { sequence in
            TrajectoryRecord(
                promptTokens: sequence.promptTokens, responseTokens: sequence.tokens, oldLogProbabilities: sequence.logProbabilities,
                entropies: sequence.entropies, lossMask: sequence.lossMask, reward: sequence.score!.reward, groupIndex: sequence.group,
                parent: sequence.parent, forkPosition: sequence.forkPosition)
        }
        statistics.trajectories = records.count
        return RolloutBatch(records: records, scores: sequences.map { $0.score! }, statistics: statistics)
    }
}
