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
        // Products of at least `gemmSplitWork` multiply-adds with alpha 1 and beta 0 or 1 go, block
        // by block on the same blocks and threads as BLAS would get, to AMX at a reduced
        // `MatmulPrecision`, else to the blocked AVX-512 kernel (`BLASRuntime.usesBlockedSGEMM`);
        // to BLAS if a kernel's packing buffers could not be had, and every other product.
        let qualifies = alpha == 1 && (beta == 0 || beta == 1) && m * n * k >= Kernels.gemmSplitWork
        let parts = qualifies ? Int32(BLASRuntime.amxParts) : 0
        let blocked = qualifies && parts == 0 && BLASRuntime.usesBlockedSGEMM
        Kernels.splitGEMM(threads: threads, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc) { m, n, k, a, b, beta, c, ldc in
            if parts > 0 && ck_amx_sgemm(transposeA ? 1 : 0, transposeB ? 1 : 0, Int32(m), Int32(n), Int32(k), a, lda, b, ldb, beta != 0 ? 1 : 0, c, ldc, parts) != 0 { return }
            if blocked && ck_blocked_sgemm(transposeA ? 1 : 0, transposeB ? 1 : 0, Int32(m), Int32(n), Int32(k), a, lda, b, ldb, beta != 0 ? 1 : 0, c, ldc) != 0 { return }
            cblas_sgemm(
                CblasRowMajor, blasTranspose(transposeA), blasTranspose(transposeB),
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
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
        Kernels.splitGEMM(threads: Kernels.gemmThreads, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc) { m, n, k, a, b, beta, c, ldc in
            cblas_dgemm(
                CblasRowMajor, blasTranspose(transposeA), blasTranspose(transposeB),
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
    }
}
