import Foundation

/// A malformed or unreadable safetensors file. The message names the file and what is wrong.
public struct SafetensorsError: Error, CustomStringConvertible, Equatable {
    public let description: String
    init(_ path: String, _ problem: String) { description = "\(path): \(problem)" }
}

/// Reads and writes the safetensors format that Hugging Face uses:
/// an 8-byte little-endian header length N; N bytes of JSON mapping each tensor name to its
/// `dtype`, `shape` and `data_offsets` [begin, end) into the byte buffer that follows (plus an
/// optional `__metadata__` object of strings); then the raw little-endian data.
///
/// Reading validates everything before trusting it: the header length against the file size,
/// the JSON, each dtype, that the offsets match the shape's byte size, and that the tensors cover
/// the buffer exactly, without overlaps or holes. Any violation throws; nothing crashes.
public enum Safetensors {
    /// The contents of a safetensors file.
    public struct Contents {
        /// Tensors by name; F32 loads as float32, F64 as float64.
        public var tensors: [String: Tensor]
        /// The `__metadata__` strings.
        public var metadata: [String: String]

        /// Each tensor holding NaN or infinite values, by name, with how many, sorted by name.
        public var nonFiniteTensors: [(name: String, count: Int, of: Int)] {
            tensors.compactMap { name, tensor in
                let count = tensor.nonFiniteCount
                return count == 0 ? nil : (name, count, tensor.count)
            }.sorted { $0.name < $1.name }
        }

        /// Throws naming every tensor with NaN or infinite values and how many it holds: weights
        /// or moments like that are corrupt, and training or sampling from them gives garbage.
        public func requireFinite(path: String) throws {
            let bad = nonFiniteTensors
            guard !bad.isEmpty else { return }
            let listed = bad.map { "\($0.name) has \($0.count) of \($0.of)" }.joined(separator: ", ")
            throw SafetensorsError(path, "non-finite values (NaN or infinity): \(listed)")
        }
    }

    /// Header length above which a file is rejected (the reference implementation's limit).
    static let maximumHeaderBytes = 100_000_000

    public static func read(_ url: URL) throws -> Contents {
        let path = url.path
        let data: Data
        do { data = try Data(contentsOf: url, options: .mappedIfSafe) } catch {
            throw SafetensorsError(path, "cannot read file (\(error.localizedDescription))")
        }
        return try decode(data, path: path)
    }

    /// Parses safetensors bytes; `path` only labels errors.
    public static func decode(_ data: Data, path: String = "<memory>") throws -> Contents {
        guard data.count >= 8 else { throw SafetensorsError(path, "truncated: \(data.count) bytes, fewer than the 8-byte header length") }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | (UInt64($1.element) << (8 * UInt64($1.offset))) }
        guard headerLength <= UInt64(maximumHeaderBytes) else { throw SafetensorsError(path, "header length \(headerLength) exceeds the \(maximumHeaderBytes)-byte limit") }
        guard UInt64(data.count) >= 8 + headerLength else {
            throw SafetensorsError(path, "truncated: header claims \(headerLength) bytes but the file has \(data.count - 8) after the length")
        }
        let headerData = data.subdata(in: (data.startIndex + 8)..<(data.startIndex + 8 + Int(headerLength)))
        guard let header = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            throw SafetensorsError(path, "header is not a JSON object")
        }
        let bufferStart = data.startIndex + 8 + Int(headerLength)
        let bufferLength = data.count - 8 - Int(headerLength)
        var metadata: [String: String] = [:]
        var entries: [(name: String, dtype: DType, shape: [Int], begin: Int, end: Int)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let object = value as? [String: Any] else { throw SafetensorsError(path, "__metadata__ is not an object") }
                for (key, entry) in object {
                    guard let text = entry as? String else { throw SafetensorsError(path, "__metadata__.\(key) is not a string") }
                    metadata[key] = text
                }
                continue
            }
            guard let info = value as? [String: Any] else { throw SafetensorsError(path, "entry \(name) is not an object") }
            guard let dtypeName = info["dtype"] as? String else { throw SafetensorsError(path, "\(name) has no dtype") }
            let dtype: DType
            switch dtypeName {
            case "F32": dtype = .float32
            case "F64": dtype = .float64
            default: throw SafetensorsError(path, "\(name) has dtype \(dtypeName); only F32 and F64 are supported")
            }
            guard let shapeValues = info["shape"] as? [Any], let shape = integers(shapeValues), shape.allSatisfy({ $0 >= 0 }) else {
                throw SafetensorsError(path, "\(name) has an invalid shape \(info["shape"].map { "\($0)" } ?? "(none)")")
            }
            guard let offsetValues = info["data_offsets"] as? [Any], let offsets = integers(offsetValues), offsets.count == 2 else {
                throw SafetensorsError(path, "\(name) has invalid data_offsets \(info["data_offsets"].map { "\($0)" } ?? "(none)")")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, end >= begin else { throw SafetensorsError(path, "\(name) has data_offsets [\(begin), \(end)] out of order") }
            var elementCount = 1
            for dimension in shape {
                let (product, overflow) = elementCount.multipliedReportingOverflow(by: dimension)
                guard !overflow else { throw SafetensorsError(path, "\(name) has an impossibly large shape \(shape)") }
                elementCount = product
            }
            guard end - begin == elementCount * dtype.byteCount else {
                throw SafetensorsError(path, "\(name): shape \(shape) of \(dtypeName) needs \(elementCount * dtype.byteCount) bytes but data_offsets span \(end - begin)")
            }
            guard end <= bufferLength else {
                throw SafetensorsError(path, "truncated: \(name) ends at byte \(end) of the data but the file holds \(bufferLength)")
            }
            entries.append((name, dtype, shape, begin, end))
        }
        // The tensors must tile the buffer exactly: no overlaps, no holes.
        entries.sort { $0.begin < $1.begin || ($0.begin == $1.begin && $0.end < $1.end) }
        var cursor = 0
        for entry in entries {
            guard entry.begin == cursor else {
                throw SafetensorsError(path, entry.begin < cursor ? "\(entry.name) overlaps the previous tensor's data" : "hole in the data before \(entry.name) (bytes \(cursor)..<\(entry.begin))")
            }
            cursor = entry.end
        }
        guard cursor == bufferLength else { throw SafetensorsError(path, "\(bufferLength - cursor) trailing bytes after the last tensor") }

        var tensors: [String: Tensor] = [:]
        for entry in entries {
            let tensor = Tensor(shape: entry.shape, dtype: entry.dtype, zeroed: false)
            data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
                let source = raw.baseAddress! + (bufferStart - data.startIndex) + entry.begin
                // Little-endian on disk and in memory on every platform this runs on.
                tensor.storage.base.copyMemory(from: source, byteCount: entry.end - entry.begin)
            }
            tensors[entry.name] = tensor
        }
        return Contents(tensors: tensors, metadata: metadata)
    }

    private static func integers(_ values: [Any]) -> [Int]? {
        var result: [Int] = []
        for value in values {
            guard let number = value as? NSNumber, let exact = Int(exactly: number.doubleValue) else { return nil }
            result.append(exact)
        }
        return result
    }

    /// Serialises tensors in the given order (float32 as F32, float64 as F64), with the header
    /// padded by spaces to a multiple of 8 bytes as Hugging Face's writer does.
    public static func encode(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:]) -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for (name, tensor) in tensors {
            precondition(name != "__metadata__", "a tensor cannot be named __metadata__")
            let bytes = tensor.count * tensor.dtype.byteCount
            header[name] = ["dtype": tensor.dtype == .float32 ? "F32" : "F64", "shape": tensor.shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        var headerData = try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while headerData.count % 8 != 0 { headerData.append(UInt8(ascii: " ")) }
        var result = Data(capacity: 8 + headerData.count + offset)
        var length = UInt64(headerData.count).littleEndian
        withUnsafeBytes(of: &length) { result.append(contentsOf: $0) }
        result.append(headerData)
        for (_, tensor) in tensors {
            let dense = tensor.materialized()
            result.append(Data(bytes: dense.storage.base + dense.offset * dense.dtype.byteCount, count: dense.count * dense.dtype.byteCount))
        }
        return result
    }

    /// Writes atomically: to a temporary file in the same directory, then renamed over `url`, so
    /// a crash never leaves a half-written file under the final name.
    public static func write(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:], to url: URL) throws {
        try encode(tensors, metadata: metadata).write(to: url, options: .atomic)
    }
}
