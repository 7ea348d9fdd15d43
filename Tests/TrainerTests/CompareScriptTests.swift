import Foundation
import XCTest

/// `scripts/compare.sh` end to end on a tiny base config, with the debug `arpo-train` beside the
/// tests (ARPO_TRAIN) instead of a release build: one seed, one RL step per run.
///
/// The end-to-end test runs the four methods without tree signals and one tree method
/// (arpo-dpo), not all eight defaults, to keep its time down; the dry run checks all eight.
final class CompareScriptTests: XCTestCase {
    /// The repository root: this file is Tests/TrainerTests/CompareScriptTests.swift.
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let script = repositoryRoot.appendingPathComponent("scripts/compare.sh")

    /// Runs the script with `environment` added to this process's.
    func compare(_ environment: [String: String]) throws -> ProcessResult {
        try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["bash", Self.script.path], environment: environment)
    }

    /// A tiny base config (ARPO, no value head, G = M = 4) written into `root`.
    func baseConfig(in root: URL) throws -> URL {
        let config = root.appendingPathComponent("base.json")
        try Data(tinyConfig(output: root.appendingPathComponent("unused"), algorithm: "arpo", rlSteps: 1).utf8).write(to: config)
        return config
    }

    func testCompareRunsEveryMethodFromOneColdStartResumesAndSkipsFinishedRuns() throws {
        let root = try temporaryDirectory(self)
        let config = try baseConfig(in: root)
        let out = root.appendingPathComponent("compare"), results = root.appendingPathComponent("RESULTS.md")
        let methods = "grpo ppo arpo-soft arpo-hard arpo-dpo"
        let environment = ["CONFIG": config.path, "OUT": out.path, "SEEDS": "0", "METHODS": methods, "RESULTS": results.path, "ARPO_TRAIN": arpoTrainBinary().path]

        // Stopped as by SIGINT two steps into the cold start's SFT: the script stops and says so.
        let stopped = try compare(environment.merging(["ARPO_STOP_AFTER_STEPS": "2"]) { $1 })
        XCTAssertEqual(stopped.status, 1, stopped.output + stopped.error)
        XCTAssertTrue(stopped.error.contains("cold-start stopped with exit code 130"), stopped.error)

        // Run again: the cold start resumes, then one run per method from its reference policy.
        let finished = try compare(environment)
        XCTAssertEqual(finished.status, 0, finished.output + finished.error)
        let lines = finished.output.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("cold-start: ") && $0.contains("(resumed)") }, finished.output)
        let coldStart = try jsonLines(out.appendingPathComponent("cold-start/eval.jsonl"))
        for name in ["grpo-seed0", "ppo-seed0", "arpo-soft-seed0", "arpo-hard-seed0", "arpo-dpo-seed0"] {
            XCTAssertTrue(lines.contains { $0.hasPrefix("\(name): ") && $0.contains("after SFT →") }, "no line for \(name): \(finished.output)")
            let run = try jsonLines(out.appendingPathComponent("\(name)/eval.jsonl"))
            XCTAssertEqual(run.first?["accuracy"] as? Double, coldStart.first?["accuracy"] as? Double, "\(name) starts from the cold start")
            XCTAssertEqual(run.first?["mean_reward"] as? Double, coldStart.first?["mean_reward"] as? Double, name)
        }
        // Each method's overrides reached its run, and EXTRA's default reached every run.
        func resolved(_ name: String) throws -> [String: [String: Any]] {
            try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("\(name)/config.json"))) as! [String: [String: Any]]
        }
        for (name, algorithm, mode) in [
            ("grpo-seed0", "grpo", "arpo-soft"), ("ppo-seed0", "ppo", "arpo-soft"), ("arpo-soft-seed0", "arpo", "arpo-soft"), ("arpo-hard-seed0", "arpo", "arpo-hard"),
            ("arpo-dpo-seed0", "arpo", "arpo-soft"),
        ] {
            let rl = try resolved(name)["rl"]!
            XCTAssertEqual(rl["algorithm"] as? String, algorithm, name)
            XCTAssertEqual((rl["advantage"] as? [String: Any])?["mode"] as? String, mode, name)
            XCTAssertEqual((rl["loss"] as? [String: Any])?["dpo_coefficient"] as? Double, name == "arpo-dpo-seed0" ? 1 : 0, name)
            XCTAssertEqual(rl["mini_batches"] as? Int, 2, name)
            XCTAssertEqual(try resolved(name)["model"]!["value_head"] as? Bool, algorithm == "ppo", name)
        }
        // GRPO does not fork, so every call of its transcripts ran once.
        for record in try jsonLines(out.appendingPathComponent("grpo-seed0/metrics.jsonl")) where record["phase"] as? String == "rl" {
            XCTAssertEqual(record["tool_calls_written"] as? Int, record["tool_calls_executed"] as? Int)
        }
        XCTAssertTrue(lines.last?.hasPrefix("Total wall time: ") ?? false, finished.output)
        let page = try String(contentsOf: out.appendingPathComponent("report.html"), encoding: .utf8)
        XCTAssertEqual(page.components(separatedBy: "<svg").count - 1, ReportTests.chartTitles.count)
        let markdown = try String(contentsOf: results, encoding: .utf8)
        // The DPO runs are a method of their own, read from their config.json, paired with ARPO.
        XCTAssertTrue(markdown.hasPrefix("# Results: GRPO, PPO, ARPO, ARPO (hard), ARPO (DPO)\n"), markdown)
        for row in ["| GRPO | 1 (0) |", "| PPO | 1 (0) |", "| ARPO | 1 (0) |", "| ARPO (hard) | 1 (0) |", "| ARPO (DPO) | 1 (0) |"] {
            XCTAssertTrue(markdown.contains(row), "RESULTS.md lacks \(row)")
        }
        for heading in ["## ARPO against GRPO, seed by seed", "## ARPO (hard) against GRPO, seed by seed", "## ARPO (DPO) against ARPO, seed by seed", "## Tool calls"] {
            XCTAssertTrue(markdown.contains(heading), "RESULTS.md lacks \(heading)")
        }
        XCTAssertFalse(markdown.contains("## ARPO (DPO) against GRPO"), markdown)
        XCTAssertTrue(markdown.contains("| Cold start (SFT) | shared: `\(out.path)/cold-start/reference`, trained with 4 steps × 4 demonstrations per step (16 distinct) |"), markdown)
        XCTAssertTrue(markdown.contains("- Reproduce: `CONFIG=\(config.path) METHODS=\"\(methods)\" SEEDS=\"0\" OUT=\(out.path) RESULTS=\(results.path) scripts/compare.sh`"), markdown)

        // A third time, every run is finished and skipped.
        let again = try compare(environment)
        XCTAssertEqual(again.status, 0, again.error)
        for name in ["cold-start", "grpo-seed0", "ppo-seed0", "arpo-soft-seed0", "arpo-hard-seed0", "arpo-dpo-seed0"] {
            XCTAssertTrue(again.output.contains("\(name): already finished, skipped"), again.output)
        }
    }

    /// DRY_RUN prints each run's command, the method's overrides after the base config, EXTRA
    /// after them and the comparison's own settings last, and writes nothing.
    func testDryRunPrintsEachMethodsOverridesAndChecksTheBudgetAndTheUpdates() throws {
        let root = try temporaryDirectory(self)
        let config = try baseConfig(in: root)
        let out = root.appendingPathComponent("compare")
        let binary = arpoTrainBinary().path
        let environment = ["CONFIG": config.path, "OUT": out.path, "SEEDS": "3 4", "ARPO_TRAIN": binary, "DRY_RUN": "1"]
        let result = try compare(environment.merging(["EXTRA": "--set rl.epochs=2"]) { $1 })
        XCTAssertEqual(result.status, 0, result.output + result.error)
        let lines = result.output.split(separator: "\n").map(String.init)
        let initFrom = "--set sft.steps=0 --set sft.init_from=\(out.path)/cold-start/reference"
        XCTAssertEqual(lines.first, "cold-start: \(binary) --config \(config.path) --set rl.epochs=2 --set rl.steps=0 --output \(out.path)/cold-start --quiet")
        for (method, overrides) in [
            ("grpo", "--set rl.algorithm=grpo"), ("ppo", "--set rl.algorithm=ppo --set model.value_head=true"),
            ("arpo-soft", "--set rl.algorithm=arpo --set rl.advantage.mode=arpo-soft"), ("arpo-hard", "--set rl.algorithm=arpo --set rl.advantage.mode=arpo-hard"),
            ("arpo-tree", "--set rl.algorithm=arpo --set rl.advantage.mode=tree"),
            ("arpo-dpo", "--set rl.algorithm=arpo --set rl.advantage.mode=arpo-soft --set rl.loss.dpo_coefficient=1"),
            ("arpo-bank", "--set rl.algorithm=arpo --set rl.advantage.mode=arpo-soft --set rl.memory_bank.coefficient=0.1"),
            ("arpo-aepo", "--set rl.algorithm=arpo --set rl.advantage.mode=arpo-soft --set rl.branching.rule=entropy-balanced"),
        ] {
            for seed in [3, 4] {
                let line = "\(method)-seed\(seed): \(binary) --config \(config.path) \(overrides) --set rl.epochs=2 \(initFrom) --set run.seed=\(seed) --output \(out.path)/\(method)-seed\(seed) --quiet"
                XCTAssertTrue(lines.contains(line), "no line \(line) in \(result.output)")
            }
        }
        XCTAssertEqual(lines.count, 1 + 8 * 2 + 1, result.output)
        XCTAssertTrue(lines.last!.hasPrefix("report: \(binary) report \(out.path)/grpo-seed3 \(out.path)/grpo-seed4 \(out.path)/ppo-seed3"), lines.last!)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "a dry run wrote its output directory")

        // Unequal trajectory budgets, arpo-hard at one update per batch, and an unknown method
        // are refused before anything runs.
        let unequal = try compare(environment.merging(["EXTRA": "--set rl.group_size=8"]) { $1 })
        XCTAssertEqual(unequal.status, 2)
        XCTAssertTrue(unequal.error.contains("method grpo: rl.group_size (8) differs from rl.branching.budget (4)"), unequal.error)
        let oneUpdate = try compare(environment.merging(["EXTRA": ""]) { $1 })
        XCTAssertEqual(oneUpdate.status, 2)
        XCTAssertTrue(oneUpdate.error.contains("method arpo-hard: one update per rollout batch"), oneUpdate.error)
        XCTAssertEqual(try compare(environment.merging(["EXTRA": "", "METHODS": "grpo arpo-soft"]) { $1 }).status, 0, "without arpo-hard one update is fine")
        // arpo-otc, not a default method, is ARPO (soft) with OTC-PO's group-form reward, from the
        // same cold start into its own run directories beside arpo-soft's.
        let otc = try compare(environment.merging(["METHODS": "arpo-soft arpo-otc"]) { $1 })
        XCTAssertEqual(otc.status, 0, otc.output + otc.error)
        let otcLines = otc.output.split(separator: "\n").map(String.init)
        XCTAssertEqual(otcLines.first, "cold-start: \(binary) --config \(config.path) --set rl.mini_batches=2 --set rl.steps=0 --output \(out.path)/cold-start --quiet")
        for (method, overrides) in [
            ("arpo-soft", "--set rl.algorithm=arpo --set rl.advantage.mode=arpo-soft"),
            ("arpo-otc", "--set rl.algorithm=arpo --set rl.advantage.mode=arpo-soft --set env.reward.tool_efficiency=true --set env.reward.tool_efficiency_form=group"),
        ] {
            for seed in [3, 4] {
                let line = "\(method)-seed\(seed): \(binary) --config \(config.path) \(overrides) --set rl.mini_batches=2 \(initFrom) --set run.seed=\(seed) --output \(out.path)/\(method)-seed\(seed) --quiet"
                XCTAssertTrue(otcLines.contains(line), "no line \(line) in \(otc.output)")
            }
        }
        XCTAssertEqual(otcLines.count, 1 + 2 * 2 + 1, otc.output)
        XCTAssertTrue(otcLines.last!.hasPrefix("report: \(binary) report \(out.path)/arpo-soft-seed3 \(out.path)/arpo-soft-seed4 \(out.path)/arpo-otc-seed3 \(out.path)/arpo-otc-seed4 "), otcLines.last!)
        XCTAssertTrue(otcLines.last!.contains("METHODS=\\\"arpo-soft\\ arpo-otc\\\""), otcLines.last!)
        let unequalOTC = try compare(environment.merging(["METHODS": "arpo-otc", "EXTRA": "--set rl.branching.budget=8"]) { $1 })
        XCTAssertEqual(unequalOTC.status, 2)
        XCTAssertTrue(unequalOTC.error.contains("method arpo-otc: rl.group_size (4) differs from rl.branching.budget (8)"), unequalOTC.error)
        let unknown = try compare(environment.merging(["METHODS": "grpo dqn"]) { $1 })
        XCTAssertEqual(unknown.status, 2)
        XCTAssertTrue(unknown.error.contains("unknown method 'dqn'"), unknown.error)
    }
}
