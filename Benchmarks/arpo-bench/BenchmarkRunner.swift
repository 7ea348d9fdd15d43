import Foundation
import Tensor

/// One unit of measurement: a benchmark on one reference size at one thread count. The parent
/// hands it to a child process as JSON (`run-case`), so that each peak resident size (VmHWM,
/// process-wide) belongs to one benchmark.
struct BenchmarkCase: Codable {
    enum Kind: String, Codable {
        case gemm, forward, train, decode, rollout
        case trainMemory = "train-memory"
        case rlStep = "rl-step"
        case rlMemory = "rl-memory"
        case coldStart = "cold-start"

        /// Whether the case's figures come from the tensor API's float32 products, whose kernel
        /// `--float32-gemm` selects.
        var runsFloat32GEMMs: Bool { [.gemm, .forward, .train, .trainMemory].contains(self) }
    }

    var kind: Kind
    var size: ReferenceSize
    var threads: Int
    var repetitions: Int
    /// forward, train and train-memory: float32 matmul precision (nil: highest).
    var matmulPrecision: MatmulPrecision? = nil
    /// gemm, forward, train and train-memory: the kernel of float32 products (nil: the default).
    var float32GEMM: Float32GEMMKernel? = nil
    /// gemm: explicit (M, N, K) shapes (nil: the size's own).
    var shapes: [[Int]]?
    /// train-memory: steps to run; rl-step and rl-memory: cold-start steps (nil: the default).
    var steps: Int?
    /// rollout, rl-step and rl-memory: the policy to load; cold-start: where to save it.
    var checkpoint: String?
    /// rl-step and rl-memory: the run config whose model and RL settings they run.
    var trainingConfig: String?
    /// rl-memory: RL steps of the soak.
    var soakSteps: Int?
    /// rollout: how the policy came about, for the report.
    var policyDescription: String?

    var title: String {
        if kind == .rlStep || kind == .rlMemory, let trainingConfig {
            return "\(kind.rawValue) · \(trainingConfig)\(size == .tiny ? " (tiny)" : "") · \(threads) thread\(threads == 1 ? "" : "s")"
        }
        let precision = matmulPrecision.map { $0 == .highest ? "" : " · matmul \($0.rawValue)" } ?? ""
        let kernel = float32GEMM.map { " · \($0.rawValue) sgemm" } ?? ""
        return "\(kind.rawValue) · \(size.rawValue) · \(threads) thread\(threads == 1 ? "" : "s")\(precision)\(kernel)"
    }
}

/// What a case produced.
struct CaseOutput: Codable {
    var results: [BenchmarkResult] = []
    var coldStart: ColdStartRecord?
}

extension BenchmarkCase {
    /// Measures this case in the current process.
    func run() throws -> CaseOutput {
        ComputeSettings(threads: threads, matmulPrecision: matmulPrecision ?? .highest, float32GEMM: float32GEMM == .openblas ? .openblas : .blocked).apply()
        var output = try measure()
        if matmulPrecision != nil {
            for index in output.results.indices { output.results[index].matmulPrecision = BLASRuntime.effectiveMatmulPrecision }
        }
        if kind.runsFloat32GEMMs && BLASRuntime.effectiveMatmulPrecision == .highest {
            for index in output.results.indices {
                output.results[index].float32GEMM = BLASRuntime.usesBlockedSGEMM ? .blocked : .openblas
            }
        }
        return output
    }

    private func measure() throws -> CaseOutput {
        switch kind {
        case .gemm:
            return CaseOutput(results: GemmCommand.measure(shapes: shapes ?? GemmCommand.shapes(for: size), config: shapes == nil ? size.rawValue : "custom", threads: threads, repetitions: repetitions))
        case .forward:
            return CaseOutput(results: [ModelBenchmarks.forward(size, threads: threads, repetitions: repetitions)])
        case .train:
            return CaseOutput(results: [try ModelBenchmarks.train(size, threads: threads, repetitions: repetitions)])
        case .trainMemory:
            return CaseOutput(results: [try ModelBenchmarks.trainMemory(size, threads: threads, steps: steps ?? 1000)])
        case .decode:
            return CaseOutput(results: [ModelBenchmarks.decode(size, threads: threads, repetitions: repetitions)])
        case .rollout:
            guard let checkpoint else { throw BenchmarkError("rollout case without a policy checkpoint") }
            return CaseOutput(results: try RolloutBenchmark.measure(
                checkpoint: URL(fileURLWithPath: checkpoint), size: size, threads: threads, repetitions: repetitions,
                policyDescription: policyDescription ?? checkpoint))
        case .rlStep:
            guard let trainingConfig else { throw BenchmarkError("rl-step case without a run config") }
            return CaseOutput(results: try RLStepBenchmark.measure(
                configPath: trainingConfig, size: size, threads: threads, repetitions: repetitions, checkpoint: checkpoint, coldStartSteps: steps))
        case .rlMemory:
            guard let trainingConfig, let soakSteps else { throw BenchmarkError("rl-memory case without a run config or a step count") }
            return CaseOutput(results: try RLMemoryBenchmark.measure(
                configPath: trainingConfig, size: size, threads: threads, steps: soakSteps, checkpoint: checkpoint, coldStartSteps: steps))
        case .coldStart:
            guard let checkpoint else { throw BenchmarkError("cold-start case without an output directory") }
            let record = try RolloutBenchmark.coldStart(size, threads: threads, steps: steps ?? size.coldStart.steps, directory: URL(fileURLWithPath: checkpoint))
            return CaseOutput(coldStart: record)
        }
    }
}

/// Runs a list of cases, each in a child process of the harness (or all in this one with
/// `--in-process`), then adds peak fractions and targets, prints the table and writes the JSON.
struct BenchmarkRunner {
    let options: CommonOptions
    let coldStartSteps: Int?
    /// Where cold-started policies are kept (`DIR/<config>`); nil deletes them after the run.
    var keepColdStart: String? = nil

    func run(_ cases: [BenchmarkCase]) throws {
        let loadAtStart = loadAverages()
        print("arpo-bench on \(BLASRuntime.cpuModel), \(ProcessInfo.processInfo.activeProcessorCount) cores, OpenBLAS core \(BLASRuntime.coreName)")
        print("load average at start: \(loadAtStart.map { String(format: "%.2f", $0) }.joined(separator: " "))")
        #if DEBUG
        print("warning: debug build; figures only mean something from `swift run -c release arpo-bench`")
        #endif
        let peakMethod: String
        if options.inProcess {
            guard resetPeakResidentMemory() else {
                throw BenchmarkError("--in-process needs /proc/self/clear_refs to reset the peak resident size between benchmarks; run without it")
            }
            peakMethod = "clear_refs"
        } else {
            peakMethod = "child-process"
        }

        // The raw sgemm peak, once per thread count: the best of at least 10 rounds. On this VM the
        // same product runs at two speeds (about 90 and 120 GFLOPS on one core) as the host
        // shifts, so the median would make the peak a coin toss.
        let peakSize = cases.map(\.size.peakSize).max() ?? 2048
        var peaks: [PeakRecord] = []
        for threads in Set(cases.map(\.threads)).sorted() {
            waitForIdleMachine()
            let account = CPUAccount.now()
            let peak = GemmCommand.peak(size: peakSize, threads: threads, repetitions: Swift.max(options.repetitions, 10))
            let otherLoad = account.otherLoad()
            print(String(format: "raw sgemm peak, %d³, %d thread%@: %.1f GFLOPS (median %.1f, other load %.2f)", peakSize, threads, threads == 1 ? "" : "s", peak.max, peak.median, otherLoad))
            peaks.append(PeakRecord(threads: threads, size: peakSize, gflops: peak, otherLoad: otherLoad))
        }

        // Rollouts without a checkpoint need a cold-started policy per size, made once, at the
        // largest thread count the rollouts use.
        var coldStarts: [ColdStartRecord] = []
        var policies: [ReferenceSize: BenchmarkCase] = [:]
        defer {
            if keepColdStart == nil { for policy in policies.values { try? FileManager.default.removeItem(atPath: policy.checkpoint!) } }
        }
        let coldStartThreads = cases.filter { $0.kind == .rollout }.map(\.threads).max() ?? 1

        let pytorch = PyTorchReference.from(options)
        var pytorchRecord = pytorch.map { PyTorchRecord(python: $0.python, script: $0.script) }
        if let pytorch { print("PyTorch: \(pytorch.python) \(pytorch.script), just before and just after each train and decode figure") }

        var results: [BenchmarkResult] = []
        for (index, var current) in cases.enumerated() {
            if current.kind == .rollout && current.checkpoint == nil {
                if policies[current.size] == nil {
                    let (policy, record) = try coldStart(current.size, threads: coldStartThreads)
                    policies[current.size] = policy
                    coldStarts.append(record)
                }
                current.checkpoint = policies[current.size]!.checkpoint
                current.policyDescription = "cold start, \(policies[current.size]!.steps!) SFT steps"
            }
            print("[\(index + 1)/\(cases.count)] \(current.title)…")
            // PyTorch's run of the same workload just before and just after this one's, so that
            // both see the machine as it was around the figure.
            let comparesToPyTorch = pytorch != nil && PyTorchReference.applies(to: current)
            var pytorchRuns: [PyTorchReference.Output] = []
            var pytorchFailure: String?
            func measurePyTorch() {
                guard comparesToPyTorch, let pytorch, pytorchFailure == nil else { return }
                waitForIdleMachine()
                do { pytorchRuns.append(try pytorch.run(current)) } catch { pytorchFailure = "\(error)" }
            }
            measurePyTorch()
            var output = try execute(current, probingPeakAt: peakSize)
            measurePyTorch()
            if comparesToPyTorch {
                if let pytorchFailure {
                    print("    PyTorch: \(pytorchFailure)")
                    for position in output.results.indices { output.results[position].pytorchError = pytorchFailure }
                } else {
                    PyTorchReference.apply(pytorchRuns, to: &output.results)
                    pytorchRecord?.torchVersion = pytorchRuns.first?.torchVersion
                }
            }
            for result in output.results { print("    \(BenchmarkTable.headline(result))") }
            results += output.results
        }

        for position in results.indices {
            guard let peak = results[position].sgemmPeakGFLOPS, peak > 0 else { continue }
            if let rate = results[position].modelGFLOPS { results[position].fractionOfPeak = rate / peak }
        }
        PerformanceTargets.apply(to: &results)
        print("")
        BenchmarkTable.print(results, peaks: peaks)
        if pytorch == nil && cases.contains(where: PyTorchReference.applies) { print(PyTorchReference.howToMeasure) }
        let report = BenchmarkReport(results: results, sgemmPeak: peaks, coldStart: coldStarts, pytorch: pytorchRecord, loadAverageStart: loadAtStart, peakRssMethod: peakMethod)
        print("load average at end: \(report.loadAverageEnd.map { String(format: "%.2f", $0) }.joined(separator: " "))")
        if let path = options.json {
            try report.write(to: path)
            print("wrote \(path)")
        }
    }

    /// Cold-starts a `size` policy into a temporary directory; returns the cold-start case (its
    /// `checkpoint` is the directory) and what it reported.
    func coldStart(_ size: ReferenceSize, threads: Int) throws -> (BenchmarkCase, ColdStartRecord) {
        let directory = keepColdStart.map { URL(fileURLWithPath: $0).appendingPathComponent(size.rawValue) }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("arpo-bench-policy-\(size.rawValue)-\(UUID().uuidString)")
        let steps = coldStartSteps ?? size.coldStart.steps
        let coldStart = BenchmarkCase(kind: .coldStart, size: size, threads: threads, repetitions: 1, steps: steps, checkpoint: directory.path)
        print("[cold start] \(size.rawValue) policy: \(steps) SFT steps on expert demonstrations, \(threads) thread\(threads == 1 ? "" : "s")…")
        guard let record = try execute(coldStart).coldStart else { throw BenchmarkError("the cold start reported nothing") }
        if keepColdStart != nil { print("[cold start] kept in \(directory.path) (reuse with --checkpoint)") }
        print(String(format: "[cold start] %d demonstrations in %.1f s, %d steps in %.1f s (%.0f tokens/s), final loss %.3f, other load %.2f",
                     record.demonstrations, record.demonstrationSeconds, record.steps, record.trainingSeconds, record.tokensPerSecond, record.finalLoss, record.otherLoad ?? 0))
        return (coldStart, record)
    }

    /// Runs `benchmarkCase` here (resetting the peak first) or in a child process, after waiting
    /// for the machine to idle if asked, and notes the CPU other processes took meanwhile. With
    /// `peakSize`, probes the raw sgemm peak at the case's thread count just before and just
    /// after it (`sgemm_peak_gflops`, the better of the two).
    func execute(_ benchmarkCase: BenchmarkCase, probingPeakAt peakSize: Int? = nil) throws -> CaseOutput {
        waitForIdleMachine()
        let probe = { peakSize.map { GemmCommand.peak(size: $0, threads: benchmarkCase.threads, repetitions: Self.peakProbeRounds).max } }
        let before = probe()
        let account = CPUAccount.now()
        var output: CaseOutput
        if options.inProcess {
            resetPeakResidentMemory()
            output = try benchmarkCase.run()
        } else {
            output = try ChildProcess.run(benchmarkCase)
        }
        let otherLoad = account.otherLoad()
        let after = probe()
        for index in output.results.indices {
            output.results[index].otherLoad = otherLoad
            if let before, let after { output.results[index].sgemmPeakGFLOPS = Swift.max(before, after) }
        }
        output.coldStart?.otherLoad = otherLoad
        return output
    }

    /// Rounds per peak probe around a case: the better of two probes is 12 rounds in all, about
    /// 1 s at two threads and 2 s at one on this machine.
    static let peakProbeRounds = 6

    /// With `--wait-for-idle S`, waits up to S seconds until other processes use less than a
    /// tenth of a core over two seconds: other builds and runs share this machine.
    func waitForIdleMachine() {
        guard options.waitForIdle > 0 else { return }
        let deadline = Timer.now() + options.waitForIdle
        var announced = false
        while true {
            let account = CPUAccount.now()
            Thread.sleep(forTimeInterval: 2)
            let load = account.otherLoad()
            if load < 0.1 { return }
            if Timer.now() > deadline {
                print(String(format: "    the machine is still busy (other processes use %.2f cores); measuring anyway", load))
                return
            }
            if !announced {
                print(String(format: "    waiting for the machine to idle (other processes use %.2f cores)…", load))
                announced = true
            }
        }
    }
}

/// Re-executes the harness on one case: `arpo-bench run-case --case JSON --output FILE`. The
/// child inherits the environment, so it keeps the parent's OpenBLAS core without re-executing.
enum ChildProcess {
    static func run(_ benchmarkCase: BenchmarkCase) throws -> CaseOutput {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("arpo-bench-case-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: output) }
        let process = Process()
        // /proc/self/exe rather than its target: a rebuild during a long run replaces the file,
        // and the spawned child still finds this very binary.
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        process.arguments = ["run-case", "--case", String(decoding: try JSONEncoder().encode(benchmarkCase), as: UTF8.self), "--output", output.path]
        try process.run()
        process.waitUntilExit()
        guard process.terminationReason == .exit && process.terminationStatus == 0 else {
            throw BenchmarkError("\(benchmarkCase.title) failed in its child process (\(process.terminationReason == .exit ? "exit status" : "signal") \(process.terminationStatus))")
        }
        return try JSONDecoder().decode(CaseOutput.self, from: Data(contentsOf: output))
    }
}
