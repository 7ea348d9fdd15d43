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
    /// Float32 products through OpenBLAS: about 24 significant bits per operand.
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
    /// Sets how float32 products round their operands (from configuration; never a global
    /// default). On a CPU without AMX (or with `ARPO_NO_AMX=1`) the reduced precisions compute as
    /// `.highest`.
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
