import ARPO
import XCTest

/// Every seed a run derives from `run.seed` goes through `Seed.derive`; these values pin each
/// stream, since every metric of a seeded run depends on them.
final class SeedTests: XCTestCase {
    func testEachStreamDerivesItsPinnedSeeds() {
        XCTAssertEqual(Seed.derive(7, .tokenizerEpisodes, 3), (1 << 39) + 7 * 1_000_003 + 3)
        XCTAssertEqual(Seed.derive(7, .prompts, 5), 5 + 7 * 7_919)
        XCTAssertEqual(Seed.derive(7, .rollout, 2), 7 * 31 + 2)
        XCTAssertEqual(Seed.derive(7, .updateShuffle, 2), 9)
        XCTAssertEqual(Seed.derive(7, .rolloutGroup, 0), 7)
        XCTAssertEqual(Seed.derive(7, .rolloutGroup, 2), 7 &+ 2 &* 0x9E37_79B9_7F4A_7C15)
        XCTAssertEqual(Seed.derive(7, .demonstrations, 3), (1 << 40) + 7 * 1_000_003 + 3)
        XCTAssertEqual(Seed.derive(7, .demonstrationShuffle, 2), 7 + 0x5F7 + 2 * 0x9E37_79B9)
        XCTAssertEqual(Seed.derive(7, .documents, 2), 7 &+ 0xD0C5 &+ 2 &* 0x9E37_79B9_7F4A_7C15)
        XCTAssertEqual(Seed.derive(7, .membershipDrills, 2), 7 &+ 0x3E3B &+ 2 &* 0x9E37_79B9_7F4A_7C15)
        XCTAssertEqual(Seed.derive(7, .freshDemonstrations, 2), 7 &+ 0xF2E5 &+ 2 &* 0x9E37_79B9_7F4A_7C15)
    }

    func testArithmeticWrapsAt64Bits() {
        XCTAssertEqual(Seed.derive(.max, .rollout, 0), UInt64.max &* 31)
        XCTAssertEqual(Seed.derive(.max, .updateShuffle, 1), 0)
    }
}
