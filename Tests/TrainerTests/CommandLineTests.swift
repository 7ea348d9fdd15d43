import Foundation
import Policy
import XCTest

/// The real `arpo-train` binary, end to end.
final class CommandLineTests: XCTestCase {
    func testTinyRunFinishesWritesEveryOutputAndResumesToIdenticalMetrics() throws {
        let root = try temporaryDirectory(self)
        let straight = root.appendingPathComponent("straight"), resumed = root.appendingPathComponent("resumed")
        let configURL = root.appendingPathComponent("run.json")
        try Data(tinyConfig(output: straight).utf8).write(to: configURL)

        let full = try runArpoTrain(["--config", configURL.path])
        XCTAssertEqual(full.status, 0, full.error + full.output)
        for name in ["config.json", "metrics.jsonl", "eval.jsonl", "summary.json", "reference/model.safetensors", "reference/config.json", "checkpoints/latest"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: straight.appendingPathComponent(name).path), "missing \(name)")
        }
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: straight.appendingPathComponent("summary.json"))) as! [String: Any]
        for key in ["accuracy_after_sft", "accuracy_after_rl", "tool_calls_executed"] { XCTAssertNotNil(summary[key], "summary.json lacks \(key)") }
        let evaluations = try jsonLines(straight.appendingPathComponent("eval.jsonl"))
        XCTAssertEqual(evaluations.first?["phase"] as? String, "sft")
        XCTAssertTrue(evaluations.allSatisfy { $0["step"] != nil && $0["accuracy"] != nil && $0["samples"] != nil })
        let metrics = try jsonLines(straight.appendingPathComponent("metrics.jsonl"))
        XCTAssertEqual(metrics.count, 4 + 3)
        let rlRecord = metrics.last!
        for key in ["reward_mean", "reward_std", "accuracy", "policy_loss", "clip_fraction_low", "clip_fraction_high", "approx_kl", "reference_kl", "entropy", "gradient_norm", "tool_calls_executed", "tokens_generated", "forks", "rollout_seconds", "update_seconds", "tokens_per_second", "learning_rate", "phase"] {
            XCTAssertNotNil(rlRecord[key], "RL metrics lack \(key)")
        }
        // A fork's inherited calls are in its transcript but ran once, in its parent.
        for record in metrics where record["phase"] as? String == "rl" {
            XCTAssertGreaterThanOrEqual(record["tool_calls_written"] as! Int, record["tool_calls_executed"] as! Int)
        }
        // The checkpoint directory is a Hugging Face model directory.
        let latest = try String(contentsOf: straight.appendingPathComponent("checkpoints/latest"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertNoThrow(try ModelCheckpoint.load(from: straight.appendingPathComponent("checkpoints/\(latest)/model")))

        // The same run stopped after 5 steps (in RL) and resumed gives the same metrics.
        try Data(tinyConfig(output: resumed).utf8).write(to: configURL)
        let interrupted = try runArpoTrain(["--config", configURL.path], environment: ["ARPO_STOP_AFTER_STEPS": "5"])
        XCTAssertEqual(interrupted.status, 130, interrupted.error + interrupted.output)
        XCTAssertEqual(try jsonLines(resumed.appendingPathComponent("metrics.jsonl")).count, 5)
        let continued = try runArpoTrain(["--config", configURL.path, "--resume"])
        XCTAssertEqual(continued.status, 0, continued.error + continued.output)
        XCTAssertEqual(withoutTimings(try jsonLines(resumed.appendingPathComponent("metrics.jsonl"))), withoutTimings(metrics))
        let resumedEvaluations = try jsonLines(resumed.appendingPathComponent("eval.jsonl")).map { $0["accuracy"] as! Double }
        XCTAssertEqual(resumedEvaluations, evaluations.map { $0["accuracy"] as! Double })
    }

    func testSigintLeavesALoadableCheckpoint() throws {
        let root = try temporaryDirectory(self)
        let output = root.appendingPathComponent("run")
        let configURL = root.appendingPathComponent("run.json")
        try Data(tinyConfig(output: output, rlSteps: 200).utf8).write(to: configURL)
        let process = Process()
        process.executableURL = arpoTrainBinary()
        process.arguments = ["--config", configURL.path, "--quiet"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let metrics = output.appendingPathComponent("metrics.jsonl")
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            if let text = try? String(contentsOf: metrics, encoding: .utf8), text.split(separator: "\n").count >= 6 { break }
            usleep(20_000)
        }
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 130)
        let latest = try String(contentsOf: output.appendingPathComponent("checkpoints/latest"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let checkpoint = output.appendingPathComponent("checkpoints/\(latest)")
        XCTAssertNoThrow(try ModelCheckpoint.load(from: checkpoint.appendingPathComponent("model")))
        XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint.appendingPathComponent("optimizer.safetensors").path))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: output.appendingPathComponent("checkpoints").path).filter { $0.contains("partial") }
        XCTAssertEqual(leftovers, [], "a half-written checkpoint was left behind")
    }

    func assertConfigError(_ config: String, mentions expected: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let root = try temporaryDirectory(self)
        let configURL = root.appendingPathComponent("bad.json")
        try Data(config.utf8).write(to: configURL)
        let result = try runArpoTrain(["--config", configURL.path, "--output", root.appendingPathComponent("out").path])
        XCTAssertEqual(result.status, 2, "exit code for a bad config", file: file, line: line)
        XCTAssertTrue(result.error.contains(expected), "stderr '\(result.error)' does not mention '\(expected)'", file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent("out").path), "a bad config wrote output", file: file, line: line)
    }

    /// A task file without demonstrations while the cold start runs would train on the built-in
    /// solver's demonstrations of other tasks: refused with what to do instead. A demonstrations
    /// or task file that cannot be read is exit 2 naming it, before anything is written.
    func testUserTaskFilesWithoutDemonstrationsOrUnreadableAreRefused() throws {
        try assertConfigError(#"{"env": {"tasks": {"train": "tasks.jsonl"}}}"#, mentions: "env.tasks.train (tasks.jsonl) needs env.demonstrations while sft.steps is 300")
        try assertConfigError(#"{"env": {"tasks": {"train": "tasks.jsonl"}}}"#, mentions: "RL alone will not find the call syntax")
        try assertConfigError(#"{"env": {"tasks": {"eval": "/nonexistent/eval.jsonl"}}}"#, mentions: "/nonexistent/eval.jsonl: cannot read the file")
        try assertConfigError(#"{"env": {"demonstrations": "/nonexistent/demos.jsonl"}}"#, mentions: "/nonexistent/demos.jsonl: cannot read the file")
    }

    func testEachClassOfBadConfigExitsWithCode2AndNamesTheProblem() throws {
        try assertConfigError(#"{"rl": {"grup_size": 4}}"#, mentions: "unknown key rl.grup_size (did you mean rl.group_size?)")
        try assertConfigError(#"{"rl": {"group_size": "four"}}"#, mentions: "rl.group_size has the wrong type: expected an integer")
        try assertConfigError(#"{"rl": {"group_size": 0}}"#, mentions: "rl.group_size must be in 1...256, got 0")
        try assertConfigError(#"{"rl": {"algorithm": "dqn"}}"#, mentions: "rl.algorithm must be one of grpo, ppo, arpo")
        try assertConfigError(#"{"run": {"matmul_precision": "low"}}"#, mentions: "run.matmul_precision must be one of highest, high, medium")
        try assertConfigError(#"{"rl": {"loss": {"clip_epsilon_low": 1.5}}}"#, mentions: "rl.loss.clip_epsilon_low")
        try assertConfigError(#"{"env": {"faults": {"failure_probability": 2}}}"#, mentions: "env.faults.failure_probability")
        try assertConfigError(#"{"model": {"num_attention_heads": 3}}"#, mentions: "model.num_attention_heads")
        try assertConfigError(#"{"rl": {"algorithm": "ppo"}}"#, mentions: "model.value_head must be true")
        try assertConfigError(#"{"sft": {"steps": 10"#, mentions: "not valid JSON")
        try assertConfigError(#"[1, 2]"#, mentions: "top level must be a JSON object")
        try assertConfigError(#"{"tokenizer": {"kind": "wordpiece"}}"#, mentions: "tokenizer.kind must be one of byte, bpe")
        try assertConfigError(#"{"tokenizer": {"kind": "bpe", "merges": 0}}"#, mentions: "tokenizer.merges must be in 1...65536, got 0")
        try assertConfigError(#"{"tokenizer": {"kind": "bpe", "merges": 100}, "model": {"vocab_size": 272}}"#, mentions: "model.vocab_size must equal the tokenizer's vocabulary (272 + tokenizer.merges = 372)")
        try assertConfigError(#"{"sft": {"context_loss_weight": 2}}"#, mentions: "sft.context_loss_weight must be in [0, 1], got 2.0")
        let missing = try runArpoTrain(["--config", "/nonexistent/run.json"])
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.error.contains("cannot read config /nonexistent/run.json"), missing.error)
        let usage = try runArpoTrain(["--config"])
        XCTAssertEqual(usage.status, 2)
    }

    /// Piped (as here), progress lines come at most every `run.log_every_seconds`, besides each
    /// phase's first and last step and every evaluation; 0 prints every step.
    func testPipedProgressIsPrintedAtAnIntervalPlusEvaluationsAndTheLastStep() throws {
        let root = try temporaryDirectory(self)
        let configURL = root.appendingPathComponent("run.json")
        try Data(tinyConfig(output: root.appendingPathComponent("unused")).utf8).write(to: configURL)
        func progressLines(logEvery seconds: Int, output: String) throws -> [String] {
            let result = try runArpoTrain([
                "--config", configURL.path, "--output", root.appendingPathComponent(output).path,
                "--set", "sft.steps=12", "--set", "run.log_every_seconds=\(seconds)",
            ])
            XCTAssertEqual(result.status, 0, result.error)
            return result.output.split(separator: "\n").map(String.init).filter { $0.hasPrefix("[sft]") || $0.hasPrefix("[rl]") }
        }
        // An hour between lines: the first and last SFT step; RL's first step, its evaluation
        // after step 2 and its last step.
        let sparse = try progressLines(logEvery: 3600, output: "sparse")
        XCTAssertEqual(sparse.map { $0.components(separatedBy: "  ")[0] }, ["[sft] step 1/12", "[sft] step 12/12", "[rl] step 1/3", "[rl] step 2/3", "[rl] step 3/3"], sparse.joined(separator: "\n"))
        XCTAssertTrue(sparse[3].contains("held-out"), sparse[3])
        let every = try progressLines(logEvery: 0, output: "every")
        XCTAssertEqual(every.count, 12 + 3, every.joined(separator: "\n"))
    }

    func testDryRunPrintsTheResolvedConfigAndWritesNothing() throws {
        let root = try temporaryDirectory(self)
        let output = root.appendingPathComponent("out")
        let configURL = root.appendingPathComponent("run.json")
        try Data(#"{"rl": {"steps": 7}}"#.utf8).write(to: configURL)
        let result = try runArpoTrain(["--config", configURL.path, "--output", output.path, "--dry-run"])
        XCTAssertEqual(result.status, 0, result.error)
        let resolved = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as! [String: Any]
        XCTAssertEqual((resolved["rl"] as! [String: Any])["steps"] as? Int, 7)
        XCTAssertEqual((resolved["run"] as! [String: Any])["output"] as? String, output.path)
        XCTAssertFalse(FileManager.default.fileExists(atPath: output.path))
    }

    func testSetOverridesConfigKeysBeforeTheyAreChecked() throws {
        let root = try temporaryDirectory(self)
        let output = root.appendingPathComponent("out")
        let configURL = root.appendingPathComponent("run.json")
        try Data(#"{"rl": {"steps": 7, "algorithm": "grpo"}, "run": {"seed": 5}}"#.utf8).write(to: configURL)
        // JSON values (numbers, null, objects, quoted strings), plain text otherwise; sections and
        // keys the file lacks (rl.loss, eval) are created; a later --set of one key wins.
        let overrides = [
            "rl.steps=0", "run.seed=2", "run.seed=3", "sft.init_from=runs/x/reference", "rl.algorithm=arpo", "rl.loss.dual_clip=3",
            "eval.episodes=5", #"env.task_mix={"arithmetic": 2}"#, #"rl.branching.rule="stochastic""#, "rl.learning_rate=1e-5",
            "rl.loss.sum_norm_length=64", "rl.loss.sum_norm_length=null", "run.matmul_precision=high",
        ]
        for command in [[], ["train"]] {
            let result = try runArpoTrain(command + ["--config", configURL.path, "--output", output.path, "--dry-run"] + overrides.flatMap { ["--set", $0] })
            XCTAssertEqual(result.status, 0, result.error)
            let resolved = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as! [String: Any]
            let rl = resolved["rl"] as! [String: Any], loss = rl["loss"] as! [String: Any]
            XCTAssertEqual(rl["steps"] as? Int, 0)
            XCTAssertEqual(rl["algorithm"] as? String, "arpo")
            XCTAssertEqual(rl["learning_rate"] as? Double, 1e-5)
            XCTAssertEqual((rl["branching"] as! [String: Any])["rule"] as? String, "stochastic")
            XCTAssertEqual(loss["dual_clip"] as? Double, 3)
            XCTAssertEqual(loss["clip_epsilon_low"] as? Double, 0.2, "the rest of the created section keeps its defaults")
            XCTAssertTrue(loss["sum_norm_length"] is NSNull, "null, set after 64, sets an optional key back to nil")
            XCTAssertEqual((resolved["run"] as! [String: Any])["seed"] as? Int, 3)
            XCTAssertEqual((resolved["run"] as! [String: Any])["matmul_precision"] as? String, "high")
            XCTAssertEqual((resolved["sft"] as! [String: Any])["init_from"] as? String, "runs/x/reference")
            XCTAssertEqual((resolved["eval"] as! [String: Any])["episodes"] as? Int, 5)
            XCTAssertEqual((resolved["env"] as! [String: Any])["task_mix"] as? [String: Double], ["arithmetic": 2])
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: output.path))

        // Every bad --set exits with 2, names the problem, and writes nothing.
        let bad: [(String, String)] = [
            ("rl.grup_size=4", "--set rl.grup_size=4: unknown key rl.grup_size (did you mean rl.group_size?)"),
            ("rl.steps", "--set rl.steps: expected KEY.PATH=VALUE"),
            ("rl..steps=1", "the key path 'rl..steps' has an empty component"),
            ("rl.steps.count=1", "--set rl.steps.count=1: rl.steps is not an object"),
            ("rl.steps=-1", "with --set rl.steps: rl.steps must be in 0...1000000, got -1"),
            ("rl.steps=many", "with --set rl.steps: rl.steps has the wrong type: expected an integer"),
        ]
        for (override, message) in bad {
            let result = try runArpoTrain(["--config", configURL.path, "--output", output.path, "--set", override])
            XCTAssertEqual(result.status, 2, override)
            XCTAssertTrue(result.error.contains(message), "\(override): \(result.error)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: output.path), override)
        }
    }

    func testBadCheckpointsGiveClearErrors() throws {
        let root = try temporaryDirectory(self)
        // Not a model at all.
        let empty = root.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let noModel = try runArpoTrain(["eval", "--checkpoint", empty.path])
        XCTAssertEqual(noModel.status, 2)
        XCTAssertTrue(noModel.error.contains("holds no model"), noModel.error)
        // A truncated weights file.
        let model = root.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
        try Data(#"{"model_type": "llama", "vocab_size": 272, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 240}"#.utf8).write(to: model.appendingPathComponent("config.json"))
        try Data([1, 2, 3]).write(to: model.appendingPathComponent("model.safetensors"))
        let truncated = try runArpoTrain(["eval", "--checkpoint", model.path])
        XCTAssertEqual(truncated.status, 2)
        XCTAssertTrue(truncated.error.contains("model.safetensors: truncated"), truncated.error)
        // Resuming a run with a config whose architecture differs from its checkpoint.
        let output = root.appendingPathComponent("run")
        let configURL = root.appendingPathComponent("run.json")
        try Data(tinyConfig(output: output, rlSteps: 1).utf8).write(to: configURL)
        XCTAssertEqual(try runArpoTrain(["--config", configURL.path, "--quiet"]).status, 0)
        try Data(tinyConfig(output: output, rlSteps: 1).replacingOccurrences(of: "\"hidden_size\": 32", with: "\"hidden_size\": 48").utf8).write(to: configURL)
        let mismatched = try runArpoTrain(["--config", configURL.path, "--resume"])
        XCTAssertEqual(mismatched.status, 2)
        XCTAssertTrue(mismatched.error.contains("hidden_size: configured 48, checkpoint has 32"), mismatched.error)
        // Starting over an existing run without --resume is refused rather than overwriting it.
        try Data(tinyConfig(output: output, rlSteps: 1).utf8).write(to: configURL)
        let overwrite = try runArpoTrain(["--config", configURL.path])
        XCTAssertEqual(overwrite.status, 2)
        XCTAssertTrue(overwrite.error.contains("already holds a run"), overwrite.error)
    }

    func testInitFromReusesAColdStartAndRejectsABadDirectory() throws {
        let root = try temporaryDirectory(self)
        let first = root.appendingPathComponent("first"), reuse = root.appendingPathComponent("reuse")
        let configURL = root.appendingPathComponent("run.json")
        try Data(tinyConfig(output: first, rlSteps: 1).utf8).write(to: configURL)
        XCTAssertEqual(try runArpoTrain(["--config", configURL.path, "--quiet"]).status, 0)

        // No SFT steps from the first (ARPO) run's reference policy: the same policy is evaluated
        // after "SFT", and a PPO run gets a fresh value head on top of it.
        let reference = first.appendingPathComponent("reference").path
        let reused = tinyConfig(output: reuse, algorithm: "ppo", rlSteps: 1).replacingOccurrences(of: #""sft": {"steps": 4,"#, with: #""sft": {"init_from": "\#(reference)", "steps": 0,"#)
        try Data(reused.utf8).write(to: configURL)
        let result = try runArpoTrain(["--config", configURL.path, "--quiet"])
        XCTAssertEqual(result.status, 0, result.error)
        let original = try jsonLines(first.appendingPathComponent("eval.jsonl")).first!
        let again = try jsonLines(reuse.appendingPathComponent("eval.jsonl")).first!
        XCTAssertEqual(again["phase"] as? String, "sft")
        XCTAssertEqual(again["step"] as? Int, 0)
        XCTAssertEqual(again["accuracy"] as? Double, original["accuracy"] as? Double)
        XCTAssertEqual(again["mean_reward"] as? Double, original["mean_reward"] as? Double)
        let firstWeights = try ModelCheckpoint.load(from: first.appendingPathComponent("reference"))
        let reusedWeights = try ModelCheckpoint.load(from: reuse.appendingPathComponent("reference"))
        XCTAssertEqual(reusedWeights.embedding.doubles, firstWeights.embedding.doubles)
        XCTAssertNotNil(reusedWeights.valueHeadWeight)

        // A missing directory and a different architecture are named, and nothing is written.
        for (initial, message) in [("/nonexistent/model", "sft.init_from"), (reference, "hidden_size: configured 48, checkpoint has 32")] {
            let output = root.appendingPathComponent("bad")
            var text = tinyConfig(output: output).replacingOccurrences(of: #""sft": {"steps": 4,"#, with: #""sft": {"init_from": "\#(initial)", "steps": 0,"#)
            if initial == reference { text = text.replacingOccurrences(of: "\"hidden_size\": 32", with: "\"hidden_size\": 48") }
            try Data(text.utf8).write(to: configURL)
            let bad = try runArpoTrain(["--config", configURL.path])
            XCTAssertEqual(bad.status, 2, bad.output)
            XCTAssertTrue(bad.error.contains(message), bad.error)
            XCTAssertFalse(FileManager.default.fileExists(atPath: output.path))
        }
    }

    func testSampleJSONAndEvalOnATrainedCheckpoint() throws {
        let root = try temporaryDirectory(self)
        let output = root.appendingPathComponent("run")
        let configURL = root.appendingPathComponent("run.json")
        try Data(tinyConfig(output: output, rlSteps: 1).utf8).write(to: configURL)
        XCTAssertEqual(try runArpoTrain(["--config", configURL.path, "--quiet"]).status, 0)
        let sample = try runArpoTrain(["sample", "--checkpoint", output.path, "--task", "arithmetic", "--seed", "3", "--greedy", "--json", "--max-response-tokens", "30"])
        XCTAssertEqual(sample.status, 0, sample.error)
        let object = try JSONSerialization.jsonObject(with: Data(sample.output.utf8)) as! [String: Any]
        let tokens = object["tokens"] as! [Int], promptLength = object["prompt_length"] as! Int
        let logProbabilities = object["logprobs"] as! [Any], entropies = object["entropies"] as! [Any]
        XCTAssertEqual(logProbabilities.count, tokens.count - promptLength)
        XCTAssertEqual(entropies.count, tokens.count - promptLength)
        XCTAssertTrue(object["text"] is String)
        XCTAssertTrue(logProbabilities.allSatisfy { $0 is NSNull || (($0 as? Double).map { $0 <= 0 } ?? false) })
        let readable = try runArpoTrain(["sample", "--checkpoint", output.path, "--prompt", "What is 2+2?", "--greedy", "--max-response-tokens", "20"])
        XCTAssertEqual(readable.status, 0, readable.error)
        XCTAssertTrue(readable.output.contains("USER: What is 2+2?"))
        let both = try runArpoTrain(["sample", "--checkpoint", output.path, "--prompt", "x", "--task", "arithmetic"])
        XCTAssertEqual(both.status, 2)
        let evaluation = try runArpoTrain(["eval", "--checkpoint", output.path, "--episodes", "3", "--json"])
        XCTAssertEqual(evaluation.status, 0, evaluation.error)
        let result = try JSONSerialization.jsonObject(with: Data(evaluation.output.utf8)) as! [String: Any]
        XCTAssertNotNil(result["accuracy_by_family"])
        XCTAssertNotNil(result["format_error_rate"])
        XCTAssertNotNil(result["tool_calls_per_episode"])
    }

    /// A BPE run: the tokenizer is learned at the start, saved beside every model directory,
    /// read back on resume (the same metrics as a straight run) and by `eval` and `sample`, and
    /// reused with the weights by `sft.init_from`.
    func testBPERunSavesItsTokenizerResumesAndEvaluates() throws {
        let root = try temporaryDirectory(self)
        let straight = root.appendingPathComponent("straight"), resumed = root.appendingPathComponent("resumed")
        let configURL = root.appendingPathComponent("run.json")
        let bpe = #", "tokenizer": {"kind": "bpe", "merges": 200, "training_episodes": 100}"#
        try Data(tinyConfig(output: straight, extra: bpe).replacingOccurrences(of: #""sft": {"steps": 4,"#, with: #""sft": {"fresh_demonstrations": true, "context_loss_weight": 0.1, "steps": 4,"#).utf8).write(to: configURL)
        let full = try runArpoTrain(["--config", configURL.path])
        XCTAssertEqual(full.status, 0, full.error + full.output)
        XCTAssertTrue(full.output.contains("Tokenizer: byte-level BPE, 200 merges"), full.output)
        let resolved = try JSONSerialization.jsonObject(with: Data(contentsOf: straight.appendingPathComponent("config.json"))) as! [String: Any]
        XCTAssertEqual((resolved["model"] as! [String: Any])["vocab_size"] as? Int, 472)
        let reference = straight.appendingPathComponent("reference")
        let tokenizer = try Tokenizer.load(huggingFaceJSON: reference.appendingPathComponent(Tokenizer.fileName))
        XCTAssertEqual(tokenizer.vocabularySize, 472)
        XCTAssertLessThan(tokenizer.encode("What is the capital of Zelmar?").count, 20)
        let metrics = try jsonLines(straight.appendingPathComponent("metrics.jsonl"))

        try Data(tinyConfig(output: resumed, extra: bpe).replacingOccurrences(of: #""sft": {"steps": 4,"#, with: #""sft": {"fresh_demonstrations": true, "context_loss_weight": 0.1, "steps": 4,"#).utf8).write(to: configURL)
        XCTAssertEqual(try runArpoTrain(["--config", configURL.path], environment: ["ARPO_STOP_AFTER_STEPS": "3"]).status, 130)
        let continued = try runArpoTrain(["--config", configURL.path, "--resume"])
        XCTAssertEqual(continued.status, 0, continued.error + continued.output)
        XCTAssertEqual(withoutTimings(try jsonLines(resumed.appendingPathComponent("metrics.jsonl"))), withoutTimings(metrics))

        let evaluation = try runArpoTrain(["eval", "--checkpoint", straight.path, "--episodes", "3", "--json"])
        XCTAssertEqual(evaluation.status, 0, evaluation.error)
        let sample = try runArpoTrain(["sample", "--checkpoint", reference.path, "--task", "single_hop", "--seed", "1", "--greedy", "--json", "--max-response-tokens", "20"])
        XCTAssertEqual(sample.status, 0, sample.error)
        let object = try JSONSerialization.jsonObject(with: Data(sample.output.utf8)) as! [String: Any]
        XCTAssertTrue((object["tokens"] as! [Int]).allSatisfy { $0 < 472 })

        // A model directory whose tokenizer does not fit the model is refused by name.
        let broken = root.appendingPathComponent("broken")
        try FileManager.default.copyItem(at: reference, to: broken)
        try Tokenizer().huggingFaceJSON().write(to: broken.appendingPathComponent(Tokenizer.fileName))
        // The copied manifest catches the replaced file first; without it, the tokenizer check does.
        let changed = try runArpoTrain(["eval", "--checkpoint", broken.path, "--episodes", "1"])
        XCTAssertEqual(changed.status, 2)
        XCTAssertTrue(changed.error.contains("broken/tokenizer.json has"), changed.error)
        try FileManager.default.removeItem(at: broken.appendingPathComponent("manifest.json"))
        let refused = try runArpoTrain(["eval", "--checkpoint", broken.path, "--episodes", "1"])
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.error.contains("tokenizer.json has a vocabulary of 272 tokens but the model's vocab_size is 472"), refused.error)
    }
}
