import Policy
import Tensor
import XCTest

final class TrainingTests: XCTestCase {
    /// The loss of a tiny Float64 model against central differences, for a sample of every
    /// parameter's elements (value head included).
    func testTinyModelGradientCheck() {
        var generator = RandomGenerator(seed: 3)
        let model = LlamaModel(configuration: tinyConfiguration(valueHead: true, tied: false, keyValueHeads: 2), dtype: .float64, generator: &generator)
        for parameter in model.parameters where parameter.rank == 2 { parameter.scaleInPlace(by: 10) }
        let batch = TokenBatch(sequences: [[3, 50, 200, 7, 9], [260, 1, 2]], padding: Tokenizer().padID)
        var picker = RandomGenerator(seed: 9)
        let elements = model.parameters.map { parameter in (0..<4).map { _ in Int(picker.next() % UInt64(parameter.count)) } }
        let report = GradientChecker().check(model.parameters, elements: elements) { _ in
            let statistics = model.tokenStatistics(batch)
            return statistics.logProbabilities.sum() + 0.1 * statistics.entropies.sum() + statistics.values!.squared().sum()
        }
        XCTAssertTrue(report.passed, report.description)
    }

    /// A tiny model memorises a fixed batch with AdamW: loss < 0.05.
    func testTinyModelOverfitsAFixedBatch() {
        var generator = RandomGenerator(seed: 1)
        let configuration = LlamaConfiguration(hiddenSize: 32, intermediateSize: 64, layerCount: 2, headCount: 4, maxPositions: 32)
        let model = LlamaModel(configuration: configuration, generator: &generator)
        let tokenizer = Tokenizer()
        let batch = TokenBatch(sequences: [tokenizer.encode("hello tool world"), tokenizer.encode("calc(12*7)=84")], padding: tokenizer.padID)
        let tokenCount = Double(batch.lengths.reduce(0) { $0 + $1 - 1 })
        let optimizer = AdamW(named: model.namedParameters, hyperparameters: .init(weightDecay: 0))
        var loss = Double.infinity
        for _ in 0..<300 {
            optimizer.zeroGradients()
            let objective = -model.tokenStatistics(batch).logProbabilities.sum() / tokenCount
            objective.backward()
            loss = objective.item
            if loss < 0.05 { break }
            optimizer.update(learningRate: 3e-3)
        }
        XCTAssertLessThan(loss, 0.05)
    }

    /// Two train steps (forward, backward, AdamW) of a float32 model big enough that the kernels
    /// and products split their work over threads give bit-identical parameters when repeated,
    /// and the same on 1, 2 and 3 threads.
    func testTrainStepsRepeatBitForBitOnEveryThreadCount() {
        let configuration = LlamaConfiguration(hiddenSize: 64, intermediateSize: 192, layerCount: 2, headCount: 4, keyValueHeadCount: 2, maxPositions: 96)
        var tokenGenerator = RandomGenerator(seed: 5)
        let sequences = (0..<4).map { row in (0..<(96 - 7 * row)).map { _ in Int(tokenGenerator.next() % 256) } }
        let batch = TokenBatch(sequences: sequences, padding: Tokenizer().padID)
        func train() -> [[Float]] {
            var generator = RandomGenerator(seed: 17)
            let model = LlamaModel(configuration: configuration, generator: &generator)
            let optimizer = AdamW(named: model.namedParameters)
            for _ in 0..<2 {
                optimizer.zeroGradients()
                (-model.tokenStatistics(batch).logProbabilities.sum()).backward()
                optimizer.update(learningRate: 1e-2)
            }
            return model.parameters.map(\.floats)
        }
        let oneThread = ComputeSettings.current.with(threads: 1).withApplied { train() }
        for threads in [1, 2, 3] {
            let (first, second) = ComputeSettings.current.with(threads: threads).withApplied { (train(), train()) }
            for (index, ((actual, expected), single)) in zip(zip(second, first), oneThread).enumerated() {
                XCTAssertTrue(
                    actual.elementsEqual(expected) { $0.bitPattern == $1.bitPattern },
                    "parameter \(index) differs between two runs at \(threads) threads")
                XCTAssertTrue(
                    expected.elementsEqual(single) { $0.bitPattern == $1.bitPattern },
                    "parameter \(index) differs between 1 and \(threads) threads")
            }
        }
    }

    func testAdamWSkipsDecayForNoDecayGroupAndClipsGradients() {
        let weight = Tensor(shape: [2], values: [1, -2], dtype: .float64)
        let norm = Tensor(shape: [2], values: [1, 1], dtype: .float64)
        weight.requiresGradient = true
        norm.requiresGradient = true
        let optimizer = AdamW(named: [("w", weight), ("model.norm.weight", norm)], hyperparameters: .init(weightDecay: 0.5), noDecay: AdamW.defaultNoDecay(["w", "model.norm.weight"]))
        XCTAssertEqual(optimizer.noDecay, ["model.norm.weight"])
        // Gradients (3, 4) and (0, 0): global norm 5.
        ((weight * Tensor(shape: [2], values: [3, 4], dtype: .float64)).sum() + (norm * 0).sum()).backward()
        XCTAssertEqual(optimizer.clipGradientNorm(to: 1), 5, accuracy: 1e-12)
        XCTAssertEqual(weight.gradient!.doubles[0], 0.6, accuracy: 1e-6)
        XCTAssertEqual(weight.gradient!.doubles[1], 0.8, accuracy: 1e-6)
        optimizer.update(learningRate: 0.1)
        // First step: m̂/√v̂ = sign(g), so w ← w(1 − lr·λ) − lr; the norm has zero gradient and no
        // decay, so it stays 1.
        XCTAssertEqual(weight.doubles[0], 1 * (1 - 0.05) - 0.1, accuracy: 1e-6)
        XCTAssertEqual(weight.doubles[1], -2 * (1 - 0.05) - 0.1, accuracy: 1e-6)
        XCTAssertEqual(norm.doubles, [1, 1])
    }

    func testOptimizerStateRoundTripContinuesIdentically() throws {
        func makeModel() -> LlamaModel {
            var generator = RandomGenerator(seed: 21)
            return LlamaModel(configuration: tinyConfiguration(), generator: &generator)
        }
        let batch = TokenBatch(sequences: [[1, 2, 3, 4, 5]], padding: 258)
        func step(_ model: LlamaModel, _ optimizer: AdamW) {
            optimizer.zeroGradients()
            (-model.tokenStatistics(batch).logProbabilities.sum()).backward()
            optimizer.update(learningRate: 1e-2)
        }
        let straight = makeModel(), straightOptimizer = AdamW(named: straight.namedParameters)
        for _ in 0..<3 { step(straight, straightOptimizer) }

        let resumed = makeModel(), firstOptimizer = AdamW(named: resumed.namedParameters)
        step(resumed, firstOptimizer)
        let directory = try temporaryDirectory(self)
        try ModelCheckpoint.save(resumed, to: directory)
        try firstOptimizer.save(to: directory.appendingPathComponent("optimizer.safetensors"))
        let reloaded = try ModelCheckpoint.load(from: directory)
        let reloadedOptimizer = AdamW(named: reloaded.namedParameters)
        try reloadedOptimizer.load(from: directory.appendingPathComponent("optimizer.safetensors"))
        XCTAssertEqual(reloadedOptimizer.step, 1)
        for _ in 0..<2 { step(reloaded, reloadedOptimizer) }
        for ((name, a), (_, b)) in zip(straight.namedParameters, reloaded.namedParameters) {
            XCTAssertEqual(a.floats, b.floats, "\(name) differs after resuming")
        }
    }

    func testLearningRateSchedule() {
        let constant = LearningRateSchedule(peak: 1, warmupSteps: 4, totalSteps: 10, decay: .constant)
        XCTAssertEqual(constant.rate(at: 0), 0.25)
        XCTAssertEqual(constant.rate(at: 3), 1)
        XCTAssertEqual(constant.rate(at: 9), 1)
        let cosine = LearningRateSchedule(peak: 1, warmupSteps: 0, totalSteps: 10, decay: .cosine, minimumRatio: 0.1)
        XCTAssertEqual(cosine.rate(at: 0), 1, accuracy: 1e-12)
        XCTAssertEqual(cosine.rate(at: 5), 0.1 + 0.9 * 0.5, accuracy: 1e-12)
        XCTAssertEqual(cosine.rate(at: 10), 0.1, accuracy: 1e-12)
    }
}
