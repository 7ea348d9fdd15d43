import Foundation
import XCTest

/// The `arpo-train` binary built beside the test bundle.
func arpoTrainBinary() -> URL {
    URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("arpo-train")
}

struct ProcessResult {
    var status: Int32
    var output: String
    var error: String
}

/// Runs the real binary to completion (killed after `timeout` seconds, so a wrong expectation
/// fails the test instead of hanging the suite).
func runArpoTrain(_ arguments: [String], environment extra: [String: String] = [:], directory: URL? = nil, timeout: TimeInterval = 300) throws -> ProcessResult {
    try runProcess(arpoTrainBinary(), arguments, environment: extra, directory: directory, timeout: timeout)
}

/// Runs `executable` to completion, like ``runArpoTrain(_:environment:directory:timeout:)``.
func runProcess(_ executable: URL, _ arguments: [String], environment extra: [String: String] = [:], directory: URL? = nil, timeout: TimeInterval = 300) throws -> ProcessResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    for (key, value) in extra { environment[key] = value }
    process.environment = environment
    if let directory { process.currentDirectoryURL = directory }
    let output = Pipe(), error = Pipe()
    process.standardOutput = output
    process.standardError = error
    try process.run()
    let watchdog = DispatchWorkItem { if process.isRunning { process.terminate() } }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
    defer { watchdog.cancel() }
    // Drain both pipes while it runs so a chatty run cannot block on a full pipe.
    // The reader thread's bytes are read only after `group.wait()`, which orders the two.
    final class Collected: @unchecked Sendable { var data = Data() }
    let outputData = Collected()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        outputData.data = output.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let errorData = error.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, output: String(decoding: outputData.data, as: UTF8.self), error: String(decoding: errorData, as: UTF8.self))
}

/// A config small enough for a debug build: a 1-layer width-32 policy, a few SFT and RL steps.
func tinyConfig(output: URL, algorithm: String = "arpo", rlSteps: Int = 3, extra: String = "") -> String {
    """
    {
      "model": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 240, "value_head": \(algorithm == "ppo")},
      "env": {"difficulty": 1},
      "sft": {"steps": 4, "batch_size": 4, "demonstrations": 16, "learning_rate": 0.003},
      "rl": {"algorithm": "\(algorithm)", "steps": \(rlSteps), "prompts_per_step": 2, "group_size": 4,
             "branching": {"budget": 4, "initial_samples": 2, "entropy_window": 4}, "max_response_tokens": 100, "micro_batch_size": 4},
      "eval": {"every": 2, "episodes": 4, "sample_trajectories": 1},
      "run": {"seed": 7, "threads": 1, "output": "\(output.path)", "checkpoint_every": 2}\(extra)
    }
    """
}

/// A fresh temporary directory removed after the test.
func temporaryDirectory(_ testCase: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("arpo-trainer-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    testCase.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// The JSON objects of a .jsonl file.
func jsonLines(_ url: URL) throws -> [[String: Any]] {
    try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map {
        try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
    }
}

/// Metrics without the fields that measure time (which differ between any two runs).
func withoutTimings(_ records: [[String: Any]]) -> [NSDictionary] {
    records.map { record in
        NSDictionary(dictionary: record.filter { key, _ in !(key.contains("seconds") || key.contains("per_second")) })
    }
}
