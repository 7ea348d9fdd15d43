import Foundation
import Policy
import RunRecords
import Tensor
import ToolEnv

/// What a rollout batch produced: one record per trajectory, its score, and the engine's
/// statistics.
public struct RolloutBatch {
    public var records: [TrajectoryRecord]
    public var scores: [EpisodeScore]
    public var statistics: RolloutStatistics

    public init(records: [TrajectoryRecord], scores: [EpisodeScore], statistics: RolloutStatistics) {
        self.records = records
        self.scores = scores
        self.statistics = statistics
    }
}

/// Counters of one rollout batch (the metrics ARPO's efficiency claim rests on).
public struct RolloutStatistics: Codable, Equatable, Sendable {
    /// Tool calls the environment executed. A forked branch shares its prefix's calls, which ran
    /// once, so this counts executions, not calls written in text.
    public var toolCallsExecuted = 0
    /// Executed tool calls in each trajectory's transcript, summed over the trajectories: a call
    /// a fork inherited counts once in every trajectory that holds it, as if each trajectory had
    /// been sampled on its own. Calls the environment refused (malformed, over the call limit)
    /// are in neither count. Without forks it equals ``toolCallsExecuted``; the difference is
    /// what prefix sharing saved.
    public var toolCallsWritten = 0
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
    /// The same step entropies after tool results, by the result's place in its trajectory: index
    /// k − 1 holds those measured after a k-th result. ARPO's case (its Figure 1) is that entropy
    /// rises after tool feedback; this shows whether it does on our policy, result by result.
    public var entropiesAfterToolResult: [[Double]] = []
    /// Forks taken after a trajectory's k-th tool result, at index k − 1: where branching happens.
    public var forksAfterToolResult: [Int] = []
    /// One record per fork opportunity, kept only with `rl.branching.decision_log`.
    public var forkDecisions: [ForkDecision] = []
    /// Per group, the global samples started from the prompt before any top-up: N with the
    /// fixed rules, the probe plus the m − 1 that AEPO's split chose with `entropy-balanced`.
    /// Empty without branching.
    public var globalSamples: [Int] = []
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
/// Tool calls run between decoding steps, after every sequence of the step has sampled: the
/// simulated tools answer in microseconds, far less than one decoding step, so they run in turn;
/// episodes with slow tools (`ToolEpisode.answersConcurrently`, MCP servers) are asked at once.
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
        /// Tool calls of this transcript the environment executed, the inherited ones included.
        var executedToolCalls = 0
        /// l: forks taken at the tool results right before the next one on this path, the
        /// ancestors' included (`entropy-balanced` penalises them).
        var consecutiveForks = 0
        /// The step entropy measured after each of this trajectory's own tool results: a
        /// probe's H̄_tool.
        var toolStepEntropies: [Double] = []
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
    /// trajectory plays a fork of it). `seed` fixes every random draw. `firstGroup` is the
    /// step-wide index of the first template: a rank of a data-parallel job plays groups
    /// `firstGroup...` of the step, each from the generator the same group has in one process.
    public func run(episodes templates: [ToolEpisode], seed: UInt64, firstGroup: Int = 0) -> RolloutBatch {
        withoutGradients { runRecordingNothing(templates, seed: seed, firstGroup: firstGroup) }
    }

    private func runRecordingNothing(_ templates: [ToolEpisode], seed: UInt64, firstGroup: Int) -> RolloutBatch {
        let rollout = Rollout(engine: self, templates: templates, seed: seed, firstGroup: firstGroup)
        rollout.startInitialSamples()
        while true {
            var live = rollout.sequences.filter { !$0.finished }
            live += rollout.startGlobalSamplesAfterProbes()
            live += rollout.topUp(besides: live)
            if live.isEmpty { break }
            rollout.advance(live)
        }
        return rollout.scoredBatch()
    }
}

/// One rollout batch in progress: every sequence started so far, each group's count against
/// its budget, and the statistics. Its steps are the rollout's: start a root, advance every
/// live sequence by one token, act on the token (end, tool call, limit), decide a fork after a
/// tool result, and top up groups that finished short of the budget.
final class Rollout {
    typealias Sequence = RolloutEngine.Sequence
    let engine: RolloutEngine
    let templates: [ToolEpisode]
    let prompts: [[Int]]
    /// M (or G without branching): trajectories per group.
    let budget: Int
    let branching: BranchingConfiguration?
    let vocabularyLog: Double
    var statistics = RolloutStatistics()
    var sequences: [Sequence] = []
    /// Per group: the generator its roots split from, its trajectories so far, and how many of
    /// them are roots (the rest are forks).
    var groupGenerators: [RandomGenerator]
    var groupCounts: [Int]
    var groupRoots: [Int]
    /// Per group under `entropy-balanced`, the probe whose entropies will split the budget,
    /// until the split is made; nil otherwise.
    var probes: [Int?]
    /// Calls closed in the current decoding step, answered together at its end
    /// (``answerPendingCalls()``).
    var pendingCalls: [PendingCall] = []

    var policy: RolloutPolicy { engine.policy }
    var codec: ProtocolCodec { engine.codec }
    var configuration: RolloutConfiguration { engine.configuration }

    init(engine: RolloutEngine, templates: [ToolEpisode], seed: UInt64, firstGroup: Int = 0) {
        self.engine = engine
        self.templates = templates
        groupGenerators = (0..<templates.count).map { RandomGenerator(seed: Seed.derive(seed, .rolloutGroup, firstGroup + $0)) }
        prompts = templates.map { engine.codec.promptTokens($0.prompt) }
        budget = engine.configuration.trajectoriesPerPrompt
        if case .branching(let settings) = engine.configuration.strategy { branching = settings } else { branching = nil }
        vocabularyLog = Foundation.log(Double(engine.policy.vocabularySize))
        groupCounts = [Int](repeating: 0, count: templates.count)
        groupRoots = [Int](repeating: 0, count: templates.count)
        probes = [Int?](repeating: nil, count: templates.count)
    }

    // MARK: Start a root

    /// A fresh trajectory of `group` from its prompt.
    func startRoot(group: Int) {
        precondition(prompts[group].count < policy.maxPositions, "prompt of \(prompts[group].count) tokens does not fit max_position_embeddings \(policy.maxPositions)")
        let capacity = Swift.min(policy.maxPositions, prompts[group].count + configuration.maxResponseTokens)
        let sequence = Sequence(
            index: sequences.count, group: group, state: policy.newState(capacity: capacity),
            episode: templates[group].forkEpisode(trajectory: sequences.count),
            generator: groupGenerators[group].split(), promptTokens: prompts[group], parent: nil, forkPosition: 0)
        sequence.pendingInput = prompts[group]
        statistics.tokensPrefilled += prompts[group].count
        sequences.append(sequence)
    }

    /// N roots per group with branching (M forks may follow), G without. Under
    /// `entropy-balanced`, one probe root per group, whose entropies decide the group's other
    /// global samples once it finishes (``startGlobalSamplesAfterProbes()``).
    func startInitialSamples() {
        let balanced = branching?.rule == .entropyBalanced
        for group in templates.indices {
            let initial = balanced ? 1 : branching?.initialSamples ?? budget
            if balanced { probes[group] = sequences.count }
            for _ in 0..<initial { startRoot(group: group) }
            groupCounts[group] = initial
            groupRoots[group] = initial
        }
        if branching != nil { statistics.globalSamples = groupCounts }
    }

    // MARK: Split the budget (AEPO's entropy pre-monitoring)

    /// For every group whose probe has finished: m = ``BranchingConfiguration/globalSampleCount(rootEntropy:toolEntropy:vocabularySize:)``
    /// from the probe's H_init and the mean of its step entropies after tool results (H_init
    /// itself when it received none), and m − 1 more roots, as many as the group has room for.
    /// The probe is a trajectory of its group like any other, and may have forked already.
    func startGlobalSamplesAfterProbes() -> ArraySlice<Sequence> {
        let firstNew = sequences.count
        guard let settings = branching else { return sequences[firstNew...] }
        for group in templates.indices {
            guard let probeIndex = probes[group], sequences[probeIndex].finished else { continue }
            probes[group] = nil
            let probe = sequences[probeIndex]
            let rootEntropy = probe.initialEntropy ?? stepEntropy(probe.initialWindow)
            let toolEntropy = probe.toolStepEntropies.isEmpty ? rootEntropy : probe.toolStepEntropies.reduce(0, +) / Double(probe.toolStepEntropies.count)
            let target = settings.globalSampleCount(rootEntropy: rootEntropy, toolEntropy: toolEntropy, vocabularySize: policy.vocabularySize)
            let count = Swift.max(0, Swift.min(target - 1, budget - groupCounts[group]))
            for _ in 0..<count { startRoot(group: group) }
            groupCounts[group] += count
            groupRoots[group] += count
            statistics.globalSamples[group] += count
        }
        return sequences[firstNew...]
    }

    // MARK: Top up

    /// Starts roots for every group short of the budget of which no sequence in `live` is left
    /// (so no fork can still fill it), and returns them; the fresh samples may fork.
    ///
    /// Topping a group up as soon as it has no live sequence, rather than once every group has
    /// finished, keeps the batch full: otherwise the last steps of each round decode a handful of
    /// sequences at nearly the cost per step of a full batch. The top-up starts as many roots as
    /// the group's yield so far (trajectories per root) says will fill the budget: all the
    /// missing ones where nothing forked, half where every root forked once. Each round runs a
    /// whole episode length with only these sequences, so a round that cannot fill the budget
    /// costs almost a full batch's steps; a fixed half leaves groups that rarely fork three or
    /// four rounds deep.
    func topUp(besides live: [Sequence]) -> ArraySlice<Sequence> {
        let liveGroups = Set(live.map(\.group))
        let firstNew = sequences.count
        for group in templates.indices where groupCounts[group] < budget && !liveGroups.contains(group) && probes[group] == nil {
            let missing = budget - groupCounts[group]
            let count = branching == nil ? missing : (missing * groupRoots[group] + groupCounts[group] - 1) / groupCounts[group]
            for _ in 0..<count { startRoot(group: group) }
            groupCounts[group] += count
            groupRoots[group] += count
            statistics.topUpTrajectories += count
        }
        return sequences[firstNew...]
    }

    // MARK: Advance

    /// One decoding step: a single batched policy call for every sequence with input (fresh
    /// forks reuse their parent's logits), then a token sampled and acted on per sequence.
    func advance(_ live: [Sequence]) {
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
                sequence.forkPoint = RolloutEngine.ForkPoint(
                    stateLength: pending.stateLength, responseCount: pending.responseCount, episode: pending.episode, turn: sequence.toolResults, logits: logits)
                sequence.awaitingForkLogits = nil
            }
            let sampled = engine.sampler.sample(row: logits[...], generator: &sequence.generator)
            statistics.tokensGenerated += 1
            sequence.tokens.append(sampled.token)
            sequence.logProbabilities.append(sampled.logProbability)
            sequence.entropies.append(sampled.entropy)
            sequence.lossMask.append(true)
            if let settings = branching { measureEntropy(sequence, sampled.entropy, window: settings.entropyWindow) }
            act(on: sampled.token, of: sequence)
        }
        answerPendingCalls()
    }

    /// Adds a sampled token's entropy to the windows being measured: the initial one, and the
    /// one after the latest tool result, which decides the fork once it holds k tokens.
    func measureEntropy(_ sequence: Sequence, _ entropy: Double, window: Int) {
        if sequence.initialEntropy == nil {
            sequence.initialWindow.append(entropy)
            if sequence.initialWindow.count >= window {
                sequence.initialEntropy = stepEntropy(sequence.initialWindow)
                statistics.initialEntropies.append(sequence.initialEntropy!)
            }
        }
        if sequence.forkPoint != nil {
            sequence.forkPoint!.windowEntropies.append(entropy)
            if sequence.forkPoint!.windowEntropies.count >= window { decideFork(sequence) }
        }
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

    /// Acts on a sampled token: end, tool call, limit, or continue.
    func act(on token: Int, of sequence: Sequence) {
        let used = sequence.promptTokens.count + sequence.tokens.count
        let roomLeft = configuration.maxResponseTokens - sequence.tokens.count
        let capacityLeft = Swift.min(policy.maxPositions, sequence.promptTokens.count + configuration.maxResponseTokens) - used
        if token == codec.endID {
            finish(sequence, .answered)
            return
        }
        if token == codec.callCloseID {
            callTool(sequence, closedBy: token, roomLeft: roomLeft, capacityLeft: capacityLeft)
            return
        }
        if roomLeft <= 0 || capacityLeft <= 0 {
            finish(sequence, .tokenLimit)
            return
        }
        sequence.pendingInput = [token]
    }

    /// Decides a pending fork on what was measured before this call, and queues the segment
    /// since the last observation for the environment (``answerPendingCalls()``).
    func callTool(_ sequence: Sequence, closedBy token: Int, roomLeft: Int, capacityLeft: Int) {
        if branching != nil {
            // A first segment shorter than k tokens: the initial entropy is over what there is.
            if sequence.initialEntropy == nil {
                sequence.initialEntropy = stepEntropy(sequence.initialWindow)
                statistics.initialEntropies.append(sequence.initialEntropy!)
            }
            // A new call closed inside the window after the previous result: decide on what
            // was measured, before this call's result arrives.
            if sequence.forkPoint != nil { decideFork(sequence) }
        }
        pendingCalls.append(PendingCall(sequence: sequence, token: token, roomLeft: roomLeft, capacityLeft: capacityLeft))
    }

    /// A call closed during the current decoding step, answered at the step's end.
    struct PendingCall {
        let sequence: Sequence
        let token: Int
        let roomLeft: Int
        let capacityLeft: Int
    }

    /// Answers the step's calls, then appends each observation. Episodes whose tools are slow
    /// (`ToolEpisode.answersConcurrently`: external tool servers) are asked all at once, each on
    /// its own thread, so one step waits for its slowest call rather than
    /// their sum; the simulated tools answer in microseconds, less than a thread hand-off, and
    /// are asked in turn. Each sequence has its own episode, and its observation is appended in
    /// the order the calls were closed, so the batch is the same either way.
    func answerPendingCalls() {
        guard !pendingCalls.isEmpty else { return }
        let calls = pendingCalls
        pendingCalls = []
        let texts = calls.map { codec.text($0.sequence.tokens[$0.sequence.segmentStart...]) }
        let toolStart = monotonicSeconds()
        var replies: [ToolReply]
        if calls.count > 1 && calls.allSatisfy({ $0.sequence.episode.answersConcurrently }) {
            // Each worker writes its own index, under the lock.
            final class Replies: @unchecked Sendable {
                var values: [ToolReply?]
                init(count: Int) { values = [ToolReply?](repeating: nil, count: count) }
            }
            let collected = Replies(count: calls.count)
            // A thread per call rather than a Dispatch queue: Dispatch runs about as many blocked
            // items at once as there are cores, and these calls mostly wait on a server.
            let lock = NSLock(), group = DispatchGroup()
            for (index, call) in calls.enumerated() {
                let episode = call.sequence.episode, text = texts[index]
                group.enter()
                Thread.detachNewThread {
                    let reply = episode.respond(toPolicyText: text)
                    lock.lock()
                    collected.values[index] = reply
                    lock.unlock()
                    group.leave()
                }
            }
            group.wait()
            replies = collected.values.map { $0! }
        } else {
            replies = zip(calls, texts).map { $0.sequence.episode.respond(toPolicyText: $1) }
        }
        statistics.environmentSeconds += monotonicSeconds() - toolStart
        for (call, reply) in zip(calls, replies) {
            receive(reply, for: call.sequence, closedBy: call.token, roomLeft: call.roomLeft, capacityLeft: call.capacityLeft)
        }
    }

    /// Appends a call's observation (loss mask 0), or ends the sequence when the environment or
    /// the limits say so.
    func receive(_ reply: ToolReply, for sequence: Sequence, closedBy token: Int, roomLeft: Int, capacityLeft: Int) {
        if reply.wasExecuted {
            statistics.toolCallsExecuted += 1
            sequence.executedToolCalls += 1
        }
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
        if branching != nil {
            // The state will hold prompt + everything up to the observation's end after the
            // next extend; the fork point is completed with the logits that call returns.
            sequence.awaitingForkLogits = (sequence.promptTokens.count + sequence.tokens.count, sequence.tokens.count, sequence.episode.forkEpisode())
        }
    }

    /// Ends a sequence (deciding a pending fork first) and scores its episode.
    func finish(_ sequence: Sequence, _ reason: EndReason) {
        if sequence.forkPoint != nil { decideFork(sequence) }
        sequence.finished = true
        let scoreStart = monotonicSeconds()
        sequence.score = sequence.episode.finish(policyText: codec.text(sequence.tokens[...]), endReason: reason)
        statistics.environmentSeconds += monotonicSeconds() - scoreStart
    }

    // MARK: Decide a fork

    /// Decides whether to fork at `sequence`'s pending fork point, and forks: Z − 1 copies (as
    /// many as the budget has room for) continue from right after the tool result, sharing the
    /// parent's KV cache prefix and a fork of its episode.
    func decideFork(_ sequence: Sequence) {
        guard let settings = branching, let point = sequence.forkPoint else { return }
        sequence.forkPoint = nil
        let after = stepEntropy(point.windowEntropies)
        sequence.toolStepEntropies.append(after)
        statistics.entropiesAfterToolResults.append(after)
        Rollout.grow(&statistics.entropiesAfterToolResult, toCount: point.turn, with: [])
        statistics.entropiesAfterToolResult[point.turn - 1].append(after)
        let initial = sequence.initialEntropy ?? stepEntropy(sequence.initialWindow)
        let delta = after - initial
        let consecutiveForks = sequence.consecutiveForks
        let decision = settings.decide(
            entropyDelta: delta, vocabularySize: policy.vocabularySize, consecutiveForks: consecutiveForks, generator: &sequence.generator)
        let room = budget - groupCounts[sequence.group]
        let outcome: ForkOutcome = !decision.fork ? .declinedByRule : room > 0 ? .forked : .blockedByBudget
        if settings.decisionLog {
            statistics.forkDecisions.append(ForkDecision(
                group: sequence.group, trajectory: sequence.index, turn: point.turn, initialEntropy: initial, entropy: after,
                entropyDelta: delta, ruleEntropyDelta: delta * settings.ruleScale(vocabularySize: policy.vocabularySize),
                score: decision.score, draw: decision.draw, outcome: outcome, consecutiveForks: consecutiveForks))
        }
        // The copies below inherit the parent's streak, this fork included.
        sequence.consecutiveForks = outcome == .forked ? consecutiveForks + 1 : 0
        guard outcome == .forked else {
            if outcome == .declinedByRule { statistics.forksDeclinedByRule += 1 } else { statistics.forksBlockedByBudget += 1 }
            statistics.entropyDeltasElsewhere.append(delta)
            return
        }
        statistics.entropyDeltasAtForks.append(delta)
        statistics.forks += 1
        Rollout.grow(&statistics.forksAfterToolResult, toCount: point.turn, with: 0)
        statistics.forksAfterToolResult[point.turn - 1] += 1
        let copies = Swift.min(settings.branchFactor - 1, room)
        for _ in 0..<copies { sequences.append(fork(sequence, at: point, initialEntropy: initial)) }
        groupCounts[sequence.group] += copies
        statistics.forkedTrajectories += copies
    }

    /// Pads `array` with `value` to at least `count` elements.
    static func grow<Element>(_ array: inout [Element], toCount count: Int, with value: Element) {
        if array.count < count { array += [Element](repeating: value, count: count - array.count) }
    }

    /// A copy of `parent` up to `point`, which samples its first token from the point's logits.
    func fork(_ parent: Sequence, at point: RolloutEngine.ForkPoint, initialEntropy: Double) -> Sequence {
        let child = Sequence(
            index: sequences.count, group: parent.group, state: parent.state.fork(length: point.stateLength),
            episode: point.episode.forkEpisode(trajectory: sequences.count), generator: parent.generator.split(), promptTokens: parent.promptTokens,
            parent: parent.index, forkPosition: point.responseCount)
        child.tokens = Array(parent.tokens[0..<point.responseCount])
        child.logProbabilities = Array(parent.logProbabilities[0..<point.responseCount])
        child.entropies = Array(parent.entropies[0..<point.responseCount])
        child.lossMask = Array(parent.lossMask[0..<point.responseCount])
        child.segmentStart = point.responseCount
        child.initialEntropy = initialEntropy
        child.initialWindow = parent.initialWindow
        child.pendingLogits = point.logits
        child.toolResults = point.turn
        // The parent's executed calls all lie before the point: a fork is decided once the window
        // after the point is full, or earlier when the next call closes (before it runs) or the
        // parent ends.
        child.executedToolCalls = parent.executedToolCalls
        child.consecutiveForks = parent.consecutiveForks
        return child
    }

    // MARK: Result

    /// The finished batch. Rewards that depend on the whole group (OTC-PO's tool efficiency
    /// against the group's fewest calls) are settled now that every trajectory of the group has
    /// finished, and before anything reads a reward.
    func scoredBatch() -> RolloutBatch {
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
        statistics.toolCallsWritten = sequences.reduce(0) { $0 + $1.executedToolCalls }
        return RolloutBatch(records: records, scores: sequences.map { $0.score! }, statistics: statistics)
    }
}
