import Foundation
import Policy

/// The "vs PyTorch" column: PyTorch measured on this machine, in this harness run, by
/// scripts/pytorch_bench.py under a Python that has torch (`--pytorch-python PATH` or
/// `ARPO_PYTORCH_PYTHON`). Without one the column stays empty: no PyTorch figure is stored
/// anywhere, since a figure from another machine or another day compares nothing.
struct PyTorchReference {
    /// The interpreter and the script it runs.
    let python: String
    let script: String

    /// The environment variable that names the interpreter when `--pytorch-python` is not given.
    static let pythonVariable = "ARPO_PYTORCH_PYTHON"

    /// How to get the column, for the table's footnote.
    static let howToMeasure = """
        vs PyTorch: empty, no Python with torch given. For PyTorch's figures measured here in the same run, \
        give --pytorch-python PATH or \(pythonVariable)=PATH, a Python with torch, e.g. \
        `python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch` then --pytorch-python /tmp/torchenv/bin/python
        """

    /// The reference for `options`, or nil when no interpreter is named.
    static func from(_ options: CommonOptions) -> PyTorchReference? {
        let environment = ProcessInfo.processInfo.environment[pythonVariable].flatMap { $0.isEmpty ? nil : $0 }
        guard let python = options.pytorchPython ?? environment else { return nil }
        return PyTorchReference(python: python, script: scriptPath())
    }

    /// scripts/pytorch_bench.py of this checkout: under the working directory, else beside the
    /// sources this binary was built from.
    static func scriptPath() -> String { repositoryFile("scripts/pytorch_bench.py") }

    /// Whether a case has a PyTorch counterpart: train and decode on float32 products (PyTorch's
    /// figures are float32 whatever the case's precision).
    static func applies(to benchmarkCase: BenchmarkCase) -> Bool {
        [.train, .decode].contains(benchmarkCase.kind) && (benchmarkCase.matmulPrecision ?? .highest) == .highest
    }

    /// What the script printed.
    struct Output: Decodable {
        struct Mode: Decodable {
            var tokensPerSecond: [Double]?
            var error: String?
            enum CodingKeys: String, CodingKey {
                case tokensPerSecond = "tokens_per_s"
                case error
            }
        }

        var torchVersion: String
        var threads: Int
        var modes: [String: Mode]
        enum CodingKeys: String, CodingKey {
            case torchVersion = "torch_version"
            case threads, modes
        }
    }

    /// The script's arguments for `benchmarkCase`'s workload.
    func arguments(for benchmarkCase: BenchmarkCase) throws -> [String] {
        let size = benchmarkCase.size
        let model = String(decoding: try JSONEncoder().encode(size.model), as: UTF8.self)
        return [
            script, "--benchmark", benchmarkCase.kind.rawValue, "--model", model, "--batch", "\(size.batchSize)",
            "--prompt-tokens", "\(size.decodePromptTokens)", "--new-tokens", "\(size.decodeNewTokens)",
            "--threads", "\(benchmarkCase.threads)", "--repetitions", "\(benchmarkCase.repetitions)",
        ]
    }

    /// Runs the script once for `benchmarkCase`.
    func run(_ benchmarkCase: BenchmarkCase) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python.contains("/") ? python : "/usr/bin/env")
        process.arguments = (python.contains("/") ? [] : [python]) + (try arguments(for: benchmarkCase))
        let output = Pipe(), error = Pipe()
        process.standardOutput = output
        process.standardError = error
        do { try process.run() } catch { throw BenchmarkError("cannot run \(python): \(error.localizedDescription)") }
        let errorData = DataReader(error)
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let stderr = errorData.finish()
        guard process.terminationReason == .exit && process.terminationStatus == 0 else {
            let lastLine = stderr.split(separator: "\n").last.map(String.init) ?? ""
            throw BenchmarkError("\(python) \(script) failed (status \(process.terminationStatus)): \(lastLine)")
        }
        let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        do { return try JSONDecoder().decode(Output.self, from: Data(line.utf8)) } catch {
            throw BenchmarkError("\(python) \(script) printed no result JSON: \(line.prefix(200))")
        }
    }

    /// Fills the PyTorch fields of `results` from the runs before and after them: each mode's
    /// median over both runs' rounds.
    static func apply(_ runs: [Output], to results: inout [BenchmarkResult]) {
        func samples(_ mode: String) -> [Double] { runs.flatMap { $0.modes[mode]?.tokensPerSecond ?? [] } }
        let eager = samples("eager"), compiled = samples("compile")
        let compileError = runs.compactMap { $0.modes["compile"]?.error }.first
        for index in results.indices {
            if !eager.isEmpty { results[index].pytorchEager = Measurement(eager).median }
            if !compiled.isEmpty { results[index].pytorchCompile = Measurement(compiled).median }
            results[index].pytorchRounds = eager.count
            results[index].pytorchCompileError = compiled.isEmpty ? compileError : nil
        }
    }
}

/// The interpreter and torch that measured the PyTorch figures (the JSON's `pytorch`).
struct PyTorchRecord: Encodable {
    let python: String
    let script: String
    var torchVersion: String?

    enum CodingKeys: String, CodingKey {
        case python, script
        case torchVersion = "torch_version"
    }
}

/// Reads a pipe to its end on another queue, so that a chatty child cannot block on a full pipe.
final class DataReader: @unchecked Sendable {
    private var data = Data()
    private let group = DispatchGroup()

    init(_ pipe: Pipe) {
        group.enter()
        DispatchQueue.global().async {
            self.data = pipe.fileHandleForReading.readDataToEndOfFile()
            self.group.leave()
        }
    }

    func finish() -> String {
        group.wait()
        return String(decoding: data, as: UTF8.self)
    }
}

/// `relative` under the working directory when it exists there, else under the checkout this
/// binary was built from.
func repositoryFile(_ relative: String) -> String {
    if FileManager.default.fileExists(atPath: relative) { return relative }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return root.appendingPathComponent(relative).path
}
