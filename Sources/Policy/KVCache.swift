import Tensor

/// The keys and values one sequence has computed so far, per layer, for incremental decoding.
///
/// Each sequence owns its cache, so a batch may mix sequences of any lengths, and `fork()` starts
/// a new sequence from an exact copy of another's prefix without recomputing it: ARPO's partial
/// rollouts branch this way.
public final class KVCache {
    /// Per layer: (allocated, Hkv, D). Rows grow by doubling up to `capacity`, so a step appends
    /// in place and a short sequence does not hold a full-context buffer.
    private(set) var keys: [Tensor]
    private(set) var values: [Tensor]
    /// Positions filled.
    public private(set) var length: Int
    /// Largest length the cache can hold (the model's `max_position_embeddings`).
    public let capacity: Int

    /// Rows allocated before the first growth: a decode step then rarely reallocates.
    static let minimumRows = 64

    /// An empty cache for `model` holding up to `capacity` positions (default and maximum: the
    /// model's `max_position_embeddings`). Size it to prompt + response to save memory.
    public init(model: LlamaModel, capacity: Int? = nil) {
        let c = model.configuration
        let size = Swift.min(capacity ?? c.maxPositions, c.maxPositions)
        precondition(size >= 1, "a KV cache needs a capacity of at least 1, got \(size)")
        self.capacity = size
        let rows = Swift.min(size, KVCache.minimumRows)
        keys = (0..<c.layerCount).map { _ in Tensor.zeros([rows, c.keyValueHeadCount, c.headDimension], dtype: model.dtype) }
        values = (0..<c.layerCount).map { _ in Tensor.zeros([rows, c.keyValueHeadCount, c.headDimension], dtype: model.dtype) }
        length = 0
    }

    private init(keys: [Tensor], values: [Tensor], length: Int, capacity: Int) {
        self.keys = keys
        self.values = values
        self.length = length
        self.capacity = capacity
    }

    /// Rows allocated per layer now.
    var allocatedRows: Int { keys[0].shape[0] }

    /// Rows to allocate for `needed` positions: the next power of two from `minimumRows`, at most
    /// `capacity`.
    private func rowsToAllocate(for needed: Int) -> Int {
        var rows = KVCache.minimumRows
        while rows < needed { rows *= 2 }
        return Swift.min(rows, capacity)
    }

    /// A copy of each tensor's first `prefix` rows in new buffers of `rows` rows.
    private static func copied(_ tensors: [Tensor], prefix: Int, rows: Int) -> [Tensor] {
        withoutGradients {
            tensors.map { source in
                let copy = Tensor.zeros([rows] + source.shape.dropFirst(), dtype: source.dtype)
                if prefix > 0 { copy.sliced(axis: 0, 0..<prefix).assign(source.sliced(axis: 0, 0..<prefix)) }
                return copy
            }
        }
    }

    /// Makes room for `needed` positions, doubling the buffers (and copying the filled rows) when
    /// they are too small.
    func reserve(_ needed: Int) {
        precondition(needed <= capacity, "sequence of \(needed) tokens exceeds the cache capacity \(capacity)")
        guard needed > allocatedRows else { return }
        let rows = rowsToAllocate(for: needed)
        keys = KVCache.copied(keys, prefix: length, rows: rows)
        values = KVCache.copied(values, prefix: length, rows: rows)
    }

    /// A new cache holding a copy of this one's filled positions.
    public func fork() -> KVCache { fork(length: length) }

    /// A new cache holding a copy of this one's first `prefix` positions.
    ///
    /// The cache is append-only, so the rows of any earlier prefix are still exactly what they
    /// were: ARPO decides to branch k tokens after a tool result and forks from the position of
    /// the result itself. Only the prefix is copied, into buffers sized for it plus room to grow.
    public func fork(length prefix: Int) -> KVCache {
        precondition(prefix >= 0 && prefix <= length, "cannot fork \(prefix) positions from a cache of \(length)")
        let rows = rowsToAllocate(for: prefix + 1)
        return KVCache(keys: KVCache.copied(keys, prefix: prefix, rows: rows), values: KVCache.copied(values, prefix: prefix, rows: rows), length: prefix, capacity: capacity)
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
        precondition(Set(caches.map { ObjectIdentifier($0) }).count == caches.count, "a cache may appear only once per extend")
        let c = configuration
        let width = c.hiddenSize
        let threads = BLASRuntime.threadCount
        return withoutGradients {
            var positions: [Int] = []
            var rowStarts: [Int] = []
            for (cache, appended) in zip(caches, tokens) {
                precondition(cache.length + appended.count <= cache.capacity, "sequence of \(cache.length) + \(appended.count) tokens exceeds the cache capacity \(cache.capacity)")
                rowStarts.append(positions.count)
                positions += cache.length..<(cache.length + appended.count)
            }
            let rows = positions.count
            let counts = tokens.map(\.count), cachedLengths = caches.map(\.length)
            for (cache, count) in zip(caches, counts) { cache.reserve(cache.length + count) }
            let weights = decodeWeights.current(for: self)
            let hidden = embedding.embedding(tokens.flatMap { $0 }, shape: [rows])  // (N, C), this call's own buffer
            // Per layer: norm, fused q/k/v product, rotation and cache append in one pass,
            // attention over the caches, then the output and down products added into `hidden`
            // in place and SwiGLU finished inside the gate/up product: 8 ops where the unfused
            // layer made 14 (and 8 views), each a dispatch and an allocation on the calling
            // thread while the worker waits.
            for (layerIndex, layer) in layers.enumerated() {
                let fused = weights.layers[layerIndex]
                let normed = hidden.rmsNormalized(weight: layer.inputNorm, epsilon: c.rmsNormEpsilon)
                let queryKeyValue = normed.matmul(fused.queryKeyValue, threadCount: threads)  // (N, C + 2·KV)
                let keyCaches = caches.map { $0.keys[layerIndex] }, valueCaches = caches.map { $0.values[layerIndex] }
                let query = Tensor.rotaryAppend(
                    projection: queryKeyValue, heads: c.headCount, rotary: rotary, positions: positions, counts: counts,
                    keyCaches: keyCaches, valueCaches: valueCaches, at: cachedLengths)  // (N, H, D)
                let attended = Tensor.cachedAttention(
                    query: query, keys: keyCaches, values: valueCaches,
                    cachedLengths: cachedLengths, counts: counts, threadCount: threads)  // (N, H, D)
                hidden.addMatmul(attended.reshaped([rows, width]), fused.output, threadCount: threads)
                let normedAgain = hidden.rmsNormalized(weight: layer.postAttentionNorm, epsilon: c.rmsNormEpsilon)
                hidden.addMatmul(normedAgain.swiGLUMatmul(fused.gateUp, threadCount: threads), fused.down, threadCount: threads)  // (N, F) activation
            }
            for (cache, count) in zip(caches, counts) { cache.advance(by: count) }
            if allPositions {
                let logits = hidden.rmsNormalized(weight: finalNorm, epsilon: c.rmsNormEpsilon).matmul(weights.head, threadCount: threads)  // (N, V)
                return zip(rowStarts, counts).map { start, count in logits.sliced(axis: 0, start..<(start + count)).contiguous() }
            }
            let lastRows = zip(rowStarts, counts).map { $0 + $1 - 1 }
            let last = hidden.embedding(lastRows, shape: [lastRows.count])  // row gather
            return [last.rmsNormalized(weight: finalNorm, epsilon: c.rmsNormEpsilon).matmul(weights.head, threadCount: threads)]
        }
    }
}
