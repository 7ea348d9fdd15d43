import Foundation

/// Where and from what code a results document was written: the machine, the commit and the
/// command that reproduces it. ``current(command:ignoring:)`` reads them; tests give fixed ones.
public struct ReportProvenance: Equatable, Sendable {
    /// The CPU model name (`model name` in /proc/cpuinfo).
    public var cpuModel: String
    /// Cores the process may use.
    public var cores: Int
    /// `git rev-parse HEAD`, nil outside a git work tree.
    public var commit: String?
    /// Whether tracked files differ from `commit` (nil when unknown).
    public var hasUncommittedChanges: Bool?
    /// The command that reproduces the runs and the document, as the reader should type it.
    public var command: String?
    /// When the document was written, "2025-01-31 14:05 UTC".
    public var date: String

    /// Values as given.
    public init(cpuModel: String, cores: Int, commit: String?, hasUncommittedChanges: Bool?, command: String?, date: String) {
        self.cpuModel = cpuModel
        self.cores = cores
        self.commit = commit
        self.hasUncommittedChanges = hasUncommittedChanges
        self.command = command
        self.date = date
    }
}

extension TrainingReport {
    /// Writes the Markdown results document for `runs` to `output`.
    ///
    /// - Throws: ``ReportError`` when the file cannot be written.
    public static func writeMarkdown(for runs: [ReportRun], provenance: ReportProvenance, to output: URL) throws {
        do {
            try Data(markdown(for: runs, provenance: provenance).utf8).write(to: output, options: .atomic)
        } catch {
            throw ReportError(file: output.path, problem: "cannot be written: \(error.localizedDescription)")
        }
    }

    /// A results document in Markdown, written from the runs' outputs: the summary table of the
    /// HTML page (the same ``AlgorithmSummary`` rows), ARPO's branching statistics, the
    /// experiment's sizes from the runs' `config.json`, the machine, the commit and the command.
    public static func markdown(for runs: [ReportRun], provenance: ReportProvenance) -> String {
        precondition(!runs.isEmpty, "a report needs at least one run")
        return ResultsDocument(runs: runs, provenance: provenance).markdown()
    }
}

/// The Markdown text of `arpo-train report --markdown`.
struct ResultsDocument {
    var runs: [ReportRun]
    var provenance: ReportProvenance

    func markdown() -> String {
        let summaries = TrainingReport.summaries(of: runs)
        let algorithms = summaries.map { ReportPage.displayName($0.algorithm) }
        var text = "# Results: \(algorithms.joined(separator: ", "))\n\n"
        text += "<!-- Written by `arpo-train report --markdown` from the runs' outputs; rerun it rather than editing this file. -->\n\n"
        text += "Written by `arpo-train report` on \(provenance.date) from \(runs.count) run director\(runs.count == 1 ? "y" : "ies"): "
        text += runs.map { "`\($0.directory.relativePath)`" }.joined(separator: ", ") + ".\n\n"
        text += summarySection(summaries)
        text += familySection(summaries)
        text += pairedSection()
        text += timingSection(summaries)
        text += branchingSection()
        text += experimentSection()
        text += provenanceSection()
        return text
    }

    // MARK: Summary

    func summarySection(_ summaries: [AlgorithmSummary]) -> String {
        var text = "## Summary\n\n"
        text += "| Algorithm | Runs (seeds) | Final held-out accuracy | Held-out accuracy after SFT | Tool calls per trajectory | Tool calls executed per run | Tokens generated per run | Wall time per run |\n"
        text += "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        for summary in summaries {
            var finished = String(summary.finishedRuns)
            if !summary.seeds.isEmpty { finished += " (\(summary.seeds.map(String.init).joined(separator: ", ")))" }
            if summary.unfinishedRuns > 0 { finished += ", +\(summary.unfinishedRuns) unfinished" }
            let cells = [
                ReportPage.displayName(summary.algorithm), finished,
                ReportPage.format(summary.finalAccuracy), ReportPage.format(summary.accuracyAfterSFT),
                summary.toolCallsPerTrajectory.map { String(format: "%.2f", $0) } ?? "—",
                summary.toolCallsExecutedPerRun.map(ReportPage.groupedInteger) ?? "—",
                summary.tokensGeneratedPerRun.map(ReportPage.groupedInteger) ?? "—",
                summary.wallSecondsPerRun.map(ReportPage.duration) ?? "—",
            ]
            text += "| " + cells.joined(separator: " | ") + " |\n"
        }
        text += """

            Accuracies are greedy held-out accuracies (the final one at the end of RL), mean ± sample \
            standard deviation (n − 1) over seeds; ± appears with two or more seeds. Tool calls per \
            trajectory: tool calls executed in RL rollouts ÷ RL trajectories, over every RL step of \
            every seed. Tool calls executed and tokens generated (by the policy in RL rollouts) are \
            per run; wall time is a run's whole time (SFT, RL, evaluations and checkpoints), mean \
            over seeds.

            """
        text += "\n" + totalWallTime()
        let unfinished = runs.filter { !$0.isFinished }
        if !unfinished.isEmpty {
            text += "\nLeft out (no summary.json, unfinished): " + unfinished.map { "`\($0.directory.relativePath)`" }.joined(separator: ", ") + ".\n"
        }
        return text + "\n"
    }

    /// "0.625 [0.540, 0.710]": a mean and its 95% interval, or the mean alone for one run. The
    /// bounds are cut to `range`, the values the quantity can take (an accuracy's interval over
    /// two or three seeds easily passes 0 or 1).
    static func interval(_ value: ConfidenceInterval?, within range: ClosedRange<Double>? = nil) -> String {
        guard let value else { return "—" }
        guard let halfWidth = value.halfWidth else { return String(format: "%.3f", value.mean) }
        var low = value.mean - halfWidth, high = value.mean + halfWidth
        if let range {
            low = max(low, range.lowerBound)
            high = min(high, range.upperBound)
        }
        return String(format: "%.3f [%.3f, %.3f]", value.mean, low, high)
    }

    // MARK: Per family

    /// Final held-out accuracy per task family and overall, per algorithm: mean and 95% interval
    /// over the finished runs (seeds), from each run's `summary.json`.
    func familySection(_ summaries: [AlgorithmSummary]) -> String {
        let finals = runs.compactMap { run in run.summary.map { (run.algorithm, $0) } }
        let order = ["arithmetic", "single_hop", "multi_hop", "compose", "unanswerable"]
        let families = Set(finals.flatMap { $0.1.accuracyByFamilyAfterRL?.keys.map { $0 } ?? [] })
            .sorted { (order.firstIndex(of: $0) ?? order.count, $0) < (order.firstIndex(of: $1) ?? order.count, $1) }
        guard !families.isEmpty else { return "" }
        var text = "## Final held-out accuracy per family\n\n"
        text += "| Family | " + summaries.map { ReportPage.displayName($0.algorithm) }.joined(separator: " | ") + " |\n"
        text += "| --- |" + String(repeating: " ---: |", count: summaries.count) + "\n"
        for family in families + ["all"] {
            let cells = summaries.map { summary -> String in
                let values = finals.filter { $0.0 == summary.algorithm }.compactMap { family == "all" ? $0.1.accuracyAfterRL : $0.1.accuracyByFamilyAfterRL?[family] }
                return ResultsDocument.interval(ConfidenceInterval(values), within: 0...1)
            }
            text += "| \(family == "all" ? "**all families**" : "`\(family)`") | " + cells.joined(separator: " | ") + " |\n"
        }
        text += """

            Mean over seeds [95% confidence interval: mean ± t·s/√n, Student's t with n − 1 degrees of \
            freedom, cut to [0, 1]] of each run's final accuracy (summary.json's `accuracy_by_family_after_rl`). A family's \
            accuracy rests on the episodes of that family among the evaluation's, so its interval is \
            wider than the overall one.


            """
        return text
    }

    // MARK: Paired comparison

    /// ARPO against GRPO seed by seed: runs with the same `run.seed` share the cold start and the
    /// RL prompts, so the difference per seed removes what the seeds share.
    func pairedSection() -> String {
        func bySeed(_ algorithm: String) -> [UInt64: ReportRun] {
            var result: [UInt64: ReportRun] = [:]
            for run in runs where run.algorithm == algorithm && run.isFinished { if let seed = run.seed { result[seed] = run } }
            return result
        }
        let arpo = bySeed("arpo"), grpo = bySeed("grpo")
        let seeds = Set(arpo.keys).intersection(grpo.keys).sorted()
        guard !seeds.isEmpty else { return "" }
        var text = "## ARPO against GRPO, seed by seed\n\n"
        text += "| Seed | GRPO accuracy | ARPO accuracy | ARPO − GRPO | GRPO tool calls executed | ARPO tool calls executed | ARPO ÷ GRPO tool calls |\n"
        text += "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        var differences: [Double] = [], ratios: [Double] = []
        for seed in seeds {
            let a = arpo[seed]!.summary, g = grpo[seed]!.summary
            let accuracyA = a?.accuracyAfterRL, accuracyG = g?.accuracyAfterRL
            let callsA = a?.toolCallsExecuted, callsG = g?.toolCallsExecuted
            var difference = "—", ratio = "—"
            if let accuracyA, let accuracyG {
                differences.append(accuracyA - accuracyG)
                difference = String(format: "%+.3f", accuracyA - accuracyG)
            }
            if let callsA, let callsG, callsG > 0 {
                ratios.append(Double(callsA) / Double(callsG))
                ratio = String(format: "%.2f", Double(callsA) / Double(callsG))
            }
            let cells = [
                String(seed), accuracyG.map { String(format: "%.3f", $0) } ?? "—", accuracyA.map { String(format: "%.3f", $0) } ?? "—", difference,
                callsG.map { ReportPage.groupedInteger(Double($0)) } ?? "—", callsA.map { ReportPage.groupedInteger(Double($0)) } ?? "—", ratio,
            ]
            text += "| " + cells.joined(separator: " | ") + " |\n"
        }
        text += "\n"
        if let difference = ConfidenceInterval(differences) {
            let wins = differences.filter { $0 >= 0 }.count
            text += "Mean difference in final accuracy (ARPO − GRPO): \(ResultsDocument.interval(difference, within: -1...1)) over \(difference.count) seed\(difference.count == 1 ? "" : "s") (paired; 95% interval by Student's t); ARPO at or above GRPO on \(wins) of \(differences.count).\n"
        }
        if let ratio = ConfidenceInterval(ratios) {
            text += "ARPO's RL tool calls executed as a fraction of GRPO's: \(ResultsDocument.interval(ratio)).\n"
        }
        return text + "\n"
    }

    // MARK: Time per step

    /// Mean seconds per RL step in the rollout and in the update, per algorithm.
    func timingSection(_ summaries: [AlgorithmSummary]) -> String {
        var rows: [String] = []
        for summary in summaries {
            let steps = runs.filter { $0.algorithm == summary.algorithm && $0.isFinished }.flatMap(\.reinforcementMetrics)
            let rollout = MeanAndStandardDeviation(steps.compactMap(\.rolloutSeconds))?.mean
            let update = MeanAndStandardDeviation(steps.compactMap(\.updateSeconds))?.mean
            guard rollout != nil || update != nil else { continue }
            let cells = [
                ReportPage.displayName(summary.algorithm),
                rollout.map { String(format: "%.2f s", $0) } ?? "—", update.map { String(format: "%.2f s", $0) } ?? "—",
                (rollout ?? 0) + (update ?? 0) > 0 ? String(format: "%.2f s", (rollout ?? 0) + (update ?? 0)) : "—",
            ]
            rows.append("| " + cells.joined(separator: " | ") + " |")
        }
        guard !rows.isEmpty else { return "" }
        return "## Time per RL step\n\n| Algorithm | Rollout | Update | Total |\n| --- | ---: | ---: | ---: |\n" + rows.joined(separator: "\n")
            + "\n\nMeans over every RL step of every finished run, from metrics.jsonl's `rollout_seconds` and `update_seconds` (the update includes the advantages, the reference and old log-probabilities and the optimizer steps).\n\n"
    }

    /// The whole experiment's wall time: every finished run, plus each shared cold start once.
    func totalWallTime() -> String {
        let runSeconds = runs.compactMap { $0.summary?.wallSeconds }.reduce(0, +)
        var coldStarts: [URL: Double] = [:]
        for run in runs { if let coldStart = run.coldStart, let seconds = coldStart.summary?.wallSeconds { coldStarts[coldStart.directory] = seconds } }
        let coldSeconds = coldStarts.values.reduce(0, +)
        var text = "Wall time summed over the runs"
        if !coldStarts.isEmpty { text += " and the cold start" }
        text += ": \(ReportPage.duration(runSeconds + coldSeconds))"
        if !coldStarts.isEmpty {
            text += " (runs \(ReportPage.duration(runSeconds)), cold start \(ReportPage.duration(coldSeconds)))"
        }
        return text + ".\n"
    }

    // MARK: ARPO branching

    func branchingSection() -> String {
        let arpo = runs.filter { $0.algorithm == "arpo" && $0.isFinished }
        guard !arpo.isEmpty else { return "" }
        func number(_ value: Double?, _ format: String = "%.3f") -> String { value.map { String(format: format, $0) } ?? "—" }
        var text = "## ARPO branching\n\n"
        text += "| Runs | Forks per RL step | Initial step entropy | Step entropy after tool results | ΔH where forked | ΔH where not forked |\n"
        text += "| --- | ---: | ---: | ---: | ---: | ---: |\n"
        var rows: [(String, BranchingSummary)] = arpo.map { ("`\($0.name)`", BranchingSummary(runs: [$0])) }
        if arpo.count > 1 { rows.append(("all \(arpo.count) ARPO runs", BranchingSummary(runs: arpo))) }
        for (label, branching) in rows {
            text += "| \(label) | \(number(branching.forksPerStep, "%.2f")) | \(number(branching.initialEntropy)) | \(number(branching.entropyAfterToolResults)) | \(number(branching.entropyDeltaAtForks)) | \(number(branching.entropyDeltaElsewhere)) |\n"
        }
        text += """

            From metrics.jsonl: means over RL steps (a step without the value is skipped). Step \
            entropies are over k tokens in the unit of `rl.branching.entropy_normalization`; ΔH is \
            the entropy after a tool result minus the trajectory's initial entropy, which sets the \
            fork probability (docs/algorithms.md §3).


            """
        text += "### Entropy and forks by tool result\n\n"
        text += "| Runs | Initial step entropy | After 1st result | After 2nd | After 3rd | Forks per RL step after 1st result | After 2nd | After 3rd |\n"
        text += "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        for (label, branching) in rows {
            let entropies = branching.entropyAfterToolResult.map { number($0) }
            let forks = branching.forksPerStepAfterToolResult.map { number($0, "%.2f") }
            text += "| \(label) | \(number(branching.initialEntropy)) | \(entropies.joined(separator: " | ")) | \(forks.joined(separator: " | ")) |\n"
        }
        text += """

            The step entropy over the k tokens after a trajectory's 1st, 2nd and 3rd tool result \
            (`entropy_after_tool_result_1` … `_3`) against the one at its start, and the forks taken \
            at each (`forks_after_tool_result_1` … `_3`). A fork inherits its parent's earlier \
            results, so each measurement belongs to the trajectory that first reached that result. \
            ARPO's premise (its Figure 1) is that entropy rises after tool feedback. A dash: no step \
            measured it (no trajectory got that many results, or metrics.jsonl lacks these keys).


            """
        return text
    }

    // MARK: Experiment

    /// One value when every run agrees; otherwise each value with the runs that have it, named by
    /// algorithm when a value holds for whole algorithms.
    func agreed(_ value: (ReportRun) -> String?) -> String {
        let values = runs.map { value($0) ?? "unknown" }
        var distinct: [String] = []
        for value in values where !distinct.contains(value) { distinct.append(value) }
        if distinct.count == 1 { return distinct[0] }
        return distinct.map { candidate in
            let holders = runs.indices.filter { values[$0] == candidate }.map { runs[$0] }
            var algorithms: [String] = []
            for run in holders where !algorithms.contains(run.algorithm) { algorithms.append(run.algorithm) }
            let wholeAlgorithms = algorithms.allSatisfy { algorithm in
                runs.filter { $0.algorithm == algorithm }.allSatisfy { run in holders.contains { $0.directory == run.directory } }
            }
            let names = wholeAlgorithms ? algorithms.map(ReportPage.displayName) : holders.map(\.name)
            return "\(candidate) (\(names.joined(separator: ", ")))"
        }.joined(separator: "; ")
    }

    func experimentSection() -> String {
        func count(_ value: Int?) -> String { value.map { ReportPage.groupedInteger(Double($0)) } ?? "?" }
        func plural(_ value: Int, _ noun: String) -> String { "\(value) \(noun)\(value == 1 ? "" : "s")" }
        var rows: [(String, String)] = []
        rows.append(("Model", agreed { run in
            guard let model = run.configuration.model else { return nil }
            var parts = ["LLaMA decoder"]
            if let layers = model.layers { parts.append(plural(layers, "layer")) }
            if let width = model.hiddenSize { parts.append("width \(width)") }
            if let width = model.intermediateSize { parts.append("MLP \(width)") }
            if let heads = model.attentionHeads {
                parts.append(plural(heads, "head") + (model.keyValueHeads.map { $0 != heads ? " (\($0) key-value)" : "" } ?? ""))
            }
            if let context = model.contextLength { parts.append("context \(context)") }
            return parts.joined(separator: ", ")
        }))
        var parameters = agreed { run in run.summary?.parameters.map { ReportPage.groupedInteger(Double($0)) } }
        if runs.contains(where: { $0.configuration.model?.valueHead == true }) {
            parameters += "; counts include the value head (width + 1 parameters) in runs with one"
        }
        rows.append(("Parameters", parameters))
        rows.append(("Cold start (SFT)", agreed(coldStart)))
        rows.append(("RL", agreed { run in
            guard let rl = run.configuration.rl else { return nil }
            var text = "\(count(rl.steps)) steps × \(count(rl.promptsPerStep)) prompts per step"
            if let tokens = rl.maxResponseTokens { text += ", at most \(tokens) response tokens" }
            if let rate = rl.learningRate { text += ", learning rate \(rate)" }
            return text
        }))
        rows.append(("Trajectories per prompt", agreed { run in
            guard let rl = run.configuration.rl else { return nil }
            guard run.algorithm == "arpo" else { return "group size G = \(count(rl.groupSize))" }
            let branching = rl.branching
            return "budget M = \(count(branching?.budget)) (\(count(branching?.initialSamples)) initial samples, branch factor \(count(branching?.branchFactor)), threshold \(branching?.threshold.map { String($0) } ?? "?"))"
        }))
        rows.append(("Held-out evaluation", agreed { run in
            guard let evaluation = run.configuration.eval, let episodes = evaluation.episodes else { return nil }
            let every = evaluation.every.map { $0 > 0 ? ", every \($0) RL steps" : "" } ?? ""
            return "\(episodes) eval-split episodes, greedy, after SFT\(every) and at the end"
        }))
        rows.append(("Tasks", agreed { run in
            guard let environment = run.configuration.env else { return nil }
            var parts: [String] = []
            if let difficulty = environment.difficulty { parts.append("difficulty \(difficulty)") }
            if let mix = environment.taskMix {
                parts.append("mix " + mix.keys.sorted().map { "\($0) \(Self.number(mix[$0]!))" }.joined(separator: ", "))
            }
            return parts.isEmpty ? nil : parts.joined(separator: "; ")
        }))
        rows.append(("BLAS threads per run", agreed { run in run.configuration.run?.threads.map(String.init) }))
        var text = "## Experiment\n\nRead from each run's `config.json` and `summary.json`.\n\n| | |\n| --- | --- |\n"
        for (name, value) in rows { text += "| \(name) | \(value) |\n" }
        return text + "\n"
    }

    /// The run's own SFT, or the shared cold start it was initialised from.
    func coldStart(_ run: ReportRun) -> String? {
        guard let sft = run.configuration.sft else { return nil }
        func describe(_ sft: ReportConfigurationFile.Supervised) -> String {
            "\(sft.steps.map(String.init) ?? "?") steps × \(sft.batchSize.map(String.init) ?? "?") demonstrations per step (\(sft.demonstrations.map(String.init) ?? "?") distinct)"
        }
        guard let initial = sft.initFrom else { return "each run's own: " + describe(sft) }
        var text = "shared: `\(initial)`"
        if let coldStart = run.coldStart?.configuration?.sft {
            text += ", trained with " + describe(coldStart)
        } else {
            text += " (its run's config.json was not found)"
        }
        if let steps = sft.steps, steps > 0 { text += ", then \(describe(sft)) in each run" }
        return text
    }

    static func number(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }

    // MARK: Machine and code

    func provenanceSection() -> String {
        var text = "## Machine and code\n\n"
        text += "- Machine: \(provenance.cpuModel), \(provenance.cores) core\(provenance.cores == 1 ? "" : "s") (where this document was written)\n"
        if let commit = provenance.commit {
            text += "- Commit: `\(commit)`"
            if provenance.hasUncommittedChanges == true { text += ", with uncommitted changes to tracked files" }
            text += "\n"
        } else {
            text += "- Commit: unknown (not written in a git work tree)\n"
        }
        if let command = provenance.command {
            text += "- Reproduce: `\(command)`\n"
        }
        return text
    }
}
