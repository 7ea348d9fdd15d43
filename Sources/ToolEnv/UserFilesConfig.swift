/// The user's task files (key `env.tasks`): JSONL files whose tasks replace the generated
/// families of their split (`TaskFile`).
public struct TaskFilesConfig: Codable, Equatable, Sendable {
    /// The training tasks (RL prompts). Key `train`, default none: the generated families.
    public var train: String?
    /// The held-out tasks (evaluation). Key `eval`, default none: the generated families.
    public var eval: String?

    public init(train: String? = nil, eval: String? = nil) {
        self.train = train
        self.eval = eval
    }

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case train, eval
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        train = try container.decodeIfPresent(String.self, forKey: .train)
        eval = try container.decodeIfPresent(String.self, forKey: .eval)
    }

    /// Writes both keys, null when unset, so the resolved config shows them.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(train, forKey: .train)
        try container.encode(eval, forKey: .eval)
    }

    func validate() throws {
        for (key, path) in [("train", train), ("eval", eval)] where path?.isEmpty == true {
            throw EnvironmentConfigError(keyPath: key, reason: "must be a file path or null, got an empty string")
        }
    }
}

/// One MCP tool server (an entry of `env.mcp_servers`), in the shape Claude Desktop, Cursor and
/// other MCP clients read, plus a timeout.
public struct MCPServerConfig: Codable, Equatable, Sendable {
    /// The program to start (looked up on `PATH` when it has no slash). Key `command`, required.
    public var command: String
    /// Its arguments. Key `args`, default none.
    public var args: [String]
    /// Variables added to the trainer's environment for the server. Key `env`, default none.
    public var env: [String: String]
    /// Seconds a call may take before it counts as a timeout (the server is then restarted,
    /// since a hung call may never answer). Key `timeout_seconds`, default 30.
    public var timeoutSeconds: Double

    public init(command: String, args: [String] = [], env: [String: String] = [:], timeoutSeconds: Double = 30) {
        self.command = command
        self.args = args
        self.env = env
        self.timeoutSeconds = timeoutSeconds
    }

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case command, args, env
        case timeoutSeconds = "timeout_seconds"
    }

    /// Any key, for naming the unknown ones.
    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Decodes, rejecting unknown keys by name (the configuration loader cannot: server names are
    /// the user's).
    public init(from decoder: Decoder) throws {
        let all = try decoder.container(keyedBy: AnyKey.self)
        let known = Set(CodingKeys.allCases.map(\.rawValue))
        if let unknown = all.allKeys.map(\.stringValue).sorted().first(where: { !known.contains($0) }) {
            throw DecodingError.dataCorruptedError(
                forKey: AnyKey(stringValue: unknown), in: all,
                debugDescription: "unknown key; a server has \(CodingKeys.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let container = try decoder.container(keyedBy: CodingKeys.self)
        command = try container.decode(String.self, forKey: .command)
        args = try container.decodeIfPresent([String].self, forKey: .args) ?? []
        env = try container.decodeIfPresent([String: String].self, forKey: .env) ?? [:]
        timeoutSeconds = try container.decodeIfPresent(Double.self, forKey: .timeoutSeconds) ?? 30
    }

    func validate() throws {
        guard !command.isEmpty else { throw EnvironmentConfigError(keyPath: "command", reason: "must name a program, got an empty string") }
        guard timeoutSeconds.isFinite, timeoutSeconds > 0, timeoutSeconds <= 3600 else {
            throw EnvironmentConfigError(keyPath: "timeout_seconds", reason: "must be in (0, 3600], got \(timeoutSeconds)")
        }
    }
}
