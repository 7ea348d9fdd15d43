import Foundation
import MCP
import SystemPackage
import ToolEnv

/// The tools of the run's MCP servers (`env.mcp_servers`), through the MCP Swift SDK's client
/// over stdio.
///
/// `start` launches every server, initialises it and lists its tools; a server that cannot start,
/// does not answer, lists no tool or lists a tool another server also has is an error (the run
/// exits 2). A call goes to the server that listed the tool, and every way it can fail becomes
/// an outcome the policy sees (`ToolFailure`), counted in `failureCounts`:
/// - an error result (`isError`, or a JSON-RPC error): `error_result`, with the server's text;
/// - no answer within `timeout_seconds`: `timeout`, and the server is restarted, since a hung
///   server may never answer again;
/// - the server exits during the call: `server_crash`, and it is restarted;
/// - a result with no text content: `malformed_result`.
/// Calls from several threads run concurrently: the client multiplexes them over the server's
/// connection by request id, and the server answers them in whatever order it can.
/// `stop()` ends every server (SIGTERM to its process group, SIGKILL after two seconds) and
/// returns once each is reaped.
public final class MCPToolProvider: ToolProvider, @unchecked Sendable {
    public let tools: [ToolDescription]
    let servers: [MCPServer]
    let serverOfTool: [String: MCPServer]

    /// Starts the servers of `configurations` (in name order) and lists their tools.
    /// - Throws: `ToolServerError` naming the server (`env.mcp_servers.NAME: …`); servers
    ///   already started are stopped first.
    public static func start(_ configurations: [String: MCPServerConfig]) throws -> MCPToolProvider {
        // A write to a server that has just died must fail with EPIPE (a crash outcome), not
        // kill the trainer.
        signal(SIGPIPE, SIG_IGN)
        var servers: [MCPServer] = []
        var tools: [ToolDescription] = []
        var serverOfTool: [String: MCPServer] = [:]
        do {
            for name in configurations.keys.sorted() {
                let server = MCPServer(name: name, configuration: configurations[name]!)
                servers.append(server)
                let listed = try server.start()
                guard !listed.isEmpty else { throw ToolServerError("env.mcp_servers.\(name): the server lists no tools") }
                for tool in listed {
                    if let other = serverOfTool[tool.name] {
                        throw ToolServerError("env.mcp_servers.\(name): tool \(tool.name) is also served by \(other.name); tool names must be unique")
                    }
                    serverOfTool[tool.name] = server
                    tools.append(tool)
                }
            }
        } catch {
            servers.forEach { $0.stop() }
            throw error
        }
        return MCPToolProvider(tools: tools, servers: servers, serverOfTool: serverOfTool)
    }

    init(tools: [ToolDescription], servers: [MCPServer], serverOfTool: [String: MCPServer]) {
        self.tools = tools
        self.servers = servers
        self.serverOfTool = serverOfTool
    }

    public func call(tool: String, arguments: [String: JSONValue]) -> ToolOutcome {
        guard let server = serverOfTool[tool] else { preconditionFailure("the episode calls only listed tools, got \(tool)") }
        return server.call(tool: tool, arguments: arguments)
    }

    /// Failed calls so far by kind, and restarts, over every server.
    public var failureCounts: [ToolFailure: Int] {
        servers.reduce(into: [:]) { total, server in
            for (kind, count) in server.failureCounts { total[kind, default: 0] += count }
        }
    }

    /// Server restarts so far (after crashes and timeouts).
    public var restarts: Int { servers.reduce(0) { $0 + $1.restarts } }

    /// Calls sent to the servers so far, failed ones included.
    public var calls: Int { servers.reduce(0) { $0 + $1.calls } }

    /// Stops every server; safe to call more than once.
    public func stop() { servers.forEach { $0.stop() } }
}

/// One configured server: its running process and client, replaced after a crash or timeout.
final class MCPServer: @unchecked Sendable {
    let name: String
    let configuration: MCPServerConfig
    private let lock = NSLock()
    private var connection: Connection?
    private var isStopped = false
    private(set) var restarts = 0
    private(set) var failureCounts: [ToolFailure: Int] = [:]
    private(set) var calls = 0

    /// A running server process and the client connected to it.
    final class Connection: @unchecked Sendable {
        let process: ChildProcess
        let client: Client
        init(process: ChildProcess, client: Client) {
            self.process = process
            self.client = client
        }
    }

    init(name: String, configuration: MCPServerConfig) {
        self.name = name
        self.configuration = configuration
    }

    /// Seconds a start may take: at least 20, since an interpreter and its packages load first.
    var startTimeout: Double { max(configuration.timeoutSeconds, 20) }

    /// Launches the server, initialises it and lists its tools (every page).
    func start() throws -> [ToolDescription] {
        let (connection, tools) = try launch()
        lock.lock()
        self.connection = connection
        lock.unlock()
        return tools
    }

    private func launch() throws -> (Connection, [ToolDescription]) {
        let label = "env.mcp_servers.\(name)"
        let process: ChildProcess
        do {
            process = try ChildProcess(command: configuration.command, arguments: configuration.args, environment: configuration.env)
        } catch let error as ToolServerError {
            throw ToolServerError("\(label): \(error.description)")
        }
        let transport = StdioTransport(input: FileDescriptor(rawValue: process.outputRead), output: FileDescriptor(rawValue: process.inputWrite))
        let client = Client(name: "arpo-train", version: "1")
        let connection = Connection(process: process, client: client)
        let listing = AsyncBridge.wait(timeout: startTimeout, isAlive: { process.isRunning }) { () async throws -> [Tool] in
            try await client.connect(transport: transport)
            var tools: [Tool] = []
            var cursor: String?
            repeat {
                let page = try await client.listTools(cursor: cursor)
                tools += page.tools
                cursor = page.nextCursor
            } while cursor != nil && tools.count < 10_000
            return tools
        }
        func failed(_ reason: String) -> ToolServerError {
            close(connection)
            process.waitForStandardErrorToClose(timeout: 1)
            let errorTail = process.standardErrorTail
            return ToolServerError("\(label): the server (\(([configuration.command] + configuration.args).joined(separator: " "))) \(reason)" + (errorTail.isEmpty ? "" : "; its standard error ends: \(errorTail.suffix(600))"))
        }
        switch listing {
        case let .value(tools): return (connection, tools.map(MCPServer.description(of:)))
        case let .failure(error): throw failed("failed to start MCP: \(error)")
        case .timedOut: throw failed("did not answer initialize and tools/list within \(Int(startTimeout)) seconds")
        case .died: throw failed("exited (\(process.exitDescription ?? "unknown status")) before listing its tools")
        }
    }

    static func description(of tool: Tool) -> ToolDescription {
        ToolDescription(name: tool.name, description: tool.description ?? "", inputSchema: JSONValue(mcp: tool.inputSchema))
    }

    /// Runs one call; never throws (see `MCPToolProvider`).
    func call(tool: String, arguments: [String: JSONValue]) -> ToolOutcome {
        lock.lock()
        calls += 1
        lock.unlock()
        guard let connection = currentConnection() else {
            return record(ToolOutcome(text: "error: \(tool) is unavailable (its server \(name) cannot be restarted), try again", failure: .serverCrash))
        }
        let values = arguments.mapValues { Value(json: $0) }
        let result = AsyncBridge.wait(timeout: configuration.timeoutSeconds, isAlive: { connection.process.isRunning }) {
            () async throws -> (content: [Tool.Content], isError: Bool?) in
            try await connection.client.callTool(name: tool, arguments: values)
        }
        switch result {
        case let .value((content, isError)):
            let text = content.compactMap { part -> String? in
                if case let .text(text, _, _) = part { return text }
                return nil
            }.joined(separator: "\n")
            if isError == true { return record(ToolOutcome(text: "error: \(tool): \(text.isEmpty ? "the tool reported an error" : text)", failure: .errorResult)) }
            guard !content.isEmpty, content.count == content.filter({ if case .text = $0 { return true } else { return false } }).count else {
                return record(ToolOutcome(text: "error: \(tool) returned no text result", failure: .malformedResult))
            }
            return ToolOutcome(text: text)
        case let .failure(error):
            if let error = error as? MCPError, !MCPServer.isConnectionFailure(error) {
                return record(ToolOutcome(text: "error: \(tool): \(MCPServer.message(of: error))", failure: .errorResult))
            }
            if error is DecodingError { return record(ToolOutcome(text: "error: \(tool) returned a malformed result", failure: .malformedResult)) }
            replace(connection)
            return record(ToolOutcome(text: "error: \(tool) lost its server, try again", failure: .serverCrash))
        case .timedOut:
            replace(connection)
            return record(ToolOutcome(text: "error: \(tool) timed out after \(JSONValue.number(configuration.timeoutSeconds).compactText) s, try again", failure: .timeout))
        case .died:
            replace(connection)
            return record(ToolOutcome(text: "error: \(tool) failed: its server stopped, try again", failure: .serverCrash))
        }
    }

    static func isConnectionFailure(_ error: MCPError) -> Bool {
        switch error {
        case .connectionClosed, .transportError: return true
        default: return false
        }
    }

    static func message(of error: MCPError) -> String {
        switch error {
        case let .invalidParams(detail), let .internalError(detail), let .methodNotFound(detail), let .invalidRequest(detail), let .parseError(detail):
            return detail ?? "\(error)"
        case let .serverError(_, message): return message
        default: return "\(error)"
        }
    }

    private func record(_ outcome: ToolOutcome) -> ToolOutcome {
        if let failure = outcome.failure {
            lock.lock()
            failureCounts[failure, default: 0] += 1
            lock.unlock()
        }
        return outcome
    }

    /// The running server's process id, if one runs.
    var processID: pid_t? { currentConnection()?.process.pid }

    private func currentConnection() -> Connection? {
        lock.lock()
        defer { lock.unlock() }
        return connection
    }

    /// Ends `failed` and starts a new server in its place, unless another call already did.
    /// When the new one cannot start, calls get `server_crash` until a later call restarts it.
    private func replace(_ failed: Connection) {
        lock.lock()
        defer { lock.unlock() }
        guard !isStopped else { return }
        if connection === failed {
            close(failed)
            connection = nil
        }
        guard connection == nil else { return }
        restarts += 1
        connection = try? launch().0
    }

    private func close(_ connection: Connection) {
        _ = AsyncBridge.wait(timeout: 5, isAlive: { true }) { await connection.client.disconnect() }
        connection.process.terminate()
    }

    /// Ends the server and waits for it to be reaped.
    func stop() {
        lock.lock()
        defer { lock.unlock() }
        isStopped = true
        if let connection { close(connection) }
        connection = nil
    }
}

/// The one place where the synchronous rollout waits on the SDK's async API: the operation runs
/// in a task while the calling thread (a rollout or Dispatch thread, never one of Swift
/// concurrency's own) waits on a semaphore in 20 ms slices, checking the server is alive and
/// the deadline. A task that outlives its wait is cancelled; `Client.disconnect()` then fails its
/// pending request.
enum AsyncBridge {
    enum Outcome<Value> {
        case value(Value)
        case failure(Error)
        case timedOut
        case died
    }

    final class Box<Value>: @unchecked Sendable {
        var result: Result<Value, Error>?
        let done = DispatchSemaphore(value: 0)
    }

    static func wait<Value>(timeout: Double, isAlive: () -> Bool, _ operation: @escaping @Sendable () async throws -> Value) -> Outcome<Value> {
        let box = Box<Value>()
        let task = Task {
            do { box.result = .success(try await operation()) } catch { box.result = .failure(error) }
            box.done.signal()
        }
        let deadline = DispatchTime.now() + timeout
        while true {
            if box.done.wait(timeout: .now() + 0.02) == .success {
                switch box.result! {
                case let .success(value): return .value(value)
                case let .failure(error): return .failure(error)
                }
            }
            if !isAlive() {
                task.cancel()
                return .died
            }
            if DispatchTime.now() >= deadline {
                task.cancel()
                return .timedOut
            }
        }
    }
}

extension JSONValue {
    /// The SDK's value as JSON (binary data as its base64 text).
    init(mcp value: Value) {
        switch value {
        case .null: self = .null
        case let .bool(flag): self = .bool(flag)
        case let .int(number): self = .number(Double(number))
        case let .double(number): self = .number(number)
        case let .string(text): self = .string(text)
        case let .data(_, data): self = .string(data.base64EncodedString())
        case let .array(elements): self = .array(elements.map { JSONValue(mcp: $0) })
        case let .object(members): self = .object(members.mapValues { JSONValue(mcp: $0) })
        }
    }
}

extension Value {
    /// A JSON value for the SDK: integral numbers as integers, so a schema's `integer` holds.
    init(json value: JSONValue) {
        switch value {
        case .null: self = .null
        case let .bool(flag): self = .bool(flag)
        case let .number(number): self = value.typeName == "integer" ? .int(Int(number)) : .double(number)
        case let .string(text): self = .string(text)
        case let .array(elements): self = .array(elements.map { Value(json: $0) })
        case let .object(members): self = .object(members.mapValues { Value(json: $0) })
        }
    }
}
