import Foundation
import Report
import RunRecords
import Trainer
import XCTest

/// `arpo-train report` on synthetic run directories whose numbers are worked out by hand.
final class ReportTests: XCTestCase {
    /// The charts' titles, in page order, when the report holds an ARPO run.
    static let chartTitles = [
        "Held-out accuracy against step",
        "Held-out accuracy against tool calls executed",
        "Reward",
        "Entropy",
        "KL to the reference policy",
        "Tool calls per trajectory",
        "ARPO: entropy after tool results against initial entropy",
        "ARPO: entropy after tool results minus initial entropy",
        "ARPO: forks per step",
    ]

    func testReportOfAnARPORunAndAGRPORunHasOneTitledChartPerMetric() throws {
        let root = try temporaryDirectory(self)
        let arpo = try SyntheticRunDirectory(algorithm: "arpo", seed: 1).write(in: root, name: "arpo-seed1")
        let grpo = try SyntheticRunDirectory(algorithm: "grpo", seed: 1, finalAccuracy: 0.375, toolCalls: [8, 8, 8]).write(in: root, name: "grpo-seed1")
        let output = root.appendingPathComponent("report.html")
        try TrainingReport.write(runDirectories: [arpo, grpo], to: output)
        let html = try String(contentsOf: output, encoding: .utf8)

        let charts = Self.charts(in: html)
        XCTAssertEqual(charts.count, Self.chartTitles.count, "one <svg> per metric")
        for (chart, title) in zip(charts, Self.chartTitles) {
            XCTAssertTrue(chart.contains("<text class=\"chart-title\" x=\"70.0\" y=\"22\">\(title)</text>"), "chart lacks the title \(title)")
            // A line chart titles both axes; the bar chart's x axis is its runs, labelled under each group.
            XCTAssertEqual(chart.components(separatedBy: "class=\"axis-title\"").count - 1, title == Self.chartTitles[6] ? 1 : 2, title)
            XCTAssertFalse(chart.contains("No data"), "\(title) is empty")
        }
        // Every line chart has a legend entry per run it draws: both runs, or the ARPO run alone.
        for chart in charts.prefix(6) {
            XCTAssertTrue(chart.contains(">ARPO seed 1</text>") && chart.contains(">GRPO seed 1</text>"), "a legend lacks a run")
        }
        for chart in charts.suffix(2) {
            XCTAssertTrue(chart.contains(">ARPO seed 1</text>") && !chart.contains("GRPO"), "an ARPO chart draws a GRPO run")
        }
        // Axis titles and tick labels: accuracy always spans 0 to 1; x axes end at the data, so
        // 0 to 24 tool calls get ticks 0, 5, …, 20.
        XCTAssertTrue(charts[0].contains(">Held-out accuracy</text>") && charts[0].contains(">Step (global: RL steps continue after the SFT steps)</text>"))
        for tick in ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"] { XCTAssertTrue(charts[0].contains(">\(tick)</text>"), "no y tick \(tick)") }
        XCTAssertTrue(charts[1].contains(">Cumulative tool calls executed (RL)</text>") && charts[1].contains(">0</text>") && charts[1].contains(">20</text>") && !charts[1].contains(">25</text>"))
        XCTAssertTrue(charts[6].contains(">initial (first response tokens)</text>") && charts[6].contains(">just after tool results</text>"))

        // The header: the experiment's sizes and the runs' names.
        XCTAssertTrue(html.contains("Experiment: SFT 2 steps, then RL 3 steps × 2 prompts per step × 4 trajectories per prompt"))
        XCTAssertTrue(html.contains("<code title=\"\(arpo.path)\">arpo-seed1</code>, <code title=\"\(grpo.path)\">grpo-seed1</code>"))
        // Self-contained: no script, no external resource.
        for forbidden in ["<script", "src=", "href=", "@import"] { XCTAssertFalse(html.contains(forbidden), "the page contains \(forbidden)") }

        XCTAssertEqual(Self.summaryRow("ARPO", in: html), "<td>1</td><td>0.250</td><td>0.500</td><td>0.83</td><td>1.50</td><td>20</td><td>600</td><td>1 min 30 s</td>")
        XCTAssertEqual(Self.summaryRow("GRPO", in: html), "<td>1</td><td>0.250</td><td>0.375</td><td>1.00</td><td>1.50</td><td>24</td><td>600</td><td>1 min 30 s</td>")
    }

    func testSummaryTableGivesMeanAndStandardDeviationOverSeeds() throws {
        let root = try temporaryDirectory(self)
        let directories = [
            try SyntheticRunDirectory(algorithm: "arpo", seed: 1, finalAccuracy: 0.5, accuracyAfterSFT: 0.25, toolCalls: [4, 6, 10], tokens: [100, 200, 300], wallSeconds: 90)
                .write(in: root, name: "arpo-1"),
            try SyntheticRunDirectory(algorithm: "grpo", seed: 1, finalAccuracy: 0.375, toolCalls: [8, 8, 8], tokens: [400, 400, 400], wallSeconds: 30)
                .write(in: root, name: "grpo-1"),
            try SyntheticRunDirectory(algorithm: "arpo", seed: 2, finalAccuracy: 0.75, accuracyAfterSFT: 0.35, toolCalls: [2, 2, 2], tokens: [100, 100, 100], wallSeconds: 150)
                .write(in: root, name: "arpo-2"),
        ]
        let runs = try TrainingReport.loadRuns(directories)
        let summaries = TrainingReport.summaries(of: runs)
        XCTAssertEqual(summaries.map(\.method.displayName), ["ARPO", "GRPO"], "rows in order of first appearance")

        let arpo = summaries[0]
        XCTAssertEqual(arpo.finishedRuns, 2)
        XCTAssertEqual(arpo.finalAccuracy?.mean ?? .nan, 0.625, accuracy: 1e-12)
        // Sample standard deviation of {0.5, 0.75}: sqrt((0.125² + 0.125²) / 1) = 0.1767767.
        XCTAssertEqual(arpo.finalAccuracy?.standardDeviation ?? .nan, 0.17677669529663689, accuracy: 1e-12)
        // (4 + 6 + 10 + 2 + 2 + 2) tool calls over 6 steps × 8 trajectories.
        XCTAssertEqual(arpo.toolCallsExecutedPerTrajectory ?? .nan, 26.0 / 48.0, accuracy: 1e-12)
        XCTAssertEqual(arpo.toolCallsExecutedPerRun ?? .nan, (20 + 6) / 2, accuracy: 1e-12)
        XCTAssertEqual(arpo.tokensGeneratedPerRun ?? .nan, (600 + 300) / 2, accuracy: 1e-12)
        XCTAssertEqual(arpo.seeds, [1, 2])
        XCTAssertEqual(arpo.wallSecondsPerRun ?? .nan, 120, accuracy: 1e-12)
        XCTAssertNil(summaries[1].finalAccuracy?.standardDeviation, "one seed has no standard deviation")

        let html = TrainingReport.html(for: runs)
        XCTAssertEqual(Self.summaryRow("ARPO", in: html), "<td>2</td><td>0.300 ± 0.071</td><td>0.625 ± 0.177</td><td>0.54</td><td>1.50</td><td>13</td><td>450</td><td>2 min 00 s</td>")
        XCTAssertEqual(Self.summaryRow("GRPO", in: html), "<td>1</td><td>0.250</td><td>0.375</td><td>1.00</td><td>1.50</td><td>24</td><td>1,200</td><td>30.0 s</td>")
        // Colour per algorithm, dash per seed: the second ARPO run is dashed, the first solid.
        XCTAssertTrue(html.contains("stroke=\"#D55E00\"><title>ARPO seed 1</title>"))
        XCTAssertTrue(html.contains("stroke=\"#D55E00\" stroke-dasharray=\"8 4\"><title>ARPO seed 2</title>"))
        XCTAssertTrue(html.contains("stroke=\"#0072B2\"><title>GRPO seed 1</title>"))
    }

    func testRunWithoutSummaryIsDrawnButMarkedUnfinishedAndLeftOutOfTheTable() throws {
        let root = try temporaryDirectory(self)
        let finished = try SyntheticRunDirectory(algorithm: "arpo", seed: 1).write(in: root, name: "finished")
        let unfinished = try SyntheticRunDirectory(algorithm: "arpo", seed: 2, finalAccuracy: 0.9, completedSteps: 2).write(in: root, name: "stopped")
        let html = TrainingReport.html(for: try TrainingReport.loadRuns([finished, unfinished]))

        XCTAssertEqual(Self.charts(in: html).count, Self.chartTitles.count)
        XCTAssertTrue(html.contains("unfinished (no summary.json): 2 of 3 RL steps"))
        XCTAssertTrue(html.contains("<title>ARPO seed 2 · unfinished</title>"), "the unfinished run is drawn and marked")
        XCTAssertEqual(Self.summaryRow("ARPO", in: html),
                       "<td>1&nbsp;<span class=\"unfinished\">(+1 unfinished)</span></td><td>0.250</td><td>0.500</td><td>0.83</td><td>1.50</td><td>20</td><td>600</td><td>1 min 30 s</td>")
    }

    func testOneSeedHasOneDashAcrossAlgorithmsAndASweepOfOneSeedStaysDistinct() throws {
        let root = try temporaryDirectory(self)
        let directories = try [
            SyntheticRunDirectory(algorithm: "grpo", seed: 4).write(in: root, name: "grpo-4"),
            SyntheticRunDirectory(algorithm: "arpo", seed: 9).write(in: root, name: "arpo-9"),
            SyntheticRunDirectory(algorithm: "arpo", seed: 4).write(in: root, name: "arpo-4-lr1"),
            SyntheticRunDirectory(algorithm: "arpo", seed: 4).write(in: root, name: "arpo-4-lr2"),
        ]
        let html = TrainingReport.html(for: try TrainingReport.loadRuns(directories))
        // Seeds 4 and 9: seed 4 is solid, seed 9 dashed; the second seed-4 ARPO run takes the next dash.
        XCTAssertTrue(html.contains("stroke=\"#0072B2\"><title>GRPO seed 4</title>"))
        XCTAssertTrue(html.contains("stroke=\"#D55E00\" stroke-dasharray=\"8 4\"><title>ARPO seed 9</title>"))
        XCTAssertTrue(html.contains("stroke=\"#D55E00\"><title>ARPO seed 4 (arpo-4-lr1)</title>"))
        XCTAssertTrue(html.contains("stroke=\"#D55E00\" stroke-dasharray=\"2 3\"><title>ARPO seed 4 (arpo-4-lr2)</title>"))
    }

    func testReportWithoutARPORunsLeavesOutTheARPOCharts() throws {
        let root = try temporaryDirectory(self)
        let grpo = try SyntheticRunDirectory(algorithm: "grpo", seed: 3).write(in: root, name: "grpo")
        let ppo = try SyntheticRunDirectory(algorithm: "ppo", seed: 3).write(in: root, name: "ppo")
        let html = TrainingReport.html(for: try TrainingReport.loadRuns([grpo, ppo]))
        let charts = Self.charts(in: html)
        XCTAssertEqual(charts.count, 6)
        for (chart, title) in zip(charts, Self.chartTitles) { XCTAssertTrue(chart.contains(">\(title)</text>")) }
        XCTAssertTrue(html.contains("No ARPO run in this report"))
        XCTAssertTrue(charts[2].contains(">PPO seed 3</text>") && charts[2].contains("stroke=\"#009E73\""))
    }

    func testMetricThatIsNullAtEveryStepGivesAnEmptyChartNotZeros() throws {
        let root = try temporaryDirectory(self)
        let run = try SyntheticRunDirectory(algorithm: "arpo", seed: 1, referenceKL: nil).write(in: root, name: "run")
        let charts = Self.charts(in: TrainingReport.html(for: try TrainingReport.loadRuns([run])))
        XCTAssertTrue(charts[4].contains("No data: the value is null at every point of every run."), "the KL chart")
        XCTAssertFalse(charts[4].contains("<path"))
        XCTAssertFalse(charts[3].contains("No data"), "the entropy chart")
    }

    func testCountsThatAreZeroAtEveryStepGetAnAxisFromZeroToOne() throws {
        let root = try temporaryDirectory(self)
        let run = try SyntheticRunDirectory(algorithm: "grpo", toolCalls: [0, 0, 0]).write(in: root, name: "run")
        let charts = Self.charts(in: TrainingReport.html(for: try TrainingReport.loadRuns([run])))
        for chart in [charts[1], charts[5]] {  // accuracy against tool calls, and tool calls per trajectory
            XCTAssertTrue(chart.contains(">0.0</text>") || chart.contains(">0</text>"))
            XCTAssertTrue(chart.contains(">1.0</text>") || chart.contains(">1</text>"))
            XCTAssertFalse(chart.contains(">-"), "a negative tick on an axis of counts")
        }
    }

    // MARK: The Markdown results document

    static let provenance = ReportProvenance(
        cpuModel: "Test CPU", cores: 2, commit: "0123abcd", hasUncommittedChanges: false, command: "scripts/compare.sh", date: "2025-01-31 12:00 UTC")

    /// The entropy after the 1st, 2nd and 3rd tool result and the forks there, per ARPO run and
    /// overall; a run whose metrics lack those keys shows dashes and leaves the overall means as
    /// the other run's.
    func testMarkdownHasEntropyAndForksByToolResult() throws {
        let root = try temporaryDirectory(self)
        var older = SyntheticRunDirectory(algorithm: "arpo", seed: 2, finalAccuracy: 0.5, toolCalls: [4, 6, 10], wallSeconds: 90)
        older.byToolResult = false
        let directories = [
            try SyntheticRunDirectory(algorithm: "arpo", seed: 1, finalAccuracy: 0.5, toolCalls: [4, 6, 10], wallSeconds: 90).write(in: root, name: "arpo-1"),
            try older.write(in: root, name: "arpo-2"),
        ]
        let markdown = TrainingReport.markdown(for: try TrainingReport.loadRuns(directories), provenance: Self.provenance)
        XCTAssertTrue(markdown.contains("""
            | Runs | Initial step entropy | After 1st result | After 2nd | After 3rd | Forks per RL step after 1st result | After 2nd | After 3rd |
            | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
            | `arpo-1` | 0.400 | 0.700 | 0.500 | — | 1.00 | 1.00 | 0.00 |
            | `arpo-2` | 0.400 | — | — | — | — | — | — |
            | all 2 ARPO runs | 0.400 | 0.700 | 0.500 | — | 1.00 | 1.00 | 0.00 |

            """), markdown)
    }

    func testMarkdownHasTheSummaryTableBranchingSizesMachineCommitAndCommand() throws {
        let root = try temporaryDirectory(self)
        // The shared cold start: a run with 300 SFT steps and no RL, which took a minute.
        let coldStart = root.appendingPathComponent("cold-start")
        try FileManager.default.createDirectory(at: coldStart, withIntermediateDirectories: true)
        try Data(#"{"sft": {"steps": 300, "batch_size": 16, "demonstrations": 2000}, "rl": {"algorithm": "arpo", "steps": 0}}"#.utf8).write(to: coldStart.appendingPathComponent("config.json"))
        try Data(#"{"wall_seconds": 60, "accuracy_after_sft": 0.25}"#.utf8).write(to: coldStart.appendingPathComponent("summary.json"))
        let reference = coldStart.appendingPathComponent("reference").path
        let directories = [
            try SyntheticRunDirectory(algorithm: "grpo", seed: 1, finalAccuracy: 0.375, toolCalls: [8, 8, 8], wallSeconds: 30, initFrom: reference)
                .write(in: root, name: "grpo-1"),
            try SyntheticRunDirectory(algorithm: "arpo", seed: 1, finalAccuracy: 0.5, toolCalls: [4, 6, 10], wallSeconds: 90, initFrom: reference)
                .write(in: root, name: "arpo-1"),
            try SyntheticRunDirectory(algorithm: "arpo", seed: 2, finalAccuracy: 0.75, toolCalls: [2, 2, 2], tokens: [100, 100, 100], wallSeconds: 150, initFrom: reference)
                .write(in: root, name: "arpo-2"),
        ]
        let markdown = TrainingReport.markdown(for: try TrainingReport.loadRuns(directories), provenance: Self.provenance)

        XCTAssertTrue(markdown.hasPrefix("# Results: GRPO, ARPO\n"), markdown)
        XCTAssertTrue(markdown.contains("Written by `arpo-train report` on 2025-01-31 12:00 UTC from 3 run directories: `\(directories[0].path)`, `\(directories[1].path)`, `\(directories[2].path)`."))
        // The HTML page's rows (AlgorithmSummary), with seeds and tool calls executed per run:
        // ARPO's (4 + 6 + 10 + 2 + 2 + 2) calls over 48 trajectories, (20 + 6) / 2 per run.
        XCTAssertTrue(markdown.contains("""
            | Method | Runs (seeds) | Final held-out accuracy | Held-out accuracy after SFT | Tool calls executed per trajectory | Tool calls written per answered episode | Tool calls executed per run | Tokens generated per run | Wall time per run |
            | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
            | GRPO | 1 (1) | 0.375 | 0.250 | 1.00 | 1.50 | 24 | 600 | 30.0 s |
            | ARPO | 2 (1, 2) | 0.625 ± 0.177 | 0.250 ± 0.000 | 0.54 | 1.50 | 13 | 450 | 2 min 00 s |

            """), markdown)
        // 30 + 90 + 150 s of runs and the cold start's 60 s, counted once.
        XCTAssertTrue(markdown.contains("Wall time summed over the runs and the cold start: 5 min 30 s (runs 4 min 30 s, cold start 1 min 00 s).\n"), markdown)
        // Forks 1, 2, 3 per step of 3, 5, 7 opportunities (declined 2 each, blocked 0, 1, 2): rate
        // 6 / 15; entropy after tool results 0.6, null, 0.5; ΔH at forks 0.2, 0.3, 0.4.
        XCTAssertTrue(markdown.contains("""
            | `arpo-1` | 2.00 | 0.40 | 1.00 | 0.400 | 0.550 | 0.300 | -0.100 |
            | `arpo-2` | 2.00 | 0.40 | 1.00 | 0.400 | 0.550 | 0.300 | -0.100 |
            | all 2 ARPO runs | 2.00 | 0.40 | 1.00 | 0.400 | 0.550 | 0.300 | -0.100 |

            """), markdown)
        XCTAssertTrue(markdown.contains("""
            | Model | LLaMA decoder, 1 layer, width 32, MLP 64, 2 heads, context 240 |
            | Parameters | 19,040 |
            | Cold start (SFT) | shared: `\(reference)`, trained with 300 steps × 16 demonstrations per step (2000 distinct) |
            | RL | 3 steps × 2 prompts per step, at most 100 response tokens, learning rate 0.0001 |
            | Trajectories per prompt | group size G = 4 (GRPO); budget M = 4 (2 initial samples, branch factor 2, threshold 0.5) (ARPO) |
            | Advantages | group-normalised (GRPO); `arpo-soft` (ARPO) |
            | Updates per rollout batch | 1 epoch × 1 mini-batch |
            | Held-out evaluation | 8 eval-split episodes, greedy, after SFT, every 2 RL steps and at the end |
            | Tasks | difficulty 1; mix arithmetic 1, unanswerable 0.5 |
            | BLAS threads per run | 1 |

            """), markdown)
        XCTAssertTrue(markdown.hasSuffix("""
            ## Machine and code

            - Machine: Test CPU, 2 cores (where this document was written)
            - Commit: `0123abcd`
            - Reproduce: `scripts/compare.sh`

            """), markdown)
    }

    /// Three seeds of each: per-family means with Student-t intervals (t = 4.303 for 2 degrees of
    /// freedom), the paired differences seed by seed, and the time per step, worked out by hand.
    func testMarkdownHasPerFamilyIntervalsThePairedComparisonAndTimePerStep() throws {
        let root = try temporaryDirectory(self)
        var directories: [URL] = []
        for (seed, arpo, grpo) in [(1, 0.5, 0.375), (2, 0.75, 0.5), (3, 0.625, 0.5)] {
            directories.append(try SyntheticRunDirectory(algorithm: "grpo", seed: seed, finalAccuracy: grpo, toolCalls: [8, 8, 8]).write(in: root, name: "grpo-\(seed)"))
            directories.append(try SyntheticRunDirectory(algorithm: "arpo", seed: seed, finalAccuracy: arpo).write(in: root, name: "arpo-\(seed)"))
        }
        let markdown = TrainingReport.markdown(for: try TrainingReport.loadRuns(directories), provenance: Self.provenance)
        // ARPO {0.5, 0.75, 0.625}: mean 0.625, s 0.125, half-width 4.303 · 0.125 / √3 = 0.3105.
        // GRPO {0.375, 0.5, 0.5}: mean 0.4583, s 0.07217, half-width 0.1793. Unanswerable is 1 − that.
        XCTAssertTrue(markdown.contains("""
            | Family | GRPO | ARPO |
            | --- | ---: | ---: |
            | `arithmetic` | 0.458 [0.279, 0.638] | 0.625 [0.314, 0.936] |
            | `unanswerable` | 0.542 [0.362, 0.721] | 0.375 [0.064, 0.686] |
            | **all families** | 0.458 [0.279, 0.638] | 0.625 [0.314, 0.936] |
            """), markdown)
        // Differences 0.125, 0.25, 0.125: mean 0.1667, s 0.07217, half-width 0.1793. Tool calls
        // 20 against 24 at every seed.
        XCTAssertTrue(markdown.contains("""
            | 1 | 0.375 | 0.500 | +0.125 | 24 | 20 | 0.83 |
            | 2 | 0.500 | 0.750 | +0.250 | 24 | 20 | 0.83 |
            | 3 | 0.500 | 0.625 | +0.125 | 24 | 20 | 0.83 |
            """), markdown)
        XCTAssertTrue(markdown.contains("Mean difference in final accuracy (ARPO − GRPO): 0.167 [-0.013, 0.346] over 3 seeds (paired; 95% interval by Student's t); ARPO at or above GRPO on 3 of 3."), markdown)
        XCTAssertTrue(markdown.contains("ARPO's RL tool calls executed as a fraction of GRPO's: 0.833 [0.833, 0.833] (mean of the seeds' ratios [95% interval])."), markdown)
        XCTAssertTrue(markdown.contains("Goal, at or above GRPO's final accuracy with at most 60% of its executed tool calls: met on 0 of 3 seeds; on the means (difference +0.167, ratio 0.83) not met."), markdown)
        // Wall time: 90 s over 3 RL steps.
        XCTAssertTrue(markdown.contains("| GRPO | 30.00 s | 1.00 s | 0.50 s | 1.50 s |\n| ARPO | 30.00 s | 1.00 s | 0.50 s | 1.50 s |"), markdown)
    }

    func testMethodIsTheAlgorithmWithTheAdvantageModeWhereTheModeChangesTheNumbers() {
        let cases: [(String, String?, String)] = [
            ("arpo", nil, "ARPO"), ("arpo", "arpo-soft", "ARPO"), ("arpo", "grpo", "ARPO"), ("arpo", "arpo-hard", "ARPO (hard)"),
            ("arpo", "arpo-hard-once", "ARPO (hard-once)"), ("arpo", "dr-grpo", "ARPO (dr-grpo)"),
            // Without forks the hard modes have nothing to attribute; PPO ignores the mode.
            ("grpo", "arpo-soft", "GRPO"), ("grpo", "arpo-hard", "GRPO"), ("grpo", "dr-grpo", "GRPO (dr-grpo)"), ("ppo", "arpo-hard", "PPO"),
        ]
        for (algorithm, mode, name) in cases {
            XCTAssertEqual(TrainingMethod(algorithm: algorithm, advantageMode: mode).displayName, name, "\(algorithm), \(mode ?? "no mode")")
        }
        XCTAssertEqual(TrainingMethod(algorithm: "grpo", advantageMode: "arpo-soft"), .grpo)
        // The tool-efficiency factor in the training reward is a method of its own.
        XCTAssertEqual(TrainingMethod(algorithm: "arpo", advantageMode: "arpo-soft", toolEfficiencyForm: "group").displayName, "ARPO (OTC group)")
        XCTAssertEqual(TrainingMethod(algorithm: "arpo", advantageMode: nil, toolEfficiencyForm: "group-free").displayName, "ARPO (OTC)")
        XCTAssertEqual(TrainingMethod(algorithm: "arpo", advantageMode: "arpo-hard", toolEfficiencyForm: "group").displayName, "ARPO (hard, OTC group)")
        XCTAssertEqual(TrainingMethod(algorithm: "grpo", advantageMode: nil, toolEfficiencyForm: "group").withoutToolEfficiency, .grpo)
        XCTAssertNotEqual(TrainingMethod(algorithm: "arpo", advantageMode: nil, toolEfficiencyForm: "group"), TrainingMethod(algorithm: "arpo", advantageMode: nil))
    }

    /// `env.reward.tool_efficiency` and `tool_efficiency_form` from config.json: off (or the key
    /// missing) names no factor; on without a form is the trainer's default, group-free.
    func testTheToolEfficiencyFactorIsReadFromConfig() throws {
        let root = try temporaryDirectory(self)
        let cases: [(Bool?, String?, String)] = [(nil, nil, "ARPO"), (false, "group", "ARPO"), (true, nil, "ARPO (OTC)"), (true, "group-free", "ARPO (OTC)"), (true, "group", "ARPO (OTC group)")]
        for (index, (on, form, name)) in cases.enumerated() {
            let directory = try SyntheticRunDirectory(algorithm: "arpo", seed: 1, toolEfficiency: on, toolEfficiencyForm: form).write(in: root, name: "run-\(index)")
            XCTAssertEqual(try ReportRun.load(from: directory).method.displayName, name, "tool_efficiency \(on.map(String.init) ?? "missing"), form \(form ?? "missing")")
        }
    }

    /// Two seeds each of GRPO, ARPO and ARPO trained with OTC-PO's group-form reward: the OTC
    /// runs are a method of their own in the summary, the paired and tool-call tables and the
    /// experiment table, and the tool-call section compares its written calls per answered
    /// episode with ARPO's, worked out by hand.
    func testARPOWithTheGroupToolEfficiencyRewardIsItsOwnMethodComparedWithARPO() throws {
        let root = try temporaryDirectory(self)
        var directories: [URL] = []
        // Per RL step: GRPO executes 8 calls; ARPO 4 (8 in its transcripts); ARPO (OTC group) 2
        // (4 in its transcripts), and its answered episodes hold 1 call against ARPO's 2.
        for seed in [1, 2] {
            directories.append(try SyntheticRunDirectory(
                algorithm: "grpo", seed: seed, toolCalls: [8, 8, 8], toolCallsPerAnsweredEpisode: [2, 2, 2]
            ).write(in: root, name: "grpo-\(seed)"))
            directories.append(try SyntheticRunDirectory(
                algorithm: "arpo", seed: seed, toolCalls: [4, 4, 4], toolCallsWritten: [8, 8, 8], toolCallsPerAnsweredEpisode: [2, 2, 2]
            ).write(in: root, name: "arpo-soft-\(seed)"))
            directories.append(try SyntheticRunDirectory(
                algorithm: "arpo", seed: seed, toolCalls: [2, 2, 2], toolCallsWritten: [4, 4, 4], toolCallsPerAnsweredEpisode: [1, 1, 1],
                toolEfficiency: true, toolEfficiencyForm: "group"
            ).write(in: root, name: "arpo-otc-\(seed)"))
        }
        let runs = try TrainingReport.loadRuns(directories)
        XCTAssertEqual(TrainingReport.summaries(of: runs).map(\.method.displayName), ["GRPO", "ARPO", "ARPO (OTC group)"])
        let markdown = TrainingReport.markdown(for: runs, provenance: Self.provenance)
        XCTAssertTrue(markdown.hasPrefix("# Results: GRPO, ARPO, ARPO (OTC group)\n"), markdown)
        // 6 calls over 24 trajectories; 1 written call per answered episode.
        XCTAssertTrue(markdown.contains("| ARPO (OTC group) | 2 (1, 2) | 0.500 ± 0.000 | 0.250 ± 0.000 | 0.25 | 1.00 | 6 | 600 | 1 min 30 s |\n"), markdown)
        XCTAssertTrue(markdown.contains("| ARPO | 2 (1, 2) | 0.500 ± 0.000 | 0.250 ± 0.000 | 0.50 | 2.00 | 12 | 600 | 1 min 30 s |\n"), markdown)
        XCTAssertTrue(markdown.contains("OTC in parentheses: the training reward multiplies the answer score by OTC-PO's tool-efficiency factor"), markdown)
        XCTAssertTrue(markdown.contains("does not depend on the training reward and compares across methods; the training `reward_mean` does depend on it."), markdown)
        XCTAssertTrue(markdown.contains("## ARPO (OTC group) against GRPO, seed by seed\n"), markdown)
        XCTAssertTrue(markdown.contains("""
            | GRPO | 1.000 [1.000, 1.000] | 1.00 | 1.000 [1.000, 1.000] | 1.00 | 1.00 | 2.000 [2.000, 2.000] | 1.00 |
            | ARPO | 0.500 [0.500, 0.500] | 0.50 | 1.000 [1.000, 1.000] | 1.00 | 0.50 | 2.000 [2.000, 2.000] | 1.00 |
            | ARPO (OTC group) | 0.250 [0.250, 0.250] | 0.25 | 0.500 [0.500, 0.500] | 0.50 | 0.50 | 1.000 [1.000, 1.000] | 0.50 |
            """), markdown)
        XCTAssertTrue(markdown.contains("ARPO (OTC group) trains on the answer score times OTC-PO's tool-efficiency factor in its group form"), markdown)
        XCTAssertTrue(markdown.contains("ARPO is the same method without it. Compare their written per answered episode: the factor on against off. Here ARPO (OTC group) ÷ ARPO: 0.50 (1.00 against 2.00 calls).\n"), markdown)
        XCTAssertTrue(markdown.contains("| Training reward | answer score, no tool-efficiency factor (GRPO, ARPO); answer score × OTC-PO tool efficiency, `group` form (ARPO (OTC group)) |"), markdown)
        XCTAssertTrue(markdown.contains("| Advantages | group-normalised (GRPO); `arpo-soft` (ARPO, ARPO (OTC group)) |"), markdown)

        let html = TrainingReport.html(for: runs)
        XCTAssertEqual(Self.summaryRow("ARPO (OTC group)", in: html), "<td>2</td><td>0.250 ± 0.000</td><td>0.500 ± 0.000</td><td>0.25</td><td>1.00</td><td>6</td><td>600</td><td>1 min 30 s</td>")
        XCTAssertTrue(html.contains("<tr><td class=\"text\">ARPO (OTC group)</td><td>0.250 [0.250, 0.250]</td><td>0.25</td><td>0.500 [0.500, 0.500]</td>"), "the page's tool-call table")
        XCTAssertTrue(html.contains("<p class=\"note\">ARPO (OTC group): the training reward multiplies the answer score by OTC-PO's tool-efficiency factor"), "the note under the reward chart")

        // Without ARPO beside it, the paragraph says there is nothing to compare with; without
        // an OTC method there is no paragraph, no reward note and no training-reward row.
        let alone = TrainingReport.markdown(for: runs.filter { $0.name.hasPrefix("arpo-otc") }, provenance: Self.provenance)
        XCTAssertTrue(alone.contains("No finished ARPO run in this report records it, so there is nothing to compare it with here."), alone)
        let without = runs.filter { !$0.name.hasPrefix("arpo-otc") }
        let plain = TrainingReport.markdown(for: without, provenance: Self.provenance)
        XCTAssertFalse(plain.contains("OTC") || plain.contains("Training reward"), plain)
        XCTAssertFalse(TrainingReport.html(for: without).contains("tool-efficiency factor"))
    }

    /// Three seeds each of GRPO, ARPO (soft) and ARPO (hard): the two ARPO attributions are two
    /// methods in the summary, the family table, one paired table each against GRPO, the tool
    /// calls, the time per step, the branching tables and the charts' colours, worked out by hand.
    func testARPOSoftAndHardAreSeparateMethodsInEveryTableAndChart() throws {
        let root = try temporaryDirectory(self)
        var directories: [URL] = []
        // Final accuracies per seed; ARPO (hard) executes 4, 6, 8 calls per step (12, 18, 24 in
        // all) against GRPO's 8 (24), and its transcripts hold 12 per step.
        for (seed, grpo, soft, hard, hardCalls) in [(1, 0.5, 0.625, 0.5, 4), (2, 0.5, 0.5, 0.375, 6), (3, 0.5, 0.75, 0.625, 8)] {
            directories.append(try SyntheticRunDirectory(
                algorithm: "grpo", seed: seed, finalAccuracy: grpo, toolCalls: [8, 8, 8], toolCallsPerAnsweredEpisode: [2, 2, 2]
            ).write(in: root, name: "grpo-\(seed)"))
            directories.append(try SyntheticRunDirectory(
                algorithm: "arpo", seed: seed, finalAccuracy: soft, toolCalls: [4, 4, 4], toolCallsWritten: [8, 8, 8], toolCallsPerAnsweredEpisode: [2, 2, 2]
            ).write(in: root, name: "arpo-soft-\(seed)"))
            directories.append(try SyntheticRunDirectory(
                algorithm: "arpo", seed: seed, finalAccuracy: hard, toolCalls: [hardCalls, hardCalls, hardCalls], advantageMode: "arpo-hard", miniBatches: 2,
                toolCallsWritten: [12, 12, 12], toolCallsPerAnsweredEpisode: [3, 3, 3]
            ).write(in: root, name: "arpo-hard-\(seed)"))
        }
        let runs = try TrainingReport.loadRuns(directories)
        XCTAssertEqual(TrainingReport.summaries(of: runs).map(\.method.displayName), ["GRPO", "ARPO", "ARPO (hard)"])
        let markdown = TrainingReport.markdown(for: runs, provenance: Self.provenance)
        XCTAssertTrue(markdown.hasPrefix("# Results: GRPO, ARPO, ARPO (hard)\n"), markdown)
        // Hard {0.5, 0.375, 0.625}: mean 0.5, s 0.125; (12 + 18 + 24) calls over 72 trajectories.
        XCTAssertTrue(markdown.contains("| ARPO (hard) | 3 (1, 2, 3) | 0.500 ± 0.125 | 0.250 ± 0.000 | 0.75 | 3.00 | 18 | 600 | 1 min 30 s |\n"), markdown)
        XCTAssertTrue(markdown.contains("ARPO (hard) uses `arpo-hard`, ARPO uses the default soft attribution (`arpo-soft`)."), markdown)
        XCTAssertFalse(markdown.contains("**Note:**"), "two mini-batches: no warning that hard equals soft")
        XCTAssertTrue(markdown.contains("| Family | GRPO | ARPO | ARPO (hard) |\n| --- | ---: | ---: | ---: |\n| `arithmetic` | 0.500 [0.500, 0.500] | 0.625 [0.314, 0.936] | 0.500 [0.189, 0.811] |"), markdown)

        // Soft: differences 0.125, 0, 0.25 (mean 0.125, s 0.125, half-width 4.303 · 0.125 / √3 =
        // 0.311), half of GRPO's calls at every seed.
        XCTAssertTrue(markdown.contains("""
            ## ARPO against GRPO, seed by seed

            | Seed | GRPO accuracy | ARPO accuracy | ARPO − GRPO | GRPO tool calls executed | ARPO tool calls executed | ARPO ÷ GRPO tool calls executed |
            | --- | ---: | ---: | ---: | ---: | ---: | ---: |
            | 1 | 0.500 | 0.625 | +0.125 | 24 | 12 | 0.50 |
            | 2 | 0.500 | 0.500 | +0.000 | 24 | 12 | 0.50 |
            | 3 | 0.500 | 0.750 | +0.250 | 24 | 12 | 0.50 |

            Mean difference in final accuracy (ARPO − GRPO): 0.125 [-0.186, 0.436] over 3 seeds (paired; 95% interval by Student's t); ARPO at or above GRPO on 3 of 3.

            ARPO's RL tool calls executed as a fraction of GRPO's: 0.500 [0.500, 0.500] (mean of the seeds' ratios [95% interval]).

            Goal, at or above GRPO's final accuracy with at most 60% of its executed tool calls: met on 3 of 3 seeds; on the means (difference +0.125, ratio 0.50) met.

            """), markdown)
        // Hard: differences 0, −0.125, 0.125; ratios 0.5, 0.75, 1 (mean 0.75, s 0.25, half-width
        // 0.621). Only seed 1 meets both halves of the goal.
        XCTAssertTrue(markdown.contains("""
            | 1 | 0.500 | 0.500 | +0.000 | 24 | 12 | 0.50 |
            | 2 | 0.500 | 0.375 | -0.125 | 24 | 18 | 0.75 |
            | 3 | 0.500 | 0.625 | +0.125 | 24 | 24 | 1.00 |

            Mean difference in final accuracy (ARPO (hard) − GRPO): 0.000 [-0.311, 0.311] over 3 seeds (paired; 95% interval by Student's t); ARPO (hard) at or above GRPO on 2 of 3.

            ARPO (hard)'s RL tool calls executed as a fraction of GRPO's: 0.750 [0.129, 1.371] (mean of the seeds' ratios [95% interval]).

            Goal, at or above GRPO's final accuracy with at most 60% of its executed tool calls: met on 1 of 3 seeds; on the means (difference +0.000, ratio 0.75) not met.
            """), markdown)
        XCTAssertTrue(markdown.contains("## ARPO (hard) against GRPO, seed by seed\n\n| Seed | GRPO accuracy | ARPO (hard) accuracy | ARPO (hard) − GRPO |"), markdown)

        // Executed per trajectory: GRPO 24 / 24 at every seed; ARPO 12 / 24; ARPO (hard) 0.5,
        // 0.75, 1. Written per trajectory: 1, 1 (8 per step) and 1.5 (12 per step), so ARPO's
        // transcripts hold as many calls as GRPO's and prefix sharing ran half of them, while
        // ARPO (hard)'s hold 1.5 times as many.
        XCTAssertTrue(markdown.contains("""
            ## Tool calls

            | Method | Executed per trajectory | ÷ GRPO | Written per trajectory | ÷ GRPO | Executed ÷ written | Written per answered episode | ÷ GRPO |
            | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
            | GRPO | 1.000 [1.000, 1.000] | 1.00 | 1.000 [1.000, 1.000] | 1.00 | 1.00 | 2.000 [2.000, 2.000] | 1.00 |
            | ARPO | 0.500 [0.500, 0.500] | 0.50 | 1.000 [1.000, 1.000] | 1.00 | 0.50 | 2.000 [2.000, 2.000] | 1.00 |
            | ARPO (hard) | 0.750 [0.129, 1.371] | 0.75 | 1.500 [1.500, 1.500] | 1.50 | 0.50 | 3.000 [3.000, 3.000] | 1.50 |

            """), markdown)
        XCTAssertTrue(markdown.contains("| GRPO | 30.00 s | 1.00 s | 0.50 s | 1.50 s |\n| ARPO | 30.00 s | 1.00 s | 0.50 s | 1.50 s |\n| ARPO (hard) | 30.00 s | 1.00 s | 0.50 s | 1.50 s |"), markdown)
        for row in ["| `arpo-hard-3` | 2.00 | 0.40 | 1.00 |", "| all 3 ARPO runs | 2.00 | 0.40 | 1.00 |", "| all 3 ARPO (hard) runs | 2.00 | 0.40 | 1.00 |",
                    "| all 3 ARPO (hard) runs | 0.400 | 0.700 | 0.500 | — | 1.00 | 1.00 | 0.00 |"] {
            XCTAssertTrue(markdown.contains(row), "no row \(row)")
        }
        XCTAssertTrue(markdown.contains("""
            | Advantages | group-normalised (GRPO); `arpo-soft` (ARPO); `arpo-hard` (ARPO (hard)) |
            | Updates per rollout batch | 1 epoch × 1 mini-batch (GRPO, ARPO); 1 epoch × 2 mini-batches (ARPO (hard)) |
            """), markdown)

        // The page: its own summary row, the same comparison tables, a colour per method and the
        // ARPO charts drawing both ARPO methods.
        let html = TrainingReport.html(for: runs)
        XCTAssertEqual(Self.summaryRow("ARPO (hard)", in: html), "<td>3</td><td>0.250 ± 0.000</td><td>0.500 ± 0.125</td><td>0.75</td><td>3.00</td><td>18</td><td>600</td><td>1 min 30 s</td>")
        for heading in ["<h2>ARPO against GRPO, seed by seed</h2>", "<h2>ARPO (hard) against GRPO, seed by seed</h2>", "<h2>Tool calls</h2>", "<h2>Time per RL step</h2>", "<h3>Entropy and forks by tool result</h3>"] {
            XCTAssertTrue(html.contains(heading), "the page lacks \(heading)")
        }
        XCTAssertTrue(html.contains("<tr><td class=\"text\">ARPO (hard)</td><td>0.750 [0.129, 1.371]</td><td>0.75</td><td>1.500 [1.500, 1.500]</td>"), "the page's tool-call table")
        XCTAssertTrue(html.contains("<td class=\"text\"><code>arithmetic</code></td>"), "Markdown code spans become <code>")
        XCTAssertTrue(html.contains("stroke=\"#D55E00\"><title>ARPO seed 1</title>"))
        XCTAssertTrue(html.contains("stroke=\"#CC79A7\"><title>ARPO (hard) seed 1</title>"))
        XCTAssertTrue(html.contains("stroke=\"#CC79A7\" stroke-dasharray=\"8 4\"><title>ARPO (hard) seed 2</title>"))
        let forks = try XCTUnwrap(Self.charts(in: html).last)
        XCTAssertTrue(forks.contains(">ARPO seed 1</text>") && forks.contains(">ARPO (hard) seed 3</text>") && !forks.contains("GRPO"), "the forks chart")
    }

    /// The tree signals from config.json: the DPO term and the memory bank (either coefficient)
    /// when above 0, AEPO when `rl.branching.rule` is `entropy-balanced`; each with the others
    /// and with the advantage mode in one name, and AEPO dropped where nothing branches.
    func testTreeSignalsAreReadFromConfig() throws {
        let root = try temporaryDirectory(self)
        let cases: [(SyntheticRunDirectory, String)] = [
            (SyntheticRunDirectory(algorithm: "arpo", advantageMode: "tree"), "ARPO (tree)"),
            (SyntheticRunDirectory(algorithm: "arpo", dpoCoefficient: 0), "ARPO"),
            (SyntheticRunDirectory(algorithm: "arpo", dpoCoefficient: 1), "ARPO (DPO)"),
            (SyntheticRunDirectory(algorithm: "arpo", memoryBankCoefficient: 0, memoryBankContrastiveCoefficient: 0), "ARPO"),
            (SyntheticRunDirectory(algorithm: "arpo", memoryBankCoefficient: 0.1), "ARPO (memory bank)"),
            (SyntheticRunDirectory(algorithm: "arpo", memoryBankCoefficient: 0, memoryBankContrastiveCoefficient: 0.5), "ARPO (memory bank)"),
            (SyntheticRunDirectory(algorithm: "arpo", branchingRule: "stochastic"), "ARPO"),
            (SyntheticRunDirectory(algorithm: "arpo", branchingRule: "entropy-balanced"), "ARPO (AEPO)"),
            (SyntheticRunDirectory(algorithm: "grpo", branchingRule: "entropy-balanced"), "GRPO"),
            (SyntheticRunDirectory(algorithm: "arpo", advantageMode: "arpo-hard", toolEfficiency: true, toolEfficiencyForm: "group", dpoCoefficient: 1,
                                   memoryBankCoefficient: 0.1, branchingRule: "entropy-balanced"), "ARPO (hard, DPO, memory bank, AEPO, OTC group)"),
        ]
        for (index, (run, name)) in cases.enumerated() {
            let method = try ReportRun.load(from: try run.write(in: root, name: "run-\(index)")).method
            XCTAssertEqual(method.displayName, name, "case \(index)")
            XCTAssertEqual(method.usesTreeSignal, name.contains("tree") || name.contains("DPO") || name.contains("bank") || name.contains("AEPO"), name)
        }
        // Without its tree signals a tree method is the method it is compared with.
        let combined = TrainingMethod(algorithm: "arpo", advantageMode: "tree", usesDPO: true, usesMemoryBank: true, usesEntropyBalancedBranching: true)
        XCTAssertEqual(combined.displayName, "ARPO (tree, DPO, memory bank, AEPO)")
        XCTAssertEqual(combined.withoutTreeSignals, TrainingMethod(algorithm: "arpo", advantageMode: nil))
        XCTAssertEqual(TrainingMethod(algorithm: "arpo", advantageMode: "arpo-hard", usesDPO: true).withoutTreeSignals.displayName, "ARPO (hard)")
    }

    /// compare.sh's eight methods over three seeds: the tree methods (arpo-tree, arpo-dpo,
    /// arpo-bank, arpo-aepo) are rows of their own, paired with ARPO seed by seed instead of with
    /// GRPO, and ARPO (DPO)'s section is worked out by hand.
    func testTreeMethodsAreSeparateRowsComparedWithARPOSeedBySeed() throws {
        let root = try temporaryDirectory(self)
        var directories: [URL] = []
        // Final accuracy per seed: ARPO 0.5, 0.625, 0.5, ARPO (DPO) 0.625, 0.625, 0.75 (the
        // `unanswerable` accuracy is 1 minus it); ignored tool failures ARPO 0.25, 0.25, 0.375,
        // ARPO (DPO) 0.125 at every seed; response length ARPO 30, ARPO (DPO) 24.
        for (seed, arpo, dpo, ignored) in [(1, 0.5, 0.625, 0.25), (2, 0.625, 0.625, 0.25), (3, 0.5, 0.75, 0.375)] {
            directories += try [
                SyntheticRunDirectory(algorithm: "grpo", seed: seed, toolCalls: [8, 8, 8]).write(in: root, name: "grpo-seed\(seed)"),
                SyntheticRunDirectory(algorithm: "ppo", seed: seed).write(in: root, name: "ppo-seed\(seed)"),
                SyntheticRunDirectory(algorithm: "arpo", seed: seed, finalAccuracy: arpo, finalIgnoredToolFailureRate: ignored).write(in: root, name: "arpo-soft-seed\(seed)"),
                SyntheticRunDirectory(algorithm: "arpo", seed: seed, advantageMode: "arpo-hard", miniBatches: 2).write(in: root, name: "arpo-hard-seed\(seed)"),
                SyntheticRunDirectory(algorithm: "arpo", seed: seed, advantageMode: "tree").write(in: root, name: "arpo-tree-seed\(seed)"),
                SyntheticRunDirectory(algorithm: "arpo", seed: seed, finalAccuracy: dpo, dpoCoefficient: 1, dpoPairs: 2, responseLength: 24,
                                      finalIgnoredToolFailureRate: 0.125).write(in: root, name: "arpo-dpo-seed\(seed)"),
                SyntheticRunDirectory(algorithm: "arpo", seed: seed, memoryBankCoefficient: 0.1).write(in: root, name: "arpo-bank-seed\(seed)"),
                SyntheticRunDirectory(algorithm: "arpo", seed: seed, branchingRule: "entropy-balanced").write(in: root, name: "arpo-aepo-seed\(seed)"),
            ]
        }
        let runs = try TrainingReport.loadRuns(directories)
        let names = ["GRPO", "PPO", "ARPO", "ARPO (hard)", "ARPO (tree)", "ARPO (DPO)", "ARPO (memory bank)", "ARPO (AEPO)"]
        XCTAssertEqual(TrainingReport.summaries(of: runs).map(\.method.displayName), names)
        XCTAssertEqual(TrainingReport.summaries(of: runs).map(\.finishedRuns), Array(repeating: 3, count: 8))
        let markdown = TrainingReport.markdown(for: runs, provenance: Self.provenance)
        XCTAssertTrue(markdown.hasPrefix("# Results: \(names.joined(separator: ", "))\n"), markdown)
        XCTAssertTrue(markdown.contains("| ARPO (DPO) | 3 (1, 2, 3) | 0.667 ± 0.072 |"), markdown)
        // ARPO without tree signals against GRPO; the tree methods against ARPO instead.
        for name in ["ARPO", "ARPO (hard)"] { XCTAssertTrue(markdown.contains("## \(name) against GRPO, seed by seed\n"), name) }
        for name in names.suffix(4) {
            XCTAssertTrue(markdown.contains("## \(name) against ARPO, seed by seed\n"), name)
            XCTAssertFalse(markdown.contains("## \(name) against GRPO"), name)
        }
        XCTAssertTrue(markdown.contains("ARPO (DPO) is ARPO with TTPA's DPO term on the ESM-ranked preference pairs at fork points"), markdown)
        XCTAssertTrue(markdown.contains("ARPO (AEPO) is ARPO branching by AEPO's rule"), markdown)
        XCTAssertTrue(markdown.contains("| Tree signals | none besides the advantages (GRPO, PPO, ARPO, ARPO (hard), ARPO (tree)); DPO term (`rl.loss.dpo_coefficient`) (ARPO (DPO)); memory bank (`rl.memory_bank`) (ARPO (memory bank)); AEPO branching (`entropy-balanced`) (ARPO (AEPO)) |"), markdown)

        let section = markdown.components(separatedBy: "## ARPO (DPO) against ARPO, seed by seed\n")[1].components(separatedBy: "\n## ")[0]
        XCTAssertTrue(section.contains("""
            | Seed | ARPO accuracy | ARPO (DPO) accuracy | ARPO (DPO) − ARPO | ARPO tool calls executed | ARPO (DPO) tool calls executed | ARPO wall time | ARPO (DPO) wall time |
            | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
            | 1 | 0.500 | 0.625 | +0.125 | 20 | 20 | 1 min 30 s | 1 min 30 s |
            | 2 | 0.625 | 0.625 | +0.000 | 20 | 20 | 1 min 30 s | 1 min 30 s |
            | 3 | 0.500 | 0.750 | +0.250 | 20 | 20 | 1 min 30 s | 1 min 30 s |
            """), section)
        // Differences 0.125, 0, 0.25: mean 0.125, s 0.125, half-width 4.303 · 0.125 / √3 = 0.3105.
        XCTAssertTrue(section.contains("Mean difference in final accuracy (ARPO (DPO) − ARPO): 0.125 [-0.186, 0.436] over 3 seeds (paired; 95% interval by Student's t); ARPO (DPO) at or above ARPO on 3 of 3."), section)
        // Ignored tool failures: differences −0.125, −0.125, −0.25, mean −0.1667, s 0.0722,
        // half-width 0.1793. Format errors and tool calls per episode: no final record has them,
        // so no row.
        XCTAssertTrue(section.contains("""
            | Behaviour | ARPO | ARPO (DPO) | ARPO (DPO) − ARPO [95% interval] | Seeds |
            | --- | ---: | ---: | ---: | ---: |
            | Ignored tool failures per episode (final evaluation) | 0.292 | 0.125 | -0.167 [-0.346, 0.013] | 3 |
            | `unanswerable` accuracy, answering unknown (final evaluation) | 0.458 | 0.333 | -0.125 [-0.436, 0.186] | 3 |
            | Tool calls executed per trajectory (RL) | 0.83 | 0.83 | 0.00 [0.00, 0.00] | 3 |
            | Tool calls written per answered episode (RL) | 1.50 | 1.50 | 0.00 [0.00, 0.00] | 3 |
            | Response tokens per trajectory (RL) | 30.0 | 24.0 | -6.0 [-6.0, -6.0] | 3 |
            | Forks per RL step | 2.00 | 2.00 | 0.00 [0.00, 0.00] | 3 |
            | Fork rate (RL) | 0.400 | 0.400 | 0.000 [0.000, 0.000] | 3 |
            """), section)
        XCTAssertTrue(section.contains("ARPO (DPO) trained on 2.00 DPO preference pairs per RL step (`dpo_pairs`), mean over the RL steps of its finished runs."), section)
        // ARPO has no ignored-tool-failure record against the other tree methods: that row is left out.
        let tree = markdown.components(separatedBy: "## ARPO (tree) against ARPO, seed by seed\n")[1].components(separatedBy: "\n## ")[0]
        XCTAssertFalse(tree.contains("Ignored tool failures"), tree)
        XCTAssertTrue(tree.contains("| 1 | 0.500 | 0.500 | +0.000 |"), tree)

        let html = TrainingReport.html(for: runs)
        for name in names { XCTAssertNotNil(Self.summaryRow(name, in: html), "no summary row for \(name)") }
        XCTAssertTrue(html.contains("<h2>ARPO (memory bank) against ARPO, seed by seed</h2>"))
        // Eight methods, eight colours: the tree methods take the four beyond ARPO's, GRPO's and PPO's.
        for (name, color) in zip(names.suffix(4), ["#E69F00", "#56B4E9", "#000000", "#F0E442"]) {
            XCTAssertTrue(html.contains("stroke=\"\(color)\"><title>\(name) seed 1</title>"), name)
        }
    }

    func testARPOHardAtOneUpdatePerBatchIsFlaggedAsEqualToSoft() throws {
        let root = try temporaryDirectory(self)
        let directories = [
            try SyntheticRunDirectory(algorithm: "arpo", seed: 1).write(in: root, name: "soft"),
            try SyntheticRunDirectory(algorithm: "arpo", seed: 1, advantageMode: "arpo-hard").write(in: root, name: "hard"),
        ]
        let markdown = TrainingReport.markdown(for: try TrainingReport.loadRuns(directories), provenance: Self.provenance)
        XCTAssertTrue(markdown.contains("**Note:** 1 ARPO (hard) run took one update per rollout batch (`rl.epochs` × `rl.mini_batches` = 1), where `arpo-hard` gives exactly `arpo-soft`'s gradient"), markdown)
    }

    func testConfidenceIntervalsUseStudentsT() {
        XCTAssertNil(ConfidenceInterval([]))
        XCTAssertNil(ConfidenceInterval([0.5])?.halfWidth)
        // {0, 1}: s = √0.5, half-width 12.706 · √0.5 / √2 = 6.353.
        XCTAssertEqual(ConfidenceInterval([0, 1])?.halfWidth ?? .nan, 6.353, accuracy: 1e-9)
        // Five values 1…5: s = √2.5, t = 2.776, half-width 2.776 · √2.5 / √5 = 1.96292.
        XCTAssertEqual(ConfidenceInterval([1, 2, 3, 4, 5])?.halfWidth ?? .nan, 2.776 * 0.5.squareRoot(), accuracy: 1e-9)
        // Beyond 30 degrees of freedom the normal quantile.
        let many = (0..<40).map { Double($0 % 2) }
        let s = (10.0 / 39).squareRoot()
        XCTAssertEqual(ConfidenceInterval(many)?.halfWidth ?? .nan, 1.96 * s / 40.0.squareRoot(), accuracy: 1e-9)
    }

    func testMarkdownNamesDifferingSizesPerAlgorithmAndLeavesOutUnfinishedRuns() throws {
        let root = try temporaryDirectory(self)
        let directories = [
            try SyntheticRunDirectory(algorithm: "grpo", seed: 1).write(in: root, name: "grpo-1"),
            try SyntheticRunDirectory(algorithm: "ppo", seed: 1).write(in: root, name: "ppo-1"),
            try SyntheticRunDirectory(algorithm: "ppo", seed: 2, completedSteps: 2).write(in: root, name: "ppo-2"),
        ]
        var provenance = Self.provenance
        provenance.hasUncommittedChanges = true
        provenance.command = nil
        let markdown = TrainingReport.markdown(for: try TrainingReport.loadRuns(directories), provenance: provenance)
        XCTAssertTrue(markdown.contains("| PPO | 1 (1), +1 unfinished | 0.500 | 0.250 |"), markdown)
        XCTAssertTrue(markdown.contains("Left out (no summary.json, unfinished): `\(directories[2].path)`."), markdown)
        XCTAssertTrue(markdown.contains("Wall time summed over the runs: 3 min 00 s.\n"), markdown)
        XCTAssertFalse(markdown.contains("## ARPO branching"), "no ARPO run, no branching table")
        // The unfinished PPO run has no summary, so no parameter count.
        XCTAssertTrue(markdown.contains("| Parameters | 19,040 (GRPO); 19,073 (ppo-1); unknown (ppo-2); counts include the value head (width + 1 parameters) in runs with one |"), markdown)
        XCTAssertTrue(markdown.contains("| Cold start (SFT) | each run's own: 2 steps × 4 demonstrations per step (16 distinct) |"), markdown)
        XCTAssertTrue(markdown.contains("- Commit: `0123abcd`, with uncommitted changes to tracked files\n"), markdown)
        XCTAssertFalse(markdown.contains("Reproduce"), "no command given")
    }

    func testReportCommandWritesTheMarkdownDocumentWithCommandMachineAndCommit() throws {
        let root = try temporaryDirectory(self)
        _ = try SyntheticRunDirectory(algorithm: "arpo", seed: 1).write(in: root, name: "arpo")
        _ = try SyntheticRunDirectory(algorithm: "grpo", seed: 1).write(in: root, name: "grpo")
        let markdown = root.appendingPathComponent("docs/RESULTS.md")
        try FileManager.default.createDirectory(at: markdown.deletingLastPathComponent(), withIntermediateDirectories: true)
        let result = try runArpoTrain(["report", "arpo", "grpo", "--output", "page.html", "--markdown", "docs/RESULTS.md", "--command", "SEEDS=\"0\" scripts/compare.sh"], directory: root)
        XCTAssertEqual(result.status, 0, result.error)
        XCTAssertTrue(result.output.contains("Wrote \(markdown.path)"), result.output)
        XCTAssertEqual(Self.charts(in: try String(contentsOf: root.appendingPathComponent("page.html"), encoding: .utf8)).count, Self.chartTitles.count)
        let text = try String(contentsOf: markdown, encoding: .utf8)
        // Run directories as given on the command line, relative to where it ran.
        XCTAssertTrue(text.contains("from 2 run directories: `arpo`, `grpo`."), text)
        XCTAssertTrue(text.contains("| ARPO | 1 (1) | 0.500 | 0.250 | 0.83 | 1.50 | 20 | 600 | 1 min 30 s |"), text)
        XCTAssertTrue(text.contains("- Reproduce: `SEEDS=\"0\" scripts/compare.sh`"), text)
        // The temporary directory is no git work tree.
        XCTAssertTrue(text.contains("- Commit: unknown (not written in a git work tree)"), text)
        let cores = ProcessInfo.processInfo.activeProcessorCount
        XCTAssertTrue(text.contains("- Machine: ") && text.contains(", \(cores) core\(cores == 1 ? "" : "s") (where this document was written)"), text)

        // --command belongs to the Markdown document; a missing run writes neither file.
        XCTAssertEqual(try runArpoTrain(["report", "arpo", "--command", "x"], directory: root).status, 2)
        let missing = try runArpoTrain(["report", "arpo", "gone", "--output", "other.html", "--markdown", "OTHER.md"], directory: root)
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.error.contains("gone: run directory does not exist"), missing.error)
        for name in ["other.html", "OTHER.md"] { XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent(name).path), name) }
    }

    // MARK: Missing and malformed inputs

    func testMissingRunDirectoryIsNamed() throws {
        let missing = try temporaryDirectory(self).appendingPathComponent("no-such-run")
        let error = try XCTUnwrap(try reportError { try TrainingReport.loadRuns([missing]) })
        XCTAssertEqual(error.description, "\(missing.path): run directory does not exist")
    }

    func testRunDirectoryWithoutMetricsNamesTheMissingFile() throws {
        let run = try SyntheticRunDirectory().write(in: try temporaryDirectory(self), name: "run")
        try FileManager.default.removeItem(at: run.appendingPathComponent("metrics.jsonl"))
        let error = try XCTUnwrap(try reportError { try TrainingReport.loadRuns([run]) })
        XCTAssertEqual(error.file, run.appendingPathComponent("metrics.jsonl").path)
        XCTAssertTrue(error.description.contains("metrics.jsonl: missing"), error.description)
    }

    func testMalformedMetricsLineNamesTheFileAndLineNumber() throws {
        let run = try SyntheticRunDirectory().write(in: try temporaryDirectory(self), name: "run")
        let metrics = run.appendingPathComponent("metrics.jsonl")
        var lines = try String(contentsOf: metrics, encoding: .utf8).split(separator: "\n").map(String.init)
        lines[3] = "{\"phase\": \"rl\", \"step\": "  // a line cut short, as by a full disk
        try Data(lines.joined(separator: "\n").utf8).write(to: metrics)
        let error = try XCTUnwrap(try reportError { try TrainingReport.loadRuns([run]) })
        XCTAssertEqual(error.file, metrics.path)
        XCTAssertEqual(error.line, 4)
        XCTAssertTrue(error.description.hasPrefix("\(metrics.path), line 4: not valid JSON"), error.description)
    }

    func testWronglyTypedFieldNamesTheLineAndField() throws {
        let run = try SyntheticRunDirectory().write(in: try temporaryDirectory(self), name: "run")
        let evaluations = run.appendingPathComponent("eval.jsonl")
        var lines = try String(contentsOf: evaluations, encoding: .utf8).split(separator: "\n").map(String.init)
        lines[1] = "{\"step\": 4, \"phase\": \"rl\", \"accuracy\": \"high\"}"
        try Data(lines.joined(separator: "\n").utf8).write(to: evaluations)
        let error = try XCTUnwrap(try reportError { try TrainingReport.loadRuns([run]) })
        XCTAssertEqual(error.description, "\(evaluations.path), line 2: field \"accuracy\" is not a number")
    }

    func testConfigWithoutAlgorithmIsNamed() throws {
        let run = try SyntheticRunDirectory().write(in: try temporaryDirectory(self), name: "run")
        try Data("{\"rl\": {\"steps\": 3}}".utf8).write(to: run.appendingPathComponent("config.json"))
        let error = try XCTUnwrap(try reportError { try TrainingReport.loadRuns([run]) })
        XCTAssertEqual(error.description, "\(run.appendingPathComponent("config.json").path): has no rl.algorithm")
    }

    // MARK: The real binary

    func testReportCommandWritesReportHTMLInTheCurrentDirectoryOrAtOutput() throws {
        let root = try temporaryDirectory(self)
        let arpo = try SyntheticRunDirectory(algorithm: "arpo", seed: 1).write(in: root, name: "arpo")
        let grpo = try SyntheticRunDirectory(algorithm: "grpo", seed: 1, completedSteps: 1).write(in: root, name: "grpo")
        let result = try runArpoTrain(["report", arpo.path, grpo.path], directory: root)
        XCTAssertEqual(result.status, 0, result.error)
        let page = root.appendingPathComponent("report.html")
        let html = try String(contentsOf: page, encoding: .utf8)
        XCTAssertEqual(Self.charts(in: html).count, Self.chartTitles.count)
        XCTAssertFalse(html.contains("Rollout trees"), "runs without trees.jsonl have no tree section")
        XCTAssertTrue(result.output.contains("(2 runs, 1 unfinished)"), result.output)

        let elsewhere = root.appendingPathComponent("pages/comparison.html")
        try FileManager.default.createDirectory(at: elsewhere.deletingLastPathComponent(), withIntermediateDirectories: true)
        XCTAssertEqual(try runArpoTrain(["report", arpo.path, "--output", elsewhere.path]).status, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: elsewhere.path))
    }

    func testReportCommandExitsWithCode2NamingAMissingRunDirectory() throws {
        let root = try temporaryDirectory(self)
        let result = try runArpoTrain(["report", root.appendingPathComponent("missing").path], directory: root)
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.error.contains("\(root.path)/missing: run directory does not exist"), result.error)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent("report.html").path), "a failed report wrote a page")
        XCTAssertEqual(try runArpoTrain(["report"], directory: root).status, 2, "no run directory is a usage error")
    }

    // MARK: Helpers

    /// The page's <svg> elements, in order.
    static func charts(in html: String) -> [String] {
        html.components(separatedBy: "<svg").dropFirst().map { "<svg" + $0.components(separatedBy: "</svg>")[0] + "</svg>" }
    }

    /// The cells after the algorithm's name in the summary table.
    static func summaryRow(_ algorithm: String, in html: String) -> String? {
        let start = "<tr><td class=\"text\">\(algorithm)</td>"
        guard let range = html.range(of: start) else { return nil }
        return String(html[range.upperBound...].prefix { $0 != "\n" }.dropLast("</tr>".count))
    }

    /// The ReportError `body` throws, or nil (a failure) when it throws none; other errors propagate.
    func reportError(_ body: () throws -> Any, file: StaticString = #filePath, line: UInt = #line) throws -> ReportError? {
        do {
            _ = try body()
        } catch let error as ReportError {
            return error
        }
        XCTFail("no error thrown", file: file, line: line)
        return nil
    }
}

/// A run directory as the trainer writes it, small enough to check by hand: 2 SFT steps, then 3
/// RL steps of 8 trajectories each, held-out evaluations after SFT, at step 4 and at the end.
struct SyntheticRunDirectory {
    var algorithm = "arpo"
    var seed = 1
    var finalAccuracy = 0.5
    var accuracyAfterSFT = 0.25
    /// Tool calls executed at each RL step.
    var toolCalls = [4, 6, 10]
    /// Tokens generated at each RL step.
    var tokens = [100, 200, 300]
    var wallSeconds = 90.0
    /// The KL to the reference at every RL step (nil writes null).
    var referenceKL: Double? = 0.01
    /// Whether an ARPO run's RL lines hold `entropy_after_tool_result_k` and
    /// `forks_after_tool_result_k` (false: a metrics.jsonl without those keys).
    var byToolResult = true
    /// RL steps written; fewer than 3 leaves the run unfinished (no final evaluation or summary).
    var completedSteps = 3
    /// `sft.init_from`: another run's `reference/` the run started from (its own SFT is 0 steps).
    var initFrom: String?
    /// `rl.advantage.mode`.
    var advantageMode = "arpo-soft"
    /// `rl.mini_batches`.
    var miniBatches = 1
    /// `tool_calls_written` at each RL step; nil writes `toolCalls` (no fork shared a call).
    var toolCallsWritten: [Int]?
    /// `tool_calls_per_answered_episode` at each RL step.
    var toolCallsPerAnsweredEpisode = [1.0, 1.5, 2.0]
    /// `env.reward.tool_efficiency`; nil leaves the key out.
    var toolEfficiency: Bool?
    /// `env.reward.tool_efficiency_form`; nil leaves the key out.
    var toolEfficiencyForm: String?
    /// `rl.loss.dpo_coefficient`; nil leaves `rl.loss` out.
    var dpoCoefficient: Double?
    /// `rl.memory_bank.coefficient` and `contrastive_coefficient`; nil leaves the key out.
    var memoryBankCoefficient: Double?
    var memoryBankContrastiveCoefficient: Double?
    /// `rl.branching.rule`; nil leaves the key out.
    var branchingRule: String?
    /// `dpo_pairs` at every RL step; nil writes null.
    var dpoPairs: Int?
    /// `response_length_mean` at every RL step.
    var responseLength = 30.0
    /// The final evaluation's `ignored_tool_failure_rate`; nil leaves the key out.
    var finalIgnoredToolFailureRate: Double?

    static let trajectories = 8

    /// Writes the run into `root/name` and returns its URL.
    func write(in root: URL, name: String) throws -> URL {
        let directory = root.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var reward: [String: Any] = [:]
        if let toolEfficiency { reward["tool_efficiency"] = toolEfficiency }
        if let toolEfficiencyForm { reward["tool_efficiency_form"] = toolEfficiencyForm }
        var branching: [String: Any] = ["budget": 4, "initial_samples": 2, "branch_factor": 2, "threshold": 0.5]
        if let branchingRule { branching["rule"] = branchingRule }
        var memoryBank: [String: Any] = [:]
        if let memoryBankCoefficient { memoryBank["coefficient"] = memoryBankCoefficient }
        if let memoryBankContrastiveCoefficient { memoryBank["contrastive_coefficient"] = memoryBankContrastiveCoefficient }
        var rl: [String: Any] = [
            "algorithm": algorithm, "steps": 3, "prompts_per_step": 2, "group_size": 4, "max_response_tokens": 100, "learning_rate": 0.0001,
            "branching": branching, "advantage": ["mode": advantageMode], "epochs": 1, "mini_batches": miniBatches, "memory_bank": memoryBank,
        ]
        if let dpoCoefficient { rl["loss"] = ["dpo_coefficient": dpoCoefficient] }
        let config: [String: Any] = [
            "model": ["hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
                      "max_position_embeddings": 240, "value_head": algorithm == "ppo"],
            "env": ["task_mix": ["arithmetic": 1, "unanswerable": 0.5], "difficulty": 1, "reward": reward],
            "sft": ["steps": initFrom == nil ? 2 : 0, "batch_size": 4, "demonstrations": 16, "init_from": initFrom.map { $0 as Any } ?? NSNull()],
            "rl": rl,
            "eval": ["every": 2, "episodes": 8],
            "run": ["seed": seed, "output": directory.path, "threads": 1],
        ]
        try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]).write(to: directory.appendingPathComponent("config.json"))

        var metrics: [[String: Any]] = (1...2).map { step in
            ["phase": "sft", "step": step, "phase_step": step, "loss": 2.0 / Double(step), "gradient_norm": 1.0, "learning_rate": 0.003,
             "tokens": 500, "tokens_per_second": 1000.0, "seconds": 0.5, "skipped": false]
        }
        var total = 0
        for index in 0..<completedSteps {
            total += toolCalls[index]
            let isARPO = algorithm == "arpo"
            // Step 4 has no tool result followed by generated tokens: its entropy after them is null.
            let entropyAfterToolResults: Any = isARPO && index != 1 ? 0.6 - 0.05 * Double(index) : NSNull()
            metrics.append([
                "phase": "rl", "step": 3 + index, "phase_step": index + 1, "algorithm": algorithm,
                "reward_mean": 0.2 + 0.1 * Double(index), "reward_std": 0.3, "accuracy": 0.25, "learning_rate": 0.0001,
                "trajectories": Self.trajectories, "tool_calls_executed": toolCalls[index], "tool_calls_executed_total": total,
                "tool_calls_per_trajectory": Double(toolCalls[index]) / Double(Self.trajectories),
                "tool_calls_written": (toolCallsWritten ?? toolCalls)[index], "tool_calls_per_answered_episode": toolCallsPerAnsweredEpisode[index],
                // Forks 1, 2, 3; declined by the rule 2 each step; blocked by the budget 0, 1, 2.
                "tokens_generated": tokens[index], "forks": isARPO ? index + 1 : 0, "response_length_mean": responseLength,
                "dpo_pairs": dpoPairs.map { $0 as Any } ?? NSNull(),
                "forks_declined_by_rule": isARPO ? 2 : 0, "forks_blocked_by_budget": isARPO ? index : 0,
                "entropy_after_tool_results": entropyAfterToolResults, "entropy_initial": 0.4,
                "entropy_delta_at_forks": isARPO ? 0.2 + 0.1 * Double(index) : NSNull(), "entropy_delta_elsewhere": isARPO ? -0.1 : NSNull(),
                "rollout_seconds": 1.0, "update_seconds": 0.5, "rollout_tokens_per_second": 100.0, "tokens_per_second": 66.0,
                "policy_loss": -0.01, "clip_fraction_low": 0.0, "clip_fraction_high": 0.0, "approx_kl": 0.001,
                "reference_kl": referenceKL.map { $0 * Double(index + 1) } ?? NSNull(), "entropy": 1.5 - 0.1 * Double(index),
                "gradient_norm": 0.5, "value_loss": algorithm == "ppo" ? 0.2 : NSNull(), "explained_variance": NSNull(), "skipped_updates": 0,
            ])
            if isARPO && byToolResult {
                // After the 1st result 0.6, 0.7, 0.8; after the 2nd null, 0.5, 0.5; never a 3rd.
                // Forks after the 1st result 1 per step, after the 2nd 0, 1, 2, after the 3rd 0.
                metrics[metrics.count - 1].merge([
                    "entropy_after_tool_result_1": 0.6 + 0.1 * Double(index), "entropy_after_tool_result_2": index == 0 ? NSNull() : 0.5,
                    "entropy_after_tool_result_3": NSNull(),
                    "forks_after_tool_result_1": 1, "forks_after_tool_result_2": index, "forks_after_tool_result_3": 0,
                ]) { $1 }
            }
        }
        try Self.writeLines(metrics, to: directory.appendingPathComponent("metrics.jsonl"))

        var evaluations: [[String: Any]] = [
            ["step": 2, "phase": "sft", "accuracy": accuracyAfterSFT, "accuracy_by_family": ["arithmetic": accuracyAfterSFT], "format_error_rate": 0.1,
             "tool_calls_per_episode": 1.0, "mean_reward": 0.1, "episodes": 8, "samples": [["transcript": "<call>…</call>"]]],
        ]
        if completedSteps >= 2 {
            evaluations.append(["step": 4, "phase": "rl", "accuracy": (accuracyAfterSFT + finalAccuracy) / 2, "tool_calls_executed_total": toolCalls[0] + toolCalls[1], "episodes": 8, "samples": []])
        }
        if completedSteps == 3 {
            let byFamily = ["arithmetic": finalAccuracy, "unanswerable": 1 - finalAccuracy]
            var final: [String: Any] = ["step": 5, "phase": "rl", "final": true, "accuracy": finalAccuracy, "tool_calls_executed_total": total, "episodes": 8, "samples": [],
                                        "accuracy_by_family": byFamily]
            if let finalIgnoredToolFailureRate { final["ignored_tool_failure_rate"] = finalIgnoredToolFailureRate }
            evaluations.append(final)
            let summary: [String: Any] = [
                "accuracy_after_sft": accuracyAfterSFT, "accuracy_after_rl": finalAccuracy, "accuracy_by_family_after_rl": byFamily, "tool_calls_executed": total, "algorithm": algorithm,
                "wall_seconds": wallSeconds, "sft_steps": 2, "rl_steps": 3, "seed": seed, "parameters": algorithm == "ppo" ? 19_073 : 19_040,
            ]
            try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys]).write(to: directory.appendingPathComponent("summary.json"))
        }
        try Self.writeLines(evaluations, to: directory.appendingPathComponent("eval.jsonl"))
        return directory
    }

    static func writeLines(_ objects: [[String: Any]], to url: URL) throws {
        let lines = try objects.map { String(decoding: try JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]), as: UTF8.self) }
        try Data(lines.map { $0 + "\n" }.joined().utf8).write(to: url)
    }
}
