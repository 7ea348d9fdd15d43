import XCTest
@testable import ToolEnv

/// Feeds 120,000 random and mutated strings to the call parser and to `calc`: random bytes,
/// deep nesting, huge numbers, unterminated tags, mutated valid calls and random token soup.
/// Nothing may trap; every invalid input gets an error observation; every observation is
/// bounded and tag-free.
final class FuzzTests: XCTestCase {
    static let casesPerKind = 20_000
    let config = EnvironmentConfig(faults: .none, limits: LimitConfig(maxToolCalls: 100))

    /// Hands out episodes, starting a fresh one before the call limit is reached.
    private struct EpisodePool {
        let config: EnvironmentConfig
        var episode: Episode
        var seed: UInt64 = 0

        init(config: EnvironmentConfig) {
            self.config = config
            episode = Episode(family: .compose, split: .train, seed: 0, config: config)
        }

        mutating func respond(_ text: String) -> ToolResponse {
            if episode.responses.count == config.limits.maxToolCalls {
                seed += 1
                episode = Episode(family: TaskFamily.allCases[Int(seed % 5)], split: .train, seed: seed, config: config)
            }
            return episode.respond(toPolicyText: text)
        }
    }

    private func checkObservation(_ response: ToolResponse, _ input: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertLessThanOrEqual(response.observation.count, config.limits.maxObservationCharacters, input, file: file, line: line)
        XCTAssertFalse(ProtocolTag.containsTag(response.observation), input, file: file, line: line)
        if response.error != nil {
            XCTAssertTrue(response.observation.hasPrefix("error: "), response.observation, file: file, line: line)
            XCTAssertFalse(response.wasExecuted, file: file, line: line)
        }
    }

    private func expectError(_ response: ToolResponse, _ input: String, file: StaticString = #filePath, line: UInt = #line) {
        checkObservation(response, input, file: file, line: line)
        XCTAssertNotNil(response.error, "accepted: \(input)", file: file, line: line)
    }

    private func expectCalculatorError(_ expression: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Calculator.evaluate(expression), expression, file: file, line: line)
    }

    private func randomBytes(_ generator: inout SeededGenerator, count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
    }

    func testRandomBytes() {
        var generator = SeededGenerator(seed: 1)
        var pool = EpisodePool(config: config)
        for _ in 0..<FuzzTests.casesPerKind {
            var bytes = randomBytes(&generator, count: generator.integer(in: 0...80))
            // One byte outside the calculator's grammar guarantees the input is invalid.
            bytes.insert(UInt8(ascii: "#"), at: generator.integer(in: 0...bytes.count))
            let text = String(decoding: bytes, as: UTF8.self)
            expectCalculatorError(text)
            expectError(pool.respond(text + "</call>"), text)  // no opening tag
            expectError(pool.respond("<call>calc(" + text + ")</call>"), text)
            expectError(pool.respond("<call>" + text + "</call>"), text)
        }
    }

    func testDeepNesting() {
        var generator = SeededGenerator(seed: 2)
        var pool = EpisodePool(config: config)
        for index in 0..<FuzzTests.casesPerKind {
            let depth = generator.integer(in: 21...400)
            let expression: String
            switch index % 4 {
            case 0: expression = String(repeating: "(", count: depth) + "1" + String(repeating: ")", count: depth)
            case 1: expression = String(repeating: "-", count: depth) + "1"
            case 2: expression = String(repeating: "2^", count: depth) + "1"
            default: expression = String(repeating: "(-", count: depth) + "1"  // unbalanced as well
            }
            expectCalculatorError(expression)
            expectError(pool.respond("<call>calc(\(expression))</call>"), expression)
        }
    }

    func testHugeNumbers() {
        var generator = SeededGenerator(seed: 3)
        var pool = EpisodePool(config: config)
        let digits = Array("0123456789")
        for index in 0..<FuzzTests.casesPerKind {
            func number(_ count: Int) -> String { "9" + String((1..<count).map { _ in generator.element(of: digits) }) }
            let expression: String
            switch index % 4 {
            case 0: expression = number(generator.integer(in: 16...250))
            case 1: expression = number(generator.integer(in: 8...15)) + "*" + number(generator.integer(in: 8...15)) + "*" + number(generator.integer(in: 8...15))
            case 2: expression = number(generator.integer(in: 2...6)) + "^" + String(generator.integer(in: 30...1_000_000))
            default: expression = "1/" + number(generator.integer(in: 10...15)) + "/" + number(generator.integer(in: 10...15))
            }
            expectCalculatorError(expression)
            expectError(pool.respond("<call>calc(\(expression))</call>"), expression)
        }
    }

    func testUnterminatedTagsAndBrokenCalls() {
        var generator = SeededGenerator(seed: 4)
        var pool = EpisodePool(config: config)
        let bodies = ["calc(1+2)", "search(capital of Zelmar)", "lookup(Zelmar, capital)", "calc(", "search", ""]
        let prefixes = ["", "<call>", "<cal", "<call", "call>", "<ca<obs>ll>", "<call><call>", "</call><call>"]
        let suffixes = ["", "</call", "</cal", "call>", "</obs>", "<call>", "</ call>", "<|end|>"]
        for _ in 0..<FuzzTests.casesPerKind {
            let text = generator.element(of: prefixes) + generator.element(of: bodies) + generator.element(of: suffixes)
            // A call needs "<call>" then "</call>"; no combination here has both in order.
            if case .valid = ActionEvaluator.evaluate(policyText: text) {
                XCTFail("accepted \(text)")
            }
            expectError(pool.respond(text), text)
        }
    }

    func testMutatedValidCalls() {
        var generator = SeededGenerator(seed: 5)
        var pool = EpisodePool(config: config)
        let seeds = [
            "calc(2*(3+4))", "calc(47*386-12)", "calc(12.5*8.4)", "calc(-2^2+17%5)", "calc(1/3)",
            "search(capital of Zelmar)", "search(population of Quorvin)", "lookup(Zelmar, capital)",
            "lookup(Brixa, founding year)",
        ]
        let alphabet: [String] = "()+-*/%^.,0123456789 abc<>/|_".map(String.init) + ["<call>", "</call>", "<obs>", "</obs>", "<|end|>", "×", "−", "\u{301}", "\u{0}"]
        var accepted = 0
        for _ in 0..<FuzzTests.casesPerKind {
            var characters = Array(generator.element(of: seeds)).map(String.init)
            for _ in 0..<generator.integer(in: 1...4) {
                let position = generator.integer(in: 0...characters.count)
                switch generator.integer(in: 0...3) {
                case 0: characters.insert(generator.element(of: alphabet), at: position)
                case 1 where !characters.isEmpty: characters.remove(at: min(position, characters.count - 1))
                case 2 where !characters.isEmpty: characters[min(position, characters.count - 1)] = generator.element(of: alphabet)
                default: characters.insert(contentsOf: characters.prefix(generator.integer(in: 0...characters.count)), at: position)
                }
            }
            let call = characters.joined()
            let response = pool.respond("<call>" + call + "</call>")
            checkObservation(response, call)
            if response.error == nil {
                accepted += 1
                XCTAssertTrue(response.wasExecuted)
                if case let .calc(expression)? = response.call {
                    XCTAssertEqual(response.observation, try Calculator.evaluate(expression).description)
                }
            }
        }
        // The mutations leave some calls valid and break most; both paths are exercised.
        XCTAssertGreaterThan(accepted, 500)
        XCTAssertLessThan(accepted, FuzzTests.casesPerKind - 500)
    }

    func testRandomTokenSoup() {
        var generator = SeededGenerator(seed: 6)
        let tokens = ["(", ")", "+", "-", "*", "/", "%", "^", " ", "0", "1", "2", "7", "10", "999999", "999999999999999", "0.5", "3.25", "64", "65"]
        var valid = 0
        for _ in 0..<FuzzTests.casesPerKind {
            let expression = (0..<generator.integer(in: 1...30)).map { _ in generator.element(of: tokens) }.joined()
            do {
                let value = try Calculator.evaluate(expression)
                valid += 1
                XCTAssertLessThanOrEqual(value.numerator.magnitude / value.denominator.magnitude, UInt64(ExactNumber.maximumMagnitude))
                XCTAssertGreaterThan(value.denominator, 0)
                XCTAssertLessThanOrEqual(value.denominator, ExactNumber.maximumDenominator)
            } catch {
                XCTAssertTrue(error is CalculatorError)
            }
        }
        XCTAssertGreaterThan(valid, 500, "the soup reaches evaluation, not only the parser's errors")
    }
}
