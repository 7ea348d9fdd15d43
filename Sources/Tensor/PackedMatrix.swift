import CKernels
import Foundation

/// A (K, N) right operand prepared once for many few-row products: the decode path's weights.
///
/// On CPUs with AVX-512, a float32 matrix is also copied into column panels that
/// `ck_sgemm_packed` streams with one pass over the weights per call; `Tensor.matmul(_:threadCount:)`
/// uses them for up to `packedRowLimit` rows and otherwise multiplies by `matrix` through BLAS.
/// The copy is private: rebuild the `PackedMatrix` when `matrix` changes.
public final class PackedMatrix: @unchecked Sendable {
    /// The (K, N) values, dense.
    public let matrix: Tensor
    /// Panels of `CK_PANEL_WIDTH` columns, or nil where the packed kernel cannot run (float64, or
    /// a CPU without AVX-512).
    let panels: UnsafeMutablePointer<Float>?
    let panelCount: Int

    /// Products with more rows than this go to BLAS. One thread, (R, 256) × (256, 768): the
    /// packed kernel runs at 85 GFLOPS from 16 to 512 rows, OpenBLAS at 52 (16 rows) rising to
    /// 83 (512) and 82 (1,024, where the packed kernel falls to 76).
    public static let packedRowLimit = 512

    /// Whether this CPU runs the packed kernel: `Kernels.useAVX512`.
    public static var isKernelAvailable: Bool { Kernels.useAVX512 }

    /// Packs `matrix` (K, N) when the kernel can use it.
    public init(_ matrix: Tensor, packing: Bool = PackedMatrix.isKernelAvailable) {
        precondition(matrix.rank == 2, "PackedMatrix needs a (K, N) matrix, got \(matrix.shape)")
        self.matrix = withoutGradients { matrix.materialized() }
        let (k, n) = (matrix.shape[0], matrix.shape[1])
        panelCount = (n + CK_PANEL_WIDTH - 1) / CK_PANEL_WIDTH
        guard packing, matrix.dtype == .float32, k > 0, n > 0, k <= Int(Int32.max), n <= Int(Int32.max) else {
            panels = nil
            return
        }
        let count = ck_packed_count(Int32(k), Int32(n))
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: count * MemoryLayout<Float>.stride, alignment: 64).bindMemory(to: Float.self, capacity: count)
        ck_pack_panels(Int32(k), Int32(n), self.matrix.pointer(Float.self), n, buffer)
        panels = buffer
    }

    deinit { panels?.deallocate() }

    /// K.
    public var rows: Int { matrix.shape[0] }
    /// N.
    public var columns: Int { matrix.shape[1] }
    /// Whether products may take the packed kernel.
    public var isPacked: Bool { panels != nil }
}

extension Tensor {
    /// `(R, K) × (K, N) → (R, N)` for the decode path (no gradient): the packed AVX-512 kernel for
    /// up to `PackedMatrix.packedRowLimit` rows, its column panels split over `threadCount`
    /// threads; otherwise `blockedMatmul` (OpenBLAS). Each element is computed by one thread in
    /// one fixed order, so the values do not depend on `threadCount`.
    public func matmul(_ packed: PackedMatrix, threadCount: Int) -> Tensor {
        precondition(rank == 2 && shape[1] == packed.rows, "matmul(packed:) needs (R, \(packed.rows)), got \(shape)")
        precondition(dtype == packed.matrix.dtype, "matmul(packed:): dtypes \(dtype) and \(packed.matrix.dtype) differ")
        precondition(!Tensor.shouldRecord(self), "matmul(packed:) records no gradient; use matmul to differentiate")
        precondition(threadCount >= 1, "matmul(packed:) needs at least one thread, got \(threadCount)")
        guard let panels = packed.panels, shape[0] <= PackedMatrix.packedRowLimit, shape[0] > 0 else {
            return blockedMatmul(packed.matrix, threadCount: threadCount)
        }
        let input = materialized()
        let result = Tensor(shape: [shape[0], packed.columns], dtype: dtype, zeroed: false)
        Kernels.packedMatmul(input, panels: panels, panelCount: packed.panelCount, rows: packed.rows, columns: packed.columns, into: result, threadCount: threadCount)
        return withExtendedLifetime(packed) { result }
    }
}

extension Kernels {
    /// Whether the C kernels' AVX-512 versions run here: the CPU and OS support AVX-512 F/DQ/VL
    /// and `ARPO_NO_AVX512=1` does not turn them off (to compare against the portable kernels).
    public static let useAVX512 = ck_has_avx512() != 0 && ProcessInfo.processInfo.environment["ARPO_NO_AVX512"] != "1"

    /// `result (R, N) = input (R, K) · panels`, contiguous panel ranges split over threads. A
    /// multiply-add counts as 1/16 of an element op: below `parallelWorkThreshold`·16 of them the
    /// product stays on one thread (waking a worker costs more).
    static func packedMatmul(_ input: Tensor, panels: UnsafeMutablePointer<Float>, panelCount: Int, rows k: Int, columns n: Int, into result: Tensor, threadCount: Int) {
        let m = input.shape[0]
        let a = input.pointer(Float.self), c = result.pointer(Float.self)
        parallelFor(panelCount, workPerItem: m * k * Int(CK_PANEL_WIDTH) / 16, threads: threadCount) { range in
            ck_sgemm_packed(Int32(m), Int32(n), Int32(k), Int32(range.lowerBound), Int32(range.upperBound), a, k, panels, c, n)
        }
    }
}
