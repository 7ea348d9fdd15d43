import Foundation
import RunRecords

/// `arpo-train report`: one self-contained HTML page comparing runs, with inline SVG charts and
/// no JavaScript, so it opens offline in any browser and can be mailed as one file.
///
/// Runs are grouped by method (``TrainingMethod``): the algorithm, the advantage mode where it
/// changes the algorithm's numbers, the tree signals (DPO term, memory bank, AEPO's branching)
/// and the tool-efficiency factor when the training reward has it, so ARPO with soft, hard or
/// tree attribution, with the DPO term, the memory bank, AEPO's branching or OTC-PO's reward are
/// compared as separate methods. The page shows a table per method and the results document's
/// tables (per family, ARPO variants against GRPO and tree methods against ARPO seed by seed,
/// tool calls, time per step, branching); held-out
/// accuracy against step and against cumulative tool calls; reward, entropy, KL to the reference
/// policy and tool calls per trajectory against step; for ARPO runs the entropy just after tool
/// results against the initial entropy, and forks per step. One line per run: colour by method,
/// dash by seed.
///
/// Runs without `summary.json` (still running, or stopped) are drawn in the charts and marked
/// unfinished, but left out of the tables, whose numbers are over finished runs only.
public enum TrainingReport {
    /// The page's default file name, in the current directory.
    public static let defaultOutputName = "report.html"

    /// Reads the run directories and writes the page to `output`.
    ///
    /// - Parameters:
    ///   - runDirectories: At least one directory written by `arpo-train train`.
    ///   - output: The HTML file to write (replaced if it exists).
    /// - Returns: The runs as read, in the order given.
    /// - Throws: ``ReportError`` naming the file and the problem.
    @discardableResult
    public static func write(runDirectories: [URL], to output: URL) throws -> [ReportRun] {
        let runs = try loadRuns(runDirectories)
        try writeHTML(for: runs, to: output)
        return runs
    }

    /// Writes the page for `runs` to `output` (replaced if it exists).
    ///
    /// - Throws: ``ReportError`` when the file cannot be written.
    public static func writeHTML(for runs: [ReportRun], to output: URL) throws {
        do {
            try Data(html(for: runs).utf8).write(to: output, options: .atomic)
        } catch {
            throw ReportError(file: output.path, problem: "cannot be written: \(error.localizedDescription)")
        }
    }

    /// Reads each run directory (see ``ReportRun/load(from:)``).
    public static func loadRuns(_ runDirectories: [URL]) throws -> [ReportRun] {
        precondition(!runDirectories.isEmpty, "a report needs at least one run directory")
        return try runDirectories.map(ReportRun.load(from:))
    }

    /// The page for these runs, as HTML text.
    public static func html(for runs: [ReportRun]) -> String {
        precondition(!runs.isEmpty, "a report needs at least one run")
        return ReportPage(runs: runs).html()
    }

    /// One row per method, in the order each method first appears among `runs`, over that
    /// method's finished runs.
    public static func summaries(of runs: [ReportRun]) -> [MethodSummary] {
        methods(of: runs).map { method in MethodSummary(method: method, runs: runs.filter { $0.method == method }) }
    }

    /// The methods of `runs`, in order of first appearance.
    public static func methods(of runs: [ReportRun]) -> [TrainingMethod] {
        var methods: [TrainingMethod] = []
        for run in runs where !methods.contains(run.method) { methods.append(run.method) }
        return methods
    }
}

/// What the report groups runs by: `rl.algorithm`, `rl.advantage.mode` where the mode makes the
/// algorithm compute different advantages from its default (docs/algorithms.md §4.2), the tree
/// signals the run trains with (the DPO term, the memory bank, AEPO's branching; §5.6, §5.7,
/// §3.1), and the form of OTC-PO's tool-efficiency factor when the training reward uses it (§6).
///
/// The mode is dropped where it changes nothing: PPO takes GAE advantages and ignores it; `grpo`
/// and `arpo-soft` (the default) compute the same numbers; and without forks (GRPO) `arpo-hard`
/// and `arpo-hard-once` have no shared prefix to attribute, so only `dr-grpo` and `tree` differ
/// there. AEPO's rule is dropped for the same reason outside ARPO: only ARPO branches.
public struct TrainingMethod: Hashable, Sendable {
    /// "arpo", "grpo" or "ppo", as in `config.json`.
    public var algorithm: String
    /// `rl.advantage.mode` when it changes the algorithm's numbers, nil otherwise.
    public var advantageMode: String?
    /// Whether `rl.loss.dpo_coefficient` > 0: TTPA's DPO term on the preference pairs at fork
    /// points (docs/algorithms.md §5.6).
    public var usesDPO: Bool
    /// Whether `rl.memory_bank.coefficient` or `rl.memory_bank.contrastive_coefficient` > 0:
    /// AvaTaR's bank of best trajectories replayed in the update (§5.7).
    public var usesMemoryBank: Bool
    /// Whether an ARPO run branches by AEPO's `rl.branching.rule: entropy-balanced` (§3.1).
    public var usesEntropyBalancedBranching: Bool
    /// `env.reward.tool_efficiency_form` ("group" or "group-free") when
    /// `env.reward.tool_efficiency` is on, nil when it is off: the factor changes the rewards
    /// the policy is trained on, so runs with and without it are different methods.
    public var toolEfficiencyForm: String?

    /// The method of a run with this algorithm and advantage mode (nil: the default mode), these
    /// tree signals and, when the training reward has the tool-efficiency factor, its form.
    public init(
        algorithm: String, advantageMode: String?, usesDPO: Bool = false, usesMemoryBank: Bool = false,
        usesEntropyBalancedBranching: Bool = false, toolEfficiencyForm: String? = nil
    ) {
        self.algorithm = algorithm
        let changesNothing: Set<String?> = switch algorithm {
        case "ppo": [advantageMode]
        case "grpo": [nil, "grpo", "arpo-soft", "arpo-hard", "arpo-hard-once"]
        default: [nil, "grpo", "arpo-soft"]
        }
        self.advantageMode = changesNothing.contains(advantageMode) ? nil : advantageMode
        self.usesDPO = usesDPO
        self.usesMemoryBank = usesMemoryBank
        self.usesEntropyBalancedBranching = usesEntropyBalancedBranching && algorithm == "arpo"
        self.toolEfficiencyForm = toolEfficiencyForm
    }

    /// "ARPO", "ARPO (hard)", "ARPO (tree)", "GRPO (dr-grpo)"; with tree signals "ARPO (DPO)",
    /// "ARPO (memory bank)", "ARPO (AEPO)"; with the tool-efficiency factor "ARPO (OTC group)"
    /// for the group form, "ARPO (OTC)" for the group-free one. Several qualifiers join in that
    /// order: "ARPO (hard, DPO, OTC group)".
    public var displayName: String {
        var qualifiers: [String] = []
        if let advantageMode {
            qualifiers.append(advantageMode.hasPrefix("arpo-") ? String(advantageMode.dropFirst("arpo-".count)) : advantageMode)
        }
        if usesDPO { qualifiers.append("DPO") }
        if usesMemoryBank { qualifiers.append("memory bank") }
        if usesEntropyBalancedBranching { qualifiers.append("AEPO") }
        if let toolEfficiencyForm { qualifiers.append(toolEfficiencyForm == "group" ? "OTC group" : "OTC") }
        guard !qualifiers.isEmpty else { return algorithm.uppercased() }
        return "\(algorithm.uppercased()) (\(qualifiers.joined(separator: ", ")))"
    }

    /// Whether the method branches (ARPO, whatever its attribution).
    public var isARPO: Bool { algorithm == "arpo" }

    /// Whether the training reward multiplies the answer score by OTC-PO's tool-efficiency factor.
    public var usesToolEfficiency: Bool { toolEfficiencyForm != nil }

    /// Whether the method learns from its rollout trees beyond ARPO's own advantages: the tree
    /// advantages (`rl.advantage.mode: tree`), the DPO term, the memory bank or AEPO's branching.
    public var usesTreeSignal: Bool {
        advantageMode == "tree" || usesDPO || usesMemoryBank || usesEntropyBalancedBranching
    }

    /// The same method without the tool-efficiency factor: what an OTC method is compared
    /// against to see the factor's effect.
    public var withoutToolEfficiency: TrainingMethod {
        var method = self
        method.toolEfficiencyForm = nil
        return method
    }

    /// The same method without its tree signals (the tree advantages give way to the default
    /// mode): what a tree method is compared against to see what the signals change.
    public var withoutTreeSignals: TrainingMethod {
        var method = self
        if method.advantageMode == "tree" { method.advantageMode = nil }
        method.usesDPO = false
        method.usesMemoryBank = false
        method.usesEntropyBalancedBranching = false
        return method
    }

    /// GRPO with its default advantages, the baseline ARPO is paired against.
    public static let grpo = TrainingMethod(algorithm: "grpo", advantageMode: nil)
}

/// A report input that cannot be read: the file (or directory), the line for JSON Lines files,
/// and what is wrong with it.
public struct ReportError: Error, CustomStringConvertible, LocalizedError, Equatable {
    /// The path of the file or directory at fault.
    public var file: String
    /// The line number, from 1, in a JSON Lines file.
    public var line: Int?
    /// What is wrong, as a sentence fragment that follows the path.
    public var problem: String

    /// An error about `file` (at `line` of a JSON Lines file).
    public init(file: String, line: Int? = nil, problem: String) {
        self.file = file
        self.line = line
        self.problem = problem
    }

    /// "PATH, line N: PROBLEM", or "PATH: PROBLEM".
    public var description: String {
        if let line { return "\(file), line \(line): \(problem)" }
        return "\(file): \(problem)"
    }

    /// The same as ``description``, for `localizedDescription`.
    public var errorDescription: String? { description }
}

/// A mean over runs and, when there are at least two, the sample standard deviation (n − 1).
public struct MeanAndStandardDeviation: Equatable, Sendable {
    /// The arithmetic mean.
    public var mean: Double
    /// Nil for a single value.
    public var standardDeviation: Double?
    /// How many values.
    public var count: Int

    /// Nil when `values` is empty.
    public init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        count = values.count
        mean = values.reduce(0, +) / Double(count)
        if count >= 2 {
            let squares = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
            standardDeviation = (squares / Double(count - 1)).squareRoot()
        }
    }
}

/// A mean with its 95% confidence interval over independent runs: mean ± t·s/√n, with t the
/// 0.975 quantile of Student's t with n − 1 degrees of freedom (the runs are few, so the normal
/// quantile 1.96 would be too narrow: t is 4.30 for 3 runs and 2.78 for 5).
public struct ConfidenceInterval: Equatable, Sendable {
    public var mean: Double
    /// t·s/√n; nil for a single value.
    public var halfWidth: Double?
    public var count: Int

    /// Nil when `values` is empty.
    public init?(_ values: [Double]) {
        guard let statistics = MeanAndStandardDeviation(values) else { return nil }
        mean = statistics.mean
        count = statistics.count
        halfWidth = statistics.standardDeviation.map { ConfidenceInterval.studentT975(degreesOfFreedom: count - 1) * $0 / Double(count).squareRoot() }
    }

    /// The 0.975 quantile of Student's t (tabulated to 30 degrees of freedom, 1.96 beyond).
    static func studentT975(degreesOfFreedom: Int) -> Double {
        let table = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
                     2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
        precondition(degreesOfFreedom >= 1, "a confidence interval needs two values")
        return degreesOfFreedom <= table.count ? table[degreesOfFreedom - 1] : 1.96
    }
}

/// The summary table's row for one method, over its finished runs.
public struct MethodSummary: Equatable, Sendable {
    public var method: TrainingMethod
    /// Runs with `summary.json`.
    public var finishedRuns: Int
    /// Runs without `summary.json`, which only the charts show.
    public var unfinishedRuns: Int
    /// `run.seed` of the finished runs that record one, in run order.
    public var seeds: [UInt64]
    /// `accuracy_after_sft` over finished runs.
    public var accuracyAfterSFT: MeanAndStandardDeviation?
    /// `accuracy_after_rl`, the final held-out accuracy, over finished runs (the seeds).
    public var finalAccuracy: MeanAndStandardDeviation?
    /// Tool calls executed in RL divided by trajectories rolled out in RL, both summed over every
    /// RL step of every finished run (so long and short steps weigh by their trajectories). A
    /// fork's inherited calls ran once, in its parent, and count once.
    public var toolCallsExecutedPerTrajectory: Double?
    /// `tool_calls_per_answered_episode` (the executed calls in an answered trajectory's
    /// transcript, inherited ones included), mean over the RL steps of every finished run.
    public var toolCallsWrittenPerAnsweredEpisode: Double?
    /// `tool_calls_executed` of `summary.json` (every RL tool call), mean over finished runs.
    public var toolCallsExecutedPerRun: Double?
    /// Tokens generated in RL rollouts, summed over a run's RL steps, mean over finished runs.
    public var tokensGeneratedPerRun: Double?
    /// `wall_seconds`, mean over finished runs.
    public var wallSecondsPerRun: Double?

    /// The row for `runs`, which all have this method.
    public init(method: TrainingMethod, runs: [ReportRun]) {
        let finished = runs.filter(\.isFinished)
        self.method = method
        finishedRuns = finished.count
        unfinishedRuns = runs.count - finished.count
        seeds = finished.compactMap(\.seed)
        accuracyAfterSFT = MeanAndStandardDeviation(finished.compactMap { $0.summary?.accuracyAfterSFT })
        finalAccuracy = MeanAndStandardDeviation(finished.compactMap { $0.summary?.accuracyAfterRL })
        toolCallsExecutedPerTrajectory = ReportRun.toolCallsExecutedPerTrajectory(over: finished.flatMap(\.reinforcementMetrics))
        toolCallsWrittenPerAnsweredEpisode = ReportRun.toolCallsWrittenPerAnsweredEpisode(over: finished.flatMap(\.reinforcementMetrics))
        toolCallsExecutedPerRun = MeanAndStandardDeviation(finished.compactMap { $0.summary?.toolCallsExecuted.map(Double.init) })?.mean
        tokensGeneratedPerRun = MeanAndStandardDeviation(finished.map { run in
            Double(run.reinforcementMetrics.compactMap(\.tokensGenerated).reduce(0, +))
        })?.mean
        wallSecondsPerRun = MeanAndStandardDeviation(finished.compactMap { $0.summary?.wallSeconds })?.mean
    }
}

/// ARPO's branching over some runs' RL steps (docs/algorithms.md §3): how often it forked, and the step
/// entropies whose difference ΔH = H after a tool result − H initial drives the fork probability.
/// Each figure is a mean over the RL steps that record it (a step with no tool result followed by
/// generated tokens has no entropy after tool results), so every step weighs the same.
public struct BranchingSummary: Equatable, Sendable {
    /// `forks` per RL step.
    public var forksPerStep: Double?
    /// `entropy_initial`: the step entropy over a response's first k tokens.
    public var initialEntropy: Double?
    /// `entropy_after_tool_results`: the step entropy over the k tokens after a tool result.
    public var entropyAfterToolResults: Double?
    /// `entropy_delta_at_forks`: ΔH where a fork was taken.
    public var entropyDeltaAtForks: Double?
    /// `entropy_delta_elsewhere`: ΔH where a fork was considered but not taken.
    public var entropyDeltaElsewhere: Double?
    /// `entropy_after_tool_result_1` … `_3`: the step entropy after a trajectory's 1st, 2nd and
    /// 3rd tool result.
    public var entropyAfterToolResult: [Double?]
    /// `forks_after_tool_result_1` … `_3` per RL step: where the forks happen.
    public var forksPerStepAfterToolResult: [Double?]
    /// Forks taken over fork opportunities (`forks` + `forks_declined_by_rule` +
    /// `forks_blocked_by_budget`), each summed over the RL steps that record all three.
    public var forkRate: Double?
    /// `forks_blocked_by_budget` per RL step: the rule said fork but the group was full.
    public var forksBlockedByBudgetPerStep: Double?

    /// Over every RL step of `runs`.
    public init(runs: [ReportRun]) {
        let steps = runs.flatMap(\.reinforcementMetrics)
        func mean(_ value: (StepMetrics) -> Double?) -> Double? {
            MeanAndStandardDeviation(steps.compactMap(value).filter(\.isFinite))?.mean
        }
        forksPerStep = mean { $0.forks.map(Double.init) }
        initialEntropy = mean(\.initialEntropy)
        entropyAfterToolResults = mean(\.entropyAfterToolResults)
        entropyDeltaAtForks = mean(\.entropyDeltaAtForks)
        entropyDeltaElsewhere = mean(\.entropyDeltaElsewhere)
        entropyAfterToolResult = (1...3).map { k in mean { $0.entropyAfterToolResult(k) } }
        forksPerStepAfterToolResult = (1...3).map { k in mean { $0.forksAfterToolResult(k).map(Double.init) } }
        let opportunities = steps.compactMap { step -> (forks: Int, all: Int)? in
            guard let forks = step.forks, let declined = step.forksDeclinedByRule, let blocked = step.forksBlockedByBudget else { return nil }
            return (forks, forks + declined + blocked)
        }
        let all = opportunities.map(\.all).reduce(0, +)
        forkRate = all > 0 ? Double(opportunities.map(\.forks).reduce(0, +)) / Double(all) : nil
        forksBlockedByBudgetPerStep = mean { $0.forksBlockedByBudget.map(Double.init) }
    }
}
