extension Kernels {
    /// Causal attention, one (batch row, head) at a time: S = scale·Q Kᵀ (BLAS, strided views of
    /// the (B, T, H, D) layout, no copies), masked row softmax, O = P V. Saves P when
    /// `probabilities` is given.
    static func attention(_ query: Tensor, _ key: Tensor, _ value: Tensor, _ g: AttentionGeometry, into result: Tensor, probabilities: Tensor?) {
        switch query.dtype {
        case .float32: attention(Float.self, query, key, value, g, into: result, probabilities: probabilities)
        case .float64: attention(Double.self, query, key, value, g, into: result, probabilities: probabilities)
        }
    }

    private static func attention<T: TensorScalar>(_: T.Type, _ query: Tensor, _ key: Tensor, _ value: Tensor, _ g: AttentionGeometry, into result: Tensor, probabilities: Tensor?) {
        let (tq, tk, h, hkv, d) = (g.queryLength, g.keyLength, g.heads, g.keyHeads, g.headDimension)
        let group = h / hkv
        let q = query.pointer(T.self), k = key.pointer(T.self), v = value.pointer(T.self), o = result.pointer(T.self)
        let scratch = probabilities == nil ? UnsafeMutablePointer<T>.allocate(capacity: Swift.max(tq * tk, 1)) : nil
        defer { scratch?.deallocate() }
        for b in 0..<g.batch {
            for head in 0..<h {
                let kvHead = head / group
                let qp = q + b * tq * h * d + head * d
                let kp = k + b * tk * hkv * d + kvHead * d
                let vp = v + b * tk * hkv * d + kvHead * d
                let p = probabilities.map { $0.pointer(T.self) + (b * h + head) * tq * tk } ?? scratch!
                if tk > 0 {
                    T.gemm(transposeA: false, transposeB: true, m: tq, n: tk, k: d, alpha: T(g.scale), a: qp, lda: h * d, b: kp, ldb: hkv * d, beta: 0, c: p, ldc: tk)
                }
                for i in 0..<tq {
                    let row = p + i * tk
                    let visible = g.visibleKeys(batch: b, query: i)
                    if visible > 0 {
                        softmax(UnsafePointer(row), row, rows: 1, width: visible, logarithmic: false)
                    }
                    for j in visible..<tk { row[j] = 0 }
                }
                let op = o + b * tq * h * d + head * d
                if tk > 0 {
                    T.gemm(transposeA: false, transposeB: false, m: tq, n: d, k: tk, alpha: 1, a: p, lda: tk, b: vp, ldb: hkv * d, beta: 0, c: op, ldc: h * d)
                } else {
                    for i in 0..<tq { (op + i * h * d).update(repeating: 0, count: d) }
                }
            }
        }
    }

    /// dV = Pᵀ dO;  dP = dO Vᵀ;  dS = P ∘ (dP − rowsum(dP ∘ P));  dQ = scale·dS K;  dK = scale·dSᵀ Q.
    static func attentionBackward(query: Tensor, key: Tensor, value: Tensor, probabilities: Tensor, geometry g: AttentionGeometry, gradient: Tensor) -> (Tensor, Tensor, Tensor) {
        let q0 = query.materialized(), k0 = key.materialized(), v0 = value.materialized(), dO = gradient.materialized()
        let dQ = Tensor(shape: query.shape, dtype: query.dtype, zeroed: false)
        let dK = Tensor.zeros(key.shape, dtype: key.dtype)
        let dV = Tensor.zeros(value.shape, dtype: value.dtype)
        func run<T: TensorScalar>(_: T.Type) {
            let (tq, tk, h, hkv, d) = (g.queryLength, g.keyLength, g.heads, g.keyHeads, g.headDimension)
            let group = h / hkv
            let q = q0.pointer(T.self), k = k0.pointer(T.self), v = v0.pointer(T.self), go = dO.pointer(T.self)
            let dq = dQ.pointer(T.self), dk = dK.pointer(T.self), dv = dV.pointer(T.self)
            let dS = UnsafeMutablePointer<T>.allocate(capacity: Swift.max(tq * tk, 1))
            defer { dS.deallocate() }
            for b in 0..<g.batch {
                for head in 0..<h {
                    let kvHead = head / group
                    let qOffset = b * tq * h * d + head * d
                    let kvOffset = b * tk * hkv * d + kvHead * d
                    let p = probabilities.pointer(T.self) + (b * h + head) * tq * tk
                    guard tk > 0 else {
                        for i in 0..<tq { (dq + qOffset + i * h * d).update(repeating: 0, count: d) }
                        continue
                    }
                    T.gemm(transposeA: true, transposeB: false, m: tk, n: d, k: tq, alpha: 1, a: p, lda: tk, b: go + qOffset, ldb: h * d, beta: 1, c: dv + kvOffset, ldc: hkv * d)
                    T.gemm(transposeA: false, transposeB: true, m: tq, n: tk, k: d, alpha: 1, a: go + qOffset, lda: h * d, b: v + kvOffset, ldb: hkv * d, beta: 0, c: dS, ldc: tk)
                    for i in 0..<tq {
                        let pr = p + i * tk, sr = dS + i * tk
                        var dot = T.zero
                        for j in 0..<tk { dot += pr[j] * sr[j] }
                        for j in 0..<tk { sr[j] = pr[j] * (sr[j] - dot) }
                    }
                    T.gemm(transposeA: false, transposeB: false, m: tq, n: d, k: tk, alpha: T(g.scale), a: dS, lda: tk, b: k + kvOffset, ldb: hkv * d, beta: 0, c: dq + qOffset, ldc: h * d)
                    T.gemm(transposeA: true, transposeB: false, m: tk, n: d, k: tq, alpha: T(g.scale), a: dS, lda: tk, b: q + qOffset, ldb: h * d, beta: 1, c: dk + kvOffset, ldc: hkv * d)
                }
            }
        }
        switch query.dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
        return (dQ, dK, dV)
    }
}
