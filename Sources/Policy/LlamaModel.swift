import Tensor

/// A right-padded batch of token sequences: `tokens` is (B, T) row-major, `lengths[b]` the real
/// length of row b (positions at or past it hold padding).
///
/// A packed batch holds several sequences per row, one after the other: `sequenceStarts[b]` lists
/// where row b's sequences start. The model treats each as if it were alone: its positions count
/// from 0 and its tokens attend only to its own earlier tokens.
public struct TokenBatch: Sendable {
    public let tokens: [Int]
    public let batchSize: Int
    public let length: Int
    public let lengths: [Int]
    /// Per row, the start of each of its sequences (0 first, increasing, each below the row's
    /// length; empty for an empty row); sequence s runs to the next start or to `lengths[b]`.
    /// Nil: one sequence per row.
    public let sequenceStarts: [[Int]]?
    /// Per row and sequence (as `sequenceStarts`), the row indices of the tokens before the
    /// sequence's first that it attends to, in position order: a prefix it shares with an earlier
    /// sequence of the row, which holds it once (`PackedSequence`). The sequence's positions
    /// continue from its prefix's length. Nil: no sequence has a prefix.
    public let prefixes: [[[Int]]]?

    public init(tokens: [Int], batchSize: Int, length: Int, lengths: [Int], sequenceStarts: [[Int]]? = nil, prefixes: [[[Int]]]? = nil) {
        precondition(tokens.count == batchSize * length, "token batch holds \(tokens.count) ids, not \(batchSize) × \(length)")
        precondition(lengths.count == batchSize && lengths.allSatisfy { $0 >= 0 && $0 <= length }, "token batch lengths \(lengths) do not fit \(batchSize) rows of \(length)")
        if let sequenceStarts {
            precondition(sequenceStarts.count == batchSize, "token batch has sequence starts for \(sequenceStarts.count) rows, not \(batchSize)")
            for (row, starts) in sequenceStarts.enumerated() {
                let valid = lengths[row] == 0 ? starts.isEmpty
                    : starts.first == 0 && starts.last! < lengths[row] && zip(starts, starts.dropFirst()).allSatisfy { $0 < $1 }
                precondition(valid, "token batch row \(row): sequence starts \(starts) are not increasing from 0 below its length \(lengths[row])")
            }
        }
        if let prefixes {
            precondition(sequenceStarts != nil && prefixes.map(\.count) == sequenceStarts!.map(\.count), "token batch prefixes \(prefixes.map(\.count)) do not match its sequences")
            for (row, rowPrefixes) in prefixes.enumerated() {
                for (sequence, prefix) in rowPrefixes.enumerated() {
                    let start = sequenceStarts![row][sequence]
                    precondition(prefix.allSatisfy { $0 >= 0 && $0 < start }, "token batch row \(row): sequence \(sequence)'s prefix must lie before its start \(start)")
                }
            }
        }
        self.tokens = tokens
        self.batchSize = batchSize
        self.length = length
        self.lengths = lengths
        self.sequenceStarts = sequenceStarts
        self.prefixes = prefixes
    }

    /// Packs `rows[b]`'s sequences one after the other into row b, right-padded with `padding` to
    /// the longest row.
    public init(packing rows: [[[Int]]], padding: Int) {
        let lengths = rows.map { $0.reduce(0) { $0 + $1.count } }
        let length = lengths.max() ?? 0
        var tokens: [Int] = []
        tokens.reserveCapacity(rows.count * length)
        var starts: [[Int]] = []
        for (row, sequences) in rows.enumerated() {
            var rowStarts: [Int] = []
            for sequence in sequences where !sequence.isEmpty {
                rowStarts.append(tokens.count - row * length)
                tokens += sequence
            }
            tokens += [Int](repeating: padding, count: length - lengths[row])
            starts.append(rowStarts)
        }
        self.init(tokens: tokens, batchSize: rows.count, length: length, lengths: lengths, sequenceStarts: starts)
    }

    /// Packs `rows[b]`'s sequences into row b, right-padded with `padding` to the longest row. A
    /// sequence that names a host (an earlier sequence of the row holding its first
    /// `sharedLength` tokens) is stored from its token `sharedLength − 1` on, and attends to the
    /// host's copy of the tokens before (`prefixes`).
    ///
    /// The shared prefix's last token is computed again in the sequence's own tokens, so that
    /// every next-token prediction of the sequence, the first one past the shared prefix
    /// included, is at a position whose next token in the row is the predicted one
    /// (`locations`).
    public init(packing rows: [[PackedSequence]], padding: Int) {
        var rowTokens: [[Int]] = [], starts: [[Int]] = [], prefixes: [[[Int]]] = []
        for (row, sequences) in rows.enumerated() {
            var tokens: [Int] = [], rowStarts: [Int] = [], rowPrefixes: [[Int]] = [], locations: [[Int]] = []
            for (index, sequence) in sequences.enumerated() {
                precondition(!sequence.tokens.isEmpty, "packed row \(row): sequence \(index) is empty")
                var prefix: [Int] = []
                if let host = sequence.host {
                    precondition(host < index && sequence.sharedLength >= 1 && sequence.sharedLength <= Swift.min(sequence.tokens.count, sequences[host].tokens.count), "packed row \(row): sequence \(index) shares \(sequence.sharedLength) tokens with sequence \(host)")
                    precondition(sequence.tokens[..<sequence.sharedLength] == sequences[host].tokens[..<sequence.sharedLength], "packed row \(row): sequence \(index)'s first \(sequence.sharedLength) tokens are not its host's")
                    prefix = Array(locations[host][..<(sequence.sharedLength - 1)])
                }
                rowStarts.append(tokens.count)
                rowPrefixes.append(prefix)
                locations.append(prefix + Array(tokens.count..<(tokens.count + sequence.tokens.count - prefix.count)))
                tokens += sequence.tokens[prefix.count...]
            }
            rowTokens.append(tokens)
            starts.append(rowStarts)
            prefixes.append(rowPrefixes)
        }
        let lengths = rowTokens.map(\.count)
        let length = lengths.max() ?? 0
        // Without a shared prefix the batch is a plain packed one (no key gathering).
        self.init(
            tokens: rowTokens.flatMap { $0 + [Int](repeating: padding, count: length - $0.count) }, batchSize: rows.count, length: length,
            lengths: lengths, sequenceStarts: starts, prefixes: prefixes.joined().allSatisfy(\.isEmpty) ? nil : prefixes)
    }

    /// Where each token of row `row`'s sequence `sequence` is in the row: its prefix's row indices,
    /// then its own. The prediction of token i + 1 is at `locations[i]`: the token after it in
    /// the row is the sequence's token i + 1, and its context the sequence's tokens 0 … i.
    public func locations(row: Int, sequence: Int) -> [Int] {
        guard let sequenceStarts else { return Array(0..<lengths[row]) }
        let starts = sequenceStarts[row]
        let end = sequence + 1 < starts.count ? starts[sequence + 1] : lengths[row]
        return (prefixes?[row][sequence] ?? []) + Array(starts[sequence]..<end)
    }

    /// The position of every token, (B, T) row-major: its index within its own sequence, which
    /// counts its prefix. Padding gets position 0 (its outputs are never read).
    public var positions: [Int] {
        guard let sequenceStarts else { return (0..<batchSize).flatMap { _ in 0..<length } }
        var positions = [Int](repeating: 0, count: batchSize * length)
        for (row, starts) in sequenceStarts.enumerated() {
            for (index, start) in starts.enumerated() {
                let end = index + 1 < starts.count ? starts[index + 1] : lengths[row]
                let first = prefixes?[row][index].count ?? 0
                for t in start..<end { positions[row * length + t] = first + t - start }
            }
        }
        return positions
    }

    /// The longest sequence, prefix included (a padded row counts whole): the highest position is
    /// one less.
    public var longestSequence: Int {
        guard let sequenceStarts else { return length }
        return sequenceStarts.indices.map { row in
            sequenceStarts[row].indices.map { locations(row: row, sequence: $0).count }.max() ?? 0
        }.max() ?? 0
    }

    /// The attention mask of the batch: causal over each row, or for a packed batch causal
    /// within each sequence and blind across them (a row's padding is a segment of its own).
    public var attentionMask: AttentionMask {
        if prefixes != nil { return AttentionMask(problems: prefixProblems) }
        guard let sequenceStarts else { return .causal }
        return AttentionMask(segmentStarts: zip(sequenceStarts, lengths).map { starts, rowLength in
            let segments = rowLength < length ? starts + [rowLength] : starts
            return segments.isEmpty ? [0] : segments
        })
    }

    /// With prefixes, how each row's attention reads its keys: the row indices of the keys in
    /// the order `attentionMask`'s problems take them (each sequence's prefix, then its own
    /// tokens; the row's padding last, filled up with the row's last index to the longest row's
    /// count), (B, keyLength) row-major, and that count.
    public var keyRows: (indices: [Int], keyLength: Int)? {
        guard prefixes != nil, let sequenceStarts else { return nil }
        let rows = sequenceStarts.indices.map { row in
            sequenceStarts[row].indices.flatMap { locations(row: row, sequence: $0) } + Array(lengths[row]..<length)
        }
        let keyLength = rows.map(\.count).max() ?? 0
        return (rows.flatMap { $0 + [Int](repeating: Swift.max(length - 1, 0), count: keyLength - $0.count) }, keyLength)
    }

    /// With prefixes, the attention problems of `keyRows`' keys: per sequence its own tokens as
    /// queries against its prefix and its own tokens, then the row's padding against itself;
    /// the last problem of a row takes the filler keys as keys no query sees.
    var prefixProblems: [[AttentionProblem]] {
        let keyLength = keyRows!.keyLength
        return sequenceStarts!.indices.map { row in
            var problems: [AttentionProblem] = []
            var key = 0
            for sequence in sequenceStarts![row].indices {
                let keys = locations(row: row, sequence: sequence).count
                let prefix = prefixes![row][sequence].count
                problems.append(AttentionProblem(
                    queryStart: sequenceStarts![row][sequence], queryLength: keys - prefix, keyStart: key, keyLength: keys,
                    queryOffset: prefix, visibleKeyLength: keys))
                key += keys
            }
            if lengths[row] < length {
                problems.append(AttentionProblem(
                    queryStart: lengths[row], queryLength: length - lengths[row], keyStart: key, keyLength: length - lengths[row],
                    queryOffset: 0, visibleKeyLength: length - lengths[row]))
                key += length - lengths[row]
            }
            if key < keyLength, !problems.isEmpty { problems[problems.count - 1].keyLength += keyLength - key }
            return problems
        }
    }

    /// Right-pads `sequences` with `padding` to the longest one.
    public init(sequences: [[Int]], padding: Int) {
        let length = sequences.map(\.count).max() ?? 0
        var tokens: [Int] = []
        tokens.reserveCapacity(sequences.count * length)
        for sequence in sequences { tokens += sequence + [Int](repeating: padding, count: length - sequence.count) }
        self.init(tokens: tokens, batchSize: sequences.count, length: length, lengths: sequences.map(\.count))
    }
}

/// A sequence for `TokenBatch(packing:padding:)` with shared prefixes: its tokens, and
/// optionally an earlier sequence of its row (`host`, its index there) whose first
/// `sharedLength` tokens are its own, which the row then holds once.
public struct PackedSequence: Sendable {
    public var tokens: [Int]
    public var host: Int?
    public var sharedLength: Int

    public init(tokens: [Int], host: Int? = nil, sharedLength: Int = 0) {
        self.tokens = tokens
        self.host = host
        self.sharedLength = sharedLength
    }
}

/// What the training forward pass gives per position.
public struct PolicyOutput {
    /// (B, T, V) next-token logits.
    public let logits: Tensor
    /// (B, T) value estimates, when the model has a value head.
    public let values: Tensor?
}

/// A decoder-only LLaMA, computed as Hugging Face's `LlamaForCausalLM` computes it:
/// embedding; L × [RMSNorm → causal multi-head attention with RoPE (no biases) → residual;
/// RMSNorm → SwiGLU MLP down(silu(gate(x)) · up(x)) → residual]; final RMSNorm; LM head (tied to
/// the embedding by default); and an optional scalar value head on the final hidden state.
///
/// Parameters carry Hugging Face's names and `[out, in]` layouts, so `namedParameters` is the
/// checkpoint's key set.
public final class LlamaModel {
    public let configuration: LlamaConfiguration
    public let embedding: Tensor
    public let layers: [DecoderLayer]
    public let finalNorm: Tensor
    /// The untied LM head `[V, C]`, or nil when tied to `embedding`.
    public let languageModelHead: Tensor?
    /// Value head weight `[1, C]` and bias `[1]` (PPO's critic), when configured.
    public let valueHeadWeight: Tensor?
    public let valueHeadBias: Tensor?
    let rotary: RotaryEmbedding
    /// Fused, transposed weight copies for KV-cache decoding, rebuilt after parameter updates.
    let decodeWeights = DecodeWeightCache()

    /// One decoder block's parameters, `[out, in]` like `torch.nn.Linear`.
    public struct DecoderLayer {
        public let inputNorm: Tensor, postAttentionNorm: Tensor
        public let queryProjection: Tensor, keyProjection: Tensor, valueProjection: Tensor, outputProjection: Tensor
        public let gateProjection: Tensor, upProjection: Tensor, downProjection: Tensor
    }

    /// A freshly initialised model: linear and embedding weights ~ N(0, 0.02²) as `transformers`
    /// initialises LLaMA, norm weights 1, and an orthogonal value head (gain 1, bias 0), the
    /// PPO-standard initialisation for heads.
    public convenience init(configuration: LlamaConfiguration, dtype: DType = .float32, generator: inout RandomGenerator) {
        let c = configuration.hiddenSize, kv = configuration.keyValueHeadCount * configuration.headDimension
        func normal(_ shape: [Int]) -> Tensor { Tensor.normal(shape, standardDeviation: 0.02, dtype: dtype, generator: &generator) }
        var parameters: [String: Tensor] = ["model.embed_tokens.weight": normal([configuration.vocabularySize, c])]
        for index in 0..<configuration.layerCount {
            let prefix = "model.layers.\(index)."
            parameters[prefix + "input_layernorm.weight"] = Tensor.ones([c], dtype: dtype)
            parameters[prefix + "post_attention_layernorm.weight"] = Tensor.ones([c], dtype: dtype)
            parameters[prefix + "self_attn.q_proj.weight"] = normal([c, c])
            parameters[prefix + "self_attn.k_proj.weight"] = normal([kv, c])
            parameters[prefix + "self_attn.v_proj.weight"] = normal([kv, c])
            parameters[prefix + "self_attn.o_proj.weight"] = normal([c, c])
            parameters[prefix + "mlp.gate_proj.weight"] = normal([configuration.intermediateSize, c])
            parameters[prefix + "mlp.up_proj.weight"] = normal([configuration.intermediateSize, c])
            parameters[prefix + "mlp.down_proj.weight"] = normal([c, configuration.intermediateSize])
        }
        parameters["model.norm.weight"] = Tensor.ones([c], dtype: dtype)
        if !configuration.tieWordEmbeddings { parameters["lm_head.weight"] = normal([configuration.vocabularySize, c]) }
        if configuration.valueHead {
            parameters[LlamaModel.valueHeadWeightKey] = Tensor.orthogonal(rows: 1, columns: c, gain: 1, dtype: dtype, generator: &generator)
            parameters[LlamaModel.valueHeadBiasKey] = Tensor.zeros([1], dtype: dtype)
        }
        try! self.init(configuration: configuration, parameters: parameters)
    }

    /// The checkpoint key of the value head's weight `[1, C]` (not a `transformers` key; it loads
    /// with an "unused weights" notice there).
    public static let valueHeadWeightKey = "value_head.weight"
    /// The checkpoint key of the value head's bias `[1]`.
    public static let valueHeadBiasKey = "value_head.bias"

    /// The parameter names and shapes this configuration needs, in a stable order.
    public static func expectedShapes(for configuration: LlamaConfiguration) -> [(name: String, shape: [Int])] {
        let c = configuration.hiddenSize, kv = configuration.keyValueHeadCount * configuration.headDimension
        let f = configuration.intermediateSize, v = configuration.vocabularySize
        var shapes: [(String, [Int])] = [("model.embed_tokens.weight", [v, c])]
        for index in 0..<configuration.layerCount {
            let prefix = "model.layers.\(index)."
            shapes += [
                (prefix + "input_layernorm.weight", [c]),
                (prefix + "self_attn.q_proj.weight", [c, c]),
                (prefix + "self_attn.k_proj.weight", [kv, c]),
                (prefix + "self_attn.v_proj.weight", [kv, c]),
                (prefix + "self_attn.o_proj.weight", [c, c]),
                (prefix + "post_attention_layernorm.weight", [c]),
                (prefix + "mlp.gate_proj.weight", [f, c]),
                (prefix + "mlp.up_proj.weight", [f, c]),
                (prefix + "mlp.down_proj.weight", [c, f]),
            ]
        }
        shapes.append(("model.norm.weight", [c]))
        if !configuration.tieWordEmbeddings { shapes.append(("lm_head.weight", [v, c])) }
        if configuration.valueHead {
            shapes.append((valueHeadWeightKey, [1, c]))
            shapes.append((valueHeadBiasKey, [1]))
        }
        return shapes
    }

    /// A model from named parameters (Hugging Face keys). Throws naming the key when one is
    /// missing, unexpected, of the wrong shape, or of a different dtype from the rest.
    public init(configuration: LlamaConfiguration, parameters: [String: Tensor]) throws {
        try configuration.validate()
        self.configuration = configuration
        let expected = LlamaModel.expectedShapes(for: configuration)
        let dtype = parameters["model.embed_tokens.weight"]?.dtype ?? .float32
        for (name, shape) in expected {
            guard let tensor = parameters[name] else { throw PolicyError("missing parameter \(name) (shape \(shape))") }
            guard tensor.shape == shape else { throw PolicyError("parameter \(name) has shape \(tensor.shape), the configuration needs \(shape)") }
            guard tensor.dtype == dtype else { throw PolicyError("parameter \(name) is \(tensor.dtype), the others are \(dtype)") }
        }
        let known = Set(expected.map(\.name))
        // A tied checkpoint may still carry lm_head.weight (some exporters write it); it must then
        // equal the embedding, which the loader does not need, so it is ignored.
        let unexpected = parameters.keys.filter { !known.contains($0) && !($0 == "lm_head.weight" && configuration.tieWordEmbeddings) }.sorted()
        if let first = unexpected.first {
            throw PolicyError("unexpected parameter \(first)\(unexpected.count > 1 ? " (and \(unexpected.count - 1) more)" : "") for this configuration")
        }
        embedding = parameters["model.embed_tokens.weight"]!
        layers = (0..<configuration.layerCount).map { index in
            let prefix = "model.layers.\(index)."
            return DecoderLayer(
                inputNorm: parameters[prefix + "input_layernorm.weight"]!,
                postAttentionNorm: parameters[prefix + "post_attention_layernorm.weight"]!,
                queryProjection: parameters[prefix + "self_attn.q_proj.weight"]!,
                keyProjection: parameters[prefix + "self_attn.k_proj.weight"]!,
                valueProjection: parameters[prefix + "self_attn.v_proj.weight"]!,
                outputProjection: parameters[prefix + "self_attn.o_proj.weight"]!,
                gateProjection: parameters[prefix + "mlp.gate_proj.weight"]!,
                upProjection: parameters[prefix + "mlp.up_proj.weight"]!,
                downProjection: parameters[prefix + "mlp.down_proj.weight"]!)
        }
        finalNorm = parameters["model.norm.weight"]!
        languageModelHead = configuration.tieWordEmbeddings ? nil : parameters["lm_head.weight"]!
        valueHeadWeight = configuration.valueHead ? parameters[LlamaModel.valueHeadWeightKey]! : nil
        valueHeadBias = configuration.valueHead ? parameters[LlamaModel.valueHeadBiasKey]! : nil
        rotary = RotaryEmbedding(headDimension: configuration.headDimension, maxPositions: configuration.maxPositions, theta: configuration.ropeTheta)
        for (_, tensor) in namedParameters { tensor.requiresGradient = true }
    }

    /// Every trainable parameter with its Hugging Face key, in a stable order.
    public var namedParameters: [(name: String, tensor: Tensor)] {
        var result: [(String, Tensor)] = [("model.embed_tokens.weight", embedding)]
        for (index, layer) in layers.enumerated() {
            let prefix = "model.layers.\(index)."
            result += [
                (prefix + "input_layernorm.weight", layer.inputNorm),
                (prefix + "self_attn.q_proj.weight", layer.queryProjection),
                (prefix + "self_attn.k_proj.weight", layer.keyProjection),
                (prefix + "self_attn.v_proj.weight", layer.valueProjection),
                (prefix + "self_attn.o_proj.weight", layer.outputProjection),
                (prefix + "post_attention_layernorm.weight", layer.postAttentionNorm),
                (prefix + "mlp.gate_proj.weight", layer.gateProjection),
                (prefix + "mlp.up_proj.weight", layer.upProjection),
                (prefix + "mlp.down_proj.weight", layer.downProjection),
            ]
        }
        result.append(("model.norm.weight", finalNorm))
        if let languageModelHead { result.append(("lm_head.weight", languageModelHead)) }
        if let valueHeadWeight, let valueHeadBias {
            result.append((LlamaModel.valueHeadWeightKey, valueHeadWeight))
            result.append((LlamaModel.valueHeadBiasKey, valueHeadBias))
        }
        return result
    }

    /// The parameters alone, in `namedParameters` order.
    public var parameters: [Tensor] { namedParameters.map(\.tensor) }

    /// Number of scalars in all parameters.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// The element type of the parameters.
    public var dtype: DType { embedding.dtype }

    /// An independent copy (new storage) in `dtype`: a frozen reference policy, or a Float64
    /// model for gradient checks.
    public func copy(dtype: DType? = nil) -> LlamaModel {
        let target = dtype ?? self.dtype
        let parameters = Dictionary(uniqueKeysWithValues: namedParameters.map { ($0.name, $0.tensor.converted(to: target)) })
        return try! LlamaModel(configuration: configuration, parameters: parameters)
    }

    /// Overwrites every parameter with `other`'s values (same configuration).
    public func load(from other: LlamaModel) {
        precondition(other.configuration == configuration, "cannot load parameters from a model with another configuration")
        for ((_, mine), (_, theirs)) in zip(namedParameters, other.namedParameters) { mine.assign(theirs.converted(to: mine.dtype)) }
    }

    // MARK: - Training forward

    /// The full forward pass over a right-padded batch.
    ///
    /// Attention is causal, so with right padding no real position ever attends to a pad: the
    /// padding mask needs no extra work. Positions at or past a row's length produce values that
    /// callers must mask out. In a packed batch each sequence is computed as if it were alone
    /// (`TokenBatch.attentionMask`, `TokenBatch.positions`), so a row may be longer than
    /// max_position_embeddings as long as every sequence in it fits.
    public func forward(_ batch: TokenBatch) -> PolicyOutput {
        let (b, t) = (batch.batchSize, batch.length)
        precondition(batch.longestSequence <= configuration.maxPositions, "sequence length \(batch.longestSequence) exceeds max_position_embeddings \(configuration.maxPositions)")
        var hidden = embedding.embedding(batch.tokens, shape: [b, t])  // (B, T, C)
        // (T) shared by every row, or (B·T) for a packed batch.
        let positions = batch.sequenceStarts == nil ? Array(0..<t) : batch.positions
        let mask = batch.attentionMask
        let keyRows = batch.keyRows
        for layer in layers {
            hidden = block(layer, hidden, positions: positions, mask: mask, keyRows: keyRows, batch: b, time: t)
        }
        let normed = hidden.rmsNormalized(weight: finalNorm, epsilon: configuration.rmsNormEpsilon)
        let logits = normed.linear(languageModelHead ?? embedding)  // (B, T, V)
        let values = valueHeadWeight.map { weight in (normed.linear(weight) + valueHeadBias!).reshaped([b, t]) }
        return PolicyOutput(logits: logits, values: values)
    }

    /// One decoder block on (B, T, C). With `keyRows` (a batch with shared prefixes), attention
    /// reads its keys and values gathered in that order, (B, keyLength, Hkv, D), so that each
    /// sequence's problem sees its prefix's one copy before its own tokens.
    func block(_ layer: DecoderLayer, _ x: Tensor, positions: [Int], mask: AttentionMask, keyRows: (indices: [Int], keyLength: Int)? = nil, batch b: Int, time t: Int) -> Tensor {
        let c = configuration
        let normed = x.rmsNormalized(weight: layer.inputNorm, epsilon: c.rmsNormEpsilon)
        let query = normed.linear(layer.queryProjection).reshaped([b, t, c.headCount, c.headDimension]).rotaryEmbedded(rotary, positions: positions)
        var key = normed.linear(layer.keyProjection).reshaped([b, t, c.keyValueHeadCount, c.headDimension]).rotaryEmbedded(rotary, positions: positions)
        var value = normed.linear(layer.valueProjection).reshaped([b, t, c.keyValueHeadCount, c.headDimension])
        if let keyRows {
            // Row b's key j is token keyRows[b][j] of row b: flat index b·T + it.
            let width = c.keyValueHeadCount * c.headDimension
            let flat = keyRows.indices.enumerated().map { $0.offset / Swift.max(keyRows.keyLength, 1) * t + $0.element }
            func gathered(_ tensor: Tensor) -> Tensor {
                tensor.reshaped([b * t, width]).embedding(flat, shape: [b, keyRows.keyLength]).reshaped([b, keyRows.keyLength, c.keyValueHeadCount, c.headDimension])
            }
            key = gathered(key)
            value = gathered(value)
        }
        let attended = Tensor.scaledDotProductAttention(query: query, key: key, value: value, mask: mask)
        // Both residual connections add inside their projection's GEMM.
        let afterAttention = attended.reshaped([b, t, c.hiddenSize]).linear(layer.outputProjection, adding: x)
        return mlp(layer, afterAttention.rmsNormalized(weight: layer.postAttentionNorm, epsilon: c.rmsNormEpsilon), adding: afterAttention)
    }

    /// SwiGLU: residual + down(silu(gate(x)) · up(x)).
    func mlp(_ layer: DecoderLayer, _ x: Tensor, adding residual: Tensor) -> Tensor {
        Tensor.swiGLU(gate: x.linear(layer.gateProjection), up: x.linear(layer.upProjection)).linear(layer.downProjection, adding: residual)
    }

    /// Per-position statistics of a batch under this policy: the log-prob of each next token and
    /// the entropy of the full distribution, with logits divided by `temperature` (the sampling
    /// distribution).
    ///
    /// - Returns: `logProbabilities` (B, T−1) where entry t is log p(token[t+1] | ≤ t), zero where
    ///   t+1 ≥ length or, in a packed batch, where token t+1 starts another sequence; `entropies`
    ///   (B, T) over every position; `values` (B, T) when the model has a value head. All
    ///   differentiable.
    public func tokenStatistics(_ batch: TokenBatch, temperature: Double = 1) -> (logProbabilities: Tensor, entropies: Tensor, values: Tensor?) {
        let output = forward(batch)
        let (b, t) = (batch.batchSize, batch.length)
        let scaled = temperature == 1 ? output.logits : output.logits * (1 / temperature)
        let logProbabilities = scaled.logSoftmax()  // (B, T, V)
        let entropies = logProbabilities.entropyOfLogProbabilities()  // (B, T)
        guard t >= 2 else {
            return (Tensor.zeros([b, 0], dtype: dtype), entropies, output.values)
        }
        var targets = [Int](repeating: 0, count: b * (t - 1))
        var mask = [Double](repeating: 0, count: b * (t - 1))
        for row in 0..<b {
            let starts = Set(batch.sequenceStarts?[row] ?? [])
            for position in 0..<(t - 1) where position + 1 < batch.lengths[row] && !starts.contains(position + 1) {
                targets[row * (t - 1) + position] = batch.tokens[row * t + position + 1]
                mask[row * (t - 1) + position] = 1
            }
        }
        let picked = logProbabilities.sliced(axis: 1, 0..<(t - 1)).gathered(targets)  // (B, T-1)
        let masked = picked * Tensor(shape: [b, t - 1], values: mask, dtype: dtype)
        return (masked, entropies, output.values)
    }
}
