import ToolEnv

/// TTPA's Error-oriented Scoring Mechanism (ESM): the score that ranks trajectories into
/// preference pairs (docs/algorithms.md §5.6).
///
///     score = r − Σ_k w_k · n_k
///
/// with r the trajectory's reward, n_k how many times the episode recorded error kind k
/// (``RewardBreakdown/errors``) and w_k the kind's weight. The default weights put 0.25 on each
/// tool-use error (malformed call, unknown tool, bad arguments, ignored tool failure, call over
/// the limit) and 0 on the outcome errors (wrong answer, no answer, over length), which the
/// reward already scores. So two trajectories with the same reward are still ranked when one
/// of them misused its tools, which is the point of ESM. An episode without a breakdown (not a
/// tool-environment episode) scores its reward.
public struct ErrorOrientedScoring: Equatable, Sendable {
    /// w_k per error kind; a kind not listed weighs 0.
    public var weights: [EpisodeErrorKind: Double]

    /// The default w_k: 0.25 per tool-use error, 0 per outcome error.
    public static let defaultWeights: [EpisodeErrorKind: Double] = [
        .malformedCall: 0.25, .unknownTool: 0.25, .badArguments: 0.25, .ignoredToolFailure: 0.25, .overCallLimit: 0.25,
    ]

    public init(weights: [EpisodeErrorKind: Double] = ErrorOrientedScoring.defaultWeights) {
        self.weights = weights
    }

    /// The ESM score of one finished episode.
    public func score(_ episode: EpisodeScore) -> Double {
        let errors = episode.breakdown?.errors ?? []
        return episode.reward - errors.reduce(0) { $0 + (weights[$1] ?? 0) }
    }
}

/// A token-level preference pair at a fork point (TTPA): two trajectories of a rollout batch
/// that hold the same tokens up to response position `forkPosition` and go different ways from
/// there, the `chosen` one with the higher ESM score.
///
/// The preference is on the continuations: the response tokens from `forkPosition` on, of
/// which the DPO term (``PreferenceLoss``) counts the policy's tokens only.
public struct PreferencePair: Equatable, Sendable {
    /// Indices into the batch's records.
    public var chosen: Int
    public var rejected: Int
    /// The record that was forked: both trajectories hold its tokens up to `forkPosition`.
    public var forkRecord: Int
    /// Response position of the fork point: where the continuations start.
    public var forkPosition: Int
    /// The ESM scores of `chosen` and `rejected`; `chosenScore > rejectedScore`.
    public var chosenScore: Double
    public var rejectedScore: Double

    public init(chosen: Int, rejected: Int, forkRecord: Int, forkPosition: Int, chosenScore: Double, rejectedScore: Double) {
        self.chosen = chosen
        self.rejected = rejected
        self.forkRecord = forkRecord
        self.forkPosition = forkPosition
        self.chosenScore = chosenScore
        self.rejectedScore = rejectedScore
    }

    /// One pair per fork point of `records`: the widest-scored pair whose two trajectories take
    /// different branches there.
    ///
    /// A fork point F is a record p and a response position f at which copies were forked from
    /// p. Its *branches* are p's own continuation past f (p and the descendants that inherited
    /// p's tokens beyond f) and each copy forked at F (with its descendants); every trajectory
    /// through F lies in exactly one. The pair is the (chosen, rejected) of different branches
    /// with the largest score difference, ties to the lowest indices; a fork point whose
    /// branches all score the same within 1e-9 gives none. Two trajectories of different
    /// branches first differ at F, so no pair is found at two fork points; taking one pair per
    /// fork point, not every ordered pair of its branches, keeps a fork point that many
    /// trajectories pass through from weighing more than one with two, and best against worst
    /// is the clearest preference TTPA's sampling looks for. Pairs are ordered by fork record,
    /// then position.
    ///
    /// - Parameter scores: per record, its ESM score (``ErrorOrientedScoring/score(_:)``).
    public static func pairs(in records: [TrajectoryRecord], scores: [Double]) -> [PreferencePair] {
        precondition(scores.count == records.count, "need one score per record")
        var forkPoints: [ForkPoint: [Int]] = [:]
        for (index, record) in records.enumerated() {
            if let parent = record.parent { forkPoints[ForkPoint(record: parent, position: record.forkPosition), default: []].append(index) }
        }
        var pairs: [PreferencePair] = []
        for point in forkPoints.keys.sorted(by: { ($0.record, $0.position) < ($1.record, $1.position) }) {
            // Per trajectory through the fork point, its branch there (the record or a copy).
            let members = records.indices.compactMap { index in branch(of: index, at: point, records).map { (index, $0) } }
            var best: PreferencePair?
            for (chosen, chosenBranch) in members {
                for (rejected, rejectedBranch) in members where rejectedBranch != chosenBranch {
                    let gap = scores[chosen] - scores[rejected]
                    guard gap > 1e-9, gap > (best.map { $0.chosenScore - $0.rejectedScore } ?? 0) else { continue }
                    best = PreferencePair(
                        chosen: chosen, rejected: rejected, forkRecord: point.record, forkPosition: point.position,
                        chosenScore: scores[chosen], rejectedScore: scores[rejected])
                }
            }
            if let best { pairs.append(best) }
        }
        return pairs
    }

    /// The pairs of a rollout batch, ranked by `scoring`.
    public static func pairs(in batch: RolloutBatch, scoring: ErrorOrientedScoring = ErrorOrientedScoring()) -> [PreferencePair] {
        pairs(in: batch.records, scores: batch.scores.map(scoring.score))
    }

    struct ForkPoint: Hashable {
        let record: Int
        let position: Int
    }

    /// The branch at `point` that trajectory `index` takes: `point.record` when it continues the
    /// record past the fork position, the copy forked there whose subtree holds it, or nil when
    /// the trajectory does not pass through the fork point.
    static func branch(of index: Int, at point: ForkPoint, _ records: [TrajectoryRecord]) -> Int? {
        var child: Int?
        var current = index
        while current != point.record {
            guard let parent = records[current].parent else { return nil }
            (child, current) = (current, parent)
        }
        guard let child else { return point.record }
        let position = records[child].forkPosition
        if position == point.position { return child }
        return position > point.position ? point.record : nil
    }
}
