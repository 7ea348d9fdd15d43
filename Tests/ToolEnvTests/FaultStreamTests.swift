import Foundation
import XCTest
@testable import ToolEnv

/// `faults.draws`: shared fault draws, or one stream per trajectory (`Episode.fork(faultStream:)`).
final class FaultStreamTests: XCTestCase {
    let config = EnvironmentConfig(faults: FaultConfig(failureProbability: 0.5, degradedProbability: 0), limits: LimitConfig(maxToolCalls: 100))

    /// Stream 0 is the shared one: a fork on it, or a plain fork, meets exactly the faults of
    /// its sibling for the same calls.
    func testStreamZeroIsTheSharedDraw() {
        let episode = Episode(family: .arithmetic, split: .train, seed: 5, config: config)
        let plain = episode.fork(), zero = episode.fork(faultStream: 0), sibling = episode.fork()
        for index in 0..<40 {
            let call = "<call>calc(\(index)+1)</call>"
            let expected = sibling.respond(toPolicyText: call)
            XCTAssertEqual(plain.respond(toPolicyText: call), expected)
            XCTAssertEqual(zero.respond(toPolicyText: call), expected)
        }
    }

    /// 400 streams make the same call at the same point after a shared first call: each keeps
    /// the shared first result (the inherited prefix), and the second call fails in a fraction
    /// 0.5 of them within 5 binomial standard deviations (5 · √(0.25 / 400) = 0.125), where the
    /// shared draw would make them all alike. The fault rate per stream is the configured one.
    func testPerTrajectoryStreamsDrawIndependentlyAfterTheSharedPrefix() {
        let parent = Episode(family: .arithmetic, split: .train, seed: 5, config: config)
        let first = parent.respond(toPolicyText: "<call>calc(2+2)</call>")
        let streams = 400
        var failures = 0
        for stream in 1...streams {
            let branch = parent.fork(faultStream: UInt64(stream))
            XCTAssertEqual(branch.responses, [first], "the inherited call keeps its result")
            XCTAssertEqual(branch.faultStream, UInt64(stream))
            XCTAssertEqual(branch.fork().faultStream, UInt64(stream), "a fork keeps its parent's stream")
            if branch.respond(toPolicyText: "<call>calc(3+3)</call>").fault == .failure { failures += 1 }
        }
        XCTAssertEqual(Double(failures) / Double(streams), 0.5, accuracy: 0.125)
        XCTAssertGreaterThan(failures, 0)
        XCTAssertLessThan(failures, streams)
        // The same stream gives the same draw: reproducible for a fixed seed.
        let again = parent.fork(faultStream: 7).respond(toPolicyText: "<call>calc(3+3)</call>")
        XCTAssertEqual(parent.fork(faultStream: 7).respond(toPolicyText: "<call>calc(3+3)</call>"), again)
    }

    func testDrawsAndToolEfficiencyFormDecodeAndDefault() throws {
        XCTAssertEqual(EnvironmentConfig().faults.draws, .shared)
        XCTAssertEqual(EnvironmentConfig().reward.toolEfficiencyForm, .groupFree)
        let config = try JSONDecoder().decode(EnvironmentConfig.self, from: Data(#"{"faults": {"draws": "per-trajectory"}, "reward": {"tool_efficiency_form": "group"}}"#.utf8))
        XCTAssertEqual(config.faults.draws, .perTrajectory)
        XCTAssertEqual(config.reward.toolEfficiencyForm, .group)
        let encoded = try JSONDecoder().decode(EnvironmentConfig.self, from: JSONEncoder().encode(config))
        XCTAssertEqual(encoded, config)
        XCTAssertThrowsError(try JSONDecoder().decode(EnvironmentConfig.self, from: Data(#"{"faults": {"draws": "each"}}"#.utf8)))
    }
}
