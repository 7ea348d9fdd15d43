import ARPO
import Foundation
import Policy
import Tensor
import ToolEnv
import XCTest

/// The supervised cold start: which demonstrations it teaches, on which tokens, in which order.
final class ColdStartTests: XCTestCase {
    func makeTrainer(demonstrations: Int = 60, maxResponseTokens: Int? = nil, taskMix: [TaskFamily: Double] = EnvironmentConfig.defaultTaskMix, steps: Int = 10, learningRate: Double = 3e-3, fresh: Bool = false, contextLossWeight: Double = 0, documentFraction: Double = 0, copyDrillFraction: Double = 0, packing: Bool = true, packingLength: Int? = nil, dtype: DType = .float32) -> SupervisedTrainer {
        var generator = RandomGenerator(seed: 3)
        let model = LlamaModel(configuration: LlamaConfiguration(hiddenSize: 32, intermediateSize: 64, layerCount: 1, headCount: 2, maxPositions: 512), dtype: dtype, generator: &generator)
        var configuration = SupervisedConfiguration()
        configuration.demonstrations = demonstrations
        configuration.batchSize = 8
        configuration.steps = steps
        configuration.learningRate = learningRate
        configuration.freshDemonstrations = fresh
        configuration.contextLossWeight = contextLossWeight
        configuration.documentFraction = documentFraction
        configuration.copyDrillFraction = copyDrillFraction
        configuration.packing = packing
        configuration.packingLength = packingLength
        let environment = EnvironmentConfig(taskMix: taskMix, difficulty: 1, faults: FaultConfig(failureProbability: 0, degradedProbability: 0))
        return SupervisedTrainer(model: model, optimizer: AdamW(named: model.namedParameters), configuration: configuration, environment: environment, seed: 5, maxResponseTokens: maxResponseTokens)
    }

    func testLossIsOnThePolicysTokensOnlyNotOnThePromptOrObservations() {
        let trainer = makeTrainer(demonstrations: 20)
        let codec = ProtocolCodec(), tokenizer = Tokenizer()
        XCTAssertEqual(trainer.examples.count, 20)
        for example in trainer.examples {
            XCTAssertEqual(example.tokens.count, example.lossMask.count)
            let assistant = example.tokens.firstIndex(of: tokenizer.id(of: "<|assistant|>"))!
            XCTAssertFalse(example.lossMask[...assistant].contains(true), "prompt tokens are trained")
            XCTAssertEqual(example.tokens.last, codec.endID)
            XCTAssertTrue(example.lossMask.last!, "<|end|> is the policy's")
            // Inside <obs>…</obs> nothing is trained; the tags around it are the environment's.
            var inObservation = false
            for (token, trained) in zip(example.tokens, example.lossMask) {
                if token == tokenizer.id(of: "<obs>") { inObservation = true }
                if inObservation { XCTAssertFalse(trained, "observation token \(token) is trained") }
                if token == tokenizer.id(of: "</obs>") { inObservation = false }
            }
        }
    }

    func testDemonstrationsLongerThanTheResponseLimitAreLeftOutAndCounted() {
        let all = makeTrainer(demonstrations: 60)
        let limited = makeTrainer(demonstrations: 60, maxResponseTokens: 90)
        let promptLength = { (example: SupervisedTrainer.Example) in example.lossMask.firstIndex(of: true)! }
        XCTAssertTrue(all.examples.contains { $0.tokens.count - promptLength($0) > 90 })
        XCTAssertTrue(limited.examples.allSatisfy { $0.tokens.count - promptLength($0) <= 90 })
        XCTAssertEqual(limited.examples.count + limited.tooLong.values.reduce(0, +), all.examples.count)
        // Two-search families never fit 90 tokens; arithmetic always does.
        XCTAssertGreaterThan(limited.tooLong[.multiHop] ?? 0, 0)
        XCTAssertNil(limited.tooLong[.arithmetic])
        XCTAssertTrue(all.tooLong.isEmpty)
    }

    func testBatchesCycleThroughEveryDemonstrationOncePerEpochAndRepeat() {
        let trainer = makeTrainer(demonstrations: 24, taskMix: [.arithmetic: 1])
        XCTAssertEqual(trainer.examples.count, 24)
        let epoch = (0..<3).flatMap { trainer.batchIndices(step: $0) }
        XCTAssertEqual(epoch.sorted(), Array(0..<24))
        XCTAssertEqual(makeTrainer(demonstrations: 24, taskMix: [.arithmetic: 1]).batchIndices(step: 4), trainer.batchIndices(step: 4))
        XCTAssertNotEqual(trainer.batchIndices(step: 3) + trainer.batchIndices(step: 4) + trainer.batchIndices(step: 5), epoch, "each epoch has its own order")
    }

    func testStepsLowerTheLossOnTheDemonstrations() {
        let trainer = makeTrainer(demonstrations: 8, taskMix: [.arithmetic: 1], steps: 40, learningRate: 1e-2)
        let first = trainer.step(0).loss
        var last = first
        for step in 1..<40 { last = trainer.step(step).loss }
        XCTAssertLessThan(last, first * 0.6, "SFT loss \(first) → \(last)")
    }

    func testFreshBatchesAreNewAtEveryStepAndAFunctionOfTheStep() {
        let trainer = makeTrainer(demonstrations: 4, maxResponseTokens: 200, fresh: true)
        let first = trainer.batch(step: 0), second = trainer.batch(step: 1)
        XCTAssertEqual(first.count, 8)
        XCTAssertEqual(second.count, 8)
        let seen = Set(first.map(\.tokens))
        XCTAssertTrue(second.allSatisfy { !seen.contains($0.tokens) }, "a fresh batch repeats a demonstration")
        XCTAssertEqual(makeTrainer(demonstrations: 4, maxResponseTokens: 200, fresh: true).batch(step: 7).map(\.tokens), trainer.batch(step: 7).map(\.tokens), "a resumed run draws another batch")
        // Fresh demonstrations obey the same limits as the pool's.
        for example in (0..<4).flatMap({ trainer.batch(step: $0) }) {
            XCTAssertLessThanOrEqual(example.tokens.count - example.lossMask.firstIndex(of: true)!, 200)
        }
        // The pool serves only the fit check: the batches do not come from it.
        let pool = Set(trainer.examples.map(\.tokens))
        XCTAssertTrue(first.allSatisfy { !pool.contains($0.tokens) })
    }

    /// The loss is a weighted mean of −log p over the next tokens: weight 1 for the policy's
    /// tokens, `context_loss_weight` for the prompt's and observations'. Computed here by hand
    /// from the model's log-probabilities and compared with the step's loss.
    func testContextLossWeightWeighsThePromptAndObservationTokens() {
        for weight in [0.0, 0.25] {
            let trainer = makeTrainer(demonstrations: 8, taskMix: [.singleHop: 1], contextLossWeight: weight)
            let examples = trainer.batch(step: 0)
            var numerator = 0.0, denominator = 0.0, policyTotal = 0.0, policyCount = 0.0
            for example in examples {
                let statistics = withoutGradients { trainer.model.tokenStatistics(TokenBatch(sequences: [example.tokens], padding: Tokenizer().padID)) }
                let logProbabilities = statistics.logProbabilities.doubles
                for position in 0..<(example.tokens.count - 1) {
                    let w = example.lossMask[position + 1] ? 1 : weight
                    numerator -= w * logProbabilities[position]
                    denominator += w
                    if example.lossMask[position + 1] {
                        policyTotal -= logProbabilities[position]
                        policyCount += 1
                    }
                }
            }
            let result = trainer.step(0)
            XCTAssertEqual(result.loss, numerator / denominator, accuracy: 1e-4, "context weight \(weight)")
            XCTAssertEqual(result.policyLoss, policyTotal / policyCount, accuracy: 1e-4, "context weight \(weight)")
        }
    }

    /// A quarter of each batch (2 of 8 rows) is knowledge-base text with the loss on every
    /// token: whole paragraphs of a train-split world, about one demonstration long, drawn anew
    /// at each step as a function of the step.
    func testDocumentsTakeTheirShareOfTheBatchAndAreTrainedOnEveryToken() {
        for fresh in [false, true] {
            let trainer = makeTrainer(demonstrations: 16, fresh: fresh, documentFraction: 0.25)
            let batch = trainer.batch(step: 3)
            XCTAssertEqual(batch.count, 8)
            XCTAssertEqual(batch.filter(\.isDocument).count, 2)
            let tokenizer = Tokenizer()
            for document in batch.filter(\.isDocument) {
                XCTAssertTrue(document.lossMask.allSatisfy { $0 })
                let text = tokenizer.decode(document.tokens)
                XCTAssertTrue(text.hasPrefix("The ") && text.hasSuffix("."), text)
                XCTAssertGreaterThanOrEqual(document.tokens.count, SupervisedTrainer.documentTokens)
                XCTAssertLessThan(document.tokens.count, SupervisedTrainer.documentTokens + 250)
                XCTAssertFalse(document.tokens.contains(where: tokenizer.isSpecial))
            }
            XCTAssertEqual(makeTrainer(demonstrations: 16, fresh: fresh, documentFraction: 0.25).batch(step: 3).map(\.tokens), batch.map(\.tokens))
            XCTAssertNotEqual(trainer.batch(step: 4).filter(\.isDocument).map(\.tokens), batch.filter(\.isDocument).map(\.tokens))
            XCTAssertTrue(trainer.step(0).loss.isFinite)
        }
    }

    /// A copy drill is a list of names and numbers, a line break and the same list, trained on
    /// the repetition only; a quarter of a batch of 8 is two drills.
    func testCopyDrillsRepeatAListAndAreTrainedOnTheRepetition() {
        let trainer = makeTrainer(demonstrations: 16, fresh: true, copyDrillFraction: 0.25)
        let batch = trainer.batch(step: 2)
        XCTAssertEqual(batch.count, 8)
        let drills = batch.filter(\.isDocument)
        XCTAssertEqual(drills.count, 2)
        let tokenizer = Tokenizer()
        for drill in drills {
            let lines = tokenizer.decode(drill.tokens).components(separatedBy: "\n")
            XCTAssertEqual(lines.count, 2)
            XCTAssertEqual(lines[0], lines[1])
            XCTAssertEqual(lines[0].split(separator: " ").count, SupervisedTrainer.drillItems)
            let firstLength = tokenizer.encode(lines[0]).count
            XCTAssertEqual(drill.lossMask, [Bool](repeating: false, count: firstLength) + [Bool](repeating: true, count: drill.tokens.count - firstLength))
        }
        XCTAssertNotEqual(drills[0].tokens, drills[1].tokens)
        XCTAssertEqual(makeTrainer(demonstrations: 16, fresh: true, copyDrillFraction: 0.25).batch(step: 2).map(\.tokens), batch.map(\.tokens))
    }

    // MARK: Packing

    func testPackedRowsAreFirstFitLongestFirst() {
        // Longest first: 9 opens row 0, 7 row 1, 5 row 2; 3 fits beside 7, 2 beside 5.
        XCTAssertEqual(SupervisedTrainer.packedRows(lengths: [5, 9, 3, 7, 2], rowLength: 10), [[1], [3, 2], [0, 4]])
        // A sequence longer than a row gets a row of its own.
        XCTAssertEqual(SupervisedTrainer.packedRows(lengths: [4, 12, 6], rowLength: 10), [[1], [2, 0]])
        XCTAssertEqual(SupervisedTrainer.packedRows(lengths: [], rowLength: 10), [])
    }

    /// A step's examples packed into rows of at most `packing_length` tokens (one longer example
    /// alone in its row): each example's tokens where its placement says, nothing lost, fewer
    /// rows than examples.
    func testPackedBatchHoldsEveryExampleWithinTheRowLength() {
        for packingLength in [nil, 300] {
            let trainer = makeTrainer(demonstrations: 16, fresh: true, documentFraction: 0.25, packingLength: packingLength)
            let examples = trainer.batch(step: 1)
            let (batch, placements) = trainer.tokenBatch(examples)
            XCTAssertLessThan(batch.batchSize, examples.count)
            // A row holds one example longer than the row length, or examples that fit it.
            XCTAssertLessThanOrEqual(batch.length, max(packingLength ?? 512, examples.map(\.tokens.count).max()!))
            for row in 0..<batch.batchSize where placements.filter({ $0.row == row }).count > 1 {
                XCTAssertLessThanOrEqual(batch.lengths[row], packingLength ?? 512)
            }
            XCTAssertEqual(batch.lengths.reduce(0, +), examples.reduce(0) { $0 + $1.tokens.count })
            for (example, placement) in zip(examples, placements) {
                let first = placement.row * batch.length + placement.start
                XCTAssertEqual(Array(batch.tokens[first..<(first + example.tokens.count)]), example.tokens)
                XCTAssertTrue(batch.sequenceStarts![placement.row].contains(placement.start))
            }
        }
    }

    /// Packing leaves the objective as it is: the same loss, policy loss, token count and
    /// gradient of every parameter as one example per row, for a batch of demonstrations,
    /// documents and drills with a context weight; to float64 rounding in float64, to float32
    /// rounding in float32.
    func testPackedLossAndGradientsEqualUnpacked() {
        for (dtype, tolerance) in [(DType.float64, 1e-12), (.float32, 1e-5)] {
            func run(packing: Bool) -> (loss: Double, policyLoss: Double, tokens: Int, gradients: [[Double]]) {
                let trainer = makeTrainer(demonstrations: 16, fresh: true, contextLossWeight: 0.1, documentFraction: 0.125, copyDrillFraction: 0.125, packing: packing, dtype: dtype)
                trainer.optimizer.zeroGradients()
                let result = trainer.lossAndGradients(of: trainer.batch(step: 2))
                return (result.loss, result.policyLoss, result.tokens, trainer.model.parameters.map { $0.gradient!.doubles })
            }
            let packed = run(packing: true), unpacked = run(packing: false)
            XCTAssertEqual(packed.loss, unpacked.loss, accuracy: tolerance * unpacked.loss, "\(dtype) loss")
            XCTAssertEqual(packed.policyLoss, unpacked.policyLoss, accuracy: tolerance * unpacked.policyLoss, "\(dtype) policy loss")
            XCTAssertEqual(packed.tokens, unpacked.tokens)
            for (index, (actual, expected)) in zip(packed.gradients, unpacked.gradients).enumerated() {
                let scale = expected.map(Swift.abs).max() ?? 0
                XCTAssertGreaterThan(scale, 0, "\(dtype) parameter \(index) has no gradient")
                let difference = zip(actual, expected).map { Swift.abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(difference, tolerance * scale, "\(dtype) gradient of parameter \(index)")
            }
        }
    }

    /// Data parallelism's normalisation (docs/distributed.md): each rank's share of a batch,
    /// divided by the whole batch's weight, gives a loss and a gradient that add up over the
    /// ranks to the whole batch's, here for 2 and 3 ranks in float64.
    func testRankSharesOfABatchAddUpToTheWholeBatchsLossAndGradient() {
        let trainer = makeTrainer(demonstrations: 16, fresh: true, contextLossWeight: 0.1, documentFraction: 0.125, copyDrillFraction: 0.125, dtype: .float64)
        let examples = trainer.batch(step: 1)
        trainer.optimizer.zeroGradients()
        let whole = trainer.lossAndGradients(of: examples)
        let expected = trainer.model.parameters.map { $0.gradient!.doubles }
        for size in [2, 3] {
            var loss = 0.0, tokens = 0
            var gradients = expected.map { [Double](repeating: 0, count: $0.count) }
            for rank in 0..<size {
                let share = SupervisedTrainer.share(lengths: examples.map(\.tokens.count), rank: rank, size: size).map { examples[$0] }
                trainer.optimizer.zeroGradients()
                let part = trainer.partialLossAndGradients(of: share, totalWeight: trainer.totalWeight(of: examples))
                loss += part.loss
                tokens += part.tokens
                for (index, parameter) in trainer.model.parameters.enumerated() {
                    guard let gradient = parameter.gradient?.doubles else { continue }
                    for position in gradient.indices { gradients[index][position] += gradient[position] }
                }
            }
            XCTAssertEqual(loss, whole.loss, accuracy: 1e-12 * whole.loss, "\(size) ranks: loss")
            XCTAssertEqual(tokens, whole.tokens)
            for (index, (actual, wanted)) in zip(gradients, expected).enumerated() {
                let scale = wanted.map(Swift.abs).max() ?? 0
                let difference = zip(actual, wanted).map { Swift.abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(difference, 1e-12 * scale, "\(size) ranks: gradient of parameter \(index)")
            }
        }
    }

    func testPackingSettingsDecodeEncodeAndValidate() throws {
        func decode(_ json: String) throws -> SupervisedConfiguration { try JSONDecoder().decode(SupervisedConfiguration.self, from: Data(json.utf8)) }
        XCTAssertTrue(try decode("{}").packing)
        XCTAssertNil(try decode("{}").packingLength)
        let custom = try decode(#"{"packing": false, "packing_length": 1024}"#)
        XCTAssertFalse(custom.packing)
        XCTAssertEqual(custom.packingLength, 1024)
        let encoded = try JSONSerialization.jsonObject(with: JSONEncoder().encode(SupervisedConfiguration())) as! [String: Any]
        XCTAssertEqual(encoded["packing"] as? Bool, true)
        XCTAssertTrue(encoded["packing_length"] is NSNull, "an unset packing_length is written as null")
        var invalid = SupervisedConfiguration()
        invalid.packingLength = 0
        XCTAssertThrowsError(try invalid.validate(path: "sft")) { error in
            XCTAssertEqual((error as? ConfigurationError)?.description, "sft.packing_length must be in 1...1000000 or null, got 0")
        }
    }

    /// A user's demonstrations form the pool instead of the solver's, and are trained on the
    /// policy's tokens only: the prompt and the tool result are context (mask false).
    func testUserDemonstrationsFormThePoolWithTheLossOnThePolicysTokensOnly() throws {
        var environment = EnvironmentConfig()
        environment.callFormat = .json
        let line = #"{"messages": [{"role": "user", "content": "What is 6 times 7?"}, {"role": "assistant", "content": "Compute.", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "calc", "arguments": {"expression": "6*7"}}}]}, {"role": "tool", "tool_call_id": "a", "content": "42"}, {"role": "assistant", "content": "42"}]}"#
        let demonstrations = try DemonstrationFile.parse(Data((line + "\n" + line).utf8), file: "d.jsonl", tools: [ToolName.calc.toolDescription], config: environment)
        var generator = RandomGenerator(seed: 3)
        let model = LlamaModel(configuration: LlamaConfiguration(hiddenSize: 32, intermediateSize: 64, layerCount: 1, headCount: 2, maxPositions: 512), generator: &generator)
        var configuration = SupervisedConfiguration()
        configuration.batchSize = 2
        let codec = ProtocolCodec()
        let trainer = SupervisedTrainer(
            model: model, optimizer: AdamW(named: model.namedParameters), configuration: configuration, environment: environment, seed: 5,
            codec: codec, userDemonstrations: demonstrations)
        XCTAssertEqual(trainer.examples.count, 2)
        let example = trainer.examples[0]
        let trained = codec.text(example.tokens.indices.filter { example.lossMask[$0] }.map { example.tokens[$0] }[...])
        let call = CallFormat.json.render(tool: ToolName.calc.toolDescription, arguments: ["expression": .string("6*7")])
        XCTAssertEqual(trained, "Compute.<call>\(call)</call><answer>42</answer><|end|>")
        let context = codec.text(example.tokens.indices.filter { !example.lossMask[$0] }.map { example.tokens[$0] }[...])
        XCTAssertEqual(context, "<|user|>What is 6 times 7?<|assistant|><obs>42</obs>")
    }
}
