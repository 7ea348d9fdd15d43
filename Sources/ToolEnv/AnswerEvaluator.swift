import Foundation

/// The final-task evaluator's verdict on one answer.
public struct AnswerEvaluation: Equatable, Sendable {
    /// Whether the answer counts as right: an exact match after normalisation for text, a match
    /// within the tolerance for numbers, one of the accepted phrasings for unanswerable tasks.
    public let isCorrect: Bool
    /// Whether the normalised answer equals the normalised gold answer (for numbers: whether
    /// they match numerically).
    public let exactMatch: Bool
    /// For a numeric gold answer, whether the answer is a single number within the tolerance;
    /// nil otherwise.
    public let numericMatch: Bool?
    /// Token F1 between the normalised answer and gold answer, for text answers; 1 or 0 (the
    /// same as `isCorrect`) for numbers and unanswerable tasks, so they cannot earn partial
    /// credit.
    public let tokenF1: Double

    /// The answer score under `scoring`: `isCorrect ? 1 : 0`, or for `.f1` the token F1.
    public func score(_ scoring: AnswerScoring) -> Double {
        switch scoring {
        case .exact: return isCorrect ? 1 : 0
        case .f1: return isCorrect ? 1 : tokenF1
        }
    }
}

/// The final-task evaluator (LAM Simulator): compares an answer with the gold answer.
///
/// - Text: SQuAD normalisation (lowercase, punctuation removed, the articles a, an, the
///   removed, whitespace collapsed), then exact match; token F1 is reported too.
/// - Numbers: the whole answer must be one number (`52301`, `52,301`, `-3.5`, `84.0`; one
///   trailing period is allowed), within `tolerance * max(1, |gold|)` of the gold value. Any
///   other text scores 0, so an answer that lists every number it saw earns nothing.
/// - Unanswerable: the normalised answer must be one of `unanswerablePhrases`.
public enum AnswerEvaluator {
    /// Accepted answers, after normalisation, for a question the knowledge base cannot answer.
    /// The expert always writes `unknown`.
    public static let unanswerablePhrases: [String] = [
        "unknown", "not known", "no answer", "not found", "cannot be determined",
        "cannot be answered", "unanswerable", "not in knowledge base", "no information",
        "i dont know",
    ]

    /// Evaluates `answer` against `gold`.
    public static func evaluate(answer: String, gold: String, kind: AnswerKind, tolerance: Double) -> AnswerEvaluation {
        switch kind {
        case .number:
            guard let goldValue = parseNumber(gold) else {
                preconditionFailure("numeric gold answer \(gold) does not parse")
            }
            let matches: Bool
            if let value = parseNumber(answer) {
                matches = abs(value - goldValue) <= tolerance * max(1, abs(goldValue))
            } else {
                matches = false
            }
            return AnswerEvaluation(isCorrect: matches, exactMatch: matches, numericMatch: matches, tokenF1: matches ? 1 : 0)
        case .text:
            let normalizedAnswer = normalize(answer)
            let exact = !normalizedAnswer.isEmpty && normalizedAnswer == normalize(gold)
            return AnswerEvaluation(
                isCorrect: exact, exactMatch: exact, numericMatch: nil,
                tokenF1: tokenF1(normalizedAnswer, normalize(gold))
            )
        case .unanswerable:
            let accepted = unanswerablePhrases.contains(normalize(answer))
            return AnswerEvaluation(isCorrect: accepted, exactMatch: accepted, numericMatch: nil, tokenF1: accepted ? 1 : 0)
        }
    }

    /// SQuAD-style normalisation: lowercase, punctuation removed, articles removed, single
    /// spaces.
    public static func normalize(_ text: String) -> String {
        let lowered = text.lowercased()
        let kept = lowered.unicodeScalars.filter {
            !CharacterSet.punctuationCharacters.contains($0) && !CharacterSet.symbols.contains($0)
        }
        let withoutPunctuation = String(String.UnicodeScalarView(kept))
        let words = withoutPunctuation.split(whereSeparator: { $0.isWhitespace })
            .filter { $0 != "a" && $0 != "an" && $0 != "the" }
        return words.joined(separator: " ")
    }

    /// The answer as a single number, or nil when it is anything else.
    ///
    /// Accepts an optional sign (`-`, `−` or `+`), digits with optional thousands commas in
    /// groups of three, an optional decimal part, surrounding whitespace and one trailing
    /// period.
    public static func parseNumber(_ text: String) -> Double? {
        var characters = Array(text.trimmingCharacters(in: .whitespacesAndNewlines))
        if characters.last == "." { characters.removeLast() }
        var isNegative = false
        if let first = characters.first, first == "-" || first == "−" || first == "+" {
            isNegative = first != "+"
            characters.removeFirst()
        }
        guard !characters.isEmpty else { return nil }
        let parts = characters.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return nil }
        let integerPart = parts[0]
        let groups = integerPart.split(separator: ",", omittingEmptySubsequences: false)
        guard let firstGroup = groups.first, !firstGroup.isEmpty, firstGroup.allSatisfy(\.isASCIIDigit) else { return nil }
        if groups.count > 1 {
            // Thousands separators must be real: 1,234,567 but not 12,34.
            let isGroupOfThree = { (group: ArraySlice<Character>) in group.count == 3 && group.allSatisfy(\.isASCIIDigit) }
            guard firstGroup.count <= 3, groups.dropFirst().allSatisfy(isGroupOfThree) else { return nil }
        }
        var digits = String(groups.joined())
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].allSatisfy(\.isASCIIDigit) else { return nil }
            digits += "." + String(parts[1])
        }
        guard let value = Double(digits) else { return nil }
        return isNegative ? -value : value
    }

    /// Token F1 between two normalised strings (bag-of-words precision and recall).
    public static func tokenF1(_ prediction: String, _ reference: String) -> Double {
        let predicted = prediction.split(separator: " ").map(String.init)
        let expected = reference.split(separator: " ").map(String.init)
        guard !predicted.isEmpty, !expected.isEmpty else { return 0 }
        var remaining: [String: Int] = [:]
        for token in expected { remaining[token, default: 0] += 1 }
        var common = 0
        for token in predicted {
            if let count = remaining[token], count > 0 {
                common += 1
                remaining[token] = count - 1
            }
        }
        guard common > 0 else { return 0 }
        let precision = Double(common) / Double(predicted.count)
        let recall = Double(common) / Double(expected.count)
        return 2 * precision * recall / (precision + recall)
    }
}

extension Character {
    /// `0`…`9` only (not other scripts' digits, which `Double` would not parse).
    var isASCIIDigit: Bool { isASCII && isNumber }
}
