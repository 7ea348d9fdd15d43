import CKernels
import COpenBLAS
import RealModule

/// The element type of a tensor's storage.
///
/// Training runs in `float32`; `float64` exists so that gradients can be checked against central
/// differences with errors far below the tolerances (see `GradientChecker`).
public enum DType: String, Sendable, Codable, CaseIterable {
    case float32
    case float64

    /// Bytes per element.
    public var byteCount: Int {
        switch self {
        case .float32: return 4
        case .float64: return 8
        }
    }
}

/// The scalar types a tensor can hold: `Float` and `Double`.
///
/// Kernels are written once, generic over this protocol, and each op dispatches on the tensor's
/// runtime `DType` to the concrete specialisation, so the layers above never deal in generics.
public protocol TensorScalar: BinaryFloatingPoint & Real & Sendable {
    /// The storage type that holds this scalar.
    static var dtype: DType { get }

    /// Row-major general matrix multiply `C = alpha * op(A) * op(B) + beta * C` through BLAS.
    static func gemm(
        transposeA: Bool, transposeB: Bool,
        m: Int, n: Int, k: Int,
        alpha: Self, a: UnsafePointer<Self>, lda: Int,
        b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int
    )
}

@inline(__always)
private func blasTranspose(_ transposed: Bool) -> CBLAS_TRANSPOSE {
    transposed ? CblasTrans : CblasNoTrans
}

extension Float: TensorScalar {
    public static var dtype: DType { .float32 }

    @inline(__always)
    public static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let threads = Kernels.gemmThreads
        GEMMRecorder.record(GEMMCall(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc, accumulates: beta != 0, threads: threads))
        multiply(threads: threads, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }

    /// `gemm` on up to `threads` threads, unrecorded: a product the blocked kernel runs rows
    /// outer to its parallel form (`blockedInParallel`), every other product block by block
    /// (`Kernels.splitGEMM`).
    @inline(__always)
    static func multiply(
        threads: Int, transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let kernel = FloatGEMMKernel(alpha: alpha, beta: beta, m: m, n: n, k: k)
        if kernel == .blocked && !Kernels.splitsDepth(m: m, n: n, k: k)
            && blockedInParallel(threads: threads, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, addend: beta != 0 ? UnsafePointer(c) : nil, ldAddend: ldc, c: c, ldc: ldc) {
            return
        }
        Kernels.splitGEMM(threads: threads, blasBlocks: kernel == .blas, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc) { m, n, k, a, b, beta, c, ldc in
            kernel.run(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
    }

    /// C = op(A)·op(B) + D with D (m × n, row stride ldd) apart from C: the bits of `gemm` with
    /// beta 1 on a copy of D in C, without the copy. Only where the blocked kernel runs the product
    /// whole: on one thread, or in its parallel form. Elsewhere, or if the kernel's buffers could
    /// not be had, it does nothing, records nothing and returns false; the caller then copies D
    /// into C and calls `gemm` with beta 1.
    public static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        adding d: UnsafePointer<Float>, ldd: Int, c: UnsafeMutablePointer<Float>, ldc: Int
    ) -> Bool {
        let threads = Kernels.gemmThreads
        guard FloatGEMMKernel(alpha: 1, beta: 1, m: m, n: n, k: k) == .blocked, !Kernels.splitsDepth(m: m, n: n, k: k) else { return false }
        let ran = threads == 1
            ? ck_blocked_sgemm(transposeA ? 1 : 0, transposeB ? 1 : 0, Int32(m), Int32(n), Int32(k), a, lda, b, ldb, d, ldd, c, ldc) != 0
            : blockedInParallel(threads: threads, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, addend: d, ldAddend: ldd, c: c, ldc: ldc)
        if ran { GEMMRecorder.record(GEMMCall(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc, accumulates: true, threads: threads)) }
        return ran
    }

    /// A whole product in the blocked kernel's parallel form (`ck_blocked_sgemm_parallel`: one
    /// packing of the right operand, row blocks claimed by the threads in turn; `addend` as there),
    /// false with nothing done where that form does not run. Only on the worker pool: the row
    /// blocks wait for the packing chunks, which needs the pool's in-order claims, so with
    /// `ARPO_DISPATCH_WORKERS=1` it never runs.
    @inline(__always)
    static func blockedInParallel(
        threads: Int, transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        addend: UnsafePointer<Float>?, ldAddend: Int, c: UnsafeMutablePointer<Float>, ldc: Int
    ) -> Bool {
        threads > 1 && Kernels.usePersistentWorkers
            && ck_blocked_sgemm_parallel(Int32(threads), transposeA ? 1 : 0, transposeB ? 1 : 0, Int32(m), Int32(n), Int32(k), a, lda, b, ldb, addend, ldAddend, c, ldc, 0, nil) != 0
    }

    /// A linear layer's two gradient products, dX (= or +=) dY·W and dW = dYᵀ·X (rows × in
    /// features, out features, as `Operation.linearGradients` has them), each with the bits of its
    /// own `gemm`. When dX goes to the parallel blocked kernel and dW is cut along k, both run in
    /// one parallel region: dW's chunks first, one thread each, and dX's row blocks fill in around
    /// them, so that a thread the host slows does not leave the other waiting at the end of dW.
    /// Otherwise the two `gemm` calls, one after the other.
    public static func linearGradientGEMMs(
        rows: Int, inFeatures: Int, outFeatures: Int, dy: UnsafePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>, accumulate: Bool, dw: UnsafeMutablePointer<Float>
    ) {
        let dxBeta: Float = accumulate ? 1 : 0
        let threads = Kernels.gemmThreads
        guard threads > 1, Kernels.usePersistentWorkers, FloatGEMMKernel(alpha: 1, beta: dxBeta, m: rows, n: inFeatures, k: outFeatures) == .blocked,
            FloatGEMMKernel(alpha: 1, beta: 0, m: outFeatures, n: inFeatures, k: rows) == .blocked,
            !Kernels.splitsDepth(m: rows, n: inFeatures, k: outFeatures), Kernels.splitsDepth(m: outFeatures, n: inFeatures, k: rows),
            let split = Kernels.GEMMSplit(threads: threads, transposeA: true, transposeB: false, m: outFeatures, n: inFeatures, k: rows, a: dy, lda: outFeatures, b: input, ldb: inFeatures, beta: 0, c: dw, ldc: inFeatures)
        else {
            gemm(transposeA: false, transposeB: false, m: rows, n: inFeatures, k: outFeatures, alpha: 1, a: dy, lda: outFeatures, b: weight, ldb: inFeatures, beta: dxBeta, c: dx, ldc: inFeatures)
            gemm(transposeA: true, transposeB: false, m: outFeatures, n: inFeatures, k: rows, alpha: 1, a: dy, lda: outFeatures, b: input, ldb: inFeatures, beta: 0, c: dw, ldc: inFeatures)
            return
        }
        GEMMRecorder.record(GEMMCall(transposeA: false, transposeB: false, m: rows, n: inFeatures, k: outFeatures, lda: outFeatures, ldb: inFeatures, ldc: inFeatures, accumulates: accumulate, threads: threads, sharesRegionWithNext: true))
        GEMMRecorder.record(GEMMCall(transposeA: true, transposeB: false, m: outFeatures, n: inFeatures, k: rows, lda: outFeatures, ldb: inFeatures, ldc: inFeatures, accumulates: false, threads: threads))
        var calls = (0..<split.chunks).map { chunk -> ck_gemm_call in
            let block = split.block(chunk)
            return ck_gemm_call(
                transpose_a: 1, transpose_b: 0, m: Int32(block.m), n: Int32(block.n), k: Int32(block.k), a: block.a, lda: outFeatures, b: block.b, ldb: inFeatures,
                accumulate: block.beta != 0 ? 1 : 0, c: block.c, ldc: block.ldc, done: 0)
        }
        let ran = calls.withUnsafeMutableBufferPointer { calls in
            ck_blocked_sgemm_parallel(Int32(threads), 0, 0, Int32(rows), Int32(inFeatures), Int32(outFeatures), dy, outFeatures, weight, inFeatures, accumulate ? UnsafePointer(dx) : nil, inFeatures, dx, inFeatures, Int32(calls.count), calls.baseAddress) != 0
        }
        let runBlock = { (chunk: Int) in
            let block = split.block(chunk)
            FloatGEMMKernel.blocked.run(
                transposeA: true, transposeB: false, m: block.m, n: block.n, k: block.k, alpha: 1, a: block.a, lda: outFeatures, b: block.b, ldb: inFeatures,
                beta: block.beta, c: block.c, ldc: block.ldc)
        }
        if ran {
            // A chunk whose packing buffers could not be had goes to BLAS, on this thread.
            for (chunk, call) in calls.enumerated() where call.done == 0 { runBlock(chunk) }
        } else {
            multiply(threads: threads, transposeA: false, transposeB: false, m: rows, n: inFeatures, k: outFeatures, alpha: 1, a: dy, lda: outFeatures, b: weight, ldb: inFeatures, beta: dxBeta, c: dx, ldc: inFeatures)
            Kernels.runChunks(split.chunks, threads: threads, runBlock)
        }
        split.finish()
    }
}

/// Where a float32 product's blocks go: products of at least `gemmSplitWork` multiply-adds with
/// alpha 1 and beta 0 or 1 go to AMX at a reduced `MatmulPrecision`, else to the blocked AVX-512
/// kernel (`BLASRuntime.usesBlockedSGEMM`); to BLAS if a kernel's packing buffers could not be
/// had, and every other product.
enum FloatGEMMKernel: Equatable {
    case amx(parts: Int32), blocked, blas

    init(alpha: Float, beta: Float, m: Int, n: Int, k: Int) {
        let qualifies = alpha == 1 && (beta == 0 || beta == 1) && m * n * k >= Kernels.gemmSplitWork
        let parts = qualifies ? Int32(BLASRuntime.amxParts) : 0
        if parts > 0 {
            self = .amx(parts: parts)
        } else {
            self = qualifies && BLASRuntime.usesBlockedSGEMM ? .blocked : .blas
        }
    }

    /// One block, on this thread.
    @inline(__always)
    func run(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        switch self {
        case .amx(let parts):
            if ck_amx_sgemm(transposeA ? 1 : 0, transposeB ? 1 : 0, Int32(m), Int32(n), Int32(k), a, lda, b, ldb, beta != 0 ? 1 : 0, c, ldc, parts) != 0 { return }
        case .blocked:
            if ck_blocked_sgemm(transposeA ? 1 : 0, transposeB ? 1 : 0, Int32(m), Int32(n), Int32(k), a, lda, b, ldb, beta != 0 ? UnsafePointer(c) : nil, ldc, c, ldc) != 0 { return }
        case .blas:
            break
        }
        cblas_sgemm(
            CblasRowMajor, blasTranspose(transposeA), blasTranspose(transposeB),
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

extension Double: TensorScalar {
    public static var dtype: DType { .float64 }

    @inline(__always)
    public static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Double, a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        Kernels.splitGEMM(threads: Kernels.gemmThreads, blasBlocks: true, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc) { m, n, k, a, b, beta, c, ldc in
            cblas_dgemm(
                CblasRowMajor, blasTranspose(transposeA), blasTranspose(transposeB),
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
    }
}
