import ARPO
import Foundation
import Policy
import Tensor
import ToolEnv

/// Reads a run's JSON config and turns every problem into one `ConfigurationError` that names
/// the file, the key path and what is allowed: unreadable file, malformed JSON, an unknown key
/// (a typo; with the closest known key suggested), a wrong type, or an out-of-range value.
public enum ConfigurationLoader {
    /// Reads and checks the config file at `url`.
    ///
    /// - Parameter overrides: `--set` values, applied in order to the file's JSON before any
    ///   check, so they get the same key, type and range checks as the file.
    public static func load(from url: URL, overrides: [ConfigurationOverride] = []) throws -> TrainingConfiguration {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ConfigurationError("cannot read config \(url.path): \(error.localizedDescription)")
        }
        do { return try decode(data, overrides: overrides) } catch let error as ConfigurationError {
            // An override's own errors already name it; a later one may come from either source.
            if error.description.hasPrefix("--set ") { throw error }
            throw ConfigurationError("\(url.path)\(overrides.isEmpty ? "" : " with --set \(overrides.map(\.dottedKeyPath).joined(separator: ", "))"): \(error.description)")
        }
    }

    /// Parses, applies `overrides`, checks keys and types, decodes and validates.
    public static func decode(_ data: Data, overrides: [ConfigurationOverride] = []) throws -> TrainingConfiguration {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw ConfigurationError("not valid JSON (\((error as NSError).userInfo[NSDebugDescriptionErrorKey] ?? error.localizedDescription))")
        }
        guard var root = object as? [String: Any] else { throw ConfigurationError("the top level must be a JSON object with sections model, tokenizer, env, sft, rl, eval, run") }
        try checkKeys(root, against: schema, path: "")
        var data = data
        if !overrides.isEmpty {
            for override in overrides {
                // The override's key path alone first, so a typo is reported as the override's.
                do { try checkKeys(override.nestedObject, against: schema, path: "") } catch let error as ConfigurationError {
                    throw ConfigurationError("--set \(override.argument): \(error.description)")
                }
                root = try override.applied(to: root)
            }
            try checkKeys(root, against: schema, path: "")
            data = try JSONSerialization.data(withJSONObject: root)
        }
        let configuration: TrainingConfiguration
        do { configuration = try JSONDecoder().decode(TrainingConfiguration.self, from: data) } catch let error as DecodingError {
            throw ConfigurationError(describe(error))
        } catch let error as EnvironmentConfigError {
            throw ConfigurationError("env.\(error.keyPath) \(error.reason)")
        } catch let error as ConfigurationError {
            throw error
        }
        try configuration.validate()
        return configuration
    }

    /// The known key tree: the JSON encoding of the defaults, which writes every key.
    static let schema: [String: Any] = {
        let data = try! JSONEncoder().encode(TrainingConfiguration())
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }()

    /// Maps keyed by task family rather than by field: their decoders check the names.
    static let openMaps: Set<String> = ["env.task_mix", "env.family_difficulty", "env.mcp_servers"]

    /// Allowed values of the string-valued keys, for type errors.
    static let choices: [String: [String]] = [
        "rl.algorithm": Algorithm.allCases.map(\.rawValue),
        "tokenizer.kind": TokenizerConfiguration.Kind.allCases.map(\.rawValue),
        "run.matmul_precision": MatmulPrecision.allCases.map(\.rawValue),
        "rl.schedule": ["constant", "cosine"],
        "sft.schedule": ["constant", "cosine"],
        "rl.branching.rule": BranchRule.allCases.map(\.rawValue),
        "rl.branching.entropy_normalization": EntropyNormalization.allCases.map(\.rawValue),
        "env.call_format": CallFormat.allCases.map(\.rawValue),
    ]

    static func checkKeys(_ object: [String: Any], against known: [String: Any], path: String) throws {
        for key in object.keys.sorted() {
            let keyPath = path.isEmpty ? key : "\(path).\(key)"
            guard let expected = known[key] else {
                let suggestion = closest(to: key, among: Array(known.keys)).map { " (did you mean \(path.isEmpty ? $0 : "\(path).\($0)")?)" } ?? ""
                let allowed = known.keys.sorted().joined(separator: ", ")
                throw ConfigurationError("unknown key \(keyPath)\(suggestion); allowed here: \(allowed)")
            }
            if openMaps.contains(keyPath) { continue }
            if let nested = expected as? [String: Any] {
                guard let value = object[key] as? [String: Any] else {
                    throw ConfigurationError("\(keyPath) must be an object with keys \(nested.keys.sorted().joined(separator: ", "))")
                }
                try checkKeys(value, against: nested, path: keyPath)
            }
        }
    }

    /// The known key nearest to a typo (edit distance ≤ 3), if any.
    static func closest(to key: String, among candidates: [String]) -> String? {
        func distance(_ a: String, _ b: String) -> Int {
            let a = Array(a), b = Array(b)
            var previous = Array(0...b.count)
            for i in 1...max(a.count, 1) where !a.isEmpty {
                var current = [i] + [Int](repeating: 0, count: b.count)
                for j in 1...max(b.count, 1) where !b.isEmpty {
                    current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
                }
                previous = current
            }
            return previous[b.count]
        }
        let best = candidates.map { ($0, distance(key, $0)) }.min { $0.1 < $1.1 }
        guard let best, best.1 <= 3 else { return nil }
        return best.0
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [CodingKey]) -> String {
            codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
        }
        switch error {
        case .typeMismatch(let type, let context):
            return "\(path(context.codingPath)) has the wrong type: expected \(typeName(type))"
        case .valueNotFound(let type, let context):
            return "\(path(context.codingPath)) must not be null: expected \(typeName(type))"
        case .keyNotFound(let key, let context):
            return "\(path(context.codingPath + [key])) is required"
        case .dataCorrupted(let context):
            let keyPath = path(context.codingPath)
            if let options = choices[keyPath] { return "\(keyPath) must be one of \(options.joined(separator: ", "))" }
            return "\(keyPath): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is UInt64.Type: return "an integer"
        case is Double.Type: return "a number"
        case is Bool.Type: return "true or false"
        case is String.Type: return "a string"
        default: return "\(type)"
        }
    }
}
