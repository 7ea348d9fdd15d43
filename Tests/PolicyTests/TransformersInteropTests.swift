import Foundation
import Policy
import Tensor
import XCTest

/// A checkpoint written here loads in Hugging Face `transformers` and computes the same logits.
///
/// Needs a Python with torch and transformers: set `ARPO_TRANSFORMERS_PYTHON` to its
/// interpreter (the test is skipped otherwise, saying so; CI machines have no torch).
final class TransformersInteropTests: XCTestCase {
    func testTransformersLoadsOurCheckpointWithTheSameLogits() throws {
        guard let python = ProcessInfo.processInfo.environment["ARPO_TRANSFORMERS_PYTHON"] else {
            throw XCTSkip("set ARPO_TRANSFORMERS_PYTHON to a Python with torch and transformers to run this check")
        }
        var generator = RandomGenerator(seed: 12)
        let configuration = LlamaConfiguration(hiddenSize: 32, intermediateSize: 64, layerCount: 2, headCount: 4, keyValueHeadCount: 2, maxPositions: 64, tieWordEmbeddings: false, valueHead: true)
        let model = LlamaModel(configuration: configuration, generator: &generator)
        for parameter in model.parameters where parameter.rank == 2 { parameter.scaleInPlace(by: 5) }
        let directory = try temporaryDirectory(self)
        let checkpoint = directory.appendingPathComponent("model")
        try ModelCheckpoint.save(model, to: checkpoint)
        let tokens = [[259, 65, 66, 67, 260, 261, 99, 262, 263, 48, 264, 265]]
        let logits = withoutGradients { model.forward(TokenBatch(sequences: tokens, padding: 258)).logits }
        let v = configuration.vocabularySize
        let values = logits.doubles
        let nested = (0..<tokens[0].count).map { Array(values[($0 * v)..<(($0 + 1) * v)]) }
        let expected = directory.appendingPathComponent("expected.json")
        try JSONSerialization.data(withJSONObject: ["tokens": tokens, "logits": [nested]]).write(to: expected)

        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scripts/check_transformers.py")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script.path, checkpoint.path, expected.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = Pipe()
        try process.run()
        process.waitUntilExit()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 0, "transformers check failed: \(output)")
        XCTAssertTrue(output.contains("max_abs_logit_difference"), output)
        print("transformers interop: \(output.trimmingCharacters(in: .whitespacesAndNewlines))")
    }
}
