import ARPO
import Foundation
import Policy
import Tensor

/// The state a checkpoint restores besides the weights: where the run was.
public struct RunState: Codable, Equatable, Sendable {
    public enum Phase: String, Codable, Sendable { case sft, rl, done }
    public var phase: Phase
    /// Supervised steps completed.
    public var sftStep: Int
    /// RL steps completed.
    public var rlStep: Int
    /// The run's generator, for draws that are not derived from (seed, phase, step).
    public var generator: RandomGenerator
    /// Consecutive skipped (non-finite) updates so far.
    public var consecutiveNonfinite: Int
    /// The frozen reference policy's directory, relative to the run directory (nil before RL).
    public var referencePolicy: String?
    /// Held-out accuracy after SFT, once measured.
    public var accuracyAfterSFT: Double?
    /// Tool calls executed in RL so far.
    public var toolCallsExecuted: Int
    /// Seconds spent so far (wall time of earlier sessions of the run).
    public var elapsedSeconds: Double

    enum CodingKeys: String, CodingKey {
        case phase, generator
        case sftStep = "sft_step"
        case rlStep = "rl_step"
        case consecutiveNonfinite = "consecutive_nonfinite"
        case referencePolicy = "reference_policy"
        case accuracyAfterSFT = "accuracy_after_sft"
        case toolCallsExecuted = "tool_calls_executed"
        case elapsedSeconds = "elapsed_seconds"
    }
}

/// A run's output directory:
///
///     config.json            the resolved configuration
///     metrics.jsonl          one object per step (SFT and RL)
///     eval.jsonl             one object per evaluation, with sample trajectories
///     summary.json           final accuracies and totals
///     reference/             the frozen reference policy (a Hugging Face model directory)
///     checkpoints/step-NNNNNN/{model/, optimizer.safetensors, state.json}
///     checkpoints/latest     the name of the newest complete checkpoint
///
/// A checkpoint is written into a temporary directory and renamed into place, then `latest` is
/// replaced atomically, so a kill at any moment leaves the latest complete checkpoint loadable.
public struct RunDirectory {
    public let url: URL
    public init(_ url: URL) { self.url = url }

    public var configURL: URL { url.appendingPathComponent("config.json") }
    public var metricsURL: URL { url.appendingPathComponent("metrics.jsonl") }
    public var evaluationURL: URL { url.appendingPathComponent("eval.jsonl") }
    public var summaryURL: URL { url.appendingPathComponent("summary.json") }
    public var referenceURL: URL { url.appendingPathComponent("reference") }
    public var checkpointsURL: URL { url.appendingPathComponent("checkpoints") }
    var latestURL: URL { checkpointsURL.appendingPathComponent("latest") }

    /// Checkpoint directory name for a global step.
    static func checkpointName(_ step: Int) -> String { String(format: "step-%06d", step) }

    /// Writes a complete checkpoint atomically and prunes old ones beyond `keep`.
    public func saveCheckpoint(model: LlamaModel, tokenizer: Tokenizer = Tokenizer(), optimizer: AdamW, state: RunState, globalStep: Int, keep: Int) throws {
        let fileManager = FileManager.default
        try fileManager.createDirectory(at: checkpointsURL, withIntermediateDirectories: true)
        let name = RunDirectory.checkpointName(globalStep)
        let final = checkpointsURL.appendingPathComponent(name)
        let temporary = checkpointsURL.appendingPathComponent(".\(name).partial-\(ProcessInfo.processInfo.processIdentifier)")
        try? fileManager.removeItem(at: temporary)
        try fileManager.createDirectory(at: temporary, withIntermediateDirectories: true)
        try ModelCheckpoint.save(model, to: temporary.appendingPathComponent("model"), tokenizer: tokenizer)
        try optimizer.save(to: temporary.appendingPathComponent("optimizer.safetensors"))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(state).write(to: temporary.appendingPathComponent("state.json"), options: .atomic)
        if fileManager.fileExists(atPath: final.path) { try fileManager.removeItem(at: final) }
        try fileManager.moveItem(at: temporary, to: final)
        try Data((name + "\n").utf8).write(to: latestURL, options: .atomic)
        // Prune, newest first, never the one just written.
        let names = try fileManager.contentsOfDirectory(atPath: checkpointsURL.path).filter { $0.hasPrefix("step-") }.sorted(by: >)
        for old in names.dropFirst(max(keep, 1)) { try? fileManager.removeItem(at: checkpointsURL.appendingPathComponent(old)) }
    }

    /// The newest complete checkpoint, or nil when the run has none.
    public func latestCheckpoint() throws -> URL? {
        guard let text = try? String(contentsOf: latestURL, encoding: .utf8) else { return nil }
        let name = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard name.hasPrefix("step-"), !name.contains("/") else { throw ConfigurationError("\(latestURL.path) names no checkpoint (\"\(name)\")") }
        let url = checkpointsURL.appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: url.path) else { throw ConfigurationError("\(latestURL.path) names \(name), which does not exist") }
        return url
    }

    /// Loads a checkpoint written by `saveCheckpoint`, checking it against the configured model.
    public static func loadCheckpoint(_ url: URL, configuration: LlamaConfiguration, optimizer makeOptimizer: (LlamaModel) -> AdamW) throws -> (LlamaModel, AdamW, RunState) {
        let model = try ModelCheckpoint.load(from: url.appendingPathComponent("model"), expected: configuration)
        let optimizer = makeOptimizer(model)
        try optimizer.load(from: url.appendingPathComponent("optimizer.safetensors"))
        let stateURL = url.appendingPathComponent("state.json")
        let state: RunState
        do { state = try JSONDecoder().decode(RunState.self, from: Data(contentsOf: stateURL)) } catch {
            throw PolicyError("\(stateURL.path) is not a valid run state: \(error)")
        }
        return (model, optimizer, state)
    }
}

/// Appends one JSON object per line, flushed per line, so a killed run keeps every finished
/// step's record.
final class JSONLinesLog {
    let url: URL
    private let handle: FileHandle

    init(url: URL) throws {
        self.url = url
        if !FileManager.default.fileExists(atPath: url.path) { _ = FileManager.default.createFile(atPath: url.path, contents: nil) }
        handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
    }

    deinit { try? handle.close() }

    private let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    func append<Record: Encodable>(_ record: Record) throws {
        var data = try encoder.encode(record)
        data.append(UInt8(ascii: "\n"))
        try handle.write(contentsOf: data)
    }

    /// Keeps only the records of global steps up to `step`: on resume, the records written after
    /// the checkpoint the run resumes from are dropped (so are lines without a step, or not JSON).
    static func truncate(_ url: URL, throughStep step: Int) throws {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return }
        let decoder = JSONDecoder()
        let kept = text.split(separator: "\n").filter { line in
            guard let recorded = (try? decoder.decode(RecordStep.self, from: Data(line.utf8)))?.step else { return false }
            return recorded <= step
        }
        try Data((kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).utf8).write(to: url, options: .atomic)
    }
}
