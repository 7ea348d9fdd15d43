import ARPO
import Foundation
import Policy
import Tensor
@testable import Trainer
import XCTest

/// The memory bank in a run (`rl.memory_bank`): its keys and their errors, its file in a
/// checkpoint, and a resume that restores it bit for bit.
final class MemoryBankRunTests: XCTestCase {
    func testMemoryBankKeysLoadAndErrorsNameTheKeyPath() throws {
        let configuration = try ConfigurationLoader.decode(Data(
            #"{"rl": {"memory_bank": {"coefficient": 0.2, "capacity": 3, "rows_per_step": 5, "require_correct": false, "min_reward": 0.5}}}"#.utf8))
        XCTAssertEqual(configuration.rl.memoryBank.coefficient, 0.2)
        XCTAssertEqual(configuration.rl.memoryBank.capacity, 3)
        XCTAssertEqual(configuration.rl.memoryBank.rowsPerStep, 5)
        XCTAssertFalse(configuration.rl.memoryBank.requireCorrect)
        XCTAssertEqual(configuration.rl.memoryBank.minimumReward, 0.5)
        XCTAssertEqual(configuration.rl.update.replayCoefficient, 0.2)
        let defaults = try ConfigurationLoader.decode(Data("{}".utf8)).rl.memoryBank
        XCTAssertEqual(defaults, MemoryBankConfiguration())
        XCTAssertFalse(defaults.isEnabled)
        for (json, message) in [
            (#"{"rl": {"memory_bank": {"capacity": 0}}}"#, "rl.memory_bank.capacity must be in 1...100000, got 0"),
            (#"{"rl": {"memory_bank": {"coefficient": -0.5}}}"#, "rl.memory_bank.coefficient must be a finite number at least 0 (0 replays nothing), got -0.5"),
            (#"{"rl": {"memory_bank": {"contrastive_coefficient": -1}}}"#, "rl.memory_bank.contrastive_coefficient must be a finite number at least 0 (0 trains no contrastive pair), got -1.0"),
            (#"{"rl": {"memory_bank": {"rows_per_step": 0}}}"#, "rl.memory_bank.rows_per_step must be in 1...4096, got 0"),
            (#"{"rl": {"memory_bank": {"capasity": 2}}}"#, "unknown key rl.memory_bank.capasity (did you mean rl.memory_bank.capacity?)"),
            (#"{"rl": {"memory_bank": {"require_correct": 1}}}"#, "rl.memory_bank.require_correct has the wrong type: expected true or false"),
            (#"{"rl": {"memory_bank": 3}}"#, "rl.memory_bank must be an object with keys capacity, coefficient, contrastive_coefficient, min_reward, require_correct, rows_per_step"),
        ] {
            XCTAssertThrowsError(try ConfigurationLoader.decode(Data(json.utf8))) { error in
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
        }
    }

    /// A checkpoint holds `memory_bank.json`, listed in its manifest with its size and SHA-256;
    /// it loads back equal, and a damaged copy is refused by the manifest by name.
    func testACheckpointHoldsTheBankListedInItsManifest() throws {
        let root = try temporaryDirectory(self)
        let run = RunDirectory(root)
        var generator = RandomGenerator(seed: 3)
        let model = LlamaModel(configuration: LlamaConfiguration(hiddenSize: 16, intermediateSize: 24, layerCount: 1, headCount: 2, maxPositions: 32), generator: &generator)
        let state = RunState(
            phase: .rl, sftStep: 4, rlStep: 1, generator: RandomGenerator(seed: 5), consecutiveNonfinite: 0, referencePolicy: "reference", accuracyAfterSFT: 0.5,
            toolCallsExecuted: 3, elapsedSeconds: 1.5)
        var bank = MemoryBank(capacity: 2)
        bank.admit([
            MemoryBankEntry(family: "arithmetic", promptTokens: [259, 49, 260], responseTokens: [261, 50, 262, 263, 51, 264], lossMask: [true, true, true, false, false, false],
                            reward: 1.1, step: 1, record: 2),
            MemoryBankEntry(family: "single_hop", promptTokens: [259, 52, 260], responseTokens: [265, 53, 266], lossMask: [true, true, true], reward: 1.0 / 3.0, step: 1, record: 5),
        ])
        try run.saveCheckpoint(model: model, optimizer: AdamW(named: model.namedParameters), state: state, memoryBank: bank, globalStep: 5, keep: 2)
        let checkpoint = root.appendingPathComponent("checkpoints/step-000005")
        let manifest = try JSONDecoder().decode(CheckpointManifest.self, from: Data(contentsOf: checkpoint.appendingPathComponent(CheckpointManifest.fileName)))
        let file = checkpoint.appendingPathComponent(MemoryBank.fileName)
        XCTAssertEqual(manifest.files[MemoryBank.fileName]?.sha256, CheckpointManifest.sha256(try Data(contentsOf: file)))
        XCTAssertEqual(try RunDirectory.loadMemoryBank(checkpoint, capacity: 2), bank)

        // Without a bank, no file.
        try run.saveCheckpoint(model: model, optimizer: AdamW(named: model.namedParameters), state: state, globalStep: 6, keep: 2)
        XCTAssertNil(try RunDirectory.loadMemoryBank(root.appendingPathComponent("checkpoints/step-000006"), capacity: 2))

        var damaged = try Data(contentsOf: file)
        damaged[damaged.count / 2] ^= 0x01
        try damaged.write(to: file)
        XCTAssertThrowsError(try CheckpointManifest.verify(checkpoint)) { error in
            XCTAssertTrue("\(error)".contains("memory_bank.json does not match its SHA-256"), "\(error)")
        }
    }

    /// Through the real binary: a run with the bank on (every trajectory admitted, so that a
    /// policy this small fills it), stopped after global step 5 (one RL step) and resumed, gives
    /// the uninterrupted run's metrics, weights, optimizer moments and bank, bit for bit.
    func testAStoppedAndResumedRunRestoresTheBankBitForBit() throws {
        let root = try temporaryDirectory(self)
        let bankSettings = [
            "--set", "rl.memory_bank.coefficient=0.5", "--set", "rl.memory_bank.capacity=2", "--set", "rl.memory_bank.rows_per_step=3",
            "--set", "rl.memory_bank.require_correct=false", "--set", "rl.memory_bank.min_reward=-1",
        ]
        let straight = root.appendingPathComponent("straight"), resumed = root.appendingPathComponent("resumed")
        let straightConfig = root.appendingPathComponent("straight.json"), resumedConfig = root.appendingPathComponent("resumed.json")
        try Data(tinyConfig(output: straight).utf8).write(to: straightConfig)
        try Data(tinyConfig(output: resumed).utf8).write(to: resumedConfig)

        let full = try runArpoTrain(["--config", straightConfig.path, "--quiet"] + bankSettings)
        XCTAssertEqual(full.status, 0, full.error)
        let expected = try jsonLines(straight.appendingPathComponent("metrics.jsonl")).filter { $0["phase"] as? String == "rl" }
        XCTAssertEqual(expected.count, 3)
        XCTAssertEqual(expected[0]["memory_bank_replayed_rows"] as? Int, 0, "the first step has nothing to replay")
        XCTAssertTrue(expected[0]["memory_bank_replay_loss"] is NSNull)
        for record in expected {
            XCTAssertGreaterThan(record["memory_bank_size"] as! Int, 0, "\(record)")
            XCTAssertNotNil(record["memory_bank_admitted"] as? Int)
        }
        // Each later step replays rows_per_step rows, or the whole bank as the step before left it.
        for (previous, record) in zip(expected, expected.dropFirst()) {
            XCTAssertEqual(record["memory_bank_replayed_rows"] as? Int, min(3, previous["memory_bank_size"] as! Int), "\(record)")
            XCTAssertGreaterThan(record["memory_bank_replay_loss"] as? Double ?? 0, 0)
        }

        let stopped = try runArpoTrain(["--config", resumedConfig.path, "--quiet"] + bankSettings, environment: ["ARPO_STOP_AFTER_STEPS": "5"])
        XCTAssertEqual(stopped.status, 130, stopped.error)
        let atStop = try RunDirectory.loadMemoryBank(resumed.appendingPathComponent("checkpoints/step-000005"), capacity: 2)
        XCTAssertEqual(atStop?.count, expected[0]["memory_bank_size"] as? Int)
        let continued = try runArpoTrain(["--config", resumedConfig.path, "--resume", "--quiet"] + bankSettings)
        XCTAssertEqual(continued.status, 0, continued.error)

        XCTAssertEqual(withoutTimings(try jsonLines(resumed.appendingPathComponent("metrics.jsonl"))), withoutTimings(try jsonLines(straight.appendingPathComponent("metrics.jsonl"))))
        for file in ["model/model.safetensors", "optimizer.safetensors", MemoryBank.fileName] {
            let path = "checkpoints/step-000007/\(file)"
            XCTAssertEqual(try Data(contentsOf: resumed.appendingPathComponent(path)), try Data(contentsOf: straight.appendingPathComponent(path)), path)
        }
    }
}
