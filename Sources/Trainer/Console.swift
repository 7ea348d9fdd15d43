import ARPO
import Foundation

/// Progress output: one live, rewritten line per step on a terminal; plain lines otherwise (logs,
/// CI, pipes), at most one per `plainProgressInterval` seconds, as tqdm writes to a file, so that
/// a long run's log stays readable.
public final class Console {
    let isTerminal: Bool
    let quiet: Bool
    /// Prints nothing at all: the console of an MPI rank other than 0, whose run rank 0 reports.
    let silent: Bool
    private var lineOpen = false
    /// Off a terminal, the seconds between progress lines (0: every one).
    public var plainProgressInterval = 10.0
    /// When the last plain progress line was printed (monotonic clock).
    private var lastPlainProgress: Double?

    /// - Parameter plain: plain progress lines even on a terminal: `mpirun` hands each rank a
    ///   pseudo-terminal and forwards its output line by line, where a rewritten line would show
    ///   as escape codes.
    public init(quiet: Bool = false, silent: Bool = false, plain: Bool = false) {
        isTerminal = !plain && isatty(STDOUT_FILENO) != 0
        self.quiet = quiet || silent
        self.silent = silent
    }

    /// The live progress line. Off a terminal it is printed when `always` (an evaluation, a
    /// phase's first or last step), for the first line, or once `plainProgressInterval` seconds
    /// have passed since the last one printed.
    public func progress(_ text: String, always: Bool = false) {
        guard !quiet else { return }
        if isTerminal {
            FileHandle.standardOutput.write(Data(("\r\u{1B}[K" + text).utf8))
            lineOpen = true
            return
        }
        let now = monotonicSeconds()
        guard always || lastPlainProgress.map({ now - $0 >= plainProgressInterval }) ?? true else { return }
        lastPlainProgress = now
        print(text)
        fflush(stdout)
    }

    /// A line that stays.
    public func line(_ text: String) {
        guard !quiet else { return }
        endOpenLine()
        print(text)
        fflush(stdout)
    }

    /// A line that stays and is printed even when quiet: the run's final result.
    public func summary(_ text: String) {
        guard !silent else { return }
        endOpenLine()
        print(text)
        fflush(stdout)
    }

    /// A warning on standard error.
    public func warning(_ text: String) {
        guard !silent else { return }
        endOpenLine()
        FileHandle.standardError.write(Data("warning: \(text)\n".utf8))
    }

    /// Ends the live progress line, if one is open, so that the next output starts a line.
    private func endOpenLine() {
        guard lineOpen else { return }
        FileHandle.standardOutput.write(Data("\n".utf8))
        lineOpen = false
    }
}

/// "3m12s" style durations.
func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "?" }
    let total = Int(seconds.rounded())
    if total >= 3600 { return "\(total / 3600)h\(String(format: "%02d", (total % 3600) / 60))m" }
    if total >= 60 { return "\(total / 60)m\(String(format: "%02d", total % 60))s" }
    return "\(total)s"
}

/// The first SIGINT or SIGTERM the process received (0 until then), written by the signal
/// handler, which as a C function pointer can reach no context but a global. A process has one
/// set of signal handlers, so this is its one piece of process-wide state.
private let receivedSignalNumber: UnsafeMutablePointer<sig_atomic_t> = {
    let pointer = UnsafeMutablePointer<sig_atomic_t>.allocate(capacity: 1)
    pointer.initialize(to: 0)
    return pointer
}()

/// Set by SIGINT or SIGTERM; the training loop checks it between steps, saves a checkpoint and
/// stops.
public final class StopSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var received: Int32?

    public init() {}

    /// Routes SIGINT and SIGTERM here instead of killing the process. The handler only stores
    /// the signal's number, whichever thread the kernel delivers it to: under `mpirun`, MPI's
    /// own threads do not block the signals, so a handler that relies on every thread blocking
    /// them (a dispatch source) would lose the signals those threads take.
    public func install() {
        _ = receivedSignalNumber.pointee
        for number in [SIGINT, SIGTERM] {
            // glibc's signal() restarts interrupted system calls (SA_RESTART).
            _ = Glibc.signal(number) { number in
                if receivedSignalNumber.pointee == 0 { receivedSignalNumber.pointee = number }
            }
        }
    }

    func record(_ number: Int32) {
        lock.lock()
        if received == nil { received = number }
        lock.unlock()
    }

    /// The signal received, if any.
    public var signal: Int32? {
        lock.lock()
        defer { lock.unlock() }
        if received == nil, receivedSignalNumber.pointee != 0 { received = receivedSignalNumber.pointee }
        return received
    }

    /// Pretend a signal arrived (tests).
    public func request() { record(SIGINT) }
}
