import ARPO
import Foundation
import Policy
import ToolEnv

/// The policy's tokenizer (`tokenizer` section).
public struct TokenizerConfiguration: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, CaseIterable, Sendable {
        /// One token per byte (272 ids with the special tokens).
        case byte
        /// Byte-level BPE learned from the environment's train split when the run starts: names
        /// and words become a few tokens each, so sequences are shorter and copying a name means
        /// copying a few tokens (see `Tokenizer`).
        case bpe
    }

    public var kind = Kind.byte
    /// Merges learned by `bpe`; the vocabulary is 272 + merges.
    public var merges = 1024
    /// Train-split episodes whose questions, expert demonstrations and observations the BPE
    /// learns from (their seeds are apart from the cold start's and RL's).
    public var trainingEpisodes = 2000

    public init() {}

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case kind, merges
        case trainingEpisodes = "training_episodes"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TokenizerConfiguration()
        kind = try c.decodeIfPresent(Kind.self, forKey: .kind) ?? d.kind
        merges = try c.decodeIfPresent(Int.self, forKey: .merges) ?? d.merges
        trainingEpisodes = try c.decodeIfPresent(Int.self, forKey: .trainingEpisodes) ?? d.trainingEpisodes
    }

    /// The model's `vocab_size` this tokenizer needs.
    public var vocabularySize: Int { kind == .byte ? Tokenizer.baseVocabularySize : Tokenizer.baseVocabularySize + merges }

    func validate(path: String) throws {
        try require(merges >= 1 && merges <= 65_536, path, CodingKeys.merges, "in 1...65536", merges)
        try require(trainingEpisodes >= 1 && trainingEpisodes <= 1_000_000, path, CodingKeys.trainingEpisodes, "in 1...1000000", trainingEpisodes)
    }

    /// The tokenizer a new run starts with: the byte tokenizer, or a BPE learned from the text
    /// of `trainingEpisodes` train-split episodes solved by the expert (questions, the expert's
    /// words and calls, and the observations), a function of `seed` and `environment` alone.
    /// With `userTexts` (the user's task prompts and demonstrations, when task files replace the
    /// generated families), the BPE learns from those instead.
    public func makeTokenizer(environment: EnvironmentConfig, seed: UInt64, userTexts: [String]? = nil) throws -> Tokenizer {
        guard kind == .bpe else { return Tokenizer() }
        if let userTexts {
            do { return try Tokenizer.train(texts: userTexts, mergeCount: merges) } catch let error as PolicyError {
                throw ConfigurationError("tokenizer: \(error.description)")
            }
        }
        let solver = ExpertSolver()
        var texts: [String] = []
        texts.reserveCapacity(trainingEpisodes * 4)
        for index in 0..<trainingEpisodes {
            let episode = Episode.sample(split: .train, seed: Seed.derive(seed, .tokenizerEpisodes, index), config: environment)
            texts.append(episode.prompt)
            for segment in solver.demonstrate(episode).segments { texts.append(segment.text) }
        }
        do { return try Tokenizer.train(texts: texts, mergeCount: merges) } catch let error as PolicyError {
            throw ConfigurationError("tokenizer: \(error.description)")
        }
    }
}
