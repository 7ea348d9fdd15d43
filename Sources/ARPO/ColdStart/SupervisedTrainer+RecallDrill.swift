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
        let lines = drill.questions.flatMap { [($0.prompt, false), ($0.answer, true), ("\n", false)] }
        return drillExample([(drill.facts + "\n", false)] + lines, codec: codec, maxPositions: maxPositions)
    }
}
