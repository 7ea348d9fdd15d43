import Distributed
import Foundation
import Policy
import Tensor
import ToolEnv

/// Cold-start supervised fine-tuning on expert demonstrations (docs/algorithms.md §7), with the loss on
/// the policy's tokens only: observations and the prompt are context. A tiny policy that starts
/// from random weights never discovers the call syntax by RL alone.
public final class SupervisedTrainer {
    public struct Example {
        public let tokens: [Int]
        /// lossMask[t]: whether token t is the policy's (trained).
        public let lossMask: [Bool]
        /// Whether this is a knowledge-base document or a copy drill rather than a demonstration
        /// (`StepResult.policyLoss` leaves these out).
        public var isDocument = false
    }

    public let model: LlamaModel
    public let optimizer: AdamW
    public let configuration: SupervisedConfiguration
    /// The fixed pool of demonstrations cycled through; with `fresh_demonstrations`, a sample of
    /// the generator's output (the batches are drawn new at every step).
    public let examples: [Example]
    /// Demonstrations left out because they do not fit the response limit or the context, per
    /// task family (over `examples`' draws): teaching them would teach answers the policy can
    /// never finish in RL.
    public let tooLong: [TaskFamily: Int]
    /// The user's demonstrations (`userDemonstrations`) left out for the same reason.
    public let tooLongUserDemonstrations: Int
    let schedule: LearningRateSchedule
    let seed: UInt64
    let environment: EnvironmentConfig
    let codec: ProtocolCodec
    let maxResponseTokens: Int?
    /// What runs between each step's backward pass and its clipping: nothing in a run; faults a
    /// test injects.
    public var hooks = UpdateHooks()
    /// The ranks of a data-parallel job (docs/distributed.md): each computes the gradient of its
    /// share of every step's batch (`share(lengths:rank:size:)`) under the whole batch's
    /// normaliser, and the gradients are summed before clipping. One process by default.
    public var communicator: Communicator = SingleProcessCommunicator()

    /// - Parameter maxResponseTokens: the RL response limit; longer demonstrations are dropped
    ///   (counted in `tooLong`), as are those whose prompt and response exceed the context.
    /// - Parameter userDemonstrations: a user's demonstrations (`env.demonstrations`), which
    ///   form the pool instead of the built-in solver's; they are trained on exactly as those
    ///   are, with the loss on the policy's segments.
    public init(
        model: LlamaModel, optimizer: AdamW, configuration: SupervisedConfiguration, environment: EnvironmentConfig, seed: UInt64, maxResponseTokens: Int? = nil,
        codec: ProtocolCodec = ProtocolCodec(), userDemonstrations: [UserDemonstration]? = nil
    ) {
        self.model = model
        self.optimizer = optimizer
        self.configuration = configuration
        self.seed = seed
        self.environment = environment
        self.codec = codec
        self.maxResponseTokens = maxResponseTokens
        schedule = LearningRateSchedule(peak: configuration.learningRate, warmupSteps: configuration.warmupSteps, totalSteps: configuration.steps, decay: configuration.schedule)
        var tooLong: [TaskFamily: Int] = [:]
        var examples: [Example] = []
        var tooLongUser = 0
        for demonstration in userDemonstrations ?? [] {
            let prompt = codec.promptTokens(demonstration.prompt)
            let response = codec.responseTokens(of: demonstration.segments)
            if prompt.count + response.tokens.count <= model.configuration.maxPositions, response.tokens.count <= maxResponseTokens ?? .max {
                examples.append(Example(tokens: prompt + response.tokens, lossMask: [Bool](repeating: false, count: prompt.count) + response.lossMask))
            } else {
                tooLongUser += 1
            }
        }
        tooLongUserDemonstrations = tooLongUser
        for index in 0..<(userDemonstrations == nil ? configuration.demonstrations : 0) {
            switch SupervisedTrainer.example(episodeSeed: Seed.derive(seed, .demonstrations, index), environment: environment, codec: codec, maxPositions: model.configuration.maxPositions, maxResponseTokens: maxResponseTokens) {
            case let .success(example): examples.append(example)
            case let .failure(rejection): if let family = rejection.tooLongFamily { tooLong[family, default: 0] += 1 }
            }
        }
        self.examples = examples
        self.tooLong = tooLong
    }

    /// Why a demonstration is not taught.
    enum Rejection: Error {
        /// It ran out of calls or ended wrong (faults): never teach those.
        case failed
        /// It does not fit the response limit or the context.
        case tooLong(TaskFamily)

        var tooLongFamily: TaskFamily? {
            if case let .tooLong(family) = self { return family }
            return nil
        }
    }

    /// The expert's demonstration of the train-split episode `episodeSeed` as a training example.
    static func example(episodeSeed: UInt64, environment: EnvironmentConfig, codec: ProtocolCodec, maxPositions: Int, maxResponseTokens: Int?) -> Result<Example, Rejection> {
        let episode = Episode.sample(split: .train, seed: episodeSeed, config: environment)
        let demonstration = ExpertSolver().demonstrate(episode)
        // With faults on, a few demonstrations in ten thousand run out of calls.
        guard demonstration.endReason == .answered, demonstration.reward.isCorrect else { return .failure(.failed) }
        let prompt = codec.promptTokens(episode.prompt)
        let response = codec.responseTokens(of: demonstration)
        guard prompt.count + response.tokens.count <= maxPositions, response.tokens.count <= maxResponseTokens ?? .max else {
            return .failure(.tooLong(episode.task.family))
        }
        return .success(Example(tokens: prompt + response.tokens, lossMask: [Bool](repeating: false, count: prompt.count) + response.lossMask))
    }

    /// The examples of step `step`: consecutive slices of a per-epoch shuffle, derived from
    /// (seed, epoch) alone so that a resumed run draws the same batches.
    public func batchIndices(step: Int) -> [Int] {
        let count = examples.count, size = configuration.batchSize
        return (0..<size).map { offset in
            let position = step * size + offset
            let epoch = position / count
            var generator = RandomGenerator(seed: Seed.derive(seed, .demonstrationShuffle, epoch))
            var order = Array(0..<count)
            order.shuffle(using: &generator)
            return order[position % count]
        }
    }

    /// The examples of step `step`: the demonstrations (the pool's slice, or with
    /// `fresh_demonstrations` a batch generated for this step alone), then
    /// `documentsPerBatch` knowledge-base documents and `drillsPerBatch` copy drills. Fresh
    /// batches, documents and drills are a function
    /// of (seed, step), so a resumed run draws the same ones, and the generator's episodes are so
    /// many (over a million names) that nothing comes back: the policy cannot learn names by
    /// heart and has to learn to copy them.
    public func batch(step: Int) -> [Example] {
        let documentsPerBatch = configuration.documentsPerBatch, drillsPerBatch = configuration.drillsPerBatch
        let membershipDrillsPerBatch = configuration.membershipDrillsPerBatch
        let demonstrationCount = configuration.batchSize - configuration.nonDemonstrationsPerBatch
        var documentGenerator = RandomGenerator(seed: Seed.derive(seed, .documents, step))
        var documents = (0..<documentsPerBatch).map { _ in
            // Bit 42 keeps these seeds apart from the demonstrations' and the RL prompts'.
            SupervisedTrainer.document(episodeSeed: (1 << 42) | (documentGenerator.next() >> 24), environment: environment, codec: codec, maxPositions: model.configuration.maxPositions)
        }
        for _ in 0..<drillsPerBatch {
            // Bit 43: apart from every other stream of episodes.
            documents.append(SupervisedTrainer.copyDrill(episodeSeed: (1 << 43) | (documentGenerator.next() >> 24), environment: environment, codec: codec, maxPositions: model.configuration.maxPositions))
        }
        if membershipDrillsPerBatch > 0 {
            // A generator of its own, so that runs without membership drills draw as before.
            var membershipGenerator = RandomGenerator(seed: Seed.derive(seed, .membershipDrills, step))
            for _ in 0..<membershipDrillsPerBatch {
                // Bit 44: apart from every other stream of episodes.
                documents.append(SupervisedTrainer.membershipDrill(episodeSeed: (1 << 44) | (membershipGenerator.next() >> 24), environment: environment, codec: codec, maxPositions: model.configuration.maxPositions))
            }
        }
        if configuration.recallDrillsPerBatch > 0 {
            var recallGenerator = RandomGenerator(seed: Seed.derive(seed, .recallDrills, step))
            for _ in 0..<configuration.recallDrillsPerBatch {
                // Bit 45: apart from every other stream of episodes.
                documents.append(SupervisedTrainer.recallDrill(episodeSeed: (1 << 45) | (recallGenerator.next() >> 24), environment: environment, codec: codec, maxPositions: model.configuration.maxPositions))
            }
        }
        guard configuration.freshDemonstrations else { return batchIndices(step: step).prefix(demonstrationCount).map { examples[$0] } + documents }
        var generator = RandomGenerator(seed: Seed.derive(seed, .freshDemonstrations, step))
        var chosen: [Example] = []
        var draws = 0
        while chosen.count < demonstrationCount {
            draws += 1
            precondition(draws <= 100 * configuration.batchSize, "fewer than one demonstration in 100 fits the limits; the trainer checks this before the first step")
            // Bit 41 keeps these seeds apart from the pool's (bit 40) and from the RL prompts'.
            let episodeSeed = (1 << 41) | (generator.next() >> 24)
            if case let .success(example) = SupervisedTrainer.example(episodeSeed: episodeSeed, environment: environment, codec: codec, maxPositions: model.configuration.maxPositions, maxResponseTokens: maxResponseTokens) {
                chosen.append(example)
            }
        }
        return chosen + documents
    }

    /// Items in a copy drill's list.
    public static let drillItems = 8

    /// A copy drill from the train-split episode `episodeSeed`: `drillItems` of its knowledge
    /// base's names and numbers in a random order, a line break, then the same list again, with
    /// the loss on the repetition only. Every token of the repetition can be read off the first
    /// list, so this is the densest signal there is for the induction heads (attend to the token
    /// after the previous occurrence of the current one) that copying a name or a number needs
    /// and that a policy without pretraining lacks: demonstrations alone train them slowly.
    static func copyDrill(episodeSeed: UInt64, environment: EnvironmentConfig, codec: ProtocolCodec, maxPositions: Int) -> Example {
        var items = Episode.sample(split: .train, seed: episodeSeed, config: environment).knowledgeBaseNamesAndNumbers
        var generator = RandomGenerator(seed: episodeSeed)
        items.shuffle(using: &generator)
        let list = items.prefix(drillItems).joined(separator: " ")
        return drillExample([(list, false), ("\n", true), (list, true)], codec: codec, maxPositions: maxPositions)
    }

    /// A drill's example: `pieces` encoded one by one and joined, the loss on those marked
    /// trained, cut to the context.
    static func drillExample(_ pieces: [(String, Bool)], codec: ProtocolCodec, maxPositions: Int) -> Example {
        var tokens: [Int] = [], mask: [Bool] = []
        for (text, trained) in pieces {
            let encoded = codec.tokenizer.encode(text)
            tokens += encoded
            mask += [Bool](repeating: trained, count: encoded.count)
        }
        return Example(tokens: Array(tokens.prefix(maxPositions)), lossMask: Array(mask.prefix(maxPositions)), isDocument: true)
    }

    /// Tokens a knowledge-base document aims at: about one demonstration's length, so that
    /// documents and demonstrations share a batch with little padding.
    public static let documentTokens = 128

    /// A knowledge-base document of the train-split episode `episodeSeed`: whole paragraphs of
    /// `Episode.knowledgeBaseParagraphs` (one entity's facts each) from a paragraph the seed
    /// picks, until about `documentTokens` tokens or the context, with the loss on every token.
    static func document(episodeSeed: UInt64, environment: EnvironmentConfig, codec: ProtocolCodec, maxPositions: Int) -> Example {
        let paragraphs = Episode.sample(split: .train, seed: episodeSeed, config: environment).knowledgeBaseParagraphs
        let limit = min(documentTokens, maxPositions)
        var tokens: [Int] = []
        var index = Int(episodeSeed % UInt64(max(paragraphs.count, 1)))
        for _ in paragraphs.indices where tokens.count < limit {
            tokens += codec.tokenizer.encode((tokens.isEmpty ? "" : " ") + paragraphs[index])
            index = (index + 1) % paragraphs.count
        }
        tokens = Array(tokens.prefix(maxPositions))
        return Example(tokens: tokens, lossMask: [Bool](repeating: true, count: tokens.count), isDocument: true)
    }

    public struct StepResult {
        /// The weighted objective (with `context_loss_weight` 0, the policy tokens' mean loss).
        public var loss: Double
        /// Mean −log p over the demonstrations' policy tokens alone, comparable whatever the
        /// context weight and document fraction.
        public var policyLoss: Double
        public var gradientNorm: Double
        /// The examples' tokens, padding not counted (what tokens/s counts).
        public var tokens: Int
        public var learningRate: Double
        /// Whether a non-finite loss or gradient skipped the update.
        public var skipped: Bool
    }

    /// Where each example of a step sits in its `TokenBatch`: the row, and its first token's
    /// index in the row.
    public struct Placement: Equatable, Sendable {
        public var row: Int
        public var start: Int
    }

    /// The step's examples as one `TokenBatch`: with `packing`, several to a row
    /// (`packedRows`), else one per row, right-padded to the longest.
    public func tokenBatch(_ examples: [Example]) -> (batch: TokenBatch, placements: [Placement]) {
        let padding = codec.tokenizer.padID
        guard configuration.packing else {
            return (TokenBatch(sequences: examples.map(\.tokens), padding: padding), examples.indices.map { Placement(row: $0, start: 0) })
        }
        let rows = SupervisedTrainer.packedRows(lengths: examples.map(\.tokens.count), rowLength: configuration.packingLength ?? model.configuration.maxPositions)
        var placements = [Placement](repeating: Placement(row: 0, start: 0), count: examples.count)
        for (row, members) in rows.enumerated() {
            var start = 0
            for index in members {
                placements[index] = Placement(row: row, start: start)
                start += examples[index].tokens.count
            }
        }
        return (TokenBatch(packing: rows.map { $0.map { examples[$0].tokens } }, padding: padding), placements)
    }

    /// First-fit decreasing: the indices of `lengths` grouped into rows of at most `rowLength`
    /// tokens, longest first, each into the first row with room (a sequence longer than
    /// `rowLength` gets a row of its own). Rows come in the order they were opened, and each
    /// row's members in the order they were placed.
    public static func packedRows(lengths: [Int], rowLength: Int) -> [[Int]] {
        let order = lengths.indices.sorted { lengths[$0] != lengths[$1] ? lengths[$0] > lengths[$1] : $0 < $1 }
        var rows: [[Int]] = [], used: [Int] = []
        for index in order {
            if let row = used.firstIndex(where: { $0 + lengths[index] <= rowLength }) {
                rows[row].append(index)
                used[row] += lengths[index]
            } else {
                rows.append([index])
                used.append(lengths[index])
            }
        }
        return rows
    }

    /// One optimizer step; a non-finite loss or gradient skips the update. On several ranks,
    /// every rank draws the whole batch, computes its share's gradient and the scalars are
    /// summed, so the step is the one process's up to the order of float additions.
    public func step(_ step: Int) -> StepResult {
        optimizer.zeroGradients()
        let examples = batch(step: step)
        // This rank's share of the batch (all of it, in order, on one process) under the whole
        // batch's normaliser; the sums over ranks are the batch's.
        let mine = SupervisedTrainer.share(lengths: examples.map(\.tokens.count), rank: communicator.rank, size: communicator.size).map { examples[$0] }
        let part = partialLossAndGradients(of: mine, totalWeight: totalWeight(of: examples))
        let sums = communicator.sum([part.loss, part.policyTotal, Double(part.policyCount)])
        let loss = sums[0]
        let policyLoss = separatePolicyLoss ? sums[1] / max(sums[2], 1) : loss
        let tokens = examples.reduce(0) { $0 + $1.tokens.count }
        // Every rank sees the same summed loss, so all skip or all reduce.
        if loss.isFinite { communicator.allReduceGradients(optimizer.parameters) }
        let learningRate = schedule.rate(at: step)
        guard loss.isFinite else {
            optimizer.zeroGradients()
            return StepResult(loss: loss, policyLoss: policyLoss, gradientNorm: .nan, tokens: tokens, learningRate: learningRate, skipped: true)
        }
        hooks.afterBackward?(model)
        let norm = optimizer.clipGradientNorm(to: configuration.maxGradientNorm)
        guard norm.isFinite else {
            optimizer.zeroGradients()
            return StepResult(loss: loss, policyLoss: policyLoss, gradientNorm: norm, tokens: tokens, learningRate: learningRate, skipped: true)
        }
        optimizer.update(learningRate: learningRate)
        return StepResult(loss: loss, policyLoss: policyLoss, gradientNorm: norm, tokens: tokens, learningRate: learningRate, skipped: false)
    }

    /// A rank's share of a batch of examples of `lengths` tokens: the indices it computes, in
    /// batch order. Longest first, each example goes to the rank with the fewest tokens so far
    /// (the lowest rank on a tie), so that ranks finish their passes at about the same time.
    /// Every rank computes the same partition.
    public static func share(lengths: [Int], rank: Int, size: Int) -> [Int] {
        precondition(size >= 1 && (0..<size).contains(rank), "rank \(rank) is not in 0..<\(size)")
        let order = lengths.indices.sorted { lengths[$0] != lengths[$1] ? lengths[$0] > lengths[$1] : $0 < $1 }
        var load = [Int](repeating: 0, count: size)
        var owner = [Int](repeating: 0, count: lengths.count)
        for index in order {
            let least = load.indices.min { load[$0] != load[$1] ? load[$0] < load[$1] : $0 < $1 }!
            owner[index] = least
            load[least] += lengths[index]
        }
        return lengths.indices.filter { owner[$0] == rank }
    }

    /// Whether `StepResult.policyLoss` is a mean of its own rather than the loss itself.
    var separatePolicyLoss: Bool { configuration.contextLossWeight > 0 || configuration.nonDemonstrationsPerBatch > 0 }

    /// The loss's weight of a position: 1 when the next token is the policy's,
    /// `context_loss_weight` otherwise.
    func positionWeight(_ example: Example, _ position: Int) -> Double {
        example.lossMask[position + 1] ? 1 : configuration.contextLossWeight
    }

    /// The objective's normaliser over `examples`: the sum of their positions' weights.
    public func totalWeight(of examples: [Example]) -> Double {
        var total = 0.0
        for example in examples {
            for position in 0..<(example.tokens.count - 1) { total += positionWeight(example, position) }
        }
        return total
    }

    /// The weighted objective of `examples` and its gradient, added into the model's parameters'
    /// gradients (none when the loss is not finite); also the policy loss and the examples'
    /// tokens. The objective is the same packed or not: each example's positions keep their
    /// weights, and the sum is over the same positions.
    public func lossAndGradients(of examples: [Example]) -> (loss: Double, policyLoss: Double, tokens: Int) {
        let part = partialLossAndGradients(of: examples, totalWeight: totalWeight(of: examples))
        let policyLoss = separatePolicyLoss ? part.policyTotal / Double(max(part.policyCount, 1)) : part.loss
        return (part.loss, policyLoss, part.tokens)
    }

    /// One rank's part of a step: its examples' weighted negative log-likelihood over
    /// `totalWeight` (the whole batch's, so that the ranks' parts add up to the batch's
    /// objective), its gradient added into the parameters' (none when not finite), the summed
    /// −log p over the demonstrations' policy tokens and their count, and the examples' tokens.
    public func partialLossAndGradients(of examples: [Example], totalWeight: Double) -> (loss: Double, policyTotal: Double, policyCount: Int, tokens: Int) {
        guard !examples.isEmpty else { return (0, 0, 0, 0) }
        let (batch, placements) = tokenBatch(examples)
        // Weight of position t: 1 when token t + 1 is the policy's, `context_loss_weight` when it
        // is the prompt's or an observation's; 0 on padding and where one packed example ends.
        let width = batch.length - 1
        var weights = [Double](repeating: 0, count: batch.batchSize * width)
        for (example, placement) in zip(examples, placements) {
            let first = placement.row * width + placement.start
            for position in 0..<(example.tokens.count - 1) { weights[first + position] = positionWeight(example, position) }
        }
        let logProbabilities = model.tokenStatistics(batch).logProbabilities
        let loss = -(logProbabilities * Tensor(shape: [batch.batchSize, width], values: weights, dtype: model.dtype)).sum() / max(totalWeight, 1)
        var total = 0.0, count = 0
        if separatePolicyLoss {
            let values = logProbabilities.doubles
            for (example, placement) in zip(examples, placements) where !example.isDocument {
                let first = placement.row * width + placement.start
                for position in 0..<(example.tokens.count - 1) where example.lossMask[position + 1] {
                    total -= values[first + position]
                    count += 1
                }
            }
        }
        if loss.item.isFinite { loss.backward() }
        return (loss.item, total, count, batch.lengths.reduce(0, +))
    }
}
