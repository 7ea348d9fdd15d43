import Foundation
import Policy

/// Cold-start supervised fine-tuning on expert demonstrations (docs/algorithms.md §7): loss on the policy's
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
    /// Draw a new batch of demonstrations from the generator at every step instead of cycling
    /// through `demonstrations` fixed ones (which then only serve the fit check and the log).
    public var freshDemonstrations = false
    /// Weight of the next-token loss on the prompt's and the observations' tokens, relative to
    /// the policy's own tokens (weight 1). 0 trains on the policy's tokens only (docs/algorithms.md §7); a
    /// small weight adds language-model practice on the environment's text, where names recur.
    public var contextLossWeight = 0.0
    /// Fraction of each batch's rows that are knowledge-base documents (each train-split world's
    /// facts, one paragraph per entity, with the loss on every token) instead of demonstrations.
    /// Names recur in such text, so predicting them teaches the policy to copy, as pretraining
    /// does for real language models. 0: demonstrations only.
    public var documentFraction = 0.0
    /// Fraction of each batch's rows that are copy drills: a list of a train-split world's names
    /// and numbers, then the same list again, trained on the repetition. They teach the
    /// induction heads that copying needs far faster than demonstrations do. 0: none.
    public var copyDrillFraction = 0.0

    /// Knowledge-base documents per batch: `document_fraction` of `batch_size`, rounded.
    public var documentsPerBatch: Int { Int((documentFraction * Double(batchSize)).rounded()) }
    /// Copy drills per batch: `copy_drill_fraction` of `batch_size`, rounded.
    public var drillsPerBatch: Int { Int((copyDrillFraction * Double(batchSize)).rounded()) }
    /// Fraction of each batch given to membership drills (`SupervisedTrainer.membershipDrill`):
    /// a list of names and numbers, then questions `ITEM? yes|no` on whether each stands in it,
    /// which teach the policy to notice a name that is absent from its context (unanswerable
    /// questions).
    public var membershipDrillFraction = 0.0
    /// Membership drills per batch: `membership_drill_fraction` of `batch_size`, rounded.
    public var membershipDrillsPerBatch: Int { Int((membershipDrillFraction * Double(batchSize)).rounded()) }
    /// Fraction of each batch given to fact-recall drills (`SupervisedTrainer.recallDrill`): a
    /// world's facts, then sentences "The ATTRIBUTE of ENTITY is" to complete with the listed
    /// value or `unknown`, the lookup behind every search answer and every unanswerable one.
    public var recallDrillFraction = 0.0
    /// Fact-recall drills per batch: `recall_drill_fraction` of `batch_size`, rounded.
    public var recallDrillsPerBatch: Int { Int((recallDrillFraction * Double(batchSize)).rounded()) }
    /// Rows per batch that are documents or drills rather than demonstrations.
    public var nonDemonstrationsPerBatch: Int { documentsPerBatch + drillsPerBatch + membershipDrillsPerBatch + recallDrillsPerBatch }
    /// Pack each step's examples several to a row (first-fit, longest first, rows of at most
    /// `packingLength` tokens) instead of one per row padded to the longest. Each example is
    /// computed as if it were alone (its own positions, attention within itself), so the
    /// objective is the same and less of every product is padding.
    public var packing = true
    /// Tokens per packed row; nil: the model's max_position_embeddings.
    public var packingLength: Int?
    public var weightDecay = 0.0
    /// AdamW's β1 and β2.
    public var adamBetas = [0.9, 0.999]
    public var maxGradientNorm = 1.0
    /// A Hugging Face model directory (such as an earlier run's `reference/`) whose weights the
    /// cold start begins from instead of a random initialisation; with `steps` 0 it reuses that
    /// cold start as it is. Nil: random initialisation.
    public var initFrom: String?

    public init() {}

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case steps, schedule, demonstrations
        case freshDemonstrations = "fresh_demonstrations"
        case contextLossWeight = "context_loss_weight"
        case documentFraction = "document_fraction"
        case copyDrillFraction = "copy_drill_fraction"
        case membershipDrillFraction = "membership_drill_fraction"
        case recallDrillFraction = "recall_drill_fraction"
        case packing
        case packingLength = "packing_length"
        case initFrom = "init_from"
        case batchSize = "batch_size"
        case learningRate = "learning_rate"
        case warmupSteps = "warmup_steps"
        case weightDecay = "weight_decay"
        case adamBetas = "adam_betas"
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
        freshDemonstrations = try c.decodeIfPresent(Bool.self, forKey: .freshDemonstrations) ?? d.freshDemonstrations
        contextLossWeight = try c.decodeIfPresent(Double.self, forKey: .contextLossWeight) ?? d.contextLossWeight
        documentFraction = try c.decodeIfPresent(Double.self, forKey: .documentFraction) ?? d.documentFraction
        copyDrillFraction = try c.decodeIfPresent(Double.self, forKey: .copyDrillFraction) ?? d.copyDrillFraction
        membershipDrillFraction = try c.decodeIfPresent(Double.self, forKey: .membershipDrillFraction) ?? d.membershipDrillFraction
        recallDrillFraction = try c.decodeIfPresent(Double.self, forKey: .recallDrillFraction) ?? d.recallDrillFraction
        packing = try c.decodeIfPresent(Bool.self, forKey: .packing) ?? d.packing
        packingLength = try c.decodeIfPresent(Int.self, forKey: .packingLength)
        weightDecay = try c.decodeIfPresent(Double.self, forKey: .weightDecay) ?? d.weightDecay
        adamBetas = try c.decodeIfPresent([Double].self, forKey: .adamBetas) ?? d.adamBetas
        maxGradientNorm = try c.decodeIfPresent(Double.self, forKey: .maxGradientNorm) ?? d.maxGradientNorm
        initFrom = try c.decodeIfPresent(String.self, forKey: .initFrom)
    }

    /// Writes every key, `packing_length` and `init_from` as null when unset, so the resolved
    /// config shows them.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(steps, forKey: .steps)
        try c.encode(batchSize, forKey: .batchSize)
        try c.encode(learningRate, forKey: .learningRate)
        try c.encode(warmupSteps, forKey: .warmupSteps)
        try c.encode(schedule, forKey: .schedule)
        try c.encode(demonstrations, forKey: .demonstrations)
        try c.encode(freshDemonstrations, forKey: .freshDemonstrations)
        try c.encode(contextLossWeight, forKey: .contextLossWeight)
        try c.encode(documentFraction, forKey: .documentFraction)
        try c.encode(copyDrillFraction, forKey: .copyDrillFraction)
        try c.encode(membershipDrillFraction, forKey: .membershipDrillFraction)
        try c.encode(recallDrillFraction, forKey: .recallDrillFraction)
        try c.encode(packing, forKey: .packing)
        try c.encode(packingLength, forKey: .packingLength)
        try c.encode(weightDecay, forKey: .weightDecay)
        try c.encode(adamBetas, forKey: .adamBetas)
        try c.encode(maxGradientNorm, forKey: .maxGradientNorm)
        try c.encode(initFrom, forKey: .initFrom)
    }

    public func validate(path: String) throws {
        try requireSetting(steps >= 0 && steps <= 1_000_000, path, CodingKeys.steps, "in 0...1000000", steps)
        try requireSetting(batchSize >= 1 && batchSize <= 4096, path, CodingKeys.batchSize, "in 1...4096", batchSize)
        try requireSetting(learningRate > 0 && learningRate < 1, path, CodingKeys.learningRate, "in (0, 1)", learningRate)
        try requireSetting(warmupSteps >= 0, path, CodingKeys.warmupSteps, "at least 0", warmupSteps)
        try requireSetting(demonstrations >= 1 && demonstrations <= 1_000_000, path, CodingKeys.demonstrations, "in 1...1000000", demonstrations)
        try requireSetting(contextLossWeight >= 0 && contextLossWeight <= 1, path, CodingKeys.contextLossWeight, "in [0, 1]", contextLossWeight)
        try requireSetting(documentFraction >= 0 && documentFraction < 1, path, CodingKeys.documentFraction, "in [0, 1)", documentFraction)
        try requireSetting(copyDrillFraction >= 0 && copyDrillFraction < 1, path, CodingKeys.copyDrillFraction, "in [0, 1)", copyDrillFraction)
        try requireSetting(membershipDrillFraction >= 0 && membershipDrillFraction < 1, path, CodingKeys.membershipDrillFraction, "in [0, 1)", membershipDrillFraction)
        try requireSetting(recallDrillFraction >= 0 && recallDrillFraction < 1, path, CodingKeys.recallDrillFraction, "in [0, 1)", recallDrillFraction)
        try requireSetting(nonDemonstrationsPerBatch < batchSize, path, CodingKeys.copyDrillFraction,
                           "such that documents and drills leave at least one demonstration per batch (document_fraction + copy_drill_fraction + membership_drill_fraction + recall_drill_fraction < 1 after rounding to rows of batch_size)", copyDrillFraction)
        try requireSetting(packingLength.map { $0 >= 1 && $0 <= 1_000_000 } ?? true, path, CodingKeys.packingLength, "in 1...1000000 or null", packingLength.map(String.init) ?? "null")
        try requireSetting(weightDecay >= 0 && weightDecay < 1, path, CodingKeys.weightDecay, "in [0, 1)", weightDecay)
        try requireSetting(adamBetas.count == 2 && adamBetas.allSatisfy { $0 >= 0 && $0 < 1 }, path, CodingKeys.adamBetas, "two values [β1, β2], each in [0, 1)", "\(adamBetas)")
        try requireSetting(maxGradientNorm > 0, path, CodingKeys.maxGradientNorm, "positive", maxGradientNorm)
        try requireSetting(initFrom.map { !$0.isEmpty } ?? true, path, CodingKeys.initFrom, "a model directory path or null", "an empty string")
    }
}

func requireSetting<Key: CodingKey>(_ condition: Bool, _ path: String, _ key: Key, _ allowed: String, _ value: Any) throws {
    if !condition { throw ConfigurationError("\(path).\(key.stringValue) must be \(allowed), got \(value)") }
}
