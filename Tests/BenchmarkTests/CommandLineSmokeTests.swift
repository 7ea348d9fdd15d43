import Foundation
import Tensor
import XCTest

/// The real `arpo-bench` binary, end to end, at the hidden `tiny` size (a width-32 policy and a
/// few tokens) so that it runs in seconds in a debug build. These tests check that every
/// benchmark runs and reports every field; they time nothing and assert no speed: the targets
/// live in the harness.
final class CommandLineSmokeTests: XCTestCase {
    /// Keys every entry of `results` has.
    static let commonKeys = ["benchmark", "config", "threads", "unit", "median", "min", "max", "peak_rss_mb", "other_load"]

    func testAllAtTinySizeWritesEveryFigure() throws {
        let directory = try temporaryDirectory()
        let json = directory.appendingPathComponent("bench.json")
        let run = try runArpoBench(["all", "--config", "tiny", "--threads", "1", "--repetitions", "1", "--memory-check", "--steps", "12", "--json", json.path])
        XCTAssertEqual(run.status, 0, "stderr: \(run.error)")
        XCTAssertTrue(run.output.contains("target"), "the table has a target column:\n\(run.output)")
        XCTAssertTrue(run.output.contains("[cold start]"), "the rollout policy is cold-started and the output says how long it took:\n\(run.output)")
        XCTAssertTrue(run.output.contains("vs PyTorch: empty") && run.output.contains("--pytorch-python"), "without a Python with torch the output says how to get the PyTorch column:\n\(run.output)")

        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any])
        XCTAssertNil(report["pytorch"], "no PyTorch record without an interpreter")
        let machine = try XCTUnwrap(report["machine"] as? [String: Any])
        for key in ["cpu_model", "cores", "openblas_core", "openblas_version", "openblas_config"] {
            XCTAssertNotNil(machine[key], "machine.\(key)")
        }
        for key in ["git_commit", "build_configuration", "load_average_start", "load_average_end", "peak_rss_method", "date"] {
            XCTAssertNotNil(report[key], key)
        }
        XCTAssertEqual(report["peak_rss_method"] as? String, "child-process")
        let peaks = try XCTUnwrap(report["sgemm_peak"] as? [[String: Any]])
        XCTAssertEqual(peaks.count, 1)
        XCTAssertEqual(peaks.first?["threads"] as? Int, 1)
        XCTAssertNotNil(peaks.first?["other_load"] as? Double)
        XCTAssertGreaterThan(try XCTUnwrap((peaks.first?["gflops"] as? [String: Any])?["median"] as? Double), 0)
        let coldStart = try XCTUnwrap(report["cold_start"] as? [[String: Any]])
        XCTAssertEqual(coldStart.count, 1)
        for key in ["steps", "training_seconds", "demonstration_seconds", "tokens_per_second", "final_loss"] {
            XCTAssertNotNil(coldStart.first?[key], "cold_start.\(key)")
        }

        let results = try XCTUnwrap(report["results"] as? [[String: Any]])
        let byBenchmark = Dictionary(grouping: results) { $0["benchmark"] as? String ?? "" }
        XCTAssertEqual(Set(byBenchmark.keys), ["gemm", "forward", "train", "train-memory", "decode", "rollout-trajectory", "rollout-arpo", "rl-step-grpo", "rl-step-arpo", "sft-step"])
        for entry in results {
            let name = entry["benchmark"] as? String ?? "?"
            for key in Self.commonKeys { XCTAssertNotNil(entry[key], "\(name).\(key)") }
            // No stored PyTorch figure: without an interpreter the column is empty.
            XCTAssertNil(entry["pytorch_eager"], "\(name).pytorch_eager")
            XCTAssertNil(entry["pytorch_compile"], "\(name).pytorch_compile")
            XCTAssertEqual(entry["config"] as? String, name.hasPrefix("rl-step") || name == "sft-step" ? "multiturn-tiny" : "tiny", "\(name).config")
            XCTAssertEqual(entry["threads"] as? Int, 1, "\(name).threads")
            let median = try XCTUnwrap(entry["median"] as? Double), low = try XCTUnwrap(entry["min"] as? Double), high = try XCTUnwrap(entry["max"] as? Double)
            XCTAssertTrue(low <= median && median <= high && low > 0, "\(name): min \(low) ≤ median \(median) ≤ max \(high), positive")
            XCTAssertGreaterThan(try XCTUnwrap(entry["peak_rss_mb"] as? Double), 0, "\(name).peak_rss_mb")
            if name != "train-memory" && !name.hasPrefix("rl-step") {
                XCTAssertGreaterThan(try XCTUnwrap(entry["fraction_of_peak"] as? Double, "\(name).fraction_of_peak"), 0)
                // The peak beside the figure, probed around it: the fraction divides by it.
                let peak = try XCTUnwrap(entry["sgemm_peak_gflops"] as? Double, "\(name).sgemm_peak_gflops")
                let rate = try XCTUnwrap(entry["model_gflops"] as? Double, "\(name).model_gflops")
                XCTAssertEqual(entry["fraction_of_peak"] as? Double ?? 0, rate / peak, accuracy: 1e-9, "\(name): fraction_of_peak = model_gflops / sgemm_peak_gflops")
            }
        }
        for entry in byBenchmark["gemm"]! {
            XCTAssertEqual((entry["shape"] as? [Int])?.count, 3)
            XCTAssertNotNil(entry["path"])
        }
        // The tensor path of every shape carries the ≤ 5% overhead target.
        XCTAssertEqual(byBenchmark["gemm"]!.filter { $0["path"] as? String == "tensor" && $0["meets_target"] is Bool && $0["target"] is String }.count, 5)
        for name in ["rollout-trajectory", "rollout-arpo"] {
            let entry = try XCTUnwrap(byBenchmark[name]?.first)
            XCTAssertNotNil(entry["tool_calls_per_trajectory"] as? Double, "\(name).tool_calls_per_trajectory")
            XCTAssertGreaterThan(entry["policy_calls_per_repetition"] as? Double ?? 0, 0, "\(name).policy_calls_per_repetition")
            XCTAssertGreaterThanOrEqual(entry["rows_per_policy_call"] as? Double ?? 0, 1, "\(name).rows_per_policy_call")
            XCTAssertEqual(entry["unit"] as? String, "tokens/s")
        }
        for (name, phases) in [("train", ["forward", "backward", "optimizer"]), ("decode", ["prefill", "extend", "sample"])] {
            let fractions = try XCTUnwrap(byBenchmark[name]?.first?["phase_fractions"] as? [String: Double], "\(name).phase_fractions")
            XCTAssertEqual(Set(fractions.keys), Set(phases))
            XCTAssertEqual(fractions.values.reduce(0, +), 1, accuracy: 1e-9)
        }
        // The train step carries its GEMMs' bound: the recorded calls replayed alone.
        let train = try XCTUnwrap(byBenchmark["train"]?.first)
        XCTAssertGreaterThan(try XCTUnwrap(train["gemm_bound_tokens_per_s"] as? Double, "train.gemm_bound_tokens_per_s"), 0)
        XCTAssertGreaterThan(try XCTUnwrap(train["gemm_share_of_step"] as? Double, "train.gemm_share_of_step"), 0)
        XCTAssertGreaterThan(try XCTUnwrap(train["gemm_calls_per_step"] as? Int, "train.gemm_calls_per_step"), 0)
        XCTAssertGreaterThan(try XCTUnwrap(train["gemm_gflops"] as? Double, "train.gemm_gflops"), 0)
        // ... and the same calls timed one by one, by shape, most time first: every call counted once.
        let shapes = try XCTUnwrap(train["gemm_shapes"] as? [[String: Any]], "train.gemm_shapes")
        XCTAssertEqual(shapes.reduce(0) { $0 + ($1["calls_per_step"] as? Int ?? 0) }, train["gemm_calls_per_step"] as? Int)
        XCTAssertEqual(shapes.reduce(0) { $0 + ($1["share_of_gemm_time"] as? Double ?? 0) }, 1, accuracy: 1e-9)
        let milliseconds = shapes.map { $0["ms_per_step"] as? Double ?? 0 }
        XCTAssertEqual(milliseconds, milliseconds.sorted(by: >))
        XCTAssertEqual(Set(shapes.map { "\($0["transpose"] ?? "")\($0["m"] ?? "")×\($0["n"] ?? "")×\($0["k"] ?? "")\($0["accumulates"] ?? "")\($0["inside_kernels"] ?? "")" }).count, shapes.count, "one entry per shape")
        for shape in shapes {
            XCTAssertTrue(["NN", "NT", "TN", "TT"].contains(shape["transpose"] as? String ?? ""), "\(shape)")
            for key in ["m", "n", "k", "calls_per_step"] { XCTAssertGreaterThan(shape[key] as? Int ?? 0, 0, "\(key) in \(shape)") }
            for key in ["ms_per_step", "gflops"] { XCTAssertGreaterThan(shape[key] as? Double ?? 0, 0, "\(key) in \(shape)") }
            XCTAssertNotNil(shape["accumulates"] as? Bool)
            XCTAssertNotNil(shape["inside_kernels"] as? Bool)
            XCTAssertNotNil(shape["gemm"] as? String)
        }
        let arpo = try XCTUnwrap(byBenchmark["rollout-arpo"]?.first)
        XCTAssertNotNil(arpo["target"] as? String)
        XCTAssertNotNil(arpo["meets_target"] as? Bool)
        let memory = try XCTUnwrap(byBenchmark["train-memory"]?.first)
        XCTAssertEqual(memory["steps"] as? Int, 12)
        XCTAssertNotNil(memory["rss_after_step_10_mb"] as? Double)
        XCTAssertNotNil(memory["rss_after_last_step_mb"] as? Double)
        XCTAssertNotNil(memory["meets_target"] as? Bool)
    }

    /// `--in-process` measures everything in one process and resets the peak with
    /// /proc/self/clear_refs between benchmarks.
    func testInProcessRunResetsThePeakBetweenBenchmarks() throws {
        let directory = try temporaryDirectory()
        let json = directory.appendingPathComponent("bench.json")
        let run = try runArpoBench(["forward", "--config", "tiny", "--threads", "1", "--repetitions", "1", "--in-process", "--json", json.path])
        XCTAssertEqual(run.status, 0, "stderr: \(run.error)")
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any])
        XCTAssertEqual(report["peak_rss_method"] as? String, "clear_refs")
        XCTAssertEqual((report["results"] as? [[String: Any]])?.first?["benchmark"] as? String, "forward")
    }

    /// `--matmul-precision` measures forward and train once per precision and records the
    /// precision in force in each entry; the float32 train target and PyTorch ratio are not set
    /// beside a reduced-precision figure.
    func testMatmulPrecisionsAreMeasuredAndRecordedApart() throws {
        let (run, results) = try measuredResults(["train", "--config", "tiny", "--threads", "1", "--repetitions", "1", "--in-process", "--matmul-precision", "highest", "--matmul-precision", "high"])
        XCTAssertEqual(results.map { $0["benchmark"] as? String }, ["train", "train"])
        let expectedHigh = BLASRuntime.hasAMX ? "high" : "highest"
        XCTAssertEqual(results.map { $0["matmul_precision"] as? String }, ["highest", expectedHigh])
        for result in results {
            XCTAssertNotNil(result["median"] as? Double)
        }
        XCTAssertTrue(run.output.contains("2×16 matmul \(expectedHigh)") || !BLASRuntime.hasAMX, run.output)
        XCTAssertNil(results[1]["pytorch_eager"], "a reduced-precision figure set beside PyTorch's float32 one")
    }

    /// `--float32-gemm` measures the float32 figures once per kernel and records the kernel in
    /// force in each entry of its case, tensor and BLAS paths alike, and the gemm overhead target
    /// compares the tensor path with the BLAS path of its own case.
    func testFloat32KernelsAreMeasuredAndRecordedApart() throws {
        let (run, results) = try measuredResults(["train", "--config", "tiny", "--threads", "1", "--repetitions", "1", "--in-process", "--float32-gemm", "blocked", "--float32-gemm", "openblas"])
        XCTAssertEqual(results.map { $0["benchmark"] as? String }, ["train", "train"])
        let expectedBlocked = BLASRuntime.usesBlockedSGEMM ? "blocked" : "openblas"
        XCTAssertEqual(results.map { $0["float32_gemm"] as? String }, [expectedBlocked, "openblas"])
        XCTAssertTrue(run.output.contains("2×16 openblas"), run.output)
        XCTAssertTrue(run.output.contains("train · tiny · 1 thread · openblas sgemm"), run.output)

        let (_, gemmResults) = try measuredResults(["gemm", "--shape", "64,64,64", "--threads", "1", "--repetitions", "1", "--in-process", "--float32-gemm", "openblas"])
        XCTAssertEqual(gemmResults.map { $0["path"] as? String }, ["tensor", "blas"])
        XCTAssertEqual(gemmResults.map { $0["float32_gemm"] as? String }, ["openblas", "openblas"])
        XCTAssertNotNil(gemmResults[0]["target"], "the tensor path's overhead is set against the BLAS path of its own case")
    }

    /// `rl-step` runs whole RL steps of GRPO and ARPO on the run config's model (shrunk by
    /// `--config tiny`) and splits each step's time into its parts; the update's tokens/s is set
    /// against the supervised step's, measured in the same rounds.
    func testRLStepSplitsTheStepIntoItsParts() throws {
        let (run, results) = try measuredResults(["rl-step", "--config", "tiny", "--threads", "1", "--repetitions", "2", "--in-process"])
        XCTAssertEqual(results.map { $0["benchmark"] as? String }, ["rl-step-grpo", "rl-step-arpo", "sft-step"], run.output)
        let supervised = try XCTUnwrap(results[2]["median"] as? Double)
        XCTAssertEqual(results[2]["unit"] as? String, "tokens/s")
        XCTAssertGreaterThan(supervised, 0)
        for entry in results.prefix(2) {
            let name = entry["benchmark"] as? String ?? "?"
            XCTAssertEqual(entry["unit"] as? String, "s/step", name)
            XCTAssertEqual(entry["repetitions"] as? Int, 2, name)
            let phases = try XCTUnwrap(entry["phase_seconds"] as? [String: Double], "\(name).phase_seconds")
            XCTAssertEqual(Set(phases.keys), ["rollout", "reference", "advantages", "forward_backward", "optimizer"], name)
            XCTAssertGreaterThan(phases["rollout"] ?? 0, 0, name)
            XCTAssertGreaterThan(phases["forward_backward"] ?? 0, 0, name)
            XCTAssertTrue(phases.values.allSatisfy { $0 >= 0 }, "\(name): \(phases)")
            XCTAssertGreaterThan(entry["update_tokens_per_s"] as? Double ?? 0, 0, name)
            // 2 prompts × 2 trajectories, each at least its prompt's tokens.
            XCTAssertGreaterThan(entry["update_tokens_per_step"] as? Double ?? 0, 4, name)
            let padding = try XCTUnwrap(entry["padding_fraction"] as? Double, "\(name).padding_fraction")
            XCTAssertTrue(padding >= 0 && padding < 1, "\(name): padding \(padding)")
            XCTAssertEqual(entry["supervised_tokens_per_s"] as? Double, supervised, name)
            XCTAssertEqual(entry["trajectories_per_repetition"] as? Double, 4, name)
            XCTAssertNotNil(entry["meets_target"] as? Bool, "\(name): the update-over-supervised target")
            XCTAssertTrue((entry["target"] as? String ?? "").contains("supervised"), name)
        }
        XCTAssertTrue(run.output.contains("forward_backward"), run.output)
    }

    /// `--rl-soak-steps N` (here alone, through `all --only rl-memory`) runs N RL steps of the
    /// config's algorithm and records the resident size after step 10, every few steps and after
    /// the last, with its growth per 100 steps and the target on it.
    func testRLMemorySoakRecordsResidentSizeOverTheSteps() throws {
        let (run, results) = try measuredResults(["all", "--only", "rl-memory", "--rl-soak-steps", "14", "--config", "tiny", "--threads", "1", "--in-process"])
        XCTAssertEqual(results.map { $0["benchmark"] as? String }, ["rl-memory"], run.output)
        let soak = results[0]
        XCTAssertEqual(soak["steps"] as? Int, 14)
        XCTAssertEqual(soak["unit"] as? String, "MB")
        let samples = try XCTUnwrap(soak["rss_samples"] as? [[String: Any]], "rl-memory.rss_samples")
        XCTAssertEqual(samples.map { $0["step"] as? Int }, [10, 11, 12, 13, 14])
        for sample in samples { XCTAssertGreaterThan(sample["mb"] as? Double ?? 0, 0, "\(sample)") }
        XCTAssertEqual(soak["rss_after_step_10_mb"] as? Double, samples.first?["mb"] as? Double)
        XCTAssertEqual(soak["rss_after_last_step_mb"] as? Double, samples.last?["mb"] as? Double)
        XCTAssertNotNil(soak["rss_growth_mb_per_100_steps"] as? Double)
        XCTAssertNotNil(soak["meets_target"] as? Bool)
        XCTAssertTrue((soak["target"] as? String ?? "").contains("per 100 RL steps"), "\(soak)")
        XCTAssertTrue(run.output.contains("[rl-memory] step 14/14"), run.output)
    }

    /// The PyTorch columns come from the interpreter the run is given, run around the figure
    /// (once before, once after): here a stand-in that prints fixed figures, so the test checks
    /// the plumbing, not PyTorch. A failing interpreter leaves the columns empty with its error.
    func testPyTorchColumnsComeFromTheGivenInterpreter() throws {
        let directory = try temporaryDirectory()
        let arguments = directory.appendingPathComponent("arguments.txt")
        let stub = directory.appendingPathComponent("python")
        try """
            #!/bin/sh
            echo "$@" >> \(arguments.path)
            echo 'progress line'
            echo '{"torch_version": "stand-in", "threads": 1, "benchmark": "train", "modes": {"eager": {"tokens_per_s": [100, 200, 300]}, "compile": {"error": "stand-in: no compiler"}}}'
            """.write(to: stub, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: stub.path)

        for viaEnvironment in [false, true] {
            let json = directory.appendingPathComponent("bench-\(viaEnvironment).json")
            var command = ["train", "--config", "tiny", "--threads", "1", "--repetitions", "1", "--in-process", "--json", json.path]
            if !viaEnvironment { command += ["--pytorch-python", stub.path] }
            let run = try runArpoBench(command, environment: viaEnvironment ? ["ARPO_PYTORCH_PYTHON": stub.path] : [:])
            XCTAssertEqual(run.status, 0, "stderr: \(run.error)")
            let document = try report(json)
            let train = try XCTUnwrap((document["results"] as? [[String: Any]])?.first)
            XCTAssertEqual(train["pytorch_eager"] as? Double, 200, "the median over both runs' rounds")
            XCTAssertEqual(train["pytorch_rounds"] as? Int, 6)
            XCTAssertNil(train["pytorch_compile"])
            XCTAssertEqual(train["pytorch_compile_error"] as? String, "stand-in: no compiler")
            XCTAssertEqual((document["pytorch"] as? [String: Any])?["torch_version"] as? String, "stand-in")
            XCTAssertTrue(run.output.contains("PyTorch eager 200 tokens/s"), run.output)
        }
        let calls = try String(contentsOf: arguments, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(calls.count, 4, "once before and once after the figure, in each run")
        for call in calls {
            XCTAssertTrue(call.hasSuffix("--threads 1 --repetitions 1") && call.contains("pytorch_bench.py --benchmark train"), String(call))
            XCTAssertTrue(call.contains("\"hidden_size\":32"), "the tiny config's model: \(call)")
        }

        let failing = directory.appendingPathComponent("failing-python")
        try "#!/bin/sh\necho 'ModuleNotFoundError: No module named torch' >&2\nexit 1\n".write(to: failing, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: failing.path)
        let (run, results) = try measuredResults(["train", "--config", "tiny", "--threads", "1", "--repetitions", "1", "--in-process", "--pytorch-python", failing.path])
        XCTAssertNil(results[0]["pytorch_eager"])
        XCTAssertTrue((results[0]["pytorch_error"] as? String ?? "").contains("No module named torch"), "\(results[0])")
        XCTAssertTrue(run.output.contains("No module named torch"), run.output)
    }

    /// `all --only` keeps the benchmarks named, in one table and one JSON.
    func testAllOnlyRunsTheNamedBenchmarks() throws {
        let (_, results) = try measuredResults(["all", "--only", "decode", "--only", "forward", "--config", "tiny", "--threads", "1", "--repetitions", "1", "--in-process"])
        XCTAssertEqual(results.map { $0["benchmark"] as? String }, ["forward", "decode"])
    }

    func testInvalidOptionsFailBeforeMeasuring() throws {
        for (arguments, message) in [
            (["train", "--config", "huge"], "huge"),
            (["train", "--memory-check", "--steps", "5"], "--steps must be more than 10"),
            (["decode", "--threads", "0"], "--threads must be at least 1"),
            (["rollout", "--checkpoint", "/nonexistent/policy"], "is not a directory"),
            (["gemm", "--shape", "4,4"], "three positive integers"),
            (["train", "--matmul-precision", "low"], "'highest', 'high' or 'medium'"),
            (["train", "--float32-gemm", "mkl"], "'blocked' and 'openblas'"),
            (["rl-step", "--rl-config", "/nonexistent/run.json"], "does not exist"),
            (["all", "--only", "everything"], "everything"),
            (["rl-step", "--rl-checkpoint", "/nonexistent/policy"], "is not a directory"),
            (["rl-step", "--rl-soak-steps", "10"], "--rl-soak-steps must be more than 10"),
            (["all", "--only", "rl-memory"], "--only rl-memory needs --rl-soak-steps N"),
        ] {
            let run = try runArpoBench(arguments)
            XCTAssertNotEqual(run.status, 0, "\(arguments) should fail")
            XCTAssertTrue(run.error.contains(message), "\(arguments): expected '\(message)' in stderr:\n\(run.error)")
            XCTAssertFalse(run.output.contains("raw sgemm peak"), "\(arguments) measured before validating")
        }
    }

    // MARK: - Support

    /// The `arpo-bench` binary built beside the test bundle.
    func arpoBenchBinary() -> URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("arpo-bench")
    }

    /// Bytes read on another queue; the group's wait orders the write before the read.
    final class DataBox: @unchecked Sendable {
        var data = Data()
    }

    struct ProcessResult {
        var status: Int32
        var output: String
        var error: String
    }

    /// Runs the real binary to completion, keeping OpenBLAS's own kernel choice (no re-exec).
    /// `environment` adds to the test's own, less ARPO_PYTORCH_PYTHON (a test names its PyTorch).
    func runArpoBench(_ arguments: [String], environment extra: [String: String] = [:]) throws -> ProcessResult {
        let binary = arpoBenchBinary()
        // The test target depends on arpo-bench, so the build puts it here.
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: binary.path), "\(binary.path) is not built")
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["ARPO_KEEP_BLAS_CORE"] = "1"
        environment["ARPO_PYTORCH_PYTHON"] = nil
        environment.merge(extra) { $1 }
        process.environment = environment
        let output = Pipe(), error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        // Drain both pipes while it runs so a chatty run cannot block on a full pipe.
        let outputData = DataBox()
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

    /// Runs arpo-bench with `arguments` and `--json`, requires it to succeed, and returns the
    /// run and the JSON's `results`.
    func measuredResults(_ arguments: [String]) throws -> (run: ProcessResult, results: [[String: Any]]) {
        let json = try temporaryDirectory().appendingPathComponent("bench.json")
        let run = try runArpoBench(arguments + ["--json", json.path])
        XCTAssertEqual(run.status, 0, "stderr: \(run.error)")
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any])
        return (run, try XCTUnwrap(report["results"] as? [[String: Any]]))
    }

    /// The JSON document at `url`.
    func report(_ url: URL) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("arpo-bench-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }
}
