import Foundation
import Tensor

/// One figure of the harness, as it appears in the JSON `results` array.
struct BenchmarkResult: Encodable {
    var benchmark: String
    var config: String?
    var shape: [Int]?
    var path: String?
    var threads: Int
    var unit: String
    var median: Double
    var min: Double
    var max: Double
    var fractionOfPeak: Double?
    var toolCallsPerTrajectory: Double?
    var peakRssMB: Double?

    enum CodingKeys: String, CodingKey {
        case benchmark, config, shape, path, threads, unit, median, min, max
        case fractionOfPeak = "fraction_of_peak"
        case toolCallsPerTrajectory = "tool_calls_per_trajectory"
        case peakRssMB = "peak_rss_mb"
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

/// The machine a run was measured on.
struct MachineRecord: Encodable {
    let cpuModel: String
    let cores: Int
    let openblasCore: String
    let openblasConfig: String
    let coreTypeVariable: String?

    enum CodingKeys: String, CodingKey {
        case cpuModel = "cpu_model", cores
        case openblasCore = "openblas_core"
        case openblasConfig = "openblas_config"
        case coreTypeVariable = "openblas_coretype_env"
    }

    static func current() -> MachineRecord {
        MachineRecord(
            cpuModel: BLASRuntime.cpuModel,
            cores: ProcessInfo.processInfo.activeProcessorCount,
            openblasCore: BLASRuntime.coreName,
            openblasConfig: BLASRuntime.configuration,
            coreTypeVariable: ProcessInfo.processInfo.environment[BLASRuntime.coreTypeVariable])
    }
}

struct BenchmarkReport: Encodable {
    let machine: MachineRecord
    let gitCommit: String
    let buildConfiguration: String
    let openblasCore: String
    let results: [BenchmarkResult]

    enum CodingKeys: String, CodingKey {
        case machine, results
        case gitCommit = "git_commit"
        case buildConfiguration = "build_configuration"
        case openblasCore = "openblas_core"
    }

    init(results: [BenchmarkResult]) {
        machine = .current()
        gitCommit = currentGitCommit()
        #if DEBUG
        buildConfiguration = "debug"
        #else
        buildConfiguration = "release"
        #endif
        openblasCore = BLASRuntime.coreName
        self.results = results
    }

    func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
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
