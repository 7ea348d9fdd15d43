/// One piece of a demonstration: text the policy writes, or an observation the environment
/// returned.
public struct Segment: Equatable, Sendable {
    /// Who wrote a segment.
    public enum Role: String, Codable, Sendable {
        /// The policy's text, tags included as literal strings: trained on (loss mask 1).
        case policy
        /// A tool result, without `<obs>` wrappers: context only (loss mask 0).
        case observation
    }

    /// Who wrote the text.
    public let role: Role
    /// The text.
    public let text: String

    /// A segment.
    public init(role: Role, text: String) {
        self.role = role
        self.text = text
    }
}

/// A scripted trajectory for one episode, for supervised cold start (ARPO section 7).
public struct Demonstration: Equatable, Sendable {
    /// The policy's and the environment's text in order. The prompt is not a segment (it is
    /// `Episode.prompt`). The trainer puts `<obs>` and `</obs>` as untrained special tokens
    /// around each observation segment.
    public let segments: [Segment]
    /// Why the demonstration ended: `.answered`, or `.callLimit` when faults used up the calls.
    public let endReason: EndReason
    /// The reward `Episode.finish` gave the transcript.
    public let reward: RewardBreakdown

    /// The transcript as `Episode.finish` sees it: policy text, and each observation wrapped in
    /// `<obs>` … `</obs>`.
    public var transcript: String { Demonstration.transcript(of: segments) }

    /// Joins segments into a transcript, wrapping observations in `<obs>` … `</obs>`.
    static func transcript(of segments: [Segment]) -> String {
        segments.map { segment in
            switch segment.role {
            case .policy: return segment.text
            case .observation: return ProtocolTag.observationOpen.rawValue + segment.text + ProtocolTag.observationClose.rawValue
            }
        }.joined()
    }

    /// The policy's text length in tokens of a byte-level tokenizer with one token per tag:
    /// every tag counts 1, every other UTF-8 byte counts 1.
    public var policyTokenCount: Int {
        segments.filter { $0.role == .policy }.reduce(0) { total, segment in
            total + TranscriptPiece.split(segment.text).reduce(0) { count, piece in
                switch piece {
                case let .text(text): return count + text.utf8.count
                case .tag: return count + 1
                }
            }
        }
    }
}

/// Writes a correct trajectory for any task by running the episode's own tools.
///
/// The solver follows the task's plan, one call per step, through `Episode.respond`, so faults
/// and limits apply to it as to the policy. When a call fails (an injected failure or degraded
/// result, or an observation without the expected fact) it says so and retries the same call.
/// It answers with the gold answer (`unknown` for unanswerable tasks) followed by `<|end|>`.
/// Thinking phrases are picked from several templates by the episode's seed.
///
/// After each search it writes down the fact it asked for, as the knowledge base words it:
/// "The leader of Zikstu is Fekfanres.", or "The leader of Zikstu is unknown." when the search
/// found no fact about that entity (the last search of an unanswerable task). Its answer then
/// copies the value from that sentence. The sentence puts the whole lookup at one point: after
/// "…of Zikstu is", the next token is the one that follows "Zikstu is" in the observation,
/// which an induction head copies, and when no such sentence is there the policy must write
/// `unknown`. (With `search.order: relevance` the asked fact is always first when it exists,
/// so a policy can also get answerable questions right by taking the first fact's value, and
/// then answers unanswerable ones with it too.)
///
/// Everything it writes is short: a byte-level policy pays one token per character. Fault-free
/// demonstrations stay under 400 policy tokens.
public struct ExpertSolver: Sendable {
    /// A solver.
    public init() {}

    static let firstSearchPhrases = ["I need the {t}.", "Let me search for the {t}.", "First, the {t}.", "Look up the {t}.", ""]
    static let nextSearchPhrases = ["Now the {t}.", "Next, the {t}.", "Then the {t}.", ""]
    static let arithmeticPhrases = ["Let me compute.", "Use the calculator.", "I will calculate it.", ""]
    static let composePhrases = ["Now compute.", "Now calculate it.", "Compute it.", ""]
    static let retryPhrases = ["That failed, retry.", "No result, try again.", "Retrying.", "The tool failed. Again."]
    static let answerPhrases = ["", "So:", "Done."]

    /// Solves `episode`, which must be fresh, and finishes it.
    ///
    /// - Precondition: no call has been made on the episode and it is not finished.
    public func demonstrate(_ episode: Episode) -> Demonstration {
        precondition(episode.responses.isEmpty && !episode.isFinished, "the expert needs a fresh episode")
        var generator = episode.expertGenerator()
        var segments: [Segment] = []
        var pending = ""  // policy text since the last observation

        func phrase(_ options: [String], topic: String = "") -> String {
            generator.element(of: options).replacingPlaceholder("{t}", with: topic)
        }

        for (index, step) in episode.task.plan.enumerated() {
            switch step.tool {
            case .search, .lookup:
                pending += phrase(index == 0 ? ExpertSolver.firstSearchPhrases : ExpertSolver.nextSearchPhrases, topic: step.topic)
            case .calc:
                pending += phrase(episode.task.family == .arithmetic ? ExpertSolver.arithmeticPhrases : ExpertSolver.composePhrases)
            }
            while true {
                pending += ProtocolTag.callOpen.rawValue + ExpertSolver.callContent(step, format: episode.config.callFormat) + ProtocolTag.callClose.rawValue
                let response = episode.respond(toPolicyText: pending)
                segments.append(Segment(role: .policy, text: pending))
                segments.append(Segment(role: .observation, text: response.observation))
                pending = ""
                if response.episodeMustEnd {
                    let reward = episode.finish(policyText: Demonstration.transcript(of: segments), endReason: .callLimit)
                    return Demonstration(segments: segments, endReason: .callLimit, reward: reward)
                }
                if ExpertSolver.succeeded(response, step) { break }
                pending += phrase(ExpertSolver.retryPhrases)
            }
            if step.tool != .calc {
                pending += ExpertSolver.foundFact(step) + " "
            }
        }

        if episode.task.plan.last?.tool == .calc || episode.task.plan.isEmpty {
            pending += phrase(ExpertSolver.answerPhrases)
        } else {
            // The answer follows the sentence that states it.
            pending.removeLast()
        }
        pending += ProtocolTag.answerOpen.rawValue + episode.task.goldAnswer + ProtocolTag.answerClose.rawValue + ProtocolTag.end.rawValue
        segments.append(Segment(role: .policy, text: pending))
        let reward = episode.finish(policyText: Demonstration.transcript(of: segments), endReason: .answered)
        return Demonstration(segments: segments, endReason: .answered, reward: reward)
    }

    /// A plan step's call in the configured format: `search(capital of Zelmar)`, or
    /// `{"arguments":{"query":"capital of Zelmar"},"name":"search"}`.
    static func callContent(_ step: PlanStep, format: CallFormat) -> String {
        guard format == .json else { return step.tool.rawValue + "(" + step.arguments + ")" }
        let names = step.tool.toolDescription.compactArgumentNames
        let values = names.count == 1 ? [step.arguments] : step.arguments.split(separator: ",", maxSplits: names.count - 1).map {
            String($0.drop(while: { $0 == " " }))
        }
        let arguments = Dictionary(uniqueKeysWithValues: zip(names, values.map { JSONValue.string($0) }))
        return format.render(tool: step.tool.toolDescription, arguments: arguments)
    }

    /// The sentence written after a search or lookup: the fact it found, in the knowledge
    /// base's words, or the same sentence ending in `unknown` when nothing was expected.
    static func foundFact(_ step: PlanStep) -> String {
        Fact.sentenceStart(topic: step.topic) + " \(step.expected ?? TaskGenerator.unknownAnswer)."
    }

    /// A step succeeded when nothing failed and the observation holds the expected value
    /// (any clean result will do when nothing is expected).
    static func succeeded(_ response: ToolResponse, _ step: PlanStep) -> Bool {
        guard !response.reportsFailure else { return false }
        guard let expected = step.expected else { return true }
        return response.observation.contains(expected)
    }
}
