import Foundation
import RunRecords

/// The report's HTML: a header with the experiment's sizes and the runs, the summary table per
/// method, the results document's comparison tables, then the charts. Plain CSS and system fonts;
/// no script and no external resource.
struct ReportPage {
    var runs: [ReportRun]
    /// Each run's legend label and line style, in run order.
    var appearances: [(label: String, style: SeriesStyle)]

    /// Colour-blind-safe colours (Okabe and Ito) by method, keyed by its display name.
    static let methodColors = ["ARPO": "#D55E00", "ARPO (hard)": "#CC79A7", "GRPO": "#0072B2", "PPO": "#009E73"]
    /// The colours of other methods, in order of first appearance: with the four above, the eight
    /// methods of scripts/compare.sh each get their own.
    static let otherColors = ["#E69F00", "#56B4E9", "#000000", "#F0E442"]
    /// Dash patterns by seed: the report's lowest seed solid, the next dashed, and so on, so one
    /// seed looks the same in every method.
    static let dashes: [String?] = [nil, "8 4", "2 3", "10 3 2 3", "5 5", "1 4"]
    /// The grey of "initial entropy" bars.
    static let initialEntropyColor = "#A0A0A0"

    init(runs: [ReportRun]) {
        self.runs = runs
        let seeds = Set(runs.compactMap(\.seed)).sorted()
        let otherMethods = TrainingReport.methods(of: runs).filter { Self.methodColors[$0.displayName] == nil }
        var dashesTaken: [TrainingMethod: Set<Int>] = [:]
        let baseLabels = runs.map { run in
            run.method.displayName + (run.seed.map { " seed \($0)" } ?? "")
        }
        appearances = runs.enumerated().map { index, run in
            let color = Self.methodColors[run.method.displayName]
                ?? Self.otherColors[otherMethods.firstIndex(of: run.method)! % Self.otherColors.count]
            // Two runs of one method and seed (say, a learning-rate sweep) take the next free
            // dash, and their labels add the directory's name.
            var dash = run.seed.flatMap { seeds.firstIndex(of: $0) } ?? seeds.count
            while dashesTaken[run.method, default: []].contains(dash) { dash += 1 }
            dashesTaken[run.method, default: []].insert(dash)
            var label = baseLabels[index]
            if baseLabels.filter({ $0 == label }).count > 1 { label += " (\(run.name))" }
            if !run.isFinished { label += " · unfinished" }
            return (label, SeriesStyle(color: color, dash: Self.dashes[dash % Self.dashes.count]))
        }
    }

    func html() -> String {
        let title = "Training report: " + runs.map(\.name).joined(separator: ", ")
        return """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(title.escapedForHTML)</title>
            <style>
            \(Self.css)
            </style>
            </head>
            <body>
            <h1>Training report</h1>
            \(header())
            <h2>Runs</h2>
            \(runsTable())
            <h2>Summary by method</h2>
            \(summaryTable())
            \(comparisonTables())
            <h2>Held-out accuracy</h2>
            <div class="charts">
            \(accuracyCharts().joined(separator: "\n"))
            </div>
            <h2>Training (RL steps)</h2>
            <div class="charts">
            \(trainingCharts().joined(separator: "\n"))
            </div>
            \(rewardNote())
            <h2>ARPO: entropy after tool results and forks</h2>
            \(arpoSection())
            \(treeSection())
            </body>
            </html>

            """
    }

    static let css = """
        body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #1d1d1f; max-width: 1320px; margin: 20px auto; padding: 0 16px; }
        h1 { font-size: 22px; margin: 0 0 6px; }
        h2 { font-size: 17px; margin: 26px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #ddd; }
        p { margin: 4px 0; }
        .note { color: #666; font-size: 13px; }
        .unfinished { color: #A04000; white-space: nowrap; }
        table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
        th, td { padding: 4px 10px; border-bottom: 1px solid #e6e6e6; text-align: right; }
        th { background: #f5f5f5; font-weight: 600; vertical-align: bottom; }
        th.text, td.text { text-align: left; }
        .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 16px; }
        svg.chart { width: 100%; height: auto; border: 1px solid #ddd; border-radius: 4px; background: #fff; }
        svg.chart text { font-size: 12px; fill: #333; }
        svg.chart .chart-title { font-size: 15px; font-weight: 600; fill: #111; }
        svg.chart .chart-subtitle { font-size: 11.5px; fill: #666; }
        svg.chart .axis-title { font-size: 12.5px; }
        svg.chart .tick { font-size: 11px; fill: #555; }
        svg.tree { border: 1px solid #ddd; border-radius: 4px; background: #fff; margin: 6px 0 14px; }
        svg.tree text { font-size: 11px; fill: #222; }
        svg.tree .tree-title { font-size: 13px; font-weight: 600; }
        svg.tree .tree-note { font-size: 11px; fill: #666; }
        """

    // MARK: Header and tables

    /// The runs' names and the experiment's sizes, written once when every run shares them.
    func header() -> String {
        var html = "<p>\(runs.count) run\(runs.count == 1 ? "" : "s"): "
        html += runs.map { "<code title=\"\($0.directory.path.escapedForHTML)\">\($0.name.escapedForHTML)</code>" }.joined(separator: ", ")
        html += "</p>\n"
        let sizes = Set(runs.map { Self.describe($0.sizes) })
        if sizes.count == 1 {
            html += "<p>Experiment: \(sizes.first!)</p>\n"
            let coldStarts = Set(runs.map { $0.coldStart?.directory.path })
            if coldStarts.count == 1, let shared = coldStarts.first!, runs.count > 1 {
                html += "<p>Every run starts from the same cold start, <code>\(shared.escapedForHTML)</code> (<code>sft.init_from</code>), so its own SFT has 0 steps.</p>\n"
            }
        } else {
            html += "<p>Experiment sizes differ between runs; see the runs table.</p>\n"
        }
        return html
    }

    static func describe(_ sizes: ExperimentSizes) -> String {
        func count(_ value: Int?) -> String { value.map(String.init) ?? "?" }
        return "SFT \(count(sizes.sftSteps)) steps, then RL \(count(sizes.rlSteps)) steps × \(count(sizes.promptsPerStep)) prompts per step × \(count(sizes.trajectoriesPerPrompt)) trajectories per prompt"
    }

    func runsTable() -> String {
        var html = """
            <table>
            <tr><th class="text">Run directory</th><th class="text">Chart label</th><th>Seed</th><th>SFT steps</th><th>RL steps</th><th>Prompts per step</th><th>Trajectories per prompt</th><th class="text">Status</th></tr>

            """
        for (run, appearance) in zip(runs, appearances) {
            let status: String
            if run.isFinished {
                status = "finished"
            } else {
                let done = run.reinforcementMetrics.count
                status = "<span class=\"unfinished\">unfinished (no summary.json): \(done) of \(run.sizes.rlSteps.map(String.init) ?? "?") RL steps</span>"
            }
            let cells = [
                run.seed.map { String($0) } ?? "—", Self.cell(run.sizes.sftSteps), Self.cell(run.sizes.rlSteps),
                Self.cell(run.sizes.promptsPerStep), Self.cell(run.sizes.trajectoriesPerPrompt),
            ]
            html += "<tr><td class=\"text\" title=\"\(run.directory.path.escapedForHTML)\">\(run.name.escapedForHTML)</td>"
            html += "<td class=\"text\" style=\"color: \(appearance.style.color)\">\(appearance.label.escapedForHTML)</td>"
            html += cells.map { "<td>\($0)</td>" }.joined()
            html += "<td class=\"text\">\(status)</td></tr>\n"
        }
        return html + "</table>"
    }

    static func cell(_ value: Int?) -> String { value.map(String.init) ?? "—" }

    func summaryTable() -> String {
        var html = """
            <table>
            <tr><th class="text">Method</th><th>Finished runs</th><th>Held-out accuracy<br>after SFT</th><th>Final held-out accuracy<br>(mean ± std over seeds)</th><th>Tool calls executed per trajectory<br>(RL executions ÷ RL trajectories)</th><th>Tool calls written per answered episode<br>(RL, inherited calls included)</th><th>Tool calls executed per run<br>(RL)</th><th>Tokens generated per run<br>(sum over RL steps)</th><th>Wall time per run</th></tr>

            """
        for summary in TrainingReport.summaries(of: runs) {
            var finished = String(summary.finishedRuns)
            if summary.unfinishedRuns > 0 { finished += "&nbsp;<span class=\"unfinished\">(+\(summary.unfinishedRuns) unfinished)</span>" }
            let cells = [
                finished,
                Self.format(summary.accuracyAfterSFT),
                Self.format(summary.finalAccuracy),
                MethodComparison.formatted(summary.toolCallsExecutedPerTrajectory, "%.2f"),
                MethodComparison.formatted(summary.toolCallsWrittenPerAnsweredEpisode, "%.2f"),
                summary.toolCallsExecutedPerRun.map { Self.groupedInteger($0) } ?? "—",
                summary.tokensGeneratedPerRun.map { Self.groupedInteger($0) } ?? "—",
                summary.wallSecondsPerRun.map(Self.duration) ?? "—",
            ]
            html += "<tr><td class=\"text\">\(summary.method.displayName.escapedForHTML)</td>" + cells.map { "<td>\($0)</td>" }.joined() + "</tr>\n"
        }
        html += "</table>\n"
        html += "<p class=\"note\">Over finished runs (those with summary.json); unfinished runs appear only in the charts. ± is the sample standard deviation (n − 1), shown with two or more runs. Per-run figures are means over runs. The tool-call columns are defined under Tool calls below.</p>"
        return html
    }

    /// The results document's tables per method (per family, ARPO variants against GRPO, tree
    /// methods against ARPO, tool calls, time per step, branching), over finished runs.
    func comparisonTables() -> String {
        MethodComparison(runs: runs).blocks().map(\.html).joined()
    }

    /// "0.625 ± 0.177", or "0.375" for a single run, or "—".
    static func format(_ statistics: MeanAndStandardDeviation?) -> String {
        guard let statistics else { return "—" }
        let mean = String(format: "%.3f", statistics.mean)
        return statistics.standardDeviation.map { mean + " ± " + String(format: "%.3f", $0) } ?? mean
    }

    /// A rounded whole number with thousands separators, independent of the locale: "12,345".
    static func groupedInteger(_ value: Double) -> String {
        let digits = String(Int(value.rounded()).magnitude)
        var grouped = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { grouped += "," }
            grouped.append(digit)
        }
        return (value < -0.5 ? "-" : "") + grouped
    }

    /// "12.3 s", "4 min 05 s", "2 h 03 min".
    static func duration(_ seconds: Double) -> String {
        if seconds < 60 { return String(format: "%.1f s", seconds) }
        let whole = Int(seconds.rounded())
        if whole < 3600 { return String(format: "%d min %02d s", whole / 60, whole % 60) }
        return String(format: "%d h %02d min", whole / 3600, (whole % 3600) / 60)
    }

    // MARK: Charts

    /// A line per run of an evaluation value against `x`; evaluations without an x are skipped.
    func evaluationSeries(x: (HeldOutEvaluation) -> Int?) -> [ChartSeries] {
        zip(runs, appearances).map { run, appearance in
            ChartSeries(label: appearance.label, style: appearance.style, values: run.evaluations.compactMap { evaluation in
                x(evaluation).map { (Double($0), evaluation.accuracy) }
            })
        }
    }

    /// A line per run (of those selected) of an RL metric against the global step; a null value
    /// leaves a gap.
    func stepSeries(where include: (ReportRun) -> Bool = { _ in true }, _ value: (StepMetrics) -> Double?) -> [ChartSeries] {
        zip(runs, appearances).filter { include($0.0) }.map { run, appearance in
            ChartSeries(label: appearance.label, style: appearance.style, values: run.reinforcementMetrics.map { (Double($0.step), value($0)) })
        }
    }

    static let stepTitle = "Step (global: RL steps continue after the SFT steps)"

    func accuracyCharts() -> [String] {
        [
            LineChart(
                title: "Held-out accuracy against step",
                subtitle: "eval.jsonl; the first point of each run is the evaluation after SFT",
                xTitle: Self.stepTitle, yTitle: "Held-out accuracy",
                series: evaluationSeries { $0.step }, yRange: 0...1).svg(),
            LineChart(
                title: "Held-out accuracy against tool calls executed",
                subtitle: "x: cumulative tool calls executed in RL rollouts (0 at the post-SFT evaluation)",
                xTitle: "Cumulative tool calls executed (RL)", yTitle: "Held-out accuracy",
                series: evaluationSeries { $0.cumulativeToolCalls }, yRange: 0...1).svg(),
        ]
    }

    func trainingCharts() -> [String] {
        [
            LineChart(
                title: "Reward", subtitle: "metrics.jsonl reward_mean: mean over the step's trajectories",
                xTitle: Self.stepTitle, yTitle: "Mean reward", series: stepSeries { $0.rewardMean }).svg(),
            LineChart(
                title: "Entropy", subtitle: "metrics.jsonl entropy: the policy's mean entropy over the trained tokens",
                xTitle: Self.stepTitle, yTitle: "Entropy (nats)", series: stepSeries { $0.entropy }).svg(),
            LineChart(
                title: "KL to the reference policy", subtitle: "metrics.jsonl reference_kl: KL(policy ‖ frozen post-SFT policy), mean over trained tokens",
                xTitle: Self.stepTitle, yTitle: "KL (nats per token)", series: stepSeries { $0.referenceKL },
                yIncludesZero: true).svg(),
            LineChart(
                title: "Tool calls per trajectory", subtitle: "metrics.jsonl tool_calls_per_trajectory in the step's rollouts",
                xTitle: Self.stepTitle, yTitle: "Tool calls per trajectory", series: stepSeries { $0.toolCallsPerTrajectory },
                yIncludesZero: true).svg(),
        ]
    }

    /// With a method trained on OTC-PO's tool-efficiency factor, its reward_mean is on another
    /// scale than the others'; held-out accuracy is not.
    func rewardNote() -> String {
        let efficient = TrainingReport.methods(of: runs).filter(\.usesToolEfficiency)
        guard !efficient.isEmpty else { return "" }
        let names = efficient.map { $0.displayName.escapedForHTML }.joined(separator: ", ")
        return "<p class=\"note\">\(names): the training reward multiplies the answer score by OTC-PO's tool-efficiency factor "
            + "(docs/algorithms.md §6), so its reward_mean includes a factor of at most 1 set by the tool calls and is not comparable with the other methods'. "
            + "Held-out accuracy is greedy and counts correct answers, so it does not depend on the training reward.</p>"
    }

    /// ARPO's fork probability grows with dH = H_t − H_init, the step entropy just after a tool
    /// result minus the trajectory's initial step entropy (docs/algorithms.md §3), so the page sets the two
    /// side by side, draws their difference per step, then shows how many forks happened.
    func arpoSection() -> String {
        let isARPO: (ReportRun) -> Bool = { $0.method.isARPO }
        let arpoRuns = zip(runs, appearances).filter { isARPO($0.0) }
        guard !arpoRuns.isEmpty else {
            return "<p class=\"note\">No ARPO run in this report, so there are no entropy-after-tool-results or fork charts.</p>"
        }
        let comparison = BarChart(
            title: "ARPO: entropy after tool results against initial entropy",
            subtitle: "mean over RL steps of entropy_initial and entropy_after_tool_results (null steps skipped)",
            yTitle: "Step entropy",
            categories: [
                LegendEntry(label: "initial (first response tokens)", style: SeriesStyle(color: Self.initialEntropyColor)),
                LegendEntry(label: "just after tool results", style: SeriesStyle(color: Self.methodColors["ARPO"]!)),
            ],
            groups: arpoRuns.map { run, appearance in
                let branching = BranchingSummary(runs: [run])
                return BarChart.Group(label: appearance.label, values: [branching.initialEntropy, branching.entropyAfterToolResults])
            })
        let difference = LineChart(
            title: "ARPO: entropy after tool results minus initial entropy",
            subtitle: "metrics.jsonl, per step; above 0, tool results raise the policy's uncertainty",
            xTitle: Self.stepTitle, yTitle: "dH = H after tool − H initial",
            series: stepSeries(where: isARPO) { step in
                guard let after = step.entropyAfterToolResults, let initial = step.initialEntropy else { return nil }
                return after - initial
            },
            yIncludesZero: true)
        let forks = LineChart(
            title: "ARPO: forks per step", subtitle: "metrics.jsonl forks: branches started at high-entropy tokens",
            xTitle: Self.stepTitle, yTitle: "Forks", series: stepSeries(where: isARPO) { $0.forks.map(Double.init) },
            yIncludesZero: true)
        return "<div class=\"charts\">\n" + [comparison.svg(), difference.svg(), forks.svg()].joined(separator: "\n") + "\n</div>"
    }
}
