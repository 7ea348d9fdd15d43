import Foundation
import RunRecords

/// A tree method (an ARPO variant with tree advantages, the DPO term, the memory bank or AEPO's
/// branching) against the same method without those signals, seed by seed: what the signals
/// change in accuracy, cost and behaviour, from the records both runs of a seed already hold.
extension MethodComparison {
    /// A behaviour the runs' records hold, measured once per run.
    struct BehaviourMeasure {
        /// The row's label, with where the number comes from.
        var name: String
        /// `%.3f` for rates, `%.2f` for counts, `%.1f` for token lengths.
        var format: String
        /// The run's value; nil when its records do not hold it.
        var value: (ReportRun) -> Double?
    }

    /// The measures of the behaviour table, in row order.
    static var behaviourMeasures: [BehaviourMeasure] { [
        BehaviourMeasure(name: "Format errors per episode (final evaluation)", format: "%.3f") { $0.finalEvaluation?.formatErrorRate },
        BehaviourMeasure(name: "Ignored tool failures per episode (final evaluation)", format: "%.3f") { $0.finalEvaluation?.ignoredToolFailureRate },
        BehaviourMeasure(name: "Tool calls per episode (final evaluation)", format: "%.2f") { $0.finalEvaluation?.toolCallsPerEpisode },
        BehaviourMeasure(name: "`unanswerable` accuracy, answering unknown (final evaluation)", format: "%.3f") {
            $0.summary?.accuracyByFamilyAfterRL?["unanswerable"]
        },
        BehaviourMeasure(name: "Tool calls executed per trajectory (RL)", format: "%.2f") { ReportRun.toolCallsExecutedPerTrajectory(over: $0.reinforcementMetrics) },
        BehaviourMeasure(name: "Tool calls written per answered episode (RL)", format: "%.2f") { ReportRun.toolCallsWrittenPerAnsweredEpisode(over: $0.reinforcementMetrics) },
        BehaviourMeasure(name: "Response tokens per trajectory (RL)", format: "%.1f") { run in
            MeanAndStandardDeviation(run.reinforcementMetrics.compactMap(\.responseLengthMean).filter(\.isFinite))?.mean
        },
        BehaviourMeasure(name: "Forks per RL step", format: "%.2f") { BranchingSummary(runs: [$0]).forksPerStep },
        BehaviourMeasure(name: "Fork rate (RL)", format: "%.3f") { BranchingSummary(runs: [$0]).forkRate },
    ] }

    /// `tree` against its baseline, the same method without tree signals
    /// (``TrainingMethod/withoutTreeSignals``; plain ARPO for `arpo-tree`, `arpo-dpo`, `arpo-bank`
    /// and `arpo-aepo`): the final accuracy, tool calls and wall time per seed with the paired
    /// accuracy difference, then the behaviour measures with their paired differences.
    func treeSection(_ tree: TrainingMethod) -> [ResultsBlock] {
        let baseline = tree.withoutTreeSignals
        let pairs = self.pairs(tree, against: baseline)
        guard !pairs.isEmpty else { return [] }
        let name = tree.displayName, base = baseline.displayName
        func calls(_ run: ReportRun) -> String { run.summary?.toolCallsExecuted.map { ReportPage.groupedInteger(Double($0)) } ?? "—" }
        func wall(_ run: ReportRun) -> String { run.summary?.wallSeconds.map(ReportPage.duration) ?? "—" }
        var differences: [Double] = []
        var rows: [[String]] = []
        for (seed, run, baselineRun) in pairs {
            var difference = "—"
            if let accuracy = run.summary?.accuracyAfterRL, let baselineAccuracy = baselineRun.summary?.accuracyAfterRL {
                differences.append(accuracy - baselineAccuracy)
                difference = String(format: "%+.3f", accuracy - baselineAccuracy)
            }
            rows.append([
                String(seed), Self.formatted(baselineRun.summary?.accuracyAfterRL), Self.formatted(run.summary?.accuracyAfterRL), difference,
                calls(baselineRun), calls(run), wall(baselineRun), wall(run),
            ])
        }
        var blocks: [ResultsBlock] = [
            .heading("\(name) against \(base), seed by seed", level: 2),
            .paragraph("\(name) is \(base) \(Self.treeSignalDescription(tree)). Each \(name) run is paired with the \(base) run of the same seed, which shares its cold start and RL prompts."),
            .table(ResultsTable(
                ["Seed", "\(base) accuracy", "\(name) accuracy", "\(name) − \(base)", "\(base) tool calls executed", "\(name) tool calls executed",
                 "\(base) wall time", "\(name) wall time"],
                rows: rows)),
        ]
        if let difference = ConfidenceInterval(differences) {
            let wins = differences.filter { $0 >= 0 }.count
            blocks.append(.paragraph("Mean difference in final accuracy (\(name) − \(base)): \(Self.interval(difference, within: -1...1)) over \(difference.count) seed\(difference.count == 1 ? "" : "s") (paired; 95% interval by Student's t); \(name) at or above \(base) on \(wins) of \(differences.count)."))
        }
        let behaviour = Self.behaviourMeasures.compactMap { measure -> [String]? in
            let values = pairs.compactMap { pair -> (run: Double, baseline: Double)? in
                guard let value = measure.value(pair.run), let baselineValue = measure.value(pair.baseline), value.isFinite, baselineValue.isFinite else { return nil }
                return (value, baselineValue)
            }
            guard let difference = ConfidenceInterval(values.map { $0.run - $0.baseline }) else { return nil }
            return [
                measure.name, Self.formatted(MeanAndStandardDeviation(values.map(\.baseline))?.mean, measure.format),
                Self.formatted(MeanAndStandardDeviation(values.map(\.run))?.mean, measure.format), Self.interval(difference, measure.format),
                String(values.count),
            ]
        }
        if !behaviour.isEmpty {
            blocks.append(.table(ResultsTable(["Behaviour", base, name, "\(name) − \(base) [95% interval]", "Seeds"], rows: behaviour)))
            blocks.append(.paragraph("""
                Each measure per run, then over the seeds where both runs of the pair record it: the \
                two methods' means and the mean of the per-seed differences [95% interval by Student's \
                t]. Final evaluation: the greedy held-out evaluation at the end of RL (eval.jsonl's \
                last record; `unanswerable` accuracy from summary.json), where an ignored tool failure \
                is an answer given right after a tool result that reported a failure \
                (`ignored_tool_failure_rate`). RL: over the run's RL steps in metrics.jsonl, as in the \
                tool-call and branching tables. A measure no pair records has no row.
                """))
        }
        if let signals = trainingSignalParagraph(tree) { blocks.append(signals) }
        return blocks
    }

    /// What each tree signal of `method` is, in words, after "X is ARPO …".
    static func treeSignalDescription(_ method: TrainingMethod) -> String {
        var parts: [String] = []
        if method.advantageMode == "tree" {
            parts.append("with the tree advantages (`rl.advantage.mode: tree`): the tokens after each fork take an advantage relative to the fork's branches, as in PORTool and Tree-GRPO (docs/algorithms.md §4.4)")
        }
        if method.usesDPO {
            parts.append("with TTPA's DPO term on the ESM-ranked preference pairs at fork points (`rl.loss.dpo_coefficient` > 0, §5.6)")
        }
        if method.usesMemoryBank {
            parts.append("with AvaTaR's memory bank of best trajectories replayed in the update (`rl.memory_bank`, §5.7)")
        }
        if method.usesEntropyBalancedBranching {
            parts.append("branching by AEPO's rule, the budget split from the prompt's entropy and a penalty on consecutive forks (`rl.branching.rule: entropy-balanced`, §3.1)")
        }
        return parts.joined(separator: "; ")
    }

    /// How much of its own signal a tree method trained on, from metrics.jsonl: DPO pairs and
    /// replayed bank rows per RL step, over the method's finished runs. Nil when it records none.
    func trainingSignalParagraph(_ method: TrainingMethod) -> ResultsBlock? {
        let steps = finished(method).flatMap(\.reinforcementMetrics)
        func perStep(_ value: (StepMetrics) -> Int?) -> Double? {
            MeanAndStandardDeviation(steps.compactMap(value).map(Double.init))?.mean
        }
        var parts: [String] = []
        if method.usesDPO, let pairs = perStep(\.dpoPairs) {
            parts.append(String(format: "%.2f DPO preference pairs per RL step (`dpo_pairs`)", pairs))
        }
        if method.usesMemoryBank {
            if let rows = perStep(\.memoryBankReplayedRows) { parts.append(String(format: "%.2f memory-bank rows replayed per RL step (`memory_bank_replayed_rows`)", rows)) }
            if let pairs = perStep(\.memoryBankContrastivePairs) { parts.append(String(format: "%.2f memory-bank contrastive pairs per RL step (`memory_bank_contrastive_pairs`)", pairs)) }
        }
        guard !parts.isEmpty else { return nil }
        return .paragraph("\(method.displayName) trained on " + parts.joined(separator: " and ") + ", mean over the RL steps of its finished runs.")
    }
}

extension ReportRun {
    /// The evaluation at the end of the run (`"final": true` in eval.jsonl), nil before it.
    var finalEvaluation: HeldOutEvaluation? { evaluations.last { $0.isFinal == true } }
}
