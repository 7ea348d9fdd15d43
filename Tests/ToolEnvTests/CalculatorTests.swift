import XCTest
@testable import ToolEnv

final class CalculatorTests: XCTestCase {
    private func value(_ expression: String, file: StaticString = #filePath, line: UInt = #line) -> String? {
        do {
            return try Calculator.evaluate(expression).description
        } catch {
            XCTFail("\(expression) failed: \(error)", file: file, line: line)
            return nil
        }
    }

    private func failure(_ expression: String) -> CalculatorError? {
        do {
            let result = try Calculator.evaluate(expression)
            XCTFail("\(expression) evaluated to \(result), expected an error")
            return nil
        } catch let error as CalculatorError {
            return error
        } catch {
            XCTFail("unexpected error type \(error)")
            return nil
        }
    }

    func testIntegerArithmeticAndPrecedence() {
        XCTAssertEqual(value("12*7"), "84")
        XCTAssertEqual(value("2*(3+4)"), "14")
        XCTAssertEqual(value("2+3*4"), "14")
        XCTAssertEqual(value("(2+3)*4"), "20")
        XCTAssertEqual(value("10-4-3"), "3", "subtraction is left-associative")
        XCTAssertEqual(value("100/10/5"), "2", "division is left-associative")
        XCTAssertEqual(value(" 47 * 386 "), "18142")
        XCTAssertEqual(value("999999*999999"), "999998000001")
    }

    func testUnaryMinusAndPower() {
        XCTAssertEqual(value("-5+3"), "-2")
        XCTAssertEqual(value("--5"), "5")
        XCTAssertEqual(value("-(2+3)"), "-5")
        XCTAssertEqual(value("-2^2"), "-4", "unary minus binds looser than ^")
        XCTAssertEqual(value("(-2)^2"), "4")
        XCTAssertEqual(value("2^3^2"), "512", "^ is right-associative")
        XCTAssertEqual(value("2^-1"), "0.5")
        XCTAssertEqual(value("2^0"), "1")
        XCTAssertEqual(value("3*-2"), "-6")
        XCTAssertEqual(value("+7"), "7")
    }

    func testRemainderHasTheSignOfTheDividend() {
        XCTAssertEqual(value("17%5"), "2")
        XCTAssertEqual(value("-17%5"), "-2")
        XCTAssertEqual(value("17%-5"), "2")
        XCTAssertEqual(value("7.5%2"), "1.5")
    }

    func testDecimalsAreExact() {
        XCTAssertEqual(value("0.1+0.2"), "0.3")
        XCTAssertEqual(value("12.5*8.4"), "105")
        XCTAssertEqual(value("1.25-2"), "-0.75")
        XCTAssertEqual(value(".5*4"), "2")
        XCTAssertEqual(value("(1/3)*3"), "1", "rationals stay exact through division")
        XCTAssertEqual(value("7/4"), "1.75")
    }

    func testNonTerminatingQuotientsAreRoundedVisibly() {
        XCTAssertEqual(value("1/3"), "0.333333...")
        XCTAssertEqual(value("2/3"), "0.666667...")
        XCTAssertEqual(value("-2/3"), "-0.666667...")
        XCTAssertEqual(value("0.9999999+0"), "1...", "rounding carries into the integer part")
    }

    func testUnicodeOperators() {
        XCTAssertEqual(value("6×7"), "42")
        XCTAssertEqual(value("84÷4"), "21")
        XCTAssertEqual(value("10−3"), "7")
    }

    func testDivisionByZero() {
        XCTAssertEqual(failure("1/0"), .divisionByZero)
        XCTAssertEqual(failure("5%0"), .divisionByZero)
        XCTAssertEqual(failure("0^-1"), .divisionByZero)
        XCTAssertEqual(failure("1/(2-2)"), .divisionByZero)
    }

    func testMagnitudeBoundsAndOverflow() {
        XCTAssertEqual(failure("999999999999999*10"), .numberTooLarge)
        XCTAssertEqual(failure("1000000000000000"), .numberTooLong, "16 significant digits")
        XCTAssertEqual(failure("2^64"), .numberTooLarge)
        XCTAssertEqual(failure("9^9^9"), .exponentTooLarge)
        XCTAssertEqual(failure("2^65"), .exponentTooLarge)
        XCTAssertEqual(failure("1234567890123456"), .numberTooLong)
        XCTAssertEqual(failure("0.1234567891"), .numberTooLong)
        XCTAssertEqual(failure("99999999999999.99999"), .numberTooLong, "more than 18 digits in all")
        XCTAssertEqual(value("99999999999999.9999"), "99999999999999.9999", "18 digits are exact")
        XCTAssertEqual(failure("2^0.5"), .nonIntegerExponent)
        XCTAssertEqual(value("999999999999999"), "999999999999999")
        XCTAssertEqual(value("00000000000000000042"), "42", "leading zeros are not significant")
        // Denominators grow past the precision bound before any Int64 arithmetic can trap.
        XCTAssertNotNil(failure("(1/999999937)*(1/999999929)*(1/999999893)"))
    }

    func testSyntaxErrors() {
        XCTAssertEqual(failure(""), .emptyExpression)
        XCTAssertEqual(failure("   "), .emptyExpression)
        XCTAssertEqual(failure("2+"), .unexpectedEnd)
        XCTAssertEqual(failure("(2+3"), .unbalancedParentheses)
        XCTAssertEqual(failure("2+3)"), .unbalancedParentheses)
        XCTAssertEqual(failure("()"), .unbalancedParentheses)
        XCTAssertEqual(failure("2 3"), .unexpectedToken("3", position: 3))
        XCTAssertEqual(failure("2**3"), .unexpectedToken("*", position: 3))
        XCTAssertEqual(failure("x+1"), .unexpectedCharacter("x", position: 1))
        XCTAssertEqual(failure("1,000"), .unexpectedCharacter(",", position: 2))
        XCTAssertEqual(failure("5."), .unexpectedCharacter(".", position: 2))
        XCTAssertEqual(failure("import Foundation"), .unexpectedCharacter("i", position: 1))
    }

    func testInputLengthAndNestingBounds() {
        XCTAssertEqual(failure(String(repeating: "1+", count: 100) + "1"), .expressionTooLong)
        let deep = String(repeating: "(", count: 21) + "1" + String(repeating: ")", count: 21)
        XCTAssertEqual(failure(deep), .nestingTooDeep)
        let allowed = String(repeating: "(", count: 20) + "1" + String(repeating: ")", count: 20)
        XCTAssertEqual(value(allowed), "1")
        XCTAssertEqual(failure(String(repeating: "-", count: 30) + "1"), .nestingTooDeep)
        XCTAssertEqual(failure(String(repeating: "2^", count: 30) + "1"), .nestingTooDeep)
    }

    func testErrorMessagesAreShortAndTagFree() {
        let errors: [CalculatorError] = [
            .emptyExpression, .expressionTooLong, .nestingTooDeep, .unexpectedCharacter("x", position: 1),
            .unexpectedEnd, .unexpectedToken("*", position: 2), .unbalancedParentheses, .numberTooLong,
            .divisionByZero, .overflow, .numberTooLarge, .tooPrecise, .nonIntegerExponent, .exponentTooLarge,
        ]
        for error in errors {
            XCTAssertFalse(error.message.isEmpty)
            XCTAssertLessThan(error.message.count, 60)
            XCTAssertFalse(ProtocolTag.containsTag(error.message))
        }
        XCTAssertEqual(failure("<call>"), .unexpectedCharacter("0x3C", position: 1), "angle brackets are not echoed")
    }
}
