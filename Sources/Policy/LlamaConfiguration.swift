import Foundation

/// Errors reading or validating a model configuration or checkpoint. The message names the file
/// and the key or tensor at fault.
public struct PolicyError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The architecture of a LLaMA-style decoder, with Hugging Face `LlamaConfig` field names
/// (`hidden_size`, `num_hidden_layers`, …) so that the same keys appear in a run's config and in
/// a checkpoint's `config.json`.
public struct LlamaConfiguration: Codable, Equatable, Sendable {
    /// Vocabulary size V.
    public var vocabularySize: Int = Tokenizer.baseVocabularySize
    /// Model width C.
    public var hiddenSize: Int = 128
    /// SwiGLU hidden width.
    public var intermediateSize: Int = 384
    /// Number of decoder blocks L.
    public var layerCount: Int = 2
    /// Attention heads H (head dimension C / H).
    public var headCount: Int = 4
    /// Key/value heads (H for plain multi-head attention; fewer for grouped-query attention).
    public var keyValueHeadCount: Int = 4
    /// Maximum sequence length (rotary table size and KV-cache capacity).
    public var maxPositions: Int = 320
    /// RoPE base θ.
    public var ropeTheta: Double = 10_000
    /// RMSNorm ε.
    public var rmsNormEpsilon: Double = 1e-5
    /// Whether the LM head shares the token embedding.
    public var tieWordEmbeddings: Bool = true
    /// Whether the model carries a scalar value head (PPO's critic) on the final hidden state.
    public var valueHead: Bool = false

    public init(
        vocabularySize: Int = Tokenizer.baseVocabularySize, hiddenSize: Int = 128, intermediateSize: Int = 384,
        layerCount: Int = 2, headCount: Int = 4, keyValueHeadCount: Int? = nil, maxPositions: Int = 320,
        ropeTheta: Double = 10_000, rmsNormEpsilon: Double = 1e-5, tieWordEmbeddings: Bool = true, valueHead: Bool = false
    ) {
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.keyValueHeadCount = keyValueHeadCount ?? headCount
        self.maxPositions = maxPositions
        self.ropeTheta = ropeTheta
        self.rmsNormEpsilon = rmsNormEpsilon
        self.tieWordEmbeddings = tieWordEmbeddings
        self.valueHead = valueHead
    }

    /// Head dimension D = C / H.
    public var headDimension: Int { hiddenSize / headCount }

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case vocabularySize = "vocab_size"
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case layerCount = "num_hidden_layers"
        case headCount = "num_attention_heads"
        case keyValueHeadCount = "num_key_value_heads"
        case maxPositions = "max_position_embeddings"
        case ropeTheta = "rope_theta"
        case rmsNormEpsilon = "rms_norm_eps"
        case tieWordEmbeddings = "tie_word_embeddings"
        case valueHead = "value_head"
    }

    /// Decodes with a default for every missing key (`num_key_value_heads` defaults to the head
    /// count).
    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = LlamaConfiguration()
        vocabularySize = try container.decodeIfPresent(Int.self, forKey: .vocabularySize) ?? defaults.vocabularySize
        hiddenSize = try container.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? defaults.hiddenSize
        intermediateSize = try container.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? defaults.intermediateSize
        layerCount = try container.decodeIfPresent(Int.self, forKey: .layerCount) ?? defaults.layerCount
        headCount = try container.decodeIfPresent(Int.self, forKey: .headCount) ?? defaults.headCount
        keyValueHeadCount = try container.decodeIfPresent(Int.self, forKey: .keyValueHeadCount) ?? headCount
        maxPositions = try container.decodeIfPresent(Int.self, forKey: .maxPositions) ?? defaults.maxPositions
        ropeTheta = try container.decodeIfPresent(Double.self, forKey: .ropeTheta) ?? defaults.ropeTheta
        rmsNormEpsilon = try container.decodeIfPresent(Double.self, forKey: .rmsNormEpsilon) ?? defaults.rmsNormEpsilon
        tieWordEmbeddings = try container.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? defaults.tieWordEmbeddings
        valueHead = try container.decodeIfPresent(Bool.self, forKey: .valueHead) ?? defaults.valueHead
    }

    /// Checks every field's range; the message names the key (under `path`) and what is allowed.
    public func validate(path: String = "model") throws {
        func require(_ condition: Bool, _ key: CodingKeys, _ allowed: String, _ value: Any) throws {
            if !condition { throw PolicyError("\(path).\(key.rawValue) must be \(allowed), got \(value)") }
        }
        try require(vocabularySize >= Tokenizer.baseVocabularySize && vocabularySize <= 1 << 20, .vocabularySize, "in \(Tokenizer.baseVocabularySize)...1048576 (the byte tokenizer needs \(Tokenizer.baseVocabularySize) ids)", vocabularySize)
        try require(hiddenSize >= 2 && hiddenSize <= 16384, .hiddenSize, "in 2...16384", hiddenSize)
        try require(headCount >= 1 && hiddenSize % headCount == 0, .headCount, "a positive divisor of hidden_size \(hiddenSize)", headCount)
        try require(headDimension % 2 == 0, .headCount, "such that hidden_size / num_attention_heads is even (RoPE rotates pairs)", headCount)
        try require(keyValueHeadCount >= 1 && headCount % keyValueHeadCount == 0, .keyValueHeadCount, "a positive divisor of num_attention_heads \(headCount)", keyValueHeadCount)
        try require(intermediateSize >= 1 && intermediateSize <= 65536, .intermediateSize, "in 1...65536", intermediateSize)
        try require(layerCount >= 1 && layerCount <= 128, .layerCount, "in 1...128", layerCount)
        try require(maxPositions >= 2 && maxPositions <= 65536, .maxPositions, "in 2...65536", maxPositions)
        try require(ropeTheta > 1 && ropeTheta.isFinite, .ropeTheta, "a finite number greater than 1", ropeTheta)
        try require(rmsNormEpsilon > 0 && rmsNormEpsilon < 1, .rmsNormEpsilon, "in (0, 1)", rmsNormEpsilon)
    }
}

// MARK: - Hugging Face config.json

extension LlamaConfiguration {
    /// The `config.json` that `transformers.AutoModelForCausalLM.from_pretrained` reads.
    ///
    /// The RoPE base is written both top-level (`rope_theta`, read by transformers 4.x) and as
    /// `rope_parameters.rope_theta` (transformers 5).
    public func huggingFaceConfig(tokenizer: Tokenizer = Tokenizer()) -> [String: Any] {
        [
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": hiddenSize,
            "intermediate_size": intermediateSize,
            "num_hidden_layers": layerCount,
            "num_attention_heads": headCount,
            "num_key_value_heads": keyValueHeadCount,
            "head_dim": headDimension,
            "vocab_size": vocabularySize,
            "max_position_embeddings": maxPositions,
            "rms_norm_eps": rmsNormEpsilon,
            "rope_theta": ropeTheta,
            "rope_parameters": ["rope_theta": ropeTheta, "rope_type": "default"],
            "tie_word_embeddings": tieWordEmbeddings,
            "hidden_act": "silu",
            "attention_bias": false,
            "mlp_bias": false,
            "attention_dropout": 0.0,
            "initializer_range": 0.02,
            "bos_token_id": tokenizer.beginID,
            "eos_token_id": tokenizer.endID,
            "pad_token_id": tokenizer.padID,
            "torch_dtype": "float32",
            "use_cache": true,
            "arpo_value_head": valueHead,
        ]
    }

    /// Reads a Hugging Face LLaMA `config.json`, accepting the RoPE base either top-level or
    /// under `rope_parameters`.
    public static func fromHuggingFaceConfig(at url: URL) throws -> LlamaConfiguration {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw PolicyError("cannot read \(url.path): \(error.localizedDescription)")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw PolicyError("\(url.path) is not a JSON object")
        }
        func integer(_ key: String, default value: Int? = nil) throws -> Int {
            if let number = object[key] as? NSNumber, let exact = Int(exactly: number.doubleValue) { return exact }
            if object[key] == nil, let value { return value }
            throw PolicyError("\(url.path): \(key) must be an integer, got \(object[key].map { "\($0)" } ?? "nothing")")
        }
        func real(_ value: Any?, _ key: String) throws -> Double? {
            guard let value else { return nil }
            guard let number = value as? NSNumber else { throw PolicyError("\(url.path): \(key) must be a number, got \(value)") }
            return number.doubleValue
        }
        if let modelType = object["model_type"] as? String, modelType != "llama" {
            throw PolicyError("\(url.path): model_type is \"\(modelType)\", expected \"llama\"")
        }
        var configuration = LlamaConfiguration()
        configuration.vocabularySize = try integer("vocab_size")
        configuration.hiddenSize = try integer("hidden_size")
        configuration.intermediateSize = try integer("intermediate_size")
        configuration.layerCount = try integer("num_hidden_layers")
        configuration.headCount = try integer("num_attention_heads")
        configuration.keyValueHeadCount = try integer("num_key_value_heads", default: configuration.headCount)
        configuration.maxPositions = try integer("max_position_embeddings")
        let ropeParameters = object["rope_parameters"] as? [String: Any]
        configuration.ropeTheta = try real(ropeParameters?["rope_theta"], "rope_parameters.rope_theta") ?? real(object["rope_theta"], "rope_theta") ?? 10_000
        configuration.rmsNormEpsilon = try real(object["rms_norm_eps"], "rms_norm_eps") ?? 1e-6
        configuration.tieWordEmbeddings = (object["tie_word_embeddings"] as? Bool) ?? true
        configuration.valueHead = (object["arpo_value_head"] as? Bool) ?? false
        if let headDimension = object["head_dim"] as? Int, headDimension != configuration.headDimension {
            throw PolicyError("\(url.path): head_dim \(headDimension) differs from hidden_size / num_attention_heads = \(configuration.headDimension)")
        }
        do { try configuration.validate(path: url.lastPathComponent) } catch let error as PolicyError {
            throw PolicyError("\(url.path): \(error.description)")
        }
        return configuration
    }
}
