import Foundation
import Tensor

/// The performance targets. Throughput targets apply at 2 threads; the relative ones (tensor API
/// against BLAS, ARPO against trajectory-level, the RL update against the supervised step,
/// memory) at every thread count. No PyTorch figure is stored here: the "vs PyTorch" columns
/// come from PyTorch measured in the same run (`PyTorchReference`).
enum PerformanceTargets {
    /// Base train step, tokens/s at 2 threads.
    static let baseTrainTokensPerSecond = 7_000.0
    /// Base batched decode, tokens/s at 2 threads.
    static let baseDecodeTokensPerSecond = 6_000.0
    /// The RL update's real tokens/s as a fraction of the supervised step's on the same model.
    static let updateOverSupervised = 0.85
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

    /// One target: what it asks, in words, and whether the figure meets it.
    struct Check {
        let description: String
        let isMet: Bool
    }

    /// Fills `target`, `meets_target` and `target_misses` on the entries a target applies to.
    static func apply(to results: inout [BenchmarkResult]) {
        let snapshot = results
        for index in results.indices {
            let result = results[index]
            let checks = self.checks(for: result, among: snapshot)
            guard !checks.isEmpty else { continue }
            results[index].target = checks.map(\.description).joined(separator: "; ")
            results[index].meetsTarget = checks.allSatisfy(\.isMet)
            results[index].targetMisses = checks.filter { !$0.isMet }.map(\.description)
        }
    }

    static func checks(for result: BenchmarkResult, among results: [BenchmarkResult]) -> [Check] {
        func partner(_ benchmark: String, path: String? = nil) -> BenchmarkResult? {
            results.first {
                $0.benchmark == benchmark && $0.config == result.config && $0.threads == result.threads && $0.shape == result.shape && (path == nil || $0.path == path)
                    && $0.matmulPrecision == result.matmulPrecision && $0.float32GEMM == result.float32GEMM
            }
        }
        var checks: [Check] = []
        switch (result.benchmark, result.config) {
        case ("gemm", _) where result.path == "tensor":
            if let blas = partner("gemm", path: "blas") {
                // GFLOPS are inverse times: time over BLAS = BLAS GFLOPS / tensor GFLOPS.
                let overhead = blas.median / result.median - 1
                checks.append(Check(description: String(format: "≤ %.0f%% over raw sgemm (%+.1f%%)", tensorOverheadOverBLAS * 100, overhead * 100), isMet: overhead <= tensorOverheadOverBLAS))
            }
        case ("train", "base"):
            // The throughput target is for float32 products, as PyTorch's figures are.
            if result.threads == 2 && result.hasFloat32Products {
                var description = "≥ \(Int(baseTrainTokensPerSecond)) tokens/s"
                if let bound = result.gemmBoundTokensPerSecond, bound < baseTrainTokensPerSecond {
                    description += " (above the \(Int(bound)) its GEMMs alone allow here)"
                }
                checks.append(Check(description: description, isMet: result.median >= baseTrainTokensPerSecond))
            }
            if let peak = result.peakRssMB {
                checks.append(Check(description: "peak RSS < \(Int(baseTrainPeakMegabytes)) MB", isMet: peak < baseTrainPeakMegabytes))
            }
        case ("decode", "base") where result.threads == 2:
            checks.append(Check(description: "≥ \(Int(baseDecodeTokensPerSecond)) tokens/s", isMet: result.median >= baseDecodeTokensPerSecond))
        case ("rollout-arpo", _):
            if let trajectory = partner("rollout-trajectory") {
                let ratio = result.median / trajectory.median
                checks.append(Check(description: String(format: "≥ %.0f%% of trajectory-level tokens/s (%.1f%%)", arpoRolloutFraction * 100, ratio * 100), isMet: ratio >= arpoRolloutFraction))
                if let mine = result.toolCallsPerTrajectory, let theirs = trajectory.toolCallsPerTrajectory {
                    checks.append(Check(description: String(format: "fewer tool calls per trajectory (%.2f vs %.2f)", mine, theirs), isMet: mine < theirs))
                }
            }
        case (let benchmark, _) where benchmark.hasPrefix("rl-step-"):
            if let update = result.updateTokensPerSecond, let supervised = result.supervisedTokensPerSecond, supervised > 0 {
                let ratio = update / supervised
                checks.append(Check(
                    description: String(format: "update ≥ %.0f%% of the supervised step's tokens/s (%.0f%%: %.0f against %.0f)", updateOverSupervised * 100, ratio * 100, update, supervised),
                    isMet: ratio >= updateOverSupervised))
            }
        case ("train-memory", let config):
            if config == "base", let peak = result.peakRssMB {
                checks.append(Check(description: "peak RSS < \(Int(baseTrainPeakMegabytes)) MB", isMet: peak < baseTrainPeakMegabytes))
            }
            if let first = result.rssAfterStep10MB, let last = result.rssAfterLastStepMB {
                let allowed = Swift.max(memoryGrowthMegabytes, memoryGrowthFraction * first)
                checks.append(Check(description: String(format: "no growth after step 10 (%+.1f MB, ≤ %.0f allowed)", last - first, allowed), isMet: last - first <= allowed))
            }
        default:
            break
        }
        return checks
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
        let kernel = result.float32GEMM == .openblas ? " openblas" : ""
        return (result.batch ?? "") + (result.hasFloat32Products ? kernel : " matmul \(result.matmulPrecision!.rawValue)")
    }

    static func number(_ value: Double) -> String {
        value >= 100 ? String(format: "%.0f", value) : value >= 1 ? String(format: "%.1f", value) : String(format: "%.3g", value)
    }

    static func print(_ results: [BenchmarkResult], peaks: [PeakRecord]) {
        let rows: [[String]] = results.map { result in
            let verdict: String
            if let meets = result.meetsTarget {
                verdict = (meets ? "pass" : "MISS") + ": " + (result.target ?? "")
            } else {
                verdict = "—"
            }
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
