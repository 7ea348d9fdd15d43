import Crypto
import Foundation

/// A checkpoint that fails verification: a missing or invalid manifest, or a file whose size or
/// SHA-256 differs from it. The message names the file and what is wrong.
public struct CheckpointVerificationError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// `manifest.json`: every file of a checkpoint directory (or of `reference/`) with its size and
/// SHA-256, written last, before the directory is renamed into place. Loading verifies it, so a
/// file that is truncated, zero-filled after a power loss, or rotted on disk is refused by name
/// instead of loading as garbage.
///
///     {"files": {"model/model.safetensors": {"bytes": 4862464, "sha256": "9f86…"}, …},
///      "format": "arpo-checkpoint-manifest"}
public struct CheckpointManifest: Codable, Equatable {
    public static let fileName = "manifest.json"
    static let formatName = "arpo-checkpoint-manifest"

    public struct Entry: Codable, Equatable {
        public var bytes: Int
        /// Lowercase hexadecimal.
        public var sha256: String
    }

    public var format: String
    /// Path relative to the directory ("model/config.json") → size and digest.
    public var files: [String: Entry]

    /// The manifest of files about to be written.
    public init(files: [(path: String, data: Data)]) {
        format = CheckpointManifest.formatName
        self.files = Dictionary(files.map { ($0.path, Entry(bytes: $0.data.count, sha256: CheckpointManifest.sha256($0.data))) }, uniquingKeysWith: { $1 })
    }

    /// Lowercase hexadecimal SHA-256 of `data`.
    public static func sha256(_ data: Data) -> String {
        SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// `files` followed by their manifest: what `DurableWriter.writeDirectory` writes, in order,
    /// so the manifest is the last file written.
    public static func withManifest(_ files: [(path: String, data: Data)]) throws -> [(path: String, data: Data)] {
        files + [(fileName, try CheckpointManifest(files: files).encoded())]
    }

    /// Checks `directory` against its manifest: it must have one, list the `required` files, and
    /// every listed file must exist with the recorded size and SHA-256; a file the manifest does
    /// not list is refused too. Throws naming the first problem.
    public static func verify(_ directory: URL, required: [String] = []) throws {
        let url = directory.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw CheckpointVerificationError("\(directory.path) has no \(fileName)")
        }
        let manifest: CheckpointManifest
        do { manifest = try JSONDecoder().decode(CheckpointManifest.self, from: Data(contentsOf: url)) } catch {
            throw CheckpointVerificationError("\(url.path) is not a valid manifest (\(error.localizedDescription))")
        }
        guard manifest.format == formatName else {
            throw CheckpointVerificationError("\(url.path) has format \"\(manifest.format)\", expected \"\(formatName)\"")
        }
        for path in required where manifest.files[path] == nil {
            throw CheckpointVerificationError("\(url.path) does not list \(path)")
        }
        for (path, entry) in manifest.files.sorted(by: { $0.key < $1.key }) {
            // The manifest is input: a path that leaves the directory is refused, not read.
            guard !path.isEmpty, !path.hasPrefix("/"), !path.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }), path != fileName else {
                throw CheckpointVerificationError("\(url.path) lists an invalid path \"\(path)\"")
            }
            let file = directory.appendingPathComponent(path)
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: file.path), let size = (attributes[.size] as? NSNumber)?.intValue,
                attributes[.type] as? FileAttributeType == .typeRegular
            else { throw CheckpointVerificationError("\(file.path) is missing (listed in \(fileName))") }
            guard size == entry.bytes else {
                throw CheckpointVerificationError("\(file.path) has \(size) bytes, its manifest says \(entry.bytes)")
            }
            let data: Data
            do { data = try Data(contentsOf: file, options: .mappedIfSafe) } catch {
                throw CheckpointVerificationError("\(file.path) cannot be read (\(error.localizedDescription))")
            }
            guard sha256(data) == entry.sha256.lowercased() else {
                throw CheckpointVerificationError("\(file.path) does not match its SHA-256 in \(fileName): the file is corrupt")
            }
        }
        for path in try regularFiles(in: directory) where path != fileName && manifest.files[path] == nil {
            throw CheckpointVerificationError("\(directory.appendingPathComponent(path).path) is not listed in \(fileName)")
        }
    }

    /// Verifies the manifest that covers a model directory, when there is one: the directory's
    /// own (`reference/`), or its checkpoint's (`checkpoints/step-N/model`). A model directory
    /// from elsewhere has none, and is only checked as it loads (shapes, non-finite values).
    public static func verifyIfPresent(modelDirectory directory: URL) throws {
        let parent = directory.deletingLastPathComponent()
        if FileManager.default.fileExists(atPath: directory.appendingPathComponent(fileName).path) {
            try verify(directory)
        } else if directory.lastPathComponent == "model", FileManager.default.fileExists(atPath: parent.appendingPathComponent(fileName).path) {
            try verify(parent)
        }
    }

    /// Relative paths of the regular files under `directory`.
    static func regularFiles(in directory: URL) throws -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: directory.path) else {
            throw CheckpointVerificationError("\(directory.path) cannot be listed")
        }
        var paths: [String] = []
        while let path = enumerator.nextObject() as? String {
            if enumerator.fileAttributes?[.type] as? FileAttributeType == .typeRegular { paths.append(path) }
        }
        return paths
    }
}
