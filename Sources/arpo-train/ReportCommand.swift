import ArgumentParser
import Foundation
import Report
import Trainer

/// `arpo-train report RUN_DIR... [--output PATH] [--markdown PATH [--command TEXT]]`: one HTML
/// page comparing runs, and optionally a Markdown results document.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write one self-contained HTML page (inline SVG charts, no JavaScript) comparing runs.",
        discussion: """
            Runs are grouped by method: rl.algorithm, with rl.advantage.mode where it changes the \
            advantages (ARPO and ARPO (hard) are two methods). Charts held-out accuracy against step \
            and against tool calls executed; reward, entropy, KL and tool calls per trajectory \
            against step; for ARPO, the entropy after tool results against the initial entropy, and \
            forks per step. Tables give each method's final accuracy (mean ± std over seeds), tool \
            calls, tokens generated and wall time; per family, final accuracy with 95% intervals; \
            each ARPO method against GRPO seed by seed; tool calls executed and written; time per RL \
            step; ARPO's fork rate and entropy by tool result. A run without summary.json is drawn \
            but marked unfinished and left out of the tables.

            --markdown also writes a results document: the same tables, the experiment's sizes from \
            the runs' config.json, the machine (CPU model, cores), the git commit of the current \
            directory and the --command that reproduces it.
            """)

    @Argument(help: ArgumentHelp("Run directories written by `arpo-train train`.", valueName: "run-directory"))
    var runDirectories: [String]

    @Option(name: .long, help: "The HTML file to write.")
    var output = TrainingReport.defaultOutputName

    @Option(name: .long, help: ArgumentHelp("Also write a Markdown results document here (for example docs/RESULTS.md).", valueName: "path"))
    var markdown: String?

    @Option(name: .long, help: ArgumentHelp("The command that reproduces the runs, quoted in the Markdown document.", valueName: "text"))
    var command: String?

    func validate() throws {
        if command != nil && markdown == nil { throw ValidationError("--command is quoted in the Markdown document: give --markdown PATH too") }
    }

    func run() throws {
        let outputURL = URL(fileURLWithPath: output)
        let runs = try TrainingReport.loadRuns(runDirectories.map { URL(fileURLWithPath: $0) })
        try TrainingReport.writeHTML(for: runs, to: outputURL)
        let unfinished = runs.filter { !$0.isFinished }.count
        let count = runs.count == 1 ? "1 run" : "\(runs.count) runs"
        print("Wrote \(outputURL.path) (\(count)\(unfinished > 0 ? ", \(unfinished) unfinished" : ""))")
        if let markdown {
            let markdownURL = URL(fileURLWithPath: markdown)
            let provenance = ReportProvenance.current(command: command, ignoring: [markdownURL, outputURL])
            try TrainingReport.writeMarkdown(for: runs, provenance: provenance, to: markdownURL)
            print("Wrote \(markdownURL.path)")
        }
    }
}
