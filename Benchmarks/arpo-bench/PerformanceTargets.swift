import Foundation
import Tensor

/// The performance targets, each a ratio to another figure of the same run (PyTorch measured
/// around the figure, the sgemm peak probed around it, the supervised step measured in the same
/// rounds), so a target means the same on any machine. No PyTorch figure is stored here
/// (`PyTorchReference`). A target whose comparison figure the run lacks is "not measured", never
/// met.
enum PerformanceTargets {
    /// Base train step tokens/s over PyTorch eager's, the same step on the same machine.
    static let baseTrainOverPyTorchEager = 3.0
    /// Base train step model FLOP rate as a share of the sgemm peak probed around it.
    static let baseTrainFractionOfPeak = 0.8
    /// Base batched decode tokens/s over PyTorch eager's.
    static let baseDecodeOverPyTorchEager = 6.0
    /// The RL update's real tokens/s as a fraction of the supervised step's on the same model.
    static let updateOverSupervised = 0.85
    /// A whole RL step's time over its rollout's plus its update's tokens at the supervised rate.
    static let stepOverRolloutAndSupervisedUpdate = 1.5
    /// The tensor API's time over raw sgemm at the same shape.
    static let tensorOverheadOverBLAS = 0.05
    /// ARPO rollout tokens/s as a fraction of trajectory-level rollout's.
    static let arpoRolloutFraction = 0.9
    /// Base training's peak resident size.
    static let baseTrainPeakMegabytes = 1024.0
    /// Resident growth between step 10 and the last step allowed as noise: the larger of this
    /// many MiB and `memoryGrowthFraction` of the step-10 size.
    static let memoryGrowthMegabytes = 8.0
    static let memoryGrowthFraction = 0.02

    /// Fills `targets`, `target`, `meets_target` and `target_misses` on the entries a target
    /// applies to. `meets_target` is false when a target is missed, true when every one is met,
    /// and absent when none is missed but some could not be measured.
    static func apply(to results: inout [BenchmarkResult]) {
        let snapshot = results
        for index in results.indices {
            let checks = self.checks(for: results[index], among: snapshot)
            guard !checks.isEmpty else { continue }
            results[index].targets = checks
            results[index].target = checks.map(\.summary).joined(separator: "; ")
            let misses = checks.filter { $0.verdict == .miss }
            results[index].meetsTarget = !misses.isEmpty ? false : checks.allSatisfy { $0.verdict == .pass } ? true : nil
            results[index].targetMisses = misses.map(\.summary)
        }
    }

    static func checks(for result: BenchmarkResult, among results: [BenchmarkResult]) -> [TargetCheck] {
        func partner(_ benchmark: String, path: String? = nil) -> BenchmarkResult? {
            results.first {
                $0.benchmark == benchmark && $0.config == result.config && $0.threads == result.threads && $0.shape == result.shape && (path == nil || $0.path == path)
                    && $0.matmulPrecision == result.matmulPrecision && $0.float32GEMM == result.float32GEMM
            }
        }
        var checks: [TargetCheck] = []
        switch (result.benchmark, result.config) {
        case ("gemm", _) where result.path == "tensor":
            if let blas = partner("gemm", path: "blas") {
                // GFLOPS are inverse times: time over BLAS = BLAS GFLOPS / tensor GFLOPS.
                let overhead = blas.median / result.median - 1
                checks.append(TargetCheck(
                    name: "tensor_overhead_over_blas", description: String(format: "≤ %.0f%% over raw sgemm", tensorOverheadOverBLAS * 100),
                    atMost: tensorOverheadOverBLAS, measured: overhead, figures: String(format: "%+.1f%%", overhead * 100)))
            }
        case ("train", "base"):
            // The ratio targets are for float32 products, as PyTorch's figures are.
            if result.hasFloat32Products {
                checks.append(overPyTorchEager(result, name: "train_over_pytorch_eager", atLeast: baseTrainOverPyTorchEager))
                checks.append(TargetCheck(
                    name: "train_fraction_of_sgemm_peak", description: String(format: "≥ %.0f%% of the probed sgemm peak", baseTrainFractionOfPeak * 100),
                    atLeast: baseTrainFractionOfPeak, measured: result.fractionOfPeak,
                    figures: result.modelGFLOPS.flatMap { rate in
                        result.sgemmPeakGFLOPS.map { String(format: "%.0f%%: %.0f of %.0f GFLOPS", rate / $0 * 100, rate, $0) }
                    }))
            }
            if let peak = result.peakRssMB {
                checks.append(TargetCheck(
                    name: "train_peak_rss_mb", description: "peak RSS < \(Int(baseTrainPeakMegabytes)) MB", below: baseTrainPeakMegabytes, measured: peak,
                    figures: String(format: "%.0f MB", peak)))
            }
        case ("decode", "base"):
            checks.append(overPyTorchEager(result, name: "decode_over_pytorch_eager", atLeast: baseDecodeOverPyTorchEager))
        case ("rollout-arpo", _):
            if let trajectory = partner("rollout-trajectory") {
                let ratio = result.median / trajectory.median
                checks.append(TargetCheck(
                    name: "arpo_rollout_over_trajectory", description: String(format: "≥ %.0f%% of trajectory-level tokens/s", arpoRolloutFraction * 100),
                    atLeast: arpoRolloutFraction, measured: ratio, figures: String(format: "%.1f%%", ratio * 100)))
                if let mine = result.toolCallsPerTrajectory, let theirs = trajectory.toolCallsPerTrajectory {
                    checks.append(TargetCheck(
                        name: "arpo_tool_calls_over_trajectory", description: "fewer tool calls per trajectory", below: 0, measured: mine - theirs,
                        figures: String(format: "%.2f vs %.2f", mine, theirs)))
                }
            }
        case (let benchmark, _) where benchmark.hasPrefix("rl-step-"):
            checks += reinforcementStepChecks(result)
        case ("train-memory", let config):
            if config == "base", let peak = result.peakRssMB {
                checks.append(TargetCheck(
                    name: "train_peak_rss_mb", description: "peak RSS < \(Int(baseTrainPeakMegabytes)) MB", below: baseTrainPeakMegabytes, measured: peak,
                    figures: String(format: "%.0f MB", peak)))
            }
            if let first = result.rssAfterStep10MB, let last = result.rssAfterLastStepMB {
                let allowed = Swift.max(memoryGrowthMegabytes, memoryGrowthFraction * first)
                checks.append(TargetCheck(
                    name: "rss_growth_after_step_10_mb", description: String(format: "no growth after step 10 (≤ %.0f MB allowed)", allowed),
                    atMost: allowed, measured: last - first, figures: String(format: "%+.1f MB", last - first)))
            }
        case ("rl-memory", _):
            let growth = result.rssGrowthPer100StepsMB
            checks.append(TargetCheck(
                name: "rl_rss_growth_mb_per_100_steps", description: String(format: "growth < %.0f MB per 100 RL steps", rlMemoryGrowthPer100Steps),
                below: rlMemoryGrowthPer100Steps, measured: growth, figures: growth.map { String(format: "%+.2f MB per 100 steps", $0) }))
        default:
            break
        }
        return checks
    }

    /// The figure's tokens/s at least `atLeast` × PyTorch eager's, measured around it in this run.
    static func overPyTorchEager(_ result: BenchmarkResult, name: String, atLeast: Double) -> TargetCheck {
        let eager = result.pytorchEager.flatMap { $0 > 0 ? $0 : nil }
        return TargetCheck(
            name: name, description: String(format: "≥ %.0f× PyTorch eager", atLeast), atLeast: atLeast, measured: eager.map { result.median / $0 },
            figures: eager.map { String(format: "%.2f×: %@ against %@ tokens/s", result.median / $0, BenchmarkTable.number(result.median), BenchmarkTable.number($0)) }
                ?? "no PyTorch figure; --pytorch-python names a Python with torch")
    }

    /// An RL step's: the update's real tokens/s against the supervised step's, and the whole step
    /// against its rollout plus its update's tokens at the supervised rate (what the step would
    /// take if the update ran at the speed of training).
    static func reinforcementStepChecks(_ result: BenchmarkResult) -> [TargetCheck] {
        let supervised = result.supervisedTokensPerSecond.flatMap { $0 > 0 ? $0 : nil }
        let missing = "no supervised step figure"
        var checks: [TargetCheck] = []
        if let update = result.updateTokensPerSecond {
            checks.append(TargetCheck(
                name: "update_over_supervised", description: String(format: "update ≥ %.0f%% of the supervised step's tokens/s", updateOverSupervised * 100),
                atLeast: updateOverSupervised, measured: supervised.map { update / $0 },
                figures: supervised.map { String(format: "%.0f%%: %.0f against %.0f", update / $0 * 100, update, $0) } ?? missing))
        }
        if let rollout = result.phaseSeconds?["rollout"], let tokens = result.updateTokensPerStep {
            let bound = supervised.map { rollout + tokens / $0 }
            checks.append(TargetCheck(
                name: "step_over_rollout_and_supervised_update",
                description: String(format: "step ≤ %.1f× (rollout + update at the supervised rate)", stepOverRolloutAndSupervisedUpdate),
                atMost: stepOverRolloutAndSupervisedUpdate, measured: bound.map { result.median / $0 },
                figures: bound.map { String(format: "%.2f×: %.2f s against %.2f s + %.2f s", result.median / $0, result.median, rollout, $0 - rollout) } ?? missing))
        }
        return checks
    }
}

/// One performance target of a figure, as the JSON's `targets` records it: what it asks, its
/// threshold, the measured ratio or value it is judged on (nil when the run lacks the figure it
/// compares with), the verdict, and the figures behind the measured value.
struct TargetCheck: Codable, Equatable {
    enum Verdict: String, Codable {
        case pass
        case miss = "MISS"
        case notMeasured = "not measured"
    }

    /// How the measured value must compare with the threshold.
    enum Comparison: String, Codable {
        case atLeast = ">="
        case atMost = "<="
        case below = "<"
    }

    let name: String
    let description: String
    let comparison: Comparison
    let threshold: Double
    let measured: Double?
    let verdict: Verdict
    let figures: String?

    init(name: String, description: String, comparison: Comparison, threshold: Double, measured: Double?, figures: String?) {
        self.name = name
        self.description = description
        self.comparison = comparison
        self.threshold = threshold
        self.measured = measured
        self.figures = figures
        if let measured, measured.isFinite {
            let met: Bool
            switch comparison {
            case .atLeast: met = measured >= threshold
            case .atMost: met = measured <= threshold
            case .below: met = measured < threshold
            }
            verdict = met ? .pass : .miss
        } else {
            verdict = .notMeasured
        }
    }

    init(name: String, description: String, atLeast threshold: Double, measured: Double?, figures: String?) {
        self.init(name: name, description: description, comparison: .atLeast, threshold: threshold, measured: measured, figures: figures)
    }

    init(name: String, description: String, atMost threshold: Double, measured: Double?, figures: String?) {
        self.init(name: name, description: description, comparison: .atMost, threshold: threshold, measured: measured, figures: figures)
    }

    init(name: String, description: String, below threshold: Double, measured: Double?, figures: String?) {
        self.init(name: name, description: description, comparison: .below, threshold: threshold, measured: measured, figures: figures)
    }

    /// Writes every key, `measured` and `figures` as null when missing.
    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(description, forKey: .description)
        try container.encode(comparison, forKey: .comparison)
        try container.encode(threshold, forKey: .threshold)
        try container.encode(measured, forKey: .measured)
        try container.encode(verdict, forKey: .verdict)
        try container.encode(figures, forKey: .figures)
    }

    /// "pass: ≥ 3× PyTorch eager (3.21×: …)", "MISS: …", "not measured: … (why)".
    var summary: String {
        "\(verdict.rawValue): \(description)" + (figures.map { " (\($0))" } ?? "")
    }
}

/// The readable table and the one-line summaries printed as cases finish.
enum BenchmarkTable {
    static func headline(_ result: BenchmarkResult) -> String {
        var text = "\(result.benchmark) \(caseName(result)) (\(result.config ?? "")): \(number(result.median)) \(result.unit) (min \(number(result.min)), max \(number(result.max)))"
        if let peak = result.peakRssMB { text += String(format: ", peak RSS %.0f MB", peak) }
        if let peak = result.sgemmPeakGFLOPS { text += String(format: ", sgemm peak around it %.0f GFLOPS", peak) }
        if let calls = result.toolCallsPerTrajectory { text += String(format: ", %.2f tool calls/trajectory", calls) }
        if let calls = result.policyCallsPerRepetition, let rows = result.rowsPerPolicyCall {
            text += String(format: ", %.0f policy calls of %.1f sequences on average", calls, rows)
        }
        if let phases = result.phaseSeconds {
            text += "\n      " + phaseOrder.compactMap { name in phases[name].map { String(format: "%@ %.2f s", name, $0) } }.joined(separator: ", ")
            if let rate = result.updateTokensPerSecond, let tokens = result.updateTokensPerStep {
                text += String(format: "; update %@ tokens/s over %.0f real tokens", number(rate), tokens)
                if let padding = result.paddingFraction { text += String(format: " (%.0f%% more positions as padding)", padding / Swift.max(1 - padding, 1e-9) * 100) }
                if let shared = result.sharedPrefixFraction { text += String(format: ", %.0f%% of them shared prefixes computed once", shared * 100) }
                if let supervised = result.supervisedTokensPerSecond { text += String(format: ", %.0f%% of the supervised step's %@", rate / supervised * 100, number(supervised)) }
            }
            if let length = result.responseTokensPerTrajectory { text += String(format: "; %.0f response tokens per trajectory", length) }
        }
        if let eager = result.pytorchEager {
            text += String(format: "\n      PyTorch eager %@ tokens/s (%.2f×)", number(eager), result.median / eager)
            if let compiled = result.pytorchCompile { text += String(format: ", torch.compile %@ (%.2f×)", number(compiled), result.median / compiled) }
            if let error = result.pytorchCompileError { text += ", torch.compile failed: \(error)" }
        }
        if let bound = result.gemmBoundTokensPerSecond, let share = result.gemmShareOfStep, let rate = result.gemmGFLOPS, let calls = result.gemmCallsPerStep {
            text += String(format: "; its %d GEMMs alone (%.0f GFLOPS) allow %@ tokens/s and are %.0f%% of the step", calls, rate, number(bound), share * 100)
        }
        for shape in (result.gemmShapes ?? []).prefix(shapesShown) {
            text += String(format: "\n      %@ ×%d: %.0f%% of the GEMM time, %.0f GFLOPS", shape.gemm, shape.callsPerStep, shape.shareOfGEMMTime * 100, shape.gflops)
        }
        return text
    }

    /// The parts of an RL step, in the order they run.
    static let phaseOrder = ["rollout", "reference", "advantages", "forward_backward", "optimizer"]

    /// The GEMM shapes listed under a train figure, most time first (the JSON has them all).
    static let shapesShown = 5

    static func caseName(_ result: BenchmarkResult) -> String {
        if let shape = result.shape {
            let kernel = result.path == "tensor" && result.float32GEMM == .openblas ? " (openblas)" : ""
            return shape.map(String.init).joined(separator: "×") + " " + (result.path ?? "") + kernel
        }
        if result.benchmark == "train-memory", let first = result.rssAfterStep10MB, let last = result.rssAfterLastStepMB, let steps = result.steps {
            return String(format: "%@, RSS %.0f MB @10 → %.0f MB @%d", result.batch ?? "", first, last, steps)
        }
        if result.benchmark == "rl-memory", let first = result.rssAfterStep10MB, let last = result.rssAfterLastStepMB, let steps = result.steps, let growth = result.rssGrowthPer100StepsMB {
            return String(format: "%@, RSS %.0f MB @%d → %.0f MB @%d, %+.2f MB/100 steps", result.batch ?? "", first, RLMemoryBenchmark.earlyStep, last, steps, growth)
        }
        let kernel = result.float32GEMM == .openblas ? " openblas" : ""
        return (result.batch ?? "") + (result.hasFloat32Products ? kernel : " matmul \(result.matmulPrecision!.rawValue)")
    }

    static func number(_ value: Double) -> String {
        value >= 100 ? String(format: "%.0f", value) : value >= 1 ? String(format: "%.1f", value) : String(format: "%.3g", value)
    }

    static func print(_ results: [BenchmarkResult], peaks: [PeakRecord]) {
        let rows: [[String]] = results.map { result in
            let verdict = result.target ?? "—"
            return [
                result.benchmark, result.config ?? "", "\(result.threads)", caseName(result),
                number(result.median), "\(number(result.min))–\(number(result.max))", result.unit,
                result.fractionOfPeak.map { String(format: "%.1f%%", $0 * 100) } ?? "",
                result.fractionOfPeak == nil ? "" : result.sgemmPeakGFLOPS.map { String(format: "%.0f", $0) } ?? "",
                result.gemmBoundTokensPerSecond.map(number) ?? "",
                result.peakRssMB.map { String(format: "%.0f", $0) } ?? "",
                result.toolCallsPerTrajectory.map { String(format: "%.2f", $0) } ?? "",
                result.pytorchEager.map { String(format: "%.2f×", result.median / $0) } ?? "",
                result.pytorchCompile.map { String(format: "%.2f×", result.median / $0) } ?? "",
                result.otherLoad.map { String(format: "%.2f", $0) } ?? "",
                verdict,
            ]
        }
        printTable(
            header: ["benchmark", "config", "threads", "case", "median", "min–max", "unit", "of peak", "peak GFLOPS", "GEMM bound", "peak RSS MB", "calls/traj", "vs PyTorch", "vs compile", "other load", "target"],
            rows: rows)
        Swift.print("other load: cores other processes used during the benchmark (0 = idle machine)")
        if results.contains(where: { $0.gemmBoundTokensPerSecond != nil }) {
            Swift.print("GEMM bound: tokens/s if everything but the step's own GEMMs (replayed alone, split as the step splits them) took no time")
        }
        if results.contains(where: { $0.pytorchEager != nil }) {
            Swift.print("vs PyTorch, vs compile: this figure over PyTorch eager's and torch.compile's, the same workload measured just before and after it in this run")
        }
        if let size = peaks.first?.size {
            Swift.print("of peak: model FLOP rate over peak GFLOPS, the best raw sgemm \(size)³ round at the figure's thread count in probes just before and after it")
        }
    }
}

extension BenchmarkResult {
    /// Whether the figure's products were float32 (`highest`, or no precision recorded).
    var hasFloat32Products: Bool { (matmulPrecision ?? .highest) == .highest }
}
