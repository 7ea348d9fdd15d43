import Foundation
import XCTest

/// `scripts/compare.sh` end to end on tiny configs, with the debug `arpo-train` beside the tests
/// (ARPO_TRAIN) instead of a release build: one seed, one RL step per run.
final class CompareScriptTests: XCTestCase {
    /// The repository root: this file is Tests/TrainerTests/CompareScriptTests.swift.
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func testCompareRunsEveryAlgorithmFromOneColdStartResumesAndSkipsFinishedRuns() throws {
        let root = try temporaryDirectory(self)
        let configs = root.appendingPathComponent("configs"), out = root.appendingPathComponent("compare")
        let results = root.appendingPathComponent("RESULTS.md")
        try FileManager.default.createDirectory(at: configs, withIntermediateDirectories: true)
        for algorithm in ["grpo", "ppo", "arpo"] {
            let config = tinyConfig(output: root.appendingPathComponent("unused"), algorithm: algorithm, rlSteps: 1)
            try Data(config.utf8).write(to: configs.appendingPathComponent("\(algorithm).json"))
        }
        let environment = [
            "OUT": out.path, "SEEDS": "0", "CONFIGS_DIR": configs.path, "RESULTS": results.path, "ARPO_TRAIN": arpoTrainBinary().path,
        ]
        let script = Self.repositoryRoot.appendingPathComponent("scripts/compare.sh")
        func compare(_ extra: [String: String] = [:]) throws -> ProcessResult {
            try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["bash", script.path], environment: environment.merging(extra) { $1 })
        }

        // Stopped as by SIGINT two steps into the cold start's SFT: the script stops and says so.
        let stopped = try compare(["ARPO_STOP_AFTER_STEPS": "2"])
        XCTAssertEqual(stopped.status, 1, stopped.output + stopped.error)
        XCTAssertTrue(stopped.error.contains("cold-start stopped with exit code 130"), stopped.error)

        // Run again: the cold start resumes, then one run per algorithm from its reference policy.
        let finished = try compare()
        XCTAssertEqual(finished.status, 0, finished.output + finished.error)
        let lines = finished.output.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("cold-start: ") && $0.contains("(resumed)") }, finished.output)
        for name in ["grpo-seed0", "ppo-seed0", "arpo-seed0"] {
            XCTAssertTrue(lines.contains { $0.hasPrefix("\(name): ") && $0.contains("after SFT →") }, "no line for \(name): \(finished.output)")
            let run = try jsonLines(out.appendingPathComponent("\(name)/eval.jsonl"))
            let coldStart = try jsonLines(out.appendingPathComponent("cold-start/eval.jsonl"))
            XCTAssertEqual(run.first?["accuracy"] as? Double, coldStart.first?["accuracy"] as? Double, "\(name) starts from the cold start")
            XCTAssertEqual(run.first?["mean_reward"] as? Double, coldStart.first?["mean_reward"] as? Double, name)
        }
        XCTAssertTrue(lines.last?.hasPrefix("Total wall time: ") ?? false, finished.output)
        let page = try String(contentsOf: out.appendingPathComponent("report.html"), encoding: .utf8)
        XCTAssertEqual(page.components(separatedBy: "<svg").count - 1, ReportTests.chartTitles.count)
        let markdown = try String(contentsOf: results, encoding: .utf8)
        for row in ["| GRPO | 1 (0) |", "| PPO | 1 (0) |", "| ARPO | 1 (0) |"] { XCTAssertTrue(markdown.contains(row), "RESULTS.md lacks \(row)") }
        XCTAssertTrue(markdown.contains("| Cold start (SFT) | shared: `\(out.path)/cold-start/reference`, trained with 4 steps × 4 demonstrations per step (16 distinct) |"), markdown)
        XCTAssertTrue(markdown.contains("- Reproduce: `OUT=\(out.path) SEEDS=\"0\" CONFIGS_DIR=\(configs.path) RESULTS=\(results.path) scripts/compare.sh`"), markdown)

        // A third time, every run is finished and skipped.
        let again = try compare()
        XCTAssertEqual(again.status, 0, again.error)
        for name in ["cold-start", "grpo-seed0", "ppo-seed0", "arpo-seed0"] {
            XCTAssertTrue(again.output.contains("\(name): already finished, skipped"), again.output)
        }
    }
}
