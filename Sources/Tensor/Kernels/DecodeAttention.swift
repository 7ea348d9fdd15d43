import CKernels
import Foundation

// Kernels of the batched KV-cache decode path: a row-skinny matmul that avoids OpenBLAS's
// weight repacking, row appends into per-sequence caches, and single-pass causal attention of
// new rows against each sequence's cache. The reference for `cachedAttention` is
// `Kernels.attention` (tested against it in Double); for `blockedMatmul`, one GEMM.

extension Kernels {
    /// OpenBLAS (0.3.21, SkylakeX) multiplies without packing its operands, single-threaded, when
    /// M·N·K ≤ 10⁶ (`sgemm_small_kernel_permit`). A decode step's 16-row projections are just
    /// over that, and packing the weight on every call was a third of the decode profile.
    static let smallProductLimit = 1_000_000
    /// Widest column block handed to one small GEMM call.
    static let maximumBlockWidth = 64

    /// The column-block width for an (R, K) × (K, N) product, or nil when blocks of 16 columns
    /// would still exceed the small-product limit (then one GEMM is faster).
    static func blockWidth(rows: Int, inner: Int) -> Int? {
        var width = maximumBlockWidth
        while width >= 16 {
            if rows * width * inner <= smallProductLimit { return width }
            width -= 16
        }
        return nil
    }

    /// `result = input · matrix` for dense (R, K) `input`, (K, N) `matrix` and (R, N) `result`, as
    /// column blocks of `width`. Blocks are split into `threadCount` contiguous ranges, one per
    /// thread; block boundaries do not depend on the thread count, so neither does the result.
    static func blockedMatmul(_ input: Tensor, _ matrix: Tensor, into result: Tensor, width: Int, threadCount: Int) {
        switch result.dtype {
        case .float32: blockedMatmul(Float.self, input, matrix, into: result, width: width, threadCount: threadCount)
        case .float64: blockedMatmul(Double.self, input, matrix, into: result, width: width, threadCount: threadCount)
        }
    }

    private static func blockedMatmul<T: TensorScalar>(_: T.Type, _ input: Tensor, _ matrix: Tensor, into result: Tensor, width: Int, threadCount: Int) {
        let r = input.shape[0], k = input.shape[1], n = matrix.shape[1]
        guard r > 0 && n > 0 else { return }
        let a = input.pointer(T.self), b = matrix.pointer(T.self), c = result.pointer(T.self)
        guard k > 0 else {
            c.update(repeating: 0, count: r * n)
            return
        }
        let blocks = (n + width - 1) / width
        parallelFor(blocks, workPerItem: r * width * k, threads: threadCount) { range in
            for block in range {
                let start = block * width, columns = Swift.min(width, n - start)
                T.gemm(transposeA: false, transposeB: false, m: r, n: columns, k: k, alpha: 1, a: a, lda: k, b: b + start, ldb: n, beta: 0, c: c + start, ldc: n)
            }
        }
    }

    /// Copies consecutive rows of `source` (R, W), whose rows are each dense, into
    /// `destinations[i]` (dense, rows of W) at row `starts[i]`, `counts[i]` rows each.
    static func appendRows(_ source: Tensor, counts: [Int], into destinations: [Tensor], at starts: [Int]) {
        let width = source.shape[1], rowStride = source.strides[0]
        let elementBytes = source.dtype.byteCount
        let base = source.storage.base + source.offset * elementBytes
        var row = 0
        for (index, destination) in destinations.enumerated() {
            let target = destination.storage.base + (destination.offset + starts[index] * width) * elementBytes
            for i in 0..<counts[index] {
                (target + i * width * elementBytes).copyMemory(from: base + (row + i) * rowStride * elementBytes, byteCount: width * elementBytes)
            }
            row += counts[index]
        }
    }

    /// `Tensor.rotaryAppend`'s pass: for each row of the dense (N, (H + 2·Hkv)·D) `projection`,
    /// the query heads rotated into `query` (N, H, D), the key heads rotated into its sequence's
    /// key cache and the value heads copied into its value cache. The rotation is `rotary`'s
    /// arithmetic, so the values are the same; float32 rows take `ck_rotary_append_row` where
    /// AVX-512 runs (the same arithmetic, vectorised).
    static func rotaryAppend(_ projection: Tensor, _ rotary: RotaryEmbedding, positions: [Int], counts: [Int], keyCaches: [Tensor], valueCaches: [Tensor], at starts: [Int], query: Tensor) {
        let (heads, d) = (query.shape[1], query.shape[2])
        let width = projection.shape[1], keyHeads = (width - heads * d) / (2 * d), half = d / 2
        var rowSequences: [Int] = [], firstRows: [Int] = []
        for (sequence, count) in counts.enumerated() {
            firstRows.append(rowSequences.count)
            rowSequences += repeatElement(sequence, count: count)
        }
        /// `body(row, sequence, cacheRow)` for every row, rows split over the kernel threads;
        /// `cacheRow` is the element offset of the row in its sequence's caches. Each row writes
        /// only its own query row and its own cache rows.
        func forEachRow(_ body: (Int, Int, Int) -> Void) {
            parallelFor(rowSequences.count, workPerItem: 3 * (heads + keyHeads) * d) { rows in
                for row in rows {
                    let sequence = rowSequences[row]
                    body(row, sequence, (starts[sequence] + row - firstRows[sequence]) * keyHeads * d)
                }
            }
        }
        if query.dtype == .float32 && useAVX512 {
            let x = projection.pointer(Float.self), q = query.pointer(Float.self)
            let keys = keyCaches.map { $0.pointer(Float.self) }, values = valueCaches.map { $0.pointer(Float.self) }
            rotary.cosine32.withUnsafeBufferPointer { cosine in
                rotary.sine32.withUnsafeBufferPointer { sine in
                    forEachRow { row, sequence, cacheRow in
                        let table = positions[row] * half
                        ck_rotary_append_row(
                            Int32(heads), Int32(keyHeads), Int32(d), x + row * width, cosine.baseAddress! + table, sine.baseAddress! + table,
                            q + row * heads * d, keys[sequence] + cacheRow, values[sequence] + cacheRow)
                    }
                }
            }
            return
        }
        func run<T: TensorScalar>(_: T.Type, cosine: UnsafePointer<T>, sine: UnsafePointer<T>) {
            let x = projection.pointer(T.self), q = query.pointer(T.self)
            let keys = keyCaches.map { $0.pointer(T.self) }, values = valueCaches.map { $0.pointer(T.self) }
            func rotate(_ source: UnsafePointer<T>, _ target: UnsafeMutablePointer<T>, _ c: UnsafePointer<T>, _ s: UnsafePointer<T>) {
                for i in 0..<half {
                    let a = source[i], b = source[i + half], si = s[i]
                    target[i] = a * c[i] - b * si
                    target[i + half] = b * c[i] + a * si
                }
            }
            forEachRow { row, sequence, cacheRow in
                let source = x + row * width, c = cosine + positions[row] * half, s = sine + positions[row] * half
                for h in 0..<heads { rotate(source + h * d, q + (row * heads + h) * d, c, s) }
                for h in 0..<keyHeads { rotate(source + (heads + h) * d, keys[sequence] + cacheRow + h * d, c, s) }
                (values[sequence] + cacheRow).update(from: source + (heads + keyHeads) * d, count: keyHeads * d)
            }
        }
        switch query.dtype {
        case .float32: rotary.cosine32.withUnsafeBufferPointer { c in rotary.sine32.withUnsafeBufferPointer { s in run(Float.self, cosine: c.baseAddress!, sine: s.baseAddress!) } }
        case .float64: rotary.cosine64.withUnsafeBufferPointer { c in rotary.sine64.withUnsafeBufferPointer { s in run(Double.self, cosine: c.baseAddress!, sine: s.baseAddress!) } }
        }
    }

    /// Causal attention of each sequence's new rows against its cache, which already holds them.
    ///
    /// query and result: (N, H, D) dense, sequence b's `counts[b]` rows consecutive; keys[b] and
    /// values[b]: dense (capacity, Hkv, D). Query row i of sequence b sits at position
    /// `cachedLengths[b] + i` and sees keys 0…that position. Each sequence is computed whole by
    /// one thread: dot products, a max-subtracted softmax, then the weighted sum of values, in a
    /// fixed order.
    static func cachedAttention(query: Tensor, keys: [Tensor], values: [Tensor], cachedLengths: [Int], counts: [Int], keyHeads: Int, scale: Double, into result: Tensor, threadCount: Int) {
        let d = query.shape[2]
        if query.dtype == .float32 && useAVX512 && d % 16 == 0 && d <= 128 {
            return cachedAttentionAVX512(query: query, keys: keys, values: values, cachedLengths: cachedLengths, counts: counts, keyHeads: keyHeads, scale: scale, into: result, threadCount: threadCount)
        }
        switch query.dtype {
        case .float32: cachedAttention(Float.self, query: query, keys: keys, values: values, cachedLengths: cachedLengths, counts: counts, keyHeads: keyHeads, scale: scale, into: result, threadCount: threadCount)
        case .float64: cachedAttention(Double.self, query: query, keys: keys, values: values, cachedLengths: cachedLengths, counts: counts, keyHeads: keyHeads, scale: scale, into: result, threadCount: threadCount)
        }
    }

    /// Runs whole sequences on up to `threadCount` threads, each thread claiming the next
    /// sequence in turn: `body(sequence, firstRow, scratch)`, where `firstRow` is the sequence's
    /// first row in the (N, H, D) query and `scratch` holds `scratchPerKey` × its visible length.
    private static func forEachSequence<T>(_: T.Type, cachedLengths: [Int], counts: [Int], scratchPerKey: Int, threadCount: Int, _ body: (Int, Int, UnsafeMutablePointer<T>) -> Void) {
        var rowStarts: [Int] = []
        var row = 0
        for count in counts {
            rowStarts.append(row)
            row += count
        }
        runChunks(counts.count, threads: threadCount) { sequence in
            guard counts[sequence] > 0 else { return }
            let scratch = UnsafeMutablePointer<T>.allocate(capacity: scratchPerKey * (cachedLengths[sequence] + counts[sequence]))
            defer { scratch.deallocate() }
            body(sequence, rowStarts[sequence], scratch)
        }
    }

    private static func cachedAttention<T: TensorScalar & SIMDScalar>(_: T.Type, query: Tensor, keys: [Tensor], values: [Tensor], cachedLengths: [Int], counts: [Int], keyHeads hkv: Int, scale: Double, into result: Tensor, threadCount: Int) {
        let h = query.shape[1], d = query.shape[2], group = h / hkv
        let q = query.pointer(T.self), o = result.pointer(T.self)
        let keyPointers = keys.map { $0.pointer(T.self) }, valuePointers = values.map { $0.pointer(T.self) }
        let alpha = T(scale)
        // One sequence per work item, all heads together: cache rows (all Hkv heads, contiguous)
        // are then read front to back, which the prefetcher follows, instead of in 1/Hkv strides.
        withExtendedLifetime((keys, values)) {
            forEachSequence(T.self, cachedLengths: cachedLengths, counts: counts, scratchPerKey: h, threadCount: threadCount) { sequence, firstRow, scores in  // scores: (H, visible)
                let kp = keyPointers[sequence], vp = valuePointers[sequence]
                let span = cachedLengths[sequence] + counts[sequence]  // scores' row stride
                for i in 0..<counts[sequence] {
                    let visible = cachedLengths[sequence] + i + 1
                    let qp = q + (firstRow + i) * h * d, op = o + (firstRow + i) * h * d
                    for j in 0..<visible {
                        let keyRow = kp + j * hkv * d
                        for head in 0..<h {
                            scores[head * span + j] = alpha * dot(qp + head * d, keyRow + (head / group) * d, d)
                        }
                    }
                    for head in 0..<h {
                        let row = scores + head * span
                        var peak = -T.infinity
                        for j in 0..<visible { peak = Swift.max(peak, row[j]) }
                        var total = T.zero
                        for j in 0..<visible {
                            let e = T.exp(row[j] - peak)
                            row[j] = e
                            total += e
                        }
                        let inverse = 1 / total
                        for j in 0..<visible { row[j] *= inverse }
                    }
                    op.update(repeating: 0, count: h * d)
                    for j in 0..<visible {
                        let valueRow = vp + j * hkv * d
                        for head in 0..<h {
                            addScaled(scores[head * span + j], valueRow + (head / group) * d, to: op + head * d, d)
                        }
                    }
                }
            }
        }
    }

    /// `cachedAttention` through `ck_cached_attention`: each sequence computed whole by one
    /// thread, as in the portable kernel.
    private static func cachedAttentionAVX512(query: Tensor, keys: [Tensor], values: [Tensor], cachedLengths: [Int], counts: [Int], keyHeads: Int, scale: Double, into result: Tensor, threadCount: Int) {
        let h = query.shape[1], d = query.shape[2]
        let q = query.pointer(Float.self), o = result.pointer(Float.self)
        let keyPointers = keys.map { $0.pointer(Float.self) }, valuePointers = values.map { $0.pointer(Float.self) }
        withExtendedLifetime((keys, values)) {
            forEachSequence(Float.self, cachedLengths: cachedLengths, counts: counts, scratchPerKey: 1, threadCount: threadCount) { sequence, firstRow, scores in
                ck_cached_attention(
                    Int32(counts[sequence]), Int32(cachedLengths[sequence]), Int32(h), Int32(keyHeads), Int32(d), Float(scale),
                    q + firstRow * h * d, keyPointers[sequence], valuePointers[sequence], scores, o + firstRow * h * d)
            }
        }
    }
}
