import Foundation

/// A JSON value: what user files (task files, demonstrations), JSON tool calls and tool input
/// schemas are made of.
///
/// Decoded with `JSONDecoder`, which tells `true` from `1` on every platform (Foundation's
/// `JSONSerialization` hands both back as `NSNumber` on some), and rendered with sorted keys, so
/// the same value always has the same text.
public enum JSONValue: Equatable, Sendable, Codable {
    case null
    case bool(Bool)
    /// Every JSON number, integral or not (exact for integers up to 2^53).
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case let .bool(value): try container.encode(value)
        case let .number(value): try container.encode(value)
        case let .string(value): try container.encode(value)
        case let .array(value): try container.encode(value)
        case let .object(value): try container.encode(value)
        }
    }

    /// Parses one JSON text (any value at the top level).
    /// - Throws: `JSONValueError` with the decoder's reason when `data` is not JSON.
    public static func parse(_ data: Data) throws -> JSONValue {
        do {
            return try JSONDecoder().decode(JSONValue.self, from: data)
        } catch let error as DecodingError {
            throw JSONValueError(reason: JSONValue.reason(error))
        } catch {
            throw JSONValueError(reason: "\(error)")
        }
    }

    /// Parses one JSON text given as a string.
    public static func parse(_ text: String) throws -> JSONValue { try parse(Data(text.utf8)) }

    /// Compact JSON with sorted keys: `{"arguments":{"value":3},"name":"convert"}`. Integral
    /// numbers print without a fraction (`3`, not `3.0`).
    public var compactText: String {
        switch self {
        case .null: return "null"
        case let .bool(value): return value ? "true" : "false"
        case let .number(value): return JSONValue.numberText(value)
        case let .string(value): return JSONValue.quoted(value)
        case let .array(values): return "[" + values.map(\.compactText).joined(separator: ",") + "]"
        case let .object(members):
            return "{" + members.keys.sorted().map { JSONValue.quoted($0) + ":" + members[$0]!.compactText }.joined(separator: ",") + "}"
        }
    }

    /// The string, when this is one.
    public var stringValue: String? {
        if case let .string(value) = self { return value }
        return nil
    }

    /// The members, when this is an object.
    public var objectValue: [String: JSONValue]? {
        if case let .object(value) = self { return value }
        return nil
    }

    /// The elements, when this is an array.
    public var arrayValue: [JSONValue]? {
        if case let .array(value) = self { return value }
        return nil
    }

    /// The JSON type's name as JSON Schema spells it (`integer` for an integral number).
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case let .number(value): return value.rounded() == value && abs(value) < 9.0e15 ? "integer" : "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }

    static func numberText(_ value: Double) -> String {
        if value.rounded() == value, abs(value) < 9.0e15 { return String(Int64(value)) }
        return "\(value)"
    }

    static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                if scalar.value < 0x20 {
                    result += String(format: "\\u%04x", scalar.value)
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }

    /// A decoding error in words, without Swift's type names.
    static func reason(_ error: DecodingError) -> String {
        switch error {
        case let .dataCorrupted(context):
            let underlying = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            return "not valid JSON" + (underlying.map { " (\($0))" } ?? "")
        default:
            return "not valid JSON"
        }
    }
}

/// Text that is not JSON.
public struct JSONValueError: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }
}
