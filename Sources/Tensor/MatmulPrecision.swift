import CKernels
import Foundation

/// How float32 matrix products treat their operands, as PyTorch's
/// `torch.set_float32_matmul_precision` does. Float64 products are always exact BLAS.
///
/// The reduced precisions run on the AMX tiles of Sapphire Rapids and later Xeons
/// (`ck_amx_sgemm`), which multiply bfloat16 pairs and accumulate in float32. On CPUs without
/// AMX every precision computes as `highest`; `BLASRuntime.effectiveMatmulPrecision` says which
/// is in force.
public enum MatmulPrecision: String, Sendable, Codable, CaseIterable {
    /// Float32 products (the blocked AVX-512 kernel, or OpenBLAS: `BLASRuntime.usesBlockedSGEMM`):
    /// about 24 significant bits per operand.
    case highest
    /// Each operand split into two bfloat16 (hi + lo, about 16 significant bits) and three
    /// products summed (hi·lo + hi·hi + lo·hi): relative error about 1e-5 of Σ|a·b| against about
    /// 1e-7 for float32. The base step's GEMMs run about 1.4 times float32's rate in the step,
    /// 1.6–3 times alone.
    case high
    /// Each operand rounded to bfloat16 (8 significant bits): relative error about 1e-3, like
    /// bfloat16 mixed-precision training.
    case medium

    /// bfloat16 parts per operand (`ck_amx_sgemm`'s parts); 0 for float32 BLAS.
    var amxParts: Int32 {
        switch self {
        case .highest: return 0
        case .high: return 2
        case .medium: return 1
        }
    }
}

extension BLASRuntime {
    /// Sets how float32 products round their operands (callers set it through
    /// ``ComputeSettings``). On a CPU without AMX (or with `ARPO_NO_AMX=1`) the reduced precisions
    /// compute as `.highest`.
    public static func setMatmulPrecision(_ precision: MatmulPrecision) {
        ck_set_amx_parts(precision.amxParts)
    }

    /// The precision last set (`.highest` until then).
    public static var matmulPrecision: MatmulPrecision {
        MatmulPrecision.allCases.first { $0.amxParts == ck_amx_parts() } ?? .highest
    }

    /// bfloat16 parts per operand that float32 products use now: 0 (BLAS) without AMX.
    static var amxParts: Int { hasAMX ? Int(ck_amx_parts()) : 0 }

    /// The precision float32 products actually compute at: `matmulPrecision`, or `.highest`
    /// where AMX is missing.
    public static var effectiveMatmulPrecision: MatmulPrecision { hasAMX ? matmulPrecision : .highest }

    /// Whether this CPU and OS run the AMX bfloat16 kernels (asks the kernel for the tile state
    /// on first use). `ARPO_NO_AMX=1` turns them off, for comparison.
    public static let hasAMX: Bool = {
        guard ProcessInfo.processInfo.environment["ARPO_NO_AMX"] != "1" else { return false }
        return ck_has_amx() != 0
    }()
}

extension BLASRuntime {
    /// Whether float32 products at `.highest` go to the blocked AVX-512 kernel
    /// (`ck_blocked_sgemm`) rather than OpenBLAS: true where AVX-512 runs
    /// (`Kernels.useAVX512`) unless `ARPO_BLAS_SGEMM=1` or `setBlockedSGEMM(false)`. Products
    /// smaller than 2¹⁸ multiply-adds, with alpha ≠ 1 or beta ∉ {0, 1}, and float64 products stay
    /// on BLAS either way.
    public static var usesBlockedSGEMM: Bool { blockedSGEMMAvailable && ck_blocked_sgemm_enabled() != 0 }

    /// Turns the blocked kernel on or off (to compare against OpenBLAS); it stays off where it
    /// is unavailable.
    public static func setBlockedSGEMM(_ enabled: Bool) {
        ck_set_blocked_sgemm(enabled ? 1 : 0)
    }

    static let blockedSGEMMAvailable = Kernels.useAVX512 && ProcessInfo.processInfo.environment["ARPO_BLAS_SGEMM"] != "1"
}
