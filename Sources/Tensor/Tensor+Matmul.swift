extension Tensor {
    /// Matrix product over the last two dimensions, `(…, M, K) × (…, K, N) → (…, M, N)`, with the
    /// leading (batch) dimensions broadcast.
    ///
    /// Transposed views (from `transposed()` or `permuted`) reach BLAS as transpose flags and
    /// leading dimensions, never as copies. A batched left operand times a matrix is one GEMM.
    public static func matmul(_ lhs: Tensor, _ rhs: Tensor) -> Tensor {
        precondition(lhs.dtype == rhs.dtype, "matmul: dtypes \(lhs.dtype) and \(rhs.dtype) differ")
        precondition(lhs.rank >= 2 && rhs.rank >= 2, "matmul needs matrices, got shapes \(lhs.shape) and \(rhs.shape)")
        precondition(
            lhs.shape[lhs.rank - 1] == rhs.shape[rhs.rank - 2],
            "matmul: shapes \(lhs.shape) and \(rhs.shape) do not chain (inner dimensions \(lhs.shape[lhs.rank - 1]) and \(rhs.shape[rhs.rank - 2]))")
        let batch = broadcastShapes(Array(lhs.shape.dropLast(2)), Array(rhs.shape.dropLast(2)), operation: "matmul batch of \(lhs.shape) and \(rhs.shape)")
        let m = lhs.shape[lhs.rank - 2], n = rhs.shape[rhs.rank - 1]
        let result = Tensor(shape: batch + [m, n], dtype: lhs.dtype, zeroed: false)
        Kernels.matmul(lhs, rhs, into: result, accumulate: false)
        return result.recording(.matmul(lhs, rhs), inputs: lhs, rhs)
    }

    /// `self` times `other`; see `Tensor.matmul`.
    public func matmul(_ other: Tensor) -> Tensor { Tensor.matmul(self, other) }

    /// A `torch.nn.Linear` without bias: `(…, in) × weight[out, in]ᵀ → (…, out)`.
    ///
    /// One GEMM over all leading dimensions, with the weight handed to BLAS as a transpose flag.
    /// This is the hot path of every projection, so it has its own op rather than going through
    /// a transposed view and the batched `matmul`.
    public func linear(_ weight: Tensor) -> Tensor {
        let result = Tensor(shape: linearOutputShape(weight), dtype: dtype, zeroed: false)
        project(weight, into: result)
        return result.recording(.linear(self, weight: weight), inputs: self, weight)
    }

    /// `residual + self · weightᵀ`: a projection that ends a residual connection, as one op. The
    /// GEMM adds the residual to its dot products: reading it where it lies on the blocked float32
    /// kernel, else into a copy of it (beta = 1), so BLAS does not clear its output first and no
    /// separate addition reads both tensors again. The bits are those of
    /// `residual + linear(weight)`: each element is the residual plus the GEMM's dot product,
    /// rounded once.
    public func linear(_ weight: Tensor, adding residual: Tensor) -> Tensor {
        let outputShape = linearOutputShape(weight)
        precondition(residual.shape == outputShape, "linear: residual \(residual.shape) does not match the output \(outputShape)")
        precondition(residual.dtype == dtype, "linear: residual dtype \(residual.dtype) differs from \(dtype)")
        let result = Tensor(shape: outputShape, dtype: dtype, zeroed: false)
        let inFeatures = weight.shape[1], outFeatures = weight.shape[0]
        if Kernels.splitsDepth(m: count / Swift.max(inFeatures, 1), n: outFeatures, k: inFeatures) {
            // A product cut along k adds its second half into C last, so C must start at zero for
            // the dot product to be complete before the residual is added.
            project(weight, into: result)
            Kernels.accumulate(residual, into: result, destinationStrides: result.strides)
        } else {
            project(weight, into: result, adding: residual)
        }
        return result.recording(.residualLinear(self, weight: weight, residual: residual), inputs: self, weight, residual)
    }

    private func linearOutputShape(_ weight: Tensor) -> [Int] {
        precondition(weight.rank == 2, "linear weight must be [out, in], got \(weight.shape)")
        precondition(rank >= 1 && shape[rank - 1] == weight.shape[1], "linear: input \(shape) does not match weight \(weight.shape) (in features \(weight.shape[1]))")
        precondition(dtype == weight.dtype, "linear: dtypes \(dtype) and \(weight.dtype) differ")
        return Array(shape.dropLast()) + [weight.shape[0]]
    }

    /// result = self · weightᵀ over all leading dimensions, or residual + self · weightᵀ: the GEMM
    /// reads a dense residual where it lies where the kernel can (`Kernels.gemm(adding:)`), else it
    /// adds into a copy of the residual.
    private func project(_ weight: Tensor, into result: Tensor, adding residual: Tensor? = nil) {
        let input = materialized(), matrix = weight.materialized()
        let inFeatures = weight.shape[1], outFeatures = weight.shape[0]
        let rows = count / Swift.max(inFeatures, 1)
        if let residual {
            if residual.isContiguous && Kernels.gemm(
                transposeA: false, transposeB: true, m: rows, n: outFeatures, k: inFeatures,
                a: input, lda: inFeatures, b: matrix, ldb: inFeatures, adding: residual, into: result, ldc: outFeatures) {
                return
            }
            Kernels.copy(from: residual, into: result)
        }
        Kernels.gemm(
            transposeA: false, transposeB: true, m: rows, n: outFeatures, k: inFeatures,
            a: input, lda: inFeatures, b: matrix, ldb: inFeatures, into: result, ldc: outFeatures, accumulate: residual != nil)
    }
}

extension Kernels {
    /// One GEMM on dense operands: `result (= or +=) op(a) · op(b)`.
    static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        a: Tensor, lda: Int, b: Tensor, ldb: Int, into result: Tensor, ldc: Int, accumulate: Bool
    ) {
        guard m > 0 && n > 0 else { return }
        guard k > 0 else {
            if !accumulate { Kernels.fill(result, 0) }
            return
        }
        switch result.dtype {
        case .float32:
            Float.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 1, a: a.pointer(Float.self), lda: lda, b: b.pointer(Float.self), ldb: ldb, beta: accumulate ? 1 : 0, c: result.pointer(Float.self), ldc: ldc)
        case .float64:
            Double.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 1, a: a.pointer(Double.self), lda: lda, b: b.pointer(Double.self), ldb: ldb, beta: accumulate ? 1 : 0, c: result.pointer(Double.self), ldc: ldc)
        }
    }

    /// `result = op(a) · op(b) + addend` on dense operands (the addend m × n with row stride ldc,
    /// apart from result), with the bits of `gemm` accumulating into a copy of the addend, where
    /// the kernel reads the addend in place (`Float.gemm(adding:)`: float32 on the blocked kernel).
    /// Elsewhere it does nothing and returns false.
    static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        a: Tensor, lda: Int, b: Tensor, ldb: Int, adding addend: Tensor, into result: Tensor, ldc: Int
    ) -> Bool {
        guard result.dtype == .float32, m > 0, n > 0, k > 0 else { return false }
        return Float.gemm(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a.pointer(Float.self), lda: lda, b: b.pointer(Float.self), ldb: ldb,
            adding: addend.pointer(Float.self), ldd: ldc, c: result.pointer(Float.self), ldc: ldc)
    }

    /// A linear layer's two gradient products on dense operands: dX (= or += when `accumulate`)
    /// dY·W and dW = dYᵀ·X, dY (rows × out), X (rows × in), W (out × in). Float32 runs them in one
    /// parallel region where it can (`Float.linearGradientGEMMs`); the bits are those of the two
    /// `gemm` calls.
    static func linearGradients(
        rows: Int, inFeatures: Int, outFeatures: Int, dy: Tensor, input: Tensor, weight: Tensor,
        into dx: Tensor, accumulate: Bool, weightGradient dw: Tensor
    ) {
        guard dy.dtype == .float32 && rows > 0 && inFeatures > 0 && outFeatures > 0 else {
            gemm(transposeA: false, transposeB: false, m: rows, n: inFeatures, k: outFeatures, a: dy, lda: outFeatures, b: weight, ldb: inFeatures, into: dx, ldc: inFeatures, accumulate: accumulate)
            gemm(transposeA: true, transposeB: false, m: outFeatures, n: inFeatures, k: rows, a: dy, lda: outFeatures, b: input, ldb: inFeatures, into: dw, ldc: inFeatures, accumulate: false)
            return
        }
        Float.linearGradientGEMMs(
            rows: rows, inFeatures: inFeatures, outFeatures: outFeatures, dy: dy.pointer(Float.self), input: input.pointer(Float.self),
            weight: weight.pointer(Float.self), dx: dx.pointer(Float.self), accumulate: accumulate, dw: dw.pointer(Float.self))
    }

    /// Sets every element of a dense tensor.
    static func fill(_ tensor: Tensor, _ value: Double) {
        switch tensor.dtype {
        case .float32: tensor.pointer(Float.self).update(repeating: Float(value), count: tensor.count)
        case .float64: tensor.pointer(Double.self).update(repeating: value, count: tensor.count)
        }
    }

    /// How a 2-D view sits in memory for BLAS: row-major with leading dimension `ld`, or the
    /// transpose of a row-major matrix (`transposed`), or neither (then it must be copied).
    struct MatrixLayout {
        let transposed: Bool
        let leadingDimension: Int

        init?(rows: Int, columns: Int, rowStride: Int, columnStride: Int) {
            if (columns == 1 || columnStride == 1) && (rows == 1 || rowStride >= columns) {
                transposed = false
                leadingDimension = rows == 1 ? Swift.max(columns, 1) : rowStride
            } else if (rows == 1 || rowStride == 1) && (columns == 1 || columnStride >= rows) {
                transposed = true
                leadingDimension = columns == 1 ? Swift.max(rows, 1) : columnStride
            } else {
                return nil
            }
        }

        init?(_ tensor: Tensor) {
            let r = tensor.rank
            self.init(rows: tensor.shape[r - 2], columns: tensor.shape[r - 1], rowStride: tensor.strides[r - 2], columnStride: tensor.strides[r - 1])
        }
    }

    /// `result (= or +=) lhs × rhs` with batch broadcasting. `result` is dense.
    static func matmul(_ lhs: Tensor, _ rhs: Tensor, into result: Tensor, accumulate: Bool) {
        switch result.dtype {
        case .float32: matmul(Float.self, lhs, rhs, into: result, accumulate: accumulate)
        case .float64: matmul(Double.self, lhs, rhs, into: result, accumulate: accumulate)
        }
    }

    private static func matmul<T: TensorScalar>(_: T.Type, _ lhs: Tensor, _ rhs: Tensor, into result: Tensor, accumulate: Bool) {
        var lhs = lhs, rhs = rhs
        let m = lhs.shape[lhs.rank - 2], k = lhs.shape[lhs.rank - 1], n = rhs.shape[rhs.rank - 1]
        let beta: T = accumulate ? 1 : 0
        if m == 0 || n == 0 { return }
        if k == 0 {
            if !accumulate { result.pointer(T.self).update(repeating: 0, count: result.count) }
            return
        }
        // A contiguous batch of matrices times one matrix is a single (batch·M × K) GEMM.
        if rhs.rank == 2 && lhs.rank > 2 && lhs.isContiguous, let rightLayout = MatrixLayout(rhs) {
            let rows = lhs.count / k
            T.gemm(
                transposeA: false, transposeB: rightLayout.transposed, m: rows, n: n, k: k,
                alpha: 1, a: lhs.pointer(T.self), lda: k, b: rhs.pointer(T.self), ldb: rightLayout.leadingDimension,
                beta: beta, c: result.pointer(T.self), ldc: n)
            return
        }
        var leftLayout = MatrixLayout(lhs)
        if leftLayout == nil {
            lhs = lhs.materialized()
            leftLayout = MatrixLayout(lhs)
        }
        var rightLayout = MatrixLayout(rhs)
        if rightLayout == nil {
            rhs = rhs.materialized()
            rightLayout = MatrixLayout(rhs)
        }
        let batchShape = Array(result.shape.dropLast(2))
        let leftBatch = lhs.broadcastBatchStrides(to: batchShape)
        let rightBatch = rhs.broadcastBatchStrides(to: batchShape)
        let resultBatch = Array(result.strides.dropLast(2))
        let loop = StridedLoop(shape: batchShape, strides: [resultBatch, leftBatch, rightBatch])
        let inner = loop.innerStrides
        let a = lhs.pointer(T.self), b = rhs.pointer(T.self), c = result.pointer(T.self)
        let la = leftLayout!, lb = rightLayout!
        loop.forEachRun { offsets, count in
            for item in 0..<count {
                T.gemm(
                    transposeA: la.transposed, transposeB: lb.transposed, m: m, n: n, k: k,
                    alpha: 1, a: a + offsets[1] + item * inner[1], lda: la.leadingDimension,
                    b: b + offsets[2] + item * inner[2], ldb: lb.leadingDimension,
                    beta: beta, c: c + offsets[0] + item * inner[0], ldc: n)
            }
        }
    }
}

extension Tensor {
    /// Strides of this tensor's batch (all but the last two) dimensions broadcast to `batch`.
    func broadcastBatchStrides(to batch: [Int]) -> [Int] {
        let ownBatch = rank - 2
        let lead = batch.count - ownBatch
        var result = [Int](repeating: 0, count: batch.count)
        for axis in 0..<ownBatch where shape[axis] != 1 {
            result[lead + axis] = strides[axis]
        }
        return result
    }
}
