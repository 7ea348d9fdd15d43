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
        ] {
            XCTAssertThrowsError(try ConfigurationLoader.decode(Data(json.utf8))) { error in
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
        }
    }
}
