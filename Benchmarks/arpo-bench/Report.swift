import Foundation
import Tensor

/// One figure of the harness, as it appears in the JSON `results` array.
///
/// `benchmark` is one of gemm, forward, train, train-memory, decode, rollout-trajectory,
/// rollout-arpo, rl-step-grpo, rl-step-arpo, sft-step, rl-memory. Keys that do not apply to a benchmark are left out of its entry.
struct BenchmarkResult: Codable {
    var benchmark: String
    var config: String?
    var shape: [Int]?
    var path: String?
    var threads: Int
    /// Forward and train: the float32 matmul precision the figure was measured at
    /// (`MatmulPrecision`, as in force: "highest" on a CPU without AMX whatever was asked).
    var matmulPrecision: MatmulPrecision?
    /// gemm, forward, train and train-memory at highest precision: the kernel of the tensor API's
    /// float32 products in the case (the gemm benchmark's "blas" path is raw OpenBLAS either way).
    var float32GEMM: Float32GEMMKernel?
    var unit: String
    var median: Double
    var min: Double
    var max: Double
    var repetitions: Int?
    /// The workload in short: "16×256" (B × T), "16×(32+96)" (sequences × (prompt + sampled)),
    /// "8×8" (prompts × trajectories).
    var batch: String?
    /// What was run, in words (batch, mode, policy).
    var detail: String?
    /// Model FLOP rate at the median: 6·params per trained token, 2·params per forward or decoded
    /// token (attention's own FLOPs not counted), or the GEMM's FLOPs.
    var modelGFLOPS: Double?
    /// `modelGFLOPS` over `sgemmPeakGFLOPS`.
    var fractionOfPeak: Double?
    /// The raw sgemm peak beside this figure: the best round of two probes at its thread count,
    /// one just before the benchmark and one just after. The host's speed drifts within a run
    /// (in three runs the start-of-run peak at two threads was 154–183 GFLOPS while the probes
    /// around single cases found 169–239), so each figure is set beside the machine as it was
    /// around it.
    var sgemmPeakGFLOPS: Double?
    var parameters: Int?
    var tokensPerRepetition: Double?
    var toolCallsPerTrajectory: Double?
    var trajectoriesPerRepetition: Double?
    /// Rollouts: batched policy calls per repetition, and the sequences each advanced on average.
    var policyCallsPerRepetition: Double?
    var rowsPerPolicyCall: Double?
    /// Peak resident memory (VmHWM) of the benchmark alone, in MiB.
    var peakRssMB: Double?
    /// Cores' worth of CPU that other processes used while this benchmark ran (from /proc/stat,
    /// less the harness's own CPU time): 0 on an idle machine, 1 when another process kept one
    /// core busy. Figures with a high value are not comparable.
    var otherLoad: Double?
    /// Share of the measured time in each phase (train: forward, backward, optimizer; decode:
    /// prefill, extend, sample), over every call including the warm-up.
    var phaseFractions: [String: Double]?
    /// The memory-growth checks (train-memory, rl-memory): steps run, and resident memory
    /// (VmRSS) after step 10 and after the last step.
    var steps: Int?
    var rssAfterStep10MB: Double?
    var rssAfterLastStepMB: Double?
    /// The RL memory soak (rl-memory): resident size after the early step, every few steps and
    /// after the last, and its growth per 100 steps (the samples' least-squares slope × 100).
    var residentSamples: [ResidentSample]?
    var rssGrowthPer100StepsMB: Double?
    /// Train: the step's own GEMMs replayed alone as the tensor API makes them (`GEMMReplay`), timed after the
    /// step: the tokens/s they alone allow (the machine's limit for this step), their share of
    /// the step's median time, how many there are, and their rate.
    var gemmBoundTokensPerSecond: Double?
    var gemmShareOfStep: Double?
    var gemmCallsPerStep: Int?
    var gemmGFLOPS: Double?
    /// Train: the same GEMMs timed call by call and summed by shape, most time first: which
    /// products the step's GEMM time goes to, and how fast each runs.
    var gemmShapes: [GEMMShapeTime]?
    /// rl-step: median seconds per step of each part: rollout, reference (the frozen policies'
    /// forward passes), advantages, forward_backward, optimizer.
    var phaseSeconds: [String: Double]?
    /// rl-step: the update's tokens/s: the tokens of the sequences its trained passes ran on
    /// (prompt and response, no padding, every epoch) over the whole update's time (median over
    /// steps), and those tokens per step.
    var updateTokensPerSecond: Double?
    var updateTokensPerStep: Double?
    /// rl-step: the share of the trained passes' positions that were padding, and the share of
    /// the update's tokens not computed because a packed sequence shares them (a group's prompt,
    /// a fork's prefix).
    var paddingFraction: Double?
    var sharedPrefixFraction: Double?
    var responseTokensPerTrajectory: Double?
    /// rl-step: the median of the `sft-step` figure measured in the same rounds.
    var supervisedTokensPerSecond: Double?
    /// Train and decode: PyTorch's median tokens/s for the same workload on this machine,
    /// measured by scripts/pytorch_bench.py in this harness run (just before and just after this
    /// figure), eager and under torch.compile; nil without a Python with torch. The error says
    /// why a mode has no figure.
    var pytorchEager: Double?
    var pytorchCompile: Double?
    var pytorchRounds: Int?
    var pytorchError: String?
    var pytorchCompileError: String?
    /// The performance targets that apply (`PerformanceTargets`), each with its threshold,
    /// measured value and verdict.
    var targets: [TargetCheck]?
    /// The same in words, each "pass: …", "MISS: …" or "not measured: …"; whether every target is
    /// met (false when one is missed, absent when none is missed but one was not measured).
    var target: String?
    var meetsTarget: Bool?
    /// The targets missed, in words (empty when none is).
    var targetMisses: [String]?

    enum CodingKeys: String, CodingKey {
        case benchmark, config, shape, path, threads, unit, median, min, max, repetitions, batch, detail, parameters, steps, target, targets
        case matmulPrecision = "matmul_precision"
        case float32GEMM = "float32_gemm"
        case modelGFLOPS = "model_gflops"
        case fractionOfPeak = "fraction_of_peak"
        case sgemmPeakGFLOPS = "sgemm_peak_gflops"
        case tokensPerRepetition = "tokens_per_repetition"
        case toolCallsPerTrajectory = "tool_calls_per_trajectory"
        case trajectoriesPerRepetition = "trajectories_per_repetition"
        case policyCallsPerRepetition = "policy_calls_per_repetition"
        case rowsPerPolicyCall = "rows_per_policy_call"
        case peakRssMB = "peak_rss_mb"
        case phaseFractions = "phase_fractions"
        case otherLoad = "other_load"
        case rssAfterStep10MB = "rss_after_step_10_mb"
        case rssAfterLastStepMB = "rss_after_last_step_mb"
        case residentSamples = "rss_samples"
        case rssGrowthPer100StepsMB = "rss_growth_mb_per_100_steps"
        case pytorchEager = "pytorch_eager"
        case pytorchCompile = "pytorch_compile"
        case pytorchRounds = "pytorch_rounds"
        case pytorchError = "pytorch_error"
        case pytorchCompileError = "pytorch_compile_error"
        case phaseSeconds = "phase_seconds"
        case updateTokensPerSecond = "update_tokens_per_s"
        case updateTokensPerStep = "update_tokens_per_step"
        case paddingFraction = "padding_fraction"
        case sharedPrefixFraction = "shared_prefix_fraction"
        case responseTokensPerTrajectory = "response_tokens_per_trajectory"
        case supervisedTokensPerSecond = "supervised_tokens_per_s"
        case gemmBoundTokensPerSecond = "gemm_bound_tokens_per_s"
        case gemmShareOfStep = "gemm_share_of_step"
        case gemmCallsPerStep = "gemm_calls_per_step"
        case gemmGFLOPS = "gemm_gflops"
        case gemmShapes = "gemm_shapes"
        case meetsTarget = "meets_target"
        case targetMisses = "target_misses"
    }

    init(benchmark: String, threads: Int, unit: String, measurement: Measurement) {
        self.benchmark = benchmark
        self.threads = threads
        self.unit = unit
        median = measurement.median
        min = measurement.min
        max = measurement.max
    }
}

/// Raw `cblas_sgemm` GFLOPS on a large square product, once per thread count at the start of a
/// run (each figure's own peak, `sgemm_peak_gflops`, is probed around it).
struct PeakRecord: Codable {
    let threads: Int
    let size: Int
    let gflops: Measurement
    let otherLoad: Double

    enum CodingKeys: String, CodingKey {
        case threads, size, gflops
        case otherLoad = "other_load"
    }
}

/// How the rollout benchmark's policy was cold-started (when no `--checkpoint` was given).
struct ColdStartRecord: Codable {
    let config: String
    let threads: Int
    let steps: Int
    let batchSize: Int
    let demonstrations: Int
    /// Generating the expert demonstrations.
    let demonstrationSeconds: Double
    /// The SFT steps.
    let trainingSeconds: Double
    let tokensPerSecond: Double
    let finalLoss: Double
    /// Cores other processes used meanwhile (see `BenchmarkResult.otherLoad`).
    var otherLoad: Double?

    enum CodingKeys: String, CodingKey {
        case config, threads, steps, demonstrations
        case otherLoad = "other_load"
        case batchSize = "batch_size"
        case demonstrationSeconds = "demonstration_seconds"
        case trainingSeconds = "training_seconds"
        case tokensPerSecond = "tokens_per_second"
        case finalLoss = "final_loss"
    }
}

/// The kernel of float32 products at highest precision (`BLASRuntime.usesBlockedSGEMM`): the
/// blocked AVX-512 kernel, or OpenBLAS's sgemm.
enum Float32GEMMKernel: String, Codable, CaseIterable {
    case blocked
    case openblas
}

/// The machine a run was measured on.
struct MachineRecord: Encodable {
    let cpuModel: String
    let cores: Int
    let openblasCore: String
    let openblasVersion: String
    let openblasConfig: String
    let coreTypeVariable: String?

    enum CodingKeys: String, CodingKey {
        case cpuModel = "cpu_model", cores
        case openblasCore = "openblas_core"
        case openblasVersion = "openblas_version"
        case openblasConfig = "openblas_config"
        case coreTypeVariable = "openblas_coretype_env"
    }

    static func current() -> MachineRecord {
        let configuration = BLASRuntime.configuration
        // The configuration string starts "OpenBLAS 0.3.21 …".
        let words = configuration.split(separator: " ")
        let version = words.count >= 2 && words[0] == "OpenBLAS" ? String(words[1]) : "unknown"
        return MachineRecord(
            cpuModel: BLASRuntime.cpuModel,
            cores: ProcessInfo.processInfo.activeProcessorCount,
            openblasCore: BLASRuntime.coreName,
            openblasVersion: version,
            openblasConfig: configuration,
            coreTypeVariable: ProcessInfo.processInfo.environment[BLASRuntime.coreTypeVariable])
    }
}

/// The JSON document: machine, commit, load, the sgemm peaks, the cold start, every figure.
struct BenchmarkReport: Encodable {
    let machine: MachineRecord
    let gitCommit: String
    let buildConfiguration: String
    let openblasCore: String
    /// The harness's arguments.
    let command: [String]
    /// UTC, ISO 8601.
    let date: String
    /// /proc/loadavg's 1, 5 and 15 minute averages when the run started and ended: figures taken
    /// under load are not comparable.
    let loadAverageStart: [Double]
    let loadAverageEnd: [Double]
    /// "child-process" (each benchmark in its own process) or "clear_refs" (one process, the peak
    /// reset between benchmarks).
    let peakRssMethod: String
    let sgemmPeak: [PeakRecord]
    let coldStart: [ColdStartRecord]
    /// The PyTorch that measured the "vs PyTorch" figures; nil (left out) without one.
    let pytorch: PyTorchRecord?
    let results: [BenchmarkResult]

    enum CodingKeys: String, CodingKey {
        case machine, results, command, date, pytorch
        case gitCommit = "git_commit"
        case buildConfiguration = "build_configuration"
        case openblasCore = "openblas_core"
        case loadAverageStart = "load_average_start"
        case loadAverageEnd = "load_average_end"
        case peakRssMethod = "peak_rss_method"
        case sgemmPeak = "sgemm_peak"
        case coldStart = "cold_start"
    }

    init(results: [BenchmarkResult], sgemmPeak: [PeakRecord], coldStart: [ColdStartRecord], pytorch: PyTorchRecord?, loadAverageStart: [Double], peakRssMethod: String) {
        self.pytorch = pytorch
        machine = .current()
        gitCommit = currentGitCommit()
        #if DEBUG
        buildConfiguration = "debug"
        #else
        buildConfiguration = "release"
        #endif
        openblasCore = BLASRuntime.coreName
        command = Array(CommandLine.arguments.dropFirst())
        date = ISO8601DateFormatter().string(from: Date())
        self.loadAverageStart = loadAverageStart
        loadAverageEnd = loadAverages()
        self.peakRssMethod = peakRssMethod
        self.sgemmPeak = sgemmPeak
        self.coldStart = coldStart
        self.results = results
    }

    func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

/// /proc/loadavg's 1, 5 and 15 minute load averages (empty where there is no /proc).
func loadAverages() -> [Double] {
    guard let text = BLASRuntime.readProcFile("/proc/loadavg") else { return [] }
    return text.split(separator: " ").prefix(3).compactMap { Double($0) }
}

/// The checkout's commit, or "unknown" outside a git work tree.
func currentGitCommit() -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["git", "rev-parse", "HEAD"]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    do {
        try process.run()
        process.waitUntilExit()
    } catch {
        return "unknown"
    }
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    return process.terminationStatus == 0 ? output.trimmingCharacters(in: .whitespacesAndNewlines) : "unknown"
}

/// Prints rows as an aligned text table.
func printTable(header: [String], rows: [[String]]) {
    let widths = header.indices.map { column in ([header[column]] + rows.map { $0[column] }).map(\.count).max()! }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }.joined(separator: "  ")
    }
    print(line(header))
    print(line(widths.map { String(repeating: "-", count: $0) }))
    rows.forEach { print(line($0)) }
}
