/// SplitMix64 (Steele, Lea and Flood, 2014): a tiny, fast, seedable generator.
///
/// Every random choice in the environment goes through one of these, seeded from the episode's
/// seed, so an episode is a pure function of (family, split, seed, config). The helpers below
/// are written out instead of using `Int.random(in:using:)` or `shuffled(using:)` because the
/// standard library does not promise that those algorithms stay the same across Swift versions,
/// and a changed draw would silently change every generated task.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return StableHash.finalize(state)
    }

    /// A uniform integer in `range`, by rejection so that no value is favoured.
    mutating func integer(in range: ClosedRange<Int>) -> Int {
        let span = UInt64(bitPattern: Int64(range.upperBound &- range.lowerBound)) &+ 1
        if span == 0 { return Int(truncatingIfNeeded: next()) }  // the full 64-bit range
        let limit = UInt64.max - (UInt64.max % span)
        var draw = next()
        while draw >= limit { draw = next() }
        return range.lowerBound &+ Int(truncatingIfNeeded: draw % span)
    }

    /// A uniform `Double` in [0, 1) with 53 random bits.
    mutating func unitInterval() -> Double {
        Double(next() >> 11) * 0x1p-53
    }

    /// True with probability `probability`.
    mutating func chance(_ probability: Double) -> Bool {
        unitInterval() < probability
    }

    /// A uniformly chosen element of a non-empty array.
    mutating func element<Element>(of array: [Element]) -> Element {
        precondition(!array.isEmpty, "cannot choose from an empty array")
        return array[integer(in: 0...(array.count - 1))]
    }

    /// The array in a uniformly random order (Fisher–Yates).
    mutating func shuffled<Element>(_ array: [Element]) -> [Element] {
        var result = array
        var index = result.count - 1
        while index > 0 {
            let other = integer(in: 0...index)
            result.swapAt(index, other)
            index -= 1
        }
        return result
    }
}

/// Hashes that are stable across processes and platforms.
///
/// Swift's `Hasher` is seeded per process, so anything that must be reproducible (fault draws,
/// the split a name belongs to) hashes with these instead.
enum StableHash {
    /// FNV-1a over the UTF-8 bytes of `text`.
    static func of(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hash
    }

    /// SplitMix64's output function: a bijective scrambler of 64 bits.
    static func finalize(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Combines two values into one well-mixed value (order matters).
    static func combine(_ first: UInt64, _ second: UInt64) -> UInt64 {
        finalize(first &* 0x9E37_79B9_7F4A_7C15 ^ finalize(second))
    }
}
