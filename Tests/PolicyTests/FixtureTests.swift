import Foundation
import Policy
import Tensor
import XCTest

/// The policy against what PyTorch and Hugging Face `transformers` compute for the llama-tiny
/// fixture (Fixtures/llama-tiny and its README): logits, entropies, next-token log-probs, loss, every parameter's
/// gradient, and one AdamW step.
final class FixtureTests: XCTestCase {
    struct FixtureBatch: Decodable {
        let tokens: [[Int]]
        let lengths: [Int]
        let adamw: AdamSettings
        struct AdamSettings: Decodable {
            let lr: Double, beta1: Double, beta2: Double, eps: Double
            let weight_decay: Double
        }
    }

    var fixture: URL!
    var batch: FixtureBatch!
    var expected: [String: Tensor]!

    override func setUpWithError() throws {
        fixture = try llamaTinyFixture()
        batch = try JSONDecoder().decode(FixtureBatch.self, from: Data(contentsOf: fixture.appendingPathComponent("batch.json")))
        expected = try Safetensors.read(fixture.appendingPathComponent("expected.safetensors")).tensors
    }

    func tokenBatch() -> TokenBatch {
        TokenBatch(tokens: batch.tokens.flatMap { $0 }, batchSize: batch.tokens.count, length: batch.tokens[0].count, lengths: batch.lengths)
    }

    /// Values at positions < length of each row, from a (B, T, …) array.
    func validPositions(_ values: [Double], width: Int, time: Int) -> [Double] {
        var result: [Double] = []
        for (row, length) in batch.lengths.enumerated() {
            result += values[(row * time * width)..<((row * time + length) * width)]
        }
        return result
    }

    func testLoadsHuggingFaceConfigAndWeights() throws {
        let model = try ModelCheckpoint.load(from: fixture, dtype: .float64)
        XCTAssertEqual(model.configuration.hiddenSize, 64)
        XCTAssertEqual(model.configuration.layerCount, 2)
        XCTAssertEqual(model.configuration.headCount, 4)
        XCTAssertEqual(model.configuration.intermediateSize, 160)
        XCTAssertEqual(model.configuration.ropeTheta, 10_000)  // read from rope_parameters
        XCTAssertTrue(model.configuration.tieWordEmbeddings)
        XCTAssertEqual(model.namedParameters.count, 1 + 2 * 9 + 1)
    }

    func testForwardMatchesTransformersInFloat64() throws {
        let model = try ModelCheckpoint.load(from: fixture, dtype: .float64)
        let input = tokenBatch()
        let statistics = withoutGradients { model.tokenStatistics(input) }
        let logits = withoutGradients { model.forward(input).logits }
        let (t, v) = (input.length, model.configuration.vocabularySize)

        let logitError = maxAbsoluteDifference(validPositions(logits.doubles, width: v, time: t), validPositions(expected["logits"]!.doubles, width: v, time: t))
        XCTAssertLessThan(logitError, 1e-6, "logits differ from transformers by \(logitError)")

        let entropyError = maxAbsoluteDifference(validPositions(statistics.entropies.doubles, width: 1, time: t), validPositions(expected["entropies"]!.doubles, width: 1, time: t))
        XCTAssertLessThan(entropyError, 1e-6, "entropies differ by \(entropyError)")

        // logprobs_next is 0 where the loss mask is 0, as ours is.
        let logProbabilityError = maxAbsoluteDifference(statistics.logProbabilities.doubles, expected["logprobs_next"]!.doubles)
        XCTAssertLessThan(logProbabilityError, 1e-6, "next-token log-probs differ by \(logProbabilityError)")
    }

    func testForwardMatchesTransformersInFloat32() throws {
        let model = try ModelCheckpoint.load(from: fixture, dtype: .float32)
        let input = tokenBatch()
        let logits = withoutGradients { model.forward(input).logits }
        let (t, v) = (input.length, model.configuration.vocabularySize)
        let ours = validPositions(logits.doubles, width: v, time: t)
        let reference = validPositions(expected["logits"]!.doubles, width: v, time: t)
        let scale = reference.map(Swift.abs).max()!
        XCTAssertLessThan(maxAbsoluteDifference(ours, reference) / scale, 1e-4)
    }

    /// The loss, the gradient of every parameter, and the parameters after one AdamW step.
    func testLossGradientsAndAdamWStepMatchPyTorch() throws {
        let model = try ModelCheckpoint.load(from: fixture, dtype: .float64)
        let input = tokenBatch()
        let statistics = model.tokenStatistics(input)
        let mask = expected["loss_mask"]!
        let loss = -statistics.logProbabilities.sum() / mask.sum().item
        XCTAssertEqual(loss.item, expected["loss"]!.item, accuracy: 1e-8)

        loss.backward()
        for (name, parameter) in model.namedParameters {
            let reference = expected["grad.\(name)"]!.doubles
            let ours = parameter.gradient!.doubles
            let scale = Swift.max(reference.map(Swift.abs).max()!, 1e-12)
            let error = maxAbsoluteDifference(ours, reference)
            XCTAssertLessThan(error, 1e-8 + 1e-5 * scale, "gradient of \(name) differs by \(error) (scale \(scale))")
        }

        // Adam divides by √v + ε, so a gradient within ~1e-8 of zero turns a 1e-12 difference
        // (transformers' Float32 RoPE tables) into a visible step difference. Step from PyTorch's
        // own gradients to check the optimizer alone.
        for (name, parameter) in model.namedParameters { parameter.gradient!.assign(expected["grad.\(name)"]!) }
        let settings = batch.adamw
        let optimizer = AdamW(
            named: model.namedParameters,
            hyperparameters: .init(beta1: settings.beta1, beta2: settings.beta2, epsilon: settings.eps, weightDecay: settings.weight_decay))
        optimizer.update(learningRate: settings.lr)
        // The fixture holds the step for the embedding, the final norm and every weight of layer
        // 0 (see its README): AdamW is elementwise, so layer 1 would repeat them.
        var checked = 0
        for (name, parameter) in model.namedParameters {
            guard let reference = expected["adamw_step1.\(name)"] else { continue }
            let error = maxAbsoluteDifference(parameter.doubles, reference.doubles)
            XCTAssertLessThan(error, 1e-12, "\(name) after one AdamW step differs by \(error)")
            checked += 1
        }
        XCTAssertEqual(checked, 1 + 9 + 1, "the embedding, layer 0's nine weights and the final norm")
    }
}
