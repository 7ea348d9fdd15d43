import Distributed
import Foundation
@testable import Trainer
import XCTest

/// What a data-parallel job refuses before it starts (`TrainingRun.checkDistributable`): the
/// terms that run on one process only, each named by its keys, and fewer prompts than ranks.
final class DistributableConfigurationTests: XCTestCase {
    /// Rank 0 of a two-rank job; the check itself exchanges nothing.
    final class TwoRanks: Communicator {
        let rank = 0, size = 2
        func allGather(_ bytes: [UInt8]) -> [[UInt8]] { fatalError("not used by the check") }
        func allReduceSum(_ values: inout [Float]) { fatalError("not used by the check") }
        func allReduceSum(_ values: inout [Double]) { fatalError("not used by the check") }
        func barrier() {}
        func abort(_ message: String, code: Int32) -> Never { fatalError(message) }
        func finalize() {}
        func exitAfterAgreedStop(code: Int32) -> Never { fatalError("not used by the check") }
    }

    func check(_ json: String, ranks: Communicator) throws {
        let configuration = try ConfigurationLoader.decode(Data(json.utf8))
        try TrainingRun(configuration: configuration, output: URL(fileURLWithPath: "/nonexistent"), console: Console(quiet: true), communicator: ranks).checkDistributable()
    }

    func testOneProcessTermsAreRefusedOnSeveralRanksAndAcceptedOnOne() throws {
        let cases = [
            (#"{"rl": {"memory_bank": {"coefficient": 0.5}}}"#, "rl.memory_bank (coefficient 0.5"),
            (#"{"rl": {"memory_bank": {"contrastive_coefficient": 0.2}}}"#, "contrastive_coefficient 0.2) runs on one process only"),
            (#"{"rl": {"loss": {"dpo_coefficient": 0.1}}}"#, "rl.dpo_steps and rl.loss.dpo_coefficient run on one process only"),
            (#"{"rl": {"prompts_per_step": 1}}"#, "rl.prompts_per_step (1) is less than the 2 MPI ranks"),
        ]
        for (json, message) in cases {
            XCTAssertThrowsError(try check(json, ranks: TwoRanks()), json) { error in
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
            XCTAssertNoThrow(try check(json, ranks: SingleProcessCommunicator()), json)
        }
        XCTAssertNoThrow(try check("{}", ranks: TwoRanks()))
    }
}
