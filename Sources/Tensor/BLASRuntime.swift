import CKernels
import COpenBLAS
import Foundation

/// Thread settings, and OpenBLAS's facts: the kernel family in use, and the switch to AVX-512
/// kernels on CPUs that OpenBLAS 0.3.21 mistakes for Haswell.
///
/// OpenBLAS itself runs on one thread. The tensor API splits each large GEMM into row (or
/// column) blocks, one single-threaded GEMM call per block (BLAS, or the blocked float32 or AMX
/// kernel), over the same persistent workers as every other kernel (`Kernels.splitGEMM`). With
/// OpenBLAS threaded as well, its idle workers polled with `sched_yield` on the cores that the
/// kernels' workers needed between GEMMs (two threads of attention ran at 1.7× one thread instead
/// of 1.96×), and its fixed split waited for whichever core the host had descheduled.
public enum BLASRuntime {
    /// Sets the number of threads that kernels and GEMMs split over. Callers set it through
    /// ``ComputeSettings``, with the other compute settings.
    public static func setThreadCount(_ count: Int) {
        precondition(count >= 1, "thread count must be at least 1, got \(count)")
        _ = singleThreadedLibrary
        ck_set_thread_count(Int32(count))
    }

    /// The number of threads that kernels and GEMMs split over. Until `setThreadCount`, the
    /// count OpenBLAS started with (the cores, or `OPENBLAS_NUM_THREADS`).
    public static var threadCount: Int {
        _ = singleThreadedLibrary
        return Int(ck_thread_count())
    }

    /// Runs `body` with OpenBLAS's own threading on `count` threads, then returns it to one.
    /// For the benchmark's raw-BLAS figures; the tensor API never calls BLAS inside.
    public static func withLibraryThreadCount<R>(_ count: Int, _ body: () throws -> R) rethrows -> R {
        _ = singleThreadedLibrary
        openblas_set_num_threads(Int32(count))
        defer { openblas_set_num_threads(1) }
        return try body()
    }

    /// Takes OpenBLAS's starting thread count as the default and sets OpenBLAS to one thread.
    /// Every entry point above, and every GEMM, reads this first.
    static let singleThreadedLibrary: Void = {
        if ck_thread_count() == 0 { ck_set_thread_count(Swift.max(1, openblas_get_num_threads())) }
        openblas_set_num_threads(1)
    }()

    /// The CPU kernel family OpenBLAS selected, e.g. "Haswell" or "SkylakeX".
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// OpenBLAS's build configuration, including its version.
    public static var configuration: String {
        String(cString: openblas_get_config()).trimmingCharacters(in: .whitespaces)
    }

    /// The environment variable that tells OpenBLAS which kernels to use; read once, when the
    /// library loads.
    public static let coreTypeVariable = "OPENBLAS_CORETYPE"

    /// Whether this CPU runs AVX-512 (F, CD, BW, DQ and VL: what OpenBLAS's SkylakeX kernels use).
    public static var cpuHasAVX512: Bool {
        guard let cpuInfo = readProcFile("/proc/cpuinfo"),
            let flagsLine = cpuInfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
        else { return false }
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        return ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains)
    }

    /// The CPU model name from /proc/cpuinfo, for benchmark records.
    public static var cpuModel: String {
        guard let cpuInfo = readProcFile("/proc/cpuinfo"),
            let line = cpuInfo.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
            let colon = line.firstIndex(of: ":")
        else { return "unknown" }
        return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }

    /// Reads a /proc file. They report a size of zero, so read until end of file rather than
    /// trusting the size as `String(contentsOfFile:)` may.
    public static func readProcFile(_ path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let data = try? handle.readToEnd() else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// Re-executes the current program with `OPENBLAS_CORETYPE=SkylakeX` when the CPU has
    /// AVX-512 but OpenBLAS loaded AVX2 (or older) kernels.
    ///
    /// Debian's OpenBLAS 0.3.21 detects Sapphire Rapids as Haswell; its SkylakeX kernels take
    /// 1024³ sgemm on two cores from about 124 to 203 GFLOPS. The variable is read only when the
    /// library loads, hence the re-exec. Call this first thing in `main`.
    ///
    /// A pre-set `OPENBLAS_CORETYPE` naming a weaker core (some images export `Haswell`) is
    /// upgraded too, since that is exactly the slow default this guards against; set
    /// `ARPO_KEEP_BLAS_CORE=1` to keep whatever OpenBLAS chose. Nothing happens on CPUs without
    /// AVX-512, and a failed exec carries on with the kernels already loaded.
    public static func reexecWithFastestKernelsIfNeeded() {
        let environment = ProcessInfo.processInfo.environment
        guard environment["ARPO_KEEP_BLAS_CORE"] == nil, environment["ARPO_BLAS_REEXECUTED"] == nil else { return }
        let current = coreName.lowercased()
        guard cpuHasAVX512, !["skylakex", "cooperlake", "sapphirerapids"].contains(current) else { return }
        // Guards against an exec loop if this OpenBLAS ignores the variable.
        setenv("ARPO_BLAS_REEXECUTED", "1", 1)
        let previous = environment[coreTypeVariable]
        setenv(coreTypeVariable, "SkylakeX", 1)
        let arguments = CommandLine.arguments
        var cArguments: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        cArguments.append(nil)
        execv("/proc/self/exe", &cArguments)
        // execv returns only on failure: carry on with the kernels we have.
        if let previous { setenv(coreTypeVariable, previous, 1) } else { unsetenv(coreTypeVariable) }
        for pointer in cArguments { free(pointer) }
    }
}
