import ARPO
import Foundation
import Policy
import Tensor
import ToolEnv

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
    /// The processes (MPI ranks) the run trains on; a checkpoint without it is from one. The
    /// data order of a step depends on it, so a resume must keep it (docs/distributed.md).
    public var worldSize: Int?

    enum CodingKeys: String, CodingKey {
        case phase, generator
        case sftStep = "sft_step"
        case rlStep = "rl_step"
        case consecutiveNonfinite = "consecutive_nonfinite"
        case referencePolicy = "reference_policy"
        case accuracyAfterSFT = "accuracy_after_sft"
        case toolCallsExecuted = "tool_calls_executed"
        case elapsedSeconds = "elapsed_seconds"
        case worldSize = "world_size"
    }
}

/// A run's output directory:
///
///     config.json            the resolved configuration
///     metrics.jsonl          one object per step (SFT and RL)
///     eval.jsonl             one object per evaluation, with sample trajectories
///     summary.json           final accuracies and totals
///     reference/             the frozen reference policy (a Hugging Face model directory)
///     checkpoints/step-NNNNNN/{model/, optimizer.safetensors, state.json, manifest.json}
///                            and memory_bank.json when the run keeps a memory bank (`rl.memory_bank`)
///     checkpoints/latest     the name of the newest complete checkpoint
///
/// Writes are durable, not only atomic ([architecture.md](docs/architecture.md), "Durable
/// checkpoints"): a checkpoint is written into a temporary directory, every file fsynced, its
/// manifest (each file's size and SHA-256) written last, the directory renamed into place and
/// `checkpoints/` fsynced; only then is `latest` replaced, durably too. So neither a kill nor a
/// power loss leaves `latest` naming an incomplete checkpoint, and a checkpoint damaged later is
/// found by its manifest when it is loaded.
public struct RunDirectory {
    public let url: URL
    /// Writes every file of the run; a test injects write failures through it.
    public var writer: DurableWriter

    public init(_ url: URL, writer: DurableWriter = DurableWriter()) {
        self.url = url
        self.writer = writer
    }

    public var configURL: URL { url.appendingPathComponent("config.json") }
    public var metricsURL: URL { url.appendingPathComponent("metrics.jsonl") }
    public var evaluationURL: URL { url.appendingPathComponent("eval.jsonl") }
    public var summaryURL: URL { url.appendingPathComponent("summary.json") }
    public var referenceURL: URL { url.appendingPathComponent("reference") }
    public var checkpointsURL: URL { url.appendingPathComponent("checkpoints") }
    var latestURL: URL { checkpointsURL.appendingPathComponent("latest") }

    /// Checkpoint directory name for a global step.
    static func checkpointName(_ step: Int) -> String { String(format: "step-%06d", step) }

    /// The files every checkpoint's manifest lists.
    static let checkpointFiles = ["model/\(ModelCheckpoint.weightsFile)", "model/\(ModelCheckpoint.configFile)", "model/\(Tokenizer.fileName)", "model/\(Tokenizer.configFileName)", "optimizer.safetensors", "state.json"]
    /// The files the reference policy's manifest lists.
    static let referenceFiles = [ModelCheckpoint.weightsFile, ModelCheckpoint.configFile, Tokenizer.fileName, Tokenizer.configFileName]
    /// The files a checkpoint or the reference policy must list to be loaded: all but
    /// `tokenizer_config.json`, which only `transformers` reads, so that directories written
    /// before it was added still load.
    static func requiredFiles(_ files: [String]) -> [String] { files.filter { !$0.hasSuffix(Tokenizer.configFileName) } }

    /// Replaces a file of the run (config.json, summary.json) atomically and durably.
    public func writeFile(_ data: Data, to url: URL) throws {
        try writer.replace(url, with: data)
    }

    /// Writes a complete checkpoint durably and atomically, points `latest` at it, and prunes
    /// old ones beyond `keep`. On a failure (a full disk, a permission) nothing of the new
    /// checkpoint is left, and the previous checkpoints and `latest` are as they were. The model
    /// directory's chat template writes tool calls in `callFormat`. A `memoryBank` is written as
    /// `memory_bank.json` and listed in the manifest with the other files.
    public func saveCheckpoint(
        model: LlamaModel, tokenizer: Tokenizer = Tokenizer(), callFormat: CallFormat = .compact, optimizer: AdamW, state: RunState,
        memoryBank: MemoryBank? = nil, globalStep: Int, keep: Int
    ) throws {
        if !FileManager.default.fileExists(atPath: checkpointsURL.path) {
            try writer.makeDirectory(checkpointsURL)
            try writer.synchronizeDirectory(url)
        }
        let name = RunDirectory.checkpointName(globalStep)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var files = try ModelCheckpoint.files(model, tokenizer: tokenizer, chatTemplate: callFormat.chatTemplate).map { (path: "model/\($0.name)", data: $0.data) }
        files.append(("optimizer.safetensors", optimizer.encoded()))
        files.append(("state.json", try encoder.encode(state)))
        if let memoryBank { files.append((MemoryBank.fileName, try memoryBank.encoded())) }
        // writeDirectory fsyncs checkpoints/ after the rename, before latest is replaced.
        let final = checkpointsURL.appendingPathComponent(name)
        try writer.writeDirectory(CheckpointManifest.withManifest(files), to: final)
        do { try writer.replace(latestURL, with: Data((name + "\n").utf8)) } catch {
            // Not left behind as a checkpoint newer than latest's, unless latest names it already.
            if (try? latestCheckpoint())?.lastPathComponent != name { try? FileManager.default.removeItem(at: final) }
            throw error
        }
        prune(keeping: max(keep, 1), written: name)
    }

    /// Removes the checkpoints beyond the `keep` newest at or before `written`, any newer than
    /// `written`, and what killed processes left half-written or a resume set aside.
    func prune(keeping keep: Int, written: String) {
        let fileManager = FileManager.default
        guard let entries = try? fileManager.contentsOfDirectory(atPath: checkpointsURL.path) else { return }
        let names = entries.filter { $0.hasPrefix("step-") }.sorted(by: >)
        let abandoned = names.filter { $0 > written }
        let older = names.filter { $0 <= written }
        let leftovers = entries.filter { $0.hasPrefix(".") && ($0.contains(".partial-") || $0.contains(".replaced-") || $0.contains(".unverified-")) }
        for old in abandoned + older.dropFirst(keep) + leftovers { try? fileManager.removeItem(at: checkpointsURL.appendingPathComponent(old)) }
    }

    /// Renames the checkpoints newer than `name`, the one a run resumes from, to hidden names
    /// (`.step-N.unverified-PID`): the run redoes their steps, and they must not be mistaken for
    /// its newer checkpoints (by a later fallback, or by pruning, which would keep them over
    /// good ones). They stay for inspection until the next checkpoint is saved.
    func setAsideCheckpoints(after name: String) {
        for newer in checkpointDirectories() where newer.lastPathComponent > name {
            let aside = checkpointsURL.appendingPathComponent(".\(newer.lastPathComponent).unverified-\(getpid())")
            try? writer.rename(newer, to: aside)
        }
        try? writer.synchronizeDirectory(checkpointsURL)
    }

    /// Writes the frozen reference policy to `reference/`, durably and atomically, with its
    /// manifest; its chat template writes tool calls in `callFormat`.
    public func saveReference(model: LlamaModel, tokenizer: Tokenizer, callFormat: CallFormat = .compact) throws {
        let files = try ModelCheckpoint.files(model, tokenizer: tokenizer, chatTemplate: callFormat.chatTemplate).map { (path: $0.name, data: $0.data) }
        try writer.writeDirectory(CheckpointManifest.withManifest(files), to: referenceURL)
    }

    /// Loads the reference policy `name` (a directory of the run), verified against its manifest.
    public func loadReference(_ name: String, configuration: LlamaConfiguration) throws -> LlamaModel {
        guard !name.isEmpty, !name.contains("/"), name != "..", name != "." else {
            throw CheckpointVerificationError("the run state names the reference policy \"\(name)\", which is not a directory of the run")
        }
        let directory = url.appendingPathComponent(name)
        try CheckpointManifest.verify(directory, required: RunDirectory.requiredFiles(RunDirectory.referenceFiles))
        return try ModelCheckpoint.load(from: directory, expected: configuration)
    }

    /// Puts back the checkpoints (and `reference/`) that a crash left only under their set-aside
    /// name: re-saving a directory that exists (a checkpoint at the step a run resumed from,
    /// `reference/` after a fallback to the cold start) renames the old one aside before the new
    /// one is renamed into place, and between the two renames `latest` names a directory that is
    /// not there. Returns the directories restored.
    public func restoreSetAsideDirectories() throws -> [URL] {
        try writer.restoreSetAsideDirectories(in: checkpointsURL) + writer.restoreSetAsideDirectories(in: url)
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

    /// The `step-N` checkpoint directories, newest first.
    public func checkpointDirectories() -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpointsURL.path)) ?? []
        return names.filter { $0.hasPrefix("step-") }.sorted(by: >).map { checkpointsURL.appendingPathComponent($0) }
    }

    /// What `--resume` tries, in order: the checkpoint `latest` names, then every other one,
    /// newest first. `problem` says what is wrong with `latest` itself, when something is.
    public func resumeCandidates() -> (checkpoints: [URL], problem: String?) {
        var latest: URL?, problem: String?
        do { latest = try latestCheckpoint() } catch { problem = "\(error)" }
        if latest == nil && problem == nil && FileManager.default.fileExists(atPath: checkpointsURL.path) {
            problem = "\(latestURL.path) is missing"
        }
        let others = checkpointDirectories().filter { $0.lastPathComponent != latest?.lastPathComponent }
        return ((latest.map { [$0] } ?? []) + others, problem)
    }

    /// The memory bank a verified checkpoint holds, at most `capacity` entries per family; nil
    /// when it holds none (the bank was off, or the checkpoint is from the cold start).
    public static func loadMemoryBank(_ url: URL, capacity: Int) throws -> MemoryBank? {
        let file = url.appendingPathComponent(MemoryBank.fileName)
        guard FileManager.default.fileExists(atPath: file.path) else { return nil }
        do { return try MemoryBank.decoded(Data(contentsOf: file), capacity: capacity) } catch {
            throw PolicyError("\(file.path) \(error)")
        }
    }

    /// Loads a checkpoint written by `saveCheckpoint`: verifies its manifest, reads the run
    /// state, then the model (checked against the configured one) and the optimizer that
    /// `makeOptimizer` makes for the state's phase. Weights or moments with NaN or infinite
    /// values are refused, naming the tensor.
    public static func loadCheckpoint(_ url: URL, configuration: LlamaConfiguration, optimizer makeOptimizer: (RunState.Phase, LlamaModel) -> AdamW) throws -> (LlamaModel, AdamW, RunState) {
        try CheckpointManifest.verify(url, required: requiredFiles(checkpointFiles))
        let stateURL = url.appendingPathComponent("state.json")
        let state: RunState
        do { state = try JSONDecoder().decode(RunState.self, from: Data(contentsOf: stateURL)) } catch {
            throw PolicyError("\(stateURL.path) is not a valid run state: \(error)")
        }
        guard state.sftStep >= 0, state.rlStep >= 0, state.toolCallsExecuted >= 0, state.consecutiveNonfinite >= 0, state.elapsedSeconds.isFinite else {
            throw PolicyError("\(stateURL.path) holds a negative step or count, or a non-finite time")
        }
        let model = try ModelCheckpoint.load(from: url.appendingPathComponent("model"), expected: configuration)
        let optimizer = makeOptimizer(state.phase, model)
        try optimizer.load(from: url.appendingPathComponent("optimizer.safetensors"))
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
        do { try handle.write(contentsOf: data) } catch {
            throw TrainingError("cannot append to \(url.path): \(error.localizedDescription)")
        }
    }

    /// Fsyncs what was appended so far.
    func synchronize(with writer: DurableWriter) throws {
        try writer.synchronize(handle, path: url)
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
