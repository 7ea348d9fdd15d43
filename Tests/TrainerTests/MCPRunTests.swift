import Foundation
import XCTest

/// Short trainings against MCP tool servers through the real binary: the worked example's
/// server, and a server that crashes and hangs on purpose.
final class MCPRunTests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The example server built beside the test bundle.
    static var unitsServer: String { arpoTrainBinary().deletingLastPathComponent().appendingPathComponent("units-server").path }

    /// A config for a tiny policy that learns the call's fixed part in its short cold start, so
    /// RL and evaluation call the tools.
    static func config(output: URL, env: String) -> String {
        """
        {
          "model": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 240},
          "env": \(env),
          "sft": {"steps": 120, "batch_size": 8, "learning_rate": 0.01, "warmup_steps": 5},
          "rl": {"algorithm": "arpo", "steps": 2, "prompts_per_step": 2, "branching": {"budget": 4, "initial_samples": 2, "entropy_window": 4}, "max_response_tokens": 100, "micro_batch_size": 4},
          "eval": {"every": 0, "episodes": 8, "sample_trajectories": 1},
          "run": {"seed": 5, "threads": 1, "output": "\(output.path)", "checkpoint_every": 50}
        }
        """
    }

    /// Command lines of the running processes that mention `marker`.
    func processes(mentioning marker: String) throws -> [String] {
        let listing = try runProcess(URL(fileURLWithPath: "/bin/ps"), ["-eo", "pid,stat,args"])
        return listing.output.split(separator: "\n").map(String.init).filter { $0.contains(marker) && !$0.contains("/bin/ps") }
    }

    func toolCallsExecuted(_ output: URL) throws -> Int {
        try jsonLines(output.appendingPathComponent("metrics.jsonl")).reduce(0) { $0 + (($1["tool_calls_executed"] as? Int) ?? 0) }
    }

    func testAShortTrainingAgainstTheExampleServerCallsItsTools() throws {
        let directory = try temporaryDirectory(self)
        let output = directory.appendingPathComponent("run")
        let examples = MCPRunTests.repository.appendingPathComponent("examples/units")
        let marker = "units-marker-\(UUID().uuidString)"
        let env = """
            {"tasks": {"train": "\(examples.path)/tasks.jsonl", "eval": "\(examples.path)/eval.jsonl"},
             "demonstrations": "\(examples.path)/demonstrations.jsonl",
             "mcp_servers": {"units": {"command": "\(MCPRunTests.unitsServer)", "args": ["\(marker)"], "timeout_seconds": 10}}}
            """
        let configURL = directory.appendingPathComponent("run.json")
        try MCPRunTests.config(output: output, env: env).write(to: configURL, atomically: true, encoding: .utf8)
        let result = try runArpoTrain(["--config", configURL.path])
        XCTAssertEqual(result.status, 0, result.error)
        XCTAssertTrue(result.output.contains("Held-out accuracy:"), result.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: output.appendingPathComponent("summary.json").path))
        XCTAssertGreaterThan(try toolCallsExecuted(output), 0, result.output)
        let toolLine = result.output.split(separator: "\n").first { $0.hasPrefix("Tool servers: ") } ?? ""
        XCTAssertFalse(toolLine.hasPrefix("Tool servers: 0 calls"), result.output)
        XCTAssertEqual(try processes(mentioning: marker), [], "a server outlived the run")
    }

    func testARunSurvivesAServerThatCrashesAndHangs() throws {
        let directory = try temporaryDirectory(self)
        let output = directory.appendingPathComponent("run")
        let counter = directory.appendingPathComponent("flaky-count").path
        let (tasksURL, demonstrationsURL) = try MCPRunTests.writeEchoFiles(in: directory, tool: "flaky")
        let server = MCPRunTests.repository.appendingPathComponent("Tests/ToolServersTests/Fixtures/misbehaving_server.py").path
        let env = """
            {"tasks": {"train": "\(tasksURL.path)", "eval": "\(tasksURL.path)"}, "demonstrations": "\(demonstrationsURL.path)",
             "mcp_servers": {"flaky": {"command": "python3", "args": ["\(server)", "\(counter)"], "env": {"MISBEHAVING_COUNTER": "\(counter)"}, "timeout_seconds": 1}}}
            """
        let configURL = directory.appendingPathComponent("run.json")
        try MCPRunTests.config(output: output, env: env).write(to: configURL, atomically: true, encoding: .utf8)
        let result = try runArpoTrain(["--config", configURL.path])
        XCTAssertEqual(result.status, 0, result.error + result.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: output.appendingPathComponent("summary.json").path))
        let calls = Int((try? String(contentsOfFile: counter, encoding: .utf8)) ?? "0") ?? 0
        XCTAssertGreaterThanOrEqual(calls, 5, "the policy should have called the flaky tool past its first crash and hang\n\(result.output)")
        let toolLine = result.output.split(separator: "\n").first { $0.hasPrefix("Tool servers: ") }.map(String.init) ?? ""
        XCTAssertTrue(toolLine.contains("server_crash") && toolLine.contains("timeout"), result.output)
        XCTAssertFalse(toolLine.hasSuffix(" 0 restarts"), toolLine)
        XCTAssertEqual(try processes(mentioning: counter), [], "a server outlived the run")
    }

    /// Echo tasks and demonstrations for the misbehaving server's `tool` (echo or flaky).
    static func writeEchoFiles(in directory: URL, tool: String) throws -> (tasks: URL, demonstrations: URL) {
        var tasks: [String] = [], demonstrations: [String] = []
        for word in ["apple", "river", "stone", "cloud", "maple", "ember", "frost", "grove"] {
            tasks.append(#"{"prompt": "Echo \#(word).", "answer": "\#(word)", "family": "echo"}"#)
            demonstrations.append(#"{"messages": [{"role": "user", "content": "Echo \#(word)."}, {"role": "assistant", "content": null, "tool_calls": [{"id": "e", "function": {"name": "\#(tool)", "arguments": {"text": "\#(word)"}}}]}, {"role": "tool", "tool_call_id": "e", "content": "\#(word)"}, {"role": "assistant", "content": "\#(word)"}]}"#)
        }
        let tasksURL = directory.appendingPathComponent("tasks.jsonl"), demonstrationsURL = directory.appendingPathComponent("demos.jsonl")
        try tasks.joined(separator: "\n").write(to: tasksURL, atomically: true, encoding: .utf8)
        try demonstrations.joined(separator: "\n").write(to: demonstrationsURL, atomically: true, encoding: .utf8)
        return (tasksURL, demonstrationsURL)
    }

    /// SIGTERM mid-run: the trainer checkpoints at the next step boundary, exits 143, and stops
    /// its server, here one that would outlive the trainer's end of its standard input.
    func testSIGTERMStopsTheRunAndItsServers() throws {
        let directory = try temporaryDirectory(self)
        let output = directory.appendingPathComponent("run")
        let files = try MCPRunTests.writeEchoFiles(in: directory, tool: "echo")
        let marker = "linger-marker-\(UUID().uuidString)"
        let server = MCPRunTests.repository.appendingPathComponent("Tests/ToolServersTests/Fixtures/misbehaving_server.py").path
        let env = """
            {"tasks": {"train": "\(files.tasks.path)"}, "demonstrations": "\(files.demonstrations.path)",
             "mcp_servers": {"echo": {"command": "python3", "args": ["\(server)", "\(marker)"], "env": {"MISBEHAVING_LINGER": "1"}}}}
            """
        let configURL = directory.appendingPathComponent("run.json")
        try MCPRunTests.config(output: output, env: env).replacingOccurrences(of: #""steps": 120"#, with: #""steps": 100000"#)
            .write(to: configURL, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = arpoTrainBinary()
        process.arguments = ["--config", configURL.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(120)
        // Until the cold start has written a step: the server runs by then.
        while Date() < deadline && (try? jsonLines(output.appendingPathComponent("metrics.jsonl")).count) ?? 0 < 2 { usleep(100_000) }
        XCTAssertEqual(try processes(mentioning: marker).count, 1, "the server is not running")
        process.terminate()
        let exitDeadline = Date().addingTimeInterval(60)
        while process.isRunning && Date() < exitDeadline { usleep(50_000) }
        if process.isRunning {
            XCTFail("arpo-train did not exit within 60 s of SIGTERM")
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 143)
        XCTAssertTrue(FileManager.default.fileExists(atPath: output.appendingPathComponent("checkpoints/latest").path))
        let left = try processes(mentioning: marker)
        for line in left { if let pid = Int32(line.split(separator: " ").first ?? "") { kill(pid, SIGKILL) } }
        XCTAssertEqual(left, [], "a server outlived the run")
    }

    func testAServerThatCannotStartStopsTheRunWithExitCode2BeforeAnythingIsWritten() throws {
        let directory = try temporaryDirectory(self)
        let output = directory.appendingPathComponent("run")
        let examples = MCPRunTests.repository.appendingPathComponent("examples/units")
        let env = """
            {"tasks": {"train": "\(examples.path)/tasks.jsonl"}, "demonstrations": "\(examples.path)/demonstrations.jsonl",
             "mcp_servers": {"units": {"command": "\(directory.path)/no-such-server"}}}
            """
        let configURL = directory.appendingPathComponent("run.json")
        try MCPRunTests.config(output: output, env: env).write(to: configURL, atomically: true, encoding: .utf8)
        let result = try runArpoTrain(["--config", configURL.path])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.error.contains("env.mcp_servers.units: cannot start \(directory.path)/no-such-server: No such file or directory"), result.error)
        XCTAssertFalse(FileManager.default.fileExists(atPath: output.path))
    }
}
