import ARPO
import Foundation
import XCTest

/// `PolicyLossConfiguration`: `{}` decodes to the defaults, every key is written, values out of
/// range are rejected with the key named.
final class LossConfigurationTests: XCTestCase {
    func decode(_ json: String) throws -> PolicyLossConfiguration {
        try JSONDecoder().decode(PolicyLossConfiguration.self, from: Data(json.utf8))
    }

    func testEmptyObjectDecodesToTheDefaults() throws {
        let configuration = try decode("{}")
        XCTAssertEqual(configuration, PolicyLossConfiguration())
        XCTAssertEqual(configuration.clipEpsilonLow, 0.2)
        XCTAssertEqual(configuration.clipEpsilonHigh, 0.2)
        XCTAssertNil(configuration.dualClip)
        XCTAssertEqual(configuration.klCoefficient, 0)
        XCTAssertEqual(configuration.klEstimator, .k3)
        XCTAssertEqual(configuration.entropyCoefficient, 0)
        XCTAssertEqual(configuration.aggregation, .tokenMean)
        XCTAssertNil(configuration.sumNormLength)
        XCTAssertEqual(configuration.valueClip, 0.5)
        XCTAssertEqual(configuration.valueCoefficient, 0.5)
        XCTAssertNoThrow(try configuration.validate())
    }

    func testEveryKeyDecodesAndRoundTrips() throws {
        let configuration = try decode("""
            {"clip_epsilon_low": 0.2, "clip_epsilon_high": 0.28, "dual_clip": 2.5, "kl_coefficient": 0.001,
             "kl_estimator": "k1", "entropy_coefficient": 0.01, "aggregation": "seq-mean-token-sum-norm",
             "sum_norm_length": 160, "value_clip": 0.2, "value_coefficient": 1}
            """)
        XCTAssertEqual(configuration.clipEpsilonHigh, 0.28)
        XCTAssertEqual(configuration.dualClip, 2.5)
        XCTAssertEqual(configuration.klCoefficient, 0.001)
        XCTAssertEqual(configuration.klEstimator, .k1)
        XCTAssertEqual(configuration.entropyCoefficient, 0.01)
        XCTAssertEqual(configuration.aggregation, .sequenceMeanTokenSumNorm)
        XCTAssertEqual(configuration.sumNormLength, 160)
        XCTAssertEqual(configuration.valueClip, 0.2)
        XCTAssertEqual(configuration.valueCoefficient, 1)
        XCTAssertNoThrow(try configuration.validate())
        XCTAssertEqual(try JSONDecoder().decode(PolicyLossConfiguration.self, from: JSONEncoder().encode(configuration)), configuration)
    }

    /// The encoding of the defaults lists every key (unset optionals as null), so a loader that
    /// derives its known-key schema from it accepts `dual_clip` and `sum_norm_length`.
    func testEncodingWritesEveryKey() throws {
        let object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(PolicyLossConfiguration())) as! [String: Any]
        XCTAssertEqual(Set(object.keys), Set(PolicyLossConfiguration.CodingKeys.allCases.map(\.rawValue)))
        XCTAssertTrue(object["dual_clip"] is NSNull)
        XCTAssertEqual(try decode(String(decoding: JSONEncoder().encode(PolicyLossConfiguration()), as: UTF8.self)), PolicyLossConfiguration())
    }

    /// `dual_clip` is a number, null, or a switch (true: c = 3).
    func testDualClipAcceptsASwitch() throws {
        XCTAssertEqual(try decode(#"{"dual_clip": true}"#).dualClip, 3)
        XCTAssertNil(try decode(#"{"dual_clip": false}"#).dualClip)
        XCTAssertNil(try decode(#"{"dual_clip": null}"#).dualClip)
        XCTAssertEqual(try decode(#"{"dual_clip": 4}"#).dualClip, 4)
    }

    func testUnknownChoicesAreRejectedNamingTheKey() {
        for (key, json, allowed) in [
            ("aggregation", #"{"aggregation": "mean"}"#, #""token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm""#),
            ("kl_estimator", #"{"kl_estimator": "k2"}"#, #""k1", "k3""#),
        ] {
            XCTAssertThrowsError(try decode(json), key) { error in
                guard case DecodingError.dataCorrupted(let context) = error else { return XCTFail("unexpected \(error)") }
                XCTAssertEqual(context.codingPath.map(\.stringValue), [key])
                XCTAssertTrue(context.debugDescription.hasPrefix("\(key) must be one of \(allowed), got"), context.debugDescription)
            }
        }
    }

    func testValidateNamesTheKeyAndTheAllowedRange() {
        func message(_ change: (inout PolicyLossConfiguration) -> Void) -> String? {
            var configuration = PolicyLossConfiguration()
            change(&configuration)
            do { try configuration.validate() } catch { return (error as? ConfigurationError)?.description ?? "\(error)" }
            return nil
        }
        XCTAssertEqual(message { $0.clipEpsilonLow = 1.5 }, "clip_epsilon_low must be in (0, 1), got 1.5")
        XCTAssertEqual(message { $0.clipEpsilonLow = 0 }, "clip_epsilon_low must be in (0, 1), got 0.0")
        XCTAssertEqual(message { $0.clipEpsilonHigh = -0.2 }, "clip_epsilon_high must be in (0, 10), got -0.2")
        XCTAssertEqual(message { $0.dualClip = 0.5 }, "dual_clip must be null, true, false or a finite number above 1, got 0.5")
        XCTAssertEqual(message { $0.klCoefficient = -1 }, "kl_coefficient must be a finite number at least 0, got -1.0")
        XCTAssertEqual(message { $0.entropyCoefficient = .infinity }, "entropy_coefficient must be a finite number at least 0, got inf")
        XCTAssertEqual(message { $0.sumNormLength = 0 }, "sum_norm_length must be null or at least 1, got 0")
        XCTAssertEqual(message { $0.valueClip = 0 }, "value_clip must be a finite number above 0, got 0.0")
        XCTAssertEqual(message { $0.valueCoefficient = -0.5 }, "value_coefficient must be a finite number at least 0, got -0.5")
        XCTAssertEqual(message { $0.dpoCoefficient = -0.1 }, "dpo_coefficient must be a finite number at least 0, got -0.1")
        XCTAssertEqual(message { $0.dpoBeta = 0 }, "dpo_beta must be a finite number above 0, got 0.0")
        XCTAssertNil(message { $0.clipEpsilonHigh = 0.28 })
        XCTAssertNil(message { $0.dualClip = 3 })
    }

    /// The DPO term (TTPA) is off by default; on, it needs the reference policy's forward pass.
    func testDPOKeysDecodeAndTheTermNeedsTheReference() throws {
        XCTAssertEqual(PolicyLossConfiguration().dpoCoefficient, 0)
        XCTAssertEqual(PolicyLossConfiguration().dpoBeta, 0.1)
        let configuration = try decode(#"{"dpo_coefficient": 0.5, "dpo_beta": 0.2}"#)
        XCTAssertEqual(configuration.dpoCoefficient, 0.5)
        XCTAssertEqual(configuration.dpoBeta, 0.2)
        XCTAssertTrue(configuration.needsReference)
        XCTAssertEqual(try JSONDecoder().decode(PolicyLossConfiguration.self, from: JSONEncoder().encode(configuration)), configuration)
    }

    /// ESM's weights: every error kind, 0.25 on the tool-use errors by default; given kinds
    /// replace the defaults', an unknown kind or a negative weight is an error naming the key.
    func testDPOErrorWeights() throws {
        let defaults = PolicyLossConfiguration().dpoErrorWeights
        XCTAssertEqual(defaults.count, 8)
        XCTAssertEqual(defaults[.badArguments], 0.25)
        XCTAssertEqual(defaults[.wrongAnswer], 0)
        let configuration = try decode(#"{"dpo_error_weights": {"wrong_answer": 0.5, "bad_arguments": 0}}"#)
        XCTAssertEqual(configuration.dpoErrorWeights[.wrongAnswer], 0.5)
        XCTAssertEqual(configuration.dpoErrorWeights[.badArguments], 0)
        XCTAssertEqual(configuration.dpoErrorWeights[.malformedCall], 0.25)
        XCTAssertEqual(configuration.errorOrientedScoring.weights, configuration.dpoErrorWeights)
        XCTAssertEqual(try JSONDecoder().decode(PolicyLossConfiguration.self, from: JSONEncoder().encode(configuration)), configuration)
        XCTAssertThrowsError(try decode(#"{"dpo_error_weights": {"typo": 1}}"#)) { error in
            XCTAssertTrue("\(error)".contains("dpo_error_weights has no error kind typo"), "\(error)")
        }
        var negative = PolicyLossConfiguration()
        negative.dpoErrorWeights[.unknownTool] = -1
        XCTAssertThrowsError(try negative.validate()) { error in
            XCTAssertEqual("\(error)", "dpo_error_weights.unknown_tool must be a finite number at least 0, got -1.0")
        }
    }

    /// L of `seq-mean-token-sum-norm`: `sum_norm_length` if set, else the response limit the
    /// learner passes (`rl.max_response_tokens`), and only without either the mini-batch's
    /// longest row (here 3).
    func testSumNormLengthDefaultsToTheResponseLimit() {
        var configuration = PolicyLossConfiguration()
        configuration.aggregation = .sequenceMeanTokenSumNorm
        let mask = [[true, true, false], [true]]
        XCTAssertEqual(configuration.normalizer(trainMask: mask, responseLimit: 120).maxLength, 120)
        XCTAssertEqual(configuration.normalizer(trainMask: mask).maxLength, 3)
        configuration.sumNormLength = 50
        XCTAssertEqual(configuration.normalizer(trainMask: mask, responseLimit: 120).maxLength, 50)
        XCTAssertEqual(UpdateConfiguration(maxResponseTokens: 120).maxResponseTokens, 120)
    }
}
