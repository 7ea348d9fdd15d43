import Foundation

extension Tensor {
    // MARK: Softmax family (last axis)

    /// Softmax over the last axis, stable for any finite input (the row maximum is factored out).
    public func softmax() -> Tensor {
        precondition(rank >= 1, "softmax needs at least one dimension")
        let input = materialized()
        let result = Tensor(shape: shape, dtype: dtype, zeroed: false)
        Kernels.softmax(input, into: result, logarithmic: false)
        return result.recording(.softmax(self), inputs: self)
    }

    /// log-softmax over the last axis: x − max − log Σ exp(x − max).
    public func logSoftmax() -> Tensor {
        precondition(rank >= 1, "logSoftmax needs at least one dimension")
        let input = materialized()
        let result = Tensor(shape: shape, dtype: dtype, zeroed: false)
        Kernels.softmax(input, into: result, logarithmic: true)
        return result.recording(.logSoftmax(self), inputs: self)
    }

    /// Entropy −Σ p log p over the last axis, from log-probabilities `log p` (a `logSoftmax()`
    /// output), shaped `(…)`. One pass that keeps neither `p` nor `p log p`; a term with p = 0
    /// (log p = −∞ included) counts 0, as in the limit.
    public func entropyOfLogProbabilities() -> Tensor {
        precondition(rank >= 1, "entropyOfLogProbabilities needs at least one dimension")
        let input = materialized()
        let result = Tensor(shape: Array(shape.dropLast()), dtype: dtype, zeroed: shape[rank - 1] == 0)
        Kernels.logProbabilityEntropy(input, into: result)
        return result.recording(.logProbabilityEntropy(self), inputs: self)
    }

    // MARK: Indexing

    /// Picks one element per row along the last axis: `(…, V)` with `indices.count == rows`
    /// gives `(…)`. Log-probs of the chosen tokens are `logSoftmax().gathered(tokens)`.
    public func gathered(_ indices: [Int]) -> Tensor {
        precondition(rank >= 1, "gather needs at least one dimension")
        let rows = count / Swift.max(shape[rank - 1], 1)
        precondition(indices.count == rows, "gather: \(indices.count) indices for \(rows) rows of shape \(shape)")
        let width = shape[rank - 1]
        for index in indices { precondition(index >= 0 && index < width, "gather index \(index) is out of range 0..<\(width)") }
        let input = materialized()
        let result = Tensor(shape: Array(shape.dropLast()), dtype: dtype, zeroed: false)
        Kernels.gather(input, indices, into: result)
        return result.recording(.gather(self, indices: indices), inputs: self)
    }

    /// Rows of this `(V, C)` table for `ids`, shaped `idsShape + [C]`. The gradient scatter-adds
    /// into the rows that were read.
    public func embedding(_ ids: [Int], shape idsShape: [Int]) -> Tensor {
        precondition(rank == 2, "embedding table must be (vocabulary, channels), got \(shape)")
        precondition(idsShape.reduce(1, *) == ids.count, "embedding: \(ids.count) ids do not fill shape \(idsShape)")
        for id in ids { precondition(id >= 0 && id < shape[0], "token id \(id) is out of range 0..<\(shape[0])") }
        let table = materialized()
        let result = Tensor(shape: idsShape + [shape[1]], dtype: dtype, zeroed: false)
        Kernels.embedding(table, ids, into: result)
        return result.recording(.embedding(self, ids: ids), inputs: self)
    }

    // MARK: Normalisation

    /// RMSNorm over the last axis: `x / sqrt(mean(x²) + ε) · weight`, as LLaMA computes it.
    public func rmsNormalized(weight: Tensor, epsilon: Double) -> Tensor {
        precondition(weight.shape == [shape[rank - 1]], "rmsNorm weight \(weight.shape) does not match last axis of \(shape)")
        precondition(weight.dtype == dtype, "rmsNorm: dtypes \(dtype) and \(weight.dtype) differ")
        let input = materialized(), scale = weight.materialized()
        let result = Tensor(shape: shape, dtype: dtype, zeroed: false)
        let rows = count / shape[rank - 1]
        let inverseRMS = Tensor(shape: [rows], dtype: dtype, zeroed: false)
        Kernels.rmsNorm(input, scale, epsilon: epsilon, into: result, inverseRMS: inverseRMS)
        return result.recording(.rmsNorm(self, weight: weight, inverseRMS: inverseRMS), inputs: self, weight)
    }

    /// LayerNorm over the last axis: `(x − mean) / sqrt(var + ε) · weight + bias`.
    public func layerNormalized(weight: Tensor, bias: Tensor, epsilon: Double) -> Tensor {
        let channels = shape[rank - 1]
        precondition(weight.shape == [channels] && bias.shape == [channels], "layerNorm weight \(weight.shape) and bias \(bias.shape) do not match last axis of \(shape)")
        precondition(weight.dtype == dtype && bias.dtype == dtype, "layerNorm: dtypes \(dtype), \(weight.dtype) and \(bias.dtype) differ")
        let input = materialized()
        let result = Tensor(shape: shape, dtype: dtype, zeroed: false)
        let rows = count / channels
        let mean = Tensor(shape: [rows], dtype: dtype, zeroed: false)
        let inverseStd = Tensor(shape: [rows], dtype: dtype, zeroed: false)
        Kernels.layerNorm(input, weight.materialized(), bias.materialized(), epsilon: epsilon, into: result, mean: mean, inverseStd: inverseStd)
        return result.recording(.layerNorm(self, weight: weight, bias: bias, mean: mean, inverseStd: inverseStd), inputs: self, weight, bias)
    }

    // MARK: Gated activation

    /// SwiGLU's gating, `silu(gate) ∘ up`, as one op: LLaMA's MLP computes it on two (B, T, F)
    /// projections, and fused it reads each input once and keeps no intermediate (the backward
    /// recomputes the sigmoid). Equal to `gate.silu() * up`.
    public static func swiGLU(gate: Tensor, up: Tensor) -> Tensor {
        precondition(gate.shape == up.shape, "swiGLU: gate \(gate.shape) and up \(up.shape) differ")
        precondition(gate.dtype == up.dtype, "swiGLU: dtypes \(gate.dtype) and \(up.dtype) differ")
        let result = Tensor(shape: gate.shape, dtype: gate.dtype, zeroed: false)
        Kernels.swiGLU(gate: gate.materialized(), up: up.materialized(), into: result)
        return result.recording(.swiGLU(gate: gate, up: up), inputs: gate, up)
    }

    // MARK: Losses (composed from the primitives above)

    /// Per-row negative log-likelihood of `targets` under `logits` `(…, V)`, shaped `(…)`.
    public func negativeLogLikelihood(targets: [Int]) -> Tensor {
        -logSoftmax().gathered(targets)
    }

    /// Cross-entropy of `logits` `(…, V)` against `targets`, averaged with per-row `weights`
    /// (a loss mask): Σ wᵢ·nllᵢ / Σ wᵢ. Without weights, the plain mean.
    public static func crossEntropy(logits: Tensor, targets: [Int], weights: Tensor? = nil) -> Tensor {
        let losses = logits.negativeLogLikelihood(targets: targets)
        guard let weights else { return losses.mean() }
        precondition(weights.shape == losses.shape, "cross-entropy weights \(weights.shape) must match rows \(losses.shape)")
        let total = weights.detached().sum().item
        precondition(total >= 0, "cross-entropy weights sum to \(total); they must be non-negative")
        // Every row masked out: the loss is 0 with a zero gradient, not a division by zero.
        return (losses * weights.detached()).sum() / Swift.max(total, 1e-300)
    }

    /// Entropy of the softmax over the last axis, −Σ p log p, shaped `(…)`.
    public func softmaxEntropy() -> Tensor {
        logSoftmax().entropyOfLogProbabilities()
    }
}

// MARK: - Rotary position embedding

/// Cosine and sine tables for rotary position embedding (RoPE), rotate-half convention.
///
/// Built exactly as Hugging Face's default LLaMA rotary embedding builds them, in Float32:
/// `inv_freq[i] = 1 / θ^(2i/D)`, angle = position · inv_freq, so a checkpoint computes the same
/// logits here and in `transformers`.
public final class RotaryEmbedding: @unchecked Sendable {
    /// Per-head dimension D (even).
    public let headDimension: Int
    /// Positions 0..<maxPositions have table rows.
    public let maxPositions: Int
    /// The base θ.
    public let theta: Double
    let cosine32: [Float], sine32: [Float]
    let cosine64: [Double], sine64: [Double]

    public init(headDimension: Int, maxPositions: Int, theta: Double = 10_000) {
        precondition(headDimension > 0 && headDimension % 2 == 0, "RoPE needs an even head dimension, got \(headDimension)")
        self.headDimension = headDimension
        self.maxPositions = maxPositions
        self.theta = theta
        let half = headDimension / 2
        let base = Float(theta)
        let inverseFrequency = (0..<half).map { 1 / powf(base, Float(2 * $0) / Float(headDimension)) }
        var cosine = [Float](repeating: 0, count: maxPositions * half)
        var sine = cosine
        for position in 0..<maxPositions {
            for i in 0..<half {
                let angle = Float(position) * inverseFrequency[i]
                cosine[position * half + i] = cosf(angle)
                sine[position * half + i] = sinf(angle)
            }
        }
        cosine32 = cosine
        sine32 = sine
        cosine64 = cosine.map(Double.init)
        sine64 = sine.map(Double.init)
    }
}

extension Tensor {
    /// Rotates `(B, T, H, D)` queries or keys by their positions. `positions` has one entry per
    /// (batch, time) pair, or `T` entries shared by every batch row.
    public func rotaryEmbedded(_ rotary: RotaryEmbedding, positions: [Int]) -> Tensor {
        precondition(rank == 4, "rotary embedding expects (batch, time, heads, headDim), got \(shape)")
        precondition(shape[3] == rotary.headDimension, "rotary table is for head dimension \(rotary.headDimension), tensor has \(shape[3])")
        let (batch, time) = (shape[0], shape[1])
        let expanded: [Int]
        if positions.count == time && batch != 1 {
            expanded = (0..<batch).flatMap { _ in positions }
        } else {
            precondition(positions.count == batch * time, "rotary: \(positions.count) positions for batch \(batch) × time \(time)")
            expanded = positions
        }
        for position in expanded {
            precondition(position >= 0 && position < rotary.maxPositions, "position \(position) is outside the rotary table 0..<\(rotary.maxPositions)")
        }
        let input = materialized()
        let result = Tensor(shape: shape, dtype: dtype, zeroed: false)
        Kernels.rotary(input, rotary, positions: expanded, inverse: false, into: result)
        return result.recording(.rotary(self, rotary, positions: expanded), inputs: self)
    }
}

// MARK: - Attention

/// Which keys each query may see in `scaledDotProductAttention`.
///
/// For batch row b, query i sits at absolute position `queryOffsets[b] + i` and sees keys
/// `j ≤ queryOffsets[b] + i` with `j < keyLengths[b]`. The default (`nil`) is plain causal
/// attention aligned at the end: offset `Tk − Tq`, every key valid. A KV-cache step sets the
/// offset to the cached length and the key length to cached + appended.
///
/// `segmentStarts` packs several sequences into each row (self-attention, Tq = Tk): row b's
/// segment s spans `segmentStarts[b][s] ..< segmentStarts[b][s + 1]` (the last one to the row's
/// end), and a query sees the keys of its own segment up to itself and nothing else, so each
/// segment is the causal attention of a sequence of its own.
///
/// `problems` is the general form: each row's queries and keys are split into causal problems of
/// their own, whose queries and keys need not be the same rows. Packed sequences that share a
/// prefix use it: the keys are gathered so that each sequence's problem sees the one copy of its
/// prefix followed by its own tokens.
public struct AttentionMask: Sendable {
    public var queryOffsets: [Int]?
    public var keyLengths: [Int]?
    /// Per batch row, where its segments start: 0 first, increasing, each below the row's length
    /// (a row of length 0 has the one segment [0]). Nil: the row is one sequence.
    public var segmentStarts: [[Int]]?
    /// Per batch row, its problems, in order: their query ranges tile the row's queries and
    /// their key ranges tile its keys, so every query and every key belongs to exactly one.
    public var problems: [[AttentionProblem]]?

    public init(queryOffsets: [Int]? = nil, keyLengths: [Int]? = nil) {
        self.queryOffsets = queryOffsets
        self.keyLengths = keyLengths
    }

    /// Block-diagonal causal attention over packed rows: a query sees the keys of its own
    /// segment up to itself (see `segmentStarts`).
    public init(segmentStarts: [[Int]]) {
        self.segmentStarts = segmentStarts
    }

    /// Attention split into the given causal problems per row (see `problems`).
    public init(problems: [[AttentionProblem]]) {
        self.problems = problems
    }

    /// Causal attention over the whole key sequence.
    public static let causal = AttentionMask()

    func resolved(batch: Int, queryLength: Int, keyLength: Int) -> (offsets: [Int], lengths: [Int]) {
        let offsets = queryOffsets ?? [Int](repeating: keyLength - queryLength, count: batch)
        let lengths = keyLengths ?? [Int](repeating: keyLength, count: batch)
        precondition(offsets.count == batch && lengths.count == batch, "attention mask has \(offsets.count) offsets and \(lengths.count) lengths for batch \(batch)")
        for length in lengths { precondition(length >= 0 && length <= keyLength, "attention key length \(length) is outside 0...\(keyLength)") }
        return (offsets, lengths)
    }
}

/// One causal problem of a batch row (`AttentionMask(problems:)`): queries
/// `queryStart ..< queryStart + queryLength` against keys `keyStart ..< keyStart + keyLength`,
/// where local query i sees local keys `0 ... queryOffset + i`, never past `visibleKeyLength`.
/// Keys of the range past `visibleKeyLength` belong to the problem but no query sees them (their
/// gradients are 0): they fill a row whose keys are fewer than the batch's longest.
public struct AttentionProblem: Sendable, Equatable {
    public var queryStart: Int, queryLength: Int
    public var keyStart: Int, keyLength: Int
    /// The number of keys before the first query's own: a sequence's shared prefix.
    public var queryOffset: Int
    public var visibleKeyLength: Int

    public init(queryStart: Int, queryLength: Int, keyStart: Int, keyLength: Int, queryOffset: Int, visibleKeyLength: Int) {
        self.queryStart = queryStart
        self.queryLength = queryLength
        self.keyStart = keyStart
        self.keyLength = keyLength
        self.queryOffset = queryOffset
        self.visibleKeyLength = visibleKeyLength
    }
}

extension Tensor {
    /// Fused causal scaled-dot-product attention with its own backward.
    ///
    /// - Parameters:
    ///   - query: `(B, Tq, H, D)`.
    ///   - key: `(B, Tk, Hkv, D)`; H must be a multiple of Hkv (grouped-query attention).
    ///   - value: `(B, Tk, Hkv, D)`.
    ///   - scale: defaults to 1/√D.
    /// - Returns: `(B, Tq, H, D)`, ready for the output projection without a transpose. A query
    ///   that sees no key gets zeros.
    public static func scaledDotProductAttention(
        query: Tensor, key: Tensor, value: Tensor, mask: AttentionMask = .causal, scale: Double? = nil
    ) -> Tensor {
        precondition(query.rank == 4 && key.rank == 4 && value.rank == 4, "attention expects (batch, time, heads, headDim) tensors, got \(query.shape), \(key.shape), \(value.shape)")
        precondition(key.shape == value.shape, "attention key \(key.shape) and value \(value.shape) differ")
        precondition(query.shape[0] == key.shape[0] && query.shape[3] == key.shape[3], "attention query \(query.shape) and key \(key.shape) differ in batch or head dimension")
        precondition(key.shape[2] > 0 && query.shape[2] % key.shape[2] == 0, "attention: \(query.shape[2]) query heads are not a multiple of \(key.shape[2]) key heads")
        precondition(query.dtype == key.dtype && key.dtype == value.dtype, "attention: dtypes differ")
        let geometry = AttentionGeometry(query: query.shape, key: key.shape, mask: mask, scale: scale)
        let q = query.materialized(), k = key.materialized(), v = value.materialized()
        let result = Tensor(shape: query.shape, dtype: query.dtype, zeroed: false)
        let keep = Tensor.shouldRecord(query, key, value)
        let probabilities = keep ? Tensor(shape: [geometry.batch, geometry.probabilitiesPerRow], dtype: query.dtype, zeroed: false) : nil
        Kernels.attention(q, k, v, geometry, into: result, probabilities: probabilities)
        guard let probabilities else { return result }
        return result.recording(.attention(query, key, value, probabilities: probabilities, geometry: geometry), inputs: query, key, value)
    }
}

struct AttentionGeometry {
    let batch: Int, queryLength: Int, keyLength: Int, heads: Int, keyHeads: Int, headDimension: Int
    let scale: Double
    /// Per batch row, its causal problems: one for a plain row, one per segment for a packed row.
    let segments: [[AttentionSegment]]
    /// Elements of the saved probabilities per batch row: H · Σ over the row's segments of
    /// (queries × keys), the most of any row.
    let probabilitiesPerRow: Int

    init(query: [Int], key: [Int], mask: AttentionMask, scale: Double?) {
        batch = query[0]
        queryLength = query[1]
        heads = query[2]
        headDimension = query[3]
        keyLength = key[1]
        keyHeads = key[2]
        self.scale = scale ?? 1 / Double(headDimension).squareRoot()
        if let problems = mask.problems {
            precondition(mask.queryOffsets == nil && mask.keyLengths == nil && mask.segmentStarts == nil, "attention: problems do not combine with queryOffsets, keyLengths or segmentStarts")
            (segments, probabilitiesPerRow) = AttentionGeometry.segments(of: problems, batch: batch, queryLength: queryLength, keyLength: keyLength, heads: heads)
        } else if let starts = mask.segmentStarts {
            precondition(mask.queryOffsets == nil && mask.keyLengths == nil, "attention: segmentStarts do not combine with queryOffsets or keyLengths")
            precondition(queryLength == keyLength, "attention: segmented rows are self-attention, but \(queryLength) queries meet \(keyLength) keys")
            precondition(starts.count == batch, "attention mask has segment starts for \(starts.count) rows, batch is \(batch)")
            let (t, h) = (queryLength, heads)
            let lengths = starts.enumerated().map { b, rowStarts in
                precondition(rowStarts.first == 0, "attention: row \(b)'s segments must start at 0, got \(rowStarts)")
                precondition(zip(rowStarts, rowStarts.dropFirst()).allSatisfy { $0 < $1 } && rowStarts.last! < Swift.max(t, 1), "attention: row \(b)'s segment starts \(rowStarts) are not increasing within 0..<\(t)")
                return zip(rowStarts, rowStarts.dropFirst() + [t]).map { $1 - $0 }
            }
            // Each segment's probabilities follow the previous one's in its row's block: head 0's
            // (length × length), then head 1's, …, so a segment's are laid out as a plain row's.
            let perRow = lengths.map { $0.reduce(0) { $0 + h * $1 * $1 } }.max() ?? 0
            probabilitiesPerRow = perRow
            segments = zip(starts, lengths).enumerated().map { b, row in
                var offset = b * perRow
                return zip(row.0, row.1).map { start, length in
                    defer { offset += h * length * length }
                    return AttentionSegment(queryStart: start, keyStart: start, queryLength: length, keyLength: length, maskOffset: 0, maskLength: length, probabilities: offset)
                }
            }
        } else {
            let (offsets, lengths) = mask.resolved(batch: batch, queryLength: queryLength, keyLength: keyLength)
            let (tq, tk, h) = (queryLength, keyLength, heads)
            segments = (0..<batch).map { b in
                [AttentionSegment(queryStart: 0, keyStart: 0, queryLength: tq, keyLength: tk, maskOffset: offsets[b], maskLength: lengths[b], probabilities: b * h * tq * tk)]
            }
            probabilitiesPerRow = h * tq * tk
        }
    }
}

extension AttentionGeometry {
    /// The segments of `AttentionMask.problems`, checked: each row's problems tile its queries
    /// and its keys in order (the backward passes clear and write the key gradients problem by
    /// problem, so a key outside every problem would keep whatever its memory held), each has a
    /// query and a key, and a query's visible keys stay inside its problem. Probabilities are
    /// laid out as for segments, problem after problem in the row's block.
    static func segments(of problems: [[AttentionProblem]], batch: Int, queryLength: Int, keyLength: Int, heads: Int) -> ([[AttentionSegment]], Int) {
        precondition(problems.count == batch, "attention mask has problems for \(problems.count) rows, batch is \(batch)")
        for (b, row) in problems.enumerated() {
            var (nextQuery, nextKey) = (0, 0)
            for p in row {
                precondition(p.queryStart == nextQuery && p.keyStart == nextKey && p.queryLength > 0 && p.keyLength > 0, "attention: row \(b)'s problems \(row) do not tile its \(queryLength) queries and \(keyLength) keys in order")
                precondition(p.queryOffset >= 0 && p.visibleKeyLength <= p.keyLength && p.queryOffset + p.queryLength <= p.visibleKeyLength, "attention: row \(b)'s problem \(p) lets a query see past its own keys")
                nextQuery += p.queryLength
                nextKey += p.keyLength
            }
            precondition(nextQuery == queryLength && nextKey == keyLength, "attention: row \(b)'s problems cover \(nextQuery) of \(queryLength) queries and \(nextKey) of \(keyLength) keys")
        }
        let perRow = problems.map { $0.reduce(0) { $0 + heads * $1.queryLength * $1.keyLength } }.max() ?? 0
        let segments = problems.enumerated().map { b, row in
            var offset = b * perRow
            return row.map { p in
                defer { offset += heads * p.queryLength * p.keyLength }
                return AttentionSegment(
                    queryStart: p.queryStart, keyStart: p.keyStart, queryLength: p.queryLength, keyLength: p.keyLength,
                    maskOffset: p.queryOffset, maskLength: p.visibleKeyLength, probabilities: offset)
            }
        }
        return (segments, perRow)
    }
}

/// One causal attention problem of a batch row: its queries `queryStart ..< queryStart +
/// queryLength` against its keys `keyStart ..< keyStart + keyLength` (row indices of the
/// (B, T, H, D) layout), where local query i sits at position `maskOffset + i` and sees local
/// keys `0 ..< visibleKeys(query: i)`. A plain row is one problem; a packed row one per segment.
struct AttentionSegment {
    let queryStart: Int, keyStart: Int, queryLength: Int, keyLength: Int
    let maskOffset: Int, maskLength: Int
    /// Where head 0's probabilities start in the saved (B, probabilitiesPerRow) tensor:
    /// (queryLength × keyLength, row stride keyLength), head h's `h · queryLength · keyLength` on.
    let probabilities: Int

    /// Keys visible to local query `i`: local keys `0..<visibleKeys`.
    @inline(__always)
    func visibleKeys(query i: Int) -> Int {
        Swift.max(0, Swift.min(maskLength, maskOffset + i + 1))
    }

    /// Query-by-key products of the causal problem, for sizing the work.
    var scores: Int { queryLength * keyLength }
}
