import Foundation
import RunRecords

// Example rollout trees from `trees.jsonl` (`rl.trees_every`): for each held-out evaluation of
// an RL run, up to two prompt groups of the latest rollout written at or before it, drawn as
// trees of segments between tool results.

extension ReportPage {
    /// Trees drawn per evaluation.
    static let treesPerEvaluation = 2

    /// The "Rollout trees" section: nothing when no run wrote trees.
    func treeSection() -> String {
        let drawn = runs.filter { !$0.trees.isEmpty }
        guard !drawn.isEmpty else { return "" }
        var html = """
            <h2>Rollout trees</h2>
            <p class="note">trees.jsonl (rl.trees_every): per held-out evaluation, the prompt groups of the latest rollout \
            written at or before it whose trajectories' rewards differ most. A box is the policy's text between two tool \
            results: its call, the mean entropy H of its tokens and, at a fork opportunity, ΔH and the rule's decision. \
            Leaves carry the trajectory's reward. The fill is the mean advantage of the box's tokens: blue above 0, red \
            below, white for none (PPO, whose advantages come from the value head).</p>

            """
        for run in drawn {
            for evaluation in run.evaluations where evaluation.phase == "rl" {
                for tree in Self.exampleTrees(run.trees, atOrBefore: evaluation.step) {
                    html += TreeDrawing(tree: tree, runName: run.name, evaluationStep: evaluation.step).svg() + "\n"
                }
            }
        }
        return html
    }

    /// Up to `treesPerEvaluation` trees of the latest step at or before `step`: the groups with
    /// the widest spread of leaf rewards, then the most trajectories, then the lowest group.
    static func exampleTrees(_ trees: [RolloutTree], atOrBefore step: Int) -> [RolloutTree] {
        guard let latest = trees.map(\.step).filter({ $0 <= step }).max() else { return [] }
        func spread(_ tree: RolloutTree) -> Double {
            let rewards = tree.nodes.compactMap(\.reward)
            return (rewards.max() ?? 0) - (rewards.min() ?? 0)
        }
        func trajectories(_ tree: RolloutTree) -> Int { Set(tree.nodes.map(\.trajectory)).count }
        let ranked = trees.filter { $0.step == latest }.sorted {
            (spread($0), trajectories($0), -$0.group) > (spread($1), trajectories($1), -$1.group)
        }
        return Array(ranked.prefix(treesPerEvaluation))
    }
}

/// One rollout tree as SVG: a trajectory's segments run left to right, and a fork's copy starts a
/// new row under the segment it branched after.
struct TreeDrawing {
    var tree: RolloutTree
    var runName: String
    var evaluationStep: Int

    static let boxWidth = 210.0, boxHeight = 44.0, columnGap = 26.0, rowGap = 12.0, top = 46.0, left = 10.0

    /// Column (depth along the path) and row of each node: a node continues its parent's row when
    /// it is the parent's first child, else it starts the next free row.
    func layout() -> (column: [Int], row: [Int], rows: Int) {
        let count = tree.nodes.count
        var children = [[Int]](repeating: [], count: count)
        var roots: [Int] = []
        for node in tree.nodes {
            if let parent = node.parent, parent >= 0, parent < count, parent != node.id { children[parent].append(node.id) } else { roots.append(node.id) }
        }
        var column = [Int](repeating: 0, count: count), row = [Int](repeating: 0, count: count)
        var nextRow = 0
        var visited = Set<Int>()
        func place(_ id: Int, column depth: Int, row line: Int) {
            guard id >= 0, id < count, visited.insert(id).inserted else { return }
            column[id] = depth
            row[id] = line
            for (index, child) in children[id].enumerated() {
                if index == 0 {
                    place(child, column: depth + 1, row: line)
                } else {
                    nextRow += 1
                    place(child, column: depth + 1, row: nextRow)
                }
            }
        }
        for root in roots {
            place(root, column: 0, row: nextRow)
            nextRow += 1
        }
        return (column, row, max(nextRow, 1))
    }

    /// The fill for a mean advantage, scaled by the tree's largest |A|.
    static func fill(_ advantage: Double?, scale: Double) -> String {
        guard let advantage, advantage.isFinite, scale > 0 else { return "#FFFFFF" }
        let strength = min(abs(advantage) / scale, 1)
        let light = Int((255 - 110 * strength).rounded())
        return advantage >= 0 ? String(format: "#%02X%02XFF", light, light) : String(format: "#FF%02X%02X", light, light)
    }

    static func shortened(_ text: String, _ limit: Int) -> String {
        let flat = text.replacingOccurrences(of: "\n", with: " ")
        return flat.count <= limit ? flat : String(flat.prefix(limit - 1)) + "…"
    }

    /// The box's two lines: what the segment did, then its numbers.
    static func lines(_ node: RolloutTreeNode) -> (String, String) {
        let action: String
        if let call = node.toolCall {
            action = call.replacingOccurrences(of: "<call>", with: "").replacingOccurrences(of: "</call>", with: "")
        } else if let open = node.text.range(of: "<answer>") {
            let rest = node.text[open.upperBound...]
            action = "answer: " + String(rest.prefix { $0 != "<" })
        } else {
            action = node.text.isEmpty ? "(no text)" : node.text
        }
        var numbers: [String] = []
        if let entropy = node.entropy { numbers.append(String(format: "H %.2f", entropy)) }
        if let decision = node.decision {
            let outcome = decision.outcome == .forked ? "forked" : decision.outcome == .declinedByRule ? "no fork" : "budget full"
            numbers.append(String(format: "ΔH %+.2f %@", decision.entropyDelta, outcome))
        }
        if let reward = node.reward { numbers.append(String(format: "reward %.2f%@", reward, node.correct == true ? " ✓" : node.correct == false ? " ✗" : "")) }
        if let advantage = node.advantage { numbers.append(String(format: "A %+.2f", advantage)) }
        return (shortened(action, 34), numbers.joined(separator: " · "))
    }

    func svg() -> String {
        let (column, row, rows) = layout()
        let columns = (column.max() ?? 0) + 1
        let width = Self.left * 2 + Double(columns) * (Self.boxWidth + Self.columnGap)
        let height = Self.top + Double(rows) * (Self.boxHeight + Self.rowGap) + 4
        let scale = tree.nodes.compactMap(\.advantage).filter(\.isFinite).map(abs).max() ?? 0
        func x(_ id: Int) -> Double { Self.left + Double(column[id]) * (Self.boxWidth + Self.columnGap) }
        func y(_ id: Int) -> Double { Self.top + Double(row[id]) * (Self.boxHeight + Self.rowGap) }
        let trajectories = Set(tree.nodes.map(\.trajectory)).count
        let correct = Set(tree.nodes.filter { $0.correct == true }.map(\.trajectory)).count
        var parts: [String] = []
        parts.append(String(format: "<svg class=\"tree\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\">", width, height, width, height))
        let title = "\(runName): step \(tree.step), group \(tree.group) (evaluation at step \(evaluationStep))"
        parts.append("<text class=\"tree-title\" x=\"\(Self.left)\" y=\"16\">\(title.escapedForHTML)</text>")
        let note = "\(Self.shortened(tree.prompt, 110)) · \(trajectories) trajectories, \(correct) correct"
            + (tree.globalSamples.map { ", \($0) global samples" } ?? "")
        parts.append("<text class=\"tree-note\" x=\"\(Self.left)\" y=\"32\">\(note.escapedForHTML)</text>")
        for node in tree.nodes {
            guard let parent = node.parent, parent >= 0, parent < tree.nodes.count, parent != node.id else { continue }
            let x1 = x(parent) + Self.boxWidth, y1 = y(parent) + Self.boxHeight / 2
            let x2 = x(node.id), y2 = y(node.id) + Self.boxHeight / 2
            let bend = x1 + Self.columnGap / 2
            parts.append(String(format: "<path d=\"M%.1f %.1f H%.1f V%.1f H%.1f\" fill=\"none\" stroke=\"#888\" stroke-width=\"1.2\"/>", x1, y1, bend, y2, x2))
        }
        for node in tree.nodes {
            let (action, numbers) = Self.lines(node)
            let forked = node.decision?.outcome == .forked
            let stroke = node.correct == true ? "#1A7F37" : node.correct == false ? "#B42318" : forked ? "#D55E00" : "#666"
            let hover = [node.text, node.observation ?? ""].filter { !$0.isEmpty }.joined(separator: "\n")
            parts.append("<g><title>\(hover.escapedForHTML)</title>")
            parts.append(String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.0f\" height=\"%.0f\" rx=\"4\" fill=\"%@\" stroke=\"%@\" stroke-width=\"%@\"/>",
                                x(node.id), y(node.id), Self.boxWidth, Self.boxHeight, Self.fill(node.advantage, scale: scale), stroke, node.reward != nil || forked ? "2" : "1"))
            parts.append(String(format: "<text x=\"%.1f\" y=\"%.1f\">%@</text>", x(node.id) + 6, y(node.id) + 17, action.escapedForHTML))
            parts.append(String(format: "<text x=\"%.1f\" y=\"%.1f\" class=\"tree-note\">%@</text>", x(node.id) + 6, y(node.id) + 34, numbers.escapedForHTML))
            parts.append("</g>")
        }
        parts.append("</svg>")
        return parts.joined(separator: "\n")
    }
}
