import Foundation

#if canImport(Glibc)
import Glibc
private let systemWrite = Glibc.write
private let systemRename = Glibc.rename
#elseif canImport(Darwin)
import Darwin
private let systemWrite = Darwin.write
private let systemRename = Darwin.rename
#endif

/// A file or directory that could not be written. The message names the path and the system's
/// reason (`No space left on device`, `Permission denied`).
public struct FileWriteError: Error, CustomStringConvertible, Equatable {
    public let path: String
    /// The `errno` of the failing call.
    public let code: Int32
    public let operation: String

    public init(_ operation: String, _ path: String, code: Int32) {
        self.operation = operation
        self.path = path
        self.code = code
    }

    public var description: String { "cannot \(operation) \(path): \(String(cString: strerror(code)))" }
}

/// Writes files so that they survive power loss and host crashes, not only a killed process.
///
/// A rename is atomic against a killed process, but after a power loss a renamed file can be
/// empty or partial unless its data reached the disk first, and the rename itself is lost
/// unless the directory holding it was synced (issue 33). So every file is fsynced after it is
/// written, and a directory is fsynced after an entry is created, renamed or replaced in it.
///
/// Plain POSIX calls rather than `Data.write(options: .atomic)`: Foundation does not fsync, and
/// its errors do not always carry the path and the system's reason.
public struct DurableWriter {
    /// The seam for tests of write failures (disk full, permission): given a file about to be
    /// written, or the destination of a rename about to be made, an `errno` to fail with, or nil
    /// to go on. A failing file is left half written, as a full disk leaves it; a failing rename
    /// is not made.
    public var fault: ((URL) -> Int32?)?

    /// A durable step taken, in order: what the tests of the write order observe.
    public enum Event: Equatable {
        case fileSynchronized(String)
        case directorySynchronized(String)
        case renamed(from: String, to: String)
    }

    /// Called after each fsync and rename, with its paths.
    public var observer: ((Event) -> Void)?

    public init(fault: ((URL) -> Int32?)? = nil, observer: ((Event) -> Void)? = nil) {
        self.fault = fault
        self.observer = observer
    }

    /// Writes `data` to `url` (created, or truncated), then fsyncs it.
    public func write(_ data: Data, to url: URL) throws {
        let path = url.path
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw FileWriteError("create", path, code: errno) }
        var closed = false
        defer { if !closed { close(descriptor) } }
        let injected = fault?(url)
        let length = injected == nil ? data.count : data.count / 2
        try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            var written = 0
            while written < length {
                let result = systemWrite(descriptor, bytes.baseAddress! + written, length - written)
                if result < 0 {
                    if errno == EINTR { continue }
                    throw FileWriteError("write", path, code: errno)
                }
                written += result
            }
        }
        if let injected { throw FileWriteError("write", path, code: injected) }
        guard fsync(descriptor) == 0 else { throw FileWriteError("fsync", path, code: errno) }
        observer?(.fileSynchronized(path))
        closed = true
        // close can report a deferred write error (NFS); the data is not known to be safe then.
        guard close(descriptor) == 0 else { throw FileWriteError("close", path, code: errno) }
    }

    /// Fsyncs an open file (an append-only log), so what was written to it so far is durable.
    public func synchronize(_ handle: FileHandle, path: URL) throws {
        guard fsync(handle.fileDescriptor) == 0 else { throw FileWriteError("fsync", path.path, code: errno) }
        observer?(.fileSynchronized(path.path))
    }

    /// Fsyncs a directory, so the entries created, renamed or removed in it so far are durable.
    public func synchronizeDirectory(_ url: URL) throws {
        let descriptor = open(url.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw FileWriteError("open directory", url.path, code: errno) }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw FileWriteError("fsync directory", url.path, code: errno) }
        observer?(.directorySynchronized(url.path))
    }

    /// Creates a directory (its parent must exist).
    public func makeDirectory(_ url: URL) throws {
        guard mkdir(url.path, 0o755) == 0 else { throw FileWriteError("create directory", url.path, code: errno) }
    }

    /// Renames `source` to `destination`, replacing a file (not a non-empty directory) there.
    public func rename(_ source: URL, to destination: URL) throws {
        if let injected = fault?(destination) { throw FileWriteError("rename \(source.path) to", destination.path, code: injected) }
        guard systemRename(source.path, destination.path) == 0 else {
            throw FileWriteError("rename \(source.path) to", destination.path, code: errno)
        }
        observer?(.renamed(from: source.path, to: destination.path))
    }

    /// Replaces the file at `url` atomically and durably: the bytes go to a temporary file beside
    /// it, which is fsynced and renamed over `url`; then the directory is fsynced. After a crash
    /// `url` holds either its old contents or `data`, never a mixture.
    public func replace(_ url: URL, with data: Data) throws {
        let directory = url.deletingLastPathComponent()
        let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).partial-\(getpid())")
        do {
            try write(data, to: temporary)
            try rename(temporary, to: url)
        } catch {
            unlink(temporary.path)
            throw error
        }
        try synchronizeDirectory(directory)
    }

    /// Writes a directory of files durably and atomically: into a temporary directory beside
    /// `destination`, each file fsynced, then each directory in it, then renamed into place and
    /// the parent fsynced. `files` are paths relative to `destination` ("model/config.json"),
    /// each directory named before the files in it is created as needed. An existing
    /// `destination` is replaced: moved aside (`setAsideName`), then removed once the new one is
    /// in place. On a failure the temporary directory is removed and `destination` is left as it
    /// was.
    ///
    /// Between the two renames no directory is at `destination`: a crash there (or a failure of
    /// both the rename into place and the rename back) leaves the old one only under its aside
    /// name, complete. `restoreSetAsideDirectories(in:)` puts it back.
    public func writeDirectory(_ files: [(path: String, data: Data)], to destination: URL) throws {
        let parent = destination.deletingLastPathComponent()
        let name = destination.lastPathComponent
        let temporary = parent.appendingPathComponent(".\(name).partial-\(getpid())")
        let fileManager = FileManager.default
        try? fileManager.removeItem(at: temporary)
        do {
            try makeDirectory(temporary)
            // Relative paths of the directories made, "" for the top.
            var directories = [""]
            for (path, data) in files {
                let components = path.split(separator: "/").map(String.init)
                for depth in 1..<max(components.count, 1) {
                    let folder = components.prefix(depth).joined(separator: "/")
                    if !directories.contains(folder) {
                        try makeDirectory(temporary.appendingPathComponent(folder))
                        directories.append(folder)
                    }
                }
                try write(data, to: temporary.appendingPathComponent(path))
            }
            // Innermost first, so each directory's entries are durable before its parent's.
            for folder in directories.reversed() {
                try synchronizeDirectory(folder.isEmpty ? temporary : temporary.appendingPathComponent(folder))
            }
        } catch {
            try? fileManager.removeItem(at: temporary)
            throw error
        }
        var replaced: URL?
        if fileManager.fileExists(atPath: destination.path) {
            let aside = parent.appendingPathComponent(DurableWriter.setAsideName(name))
            try? fileManager.removeItem(at: aside)
            try rename(destination, to: aside)
            replaced = aside
        }
        do { try rename(temporary, to: destination) } catch {
            if let replaced { try? rename(replaced, to: destination) }
            try? fileManager.removeItem(at: temporary)
            throw error
        }
        try synchronizeDirectory(parent)
        if let replaced { try? fileManager.removeItem(at: replaced) }
    }

    /// The name `writeDirectory` moves an existing `name` to while the new one is renamed into
    /// place: hidden, and unique to this process.
    static func setAsideName(_ name: String) -> String { ".\(name)\(setAsideMarker)\(getpid())" }
    static let setAsideMarker = ".replaced-"

    /// Puts back, under their own names, the directories of `parent` that `writeDirectory` had
    /// moved aside when a crash (or a failed rename) stopped it before the new one was renamed
    /// into place, so that nothing is at their name. The set-aside copy is the complete old
    /// directory; the new one, if it was complete, is still at its temporary name and is left
    /// for pruning. Where a process crashed there more than once, the most recently written
    /// set-aside copy (by its modification time) wins. Returns the directories restored; fsyncs `parent` after.
    @discardableResult
    public func restoreSetAsideDirectories(in parent: URL) throws -> [URL] {
        let fileManager = FileManager.default
        guard let entries = try? fileManager.contentsOfDirectory(atPath: parent.path) else { return [] }
        var candidates: [String: [(entry: String, changed: Date)]] = [:]
        for entry in entries where entry.hasPrefix(".") {
            guard let marker = entry.range(of: DurableWriter.setAsideMarker, options: .backwards) else { continue }
            let name = String(entry[entry.index(after: entry.startIndex)..<marker.lowerBound])
            guard !name.isEmpty, !fileManager.fileExists(atPath: parent.appendingPathComponent(name).path) else { continue }
            let attributes = try? fileManager.attributesOfItem(atPath: parent.appendingPathComponent(entry).path)
            candidates[name, default: []].append((entry, attributes?[.modificationDate] as? Date ?? .distantPast))
        }
        var restored: [URL] = []
        for (name, copies) in candidates.sorted(by: { $0.key < $1.key }) {
            let newest = copies.max { ($0.changed, $0.entry) < ($1.changed, $1.entry) }!
            let destination = parent.appendingPathComponent(name)
            try rename(parent.appendingPathComponent(newest.entry), to: destination)
            restored.append(destination)
        }
        if !restored.isEmpty { try synchronizeDirectory(parent) }
        return restored
    }
}
