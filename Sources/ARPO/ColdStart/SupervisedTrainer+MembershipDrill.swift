import Policy
import Tensor
import ToolEnv

extension SupervisedTrainer {
    /// Items in a membership drill's list.
    public static let membershipItems = 8
    /// Questions after a membership drill's list: half about listed items, half about others.
    public static let membershipQuestions = 6

    /// A membership drill from the train-split episode `episodeSeed`: `membershipItems` of its
    /// knowledge base's names and numbers, a line break, then `membershipQuestions` lines
    /// `ITEM? yes` or `ITEM? no`, saying whether ITEM stands in the list. Half the questions ask
    /// about listed items, half about the knowledge base's other items, in a random order; the
    /// loss is on the answers only.
    ///
    /// An unanswerable question is answered `unknown` when the search results name other
    /// entities than the one asked about, so the policy must notice that a name is absent from
    /// its context, where copying needs it present. Demonstrations hold one such decision per
    /// unanswerable episode; a drill holds `membershipQuestions`, half of each kind.
    static func membershipDrill(episodeSeed: UInt64, environment: EnvironmentConfig, codec: ProtocolCodec, maxPositions: Int) -> Example {
        var items = Episode.sample(split: .train, seed: episodeSeed, config: environment).knowledgeBaseNamesAndNumbers
        var generator = RandomGenerator(seed: episodeSeed)
        items.shuffle(using: &generator)
        let listedCount = min(membershipItems, items.count / 2)
        let listed = Array(items.prefix(listedCount)), others = Array(items.dropFirst(listedCount))
        let half = min(membershipQuestions / 2, listed.count, others.count)
        var questions = listed.prefix(half).map { ($0, true) } + others.prefix(half).map { ($0, false) }
        questions.shuffle(using: &generator)

        let lines = questions.flatMap { item, isListed in [(item + "? ", false), (isListed ? "yes" : "no", true), ("\n", false)] }
        return drillExample([(listed.joined(separator: " ") + "\n", false)] + lines, codec: codec, maxPositions: maxPositions)
    }
}
