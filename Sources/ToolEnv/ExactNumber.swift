/// An exact rational number with overflow-checked arithmetic: the values `calc` works on.
///
/// Decimals such as `12.5` are held exactly (`25/2`), so `0.1+0.2` is exactly `0.3` and
/// `(1/3)*3` is exactly `1`. Every operation reports overflow instead of trapping, and every
/// result is checked against the calculator's bounds: at most `maximumMagnitude` in absolute
/// value and a reduced denominator of at most `maximumDenominator`.
public struct ExactNumber: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The largest absolute value a result may have: 10^15.
    public static let maximumMagnitude: Int64 = 1_000_000_000_000_000
    /// The largest reduced denominator a result may have: 10^17, which keeps the decimal
    /// expansion in `description` free of overflow.
    public static let maximumDenominator: Int64 = 100_000_000_000_000_000
    /// Decimal places shown for a value whose expansion does not stop sooner.
    public static let displayedDecimalPlaces = 6

    /// The numerator of the reduced fraction; carries the sign.
    public let numerator: Int64
    /// The denominator of the reduced fraction; always positive.
    public let denominator: Int64

    /// An integer.
    ///
    /// - Precondition: `integer != Int64.min`, whose negation does not exist.
    public init(_ integer: Int64) {
        precondition(integer != .min, "Int64.min has no negation")
        numerator = integer
        denominator = 1
    }

    /// A fraction reduced to lowest terms; nil when the reduction overflows (`Int64.min`).
    init?(numerator: Int64, denominator: Int64) {
        precondition(denominator != 0, "zero denominator")
        guard numerator != .min, denominator != .min else { return nil }
        let divisor = ExactNumber.greatestCommonDivisor(numerator.magnitude, denominator.magnitude)
        var reducedNumerator = numerator / Int64(divisor)
        var reducedDenominator = denominator / Int64(divisor)
        if reducedDenominator < 0 {
            reducedNumerator = -reducedNumerator
            reducedDenominator = -reducedDenominator
        }
        self.numerator = reducedNumerator
        self.denominator = reducedDenominator
    }

    /// Whether the value is a whole number.
    public var isInteger: Bool { denominator == 1 }

    /// The nearest `Double` (exact for integers up to 2^53).
    public var doubleValue: Double { Double(numerator) / Double(denominator) }

    /// The value in plain decimal notation: `84`, `-3.75`, `0.333333...`.
    ///
    /// A terminating expansion of at most `displayedDecimalPlaces` places is printed exactly,
    /// without trailing zeros. Anything longer is rounded half away from zero to that many
    /// places and followed by `...`, so a reader can tell the display is not exact.
    public var description: String {
        let sign = numerator < 0 ? "-" : ""
        let magnitude = numerator.magnitude
        let divisor = denominator.magnitude
        var integerPart = magnitude / divisor
        var remainder = magnitude % divisor
        if remainder == 0 { return sign + String(integerPart) }

        // Long division: remainder < denominator <= 10^17, so remainder * 10 cannot overflow.
        var digits: [UInt8] = []
        while digits.count < ExactNumber.displayedDecimalPlaces && remainder != 0 {
            remainder *= 10
            digits.append(UInt8(remainder / divisor))
            remainder %= divisor
        }
        var isRounded = false
        if remainder != 0 {
            isRounded = true
            if remainder * 10 / divisor >= 5 {
                // Round up, carrying through the digits and into the integer part.
                var position = digits.count - 1
                var carry = true
                while carry && position >= 0 {
                    if digits[position] == 9 {
                        digits[position] = 0
                    } else {
                        digits[position] += 1
                        carry = false
                    }
                    position -= 1
                }
                if carry { integerPart += 1 }
            }
        }
        while let last = digits.last, last == 0 { digits.removeLast() }
        var text = sign + String(integerPart)
        if !digits.isEmpty {
            text += "." + String(digits.map { Character(String($0)) })
        }
        if isRounded { text += "..." }
        return text
    }

    static func greatestCommonDivisor(_ first: UInt64, _ second: UInt64) -> UInt64 {
        var a = first
        var b = second
        while b != 0 { (a, b) = (b, a % b) }
        return a == 0 ? 1 : a
    }
}

// MARK: - Checked arithmetic

extension ExactNumber {
    /// `self + other`, or an error when the result overflows or leaves the bounds.
    func adding(_ other: ExactNumber) throws -> ExactNumber {
        // a/b + c/d = (a*(d/g) + c*(b/g)) / (b/g*d), with g = gcd(b, d) to keep terms small.
        let divisor = Int64(ExactNumber.greatestCommonDivisor(denominator.magnitude, other.denominator.magnitude))
        let left = try Checked.multiply(numerator, other.denominator / divisor)
        let right = try Checked.multiply(other.numerator, denominator / divisor)
        let sum = try Checked.add(left, right)
        let commonDenominator = try Checked.multiply(denominator / divisor, other.denominator)
        return try ExactNumber.bounded(numerator: sum, denominator: commonDenominator)
    }

    /// `self - other`.
    func subtracting(_ other: ExactNumber) throws -> ExactNumber {
        try adding(other.negated())
    }

    /// `self * other`.
    func multiplying(by other: ExactNumber) throws -> ExactNumber {
        // Cross-reduce first so that exact results do not overflow on the way.
        let first = Int64(ExactNumber.greatestCommonDivisor(numerator.magnitude, other.denominator.magnitude))
        let second = Int64(ExactNumber.greatestCommonDivisor(other.numerator.magnitude, denominator.magnitude))
        let product = try Checked.multiply(numerator / first, other.numerator / second)
        let productDenominator = try Checked.multiply(denominator / second, other.denominator / first)
        return try ExactNumber.bounded(numerator: product, denominator: productDenominator)
    }

    /// `self / other`.
    func dividing(by other: ExactNumber) throws -> ExactNumber {
        guard other.numerator != 0 else { throw CalculatorError.divisionByZero }
        let reciprocal = ExactNumber(numerator: other.denominator, denominator: other.numerator)!
        return try multiplying(by: reciprocal)
    }

    /// The remainder of truncating division, with the sign of `self` (as Swift's `%`):
    /// `self - other * trunc(self / other)`.
    func remainder(dividingBy other: ExactNumber) throws -> ExactNumber {
        guard other.numerator != 0 else { throw CalculatorError.divisionByZero }
        let quotient = try dividing(by: other)
        let truncated = ExactNumber(quotient.numerator / quotient.denominator)
        return try subtracting(other.multiplying(by: truncated))
    }

    /// `self ^ exponent` for an integer exponent with |exponent| <= `maximumExponent`.
    func power(_ exponent: ExactNumber) throws -> ExactNumber {
        guard exponent.isInteger else { throw CalculatorError.nonIntegerExponent }
        guard exponent.numerator.magnitude <= UInt64(Calculator.maximumExponent) else {
            throw CalculatorError.exponentTooLarge
        }
        let count = Int(exponent.numerator.magnitude)
        var result = ExactNumber(1)
        // Repeated multiplication: at most 64 steps, each bound-checked, so a huge power fails
        // early instead of computing a huge intermediate.
        for _ in 0..<count {
            result = try result.multiplying(by: self)
        }
        if exponent.numerator < 0 {
            return try ExactNumber(1).dividing(by: result)
        }
        return result
    }

    /// `-self`.
    func negated() -> ExactNumber {
        // Values are bounded far below Int64.max, so negation cannot overflow.
        ExactNumber(numerator: -numerator, denominator: denominator)!
    }

    /// A reduced fraction, checked against the calculator's bounds.
    static func bounded(numerator: Int64, denominator: Int64) throws -> ExactNumber {
        guard let value = ExactNumber(numerator: numerator, denominator: denominator) else {
            throw CalculatorError.overflow
        }
        let integerPart = value.numerator.magnitude / value.denominator.magnitude
        let hasFraction = value.numerator.magnitude % value.denominator.magnitude != 0
        let limit = UInt64(maximumMagnitude)
        if integerPart > limit || (integerPart == limit && hasFraction) {
            throw CalculatorError.numberTooLarge
        }
        if value.denominator > maximumDenominator { throw CalculatorError.tooPrecise }
        return value
    }
}

/// Overflow-checked `Int64` operations that throw instead of trapping.
enum Checked {
    static func multiply(_ first: Int64, _ second: Int64) throws -> Int64 {
        let (result, overflow) = first.multipliedReportingOverflow(by: second)
        if overflow { throw CalculatorError.overflow }
        return result
    }

    static func add(_ first: Int64, _ second: Int64) throws -> Int64 {
        let (result, overflow) = first.addingReportingOverflow(second)
        if overflow { throw CalculatorError.overflow }
        return result
    }
}
