import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A tool server's process: started with `posix_spawnp` in a process group of its own, its
/// standard input and output as pipes for the MCP stdio transport, and its standard error kept
/// (the last few kilobytes) for error messages.
///
/// Its own process group keeps a terminal's Ctrl-C, which goes to the whole foreground group,
/// away from the servers: the trainer finishes its step and checkpoints, then stops them itself.
/// `terminate()` signals the whole group, so the helpers a server started go too.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    /// The parent's ends: write to the child's stdin, read its stdout.
    let inputWrite: Int32
    let outputRead: Int32
    private let lock = NSLock()
    private var exitStatus: Int32?
    private var errorTail = Data()
    private let errorClosed = DispatchSemaphore(value: 0)
    /// The most standard-error bytes kept.
    static let errorTailBytes = 4096

    /// Starts `command` (searched on `PATH` when it has no slash) with `arguments`, and the
    /// trainer's environment plus `environment`.
    /// - Throws: `ToolServerError` naming the command and the system's reason.
    init(command: String, arguments: [String], environment: [String: String]) throws {
        var toChild: [Int32] = [-1, -1], fromChild: [Int32] = [-1, -1], errors: [Int32] = [-1, -1]
        // Close-on-exec everywhere: a server started later must not inherit these ends (a
        // server never sees end-of-file on stdin while another process holds its write end).
        // dup2 onto 0, 1 and 2 in the child clears the flag on the copies it keeps.
        guard pipe(&toChild) == 0, pipe(&fromChild) == 0, pipe(&errors) == 0 else {
            throw ToolServerError("cannot create pipes for \(command): \(String(cString: strerror(errno)))")
        }
        for descriptor in toChild + fromChild + errors { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errors[1], 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The trainer ignores SIGINT and SIGTERM (it handles them between steps), and ignored
        // signals survive exec: the server gets the default actions back.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGPIPE, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF))

        var merged = ProcessInfo.processInfo.environment
        for (key, value) in environment { merged[key] = value }
        let argv = ([command] + arguments).map { strdup($0) } + [nil]
        let envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var child: pid_t = 0
        let status = posix_spawnp(&child, command, &actions, &attributes, argv, envp)
        for descriptor in [toChild[0], fromChild[1], errors[1]] { close(descriptor) }
        guard status == 0 else {
            for descriptor in [toChild[1], fromChild[0], errors[0]] { close(descriptor) }
            throw ToolServerError("cannot start \(command): \(String(cString: strerror(status)))")
        }
        pid = child
        inputWrite = toChild[1]
        outputRead = fromChild[0]
        let errorRead = errors[0]
        // Drains standard error so a chatty server never blocks on a full pipe.
        Thread.detachNewThread { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = read(errorRead, &buffer, buffer.count)
                if count <= 0 { break }
                lock.lock()
                errorTail.append(contentsOf: buffer[0..<count])
                if errorTail.count > ChildProcess.errorTailBytes { errorTail = errorTail.suffix(ChildProcess.errorTailBytes) }
                lock.unlock()
            }
            close(errorRead)
            errorClosed.signal()
        }
    }

    /// Waits up to `timeout` seconds for the server's standard error to close (it has exited and
    /// everything it wrote has been read), so an error message can quote its last words.
    func waitForStandardErrorToClose(timeout: Double) {
        if errorClosed.wait(timeout: .now() + timeout) == .success { errorClosed.signal() }
    }

    /// The end of what the server wrote to standard error, for error messages.
    var standardErrorTail: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: errorTail, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Whether the process is still running (reaps it once it has exited).
    var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        if exitStatus != nil { return false }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid || (result < 0 && errno == ECHILD) {
            exitStatus = status
            return false
        }
        return true
    }

    /// How it ended, in words (`exit code 3`, `signal 9`), or nil while it runs.
    var exitDescription: String? {
        guard !isRunning else { return nil }
        lock.lock()
        let recorded = exitStatus
        lock.unlock()
        guard let status = recorded else { return nil }
        let signal = status & 0x7f
        return signal == 0 ? "exit code \((status >> 8) & 0xff)" : "signal \(signal)"
    }

    /// Closes its stdin, sends SIGTERM to its process group, and SIGKILL after `grace` seconds
    /// if it is still there; returns once it is reaped, so it leaves no zombie and no orphan.
    func terminate(grace: Double = 2) {
        close(inputWrite)
        if isRunning {
            kill(-pid, SIGTERM)
            let deadline = Date().addingTimeInterval(grace)
            while isRunning && Date() < deadline { usleep(10_000) }
            if isRunning {
                kill(-pid, SIGKILL)
                while isRunning { usleep(10_000) }
            }
        }
        // Whatever else is left of its group (helpers that outlived it).
        kill(-pid, SIGKILL)
        close(outputRead)
    }
}

/// A tool server that cannot be started or used: a configuration-level error (exit 2 at start).
public struct ToolServerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
