import Foundation
import Policy
import Tensor
@testable import Trainer
import XCTest

/// Issue 33: checkpoints that survive power loss and bit rot. Durable writes (the fsync order),
/// manifests verified at load, resume falling back past a checkpoint that fails verification,
/// and write failures that leave the previous checkpoint and `latest` intact.
final class DurableCheckpointTests: XCTestCase {
    /// The events of a `DurableWriter`, in order.
    final class Journal: @unchecked Sendable {
        var events: [DurableWriter.Event] = []
        func index(_ event: DurableWriter.Event, file: StaticString = #filePath, line: UInt = #line) -> Int {
            guard let found = events.firstIndex(of: event) else {
                XCTFail("no \(event) among \(events.count) events", file: file, line: line)
                return -1
            }
            return found
        }
    }

    func tinyModel() -> LlamaModel {
        var generator = RandomGenerator(seed: 3)
        return LlamaModel(configuration: LlamaConfiguration(hiddenSize: 16, intermediateSize: 24, layerCount: 1, headCount: 2, maxPositions: 32), generator: &generator)
    }

    func state(phase: RunState.Phase = .sft, step: Int) -> RunState {
        RunState(phase: phase, sftStep: step, rlStep: 0, generator: RandomGenerator(seed: 5), consecutiveNonfinite: 0, referencePolicy: nil, accuracyAfterSFT: nil, toolCallsExecuted: 0, elapsedSeconds: 1.5)
    }

    /// The examples of FIPS 180-4 (NIST's "SHA-256" example values) and the empty message.
    func testSHA256MatchesTheFIPS180Examples() {
        XCTAssertEqual(CheckpointManifest.sha256(Data("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(
            CheckpointManifest.sha256(Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(CheckpointManifest.sha256(Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(CheckpointManifest.sha256(Data(repeating: UInt8(ascii: "a"), count: 1_000_000)), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// Every checkpoint file is fsynced before its directory is renamed into place, the manifest
    /// last; `checkpoints/` is fsynced after the rename and before `latest` is replaced, and again
    /// after. The same holds for `reference/` and for summary.json.
    func testEveryFileIsSynchronizedBeforeItsRenameAndTheDirectoryAfter() throws {
        let root = try temporaryDirectory(self)
        let journal = Journal()
        let run = RunDirectory(root, writer: DurableWriter(observer: { journal.events.append($0) }))
        let model = tinyModel()
        let optimizer = AdamW(named: model.namedParameters)
        try run.saveCheckpoint(model: model, optimizer: optimizer, state: state(step: 2), globalStep: 2, keep: 2)
        journal.events.removeAll()
        try run.saveCheckpoint(model: model, optimizer: optimizer, state: state(step: 4), globalStep: 4, keep: 2)

        let checkpoints = run.checkpointsURL.path
        let final = checkpoints + "/step-000004"
        let temporary = checkpoints + "/.step-000004.partial-\(getpid())"
        let renamed = journal.index(.renamed(from: temporary, to: final))
        let synchronizedFiles = journal.events.compactMap { event -> String? in
            if case .fileSynchronized(let path) = event, path.hasPrefix(temporary + "/") { return String(path.dropFirst(temporary.count + 1)) }
            return nil
        }
        XCTAssertEqual(Set(synchronizedFiles), Set(RunDirectory.checkpointFiles + [CheckpointManifest.fileName]))
        XCTAssertEqual(synchronizedFiles.last, CheckpointManifest.fileName, "the manifest is written last")
        for path in synchronizedFiles { XCTAssertLessThan(journal.index(.fileSynchronized(temporary + "/" + path)), renamed, path) }
        XCTAssertLessThan(journal.index(.directorySynchronized(temporary + "/model")), journal.index(.directorySynchronized(temporary)))
        XCTAssertLessThan(journal.index(.directorySynchronized(temporary)), renamed)
        let latestTemporary = checkpoints + "/.latest.partial-\(getpid())"
        let latestRenamed = journal.index(.renamed(from: latestTemporary, to: checkpoints + "/latest"))
        let directorySynchronized = journal.events.indices.filter { journal.events[$0] == .directorySynchronized(checkpoints) }
        XCTAssertTrue(directorySynchronized.contains { $0 > renamed && $0 < latestRenamed }, "checkpoints/ is fsynced between the rename and latest")
        XCTAssertTrue(directorySynchronized.contains { $0 > latestRenamed }, "checkpoints/ is fsynced after latest is replaced")
        XCTAssertLessThan(journal.index(.fileSynchronized(latestTemporary)), latestRenamed)
        XCTAssertEqual(try run.latestCheckpoint()?.lastPathComponent, "step-000004")

        // reference/: the same order, in the run directory.
        journal.events.removeAll()
        try run.saveReference(model: model, tokenizer: Tokenizer())
        let referenceTemporary = root.path + "/.reference.partial-\(getpid())"
        let referenceRenamed = journal.index(.renamed(from: referenceTemporary, to: run.referenceURL.path))
        for path in RunDirectory.referenceFiles + [CheckpointManifest.fileName] {
            XCTAssertLessThan(journal.index(.fileSynchronized(referenceTemporary + "/" + path)), referenceRenamed, path)
        }
        XCTAssertLessThan(journal.index(.directorySynchronized(referenceTemporary)), referenceRenamed)
        XCTAssertGreaterThan(journal.index(.directorySynchronized(root.path)), referenceRenamed)
        XCTAssertNoThrow(try run.loadReference("reference", configuration: model.configuration))
        let referenceWeights = run.referenceURL.appendingPathComponent(ModelCheckpoint.weightsFile)
        var rotted = try Data(contentsOf: referenceWeights)
        rotted[rotted.count - 1] ^= 0x02
        try rotted.write(to: referenceWeights)
        XCTAssertThrowsError(try run.loadReference("reference", configuration: model.configuration)) {
            XCTAssertTrue("\($0)".contains("\(referenceWeights.path) does not match its SHA-256"), "\($0)")
        }
        XCTAssertThrowsError(try run.loadReference("../elsewhere", configuration: model.configuration)) {
            XCTAssertTrue("\($0)".contains("not a directory of the run"), "\($0)")
        }

        // summary.json (and config.json): a synced temporary file renamed over it, then the directory.
        journal.events.removeAll()
        try run.writeFile(Data("{}".utf8), to: run.summaryURL)
        XCTAssertEqual(journal.events, [
            .fileSynchronized(root.path + "/.summary.json.partial-\(getpid())"),
            .renamed(from: root.path + "/.summary.json.partial-\(getpid())", to: run.summaryURL.path),
            .directorySynchronized(root.path),
        ])
    }

    /// The manifest lists every file with its size and SHA-256; loading verifies it and names
    /// the file that does not match. A checkpoint round-trips bit for bit.
    func testTheManifestIsVerifiedAtLoadAndNamesTheDamagedFile() throws {
        let root = try temporaryDirectory(self)
        let run = RunDirectory(root)
        let model = tinyModel()
        let optimizer = AdamW(named: model.namedParameters)
        try run.saveCheckpoint(model: model, optimizer: optimizer, state: state(step: 3), globalStep: 3, keep: 2)
        let checkpoint = run.checkpointsURL.appendingPathComponent("step-000003")
        let manifest = try JSONDecoder().decode(CheckpointManifest.self, from: Data(contentsOf: checkpoint.appendingPathComponent("manifest.json")))
        XCTAssertEqual(Set(manifest.files.keys), Set(RunDirectory.checkpointFiles))
        for (path, entry) in manifest.files {
            let data = try Data(contentsOf: checkpoint.appendingPathComponent(path))
            XCTAssertEqual(entry.bytes, data.count, path)
            XCTAssertEqual(entry.sha256, CheckpointManifest.sha256(data), path)
        }
        func load() throws -> (LlamaModel, AdamW, RunState) {
            try RunDirectory.loadCheckpoint(checkpoint, configuration: model.configuration) { _, model in AdamW(named: model.namedParameters) }
        }
        let (loaded, _, loadedState) = try load()
        XCTAssertEqual(loadedState, state(step: 3))
        for ((name, a), (_, b)) in zip(model.namedParameters, loaded.namedParameters) {
            XCTAssertEqual(a.floats.map(\.bitPattern), b.floats.map(\.bitPattern), name)
        }

        func assertRefused(_ message: String, after damage: () throws -> Void, line: UInt = #line) throws {
            let saved = try FileManager.default.contentsOfDirectory(atPath: checkpoint.path)
            let backup = root.appendingPathComponent("backup")
            try FileManager.default.copyItem(at: checkpoint, to: backup)
            try damage()
            XCTAssertThrowsError(try load(), line: line) { error in
                XCTAssertTrue("\(error)".contains(message), "'\(error)' does not mention '\(message)'", line: line)
            }
            try FileManager.default.removeItem(at: checkpoint)
            try FileManager.default.moveItem(at: backup, to: checkpoint)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: checkpoint.path).sorted(), saved.sorted())
            XCTAssertNoThrow(try load(), line: line)
        }
        let weights = checkpoint.appendingPathComponent("model/model.safetensors")
        let moments = checkpoint.appendingPathComponent("optimizer.safetensors")
        let manifestURL = checkpoint.appendingPathComponent("manifest.json")
        // One flipped bit in the data, which the safetensors checks cannot see.
        try assertRefused("\(moments.path) does not match its SHA-256 in manifest.json") {
            var data = try Data(contentsOf: moments)
            data[data.count - 3] ^= 0x01
            try data.write(to: moments)
        }
        // Truncated, as a power loss leaves a file whose size reached the disk before its data.
        try assertRefused("\(weights.path) has 100 bytes, its manifest says") { try Data(try Data(contentsOf: weights).prefix(100)).write(to: weights) }
        try assertRefused("\(weights.path) is missing (listed in manifest.json)") { try FileManager.default.removeItem(at: weights) }
        try assertRefused("\(checkpoint.path) has no manifest.json") { try FileManager.default.removeItem(at: manifestURL) }
        try assertRefused("\(manifestURL.path) is not a valid manifest") { try Data("{\"files\": 3}".utf8).write(to: manifestURL) }
        try assertRefused("\(manifestURL.path) is not a valid manifest") { try Data().write(to: manifestURL) }
        try assertRefused("\(checkpoint.path)/notes.txt is not listed in manifest.json") { try Data("x".utf8).write(to: checkpoint.appendingPathComponent("notes.txt")) }
        try assertRefused("lists an invalid path \"../outside\"") {
            var edited = manifest
            edited.files["../outside"] = .init(bytes: 1, sha256: "00")
            try edited.encoded().write(to: manifestURL)
        }
        try assertRefused("does not list state.json") {
            var edited = manifest
            edited.files["state.json"] = nil
            try edited.encoded().write(to: manifestURL)
            try FileManager.default.removeItem(at: checkpoint.appendingPathComponent("state.json"))
        }
        // Non-finite weights whose manifest matches (the run saved them so): refused by name.
        try assertRefused("model.norm.weight has 16 of 16") {
            var parameters = model.namedParameters.map { ($0.name, $0.tensor) }
            let index = parameters.firstIndex { $0.0 == "model.norm.weight" }!
            parameters[index].1 = Tensor(shape: [16], scalars: [Float](repeating: .nan, count: 16))
            try Safetensors.write(parameters, metadata: ["format": "pt"], to: weights)
            var files = try CheckpointManifest.regularFiles(in: checkpoint).filter { $0 != "manifest.json" }.map { (path: $0, data: try Data(contentsOf: checkpoint.appendingPathComponent($0))) }
            files.sort { $0.path < $1.path }
            try CheckpointManifest(files: files).encoded().write(to: manifestURL)
        }
    }

    func tinyRun(_ output: URL, rlSteps: Int = 3) throws -> TrainingConfiguration {
        let configURL = output.deletingLastPathComponent().appendingPathComponent("\(output.lastPathComponent).json")
        try Data(tinyConfig(output: output, rlSteps: rlSteps).utf8).write(to: configURL)
        return try ConfigurationLoader.load(from: configURL)
    }

    /// A checkpoint write that fails (a full disk, a permission) stops the run with the path and
    /// the error; the previous checkpoint and `latest` are intact, nothing half-written is left,
    /// and `--resume` then continues to the same metrics as an uninterrupted run.
    func testAFailedCheckpointWriteLeavesThePreviousCheckpointAndLatestIntact() throws {
        let root = try temporaryDirectory(self)
        let straight = root.appendingPathComponent("straight")
        let journal = Journal()
        let observed = RunHooks(writer: DurableWriter(observer: { journal.events.append($0) }))
        XCTAssertEqual(try TrainingRun(configuration: tinyRun(straight), output: straight, console: Console(quiet: true), hooks: observed).run(resume: false, stop: StopSignal()), .completed)
        let expected = withoutTimings(try jsonLines(straight.appendingPathComponent("metrics.jsonl")))
        // The logs are fsynced before each checkpoint, so their records up to it are on disk with it.
        let checkpointRenames = journal.events.indices.filter {
            if case .renamed(_, let to) = journal.events[$0] { return to.contains("/checkpoints/step-") }
            return false
        }
        XCTAssertEqual(checkpointRenames.count, 4, "checkpoints at global steps 2, 4, 6 and 7")
        for (previous, rename) in zip([-1] + checkpointRenames, checkpointRenames) {
            for log in ["metrics.jsonl", "eval.jsonl"] {
                XCTAssertTrue(journal.events[(previous + 1)..<rename].contains(.fileSynchronized(straight.appendingPathComponent(log).path)), "\(log) before \(journal.events[rename])")
            }
        }

        // Checkpoints land at global steps 2 (SFT), 4 (after SFT) and 6 (RL step 2).
        for (failing, code, reason) in [("optimizer.safetensors", ENOSPC, "No space left on device"), (".latest.partial-", EACCES, "Permission denied")] {
            let output = root.appendingPathComponent("failing-\(code)")
            let hooks = RunHooks(writer: DurableWriter(fault: { url in
                let inStep6 = url.path.contains(".step-000006.partial-") || (failing.hasPrefix(".latest") && FileManager.default.fileExists(atPath: output.path + "/checkpoints/step-000006"))
                return inStep6 && url.lastPathComponent.hasPrefix(failing) ? code : nil
            }))
            let run = TrainingRun(configuration: try tinyRun(output), output: output, console: Console(quiet: true), hooks: hooks)
            XCTAssertThrowsError(try run.run(resume: false, stop: StopSignal())) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains("checkpoint step-000006 not saved: cannot write \(output.path)/checkpoints/"), message)
                XCTAssertTrue(message.contains(failing) && message.contains(reason), message)
                XCTAssertTrue(message.contains("checkpoints/latest still names step-000004, which is intact"), message)
            }
            let directory = RunDirectory(output)
            XCTAssertEqual(try directory.latestCheckpoint()?.lastPathComponent, "step-000004")
            XCTAssertNoThrow(try CheckpointManifest.verify(directory.checkpointsURL.appendingPathComponent("step-000004")))
            let left = try FileManager.default.contentsOfDirectory(atPath: directory.checkpointsURL.path).sorted()
            XCTAssertEqual(left.filter { $0.contains("partial") }, [], "a half-written file or checkpoint was left behind")
            XCTAssertTrue(left.contains("step-000002") && left.contains("step-000004"), "\(left)")

            let resumed = TrainingRun(configuration: try tinyRun(output), output: output, console: Console(quiet: true))
            XCTAssertEqual(try resumed.run(resume: true, stop: StopSignal()), .completed)
            XCTAssertEqual(withoutTimings(try jsonLines(output.appendingPathComponent("metrics.jsonl"))), expected, "resumed after a failed write (\(reason))")
            XCTAssertEqual(try directory.latestCheckpoint()?.lastPathComponent, "step-000007")
        }
    }

    /// Re-saving a checkpoint that exists (the step a run resumed from, saved again) renames the
    /// old one aside, then the new one into place. A failed rename into place puts the old one
    /// back; when that fails too, as when a crash falls between the two renames, nothing is at
    /// the checkpoint's name and the old one, complete, is only under its set-aside name, where
    /// `restoreSetAsideDirectories` finds it and puts it back (the most recently written copy,
    /// when a crash left several).
    func testAReSaveStoppedBetweenItsRenamesLeavesTheOldCheckpointToPutBack() throws {
        let root = try temporaryDirectory(self)
        let run = RunDirectory(root)
        let model = tinyModel()
        let optimizer = AdamW(named: model.namedParameters)
        try run.saveCheckpoint(model: model, optimizer: optimizer, state: state(step: 2), globalStep: 2, keep: 2)
        let checkpoint = run.checkpointsURL.appendingPathComponent("step-000002")
        let savedState = try Data(contentsOf: checkpoint.appendingPathComponent("state.json"))
        var resaved = state(step: 2)
        resaved.elapsedSeconds = 9
        func entries() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: run.checkpointsURL.path).sorted() }

        var renamesIntoPlace = 0
        let failsOnce = RunDirectory(root, writer: DurableWriter(fault: { url in
            guard url.path == checkpoint.path else { return nil }
            renamesIntoPlace += 1
            return renamesIntoPlace == 1 ? EIO : nil
        }))
        XCTAssertThrowsError(try failsOnce.saveCheckpoint(model: model, optimizer: optimizer, state: resaved, globalStep: 2, keep: 2)) {
            XCTAssertTrue("\($0)".contains("cannot rename") && "\($0)".contains("Input/output error"), "\($0)")
        }
        XCTAssertEqual(renamesIntoPlace, 2, "the new checkpoint's rename into place, then the old one's rename back")
        XCTAssertEqual(try Data(contentsOf: checkpoint.appendingPathComponent("state.json")), savedState, "the old checkpoint is back in place")
        XCTAssertNoThrow(try CheckpointManifest.verify(checkpoint))
        XCTAssertEqual(try entries(), ["latest", "step-000002"])

        let failsAlways = RunDirectory(root, writer: DurableWriter(fault: { $0.path == checkpoint.path ? EIO : nil }))
        XCTAssertThrowsError(try failsAlways.saveCheckpoint(model: model, optimizer: optimizer, state: resaved, globalStep: 2, keep: 2))
        XCTAssertFalse(FileManager.default.fileExists(atPath: checkpoint.path))
        let aside = try XCTUnwrap(try entries().first { $0.hasPrefix(".step-000002.replaced-") })
        XCTAssertThrowsError(try run.latestCheckpoint()) { XCTAssertTrue("\($0)".contains("names step-000002, which does not exist"), "\($0)") }
        XCTAssertEqual(run.resumeCandidates().checkpoints, [], "without putting it back, resume finds nothing")

        // An older set-aside copy of the same checkpoint, left by an earlier crash, and damaged.
        let older = run.checkpointsURL.appendingPathComponent(".step-000002.replaced-1")
        try FileManager.default.copyItem(at: run.checkpointsURL.appendingPathComponent(aside), to: older)
        try Data("{}".utf8).write(to: older.appendingPathComponent("state.json"))
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSince1970: 0)], ofItemAtPath: older.path)

        XCTAssertEqual(try run.restoreSetAsideDirectories().map(\.path), [checkpoint.path])
        XCTAssertEqual(try Data(contentsOf: checkpoint.appendingPathComponent("state.json")), savedState)
        XCTAssertNoThrow(try CheckpointManifest.verify(checkpoint))
        XCTAssertEqual(try run.latestCheckpoint(), checkpoint)
        XCTAssertEqual(run.resumeCandidates().checkpoints, [checkpoint])
        XCTAssertNil(run.resumeCandidates().problem)
        XCTAssertEqual(try run.restoreSetAsideDirectories(), [], "nothing is put back over a checkpoint in place")
        try run.saveCheckpoint(model: model, optimizer: optimizer, state: state(step: 3), globalStep: 3, keep: 2)
        XCTAssertEqual(try entries(), ["latest", "step-000002", "step-000003"], "the next save prunes the leftover copy")
    }

    /// The same through a run: a run resumed at step 5 and stopped at once saves step 5 again;
    /// both renames of that save fail, which leaves what a crash between them leaves. The run
    /// stops naming the error; `--resume` puts step 5 back and resumes from it (not from step 4)
    /// to the metrics of an uninterrupted run.
    func testResumePutsBackACheckpointSetAsideByAnInterruptedReSave() throws {
        let root = try temporaryDirectory(self)
        let straight = root.appendingPathComponent("straight"), output = root.appendingPathComponent("resaved")
        XCTAssertEqual(try TrainingRun(configuration: tinyRun(straight), output: straight, console: Console(quiet: true)).run(resume: false, stop: StopSignal()), .completed)
        let expected = withoutTimings(try jsonLines(straight.appendingPathComponent("metrics.jsonl")))

        let stopAt5 = RunHooks(stopAfterGlobalStep: 5)
        XCTAssertEqual(try TrainingRun(configuration: tinyRun(output), output: output, console: Console(quiet: true), hooks: stopAt5).run(resume: false, stop: StopSignal()), .interrupted(signal: SIGINT))
        let step5 = output.appendingPathComponent("checkpoints/step-000005")
        let failing = RunHooks(stopAfterGlobalStep: 5, writer: DurableWriter(fault: { $0.path == step5.path ? EIO : nil }))
        XCTAssertThrowsError(try TrainingRun(configuration: tinyRun(output), output: output, console: Console(quiet: true), hooks: failing).run(resume: true, stop: StopSignal())) {
            let message = "\($0)"
            XCTAssertTrue(message.contains("checkpoint step-000005 not saved: cannot rename"), message)
            XCTAssertTrue(message.contains("names step-000005, which does not exist; --resume puts back the checkpoint the failed save set aside"), message)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: step5.path))

        let journal = Journal()
        let observed = RunHooks(writer: DurableWriter(observer: { journal.events.append($0) }))
        XCTAssertEqual(try TrainingRun(configuration: tinyRun(output), output: output, console: Console(quiet: true), hooks: observed).run(resume: true, stop: StopSignal()), .completed)
        let restored = journal.events.first {
            if case .renamed(let from, let to) = $0 { return to == step5.path && from.contains("/.step-000005.replaced-") }
            return false
        }
        XCTAssertNotNil(restored, "step 5 is put back from its set-aside copy")
        XCTAssertEqual(journal.events.first { if case .renamed = $0 { return true } else { return false } }, restored, "before anything else is renamed")
        XCTAssertEqual(withoutTimings(try jsonLines(output.appendingPathComponent("metrics.jsonl"))), expected)
        XCTAssertEqual(try RunDirectory(output).latestCheckpoint()?.lastPathComponent, "step-000007")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: output.appendingPathComponent("checkpoints").path).filter { $0.hasPrefix(".") }, [])
    }

    /// A real full disk, through the binary: a small tmpfs, mounted when the tests run as root
    /// with the right to mount (skipped elsewhere), filled until a checkpoint no longer fits.
    /// The run exits 2 naming the path and "No space left on device"; `latest` and its
    /// checkpoint are intact; once space is freed, `--resume` gives the uninterrupted metrics.
    func testAFullDiskStopsTheRunWithExit2AndResumeContinues() throws {
        let root = try temporaryDirectory(self)
        let disk = root.appendingPathComponent("disk")
        try FileManager.default.createDirectory(at: disk, withIntermediateDirectories: true)
        let env = URL(fileURLWithPath: "/usr/bin/env")
        let mount = try runProcess(env, ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", disk.path])
        guard mount.status == 0 else { throw XCTSkip("cannot mount a tmpfs here: \(mount.error)") }
        addTeardownBlock { _ = try? runProcess(env, ["umount", disk.path]) }

        let output = disk.appendingPathComponent("run")
        let (configURL, expected) = try uninterruptedAndStoppedAtStep5(root: root, output: output)

        // Fill the disk, then free a third of a checkpoint: room for the logs, not a checkpoint.
        let checkpoint = output.appendingPathComponent("checkpoints/step-000005")
        let checkpointBytes = try CheckpointManifest.regularFiles(in: checkpoint).reduce(0) {
            $0 + ((try FileManager.default.attributesOfItem(atPath: checkpoint.appendingPathComponent($1).path)[.size] as? NSNumber)?.intValue ?? 0)
        }
        let filler = disk.appendingPathComponent("filler")
        FileManager.default.createFile(atPath: filler.path, contents: nil)
        let handle = try FileHandle(forWritingTo: filler)
        let chunk = Data(count: 16_384)
        var filled = 0
        while (try? handle.write(contentsOf: chunk)) != nil { filled += chunk.count }
        try handle.truncate(atOffset: UInt64(max(filled - checkpointBytes / 3, 0)))
        try handle.close()

        let full = try runArpoTrain(["--config", configURL.path, "--resume", "--quiet"])
        XCTAssertEqual(full.status, 2, full.error)
        XCTAssertTrue(full.error.contains("checkpoint step-000006 not saved: cannot write \(output.path)/checkpoints/.step-000006.partial-"), full.error)
        XCTAssertTrue(full.error.contains("No space left on device"), full.error)
        XCTAssertTrue(full.error.contains("checkpoints/latest still names step-000005, which is intact"), full.error)
        XCTAssertEqual(try RunDirectory(output).latestCheckpoint()?.lastPathComponent, "step-000005")
        XCTAssertNoThrow(try CheckpointManifest.verify(checkpoint))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: output.appendingPathComponent("checkpoints").path).filter { $0.contains("partial") }, [])

        try FileManager.default.removeItem(at: filler)
        let resumed = try runArpoTrain(["--config", configURL.path, "--resume", "--quiet"])
        XCTAssertEqual(resumed.status, 0, resumed.error)
        XCTAssertEqual(withoutTimings(try jsonLines(output.appendingPathComponent("metrics.jsonl"))), expected)
    }

    /// Through the real binary: the tiny run uninterrupted (into `root/straight`), then again into
    /// `output`, stopped after step 5 (exit 130). Returns the config file, which names `output`,
    /// and the uninterrupted run's metrics without timings.
    func uninterruptedAndStoppedAtStep5(root: URL, output: URL, file: StaticString = #filePath, line: UInt = #line) throws -> (URL, [NSDictionary]) {
        let straight = root.appendingPathComponent("straight")
        let configURL = root.appendingPathComponent("run.json")
        try Data(tinyConfig(output: straight).utf8).write(to: configURL)
        XCTAssertEqual(try runArpoTrain(["--config", configURL.path, "--quiet"]).status, 0, file: file, line: line)
        let expected = withoutTimings(try jsonLines(straight.appendingPathComponent("metrics.jsonl")))
        try Data(tinyConfig(output: output).utf8).write(to: configURL)
        XCTAssertEqual(try runArpoTrain(["--config", configURL.path, "--quiet"], environment: ["ARPO_STOP_AFTER_STEPS": "5"]).status, 130, file: file, line: line)
        return (configURL, expected)
    }

    /// `--resume` past a latest checkpoint that fails verification: it says which and why, and
    /// continues from the newest that verifies, to the same metrics as an uninterrupted run. When
    /// none verifies it exits 2 naming each. Also through the real binary.
    func testResumeFallsBackToTheNewestCheckpointThatVerifies() throws {
        let root = try temporaryDirectory(self)
        let resumed = root.appendingPathComponent("resumed")
        let (configURL, expected) = try uninterruptedAndStoppedAtStep5(root: root, output: resumed)
        let checkpoints = resumed.appendingPathComponent("checkpoints")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: checkpoints.path).filter { $0.hasPrefix("step-") }.sorted(), ["step-000004", "step-000005"])
        let weights = checkpoints.appendingPathComponent("step-000005/model/model.safetensors")
        var data = try Data(contentsOf: weights)
        data[data.count - 1] ^= 0x40
        try data.write(to: weights)
        let continued = try runArpoTrain(["--config", configURL.path, "--resume"])
        XCTAssertEqual(continued.status, 0, continued.error)
        XCTAssertTrue(continued.error.contains("the latest checkpoint does not verify, so the run resumes from step-000004"), continued.error)
        XCTAssertTrue(continued.error.contains("step-000005: \(weights.path) does not match its SHA-256"), continued.error)
        XCTAssertEqual(withoutTimings(try jsonLines(resumed.appendingPathComponent("metrics.jsonl"))), expected)
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: checkpoints.path).contains { $0.contains("step-000005") }, "the set-aside checkpoint is removed at the next save")

        // A latest that names no checkpoint falls back too.
        try Data("../../etc\n".utf8).write(to: checkpoints.appendingPathComponent("latest"))
        try Data(tinyConfig(output: resumed, rlSteps: 4).utf8).write(to: configURL)
        let renamed = try runArpoTrain(["--config", configURL.path, "--resume", "--quiet"])
        XCTAssertEqual(renamed.status, 0, renamed.error)
        XCTAssertTrue(renamed.error.contains("names no checkpoint (\"../../etc\")"), renamed.error)

        // None verifies: exit 2, naming each checkpoint and why.
        let names = try FileManager.default.contentsOfDirectory(atPath: checkpoints.path).filter { $0.hasPrefix("step-") }.sorted()
        XCTAssertEqual(names.count, 2)
        try FileManager.default.removeItem(at: checkpoints.appendingPathComponent(names[0] + "/manifest.json"))
        let newestWeights = checkpoints.appendingPathComponent(names[1] + "/model/model.safetensors")
        try Data(try Data(contentsOf: newestWeights).prefix(64)).write(to: newestWeights)
        try Data(tinyConfig(output: resumed, rlSteps: 6).utf8).write(to: configURL)
        let none = try runArpoTrain(["--config", configURL.path, "--resume"])
        XCTAssertEqual(none.status, 2, none.error)
        XCTAssertTrue(none.error.contains("no checkpoint in \(checkpoints.path) verifies"), none.error)
        XCTAssertTrue(none.error.contains("\(names[1]): \(newestWeights.path) has 64 bytes, its manifest says"), none.error)
        XCTAssertTrue(none.error.contains("\(names[0]): \(checkpoints.path)/\(names[0]) has no manifest.json"), none.error)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: checkpoints.path).filter { $0.hasPrefix("step-") }.sorted(), names, "nothing is set aside when nothing verifies")
    }

    /// A model directory from elsewhere (no manifest) with non-finite weights: `eval` and
    /// `sft.init_from` refuse it with exit 2, naming the tensor and the count; `eval` of a run's
    /// checkpoint verifies its manifest.
    func testModelDirectoriesFromElsewhereAreCheckedForNonFiniteWeights() throws {
        let root = try temporaryDirectory(self)
        let model = tinyModel()
        let directory = root.appendingPathComponent("model")
        try ModelCheckpoint.save(model, to: directory)
        var parameters = model.namedParameters.map { ($0.name, $0.tensor) }
        let index = parameters.firstIndex { $0.0 == "model.embed_tokens.weight" }!
        var values = parameters[index].1.floats
        for position in [0, 7, 11, 100] { values[position] = .nan }
        parameters[index].1 = Tensor(shape: parameters[index].1.shape, scalars: values)
        try Safetensors.write(parameters, metadata: ["format": "pt"], to: directory.appendingPathComponent("model.safetensors"))
        let evaluation = try runArpoTrain(["eval", "--checkpoint", directory.path, "--episodes", "1"])
        XCTAssertEqual(evaluation.status, 2, evaluation.output)
        XCTAssertTrue(evaluation.error.contains("model.embed_tokens.weight has 4 of \(values.count)"), evaluation.error)

        let configURL = root.appendingPathComponent("run.json")
        let output = root.appendingPathComponent("out")
        // The weights are checked as they load, before their architecture is compared.
        let config = tinyConfig(output: output)
            .replacingOccurrences(of: #""sft": {"steps": 4,"#, with: #""sft": {"init_from": "\#(directory.path)", "steps": 0,"#)
        try Data(config.utf8).write(to: configURL)
        let initial = try runArpoTrain(["--config", configURL.path])
        XCTAssertEqual(initial.status, 2, initial.output)
        XCTAssertTrue(initial.error.contains("sft.init_from") && initial.error.contains("model.embed_tokens.weight has 4 of"), initial.error)
        XCTAssertFalse(FileManager.default.fileExists(atPath: output.path))

        // A run's checkpoint whose weights rotted: eval names the file.
        let run = RunDirectory(root.appendingPathComponent("run"))
        try FileManager.default.createDirectory(at: run.url, withIntermediateDirectories: true)
        try run.saveCheckpoint(model: model, optimizer: AdamW(named: model.namedParameters), state: state(step: 1), globalStep: 1, keep: 1)
        let weights = run.checkpointsURL.appendingPathComponent("step-000001/model/model.safetensors")
        var data = try Data(contentsOf: weights)
        data[data.count - 2] ^= 0x10
        try data.write(to: weights)
        for path in [run.url.path, run.checkpointsURL.appendingPathComponent("step-000001").path, weights.deletingLastPathComponent().path] {
            let rotted = try runArpoTrain(["eval", "--checkpoint", path, "--episodes", "1"])
            XCTAssertEqual(rotted.status, 2, rotted.output)
            XCTAssertTrue(rotted.error.contains("\(weights.path) does not match its SHA-256"), rotted.error)
        }
    }
}
