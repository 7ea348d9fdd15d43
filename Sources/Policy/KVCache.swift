import Tensor

/// The keys and values one sequence has computed so far, per layer, for incremental decoding.
///
/// Each sequence owns its cache, so a batch may mix sequences of any lengths, and `fork()` starts
/// a new sequence from an exact copy of another's prefix without recomputing it: ARPO's partial
/// rollouts branch this way.
public final class KVCache {
    /// Per layer: (capacity, Hkv, D).
    let keys: [Tensor]
    let values: [Tensor]
    /// Positions filled.
    public private(set) var length: Int
    /// Largest length the cache can hold (the model's `max_position_embeddings`).
    public let capacity: Int

    /// An empty cache for `model` holding up to `capacity` positions (default and maximum: the
    /// model's `max_position_embeddings`). Size it to prompt + response to save memory.
    public init(model: LlamaModel, capacity: Int? = nil) {
        let c = model.configuration
        let size = Swift.min(capacity ?? c.maxPositions, c.maxPositions)
        precondition(size >= 1, "a KV cache needs a capacity of at least 1, got \(size)")
        self.capacity = size
        keys = (0..<c.layerCount).map { _ in Tensor.zeros([size, c.keyValueHeadCount, c.headDimension], dtype: model.dtype) }
        values = (0..<c.layerCount).map { _ in Tensor.zeros([size, c.keyValueHeadCount, c.headDimension], dtype: model.dtype) }
        length = 0
    }

    private init(keys: [Tensor], values: [Tensor], length: Int, capacity: Int) {
        self.keys = keys
        self.values = values
        self.length = length
        self.capacity = capacity
    }

    /// A new cache holding a copy of this one's filled positions.
    public func fork() -> KVCache { fork(length: length) }

    /// A new cache holding a copy of this one's first `prefix` positions.
    ///
    /// The cache is append-only, so the rows of any earlier prefix are still exactly what they
    /// were: ARPO decides to branch k tokens after a tool result and forks from the position of
    /// the result itself.
    public func fork(length prefix: Int) -> KVCache {
        precondition(prefix >= 0 && prefix <= length, "cannot fork \(prefix) positions from a cache of \(length)")
        func copied(_ tensors: [Tensor]) -> [Tensor] {
            tensors.map { source in
                let copy = Tensor.zeros(source.shape, dtype: source.dtype)
                if prefix > 0 { copy.sliced(axis: 0, 0..<prefix).assign(source.sliced(axis: 0, 0..<prefix)) }
                return copy
            }
        }
        return withoutGradients { KVCache(keys: copied(keys), values: copied(values), length: prefix, capacity: capacity) }
    }

    func advance(by count: Int) { length += count }
}

extension LlamaModel {
    /// Appends `tokens[b]` to sequence b's cache and returns, for each sequence, the logits after
    /// its last appended token: (B, V). Runs without recording gradients.
    ///
    /// One call prefills a whole prompt, appends a tool observation to a running sequence, or
    /// decodes one token per sequence: every new row of every sequence goes through the
    /// projections and MLP as one matrix, and each sequence attends over its own cache.
    public func extend(_ caches: [KVCache], with tokens: [[Int]]) -> Tensor {
        extend(caches, with: tokens, allPositions: false)[0]
    }

    /// Like `extend(_:with:)` but returns every appended position's logits, one (n_b, V) tensor
    /// per sequence.
    public func extendReturningAllLogits(_ caches: [KVCache], with tokens: [[Int]]) -> [Tensor] {
        extend(caches, with: tokens, allPositions: true)
    }

    private func extend(_ caches: [KVCache], with tokens: [[Int]], allPositions: Bool) -> [Tensor] {
        precondition(caches.count == tokens.count, "\(caches.count) caches for \(tokens.count) token lists")
        precondition(tokens.allSatisfy { !$0.isEmpty }, "every sequence must append at least one token")
        let c = configuration
        return withoutGradients {
            var positions: [Int] = []
            var rowStarts: [Int] = []
            for (cache, appended) in zip(caches, tokens) {
                precondition(cache.length + appended.count <= cache.capacity, "sequence of \(cache.length) + \(appended.count) tokens exceeds the cache capacity \(cache.capacity)")
                rowStarts.append(positions.count)
                positions += cache.length..<(cache.length + appended.count)
            }
            let rows = positions.count
            var hidden = embedding.embedding(tokens.flatMap { $0 }, shape: [1, rows])  // (1, N, C)
            for (layerIndex, layer) in layers.enumerated() {
                let normed = hidden.rmsNormalized(weight: layer.inputNorm, epsilon: c.rmsNormEpsilon)
                let query = normed.linear(layer.queryProjection).reshaped([1, rows, c.headCount, c.headDimension]).rotaryEmbedded(rotary, positions: positions)
                let key = normed.linear(layer.keyProjection).reshaped([1, rows, c.keyValueHeadCount, c.headDimension]).rotaryEmbedded(rotary, positions: positions)
                let value = normed.linear(layer.valueProjection).reshaped([1, rows, c.keyValueHeadCount, c.headDimension])
                var outputs: [Tensor] = []
                for (sequence, cache) in caches.enumerated() {
                    let count = tokens[sequence].count, start = rowStarts[sequence]
                    let newRows = start..<(start + count)
                    let filled = cache.length + count
                    cache.keys[layerIndex].sliced(axis: 0, cache.length..<filled).assign(key.sliced(axis: 1, newRows).reshaped([count, c.keyValueHeadCount, c.headDimension]))
                    cache.values[layerIndex].sliced(axis: 0, cache.length..<filled).assign(value.sliced(axis: 1, newRows).reshaped([count, c.keyValueHeadCount, c.headDimension]))
                    let cachedKeys = cache.keys[layerIndex].sliced(axis: 0, 0..<filled).reshaped([1, filled, c.keyValueHeadCount, c.headDimension])
                    let cachedValues = cache.values[layerIndex].sliced(axis: 0, 0..<filled).reshaped([1, filled, c.keyValueHeadCount, c.headDimension])
                    outputs.append(Tensor.scaledDotProductAttention(query: query.sliced(axis: 1, newRows), key: cachedKeys, value: cachedValues))
                }
                let attended = outputs.count == 1 ? outputs[0] : Tensor.concatenate(outputs, axis: 1)
                let afterAttention = hidden + attended.reshaped([1, rows, c.hiddenSize]).linear(layer.outputProjection)
                hidden = afterAttention + mlp(layer, afterAttention.rmsNormalized(weight: layer.postAttentionNorm, epsilon: c.rmsNormEpsilon))
            }
            for (cache, appended) in zip(caches, tokens) { cache.advance(by: appended.count) }
            let head = languageModelHead ?? embedding
            if allPositions {
                let logits = hidden.rmsNormalized(weight: finalNorm, epsilon: c.rmsNormEpsilon).linear(head).reshaped([rows, c.vocabularySize])
                return zip(rowStarts, tokens).map { start, appended in logits.sliced(axis: 0, start..<(start + appended.count)).contiguous() }
            }
            let lastRows = zip(rowStarts, tokens).map { $0 + $1.count - 1 }
            let last = hidden.reshaped([rows, c.hiddenSize]).embedding(lastRows, shape: [lastRows.count])  // row gather
            return [last.rmsNormalized(weight: finalNorm, epsilon: c.rmsNormEpsilon).linear(head)]
        }
    }
}
