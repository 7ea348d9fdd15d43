import ARPO
import Foundation

/// One `--set KEY.PATH=VALUE` from the command line: a value that replaces the one at a key path
/// of a run's config before it is checked, so `--set rl.steps=0 --set run.seed=2` runs a variant
/// of a config file without editing it.
public struct ConfigurationOverride: CustomStringConvertible {
    /// The key path's components: `["rl", "branching", "budget"]` for `rl.branching.budget`.
    public var keyPath: [String]
    /// The new value as `JSONSerialization` represents it (a number, a string, a Bool, `NSNull`,
    /// an array or a dictionary).
    public var value: Any
    /// The argument as given, for error messages.
    public var argument: String

    /// Parses `KEY.PATH=VALUE`. VALUE is JSON when it parses as JSON (`0`, `1e-4`, `true`, `null`,
    /// `"text"`, `{"arithmetic": 1}`) and otherwise the text itself, so that paths and names
    /// (`runs/x/reference`, `arpo`) need no quotes.
    ///
    /// - Throws: ``ConfigurationError`` when there is no `=` or the key path has an empty
    ///   component.
    public init(parsing argument: String) throws {
        guard let equals = argument.firstIndex(of: "=") else {
            throw ConfigurationError("--set \(argument): expected KEY.PATH=VALUE (for example rl.steps=10), found no '='")
        }
        let path = argument[..<equals]
        let text = String(argument[argument.index(after: equals)...])
        let components = path.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !components.contains(where: \.isEmpty) else {
            throw ConfigurationError("--set \(argument): the key path '\(path)' has an empty component; write it as section.key, for example rl.steps")
        }
        self.argument = argument
        keyPath = components
        if let data = text.data(using: .utf8), let parsed = try? JSONSerialization.jsonObject(with: data, options: .fragmentsAllowed) {
            value = parsed
        } else {
            value = text
        }
    }

    /// The key path with dots: `rl.branching.budget`.
    public var dottedKeyPath: String { keyPath.joined(separator: ".") }

    public var description: String { argument }

    /// The override as a config of its own (`{"rl": {"steps": 0}}`), which the key checks read.
    var nestedObject: [String: Any] {
        keyPath.reversed().reduce(value) { inner, key in [key: inner] as [String: Any] } as! [String: Any]
    }

    /// `root` with the value at this key path replaced, creating the sections on the way that
    /// `root` lacks.
    ///
    /// - Throws: ``ConfigurationError`` when a value on the way is not an object.
    func applied(to root: [String: Any]) throws -> [String: Any] {
        func set(_ object: [String: Any], _ remaining: ArraySlice<String>, _ walked: [String]) throws -> [String: Any] {
            var object = object
            let key = remaining.first!
            if remaining.count == 1 {
                object[key] = value
                return object
            }
            let inner = object[key] ?? [String: Any]()
            guard let section = inner as? [String: Any] else {
                throw ConfigurationError("--set \(argument): \((walked + [key]).joined(separator: ".")) is not an object, so it has no key \(remaining.dropFirst().joined(separator: "."))")
            }
            object[key] = try set(section, remaining.dropFirst(), walked + [key])
            return object
        }
        return try set(root, keyPath[...], [])
    }
}
