import ARPO
import Foundation
import XCTest

/// Hand-computed cases for the advantage estimators (docs/algorithms.md §4). Tolerance 1e-12 unless
/// stated: everything is a few Double operations.
final class AdvantageTests: XCTestCase {
    let tolerance = 1e-12

    func assertClose(_ actual: [Double], _ expected: [Double], accuracy: Double = 1e-12, _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, "count: \(message)", file: file, line: line)
        for (index, (a, e)) in zip(actual, expected).enumerated() {
            XCTAssertEqual(a, e, accuracy: accuracy, "element \(index): \(message)", file: file, line: line)
        }
    }

    func record(
        _ tokens: [Int], mask: [Bool], reward: Double, group: Int = 0, parent: Int? = nil, fork: Int = 0
    ) -> TrajectoryRecord {
        TrajectoryRecord(
            promptTokens: [1, 2], responseTokens: tokens,
            oldLogProbabilities: mask.map { $0 ? -1 : 0 }, entropies: mask.map { $0 ? 0.5 : 0 }, lossMask: mask,
            reward: reward, groupIndex: group, parent: parent, forkPosition: fork)
    }

    // MARK: - GRPO group normalisation

    /// r = [1, 0, 0.5, 1]: mean 0.625, deviations [0.375, −0.625, −0.125, 0.375],
    /// Σ dev² = 0.140625 + 0.390625 + 0.015625 + 0.140625 = 0.6875, unbiased variance
    /// 0.6875 / 3 = 11/48, std √(11/48) = 0.478713553878169.
    func testGroupNormalizationUsesTheUnbiasedStandardDeviation() {
        let rewards = [1, 0, 0.5, 1.0]
        let exact = AdvantageEstimator.groupNormalized(rewards: rewards, groupIndices: [0, 0, 0, 0], epsilon: 0)
        // 0.375 / 0.478713553878169 = 0.78334945180064, −0.625 / … = −1.30558241966773, …
        assertClose(exact, [0.7833494518006403, -1.3055824196677337, -0.26111648393354675, 0.7833494518006403])
        // With the default ε = 1e-6 the divisor is 0.478714553878169.
        let withEpsilon = AdvantageEstimator.groupNormalized(rewards: rewards, groupIndices: [0, 0, 0, 0])
        assertClose(withEpsilon, [0.7833478154404222, -1.3055796924007037, -0.26111593848014075, 0.7833478154404222])
        XCTAssertEqual(exact.reduce(0, +), 0, accuracy: tolerance, "advantages of a group sum to 0")
    }

    /// Dr. GRPO drops the std: A = r − mean = [0.375, −0.625, −0.125, 0.375].
    func testDrGRPODropsTheStandardDeviation() {
        let advantages = AdvantageEstimator.groupNormalized(
            rewards: [1, 0, 0.5, 1], groupIndices: [0, 0, 0, 0], dividingByStandardDeviation: false)
        assertClose(advantages, [0.375, -0.625, -0.125, 0.375])
    }

    /// Groups are formed by group index, in any order. Group 7 = {1, 0}: mean 0.5, unbiased std
    /// √0.5, A = ±0.5/√0.5 = ±0.7071067811865476. Group 3 = {2, 2}: no spread, A = 0. Group 9
    /// has one member: A = 0 in both modes.
    func testGroupsAreIndependentAndDegenerateGroupsGetZero() {
        let rewards = [1, 2, 0, 2, 5.0]
        let groups = [7, 3, 7, 3, 9]
        assertClose(AdvantageEstimator.groupNormalized(rewards: rewards, groupIndices: groups, epsilon: 0),
                    [0.7071067811865476, 0, -0.7071067811865476, 0, 0])
        assertClose(AdvantageEstimator.groupNormalized(rewards: rewards, groupIndices: groups, dividingByStandardDeviation: false),
                    [0.5, 0, -0.5, 0, 0])
        // Equal rewards whose mean is not exact in binary (0.1 · 3 / 3 ≠ 0.1) still give exactly 0.
        XCTAssertEqual(AdvantageEstimator.groupNormalized(rewards: [0.1, 0.1, 0.1], groupIndices: [0, 0, 0], epsilon: 0), [0, 0, 0])
    }

    // MARK: - Attribution over the branching tree

    /// The tree of the hard-attribution test, one group, rewards [1, 0, 0.5, 1]:
    ///
    ///     record 0 (root):             10 11 12 13 14 15      position 1 is an observation
    ///     record 1 (from 0 at 3):      10 11 12 20 21 22      own: 3..5; position 4 is an observation
    ///     record 2 (from 1 at 4):      10 11 12 20 30 31      own: 4..5
    ///     record 3 (root):             40 41 42 43
    func branchedGroup() -> [TrajectoryRecord] {
        [
            record([10, 11, 12, 13, 14, 15], mask: [true, false, true, true, true, true], reward: 1),
            record([10, 11, 12, 20, 21, 22], mask: [true, false, true, true, false, true], reward: 0, parent: 0, fork: 3),
            record([10, 11, 12, 20, 30, 31], mask: [true, false, true, true, true, true], reward: 0.5, parent: 1, fork: 4),
            record([40, 41, 42, 43], mask: [true, true, true, true], reward: 1),
        ]
    }

    /// With s = √(11/48): A = [0.375, −0.625, −0.125, 0.375] / s (ε = 0).
    /// Ownership and sharing sets:
    /// - positions 0..2 are owned by record 0 and shared by {0, 1, 2}: A = (0.375 − 0.625 − 0.125)/3 / s = −0.125 / s
    ///   (position 1 is an observation: not trained);
    /// - record 0's positions 3..5 are its own: 0.375 / s;
    /// - record 1's position 3 is shared by {1, 2}: (−0.625 − 0.125)/2 / s = −0.375 / s; position 4 is an
    ///   observation; position 5 is its own: −0.625 / s;
    /// - record 2's positions 4..5 are its own: −0.125 / s;
    /// - record 3 is an independent root: 0.375 / s everywhere.
    /// Every policy token of the tree is trained exactly once: 5 + 2 + 2 + 4 = 13 tokens.
    func testHardOnceAttributionTrainsSharedTokensOnceWithTheMeanAdvantage() {
        let s = (11.0 / 48.0).squareRoot()
        let result = AdvantageEstimator.tokenAdvantages(for: branchedGroup(), mode: .arpoHardOnce, epsilon: 0)
        let (F, T) = (false, true)
        XCTAssertEqual(result.trainMask, [
            [T, F, T, T, T, T],
            [F, F, F, T, F, T],
            [F, F, F, F, T, T],
            [T, T, T, T],
        ])
        let expected: [[Double]] = [
            [-0.125, 0, -0.125, 0.375, 0.375, 0.375],
            [0, 0, 0, -0.375, 0, -0.625],
            [0, 0, 0, 0, -0.125, -0.125],
            [0.375, 0.375, 0.375, 0.375],
        ]
        for row in 0..<4 { assertClose(result.advantages[row], expected[row].map { $0 / s }, "row \(row)") }
        assertClose(result.trajectoryAdvantages!, [0.375, -0.625, -0.125, 0.375].map { $0 / s })
        XCTAssertEqual(result.trainTokenCount, 13)
    }

    /// The paper's hard attribution on the same tree: every row trains all its policy tokens
    /// (the loss mask), and each copy of a shared token carries the mean of the advantages of
    /// the trajectories sharing it:
    /// - positions 0 and 2 of rows 0, 1 and 2 (shared by {0, 1, 2}): −0.125 / s in all three rows;
    /// - position 3 of rows 1 and 2 (shared by {1, 2}): −0.375 / s in both;
    /// - every other policy token: its row's own A_i.
    /// 5 + 4 + 5 + 4 = 18 trained tokens, as under soft attribution, and each shared token's
    /// advantages summed over its rows equal soft's sum (3 · −0.125 = 0.375 − 0.625 − 0.125;
    /// 2 · −0.375 = −0.625 − 0.125), so at ρ = 1 the token-mean gradient is soft's.
    func testPaperHardAttributionGivesEveryCopyOfASharedTokenTheMeanAdvantage() {
        let s = (11.0 / 48.0).squareRoot()
        let records = branchedGroup()
        let result = AdvantageEstimator.tokenAdvantages(for: records, mode: .arpoHard, epsilon: 0)
        XCTAssertEqual(result.trainMask, records.map(\.lossMask))
        let expected: [[Double]] = [
            [-0.125, 0, -0.125, 0.375, 0.375, 0.375],
            [-0.125, 0, -0.125, -0.375, 0, -0.625],
            [-0.125, 0, -0.125, -0.375, -0.125, -0.125],
            [0.375, 0.375, 0.375, 0.375],
        ]
        for row in 0..<4 { assertClose(result.advantages[row], expected[row].map { $0 / s }, "row \(row)") }
        XCTAssertEqual(result.trainTokenCount, 18)
        let soft = AdvantageEstimator.tokenAdvantages(for: records, mode: .arpoSoft, epsilon: 0)
        for position in 0..<6 {
            let hardSum = (0..<3).reduce(0.0) { $0 + result.advantages[$1][position] }
            let softSum = (0..<3).reduce(0.0) { $0 + soft.advantages[$1][position] }
            if position < 4 { XCTAssertEqual(hardSum, softSum, accuracy: 1e-12, "position \(position): the shared copies' advantages add up as soft's") }
        }
    }

    /// Soft attribution: every row is trained on all its policy tokens with its own A_i, the
    /// shared prefix included; GRPO gives the same numbers.
    func testSoftAttributionGivesEachRowItsOwnAdvantage() {
        let s = (11.0 / 48.0).squareRoot()
        let records = branchedGroup()
        let soft = AdvantageEstimator.tokenAdvantages(for: records, mode: .arpoSoft, epsilon: 0)
        XCTAssertEqual(soft.trainMask, records.map(\.lossMask))
        let own = [0.375, -0.625, -0.125, 0.375].map { $0 / s }
        for row in 0..<4 {
            assertClose(soft.advantages[row], records[row].lossMask.map { $0 ? own[row] : 0 }, "row \(row)")
        }
        XCTAssertEqual(soft.trainTokenCount, 5 + 4 + 5 + 4)
        XCTAssertEqual(AdvantageEstimator.tokenAdvantages(for: records, mode: .grpo, epsilon: 0), soft)
    }

    /// Dr. GRPO through the record API: A = r − mean on policy tokens, 0 on observations.
    func testDrGRPOModeOnRecords() {
        let result = AdvantageEstimator.tokenAdvantages(for: branchedGroup(), mode: .drGRPO)
        assertClose(result.advantages[1], [-0.625, 0, -0.625, -0.625, 0, -0.625])
        assertClose(result.advantages[3], [0.375, 0.375, 0.375, 0.375])
    }

    /// Without forks, both hard attributions are GRPO: every token is owned by its own row.
    func testHardAttributionWithoutForksIsGRPO() {
        let records = [
            record([1, 2, 3], mask: [true, false, true], reward: 1),
            record([4, 5], mask: [true, true], reward: 0),
            record([6], mask: [true], reward: 3, group: 1),
        ]
        for mode in [AdvantageMode.arpoHard, .arpoHardOnce] {
            XCTAssertEqual(
                AdvantageEstimator.tokenAdvantages(for: records, mode: mode),
                AdvantageEstimator.tokenAdvantages(for: records, mode: .grpo), "\(mode)")
        }
    }

    /// The configuration routes to the same estimator with its ε.
    func testConfigurationGroupAdvantages() {
        var configuration = AdvantageConfiguration()
        configuration.mode = .arpoHard
        configuration.standardDeviationEpsilon = 0
        XCTAssertEqual(
            configuration.groupAdvantages(for: branchedGroup()),
            AdvantageEstimator.tokenAdvantages(for: branchedGroup(), mode: .arpoHard, epsilon: 0))
    }

    // MARK: - Tree advantages (PORTool, Tree-GRPO)

    /// `tree` on the branched group, w_g = 1, w_f = 0.5, ε = 0. Group advantages as above:
    /// A = [0.7833494518006403, −1.3055824196677337, −0.26111648393354675, 0.7833494518006403].
    /// Fork points and the trajectories through them:
    /// - F1 = (record 0, position 3): records 0, 1 (forked there) and 2 (forked from 1 at 4 ≥ 3),
    ///   rewards 1, 0, 0.5: mean 0.5, deviations 0.5, −0.5, 0, unbiased variance 0.5 / 2 = 0.25,
    ///   std 0.5, so B = 1, −1, 0.
    /// - F2 = (record 1, position 4): records 1 and 2, rewards 0, 0.5: mean 0.25, variance
    ///   0.125, std 0.35355339059327373, so B = −0.7071067811865475, +0.7071067811865475.
    /// Tokens before position 3 have no fork point on their path (B = 0). Row 0 after 3:
    /// 0.7833494518006403 + 0.5 = 1.2833494518006403. Row 1 at 3 (under F1):
    /// −1.3055824196677337 − 0.5 = −1.8055824196677337; at 5 (under F2):
    /// −1.3055824196677337 − 0.35355339059327373 = −1.6591358102610074. Row 2 at 3 (under F1,
    /// B = 0): −0.26111648393354675; at 4 and 5 (under F2): −0.26111648393354675 +
    /// 0.35355339059327373 = 0.09243690665972698. Row 3 never forks: its A alone.
    func testTreeAdvantagesAddTheForkRelativeTermAfterEachForkPoint() {
        let records = branchedGroup()
        let result = AdvantageEstimator.tokenAdvantages(for: records, mode: .tree, epsilon: 0, groupWeight: 1, forkWeight: 0.5)
        XCTAssertEqual(result.trainMask, records.map(\.lossMask), "every row trains all its policy tokens")
        let expected: [[Double]] = [
            [0.7833494518006403, 0, 0.7833494518006403, 1.2833494518006403, 1.2833494518006403, 1.2833494518006403],
            [-1.3055824196677337, 0, -1.3055824196677337, -1.8055824196677337, 0, -1.6591358102610074],
            [-0.26111648393354675, 0, -0.26111648393354675, -0.26111648393354675, 0.09243690665972698, 0.09243690665972698],
            [0.7833494518006403, 0.7833494518006403, 0.7833494518006403, 0.7833494518006403],
        ]
        for row in 0..<4 { assertClose(result.advantages[row], expected[row], "row \(row)") }
        assertClose(result.trajectoryAdvantages!, [0.7833494518006403, -1.3055824196677337, -0.26111648393354675, 0.7833494518006403])
    }

    /// Z = 3: records 1 and 2 are both forked from record 0 at position 2, so the fork point has
    /// three trajectories, rewards 1, 0, 0: mean 1/3, deviations 2/3, −1/3, −1/3, unbiased
    /// variance (4/9 + 1/9 + 1/9) / 2 = 1/3, std 0.5773502691896258, B = 1.1547005383792517,
    /// −0.5773502691896258, −0.5773502691896258. With w_g = 0 only B is left: 0 on the shared
    /// positions 0 and 1, B from position 2 on. A root of another group is untouched by it.
    func testTreeAdvantagesComparesEverySiblingOfAForkPointAndHonoursTheWeights() {
        let records = [
            record([5, 6, 7, 8], mask: [true, true, true, true], reward: 1),
            record([5, 6, 9, 9], mask: [true, true, true, true], reward: 0, parent: 0, fork: 2),
            record([5, 6, 3], mask: [true, true, true], reward: 0, parent: 0, fork: 2),
            record([1, 2], mask: [true, true], reward: 4, group: 1),
            record([1, 3], mask: [true, true], reward: 2, group: 1),
        ]
        let result = AdvantageEstimator.tokenAdvantages(for: records, mode: .tree, epsilon: 0, groupWeight: 0, forkWeight: 1)
        assertClose(result.advantages[0], [0, 0, 1.1547005383792517, 1.1547005383792517])
        assertClose(result.advantages[1], [0, 0, -0.5773502691896258, -0.5773502691896258])
        assertClose(result.advantages[2], [0, 0, -0.5773502691896258])
        assertClose(result.advantages[3], [0, 0])
        assertClose(result.advantages[4], [0, 0])
        // w_g = 2, w_f = 1: the group term (the same three rewards, so A = B) counts twice
        // everywhere and the fork term once after the fork: 2·1.1547005383792517 = 2.3094010767585034
        // before it, 3·1.1547005383792517 = 3.464101615137755 after. Group 1 = {4, 2}: A = ±0.7071067811865476.
        let weighted = AdvantageEstimator.tokenAdvantages(for: records, mode: .tree, epsilon: 0, groupWeight: 2, forkWeight: 1)
        assertClose(weighted.advantages[0], [2.3094010767585034, 2.3094010767585034, 3.464101615137755, 3.464101615137755])
        assertClose(weighted.advantages[3], [1.4142135623730951, 1.4142135623730951])
        assertClose(weighted.advantages[4], [-1.4142135623730951, -1.4142135623730951])
    }

    /// Without forks there is no fork point: at w_g = 1 `tree` is GRPO, and the configuration
    /// passes its weights through.
    func testTreeAdvantagesWithoutForksAreGRPOAndTheConfigurationPassesItsWeights() {
        let records = [
            record([1, 2, 3], mask: [true, false, true], reward: 1),
            record([4, 5], mask: [true, true], reward: 0),
        ]
        XCTAssertEqual(
            AdvantageEstimator.tokenAdvantages(for: records, mode: .tree).advantages,
            AdvantageEstimator.tokenAdvantages(for: records, mode: .grpo).advantages)
        var configuration = AdvantageConfiguration()
        configuration.mode = .tree
        configuration.standardDeviationEpsilon = 0
        configuration.groupWeight = 0.25
        configuration.forkWeight = 3
        XCTAssertEqual(
            configuration.groupAdvantages(for: branchedGroup()),
            AdvantageEstimator.tokenAdvantages(for: branchedGroup(), mode: .tree, epsilon: 0, groupWeight: 0.25, forkWeight: 3))
    }

    // MARK: - GAE

    /// Tokens P P O P (an observation at position 2), values [0.5, 0.4, 9.9, 0.8] (the
    /// observation's 9.9 must never be read), reward 1, γ = 0.9, λ = 0.8, γλ = 0.72.
    /// Policy tokens k = 0, 1, 2 sit at positions 0, 1, 3:
    ///   k = 2: δ = 1 + 0.9·0 − 0.8 = 0.2;                 A = 0.2
    ///   k = 1: δ = 0 + 0.9·0.8 − 0.4 = 0.32;              A = 0.32 + 0.72·0.2 = 0.464
    ///   k = 0: δ = 0 + 0.9·0.4 − 0.5 = −0.14;             A = −0.14 + 0.72·0.464 = 0.19408
    /// Returns A + V: [0.69408, 0.864, 0 (observation), 1.0].
    func testGAESkipsObservationTokens() {
        let (advantages, returns) = AdvantageEstimator.generalizedAdvantageEstimates(
            reward: 1, values: [0.5, 0.4, 9.9, 0.8], policyMask: [true, true, false, true], gamma: 0.9, lambda: 0.8)
        assertClose(advantages, [0.19408, 0.464, 0, 0.2])
        assertClose(returns, [0.69408, 0.864, 0, 1.0])
    }

    /// γ = λ = 1 makes GAE the Monte-Carlo advantage: A_k = reward − V(t_k), R_k = reward.
    func testGAEWithUnitGammaAndLambdaIsMonteCarlo() {
        let (advantages, returns) = AdvantageEstimator.generalizedAdvantageEstimates(
            reward: 1, values: [0.5, 0.4, 9.9, 0.8], policyMask: [true, true, false, true], gamma: 1, lambda: 1)
        assertClose(advantages, [0.5, 0.6, 0, 0.2])
        assertClose(returns, [1, 1, 0, 1])
    }

    /// Whitening over the masked entries of all rows: x = [1, 2 | 3] (the masked-out 100 is
    /// ignored), mean 2, unbiased variance ((−1)² + 0² + 1²)/2 = 1, so x ↦ (x − 2)/√(1 + 1e-8).
    func testWhiteningHandExample() {
        let whitened = AdvantageEstimator.whitened([[1, 100, 2], [3]], mask: [[true, false, true], [true]])
        let scale = 1 / (1 + 1e-8).squareRoot()
        assertClose(whitened[0], [-scale, 0, 0])
        assertClose(whitened[1], [scale])
    }

    /// PPO through the configuration: GAE per record, then whitening over the batch's policy
    /// tokens gives mean 0 and unbiased std 1 (to 1e-7: ε = 1e-8 inside the square root) over
    /// the trained tokens, while returns stay A + V of the un-whitened A.
    func testPPOAdvantagesAreWhitenedOverTheBatch() {
        let records = [
            record([1, 2, 3, 4], mask: [true, true, false, true], reward: 1),
            record([5, 6, 7], mask: [true, false, true], reward: 0),
            record([8, 9], mask: [true, true], reward: 0.5, group: 1),
        ]
        let values = [[0.5, 0.4, 9.9, 0.8], [0.3, -4, 0.1], [0.2, 0.6]]
        var configuration = AdvantageConfiguration()
        configuration.gamma = 0.9
        configuration.lambda = 0.8
        let result = configuration.generalizedAdvantageEstimates(for: records, values: values)
        XCTAssertEqual(result.trainMask, records.map(\.lossMask))
        var trained: [Double] = []
        for (row, mask) in result.trainMask.enumerated() {
            for (position, isTrained) in mask.enumerated() {
                if isTrained { trained.append(result.advantages[row][position]) } else { XCTAssertEqual(result.advantages[row][position], 0) }
            }
        }
        let mean = trained.reduce(0, +) / Double(trained.count)
        let variance = trained.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(trained.count - 1)
        XCTAssertEqual(mean, 0, accuracy: 1e-12)
        XCTAssertEqual(variance.squareRoot(), 1, accuracy: 1e-7)
        // The first record's returns are those of the hand example above.
        assertClose(result.returns![0], [0.69408, 0.864, 0, 1.0])

        configuration.whiten = false
        assertClose(configuration.generalizedAdvantageEstimates(for: records, values: values).advantages[0], [0.19408, 0.464, 0, 0.2])
    }

    // MARK: - Configuration

    func testAdvantageConfigurationDecodesDefaultsFromAnEmptyObject() throws {
        let decoded = try JSONDecoder().decode(AdvantageConfiguration.self, from: Data("{}".utf8))
        XCTAssertEqual(decoded, AdvantageConfiguration())
        XCTAssertEqual(decoded.mode, .arpoSoft)
        XCTAssertEqual(decoded.standardDeviationEpsilon, 1e-6)
        XCTAssertEqual(decoded.gamma, 1.0)
        XCTAssertEqual(decoded.lambda, 0.95)
        XCTAssertTrue(decoded.whiten)
        XCTAssertEqual(decoded.groupWeight, 1)
        XCTAssertEqual(decoded.forkWeight, 1)
        XCTAssertNoThrow(try decoded.validate())

        let custom = try JSONDecoder().decode(
            AdvantageConfiguration.self, from: Data(#"{"mode": "dr-grpo", "std_epsilon": 0, "gamma": 0.99, "lambda": 1, "whiten": false, "group_weight": 0.5, "fork_weight": 2}"#.utf8))
        XCTAssertEqual(custom.mode, .drGRPO)
        XCTAssertEqual(custom.standardDeviationEpsilon, 0)
        XCTAssertEqual(custom.gamma, 0.99)
        XCTAssertEqual(custom.lambda, 1)
        XCTAssertFalse(custom.whiten)
        XCTAssertEqual(custom.groupWeight, 0.5)
        XCTAssertEqual(custom.forkWeight, 2)
        // Every key is written, and the encoding round-trips.
        let encoded = try JSONSerialization.jsonObject(with: JSONEncoder().encode(custom)) as! [String: Any]
        XCTAssertEqual(Set(encoded.keys), Set(AdvantageConfiguration.CodingKeys.allCases.map(\.rawValue)))
        XCTAssertEqual(try JSONDecoder().decode(AdvantageConfiguration.self, from: JSONEncoder().encode(custom)), custom)
    }

    func testAdvantageConfigurationRejectsBadValuesNamingTheKey() throws {
        XCTAssertThrowsError(try JSONDecoder().decode(AdvantageConfiguration.self, from: Data(#"{"mode": "arpo"}"#.utf8))) { error in
            guard case DecodingError.dataCorrupted(let context) = error else { return XCTFail("unexpected \(error)") }
            XCTAssertEqual(context.codingPath.map(\.stringValue), ["mode"])
            XCTAssertEqual(context.debugDescription, #"mode must be one of "grpo", "dr-grpo", "arpo-soft", "arpo-hard", "arpo-hard-once", "tree", got "arpo""#)
        }
        func message(_ change: (inout AdvantageConfiguration) -> Void) -> String? {
            var configuration = AdvantageConfiguration()
            change(&configuration)
            do { try configuration.validate() } catch { return (error as? ConfigurationError)?.description ?? "\(error)" }
            return nil
        }
        XCTAssertEqual(message { $0.lambda = 1.5 }, "lambda must be in [0, 1], got 1.5")
        XCTAssertEqual(message { $0.gamma = -0.1 }, "gamma must be in [0, 1], got -0.1")
        XCTAssertEqual(message { $0.standardDeviationEpsilon = -1 }, "std_epsilon must be in [0, 1), got -1.0")
        XCTAssertEqual(message { $0.forkWeight = -1 }, "fork_weight must be in [0, 100], got -1.0")
        XCTAssertEqual(message { $0.groupWeight = .nan }, "group_weight must be in [0, 100], got nan")
        XCTAssertEqual(message { $0.groupWeight = 0; $0.forkWeight = 0 }, "fork_weight must be above 0 when group_weight is 0 (both 0 trains nothing), got 0.0")
        XCTAssertNil(message { $0.lambda = 0 })
        XCTAssertNil(message { $0.groupWeight = 0 })
    }
}
