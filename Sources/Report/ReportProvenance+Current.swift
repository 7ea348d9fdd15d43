import Foundation
import Tensor

extension ReportProvenance {
    /// This machine and the git work tree around the current directory, now.
    ///
    /// - Parameters:
    ///   - command: The command that reproduces the document, if the caller knows it.
    ///   - ignoring: Files whose changes do not count as uncommitted (the document being written
    ///     is one: a second run of `scripts/compare.sh` rewrites a tracked `docs/RESULTS.md`).
    public static func current(command: String?, ignoring: [URL] = []) -> ReportProvenance {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm 'UTC'"
        let commit = git(["rev-parse", "HEAD"])
        var hasUncommittedChanges: Bool?
        if commit != nil, let top = git(["rev-parse", "--show-toplevel"]), let status = git(["status", "--porcelain", "--untracked-files=no"]) {
            let ignored = Set(ignoring.map { $0.standardizedFileURL.resolvingSymlinksInPath().path })
            // Porcelain lines are "XY PATH" (or "XY OLD -> NEW") with paths from the top level.
            let changed = status.split(separator: "\n").map { line -> String in
                let path = String(line.dropFirst(3))
                return path.components(separatedBy: " -> ").last ?? path
            }
            let topURL = URL(fileURLWithPath: top).resolvingSymlinksInPath()
            hasUncommittedChanges = changed.contains { !ignored.contains(topURL.appendingPathComponent($0).standardizedFileURL.path) }
        }
        return ReportProvenance(
            cpuModel: BLASRuntime.cpuModel, cores: ProcessInfo.processInfo.activeProcessorCount,
            commit: commit, hasUncommittedChanges: hasUncommittedChanges, command: command, date: formatter.string(from: Date()))
    }

    /// git's standard output, trimmed, or nil when git is missing or fails (outside a work tree).
    static func git(_ arguments: [String]) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
