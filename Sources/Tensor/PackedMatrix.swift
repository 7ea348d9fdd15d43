import CKernels
import Foundation

/// A (K, N) right operand prepared once for many few-row products: the decode path's weights.
///
/// On CPUs with AVX-512, a float32 matrix is also copied into column panels that
/// `ck_sgemm_packed` streams with one pass over the weights per call; the products below use
/// them for up to `packedRowLimit` rows and otherwise multiply by `matrix` through BLAS. The copy
/// is private: rebuild the `PackedMatrix` when `matrix` changes.
public final class PackedMatrix: @unchecked Sendable {
    /// How the panels hold the columns.
    public enum Layout: Sendable {
        /// Panels of 32 consecutive columns: for `matmul(_:threadCount:)` and
        /// `addMatmul(_:_:threadCount:)`.
        case columns
        /// A (K, 2F) gate/up projection, gate columns then up columns, packed as pairs: each
        /// panel holds 16 gate columns and the same 16 up columns, so `swiGLUMatmul` finishes
        /// silu(gate) · up while both are in registers.
        case gateUpPairs
    }

    /// The (K, N) values, dense.
    public let matrix: Tensor
    /// How the panels hold the columns (`.columns` unless made for `swiGLUMatmul`).
    public let layout: Layout
    /// The panels, or nil where the packed kernel cannot run (float64, or a CPU without
    /// AVX-512).
    let panels: UnsafeMutablePointer<Float>?
    let panelCount: Int

    /// Products with more rows than this go to BLAS. One thread, (R, 256) × (256, 768): the
    /// packed kernel runs at 85 GFLOPS from 16 to 512 rows, OpenBLAS at 52 (16 rows) rising to
    /// 83 (512) and 82 (1,024, where the packed kernel falls to 76).
    public static let packedRowLimit = 512

    /// Whether this CPU runs the packed kernel: `Kernels.useAVX512`.
    public static var isKernelAvailable: Bool { Kernels.useAVX512 }

    /// Packs `matrix` (K, N), or (K, 2F) for `.gateUpPairs`, when the kernel can use it.
    public init(_ matrix: Tensor, layout: Layout = .columns, packing: Bool = PackedMatrix.isKernelAvailable) {
        precondition(matrix.rank == 2, "PackedMatrix needs a (K, N) matrix, got \(matrix.shape)")
        precondition(layout == .columns || matrix.shape[1] % 2 == 0, "a gate/up PackedMatrix needs (K, 2F), got \(matrix.shape)")
        self.matrix = withoutGradients { matrix.materialized() }
        self.layout = layout
        let (k, n) = (matrix.shape[0], matrix.shape[1])
        let panelColumns = layout == .columns ? Int(CK_PANEL_WIDTH) : Int(CK_PANEL_WIDTH) / 2
        let outputColumns = layout == .columns ? n : n / 2
        panelCount = (outputColumns + panelColumns - 1) / panelColumns
        guard packing, matrix.dtype == .float32, k > 0, n > 0, k <= Int(Int32.max), n <= Int(Int32.max) else {
            panels = nil
            return
        }
        let count = layout == .columns ? ck_packed_count(Int32(k), Int32(n)) : ck_packed_pairs_count(Int32(k), Int32(n / 2))
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: count * MemoryLayout<Float>.stride, alignment: 64).bindMemory(to: Float.self, capacity: count)
        switch layout {
        case .columns: ck_pack_panels(Int32(k), Int32(n), self.matrix.pointer(Float.self), n, buffer)
        case .gateUpPairs: ck_pack_pair_panels(Int32(k), Int32(n / 2), self.matrix.pointer(Float.self), n, buffer)
        }
        panels = buffer
    }

    deinit { panels?.deallocate() }

    /// K.
    public var rows: Int { matrix.shape[0] }
    /// N.
    public var columns: Int { matrix.shape[1] }
    /// Whether products may take the packed kernel.
    public var isPacked: Bool { panels != nil }

    /// The panels when a product of `rows` rows takes the packed kernel.
    fileprivate func panels(forRows rows: Int) -> UnsafeMutablePointer<Float>? {
        rows > 0 && rows <= PackedMatrix.packedRowLimit ? panels : nil
    }
}

// Products for the decode path (no gradient). Each element is computed by one thread in one
// fixed order, so the values do not depend on `threadCount`; the fused ones give the same bits
// as the ops they replace.
extension Tensor {
    /// `(R, K) × (K, N) → (R, N)`: the packed AVX-512 kernel for up to
    /// `PackedMatrix.packedRowLimit` rows, its column panels split over `threadCount` threads;
    /// otherwise `blockedMatmul` (OpenBLAS).
    public func matmul(_ packed: PackedMatrix, threadCount: Int) -> Tensor {
        checkPackedProduct(packed, "matmul(packed:)", threadCount: threadCount)
        precondition(packed.layout == .columns, "matmul(packed:) needs a .columns PackedMatrix; use swiGLUMatmul for gate/up pairs")
        guard let panels = packed.panels(forRows: shape[0]) else { return blockedMatmul(packed.matrix, threadCount: threadCount) }
        let input = materialized()
        let result = Tensor(shape: [shape[0], packed.columns], dtype: dtype, zeroed: false)
        Kernels.packedMatmul(input, panels: panels, packed, into: result, epilogue: Int32(CK_EPILOGUE_STORE), threadCount: threadCount)
        return result
    }

    /// `(R, K) × (K, 2F) → (R, F)`, `silu(gate) · up` of the gate/up projection: equal to
    /// `matmul(packed.matrix).swiGLU()`, computed in the product's registers when `packed` is
    /// `.gateUpPairs` and the packed kernel runs.
    public func swiGLUMatmul(_ packed: PackedMatrix, threadCount: Int) -> Tensor {
        checkPackedProduct(packed, "swiGLUMatmul", threadCount: threadCount)
        precondition(packed.columns % 2 == 0, "swiGLUMatmul needs a (K, 2F) gate/up matrix, got \(packed.matrix.shape)")
        guard packed.layout == .gateUpPairs, let panels = packed.panels(forRows: shape[0]) else {
            let projection = packed.layout == .columns ? matmul(packed, threadCount: threadCount) : blockedMatmul(packed.matrix, threadCount: threadCount)
            return projection.swiGLU()
        }
        let input = materialized()
        let result = Tensor(shape: [shape[0], packed.columns / 2], dtype: dtype, zeroed: false)
        Kernels.packedMatmul(input, panels: panels, packed, into: result, epilogue: Int32(CK_EPILOGUE_SWIGLU), threadCount: threadCount)
        return result
    }

    /// `self (R, N) += input (R, K) × packed (K, N)` in place: a residual connection, with the
    /// bits of `self + input.matmul(packed)`. `self` must be dense and own its values (no other
    /// view reads them).
    public func addMatmul(_ input: Tensor, _ packed: PackedMatrix, threadCount: Int) {
        input.checkPackedProduct(packed, "addMatmul", threadCount: threadCount)
        precondition(packed.layout == .columns, "addMatmul needs a .columns PackedMatrix")
        precondition(rank == 2 && shape == [input.shape[0], packed.columns] && isContiguous, "addMatmul: a dense (\(input.shape[0]), \(packed.columns)) target needed, got \(shape)")
        precondition(dtype == input.dtype && !Tensor.shouldRecord(self), "addMatmul: a \(input.dtype) target outside autodiff needed")
        guard let panels = packed.panels(forRows: input.shape[0]) else {
            addInPlace(input.matmul(packed, threadCount: threadCount))
            return
        }
        storage.version += 1
        Kernels.packedMatmul(input.materialized(), panels: panels, packed, into: self, epilogue: Int32(CK_EPILOGUE_ADD), threadCount: threadCount)
    }

    private func checkPackedProduct(_ packed: PackedMatrix, _ name: String, threadCount: Int) {
        precondition(rank == 2 && shape[1] == packed.rows, "\(name) needs (R, \(packed.rows)), got \(shape)")
        precondition(dtype == packed.matrix.dtype, "\(name): dtypes \(dtype) and \(packed.matrix.dtype) differ")
        precondition(!Tensor.shouldRecord(self), "\(name) records no gradient; use matmul to differentiate")
        precondition(threadCount >= 1, "\(name) needs at least one thread, got \(threadCount)")
    }
}

extension Kernels {
    /// Whether the C kernels' AVX-512 versions run here: the CPU and OS support AVX-512 F/DQ/VL
    /// and `ARPO_NO_AVX512=1` does not turn them off (to compare against the portable kernels).
    public static let useAVX512 = ck_has_avx512() != 0 && ProcessInfo.processInfo.environment["ARPO_NO_AVX512"] != "1"

    /// `result` (R, N or F) from `input` (R, K) and `packed`'s panels, finished by `epilogue`;
    /// contiguous panel ranges split over threads. A multiply-add counts as 1/16 of an element
    /// op: below `parallelWorkThreshold`·16 of them the product stays on one thread (waking a
    /// worker costs more).
    static func packedMatmul(_ input: Tensor, panels: UnsafeMutablePointer<Float>, _ packed: PackedMatrix, into result: Tensor, epilogue: Int32, threadCount: Int) {
        let (m, k, n) = (input.shape[0], packed.rows, result.shape[1])
        let a = input.pointer(Float.self), c = result.pointer(Float.self)
        withExtendedLifetime(packed) {
            parallelFor(packed.panelCount, workPerItem: m * k * Int(CK_PANEL_WIDTH) / 16, threads: threadCount) { range in
                ck_sgemm_packed(Int32(m), Int32(n), Int32(k), Int32(range.lowerBound), Int32(range.upperBound), a, k, panels, c, n, epilogue)
            }
        }
    }
}
