import ArgumentParser
import Foundation
import Trainer

/// `arpo-train report RUN_DIR... [--output PATH]`: one HTML page comparing runs.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write one self-contained HTML page (inline SVG charts, no JavaScript) comparing runs.",
        discussion: """
            Charts held-out accuracy against step and against tool calls executed; reward, entropy, \
            KL and tool calls per trajectory against step; for ARPO, the entropy after tool results \
            against the initial entropy, and forks per step. A table gives each algorithm's final \
            accuracy (mean ± std over seeds), tool calls per trajectory, tokens generated and wall \
            time. A run without summary.json is drawn but marked unfinished and left out of the table.
            """)

    @Argument(help: ArgumentHelp("Run directories written by `arpo-train train`.", valueName: "run-directory"))
    var runDirectories: [String]

    @Option(name: .long, help: "The HTML file to write.")
    var output = TrainingReport.defaultOutputName

    func run() throws {
        let outputURL = URL(fileURLWithPath: output)
        let runs = try TrainingReport.write(runDirectories: runDirectories.map { URL(fileURLWithPath: $0) }, to: outputURL)
        let unfinished = runs.filter { !$0.isFinished }.count
        let count = runs.count == 1 ? "1 run" : "\(runs.count) runs"
        print("Wrote \(outputURL.path) (\(count)\(unfinished > 0 ? ", \(unfinished) unfinished" : ""))")
    }
}
