/// A tool the policy can call: its name, what it does and the JSON Schema of its arguments, as an
/// MCP server lists it (`tools/list`) or as the built-in tools describe themselves.
public struct ToolDescription: Equatable, Sendable {
    /// The name the policy writes in a call.
    public let name: String
    /// What the tool does, in the server's words (for logs and docs; the policy never sees it).
    public let description: String
    /// The JSON Schema of the arguments object (`{"type": "object", "properties": …}`).
    public let inputSchema: JSONValue

    public init(name: String, description: String, inputSchema: JSONValue) {
        self.name = name
        self.description = description
        self.inputSchema = inputSchema
    }

    /// The argument names in the order a compact call `name(a, b)` lists them: the schema's
    /// `required` array, in its order (JSON objects have no order, arrays do); a schema with no
    /// required argument and exactly one property takes that one.
    public var compactArgumentNames: [String] {
        let schema = inputSchema.objectValue ?? [:]
        let required = (schema["required"]?.arrayValue ?? []).compactMap(\.stringValue)
        if !required.isEmpty { return required }
        let properties = schema["properties"]?.objectValue ?? [:]
        return properties.count == 1 ? Array(properties.keys) : []
    }

    /// The JSON Schema type of argument `name`, when the schema states one.
    func argumentType(_ name: String) -> String? {
        let property = inputSchema.objectValue?["properties"]?.objectValue?[name]?.objectValue
        if let type = property?["type"]?.stringValue { return type }
        // ["string", "null"] and the like: the first non-null type.
        return property?["type"]?.arrayValue?.compactMap(\.stringValue).first { $0 != "null" }
    }
}

/// Checks a value against a JSON Schema: the keywords tool input schemas use.
///
/// Supported: `type` (a name or a list of names), `properties`, `required`,
/// `additionalProperties` (false or a schema), `items`, `enum`, `const`, `minimum`, `maximum`,
/// `exclusiveMinimum`, `exclusiveMaximum`, `minLength`, `maxLength`, `minItems`, `maxItems`,
/// `anyOf`, `oneOf` and `allOf`. Other keywords (`format`, `pattern`, `$ref`, descriptions) are
/// not checked: a call they would reject reaches the tool, whose own error result then becomes
/// the observation.
public enum JSONSchemaValidator {
    /// Nil when `value` satisfies `schema`, else the first violation in words, with the path of
    /// the offending member (`arguments.value must be a number, got string`).
    public static func violation(of value: JSONValue, against schema: JSONValue, path: String = "arguments") -> String? {
        guard case let .object(rules) = schema else { return nil }  // `true`, or no schema: anything goes
        if let types = rules["type"] {
            let allowed = types.arrayValue?.compactMap(\.stringValue) ?? types.stringValue.map { [$0] } ?? []
            if !allowed.isEmpty && !allowed.contains(where: { matches(value, type: $0) }) {
                return "\(path) must be \(allowed.joined(separator: " or ")), got \(value.typeName)"
            }
        }
        if let options = rules["enum"]?.arrayValue, !options.contains(value) {
            return "\(path) must be one of \(options.map(\.compactText).joined(separator: ", "))"
        }
        if let constant = rules["const"], constant != value {
            return "\(path) must be \(constant.compactText)"
        }
        if let problem = numberViolation(value, rules, path) ?? stringViolation(value, rules, path) { return problem }
        if let problem = arrayViolation(value, rules, path) ?? objectViolation(value, rules, path) { return problem }
        return combinationViolation(value, rules, path)
    }

    static func matches(_ value: JSONValue, type: String) -> Bool {
        switch (type, value) {
        case ("null", .null), ("boolean", .bool), ("number", .number), ("string", .string), ("array", .array), ("object", .object):
            return true
        case ("integer", .number): return value.typeName == "integer"
        default: return false
        }
    }

    static func numberViolation(_ value: JSONValue, _ rules: [String: JSONValue], _ path: String) -> String? {
        guard case let .number(number) = value else { return nil }
        func bound(_ key: String) -> Double? {
            if case let .number(limit)? = rules[key] { return limit }
            return nil
        }
        if let limit = bound("minimum"), number < limit { return "\(path) must be at least \(JSONValue.numberText(limit))" }
        if let limit = bound("maximum"), number > limit { return "\(path) must be at most \(JSONValue.numberText(limit))" }
        if let limit = bound("exclusiveMinimum"), number <= limit { return "\(path) must be above \(JSONValue.numberText(limit))" }
        if let limit = bound("exclusiveMaximum"), number >= limit { return "\(path) must be below \(JSONValue.numberText(limit))" }
        return nil
    }

    static func stringViolation(_ value: JSONValue, _ rules: [String: JSONValue], _ path: String) -> String? {
        guard case let .string(text) = value else { return nil }
        if case let .number(limit)? = rules["minLength"], Double(text.count) < limit {
            return "\(path) must have at least \(JSONValue.numberText(limit)) characters"
        }
        if case let .number(limit)? = rules["maxLength"], Double(text.count) > limit {
            return "\(path) must have at most \(JSONValue.numberText(limit)) characters"
        }
        return nil
    }

    static func arrayViolation(_ value: JSONValue, _ rules: [String: JSONValue], _ path: String) -> String? {
        guard case let .array(elements) = value else { return nil }
        if case let .number(limit)? = rules["minItems"], Double(elements.count) < limit {
            return "\(path) must have at least \(JSONValue.numberText(limit)) elements"
        }
        if case let .number(limit)? = rules["maxItems"], Double(elements.count) > limit {
            return "\(path) must have at most \(JSONValue.numberText(limit)) elements"
        }
        if let items = rules["items"] {
            for (index, element) in elements.enumerated() {
                if let problem = violation(of: element, against: items, path: "\(path)[\(index)]") { return problem }
            }
        }
        return nil
    }

    static func objectViolation(_ value: JSONValue, _ rules: [String: JSONValue], _ path: String) -> String? {
        guard case let .object(members) = value else { return nil }
        for name in (rules["required"]?.arrayValue ?? []).compactMap(\.stringValue) where members[name] == nil {
            return "\(path).\(name) is required"
        }
        let properties = rules["properties"]?.objectValue ?? [:]
        for name in members.keys.sorted() {
            let member = members[name]!
            if let propertySchema = properties[name] {
                if let problem = violation(of: member, against: propertySchema, path: "\(path).\(name)") { return problem }
            } else if let additional = rules["additionalProperties"] {
                if additional == .bool(false) {
                    let known = properties.keys.sorted().joined(separator: ", ")
                    return "\(path).\(name) is not an argument of this tool (arguments: \(known.isEmpty ? "none" : known))"
                }
                if let problem = violation(of: member, against: additional, path: "\(path).\(name)") { return problem }
            }
        }
        return nil
    }

    static func combinationViolation(_ value: JSONValue, _ rules: [String: JSONValue], _ path: String) -> String? {
        if let all = rules["allOf"]?.arrayValue {
            for schema in all { if let problem = violation(of: value, against: schema, path: path) { return problem } }
        }
        if let any = rules["anyOf"]?.arrayValue, !any.isEmpty, !any.contains(where: { violation(of: value, against: $0, path: path) == nil }) {
            return "\(path) matches none of the allowed forms"
        }
        if let one = rules["oneOf"]?.arrayValue, !one.isEmpty {
            let matching = one.filter { violation(of: value, against: $0, path: path) == nil }.count
            if matching != 1 { return "\(path) must match exactly one allowed form, matches \(matching)" }
        }
        return nil
    }
}

extension ToolName {
    /// The built-in tool as a JSON call names it: one string argument for `calc` (`expression`)
    /// and `search` (`query`), two for `lookup` (`entity`, then `attribute`).
    public var toolDescription: ToolDescription {
        func schema(_ names: [String]) -> JSONValue {
            .object([
                "type": .string("object"),
                "properties": .object(Dictionary(uniqueKeysWithValues: names.map { ($0, JSONValue.object(["type": .string("string")])) })),
                "required": .array(names.map { .string($0) }),
                "additionalProperties": .bool(false),
            ])
        }
        switch self {
        case .calc: return ToolDescription(name: rawValue, description: "Exact arithmetic on an expression.", inputSchema: schema(["expression"]))
        case .search: return ToolDescription(name: rawValue, description: "Search the knowledge base.", inputSchema: schema(["query"]))
        case .lookup: return ToolDescription(name: rawValue, description: "An entity's attribute.", inputSchema: schema(["entity", "attribute"]))
        }
    }
}
