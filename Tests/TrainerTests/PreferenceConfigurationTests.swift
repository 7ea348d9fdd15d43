import Foundation
@testable import Trainer
import XCTest

/// `rl.loss.dpo_coefficient` and `rl.loss.dpo_beta` (TTPA's DPO term) pass the loader's key
/// check and name their key path when out of range.
final class PreferenceConfigurationTests: XCTestCase {
    func testDPOKeysLoadAndErrorsNameTheKeyPath() throws {
        let configuration = try ConfigurationLoader.decode(Data(#"{"rl": {"loss": {"dpo_coefficient": 0.3, "dpo_beta": 0.2}}}"#.utf8))
        XCTAssertEqual(configuration.rl.loss.dpoCoefficient, 0.3)
        XCTAssertEqual(configuration.rl.loss.dpoBeta, 0.2)
        XCTAssertEqual(try ConfigurationLoader.decode(Data("{}".utf8)).rl.loss.dpoCoefficient, 0)
        for (json, message) in [
            (#"{"rl": {"loss": {"dpo_beta": 0}}}"#, "rl.loss.dpo_beta must be a finite number above 0, got 0.0"),
            (#"{"rl": {"loss": {"dpo_coefficient": -1}}}"#, "rl.loss.dpo_coefficient must be a finite number at least 0, got -1.0"),
            (#"{"rl": {"loss": {"dpo_error_weights": {"bad_argument": 1}}}}"#, "unknown key rl.loss.dpo_error_weights.bad_argument (did you mean rl.loss.dpo_error_weights.bad_arguments?)"),
            (#"{"rl": {"loss": {"dpo_error_weights": {"bad_arguments": -1}}}}"#, "rl.loss.dpo_error_weights.bad_arguments must be a finite number at least 0, got -1.0"),
        ] {
            XCTAssertThrowsError(try ConfigurationLoader.decode(Data(json.utf8))) { error in
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
        }
    }

    /// `rl.dpo_steps`: at most `rl.steps`, and only under ARPO, whose forks make the pairs.
    func testDPOStepsNeedARPOAndFitInTheSteps() throws {
        XCTAssertEqual(try ConfigurationLoader.decode(Data("{}".utf8)).rl.dpoSteps, 0)
        XCTAssertEqual(try ConfigurationLoader.decode(Data(#"{"rl": {"steps": 10, "dpo_steps": 4}}"#.utf8)).rl.dpoSteps, 4)
        for (json, message) in [
            (#"{"rl": {"steps": 10, "dpo_steps": 11}}"#, "rl.dpo_steps must be in 0...steps (10), got 11"),
            (#"{"rl": {"algorithm": "grpo", "steps": 10, "dpo_steps": 2}}"#, "rl.dpo_steps needs rl.algorithm arpo"),
        ] {
            XCTAssertThrowsError(try ConfigurationLoader.decode(Data(json.utf8))) { error in
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
        }
    }

    /// A tiny run with `rl.dpo_steps` 2 of 3: the first two RL lines are the DPO stage's (the
    /// pairs counted, no policy loss), the third is RL proper (a policy loss, no DPO fields). A
    /// policy this small rarely calls a tool, so its batches may hold no fork and no pair; the
    /// stage then takes no step, which is what this checks beside the plumbing.
    func testARunWithADPOStageWritesItsStepsThenRL() throws {
        let root = try temporaryDirectory(self)
        let output = root.appendingPathComponent("dpo")
        let configURL = root.appendingPathComponent("dpo.json")
        try Data(tinyConfig(output: output, rlSteps: 3).replacingOccurrences(of: #""micro_batch_size": 4}"#, with: #""micro_batch_size": 4, "dpo_steps": 2}"#).utf8).write(to: configURL)
        let configuration = try ConfigurationLoader.load(from: configURL)
        XCTAssertEqual(configuration.rl.dpoSteps, 2)
        XCTAssertEqual(try TrainingRun(configuration: configuration, output: output, console: Console(quiet: true)).run(resume: false, stop: StopSignal()), .completed)
        let lines = try jsonLines(output.appendingPathComponent("metrics.jsonl")).filter { $0["phase"] as? String == "rl" }
        XCTAssertEqual(lines.count, 3)
        for line in lines.prefix(2) {
            XCTAssertNotNil(line["dpo_pairs"] as? Int, "\(line)")
            XCTAssertTrue(line["policy_loss"] is NSNull)
        }
        XCTAssertTrue(lines[2]["dpo_pairs"] is NSNull)
        XCTAssertNotNil(lines[2]["policy_loss"] as? Double)
    }
}
