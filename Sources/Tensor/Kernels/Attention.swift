import CKernels

extension Kernels {
    /// Query rows per block in attention's BLAS path. Causal masking means a block of queries sees
    /// only the keys up to its last row's position, so each block's GEMMs stop there: at T = 256
    /// the score and gradient GEMMs do 10/16 of the full T × T work.
    static let attentionQueryBlock = 64

    /// Whether attention of this dtype runs in the AVX-512 kernels of `TrainingAttention.c`
    /// (float32 on a CPU with AVX-512) rather than through BLAS. The forward and the backward pass
    /// decide alike, so the backward reads the probabilities as its forward laid them out. Packed
    /// rows take the kernels too, one call per segment: to the kernels a segment is a plain causal
    /// problem of its own length (`KernelUnit`).
    @inline(__always)
    static func usesAttentionKernels(_ dtype: DType) -> Bool {
        dtype == .float32 && useAVX512
    }

    /// Runs `body(b, kvHead)` for every (batch row, key head) pair, split over the kernel threads;
    /// the small GEMMs inside each run on that unit's thread (`gemmThreads` is 1 there). The
    /// query heads sharing a key head stay together, so their dK and dV sums never race.
    static func forEachKeyHead(_ g: AttentionGeometry, _ body: (Range<Int>) -> Void) {
        let units = g.batch * g.keyHeads
        let scores = g.segments.reduce(0) { $0 + $1.reduce(0) { $0 + Swift.max($1.scores, 1) } }
        let work = g.keyHeads * scores * g.headDimension
        parallelFor(units, workPerItem: work / Swift.max(units, 1)) { range in body(range) }
    }

    /// Causal attention: S = scale·Q Kᵀ, masked row softmax, O = P V, one (batch row, key head)
    /// unit per thread at a time. Saves P when `probabilities` is given. Each unit solves its
    /// row's causal problems (`AttentionGeometry.segments`: the whole row, or each segment of a
    /// packed row on its own, through strided views at the segment's start). Float32 on AVX-512
    /// runs in `ck_attention_forward`, called once per segment (see `usesAttentionKernels`);
    /// otherwise each head goes through BLAS (strided views of the (B, T, H, D) layout, no copies)
    /// in blocks of query rows that each stop at the last key they can see, and saves each block's
    /// rows of P up to the block's last visible key, zero where masked; the backward pass reads no
    /// further, so the columns past it are never written.
    static func attention(_ query: Tensor, _ key: Tensor, _ value: Tensor, _ g: AttentionGeometry, into result: Tensor, probabilities: Tensor?) {
        if usesAttentionKernels(query.dtype) {
            attentionKernels(query, key, value, g, into: result, probabilities: probabilities)
            return
        }
        switch query.dtype {
        case .float32: attention(Float.self, query, key, value, g, into: result, probabilities: probabilities)
        case .float64: attention(Double.self, query, key, value, g, into: result, probabilities: probabilities)
        }
    }

    /// One causal problem (a whole row, or one segment of a packed row) of a (batch row, key head)
    /// unit for the float32 kernels: sizes and mask as the C kernels take them, and where its data
    /// starts. A segment is a problem like any other to the kernels, which never learn of packing.
    private struct KernelUnit {
        let queryLength, keyLength, group, headDimension: Int32
        let scale: Float
        /// The problem's mask: its first query's position and its key length.
        let maskOffset, maskLength: Int32
        /// Offsets of the problem's first query head in (B, Tq, H, D), of its key head in
        /// (B, Tk, Hkv, D), and of its first query head's probabilities.
        let query, keyValue, probabilities: Int
    }

    /// Runs `body` for every unit's problems on the threads (`forEachKeyHead`), each thread with
    /// its own scratch of `ck_attention_scratch_count` floats (sized for the whole row, which
    /// every segment fits).
    private static func forEachKernelUnit(_ g: AttentionGeometry, _ body: (KernelUnit, UnsafeMutablePointer<Float>) -> Void) {
        let (tq, tk, h, hkv, d) = (g.queryLength, g.keyLength, g.heads, g.keyHeads, g.headDimension)
        let group = h / hkv
        forEachKeyHead(g) { units in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: ck_attention_scratch_count(Int32(tq), Int32(tk), Int32(d)))
            defer { scratch.deallocate() }
            for unit in units {
                let b = unit / hkv, kvHead = unit % hkv
                for segment in g.segments[b] {
                    body(KernelUnit(
                        queryLength: Int32(segment.queryLength), keyLength: Int32(segment.keyLength), group: Int32(group), headDimension: Int32(d), scale: Float(g.scale),
                        maskOffset: Int32(segment.maskOffset), maskLength: Int32(segment.maskLength),
                        query: (b * tq + segment.queryStart) * h * d + kvHead * group * d, keyValue: (b * tk + segment.keyStart) * hkv * d + kvHead * d,
                        probabilities: segment.probabilities + kvHead * group * segment.scores), scratch)
                }
            }
        }
    }

    /// `attention` for float32 through `ck_attention_forward`.
    private static func attentionKernels(_ query: Tensor, _ key: Tensor, _ value: Tensor, _ g: AttentionGeometry, into result: Tensor, probabilities: Tensor?) {
        let q = query.pointer(Float.self), k = key.pointer(Float.self), v = value.pointer(Float.self), o = result.pointer(Float.self)
        let saved = probabilities?.pointer(Float.self)
        forEachKernelUnit(g) { u, scratch in
            ck_attention_forward(
                u.queryLength, u.keyLength, u.group, u.headDimension, u.scale, u.maskOffset, u.maskLength,
                q + u.query, g.heads * g.headDimension, k + u.keyValue, v + u.keyValue, g.keyHeads * g.headDimension, o + u.query,
                saved.map { $0 + u.probabilities }, scratch)
        }
    }

    private static func attention<T: TensorScalar>(_: T.Type, _ query: Tensor, _ key: Tensor, _ value: Tensor, _ g: AttentionGeometry, into result: Tensor, probabilities: Tensor?) {
        let (tq, tk, h, hkv, d) = (g.queryLength, g.keyLength, g.heads, g.keyHeads, g.headDimension)
        let group = h / hkv
        let q = query.pointer(T.self), k = key.pointer(T.self), v = value.pointer(T.self), o = result.pointer(T.self)
        let saved = probabilities?.pointer(T.self)
        forEachKeyHead(g) { units in
            // One head's P when it is not kept; every segment's fits in the row's.
            let scratch = saved == nil ? UnsafeMutablePointer<T>.allocate(capacity: Swift.max(tq * tk, 1)) : nil
            defer { scratch?.deallocate() }
            for unit in units {
                let b = unit / hkv, kvHead = unit % hkv
                for segment in g.segments[b] {
                    // The segment's own causal problem: sq queries, sk keys, P rows of stride sk.
                    let (sq, sk) = (segment.queryLength, segment.keyLength)
                    let kp = k + (b * tk + segment.keyStart) * hkv * d + kvHead * d
                    let vp = v + (b * tk + segment.keyStart) * hkv * d + kvHead * d
                    for head in (kvHead * group)..<((kvHead + 1) * group) {
                        let qp = q + (b * tq + segment.queryStart) * h * d + head * d
                        let op = o + (b * tq + segment.queryStart) * h * d + head * d
                        let p = saved.map { $0 + segment.probabilities + head * segment.scores } ?? scratch!
                        for blockStart in stride(from: 0, to: sq, by: attentionQueryBlock) {
                            let rows = Swift.min(attentionQueryBlock, sq - blockStart)
                            // Visible keys grow with the query row, so the block's last row sees most.
                            let keys = segment.visibleKeys(query: blockStart + rows - 1)
                            let pb = p + blockStart * sk
                            if keys > 0 {
                                T.gemm(transposeA: false, transposeB: true, m: rows, n: keys, k: d, alpha: T(g.scale), a: qp + blockStart * h * d, lda: h * d, b: kp, ldb: hkv * d, beta: 0, c: pb, ldc: sk)
                            }
                            // P (saved or scratch) is read, by the P V product here and by the
                            // backward pass, only up to the block's last visible key, so each row is
                            // cleared only that far: the masked tail of a 256-key row was 37% of P.
                            for i in 0..<rows {
                                softmaxScoreRow(pb + i * sk, visible: segment.visibleKeys(query: blockStart + i), width: keys)
                            }
                            let ob = op + blockStart * h * d
                            if keys > 0 {
                                T.gemm(transposeA: false, transposeB: false, m: rows, n: d, k: keys, alpha: 1, a: pb, lda: sk, b: vp, ldb: hkv * d, beta: 0, c: ob, ldc: h * d)
                            } else {
                                for i in 0..<rows { (ob + i * h * d).update(repeating: 0, count: d) }
                            }
                        }
                    }
                }
            }
        }
    }

    /// One score row in place: the softmax of its first `visible` entries, zeros up to `width`.
    @inline(__always)
    private static func softmaxScoreRow<T: TensorScalar>(_ row: UnsafeMutablePointer<T>, visible: Int, width: Int) {
        if T.self == Float.self && useAVX512 && visible > 0 {
            ck_attention_softmax_row(Int32(visible), Int32(width), UnsafeMutableRawPointer(row).assumingMemoryBound(to: Float.self))
            return
        }
        if visible > 0 { softmaxRows(UnsafePointer(row), row, rows: 0..<1, width: visible, logarithmic: false) }
        for j in visible..<Swift.max(visible, width) { row[j] = 0 }
    }

    /// The softmax gradient of one row of probabilities p, in place on ds (dL/dp on entry):
    /// ds = p ∘ (ds − Σ p ∘ ds).
    @inline(__always)
    private static func softmaxGradientRow<T: TensorScalar>(_ p: UnsafePointer<T>, _ ds: UnsafeMutablePointer<T>, count n: Int) {
        if T.self == Float.self && useAVX512 {
            ck_attention_softmax_backward_row(Int32(n), UnsafeRawPointer(p).assumingMemoryBound(to: Float.self), UnsafeMutableRawPointer(ds).assumingMemoryBound(to: Float.self))
            return
        }
        var dot = T.zero
        for j in 0..<n { dot += p[j] * ds[j] }
        for j in 0..<n { ds[j] = p[j] * (ds[j] - dot) }
    }

    /// dV = Pᵀ dO;  dP = dO Vᵀ;  dS = P ∘ (dP − rowsum(dP ∘ P));  dQ = scale·dS K;  dK = scale·dSᵀ Q,
    /// per causal problem (the row, or each segment of a packed row) as the forward solved them:
    /// in `ck_attention_backward` where the forward used the kernels, else through BLAS in the
    /// forward's blocks of query rows, each stopping at its last visible key.
    static func attentionBackward(query: Tensor, key: Tensor, value: Tensor, probabilities: Tensor, geometry g: AttentionGeometry, gradient: Tensor) -> (Tensor, Tensor, Tensor) {
        let q0 = query.materialized(), k0 = key.materialized(), v0 = value.materialized(), dO = gradient.materialized()
        let dQ = Tensor(shape: query.shape, dtype: query.dtype, zeroed: false)
        // dK and dV sum over query blocks and heads; each unit clears its own (batch row, key
        // head) slice first, on its own thread, instead of one serial memset of both.
        let dK = Tensor(shape: key.shape, dtype: key.dtype, zeroed: false)
        let dV = Tensor(shape: value.shape, dtype: value.dtype, zeroed: false)
        if usesAttentionKernels(query.dtype) {
            attentionBackwardKernels(query: q0, key: k0, value: v0, probabilities: probabilities, geometry: g, gradient: dO, into: (dQ, dK, dV))
            return (dQ, dK, dV)
        }
        func run<T: TensorScalar>(_: T.Type) {
            let (tq, tk, h, hkv, d) = (g.queryLength, g.keyLength, g.heads, g.keyHeads, g.headDimension)
            let group = h / hkv
            let q = q0.pointer(T.self), k = k0.pointer(T.self), v = v0.pointer(T.self), go = dO.pointer(T.self)
            let dq = dQ.pointer(T.self), dk = dK.pointer(T.self), dv = dV.pointer(T.self)
            let saved = probabilities.pointer(T.self)
            forEachKeyHead(g) { units in
                let dS = UnsafeMutablePointer<T>.allocate(capacity: Swift.max(attentionQueryBlock * tk, 1))
                defer { dS.deallocate() }
                for unit in units {
                    let b = unit / hkv, kvHead = unit % hkv
                    let rowKeys = b * tk * hkv * d + kvHead * d
                    for row in 0..<tk {
                        (dk + rowKeys + row * hkv * d).update(repeating: 0, count: d)
                        (dv + rowKeys + row * hkv * d).update(repeating: 0, count: d)
                    }
                    for segment in g.segments[b] {
                        let (sq, sk) = (segment.queryLength, segment.keyLength)
                        let kvOffset = rowKeys + segment.keyStart * hkv * d
                        for head in (kvHead * group)..<((kvHead + 1) * group) {
                            let qOffset = (b * tq + segment.queryStart) * h * d + head * d
                            let p = saved + segment.probabilities + head * segment.scores
                            for blockStart in stride(from: 0, to: sq, by: attentionQueryBlock) {
                                let rows = Swift.min(attentionQueryBlock, sq - blockStart)
                                let keys = segment.visibleKeys(query: blockStart + rows - 1)
                                let rowOffset = qOffset + blockStart * h * d
                                guard keys > 0 else {
                                    for i in 0..<rows { (dq + rowOffset + i * h * d).update(repeating: 0, count: d) }
                                    continue
                                }
                                let pb = p + blockStart * sk
                                T.gemm(transposeA: true, transposeB: false, m: keys, n: d, k: rows, alpha: 1, a: pb, lda: sk, b: go + rowOffset, ldb: h * d, beta: 1, c: dv + kvOffset, ldc: hkv * d)
                                T.gemm(transposeA: false, transposeB: true, m: rows, n: keys, k: d, alpha: 1, a: go + rowOffset, lda: h * d, b: v + kvOffset, ldb: hkv * d, beta: 0, c: dS, ldc: keys)
                                for i in 0..<rows { softmaxGradientRow(pb + i * sk, dS + i * keys, count: keys) }
                                T.gemm(transposeA: false, transposeB: false, m: rows, n: d, k: keys, alpha: T(g.scale), a: dS, lda: keys, b: k + kvOffset, ldb: hkv * d, beta: 0, c: dq + rowOffset, ldc: h * d)
                                T.gemm(transposeA: true, transposeB: false, m: keys, n: d, k: rows, alpha: T(g.scale), a: dS, lda: keys, b: q + rowOffset, ldb: h * d, beta: 1, c: dk + kvOffset, ldc: hkv * d)
                            }
                        }
                    }
                }
            }
        }
        switch query.dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
        return (dQ, dK, dV)
    }

    /// `attentionBackward` for float32 through `ck_attention_backward`.
    private static func attentionBackwardKernels(query: Tensor, key: Tensor, value: Tensor, probabilities: Tensor, geometry g: AttentionGeometry, gradient: Tensor, into gradients: (Tensor, Tensor, Tensor)) {
        let q = query.pointer(Float.self), k = key.pointer(Float.self), v = value.pointer(Float.self), go = gradient.pointer(Float.self)
        let dq = gradients.0.pointer(Float.self), dk = gradients.1.pointer(Float.self), dv = gradients.2.pointer(Float.self)
        let p = probabilities.pointer(Float.self)
        forEachKernelUnit(g) { u, scratch in
            ck_attention_backward(
                u.queryLength, u.keyLength, u.group, u.headDimension, u.scale, u.maskOffset, u.maskLength,
                q + u.query, g.heads * g.headDimension, k + u.keyValue, v + u.keyValue, g.keyHeads * g.headDimension,
                p + u.probabilities, go + u.query, dq + u.query, dk + u.keyValue, dv + u.keyValue, scratch)
        }
    }
}
