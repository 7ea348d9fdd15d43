// Ops of the batched KV-cache decode path (rollouts, no gradients): a matmul shaped for a few
// rows, row appends into caches, and causal attention of new rows against per-sequence caches.
// Letters: N new rows across the batch, K inner, M output columns, H query heads, Hkv key heads,
// D head dimension.

extension Tensor {
    /// `(N, K) × (K, M) → (N, M)`, equal to `matmul` (and recorded as it), computed for a few rows
    /// as independent column blocks on `threadCount` threads.
    ///
    /// OpenBLAS copies ("packs") the whole right operand on every ordinary GEMM call, which for a
    /// 16-row decode step costs as much as the product; column blocks small enough for its
    /// unpacked small-matrix kernel skip that, and its own threading, which does not pay at this
    /// size. Larger products (a prefill) take one ordinary GEMM. Block boundaries do not depend on
    /// `threadCount`, so neither do the values.
    public func blockedMatmul(_ matrix: Tensor, threadCount: Int) -> Tensor {
        precondition(rank == 2 && matrix.rank == 2 && shape[1] == matrix.shape[0], "blockedMatmul needs (N, K) × (K, M), got \(shape) and \(matrix.shape)")
        precondition(dtype == matrix.dtype, "blockedMatmul: dtypes \(dtype) and \(matrix.dtype) differ")
        precondition(threadCount >= 1, "blockedMatmul needs at least one thread, got \(threadCount)")
        guard let width = Kernels.blockWidth(rows: shape[0], inner: shape[1]) else { return Tensor.matmul(self, matrix) }
        let input = materialized(), right = matrix.materialized()
        let result = Tensor(shape: [shape[0], matrix.shape[1]], dtype: dtype, zeroed: false)
        Kernels.blockedMatmul(input, right, into: result, width: width, threadCount: threadCount)
        return result.recording(.matmul(self, matrix), inputs: self, matrix)
    }

    /// SwiGLU's activation for inference: (N, 2F) gate and up projections side by side →
    /// (N, F) `silu(gate) · up`, one pass instead of three. Not differentiable (compose `silu()`
    /// and `*` for training); float32 uses a vectorised exp within 2 ulp of the scalar one.
    public func swiGLU() -> Tensor {
        precondition(rank == 2 && shape[1] % 2 == 0, "swiGLU needs (N, 2F) gate and up columns, got \(shape)")
        precondition(!Tensor.shouldRecord(self), "swiGLU records no gradient; compose silu() and * to differentiate")
        let input = materialized()
        let result = Tensor(shape: [shape[0], shape[1] / 2], dtype: dtype, zeroed: false)
        Kernels.swiGLU(input, into: result)
        return result
    }

    /// Copies consecutive rows of `source` (N, W) into caches: `counts[i]` rows into
    /// `destinations[i]` (dense, rows of W elements, e.g. (capacity, Hkv, D) with W = Hkv·D)
    /// starting at row `starts[i]`. In place and outside autodiff, like `assign`.
    public static func appendRows(of source: Tensor, counts: [Int], into destinations: [Tensor], at starts: [Int]) {
        precondition(source.rank == 2, "appendRows needs (N, W) rows, got \(source.shape)")
        precondition(counts.count == destinations.count && starts.count == destinations.count, "appendRows: \(counts.count) counts and \(starts.count) starts for \(destinations.count) destinations")
        precondition(counts.reduce(0, +) == source.shape[0], "appendRows: counts \(counts) do not add up to \(source.shape[0]) rows")
        let width = source.shape[1]
        let rows = (source.shape[1] <= 1 || source.strides[1] == 1) ? source : source.materialized()
        for (index, destination) in destinations.enumerated() {
            precondition(destination.dtype == source.dtype && destination.isContiguous, "appendRows: destinations must be dense \(source.dtype)")
            precondition(destination.rank >= 1 && destination.count == destination.shape[0] * width, "appendRows: destination \(destination.shape) does not hold rows of \(width)")
            precondition(starts[index] >= 0 && counts[index] >= 0 && starts[index] + counts[index] <= destination.shape[0], "appendRows: rows \(starts[index])..<\(starts[index] + counts[index]) do not fit \(destination.shape)")
            destination.storage.version += 1
        }
        Kernels.appendRows(rows, counts: counts, into: destinations, at: starts)
    }

    /// Finishes a decode step's fused query/key/value projection (N, (H + 2·Hkv)·D), query heads
    /// then key heads then value heads: rotates each row's query and key heads by its position,
    /// appends its keys and values to its sequence's caches, and returns the rotated queries
    /// (N, H, D). The same values as slicing the projection, `rotaryEmbedded` on the query and
    /// key parts and `appendRows` of keys and values, in one pass and one allocation.
    ///
    /// - Parameters:
    ///   - projection: sequence b's `counts[b]` rows consecutive, in sequence order.
    ///   - positions: each row's position in its sequence.
    ///   - keyCaches, valueCaches: per sequence, dense (capacity, Hkv, D); sequence b's rows go
    ///     to rows `starts[b]...`.
    public static func rotaryAppend(projection: Tensor, heads: Int, rotary: RotaryEmbedding, positions: [Int], counts: [Int], keyCaches: [Tensor], valueCaches: [Tensor], at starts: [Int]) -> Tensor {
        let d = rotary.headDimension
        precondition(projection.rank == 2 && heads > 0 && projection.shape[1] > heads * d && (projection.shape[1] - heads * d) % (2 * d) == 0, "rotaryAppend needs (N, (\(heads) + 2·Hkv)·\(d)), got \(projection.shape)")
        precondition(!Tensor.shouldRecord(projection), "rotaryAppend records no gradient")
        let rows = projection.shape[0], keyHeads = (projection.shape[1] - heads * d) / (2 * d)
        precondition(positions.count == rows && counts.reduce(0, +) == rows, "rotaryAppend: \(positions.count) positions and counts \(counts) for \(rows) rows")
        precondition(positions.allSatisfy { $0 >= 0 && $0 < rotary.maxPositions }, "rotaryAppend: a position is outside the rotary table 0..<\(rotary.maxPositions)")
        precondition(keyCaches.count == counts.count && valueCaches.count == counts.count && starts.count == counts.count, "rotaryAppend: \(keyCaches.count) key caches, \(valueCaches.count) value caches, \(starts.count) starts for \(counts.count) sequences")
        for (index, cache) in (keyCaches + valueCaches).enumerated() {
            let sequence = index % counts.count
            precondition(cache.dtype == projection.dtype && cache.isContiguous && cache.rank == 3 && cache.shape[1] == keyHeads && cache.shape[2] == d, "rotaryAppend: cache \(cache.shape) is not a dense (capacity, \(keyHeads), \(d)) \(projection.dtype)")
            precondition(starts[sequence] >= 0 && starts[sequence] + counts[sequence] <= cache.shape[0], "rotaryAppend: rows \(starts[sequence])..<\(starts[sequence] + counts[sequence]) do not fit \(cache.shape)")
            cache.storage.version += 1
        }
        let query = Tensor(shape: [rows, heads, d], dtype: projection.dtype, zeroed: false)
        Kernels.rotaryAppend(projection.materialized(), rotary, positions: positions, counts: counts, keyCaches: keyCaches, valueCaches: valueCaches, at: starts, query: query)
        return query
    }

    /// Causal scaled-dot-product attention of each sequence's new rows against its KV cache, for
    /// decoding (no gradient).
    ///
    /// - Parameters:
    ///   - query: (N, H, D), sequence b's `counts[b]` rows consecutive, in sequence order.
    ///   - keys: per sequence, a dense (capacity, Hkv, D) cache whose first
    ///     `cachedLengths[b] + counts[b]` rows are filled (the new rows included); H must be a
    ///     multiple of Hkv.
    ///   - values: like `keys`.
    ///   - cachedLengths: positions cached before the new rows; query row i of sequence b sits at
    ///     position `cachedLengths[b] + i` and sees keys up to it.
    ///   - scale: defaults to 1/√D.
    /// - Returns: (N, H, D), equal to `scaledDotProductAttention` over each sequence's cache with
    ///   the query offset at its cached length.
    public static func cachedAttention(query: Tensor, keys: [Tensor], values: [Tensor], cachedLengths: [Int], counts: [Int], scale: Double? = nil, threadCount: Int) -> Tensor {
        precondition(query.rank == 3, "cachedAttention query must be (N, H, D), got \(query.shape)")
        precondition(keys.count == counts.count && values.count == counts.count && cachedLengths.count == counts.count, "cachedAttention: \(keys.count) key caches, \(values.count) value caches, \(cachedLengths.count) lengths for \(counts.count) sequences")
        precondition(counts.reduce(0, +) == query.shape[0], "cachedAttention: counts \(counts) do not add up to \(query.shape[0]) query rows")
        precondition(threadCount >= 1, "cachedAttention needs at least one thread, got \(threadCount)")
        let (h, d) = (query.shape[1], query.shape[2])
        let keyHeads = keys.first?.shape[1] ?? h
        precondition(keyHeads > 0 && h % keyHeads == 0, "cachedAttention: \(h) query heads are not a multiple of \(keyHeads) key heads")
        for (index, (key, value)) in zip(keys, values).enumerated() {
            precondition(key.rank == 3 && key.shape[1] == keyHeads && key.shape[2] == d && key.isContiguous, "cachedAttention: key cache \(key.shape) is not a dense (capacity, \(keyHeads), \(d))")
            precondition(value.shape == key.shape && value.isContiguous, "cachedAttention: value cache \(value.shape) differs from key cache \(key.shape)")
            precondition(key.dtype == query.dtype && value.dtype == query.dtype, "cachedAttention: dtypes differ")
            precondition(cachedLengths[index] >= 0 && cachedLengths[index] + counts[index] <= key.shape[0], "cachedAttention: \(cachedLengths[index]) + \(counts[index]) positions exceed the cache of \(key.shape[0])")
        }
        let q = query.materialized()
        let result = Tensor(shape: query.shape, dtype: query.dtype, zeroed: false)
        Kernels.cachedAttention(
            query: q, keys: keys, values: values, cachedLengths: cachedLengths, counts: counts, keyHeads: keyHeads,
            scale: scale ?? 1 / Double(d).squareRoot(), into: result, threadCount: threadCount)
        return result
    }
}
