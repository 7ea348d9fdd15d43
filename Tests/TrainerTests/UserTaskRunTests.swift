import Foundation
import XCTest
@testable import Trainer
import ToolEnv

/// Runs on the user's task and demonstration files through the real binary, and the checks of
/// the new configuration keys.
final class UserTaskRunTests: XCTestCase {
    /// Arithmetic tasks answered through the built-in `calc`, in a file of each shape.
    static func writeFiles(in directory: URL) throws -> (tasks: URL, evalTasks: URL, demonstrations: URL) {
        var taskLines: [String] = [], evalLines: [String] = [], demonstrationLines: [String] = []
        for index in 0..<24 {
            let (left, right) = (12 + index * 7 % 80, 13 + index * 11 % 70)
            let question = "What is \(left) times \(right)?"
            let answer = left * right
            let family = index % 2 == 0 ? "products" : "more_products"
            if index < 16 {
                taskLines.append(#"{"prompt": "\#(question)", "answer": \#(answer), "family": "\#(family)"}"#)
                let call = #"{\"expression\": \"\#(left)*\#(right)\"}"#
                demonstrationLines.append(#"{"messages": [{"role": "user", "content": "\#(question)"}, {"role": "assistant", "content": "Compute.", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "calc", "arguments": "\#(call)"}}]}, {"role": "tool", "tool_call_id": "a", "content": "\#(answer)"}, {"role": "assistant", "content": "\#(answer)"}]}"#)
            } else {
                evalLines.append(#"{"prompt": [{"role": "user", "content": "\#(question)"}], "reward_model": {"ground_truth": "\#(answer)"}, "data_source": "\#(family)"}"#)
            }
        }
        let urls = (directory.appendingPathComponent("tasks.jsonl"), directory.appendingPathComponent("eval.jsonl"), directory.appendingPathComponent("demos.jsonl"))
        try taskLines.joined(separator: "\n").write(to: urls.0, atomically: true, encoding: .utf8)
        try evalLines.joined(separator: "\n").write(to: urls.1, atomically: true, encoding: .utf8)
        try demonstrationLines.joined(separator: "\n").write(to: urls.2, atomically: true, encoding: .utf8)
        return urls
    }

    static func config(output: URL, env: String, sftSteps: Int = 4) -> String {
        """
        {
          "model": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 240},
          "env": \(env),
          "sft": {"steps": \(sftSteps), "batch_size": 4, "learning_rate": 0.003},
          "rl": {"algorithm": "arpo", "steps": 2, "prompts_per_step": 2, "branching": {"budget": 4, "initial_samples": 2, "entropy_window": 4}, "max_response_tokens": 100, "micro_batch_size": 4},
          "eval": {"every": 0, "episodes": 6, "sample_trajectories": 1},
          "run": {"seed": 3, "threads": 1, "output": "\(output.path)", "checkpoint_every": 10}
        }
        """
    }

    func testARunTrainsOnTheUserFilesAndReportsTheirFamilies() throws {
        let directory = try temporaryDirectory(self)
        let files = try UserTaskRunTests.writeFiles(in: directory)
        let output = directory.appendingPathComponent("run")
        let env = #"{"tasks": {"train": "\#(files.tasks.path)", "eval": "\#(files.evalTasks.path)"}, "demonstrations": "\#(files.demonstrations.path)", "call_format": "json"}"#
        let configURL = directory.appendingPathComponent("run.json")
        try UserTaskRunTests.config(output: output, env: env).write(to: configURL, atomically: true, encoding: .utf8)
        let result = try runArpoTrain(["--config", configURL.path])
        XCTAssertEqual(result.status, 0, result.error)
        XCTAssertTrue(result.output.contains("Tasks: 16 from \(files.tasks.path) for RL, 8 from \(files.evalTasks.path) for evaluation"), result.output)
        XCTAssertTrue(result.output.contains("SFT: 4 steps on 16 demonstrations from \(files.demonstrations.path)"), result.output)
        let evaluations = try jsonLines(output.appendingPathComponent("eval.jsonl"))
        XCTAssertEqual(evaluations.count, 2)
        for evaluation in evaluations {
            XCTAssertEqual(evaluation["episodes_by_family"] as? [String: Int], ["products": 3, "more_products": 3])
            let samples = evaluation["samples"] as? [[String: Any]] ?? []
            XCTAssertEqual(samples.first?["question"] as? String, "What is 44 times 49?")
        }
        let resolved = try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("config.json"))) as? [String: Any]
        XCTAssertEqual((resolved?["env"] as? [String: Any])?["call_format"] as? String, "json")
    }

    /// RL prompts are the train file's tasks (at positions the seeds pick), evaluations the eval
    /// file's first tasks, with their families; without files, the generated families.
    func testEpisodesComeFromTheTaskFilesOfTheirSplit() throws {
        let directory = try temporaryDirectory(self)
        let files = try UserTaskRunTests.writeFiles(in: directory)
        var environment = EnvironmentConfig()
        environment.tasks = TaskFilesConfig(train: files.tasks.path, eval: files.evalTasks.path)
        environment.demonstrations = files.demonstrations.path
        let source = try EpisodeSource.open(environment: environment)
        defer { source.close() }
        let trainPrompts = Set(try TaskFile.load(path: files.tasks.path).map(\.prompt))
        for seed in UInt64(0)..<20 {
            let episode = source.trainingEpisode(seed: seed)
            XCTAssertTrue(episode is TaskEpisode)
            XCTAssertTrue(trainPrompts.contains(episode.prompt), episode.prompt)
        }
        let evaluation = source.evaluationEpisodes(split: .eval, count: 5)
        XCTAssertEqual(evaluation.map(\.prompt), try TaskFile.load(path: files.evalTasks.path).prefix(5).map(\.prompt))
        XCTAssertEqual(evaluation.map(\.familyName), ["products", "more_products", "products", "more_products", "products"])
        XCTAssertEqual(source.demonstrations?.count, 16)
        let generated = try EpisodeSource.open(environment: EnvironmentConfig())
        XCTAssertTrue(generated.trainingEpisode(seed: 1) is Episode)
        XCTAssertNil(generated.demonstrations)
    }

    func testABadTaskLineExitsWith2NamingTheFileAndLineBeforeAnythingIsWritten() throws {
        let directory = try temporaryDirectory(self)
        let files = try UserTaskRunTests.writeFiles(in: directory)
        let broken = directory.appendingPathComponent("broken.jsonl")
        try "{\"prompt\": \"q\", \"answer\": 1}\n{\"prompt\": \"q\", \"anwser\": 1}\n".write(to: broken, atomically: true, encoding: .utf8)
        let output = directory.appendingPathComponent("run")
        for (env, message) in [
            (#"{"tasks": {"train": "\#(broken.path)"}, "demonstrations": "\#(files.demonstrations.path)"}"#, "\(broken.path) line 2: no answer"),
            (#"{"tasks": {"train": "\#(files.tasks.path)"}, "demonstrations": "\#(files.tasks.path)"}"#, "\(files.tasks.path) line 1: expected {\"messages\""),
            (#"{"tasks": {"train": "\#(files.tasks.path)"}, "demonstrations": "\#(directory.path)/missing.jsonl"}"#, "missing.jsonl: cannot read the file"),
        ] {
            let configURL = directory.appendingPathComponent("run.json")
            try UserTaskRunTests.config(output: output, env: env).write(to: configURL, atomically: true, encoding: .utf8)
            let result = try runArpoTrain(["--config", configURL.path])
            XCTAssertEqual(result.status, 2, result.output)
            XCTAssertTrue(result.error.contains(message), "\(result.error) lacks \(message)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: output.path), "the run wrote \(output.path)")
        }
    }

    func testTheNewKeysAreCheckedWithTheirKeyPaths() throws {
        func error(_ json: String) -> String {
            do {
                _ = try ConfigurationLoader.decode(Data(json.utf8))
                return "accepted"
            } catch { return "\(error)" }
        }
        XCTAssertTrue(error(#"{"env": {"tasks": {"train": "t.jsonl"}}}"#).contains("env.tasks.train (t.jsonl) needs env.demonstrations while sft.steps is 300"))
        XCTAssertEqual(error(#"{"env": {"tasks": {"train": "t.jsonl"}}, "sft": {"steps": 0}}"#), "accepted")
        XCTAssertTrue(error(#"{"env": {"demonstrations": "d.jsonl"}, "sft": {"fresh_demonstrations": true}}"#).contains("sft.fresh_demonstrations must be false with env.demonstrations"))
        XCTAssertTrue(error(#"{"env": {"call_format": "xml"}}"#).contains("env.call_format must be one of compact, json"))
        XCTAssertTrue(error(#"{"env": {"tasks": {"test": "t.jsonl"}}}"#).contains("unknown key env.tasks.test"))
        XCTAssertTrue(error(#"{"env": {"tasks": {"train": ""}}}"#).contains("env.tasks.train must be a file path or null"))
        XCTAssertTrue(error(#"{"env": {"mcp_servers": {"units": {"command": "python3"}}}}"#).contains("env.mcp_servers needs env.tasks.train"))
        let withTasks = #""tasks": {"train": "t.jsonl"}, "demonstrations": "d.jsonl""#
        XCTAssertEqual(error(#"{"env": {\#(withTasks), "mcp_servers": {"units": {"command": "python3", "args": ["s.py"], "env": {"A": "1"}, "timeout_seconds": 5}}}}"#), "accepted")
        XCTAssertTrue(error(#"{"env": {\#(withTasks), "mcp_servers": {"units": {"command": "python3", "argz": []}}}}"#).contains("env.mcp_servers.units.argz: unknown key; a server has command, args, env, timeout_seconds"))
        XCTAssertTrue(error(#"{"env": {\#(withTasks), "mcp_servers": {"units": {"args": []}}}}"#).contains("env.mcp_servers.units.command is required"))
        XCTAssertTrue(error(#"{"env": {\#(withTasks), "mcp_servers": {"units": {"command": "x", "timeout_seconds": 0}}}}"#).contains("env.mcp_servers.units.timeout_seconds must be in (0, 3600], got 0.0"))
        XCTAssertTrue(error(#"{"env": {\#(withTasks), "mcp_servers": {"un its": {"command": "x"}}}}"#).contains("server names must be 1 to 64 ASCII letters"))
        // The worked example's config is valid as committed.
        let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("examples/units/config.json")
        let configuration = try ConfigurationLoader.load(from: example)
        XCTAssertEqual(configuration.env.callFormat, .json)
        XCTAssertEqual(configuration.env.mcpServers["units"]?.command, ".build/release/units-server")
    }
}
