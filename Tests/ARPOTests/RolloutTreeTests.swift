import ARPO
import Foundation
import Policy
import RunRecords
import Tensor
import ToolEnv
import XCTest

/// The rollout tree the run writes with `rl.trees_every`: nodes split at tool results, a fork
/// copy's first node under its parent's node that ends at the fork point.
final class RolloutTreeTests: XCTestCase {
    /// One root, budget 2, entropy up after the first result and flat after the second, under
    /// the threshold rule (fork iff ΔH > 0): the root forks once after its first result. Each
    /// transcript is "ab<call>q</call>" <obs>7</obs> "ab<call>q</call>" <obs>7</obs>
    /// "<answer>1</answer><|end|>", so the root has three nodes and the copy, which starts after
    /// the first result, two:
    ///
    ///     0 root [0, e1)  ── 1 root [e1, e2) ── 2 root [e2, end)   reward 1
    ///                     └─ 3 copy [e1, e2') ── 4 copy [e2', end)  reward 1
    func testNodesSplitAtToolResultsAndAForkHangsUnderTheNodeEndingAtItsPoint() throws {
        var settings = BranchingConfiguration()
        settings.budget = 2
        settings.initialSamples = 1
        settings.entropyWindow = 3
        settings.rule = .threshold
        settings.decisionLog = true
        let engine = RolloutEngine(
            policy: ScriptedPolicy(calls: 2, peaks: [12, 2, 12]),
            configuration: RolloutConfiguration(maxResponseTokens: 200, sampling: SamplingParameters(greedy: true), strategy: .branching(settings)))
        let batch = engine.run(episodes: [ToyEpisode(ledger: ToolLedger())], seed: 4)
        XCTAssertEqual(batch.records.count, 2)
        XCTAssertEqual(batch.records[1].parent, 0)
        let advantages = AdvantageEstimator.tokenAdvantages(for: batch.records, mode: .tree)
        let trees = RolloutTree.trees(of: batch, step: 12, codec: engine.codec, advantages: advantages)
        XCTAssertEqual(trees.count, 1)
        let tree = trees[0]
        XCTAssertEqual(tree.step, 12)
        XCTAssertEqual(tree.prompt, "<|user|>q<|assistant|>")
        XCTAssertEqual(tree.globalSamples, 1)
        let nodes = tree.nodes
        XCTAssertEqual(nodes.map(\.trajectory), [0, 0, 0, 1, 1])
        XCTAssertEqual(nodes.map(\.parent), [nil, 0, 1, 0, 3])
        let e1 = batch.records[1].forkPosition
        XCTAssertEqual(nodes[0].start, 0)
        XCTAssertEqual(nodes[0].end, e1)
        XCTAssertEqual(nodes[3].start, e1)
        XCTAssertEqual(nodes[2].end, batch.records[0].responseTokens.count)
        XCTAssertEqual(nodes[4].end, batch.records[1].responseTokens.count)
        for node in nodes.prefix(2) + [nodes[3]] {
            XCTAssertEqual(node.text, "ab<call>q</call>")
            XCTAssertEqual(node.toolCall, "<call>q</call>")
            XCTAssertEqual(node.observation, "<obs>7</obs>")
            XCTAssertNil(node.reward)
        }
        for leaf in [nodes[2], nodes[4]] {
            XCTAssertEqual(leaf.text, "<answer>1</answer><|end|>")
            XCTAssertNil(leaf.toolCall)
            XCTAssertNil(leaf.observation)
            XCTAssertEqual(leaf.reward, 1)
            XCTAssertEqual(leaf.correct, true)
            XCTAssertNil(leaf.decision)
        }
        // The decisions sit on the node each was taken at the end of.
        XCTAssertEqual(nodes[0].decision?.outcome, .forked)
        XCTAssertEqual(nodes[0].decision?.turn, 1)
        XCTAssertEqual(nodes[1].decision?.outcome, .declinedByRule)
        XCTAssertEqual(nodes[3].decision?.outcome, .declinedByRule)
        XCTAssertEqual(nodes[3].decision?.trajectory, 1)
        XCTAssertEqual(nodes[0].entropy!, batch.records[0].entropies[0], accuracy: 1e-9, "every token of the segment has the same entropy")
        // Equal rewards: every advantage is 0.
        XCTAssertEqual(nodes.compactMap(\.advantage), [0, 0, 0, 0, 0])
        // Every node line has the same keys, absent values as null.
        let fields = try encodedFields(nodes[2])
        XCTAssertEqual(Set(fields.keys), ["id", "parent", "trajectory", "start", "end", "text", "tool_call", "observation", "entropy", "decision", "reward", "correct", "advantage"])
        XCTAssertTrue(fields["tool_call"] is NSNull)
    }
}
