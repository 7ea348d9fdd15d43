import Foundation
import Policy
import Tensor
@testable import Trainer
import XCTest

/// `sft.adam_betas` and `rl.adam_betas` reach each phase's AdamW, and a malformed pair names its
/// key path.
final class OptimizerConfigurationTests: XCTestCase {
    func testAdamBetasReachEachPhasesOptimizer() throws {
        let configuration = try ConfigurationLoader.decode(Data(#"{"sft": {"adam_betas": [0.8, 0.95]}, "rl": {"adam_betas": [0.85, 0.98]}}"#.utf8))
        let run = TrainingRun(configuration: configuration, output: URL(fileURLWithPath: "/nonexistent"), console: Console(quiet: true))
        var generator = RandomGenerator(seed: 0)
        let model = LlamaModel(configuration: configuration.model, generator: &generator)
        let supervised = run.makeSupervisedOptimizer(model).hyperparameters
        XCTAssertEqual(supervised.beta1, 0.8)
        XCTAssertEqual(supervised.beta2, 0.95)
        let reinforcement = run.makeReinforcementOptimizer(model).hyperparameters
        XCTAssertEqual(reinforcement.beta1, 0.85)
        XCTAssertEqual(reinforcement.beta2, 0.98)
        let defaults = try ConfigurationLoader.decode(Data("{}".utf8))
        XCTAssertEqual(defaults.sft.adamBetas, [0.9, 0.999])
        XCTAssertEqual(defaults.rl.adamBetas, [0.9, 0.999])
    }

    func testMalformedBetasNameTheKeyPath() {
        for (text, path) in [
            (#"{"sft": {"adam_betas": [0.9]}}"#, "sft.adam_betas"),
            (#"{"sft": {"adam_betas": [0.9, 1.0]}}"#, "sft.adam_betas"),
            (#"{"rl": {"adam_betas": [-0.1, 0.999]}}"#, "rl.adam_betas"),
        ] {
            XCTAssertThrowsError(try ConfigurationLoader.decode(Data(text.utf8)), text) { error in
                XCTAssertTrue("\(error)".contains("\(path) must be two values [β1, β2], each in [0, 1)"), "\(error)")
            }
        }
    }
}
