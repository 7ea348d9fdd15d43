import Foundation

/// The per-family task generators.
///
/// Each returns the task and the world it is asked about (an unanswerable task may remove a
/// fact from the world it was given). Questions stay under about 150 characters.
enum TaskGenerator {
    static func generate(
        family: TaskFamily, difficulty: Int, split: Split, world: World,
        generator: inout SeededGenerator
    ) -> (EpisodeTask, World) {
        switch family {
        case .arithmetic:
            return (arithmetic(difficulty: difficulty, split: split, generator: &generator), world)
        case .singleHop:
            return (singleHop(difficulty: difficulty, world: world, generator: &generator), world)
        case .multiHop:
            return (multiHop(difficulty: difficulty, world: world, generator: &generator), world)
        case .compose:
            return (compose(difficulty: difficulty, world: world, generator: &generator), world)
        case .unanswerable:
            return unanswerable(difficulty: difficulty, split: split, world: world, generator: &generator)
        }
    }

    // MARK: Arithmetic

    static let arithmeticTemplates = ["What is {e}?", "Compute {e}.", "Calculate {e}.", "Evaluate {e}."]

    static func arithmetic(difficulty: Int, split: Split, generator: inout SeededGenerator) -> EpisodeTask {
        while true {
            let expression = arithmeticExpression(difficulty: difficulty, generator: &generator)
            // Expressions are partitioned between the splits like names are, so no arithmetic
            // question appears in both.
            guard StableHash.finalize(StableHash.of(expression)) & 1 == split.bit else { continue }
            let value: ExactNumber
            do {
                value = try Calculator.evaluate(expression)
            } catch {
                preconditionFailure("generated expression \(expression) does not evaluate: \(error)")
            }
            let question = generator.element(of: arithmeticTemplates).replacingPlaceholder("{e}", with: expression)
            let step = PlanStep(tool: .calc, arguments: expression, topic: expression, expected: value.description)
            return EpisodeTask(
                family: .arithmetic, difficulty: difficulty, question: question, goldAnswer: value.description,
                answerKind: .number, plan: [step]
            )
        }
    }

    static func arithmeticExpression(difficulty: Int, generator: inout SeededGenerator) -> String {
        func number(_ range: ClosedRange<Int>) -> Int { generator.integer(in: range) }
        func decimal() -> String {
            // One decimal place, never .0, so the decimal point matters.
            let tenths = number(11...999)
            return tenths % 10 == 0 ? String(tenths / 10) + ".5" : String(tenths / 10) + "." + String(tenths % 10)
        }
        switch difficulty {
        case 1:
            return "\(number(12...99))*\(number(12...999))"
        case 2:
            switch number(0...3) {
            case 0: return "(\(number(10...999))+\(number(10...999)))*\(number(3...99))"
            case 1: return "\(number(100...999))*\(number(11...99))-\(number(100...999))"
            case 2: return "\(number(11...99))*\(number(11...99))+\(number(11...99))*\(number(11...99))"
            default: return "\(decimal())*\(number(11...99))"
            }
        default:
            switch number(0...3) {
            case 0:
                let first = number(12...99)
                let second = number(12...99)
                let divisor = number(3...9)
                let offset = number(1...200)
                // Adjust the subtrahend so the division is exact.
                let subtrahend = offset + ((first * second - offset) % divisor + divisor) % divisor
                return "(\(first)*\(second)-\(subtrahend))/\(divisor)"
            case 1:
                return "\(number(11...30))^\(number(2...3))-\(number(11...99))*\(number(11...99))"
            case 2:
                return "(\(decimal())+\(decimal()))*\(number(2...9))"
            default:
                return "\(number(100...999))%\(number(7...30))+\(number(11...99))*\(number(11...99))"
            }
        }
    }

    // MARK: Knowledge-base questions

    /// Questions about one attribute of a named entity.
    static func singleHopTemplates(_ attribute: Attribute) -> [String] {
        var templates = ["What is the {a} of {s}?"]
        switch attribute {
        case .capital: templates.append("Which city is the capital of {s}?")
        case .leader: templates.append("Who leads {s}?")
        case .area: break
        case .mainExport: templates.append("What does {s} mainly export?")
        case .population: templates.append("How many people live in {s}?")
        case .mayor: templates.append("Who is the mayor of {s}?")
        case .foundingYear: templates += ["In what year was {s} founded?", "When was {s} founded?"]
        case .birthYear: templates += ["In what year was {s} born?", "When was {s} born?"]
        case .homeCity: templates.append("In which city does {s} live?")
        case .profession: templates.append("What does {s} do for a living?")
        case .founder: templates += ["Who founded {s}?", "Who is the founder of {s}?"]
        case .headquarters: templates.append("Where is {s} headquartered?")
        case .employeeCount: templates.append("How many employees does {s} have?")
        case .mainProduct: templates.append("What does {s} mainly make?")
        }
        return templates
    }

    static let chainTemplates = ["What is {np}?", "Find {np}.", "Tell me {np}."]
    static let personChainTemplates = ["Who is {np}?", "Find {np}.", "Name {np}."]

    static func singleHopQuestion(_ attribute: Attribute, _ subject: String, generator: inout SeededGenerator) -> String {
        generator.element(of: singleHopTemplates(attribute))
            .replacingPlaceholder("{a}", with: attribute.phrase)
            .replacingPlaceholder("{s}", with: subject)
    }

    static func answerKind(of attribute: Attribute) -> AnswerKind {
        attribute.value == .number ? .number : .text
    }

    static func singleHop(difficulty: Int, world: World, generator: inout SeededGenerator) -> EpisodeTask {
        let fact = generator.element(of: world.facts)
        let question = singleHopQuestion(fact.attribute, fact.subject, generator: &generator)
        return EpisodeTask(
            family: .singleHop, difficulty: difficulty, question: question, goldAnswer: fact.value,
            answerKind: answerKind(of: fact.attribute), plan: [searchStep(fact.attribute, fact.subject, expected: fact.value)]
        )
    }

    /// A chain of `hops` attributes from a random entity: every hop but the last is an
    /// entity-valued attribute, and the last one satisfies `lastHop`.
    struct Chain {
        var subjects: [String]  // the subject of each hop
        var attributes: [Attribute]
        var values: [String]  // the value of each hop; values[i] is subjects[i + 1]

        /// "the population of the capital of Zelmar"
        var nounPhrase: String {
            var phrase = subjects[0]
            for attribute in attributes {
                phrase = "the \(attribute.phrase) of \(phrase)"
            }
            return phrase
        }

        var answer: String { values[values.count - 1] }

        func steps(expectingLast: Bool = true) -> [PlanStep] {
            attributes.indices.map { index in
                let isLast = index == attributes.count - 1
                let expected = isLast && !expectingLast ? nil : values[index]
                return TaskGenerator.searchStep(attributes[index], subjects[index], expected: expected)
            }
        }
    }

    static func chain(hops: Int, world: World, generator: inout SeededGenerator, lastHop: (Attribute) -> Bool) -> Chain {
        // A chain that comes back to an entity it passed ("the home city of the mayor of X" when
        // that is X) would put its answer in the question; draw again. Most draws are fine, so
        // this ends quickly; the bound only turns a generator bug into a clear failure.
        for _ in 0..<1000 {
            let candidate = randomChain(hops: hops, world: world, generator: &generator, lastHop: lastHop)
            var visited = Set(candidate.subjects)
            if visited.count == candidate.subjects.count, visited.insert(candidate.answer).inserted {
                return candidate
            }
        }
        preconditionFailure("no \(hops)-hop chain without a cycle in this world")
    }

    static func randomChain(hops: Int, world: World, generator: inout SeededGenerator, lastHop: (Attribute) -> Bool) -> Chain {
        let kind = generator.element(of: EntityKind.allCases)
        var subject = generator.element(of: world.names(of: kind))
        var currentKind = kind
        var result = Chain(subjects: [], attributes: [], values: [])
        for hop in 0..<hops {
            let candidates = Attribute.attributes(of: currentKind).filter { attribute in
                if hop == hops - 1 { return lastHop(attribute) }
                if case .entity = attribute.value { return true }
                return false
            }
            let attribute = generator.element(of: candidates)
            guard let value = world.value(of: attribute, for: subject) else {
                preconditionFailure("generated world lacks \(attribute) of \(subject)")
            }
            result.subjects.append(subject)
            result.attributes.append(attribute)
            result.values.append(value)
            if case let .entity(nextKind) = attribute.value {
                currentKind = nextKind
                subject = value
            }
        }
        return result
    }

    static func chainQuestion(_ chain: Chain, generator: inout SeededGenerator) -> String {
        let asksForPerson = chain.attributes[chain.attributes.count - 1].value == .entity(.person)
        return generator.element(of: asksForPerson ? personChainTemplates : chainTemplates)
            .replacingPlaceholder("{np}", with: chain.nounPhrase)
    }

    static func multiHop(difficulty: Int, world: World, generator: inout SeededGenerator) -> EpisodeTask {
        let hops: Int
        switch difficulty {
        case 1: hops = 2
        case 2: hops = generator.integer(in: 2...3)
        default: hops = 3
        }
        let chain = chain(hops: hops, world: world, generator: &generator, lastHop: { _ in true })
        return EpisodeTask(
            family: .multiHop, difficulty: difficulty, question: chainQuestion(chain, generator: &generator),
            goldAnswer: chain.answer, answerKind: answerKind(of: chain.attributes[hops - 1]), plan: chain.steps()
        )
    }

    // MARK: Compose

    static func compose(difficulty: Int, world: World, generator: inout SeededGenerator) -> EpisodeTask {
        let isNumeric: (Attribute) -> Bool = { $0.value == .number }
        var phrase: String
        var expression: String
        var steps: [PlanStep]
        switch difficulty {
        case 1:
            let chain = chain(hops: 1, world: world, generator: &generator, lastHop: isNumeric)
            let (template, form) = generator.element(of: [
                ("twice {np}", "2*{v}"), ("three times {np}", "3*{v}"), ("{np} plus {k}", "{v}+{k}"),
                ("{np} minus {k}", "{v}-{k}"), ("{np} times {j}", "{v}*{j}"),
            ])
            (phrase, expression) = fill(template, form, chain, generator: &generator)
            steps = chain.steps()
        case 2:
            let chain = chain(hops: 2, world: world, generator: &generator, lastHop: isNumeric)
            let (template, form) = generator.element(of: [
                ("twice {np}, plus {k}", "2*{v}+{k}"), ("three times {np}, minus {k}", "3*{v}-{k}"),
                ("{np} plus {k}, times {j}", "({v}+{k})*{j}"), ("{np} minus {k}, times {j}", "({v}-{k})*{j}"),
            ])
            (phrase, expression) = fill(template, form, chain, generator: &generator)
            steps = chain.steps()
        default:
            let first = chain(hops: 2, world: world, generator: &generator, lastHop: isNumeric)
            var second = chain(hops: 1, world: world, generator: &generator, lastHop: isNumeric)
            // Two different facts, or the question would be trivial.
            while second.subjects[0] == first.subjects[1] && second.attributes[0] == first.attributes[1] {
                second = chain(hops: 1, world: world, generator: &generator, lastHop: isNumeric)
            }
            let isSum = generator.chance(0.5)
            phrase = "\(first.nounPhrase) \(isSum ? "plus" : "minus") \(second.nounPhrase)"
            expression = "\(first.answer)\(isSum ? "+" : "-")\(second.answer)"
            steps = first.steps() + second.steps()
        }
        let value: ExactNumber
        do {
            value = try Calculator.evaluate(expression)
        } catch {
            preconditionFailure("compose expression \(expression) does not evaluate: \(error)")
        }
        steps.append(PlanStep(tool: .calc, arguments: expression, topic: expression, expected: value.description))
        let question = generator.element(of: ["What is {p}?", "Compute {p}."]).replacingPlaceholder("{p}", with: phrase)
        return EpisodeTask(
            family: .compose, difficulty: difficulty, question: question, goldAnswer: value.description,
            answerKind: .number, plan: steps
        )
    }

    /// Fills a compose template: {np} with the chain's noun phrase, {v} with its value, {k}
    /// with a constant in 2...99 and {j} with a factor in 2...9.
    static func fill(_ template: String, _ form: String, _ chain: Chain, generator: inout SeededGenerator) -> (String, String) {
        let constant = String(generator.integer(in: 2...99))
        let factor = String(generator.integer(in: 2...9))
        let phrase = template.replacingPlaceholder("{np}", with: chain.nounPhrase)
            .replacingPlaceholder("{k}", with: constant).replacingPlaceholder("{j}", with: factor)
        let expression = form.replacingPlaceholder("{v}", with: chain.answer)
            .replacingPlaceholder("{k}", with: constant).replacingPlaceholder("{j}", with: factor)
        return (phrase, expression)
    }

    // MARK: Unanswerable

    /// The gold answer of an unanswerable task.
    static let unknownAnswer = "unknown"

    static func unanswerable(difficulty: Int, split: Split, world: World, generator: inout SeededGenerator) -> (EpisodeTask, World) {
        switch difficulty {
        case 1:
            // An entity that is not in the knowledge base, asked about like a real one.
            var names = NameGenerator(split: split, excluding: world.allNames)
            let missing = names.next(using: &generator)
            let kind = generator.element(of: EntityKind.allCases)
            let attribute = generator.element(of: Attribute.attributes(of: kind))
            let task = EpisodeTask(
                family: .unanswerable, difficulty: difficulty,
                question: singleHopQuestion(attribute, missing, generator: &generator),
                goldAnswer: unknownAnswer, answerKind: .unanswerable,
                plan: [searchStep(attribute, missing, expected: nil)]
            )
            return (task, world)
        case 2:
            // A real entity whose asked attribute was removed from the knowledge base.
            let fact = generator.element(of: world.facts)
            let task = EpisodeTask(
                family: .unanswerable, difficulty: difficulty,
                question: singleHopQuestion(fact.attribute, fact.subject, generator: &generator),
                goldAnswer: unknownAnswer, answerKind: .unanswerable,
                plan: [searchStep(fact.attribute, fact.subject, expected: nil)]
            )
            return (task, world.removingFact(about: fact.subject, attribute: fact.attribute))
        default:
            // A two-hop chain whose last fact was removed: the first search succeeds, the
            // second finds nothing about the intermediate entity.
            let chain = chain(hops: 2, world: world, generator: &generator, lastHop: { _ in true })
            let task = EpisodeTask(
                family: .unanswerable, difficulty: difficulty, question: chainQuestion(chain, generator: &generator),
                goldAnswer: unknownAnswer, answerKind: .unanswerable, plan: chain.steps(expectingLast: false)
            )
            return (task, world.removingFact(about: chain.subjects[1], attribute: chain.attributes[1]))
        }
    }

    // MARK: Plan steps

    /// The expert's search for one fact: `search(capital of Zelmar)`.
    static func searchStep(_ attribute: Attribute, _ subject: String, expected: String?) -> PlanStep {
        let topic = Fact.topic(attribute, subject)
        return PlanStep(tool: .search, arguments: topic, topic: topic, expected: expected)
    }
}

extension String {
    /// Replaces every occurrence of a template placeholder such as `{np}`.
    func replacingPlaceholder(_ placeholder: String, with value: String) -> String {
        replacingOccurrences(of: placeholder, with: value)
    }
}
