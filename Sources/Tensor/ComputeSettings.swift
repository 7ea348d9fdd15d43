import CKernels

/// How this process computes: the threads that kernels and GEMMs split over, how float32
/// products round their operands, and which kernel runs float32 products at `highest`. One
/// value, built from configuration (`run.threads`, `run.matmul_precision`) or by a benchmark case
/// or a test, and applied as a whole.
///
/// What stays global, and why: the C kernels and the worker pool read these settings from
/// process-wide variables on every call (`ck_thread_count`, `ck_amx_parts`,
/// `ck_blocked_sgemm_enabled`), and OpenBLAS's own thread count is per process. Tensor operations
/// take no context argument through which a setting could reach a kernel, and passing one
/// through every operation and kernel entry point would change every signature for a value a
/// process sets once. So a value is applied to the process: ``apply()`` for a run,
/// ``withApplied(_:)`` for a scope, which restores the settings it found. The settings are not
/// per thread: two scopes must not overlap in time.
public struct ComputeSettings: Equatable, Sendable {
    /// The kernel of float32 products at `highest` precision.
    public enum Float32GEMM: String, Codable, CaseIterable, Sendable {
        /// The blocked AVX-512 kernel (`ck_blocked_sgemm`) where AVX-512 runs, else OpenBLAS
        /// (`BLASRuntime.usesBlockedSGEMM`).
        case blocked
        /// OpenBLAS, for comparison.
        case openblas
    }

    /// Threads that kernels and GEMMs split over; at least 1.
    public var threads: Int
    public var matmulPrecision: MatmulPrecision
    public var float32GEMM: Float32GEMM

    public init(threads: Int, matmulPrecision: MatmulPrecision = .highest, float32GEMM: Float32GEMM = .blocked) {
        precondition(threads >= 1, "thread count must be at least 1, got \(threads)")
        self.threads = threads
        self.matmulPrecision = matmulPrecision
        self.float32GEMM = float32GEMM
    }

    /// The settings in force now. Until a value is applied: OpenBLAS's starting thread count,
    /// `highest`, and the blocked kernel.
    public static var current: ComputeSettings {
        ComputeSettings(
            threads: BLASRuntime.threadCount, matmulPrecision: BLASRuntime.matmulPrecision,
            float32GEMM: ck_blocked_sgemm_enabled() != 0 ? .blocked : .openblas)
    }

    /// These settings with `threads` threads.
    public func with(threads: Int) -> ComputeSettings {
        var settings = self
        settings.threads = threads
        return settings
    }

    /// These settings with `precision`.
    public func with(matmulPrecision precision: MatmulPrecision) -> ComputeSettings {
        var settings = self
        settings.matmulPrecision = precision
        return settings
    }

    /// These settings with float32 products on `kernel`.
    public func with(float32GEMM kernel: Float32GEMM) -> ComputeSettings {
        var settings = self
        settings.float32GEMM = kernel
        return settings
    }

    /// Makes these the process's settings.
    public func apply() {
        BLASRuntime.setThreadCount(threads)
        BLASRuntime.setMatmulPrecision(matmulPrecision)
        BLASRuntime.setBlockedSGEMM(float32GEMM == .blocked)
    }

    /// Runs `body` under these settings, then restores the ones in force before.
    public func withApplied<R>(_ body: () throws -> R) rethrows -> R {
        let previous = ComputeSettings.current
        apply()
        defer { previous.apply() }
        return try body()
    }
}
