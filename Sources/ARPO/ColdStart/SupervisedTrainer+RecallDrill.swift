import Policy
import ToolEnv

extension SupervisedTrainer {
    /// Facts listed in a fact-recall drill.
    public static let recallFacts = 6
    /// Sentences to complete after the list: two in three about listed facts.
    public static let recallQuestions = 6

    /// A fact-recall drill from the train-split episode `episodeSeed`
    /// (`Episode.factRecallDrill`): `recallFacts` of its facts on one line, then
    /// `recallQuestions` lines "The ATTRIBUTE of ENTITY is VALUE." or "… is unknown.", with the
    /// loss on the completions only.
    ///
    /// After each search the expert writes the fact it found in exactly these words, so the
    /// drill trains the step every search answer turns on: find "ENTITY is" in the context and
    /// copy what follows, or see that it is not there. A demonstration holds one or two such
    /// lookups; a drill holds `recallQuestions`.
    static func recallDrill(episodeSeed: UInt64, environment: EnvironmentConfig, codec: ProtocolCodec, maxPositions: Int) -> Example {
        let episode = Episode.sample(split: .train, seed: episodeSeed, config: environment)
        let drill = episode.factRecallDrill(listed: recallFacts, questions: recallQuestions, drawSeed: episodeSeed)
        var tokens = codec.tokenizer.encode(drill.facts + "\n")
        var mask = [Bool](repeating: false, count: tokens.count)
        func append(_ text: String, trained: Bool) {
            let encoded = codec.tokenizer.encode(text)
            tokens += encoded
            mask += [Bool](repeating: trained, count: encoded.count)
        }
        for question in drill.questions {
            append(question.prompt, trained: false)
            append(question.answer, trained: true)
            append("\n", trained: false)
        }
        return Example(tokens: Array(tokens.prefix(maxPositions)), lossMask: Array(mask.prefix(maxPositions)), isDocument: true)
    }
}
