import Foundation
import XCTest

/// `mpirun -np 2 arpo-train`: the real binary on two MPI ranks against itself and against one
/// process (docs/distributed.md). Skipped when Open MPI's `mpirun` is not installed
/// (scripts/bootstrap.sh installs it).
final class DataParallelTests: XCTestCase {
    /// `mpirun` on the PATH or in /usr/bin.
    func mpirun() throws -> URL {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init) + ["/usr/bin"]
        for directory in directories {
            let candidate = URL(fileURLWithPath: directory).appendingPathComponent("mpirun")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw XCTSkip("mpirun not found: install Open MPI (apt-get install openmpi-bin libopenmpi-dev, or scripts/bootstrap.sh) to run the data-parallel tests")
    }

    /// `arpo-train` with `arguments` on `ranks` MPI ranks (as root, two ranks per core allowed).
    func runRanks(_ ranks: Int, _ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 120) throws -> ProcessResult {
        try runProcess(try mpirun(), ["-np", "\(ranks)", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", arpoTrainBinary().path] + arguments, environment: environment, timeout: timeout)
    }

    func metrics(_ run: URL) throws -> [[String: Any]] { try jsonLines(run.appendingPathComponent("metrics.jsonl")) }

    func json(_ url: URL) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }

    /// One short job (4 SFT and 2 GRPO steps of a tiny policy) on one process and on two ranks:
    /// the same records up to the order of float additions, and the run says it ran on two
    /// ranks. Two ranks stopped after 5 steps (as SIGINT would) and resumed give the bits of the
    /// uninterrupted two-rank run. A resume on one process is refused, and a rank that fails
    /// ends the job with its rank and cause instead of leaving the other waiting.
    func testTwoRanksMatchOneProcessResumeBitForBitAndFailCleanly() throws {
        _ = try mpirun()
        let directory = try temporaryDirectory(self)
        let configURL = directory.appendingPathComponent("run.json")
        try tinyConfig(output: directory.appendingPathComponent("unused"), algorithm: "grpo", rlSteps: 2).write(to: configURL, atomically: true, encoding: .utf8)
        let single = directory.appendingPathComponent("single"), whole = directory.appendingPathComponent("whole"), stopped = directory.appendingPathComponent("stopped")

        let one = try runArpoTrain(["--config", configURL.path, "--output", single.path])
        XCTAssertEqual(one.status, 0, one.error)
        let two = try runRanks(2, ["--config", configURL.path, "--output", whole.path])
        XCTAssertEqual(two.status, 0, two.output + two.error)
        XCTAssertTrue(two.output.contains("on 2 MPI ranks"), two.output)
        XCTAssertEqual(two.output.components(separatedBy: "Held-out accuracy:").count, 2, "rank 0 alone prints: \(two.output)")

        // N = 2 against N = 1: the same records, numbers within float summation order.
        let singleRecords = try metrics(single), parallelRecords = try metrics(whole)
        XCTAssertEqual(singleRecords.count, parallelRecords.count)
        for (a, b) in zip(singleRecords, parallelRecords) {
            XCTAssertEqual(Set(a.keys), Set(b.keys))
            for (key, value) in a where !(key.contains("seconds") || key.contains("per_second")) {
                if let x = value as? Double, let y = b[key] as? Double {
                    XCTAssertEqual(x, y, accuracy: 1e-3 * max(1, abs(x)), "\(a["phase"]!) step \(a["step"]!): \(key)")
                } else {
                    XCTAssertEqual("\(value)", "\(b[key]!)", "\(a["phase"]!) step \(a["step"]!): \(key)")
                }
            }
        }
        XCTAssertEqual(try json(whole.appendingPathComponent("summary.json"))["world_size"] as? Int, 2)
        XCTAssertEqual(try json(single.appendingPathComponent("summary.json"))["world_size"] as? Int, 1)
        let latest = try String(contentsOf: whole.appendingPathComponent("checkpoints/latest"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(try json(whole.appendingPathComponent("checkpoints/\(latest)/state.json"))["world_size"] as? Int, 2)

        // N = 2 against itself, through a stop and a resume: bit-identical records.
        let interrupted = try runRanks(2, ["--config", configURL.path, "--output", stopped.path], environment: ["ARPO_STOP_AFTER_STEPS": "5"])
        XCTAssertEqual(interrupted.status, 130, interrupted.output + interrupted.error)
        let resumed = try runRanks(2, ["--config", configURL.path, "--output", stopped.path, "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.output + resumed.error)
        XCTAssertEqual(withoutTimings(try metrics(stopped)), withoutTimings(try metrics(whole)))
        XCTAssertEqual(
            try String(contentsOf: stopped.appendingPathComponent("eval.jsonl"), encoding: .utf8),
            try String(contentsOf: whole.appendingPathComponent("eval.jsonl"), encoding: .utf8))

        // A resume on one process of a two-rank run is refused, naming the rank count.
        let refused = try runArpoTrain(["--config", configURL.path, "--output", whole.path, "--resume"])
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.error.contains("mpirun -np 2"), refused.error)

        // Rank 0 cannot create its output directory (a path below a file) while rank 1 goes on
        // to its first collective.
        let blocker = directory.appendingPathComponent("file")
        try Data().write(to: blocker)
        let started = Date()
        let failed = try runRanks(2, ["--config", configURL.path, "--output", blocker.appendingPathComponent("run").path], timeout: 60)
        XCTAssertNotEqual(failed.status, 0)
        XCTAssertTrue(failed.error.contains("rank 0 of 2"), failed.error)
        XCTAssertLessThan(Date().timeIntervalSince(started), 50, "the job must end, not wait for rank 0")
    }

    /// SIGTERM to `mpirun` itself, as a scheduler or `kill <mpirun pid>` sends it (Ctrl-C sends
    /// SIGINT, which `mpirun` treats the same). Open MPI 4.1 sends each rank SIGCONT, then SIGTERM
    /// `odls_base_sigkill_timeout` seconds later and SIGKILL as long after that. The ranks stop
    /// at the same step, rank 0 saves that step's checkpoint (no periodic ones: checkpoint_every
    /// is above the run's length) and every rank exits before the SIGKILL, so `mpirun`, which
    /// waits in its second sleep only until its ranks are gone, ends before twice the timeout.
    /// `mpirun` itself exits with 1. `--resume` on two ranks runs the rest of the steps.
    func testSigtermToMpirunCheckpointsOnEveryRankAndResumes() throws {
        let mpirun = try self.mpirun()
        let directory = try temporaryDirectory(self)
        let configURL = directory.appendingPathComponent("run.json")
        try tinyConfig(output: directory.appendingPathComponent("unused"), algorithm: "grpo", rlSteps: 0).write(to: configURL, atomically: true, encoding: .utf8)
        let run = directory.appendingPathComponent("run")
        let steps = 200, sigkillTimeout = 4.0
        let arguments = ["--config", configURL.path, "--output", run.path, "--set", "sft.steps=\(steps)", "--set", "run.checkpoint_every=1000", "--set", "eval.every=1000"]

        let process = Process()
        process.executableURL = mpirun
        process.arguments = ["-np", "2", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "--mca", "odls_base_sigkill_timeout", "\(Int(sigkillTimeout))", arpoTrainBinary().path] + arguments
        let output = Pipe(), error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        // The ranks' output is a few lines, well within the pipes' buffers until mpirun exits.
        let metricsURL = run.appendingPathComponent("metrics.jsonl")
        let deadline = Date().addingTimeInterval(120)
        while process.isRunning, Date() < deadline, ((try? String(contentsOf: metricsURL, encoding: .utf8)) ?? "").isEmpty {
            Thread.sleep(forTimeInterval: 0.05)
        }
        XCTAssertTrue(process.isRunning, "the run ended before the first step was logged")
        let signalled = Date()
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        let seconds = Date().timeIntervalSince(signalled)
        let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            + String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)

        XCTAssertEqual(process.terminationStatus, 1, printed)
        XCTAssertLessThan(seconds, 2 * sigkillTimeout, "a rank waited for mpirun's SIGKILL: \(printed)")
        let stoppedAt = try metrics(run).count
        XCTAssertGreaterThan(stoppedAt, 0)
        XCTAssertLessThan(stoppedAt, steps, "the signal must arrive mid-run")
        let name = "step-" + String(format: "%06d", stoppedAt)
        XCTAssertTrue(printed.contains("Received SIGTERM: saved checkpoint \(name)"), printed)
        let checkpoints = run.appendingPathComponent("checkpoints")
        XCTAssertEqual(try String(contentsOf: checkpoints.appendingPathComponent("latest"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), name)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: checkpoints.path).sorted(), ["latest", name], "only the stop step's checkpoint, whole")
        let state = try json(checkpoints.appendingPathComponent("\(name)/state.json"))
        XCTAssertEqual(state["sft_step"] as? Int, stoppedAt)
        XCTAssertEqual(state["world_size"] as? Int, 2)

        let resumed = try runRanks(2, arguments + ["--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.output + resumed.error)
        XCTAssertTrue(resumed.output.contains("from \(name)"), resumed.output)
        XCTAssertEqual(try metrics(run).map { $0["step"] as? Int }, Array(1...steps).map { Optional($0) })
    }
}
