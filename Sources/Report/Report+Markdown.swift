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
    /// HTML page (the same ``MethodSummary`` rows); per method, the final accuracy per family, each
    /// ARPO variant without tree signals against GRPO and each one with them against ARPO seed by
    /// seed, tool calls, time per step and ARPO's branching (the tables the HTML page shows too);
    /// the experiment's sizes from the runs' `config.json`; the machine, the commit and the
    /// command.
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
        var text = "# Results: \(summaries.map(\.method.displayName).joined(separator: ", "))\n\n"
        text += "<!-- Written by `arpo-train report --markdown` from the runs' outputs; rerun it rather than editing this file. -->\n\n"
        text += "Written by `arpo-train report` on \(provenance.date) from \(runs.count) run director\(runs.count == 1 ? "y" : "ies"): "
        text += runs.map { "`\($0.directory.relativePath)`" }.joined(separator: ", ") + ".\n\n"
        text += summarySection(summaries)
        text += MethodComparison(runs: runs).blocks().map(\.markdown).joined()
        text += experimentSection()
        text += provenanceSection()
        return text
    }

    // MARK: Summary

    func summarySection(_ summaries: [MethodSummary]) -> String {
        var text = "## Summary\n\n"
        let table = ResultsTable(
            columns: [
                "Method", "Runs (seeds)", "Final held-out accuracy", "Held-out accuracy after SFT", "Tool calls executed per trajectory",
                "Tool calls written per answered episode", "Tool calls executed per run", "Tokens generated per run", "Wall time per run",
            ].enumerated().map { ResultsTable.Column(title: $1, isNumeric: $0 > 1) },
            rows: summaries.map { summary in
                var finished = String(summary.finishedRuns)
                if !summary.seeds.isEmpty { finished += " (\(summary.seeds.map(String.init).joined(separator: ", ")))" }
                if summary.unfinishedRuns > 0 { finished += ", +\(summary.unfinishedRuns) unfinished" }
                return [
                    summary.method.displayName, finished,
                    ReportPage.format(summary.finalAccuracy), ReportPage.format(summary.accuracyAfterSFT),
                    MethodComparison.formatted(summary.toolCallsExecutedPerTrajectory, "%.2f"), MethodComparison.formatted(summary.toolCallsWrittenPerAnsweredEpisode, "%.2f"),
                    summary.toolCallsExecutedPerRun.map(ReportPage.groupedInteger) ?? "—",
                    summary.tokensGeneratedPerRun.map(ReportPage.groupedInteger) ?? "—",
                    summary.wallSecondsPerRun.map(ReportPage.duration) ?? "—",
                ]
            })
        text += table.markdown
        text += """

            Accuracies are greedy held-out accuracies (the final one at the end of RL), mean ± sample \
            standard deviation (n − 1) over seeds; ± appears with two or more seeds. Tool calls \
            executed per trajectory: tool calls the environment ran in RL rollouts ÷ RL trajectories, \
            over every RL step of every seed (a call a fork inherited ran once, in its parent). Tool \
            calls written per answered episode: the executed calls in the transcript of each RL \
            trajectory that ended with an answer, inherited ones included, mean over RL steps (see \
            Tool calls below). Tool calls executed and tokens generated (by the policy in RL \
            rollouts) are per run; wall time is a run's whole time (SFT, RL, evaluations and \
            checkpoints), mean over seeds.

            """
        if let methods = methodNote(summaries.map(\.method)) { text += "\n" + methods + "\n" }
        if let warning = hardAttributionWarning() { text += "\n" + warning + "\n" }
        text += "\n" + totalWallTime()
        let unfinished = runs.filter { !$0.isFinished }
        if !unfinished.isEmpty {
            text += "\nLeft out (no summary.json, unfinished): " + unfinished.map { "`\($0.directory.relativePath)`" }.joined(separator: ", ") + ".\n"
        }
        return text + "\n"
    }

    /// What the names in parentheses mean, when a method has one.
    func methodNote(_ methods: [TrainingMethod]) -> String? {
        var sentences: [String] = []
        let variants = methods.filter { $0.advantageMode != nil }
        if !variants.isEmpty {
            let text = "A method is the runs' `rl.algorithm`, with `rl.advantage.mode` in parentheses where the mode changes the advantages (docs/algorithms.md §4.2): "
            var parts = variants.map { "\($0.displayName) uses `\($0.advantageMode!)`" }
            if methods.contains(TrainingMethod(algorithm: "arpo", advantageMode: nil)) { parts.append("ARPO uses the default soft attribution (`arpo-soft`)") }
            sentences.append(text + parts.joined(separator: ", ") + ".")
        }
        let tree = methods.filter(\.usesTreeSignal)
        if !tree.isEmpty {
            sentences.append("DPO, memory bank and AEPO in parentheses, and tree as the mode: the method trains with a tree signal, the tree advantages "
                + "(`rl.advantage.mode: tree`, docs/algorithms.md §4.4), the DPO term at fork points (`rl.loss.dpo_coefficient` > 0, §5.6), "
                + "the memory bank (`rl.memory_bank.coefficient` or `contrastive_coefficient` > 0, §5.7) or AEPO's branching "
                + "(`rl.branching.rule: entropy-balanced`, §3.1): " + tree.map(\.displayName).joined(separator: ", ")
                + ". Each is compared seed by seed with the same method without those signals; the ARPO variants without them are compared with GRPO.")
        }
        let efficient = methods.filter(\.usesToolEfficiency)
        if !efficient.isEmpty {
            sentences.append("OTC in parentheses: the training reward multiplies the answer score by OTC-PO's tool-efficiency factor "
                + "(`env.reward.tool_efficiency: true`; OTC group: `tool_efficiency_form: group`, OTC: `group-free`; docs/algorithms.md §6): "
                + efficient.map(\.displayName).joined(separator: ", ") + ". Held-out accuracy is greedy and counts correct answers, so it "
                + "does not depend on the training reward and compares across methods; the training `reward_mean` does depend on it.")
        }
        return sentences.isEmpty ? nil : sentences.joined(separator: " ")
    }

    /// `arpo-hard` at one update per rollout batch gives exactly `arpo-soft`'s gradient, so such
    /// a comparison of the two measures noise (docs/algorithms.md §4.2).
    func hardAttributionWarning() -> String? {
        let single = runs.filter { $0.method.isARPO && $0.method.advantageMode == "arpo-hard" && $0.updatesPerRolloutBatch == 1 }
        guard !single.isEmpty else { return nil }
        return "**Note:** \(single.count) ARPO (hard) run\(single.count == 1 ? "" : "s") took one update per rollout batch "
            + "(`rl.epochs` × `rl.mini_batches` = 1), where `arpo-hard` gives exactly `arpo-soft`'s gradient (docs/algorithms.md §4.2): "
            + "a difference between ARPO (hard) and ARPO there is seed noise. Set `rl.mini_batches` or `rl.epochs` above 1 to compare them."
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

    // MARK: Experiment

    /// One value when every run agrees; otherwise each value with the runs that have it, named by
    /// method when a value holds for whole methods.
    func agreed(_ value: (ReportRun) -> String?) -> String {
        let values = runs.map { value($0) ?? "unknown" }
        var distinct: [String] = []
        for value in values where !distinct.contains(value) { distinct.append(value) }
        if distinct.count == 1 { return distinct[0] }
        return distinct.map { candidate in
            let holders = runs.indices.filter { values[$0] == candidate }.map { runs[$0] }
            let methods = TrainingReport.methods(of: holders)
            let wholeMethods = methods.allSatisfy { method in
                runs.filter { $0.method == method }.allSatisfy { run in holders.contains { $0.directory == run.directory } }
            }
            let names = wholeMethods ? methods.map(\.displayName) : holders.map(\.name)
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
        rows.append(("Advantages", agreed { run in
            // GRPO's default mode is `arpo-soft`, which without forks is plain group normalisation.
            switch (run.algorithm, run.method.advantageMode) {
            case ("ppo", _): "GAE"
            case ("grpo", nil): "group-normalised"
            default: run.configuration.rl.map { "`\($0.advantage?.mode ?? "arpo-soft")`" }
            }
        }))
        if runs.contains(where: \.method.usesTreeSignal) {
            rows.append(("Tree signals", agreed { run in
                let method = run.method
                let signals = [
                    method.usesDPO ? "DPO term (`rl.loss.dpo_coefficient`)" : nil,
                    method.usesMemoryBank ? "memory bank (`rl.memory_bank`)" : nil,
                    method.usesEntropyBalancedBranching ? "AEPO branching (`entropy-balanced`)" : nil,
                ].compactMap { $0 }
                return signals.isEmpty ? "none besides the advantages" : signals.joined(separator: ", ")
            }))
        }
        if runs.contains(where: \.method.usesToolEfficiency) {
            rows.append(("Training reward", agreed { run in
                run.method.toolEfficiencyForm.map { "answer score × OTC-PO tool efficiency, `\($0)` form" } ?? "answer score, no tool-efficiency factor"
            }))
        }
        rows.append(("Updates per rollout batch", agreed { run in
            guard let rl = run.configuration.rl else { return nil }
            let miniBatches = rl.miniBatches ?? 1
            return "\(plural(rl.epochs ?? 1, "epoch")) × \(miniBatches) mini-batch\(miniBatches == 1 ? "" : "es")"
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
                parts.append("mix " + mix.keys.sorted().map { "\($0) \(Self.plainNumber(mix[$0]!))" }.joined(separator: ", "))
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

    /// A whole number without decimals, any other as Swift prints it.
    static func plainNumber(_ value: Double) -> String {
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
