import Foundation
import RunRecords
import XCTest

/// `rl.trees_every`: a run writes its rollout trees to trees.jsonl, and the report draws them.
final class RolloutTreeLogTests: XCTestCase {
    /// The tiny ARPO run (4 SFT steps, 3 RL steps of 2 prompts × budget 4) with trees every 2nd
    /// RL step writes the trees of RL step 2 only (global step 6), one per prompt group, each
    /// holding every trajectory of its group with its reward on its last node; then
    /// `arpo-train report` draws two trees for each of the two RL evaluations (steps 6 and 7,
    /// both of whose latest trees are step 6's).
    func testARunWritesEveryKthStepsTreesAndTheReportDrawsThem() throws {
        let root = try temporaryDirectory(self)
        let output = root.appendingPathComponent("run")
        let configURL = root.appendingPathComponent("run.json")
        try Data(tinyConfig(output: output).utf8).write(to: configURL)
        let run = try runArpoTrain(["--config", configURL.path, "--set", "rl.trees_every=2", "--quiet"])
        XCTAssertEqual(run.status, 0, run.error)

        let lines = try String(contentsOf: output.appendingPathComponent("trees.jsonl"), encoding: .utf8).split(separator: "\n")
        let trees = try lines.map { try JSONDecoder().decode(RolloutTree.self, from: Data($0.utf8)) }
        XCTAssertEqual(trees.map(\.step), [6, 6])
        XCTAssertEqual(trees.map(\.group), [0, 1])
        var trajectoriesSeen = Set<Int>()
        for tree in trees {
            XCTAssertTrue(tree.prompt.hasPrefix("<|user|>"), tree.prompt)
            XCTAssertEqual(tree.globalSamples, 2)
            let trajectories = Set(tree.nodes.map(\.trajectory))
            XCTAssertEqual(trajectories.count, 4, "budget 4 per group")
            XCTAssertTrue(trajectoriesSeen.isDisjoint(with: trajectories))
            trajectoriesSeen.formUnion(trajectories)
            for (index, node) in tree.nodes.enumerated() {
                XCTAssertEqual(node.id, index)
                if let parent = node.parent { XCTAssertLessThan(parent, index, "a parent comes before its children") }
                XCTAssertLessThanOrEqual(node.start, node.end)
                XCTAssertNotNil(node.advantage, "ARPO's trees carry the update's advantages")
            }
            for trajectory in trajectories {
                let last = tree.nodes.last { $0.trajectory == trajectory }!
                XCTAssertNotNil(last.reward, "trajectory \(trajectory)'s last node carries its reward")
                XCTAssertEqual(tree.nodes.filter { $0.trajectory == trajectory && $0.reward != nil }.count, 1)
            }
            // Forked copies hang under a node of another trajectory of the same group.
            for node in tree.nodes where node.parent != nil && tree.nodes[node.parent!].trajectory != node.trajectory {
                XCTAssertTrue(trajectories.contains(tree.nodes[node.parent!].trajectory))
            }
        }
        XCTAssertEqual(trajectoriesSeen, Set(0..<8))

        let page = root.appendingPathComponent("report.html")
        let report = try runArpoTrain(["report", output.path, "--output", page.path])
        XCTAssertEqual(report.status, 0, report.error)
        let html = try String(contentsOf: page, encoding: .utf8)
        XCTAssertTrue(html.contains("<h2>Rollout trees</h2>"))
        XCTAssertEqual(html.components(separatedBy: "<svg class=\"tree\"").count - 1, 4)
        XCTAssertTrue(html.contains("run: step 6, group 0 (evaluation at step 6)"), "the first tree's title")
        XCTAssertTrue(html.contains("run: step 6, group 1 (evaluation at step 7)"), "the final evaluation's trees are step 6's")
        XCTAssertTrue(html.contains("reward "), "leaves show their reward")
    }

    /// Trees are off unless asked for (a report without them has no tree section:
    /// `ReportTests.testReportCommandWritesReportHTMLInTheCurrentDirectoryOrAtOutput`), and a
    /// negative interval is refused with its key path.
    func testTreesAreOffByDefaultAndANegativeIntervalIsRefused() throws {
        let root = try temporaryDirectory(self)
        let configURL = root.appendingPathComponent("run.json")
        try Data(tinyConfig(output: root.appendingPathComponent("run")).utf8).write(to: configURL)
        let resolved = try runArpoTrain(["--config", configURL.path, "--dry-run"])
        XCTAssertEqual(resolved.status, 0, resolved.error)
        XCTAssertTrue(resolved.output.contains("\"trees_every\" : 0"), resolved.output)
        let result = try runArpoTrain(["--config", configURL.path, "--set", "rl.trees_every=-1", "--dry-run"])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.error.contains("rl.trees_every"), result.error)
    }
}
