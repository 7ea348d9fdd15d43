import Foundation
import RunRecords

/// The comparison of methods over their finished runs, as results-document blocks that both the
/// Markdown document and the HTML page show: final accuracy per family, each ARPO variant without
/// tree signals against GRPO seed by seed, each ARPO variant with one against the same method
/// without it seed by seed, tool calls executed and written, time per RL step, and ARPO's
/// branching.
struct MethodComparison {
    var runs: [ReportRun]

    /// The executed-tool-call ratio to GRPO that the comparison's goal allows (issue 26): ARPO at
    /// or above GRPO's accuracy with at most this fraction of GRPO's executed tool calls.
    static let toolCallGoal = 0.6

    var finished: [ReportRun] { runs.filter(\.isFinished) }

    /// Per method: final accuracy per family, each ARPO variant without tree signals against
    /// GRPO, each one with tree signals against ARPO, tool calls, time per step and branching.
    /// Sections without data are left out.
    func blocks() -> [ResultsBlock] {
        let methods = TrainingReport.methods(of: runs)
        let arpo = methods.filter(\.isARPO)
        return familySection(methods) + arpo.filter { !$0.usesTreeSignal }.flatMap(pairedSection)
            + arpo.filter(\.usesTreeSignal).flatMap(treeSection) + toolCallSection(methods)
            + timingSection(methods) + branchingSection(methods)
    }

    /// The finished runs of `method`.
    func finished(_ method: TrainingMethod) -> [ReportRun] { finished.filter { $0.method == method } }

    /// The finished runs of `method` and of `baseline` that share a `run.seed`, by seed: runs
    /// with the same seed share the cold start and the RL prompts, so a difference per seed
    /// removes what the seeds share. A seed with two runs of one method keeps the later one.
    func pairs(_ method: TrainingMethod, against baseline: TrainingMethod) -> [(seed: UInt64, run: ReportRun, baseline: ReportRun)] {
        func bySeed(_ method: TrainingMethod) -> [UInt64: ReportRun] {
            var result: [UInt64: ReportRun] = [:]
            for run in finished(method) { if let seed = run.seed { result[seed] = run } }
            return result
        }
        let runs = bySeed(method), baselines = bySeed(baseline)
        return Set(runs.keys).intersection(baselines.keys).sorted().map { ($0, runs[$0]!, baselines[$0]!) }
    }

    /// "0.625 [0.540, 0.710]": a mean and its 95% interval, or the mean alone for one run. The
    /// bounds are cut to `range`, the values the quantity can take (an accuracy's interval over
    /// two or three seeds easily passes 0 or 1).
    static func interval(_ value: ConfidenceInterval?, within range: ClosedRange<Double>? = nil, _ format: String = "%.3f") -> String {
        guard let value else { return "—" }
        guard let halfWidth = value.halfWidth else { return String(format: format, value.mean) }
        var low = value.mean - halfWidth, high = value.mean + halfWidth
        if let range {
            low = max(low, range.lowerBound)
            high = min(high, range.upperBound)
        }
        return String(format: "\(format) [\(format), \(format)]", value.mean, low, high)
    }

    /// A number in `format`, or a dash for nil.
    static func formatted(_ value: Double?, _ format: String = "%.3f") -> String {
        value.map { String(format: format, $0) } ?? "—"
    }

    // MARK: Per family

    /// Final held-out accuracy per task family and overall, per method: mean and 95% interval
    /// over the finished runs (seeds), from each run's `summary.json`.
    func familySection(_ methods: [TrainingMethod]) -> [ResultsBlock] {
        let order = ["arithmetic", "single_hop", "multi_hop", "compose", "unanswerable"]
        let families = Set(finished.flatMap { $0.summary?.accuracyByFamilyAfterRL?.keys.map { $0 } ?? [] })
            .sorted { (order.firstIndex(of: $0) ?? order.count, $0) < (order.firstIndex(of: $1) ?? order.count, $1) }
        guard !families.isEmpty else { return [] }
        let rows = (families + ["all"]).map { family in
            [family == "all" ? "**all families**" : "`\(family)`"] + methods.map { method in
                let values = finished(method).compactMap { family == "all" ? $0.summary?.accuracyAfterRL : $0.summary?.accuracyByFamilyAfterRL?[family] }
                return MethodComparison.interval(ConfidenceInterval(values), within: 0...1)
            }
        }
        return [
            .heading("Final held-out accuracy per family", level: 2),
            .table(ResultsTable(["Family"] + methods.map(\.displayName), rows: rows)),
            .paragraph("""
                Mean over seeds [95% confidence interval: mean ± t·s/√n, Student's t with n − 1 degrees of \
                freedom, cut to [0, 1]] of each run's final accuracy (summary.json's `accuracy_by_family_after_rl`). A family's \
                accuracy rests on the episodes of that family among the evaluation's, so its interval is \
                wider than the overall one.
                """),
        ]
    }

    // MARK: Paired comparison

    /// One ARPO variant against GRPO seed by seed (see ``pairs(_:against:)``).
    func pairedSection(_ arpo: TrainingMethod) -> [ResultsBlock] {
        let pairs = self.pairs(arpo, against: .grpo)
        guard !pairs.isEmpty else { return [] }
        let seeds = pairs.map(\.seed)
        let name = arpo.displayName
        var differences: [Double] = [], ratios: [Double] = []
        var goalMet = 0
        var rows: [[String]] = []
        for (seed, variant, grpo) in pairs {
            guard let a = variant.summary, let g = grpo.summary else { continue }
            var difference = "—", ratio = "—"
            var seedDifference: Double?, seedRatio: Double?
            if let accuracyA = a.accuracyAfterRL, let accuracyG = g.accuracyAfterRL {
                seedDifference = accuracyA - accuracyG
                differences.append(accuracyA - accuracyG)
                difference = String(format: "%+.3f", accuracyA - accuracyG)
            }
            if let callsA = a.toolCallsExecuted, let callsG = g.toolCallsExecuted, callsG > 0 {
                seedRatio = Double(callsA) / Double(callsG)
                ratios.append(seedRatio!)
                ratio = String(format: "%.2f", seedRatio!)
            }
            if let seedDifference, let seedRatio, seedDifference >= 0, seedRatio <= Self.toolCallGoal { goalMet += 1 }
            rows.append([
                String(seed), Self.formatted(g.accuracyAfterRL), Self.formatted(a.accuracyAfterRL), difference,
                g.toolCallsExecuted.map { ReportPage.groupedInteger(Double($0)) } ?? "—", a.toolCallsExecuted.map { ReportPage.groupedInteger(Double($0)) } ?? "—", ratio,
            ])
        }
        var blocks: [ResultsBlock] = [
            .heading("\(name) against GRPO, seed by seed", level: 2),
            .table(ResultsTable(
                ["Seed", "GRPO accuracy", "\(name) accuracy", "\(name) − GRPO", "GRPO tool calls executed", "\(name) tool calls executed", "\(name) ÷ GRPO tool calls executed"],
                rows: rows)),
        ]
        let difference = ConfidenceInterval(differences), ratio = ConfidenceInterval(ratios)
        if let difference {
            let wins = differences.filter { $0 >= 0 }.count
            blocks.append(.paragraph("Mean difference in final accuracy (\(name) − GRPO): \(MethodComparison.interval(difference, within: -1...1)) over \(difference.count) seed\(difference.count == 1 ? "" : "s") (paired; 95% interval by Student's t); \(name) at or above GRPO on \(wins) of \(differences.count)."))
        }
        if let ratio {
            blocks.append(.paragraph("\(name)'s RL tool calls executed as a fraction of GRPO's: \(MethodComparison.interval(ratio)) (mean of the seeds' ratios [95% interval])."))
        }
        if let difference, let ratio {
            let met = difference.mean >= 0 && ratio.mean <= Self.toolCallGoal
            blocks.append(.paragraph(String(
                format: "Goal, at or above GRPO's final accuracy with at most %.0f%% of its executed tool calls: met on %d of %d seeds; on the means (difference %+.3f, ratio %.2f) %@.",
                Self.toolCallGoal * 100, goalMet, seeds.count, difference.mean, ratio.mean, met ? "met" : "not met")))
        }
        return blocks
    }

    // MARK: Tool calls

    /// Executed and written tool calls per method: what the rollouts cost, and what the policy
    /// writes, so that ARPO's saving shows apart from the calls its forks share.
    func toolCallSection(_ methods: [TrainingMethod]) -> [ResultsBlock] {
        struct Row {
            var executed: ConfidenceInterval?
            var written: ConfidenceInterval?
            var answered: ConfidenceInterval?
        }
        var rows: [TrainingMethod: Row] = [:]
        for method in methods {
            let runs = finished(method)
            rows[method] = Row(
                executed: ConfidenceInterval(runs.compactMap { ReportRun.toolCallsExecutedPerTrajectory(over: $0.reinforcementMetrics) }),
                written: ConfidenceInterval(runs.compactMap { ReportRun.toolCallsWrittenPerTrajectory(over: $0.reinforcementMetrics) }),
                answered: ConfidenceInterval(runs.compactMap { ReportRun.toolCallsWrittenPerAnsweredEpisode(over: $0.reinforcementMetrics) }))
        }
        guard rows.values.contains(where: { $0.executed != nil }) else { return [] }
        let grpo = rows[.grpo]
        func ratio(_ value: ConfidenceInterval?, _ baseline: ConfidenceInterval?) -> String {
            guard let value, let baseline, baseline.mean > 0 else { return "—" }
            return String(format: "%.2f", value.mean / baseline.mean)
        }
        let table = ResultsTable(
            ["Method", "Executed per trajectory", "÷ GRPO", "Written per trajectory", "÷ GRPO", "Executed ÷ written", "Written per answered episode", "÷ GRPO"],
            rows: methods.map { method in
                let row = rows[method]!
                let nonnegative = 0...Double.infinity
                return [
                    method.displayName,
                    Self.interval(row.executed, within: nonnegative), ratio(row.executed, grpo?.executed),
                    Self.interval(row.written, within: nonnegative), ratio(row.written, grpo?.written), ratio(row.executed, row.written),
                    Self.interval(row.answered, within: nonnegative), ratio(row.answered, grpo?.answered),
                ]
            })
        return [
            .heading("Tool calls", level: 2),
            .table(table),
            .paragraph("""
                Per run over its RL steps, then mean [95% interval] over seeds; ÷ GRPO divides a \
                method's mean by GRPO's. **Executed per trajectory**: `tool_calls_executed` ÷ \
                `trajectories`, every call the environment ran counted once. A fork inherits its \
                parent's calls without running them again, so they count once, in the parent: this \
                is what a rollout costs, and its ratio to GRPO's is the goal's (at most \
                \(String(format: "%.2f", Self.toolCallGoal))). **Written per trajectory**: \
                `tool_calls_written` ÷ `trajectories`, the executed calls in each trajectory's \
                transcript, a fork's inherited ones counted in every trajectory that holds them: \
                what the same trajectories would have cost sampled one by one. Without forks (GRPO, \
                PPO) it equals executed. **Executed ÷ written**: the share of the transcripts' calls \
                that had to run; one minus it is what prefix sharing saved. The executed ratio to \
                GRPO is the written ratio (the policy's behaviour) times executed ÷ written (prefix \
                sharing). **Written per answered episode**: `tool_calls_per_answered_episode`, the \
                executed calls in the transcript of each RL trajectory that ended with an answer, \
                inherited ones included, mean over those trajectories, then over RL steps: the \
                policy's own habit, whatever the rollout shared. Calls the environment refused \
                (malformed, over the call limit) are in no column. A dash: no run records the metric.
                """),
        ] + methods.filter(\.usesToolEfficiency).map { method in
            toolEfficiencyParagraph(method, answered: rows[method]!.answered, without: rows[method.withoutToolEfficiency]?.answered)
        }
    }

    /// What an OTC method's tool-call row is compared with: the same method without the factor.
    func toolEfficiencyParagraph(_ method: TrainingMethod, answered: ConfidenceInterval?, without: ConfidenceInterval?) -> ResultsBlock {
        let name = method.displayName, baseline = method.withoutToolEfficiency.displayName
        let form = method.toolEfficiencyForm == "group"
            ? "group form, sin(f·π / (2n)), which peaks at the fewest calls n among the prompt group's correct trajectories"
            : "group-free form, cos(m·π / (2m + c))"
        var text = "\(name) trains on the answer score times OTC-PO's tool-efficiency factor in its \(form) "
            + "(`env.reward.tool_efficiency_form: \(method.toolEfficiencyForm!)`, docs/algorithms.md §6); \(baseline) is the same method "
            + "without it. Compare their written per answered episode: the factor on against off."
        if let answered, let without, without.mean > 0 {
            text += String(format: " Here %@ ÷ %@: %.2f (%.2f against %.2f calls).", name, baseline, answered.mean / without.mean, answered.mean, without.mean)
        } else {
            text += " No finished \(baseline) run in this report records it, so there is nothing to compare it with here."
        }
        return .paragraph(text)
    }

    // MARK: Time per step

    /// Wall time, rollout and update seconds per RL step, per method.
    func timingSection(_ methods: [TrainingMethod]) -> [ResultsBlock] {
        var rows: [[String]] = []
        for method in methods {
            let runs = finished(method)
            let steps = runs.flatMap(\.reinforcementMetrics)
            let wall = MeanAndStandardDeviation(runs.compactMap { run -> Double? in
                guard let seconds = run.summary?.wallSeconds, let count = run.summary?.rlSteps ?? run.sizes.rlSteps, count > 0 else { return nil }
                return seconds / Double(count)
            })?.mean
            let rollout = MeanAndStandardDeviation(steps.compactMap(\.rolloutSeconds))?.mean
            let update = MeanAndStandardDeviation(steps.compactMap(\.updateSeconds))?.mean
            guard wall != nil || rollout != nil || update != nil else { continue }
            rows.append([
                method.displayName, Self.formatted(wall, "%.2f s"), Self.formatted(rollout, "%.2f s"), Self.formatted(update, "%.2f s"),
                rollout != nil || update != nil ? String(format: "%.2f s", (rollout ?? 0) + (update ?? 0)) : "—",
            ])
        }
        guard !rows.isEmpty else { return [] }
        return [
            .heading("Time per RL step", level: 2),
            .table(ResultsTable(["Method", "Wall time", "Rollout", "Update", "Rollout + update"], rows: rows)),
            .paragraph("""
                Wall time: a run's `wall_seconds` ÷ its RL steps, mean over seeds; it includes the \
                run's held-out evaluations, checkpoints and any SFT of its own. Rollout and update: \
                means over every RL step of every finished run, from metrics.jsonl's \
                `rollout_seconds` and `update_seconds` (the update includes the advantages, the \
                reference and old log-probabilities and the optimizer steps).
                """),
        ]
    }

    // MARK: ARPO branching

    /// Each ARPO run's branching, then every ARPO method's runs together.
    func branchingSection(_ methods: [TrainingMethod]) -> [ResultsBlock] {
        var rows: [(String, BranchingSummary)] = []
        for method in methods where method.isARPO {
            let runs = finished(method)
            rows += runs.map { ("`\($0.name)`", BranchingSummary(runs: [$0])) }
            if runs.count > 1 { rows.append(("all \(runs.count) \(method.displayName) runs", BranchingSummary(runs: runs))) }
        }
        guard !rows.isEmpty else { return [] }
        let number = Self.formatted
        let forks = ResultsTable(
            ["Runs", "Forks per RL step", "Fork rate", "Blocked by budget per RL step", "Initial step entropy", "Step entropy after tool results", "ΔH where forked", "ΔH where not forked"],
            rows: rows.map { label, branching in
                [label, number(branching.forksPerStep, "%.2f"), number(branching.forkRate, "%.2f"), number(branching.forksBlockedByBudgetPerStep, "%.2f"),
                 number(branching.initialEntropy, "%.3f"), number(branching.entropyAfterToolResults, "%.3f"),
                 number(branching.entropyDeltaAtForks, "%.3f"), number(branching.entropyDeltaElsewhere, "%.3f")]
            })
        let byResult = ResultsTable(
            ["Runs", "Initial step entropy", "After 1st result", "After 2nd", "After 3rd", "Forks per RL step after 1st result", "After 2nd", "After 3rd"],
            rows: rows.map { label, branching in
                [label, number(branching.initialEntropy, "%.3f")] + branching.entropyAfterToolResult.map { number($0, "%.3f") }
                    + branching.forksPerStepAfterToolResult.map { number($0, "%.2f") }
            })
        return [
            .heading("ARPO branching", level: 2),
            .table(forks),
            .paragraph("""
                From metrics.jsonl: means over RL steps (a step without the value is skipped). Fork \
                rate: forks ÷ fork opportunities, each opportunity a trajectory's window after a tool \
                result, decided once (`forks` + `forks_declined_by_rule` + `forks_blocked_by_budget`, \
                summed over RL steps); blocked by budget: the rule said fork but the group already held \
                its budget. Step entropies are over k tokens in the unit of \
                `rl.branching.entropy_normalization`; ΔH is the entropy after a tool result minus the \
                trajectory's initial entropy, which sets the fork probability (docs/algorithms.md §3).
                """),
            .heading("Entropy and forks by tool result", level: 3),
            .table(byResult),
            .paragraph("""
                The step entropy over the k tokens after a trajectory's 1st, 2nd and 3rd tool result \
                (`entropy_after_tool_result_1` … `_3`) against the one at its start, and the forks taken \
                at each (`forks_after_tool_result_1` … `_3`). A fork inherits its parent's earlier \
                results, so each measurement belongs to the trajectory that first reached that result. \
                ARPO's premise (its Figure 1) is that entropy rises after tool feedback. A dash: no step \
                measured it (no trajectory got that many results, or metrics.jsonl lacks these keys).
                """),
        ]
    }
}
