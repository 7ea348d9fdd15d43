import ARPO
import Foundation
import Policy
import Tensor
import ToolEnv
@testable import Trainer
import XCTest

/// The tokenizer files of the model directories a run writes: every checkpoint's `model/` and
/// `reference/` hold `tokenizer.json` and `tokenizer_config.json`, whose chat template writes
/// calls in the run's `env.call_format`, and both are in the manifest.
final class ModelDirectoryTokenizerTests: XCTestCase {
    func tinyModel(_ tokenizer: Tokenizer) -> LlamaModel {
        var generator = RandomGenerator(seed: 3)
        return LlamaModel(configuration: LlamaConfiguration(vocabularySize: tokenizer.vocabularySize, hiddenSize: 16, intermediateSize: 24, layerCount: 1, headCount: 2, maxPositions: 40), generator: &generator)
    }

    func state() -> RunState {
        RunState(phase: .sft, sftStep: 1, rlStep: 0, generator: RandomGenerator(seed: 5), consecutiveNonfinite: 0, referencePolicy: nil, accuracyAfterSFT: nil, toolCallsExecuted: 0, elapsedSeconds: 1)
    }

    func tokenizerConfig(_ directory: URL) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent(Tokenizer.configFileName))) as? [String: Any])
    }

    func testCheckpointsAndTheReferenceHoldTheTokenizerConfigWithTheRunsCallFormat() throws {
        let tokenizer = try Tokenizer.train(texts: ["Zikstu Zikstu leader leader of of"], mergeCount: 4)
        let model = tinyModel(tokenizer)
        let run = RunDirectory(try temporaryDirectory(self))
        try run.saveCheckpoint(model: model, tokenizer: tokenizer, callFormat: .json, optimizer: AdamW(named: model.namedParameters), state: state(), globalStep: 1, keep: 1)
        try run.saveReference(model: model, tokenizer: tokenizer, callFormat: .compact)
        let checkpoint = try XCTUnwrap(run.latestCheckpoint())
        for (directory, format) in [(checkpoint.appendingPathComponent("model"), CallFormat.json), (run.referenceURL, .compact)] {
            let config = try tokenizerConfig(directory)
            XCTAssertEqual(config["chat_template"] as? String, format.chatTemplate, directory.path)
            XCTAssertEqual(config["model_max_length"] as? Int, 40)
            XCTAssertEqual(try ModelCheckpoint.loadTokenizer(from: directory, vocabularySize: tokenizer.vocabularySize), tokenizer)
        }
        func manifest(_ directory: URL) throws -> CheckpointManifest {
            try JSONDecoder().decode(CheckpointManifest.self, from: Data(contentsOf: directory.appendingPathComponent(CheckpointManifest.fileName)))
        }
        XCTAssertNotNil(try manifest(checkpoint).files["model/\(Tokenizer.configFileName)"])
        XCTAssertNotNil(try manifest(run.referenceURL).files[Tokenizer.configFileName])
    }

    /// `tokenizer_config.json` is only for `transformers`: a checkpoint and a reference whose
    /// manifests do not list it load as before.
    func testDirectoriesWithoutTheTokenizerConfigStillLoad() throws {
        let tokenizer = Tokenizer()
        let model = tinyModel(tokenizer)
        let run = RunDirectory(try temporaryDirectory(self))
        let withoutConfig = try ModelCheckpoint.files(model, tokenizer: tokenizer).filter { $0.name != Tokenizer.configFileName }
        let checkpoint = run.checkpointsURL.appendingPathComponent(RunDirectory.checkpointName(1))
        try run.writer.makeDirectory(run.checkpointsURL)
        let encoder = JSONEncoder()
        try run.writer.writeDirectory(CheckpointManifest.withManifest(withoutConfig.map { (path: "model/\($0.name)", data: $0.data) } + [
            ("optimizer.safetensors", AdamW(named: model.namedParameters).encoded()), ("state.json", try encoder.encode(state())),
        ]), to: checkpoint)
        try run.writer.writeDirectory(CheckpointManifest.withManifest(withoutConfig.map { (path: $0.name, data: $0.data) }), to: run.referenceURL)
        XCTAssertNoThrow(try RunDirectory.loadCheckpoint(checkpoint, configuration: model.configuration) { _, model in AdamW(named: model.namedParameters) })
        XCTAssertNoThrow(try run.loadReference(run.referenceURL.lastPathComponent, configuration: model.configuration))
    }
}

/// The real binary writes the run's call format into every model directory's chat template.
final class ModelDirectoryTokenizerCommandLineTests: XCTestCase {
    func testATrainingRunWritesItsCallFormatsChatTemplate() throws {
        let root = try temporaryDirectory(self)
        let output = root.appendingPathComponent("run")
        let config = root.appendingPathComponent("tiny.json")
        try Data(tinyConfig(output: output, algorithm: "grpo", rlSteps: 2).utf8).write(to: config)
        let run = try runArpoTrain(["--config", config.path, "--set", "env.call_format=json", "--quiet"])
        XCTAssertEqual(run.status, 0, run.error)
        let latest = try XCTUnwrap(RunDirectory(output).latestCheckpoint())
        for directory in [output.appendingPathComponent("reference"), latest.appendingPathComponent("model")] {
            let data = try Data(contentsOf: directory.appendingPathComponent(Tokenizer.configFileName))
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
            let format = CallFormat.allCases.first { $0.chatTemplate == object["chat_template"] as? String }
            XCTAssertEqual(format, .json, "the chat template of \(directory.path)")
        }
    }
}
