import ARPO
import Foundation
import Policy
import ToolEnv
import XCTest

/// The calls a decoding step closes go to slow episodes (external tool servers) all at once, and
/// the batch is the same as when they are answered in turn.
final class ConcurrentToolCallTests: XCTestCase {
    /// Counts the calls in flight at once.
    final class Gauge: @unchecked Sendable {
        let lock = NSLock()
        var inFlight = 0, most = 0
        func enter() { lock.lock(); inFlight += 1; most = max(most, inFlight); lock.unlock() }
        func leave() { lock.lock(); inFlight -= 1; lock.unlock() }
    }

    /// A call takes `delay` seconds and answers with the text it was sent, reversed.
    final class SlowEpisode: ToolEpisode {
        let prompt = "q"
        let gauge: Gauge
        let delay: Double
        let answersConcurrently: Bool

        init(gauge: Gauge, delay: Double, concurrent: Bool) {
            self.gauge = gauge
            self.delay = delay
            answersConcurrently = concurrent
        }

        func respond(toPolicyText text: String) -> ToolReply {
            gauge.enter()
            Thread.sleep(forTimeInterval: delay)
            gauge.leave()
            return ToolReply(observation: String(text.reversed()), wasExecuted: true, mustEnd: false)
        }

        func finish(policyText: String, endReason: EndReason) -> EpisodeScore {
            EpisodeScore(reward: policyText.contains("<answer>1</answer>") ? 1 : 0, isCorrect: true)
        }

        func forkEpisode() -> ToolEpisode { SlowEpisode(gauge: gauge, delay: delay, concurrent: answersConcurrently) }
    }

    func run(concurrent: Bool) -> (RolloutBatch, Gauge) {
        let gauge = Gauge()
        let engine = RolloutEngine(
            policy: ScriptedPolicy(calls: 2, peaks: [20, 20, 20]),
            configuration: RolloutConfiguration(maxResponseTokens: 200, sampling: SamplingParameters(greedy: true), strategy: .trajectory(groupSize: 4)))
        let templates = (0..<2).map { _ in SlowEpisode(gauge: gauge, delay: 0.1, concurrent: concurrent) as ToolEpisode }
        return (engine.run(episodes: templates, seed: 3), gauge)
    }

    func testSlowEpisodesAreAskedAtOnceAndTheBatchIsTheSame() {
        let (sequential, sequentialGauge) = run(concurrent: false)
        let (concurrent, concurrentGauge) = run(concurrent: true)
        // 8 trajectories, each closing its two calls in the same steps as the others.
        XCTAssertEqual(sequential.statistics.toolCallsExecuted, 16)
        XCTAssertEqual(sequentialGauge.most, 1)
        XCTAssertEqual(concurrentGauge.most, 8)
        XCTAssertGreaterThan(sequential.statistics.environmentSeconds, 1.5)
        XCTAssertLessThan(concurrent.statistics.environmentSeconds, 0.8)
        XCTAssertEqual(concurrent.records.map(\.responseTokens), sequential.records.map(\.responseTokens))
        XCTAssertEqual(concurrent.records.map(\.lossMask), sequential.records.map(\.lossMask))
        XCTAssertEqual(concurrent.scores.map(\.reward), sequential.scores.map(\.reward))
        XCTAssertEqual(concurrent.statistics.toolCallsExecuted, 16)
    }
}
