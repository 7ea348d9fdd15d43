/// Why `calc` refused an expression. Every case is an input error: the tool answers with an
/// error observation, it never traps.
public enum CalculatorError: Error, Equatable, Sendable {
    /// Nothing but whitespace.
    case emptyExpression
    /// Longer than `Calculator.maximumInputLength` bytes.
    case expressionTooLong
    /// More than `Calculator.maximumNestingDepth` nested parentheses, unary signs or powers.
    case nestingTooDeep
    /// A character that is not part of the grammar, at a 1-based character position.
    case unexpectedCharacter(String, position: Int)
    /// The expression stops where an operand or `)` was needed.
    case unexpectedEnd
    /// A token where an operator or the end was expected, at a 1-based character position.
    case unexpectedToken(String, position: Int)
    /// A `(` without its `)` or a `)` without its `(`.
    case unbalancedParentheses
    /// A literal with more than 15 integer digits, more than 9 decimal places or more than 18
    /// significant digits.
    case numberTooLong
    /// Division or remainder by zero (including `0^-1`).
    case divisionByZero
    /// An intermediate value left `Int64` arithmetic.
    case overflow
    /// A result larger than 10^15 in absolute value.
    case numberTooLarge
    /// A result whose exact denominator is larger than 10^17.
    case tooPrecise
    /// `^` with a fractional exponent.
    case nonIntegerExponent
    /// `^` with an exponent larger than `Calculator.maximumExponent` in absolute value.
    case exponentTooLarge

    /// The short message the policy sees after `error: calc: `.
    public var message: String {
        switch self {
        case .emptyExpression: return "empty expression"
        case .expressionTooLong: return "expression longer than \(Calculator.maximumInputLength) characters"
        case .nestingTooDeep: return "nesting deeper than \(Calculator.maximumNestingDepth)"
        case let .unexpectedCharacter(character, position): return "unexpected character \(character) at \(position)"
        case .unexpectedEnd: return "expression ends too early"
        case let .unexpectedToken(token, position): return "unexpected \(token) at \(position)"
        case .unbalancedParentheses: return "unbalanced parentheses"
        case .numberTooLong: return "number has too many digits"
        case .divisionByZero: return "division by zero"
        case .overflow: return "overflow"
        case .numberTooLarge: return "result larger than 10^15"
        case .tooPrecise: return "result too precise"
        case .nonIntegerExponent: return "exponent must be an integer"
        case .exponentTooLarge: return "exponent larger than \(Calculator.maximumExponent)"
        }
    }
}

/// The `calc` tool: a parser and evaluator for exact arithmetic, and nothing else.
///
/// Grammar (lowest precedence first):
///
///     expression := term (("+" | "-") term)*
///     term       := unary (("*" | "/" | "%") unary)*
///     unary      := ("-" | "+") unary | power
///     power      := primary ("^" unary)?          right-associative
///     primary    := number | "(" expression ")"
///     number     := digits ("." digits)? | "." digits
///
/// `−`, `×` and `÷` are accepted for `-`, `*` and `/`; whitespace is ignored. Unary minus binds
/// looser than `^`, as in mathematics: `-2^2` is `-4` and `2^-1` is `0.5`. `%` is the remainder
/// of truncating division, with the sign of the dividend. Values are exact rationals
/// (`ExactNumber`); nothing is executed but this arithmetic.
///
/// Bounds, so that no input can take long or trap: at most `maximumInputLength` bytes, nesting
/// (parentheses, unary signs and powers together) at most `maximumNestingDepth`, literals of at
/// most 15 significant integer digits, 9 decimal places and 18 digits in all, exponents of at
/// most `maximumExponent`, and every intermediate value within `ExactNumber`'s bounds.
public enum Calculator {
    /// The longest expression accepted, in UTF-8 bytes.
    public static let maximumInputLength = 200
    /// The deepest nesting accepted.
    public static let maximumNestingDepth = 20
    /// The largest exponent accepted, in absolute value.
    public static let maximumExponent = 64

    /// Evaluates `expression` exactly.
    /// - Throws: `CalculatorError` for any input that is not a valid, bounded expression.
    public static func evaluate(_ expression: String) throws -> ExactNumber {
        let bytes = Array(expression.utf8)
        guard bytes.count <= maximumInputLength else { throw CalculatorError.expressionTooLong }
        let tokens = try tokenize(bytes)
        guard !tokens.isEmpty else { throw CalculatorError.emptyExpression }
        var parser = Parser(tokens: tokens)
        let value = try parser.parseExpression()
        if let token = parser.current {
            if token.kind == .closeParenthesis { throw CalculatorError.unbalancedParentheses }
            throw CalculatorError.unexpectedToken(token.kind.spelling, position: token.position)
        }
        return value
    }

    // MARK: Tokens

    enum TokenKind: Equatable {
        case number(ExactNumber)
        case plus, minus, times, divide, remainder, power
        case openParenthesis, closeParenthesis

        var spelling: String {
            switch self {
            case let .number(value): return value.description
            case .plus: return "+"
            case .minus: return "-"
            case .times: return "*"
            case .divide: return "/"
            case .remainder: return "%"
            case .power: return "^"
            case .openParenthesis: return "("
            case .closeParenthesis: return ")"
            }
        }
    }

    struct Token {
        let kind: TokenKind
        /// 1-based character position, for error messages.
        let position: Int
    }

    static func tokenize(_ bytes: [UInt8]) throws -> [Token] {
        var tokens: [Token] = []
        var index = 0
        var position = 0  // characters seen so far, so positions match what the policy wrote
        while index < bytes.count {
            let byte = bytes[index]
            position += 1
            let start = position
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                index += 1
                continue
            case UInt8(ascii: "+"): tokens.append(Token(kind: .plus, position: start)); index += 1
            case UInt8(ascii: "-"): tokens.append(Token(kind: .minus, position: start)); index += 1
            case UInt8(ascii: "*"): tokens.append(Token(kind: .times, position: start)); index += 1
            case UInt8(ascii: "/"): tokens.append(Token(kind: .divide, position: start)); index += 1
            case UInt8(ascii: "%"): tokens.append(Token(kind: .remainder, position: start)); index += 1
            case UInt8(ascii: "^"): tokens.append(Token(kind: .power, position: start)); index += 1
            case UInt8(ascii: "("): tokens.append(Token(kind: .openParenthesis, position: start)); index += 1
            case UInt8(ascii: ")"): tokens.append(Token(kind: .closeParenthesis, position: start)); index += 1
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."):
                let (value, length) = try scanNumber(bytes, from: index, position: start)
                tokens.append(Token(kind: .number(value), position: start))
                index += length
                position += length - 1
            case 0xC3 where index + 1 < bytes.count && bytes[index + 1] == 0x97:  // ×
                tokens.append(Token(kind: .times, position: start)); index += 2
            case 0xC3 where index + 1 < bytes.count && bytes[index + 1] == 0xB7:  // ÷
                tokens.append(Token(kind: .divide, position: start)); index += 2
            case 0xE2 where index + 2 < bytes.count && bytes[index + 1] == 0x88 && bytes[index + 2] == 0x92:  // −
                tokens.append(Token(kind: .minus, position: start)); index += 3
            default:
                throw CalculatorError.unexpectedCharacter(describe(bytes, at: index), position: start)
            }
        }
        return tokens
    }

    /// Reads `digits ("." digits)?` or `"." digits` starting at `start`; returns the value and
    /// the number of bytes read.
    static func scanNumber(_ bytes: [UInt8], from start: Int, position: Int) throws -> (ExactNumber, Int) {
        var index = start
        var significantDigits = 0
        var fractionDigits = 0
        var numerator: Int64 = 0
        func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
        while index < bytes.count, isDigit(bytes[index]) {
            // Leading zeros carry no magnitude, so only significant digits count toward the limit.
            if numerator != 0 || bytes[index] != UInt8(ascii: "0") { significantDigits += 1 }
            if significantDigits > 15 { throw CalculatorError.numberTooLong }
            numerator = numerator * 10 + Int64(bytes[index] - UInt8(ascii: "0"))
            index += 1
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            while index < bytes.count, isDigit(bytes[index]) {
                fractionDigits += 1
                // Keep all digits under 10^18 so the scaled numerator stays inside Int64.
                if fractionDigits > 9 || numerator >= 100_000_000_000_000_000 {
                    throw CalculatorError.numberTooLong
                }
                numerator = numerator * 10 + Int64(bytes[index] - UInt8(ascii: "0"))
                index += 1
            }
            if fractionDigits == 0 {
                // "5." or a lone "." is not a number.
                throw CalculatorError.unexpectedCharacter(".", position: position + (index - 1 - start))
            }
        }
        var denominator: Int64 = 1
        for _ in 0..<fractionDigits { denominator *= 10 }
        // numerator < 10^18 and denominator <= 10^9 by the checks above; bounds still apply.
        let value = try ExactNumber.bounded(numerator: numerator, denominator: denominator)
        return (value, index - start)
    }

    /// A printable rendering of the character at `index` for an error message.
    static func describe(_ bytes: [UInt8], at index: Int) -> String {
        let byte = bytes[index]
        if byte >= 0x21 && byte < 0x7F && byte != UInt8(ascii: "<") && byte != UInt8(ascii: ">") {
            return String(UnicodeScalar(byte))
        }
        return "0x" + String(byte, radix: 16, uppercase: true)
    }

    // MARK: Parser

    /// Recursive descent over the tokens; `depth` bounds the recursion.
    struct Parser {
        let tokens: [Token]
        var index = 0
        var depth = 0

        init(tokens: [Token]) {
            self.tokens = tokens
        }

        var current: Token? { index < tokens.count ? tokens[index] : nil }

        mutating func parseExpression() throws -> ExactNumber {
            var value = try parseTerm()
            while let token = current {
                switch token.kind {
                case .plus:
                    index += 1
                    value = try value.adding(parseTerm())
                case .minus:
                    index += 1
                    value = try value.subtracting(parseTerm())
                default:
                    return value
                }
            }
            return value
        }

        mutating func parseTerm() throws -> ExactNumber {
            var value = try parseUnary()
            while let token = current {
                switch token.kind {
                case .times:
                    index += 1
                    value = try value.multiplying(by: parseUnary())
                case .divide:
                    index += 1
                    value = try value.dividing(by: parseUnary())
                case .remainder:
                    index += 1
                    value = try value.remainder(dividingBy: parseUnary())
                default:
                    return value
                }
            }
            return value
        }

        mutating func parseUnary() throws -> ExactNumber {
            guard let token = current else { throw CalculatorError.unexpectedEnd }
            switch token.kind {
            case .minus, .plus:
                index += 1
                try enter()
                defer { depth -= 1 }
                let operand = try parseUnary()
                return token.kind == .minus ? operand.negated() : operand
            default:
                return try parsePower()
            }
        }

        mutating func parsePower() throws -> ExactNumber {
            let base = try parsePrimary()
            guard let token = current, token.kind == .power else { return base }
            index += 1
            try enter()
            defer { depth -= 1 }
            let exponent = try parseUnary()
            return try base.power(exponent)
        }

        mutating func parsePrimary() throws -> ExactNumber {
            guard let token = current else { throw CalculatorError.unexpectedEnd }
            switch token.kind {
            case let .number(value):
                index += 1
                return value
            case .openParenthesis:
                index += 1
                try enter()
                defer { depth -= 1 }
                let value = try parseExpression()
                guard let closing = current, closing.kind == .closeParenthesis else {
                    throw CalculatorError.unbalancedParentheses
                }
                index += 1
                return value
            case .closeParenthesis:
                throw CalculatorError.unbalancedParentheses
            default:
                throw CalculatorError.unexpectedToken(token.kind.spelling, position: token.position)
            }
        }

        mutating func enter() throws {
            depth += 1
            if depth > Calculator.maximumNestingDepth { throw CalculatorError.nestingTooDeep }
        }
    }
}
