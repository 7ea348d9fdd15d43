import Foundation
import XCTest
import ToolEnv
@testable import ToolServers

/// The MCP client against the example server (a real MCP SDK server) and a deliberately broken
/// one: tools listed, calls answered concurrently, every failure an outcome, restarts, no
/// process left behind.
final class MCPToolProviderTests: XCTestCase {
    /// The example server built beside the test bundle.
    static var unitsServer: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("units-server").path
    }

    static var misbehavingServer: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/misbehaving_server.py").path
    }

    /// Whether process `pid` still exists (a zombie counts: it has not been reaped).
    func exists(_ pid: pid_t) -> Bool { kill(pid, 0) == 0 }

    func testTheExampleServerListsItsToolsAndAnswersConcurrentCalls() throws {
        let provider = try MCPToolProvider.start(["units": MCPServerConfig(command: MCPToolProviderTests.unitsServer, timeoutSeconds: 20)])
        let pid = provider.servers[0].processID!
        defer { provider.stop() }
        XCTAssertEqual(provider.tools.map(\.name), ["convert_length", "day_of_week"])
        XCTAssertEqual(provider.tools[0].compactArgumentNames, ["value", "from", "to"])
        XCTAssertEqual(provider.call(tool: "convert_length", arguments: ["value": .number(3), "from": .string("mi"), "to": .string("km")]), ToolOutcome(text: "4.828"))
        XCTAssertEqual(provider.call(tool: "day_of_week", arguments: ["date": .string("2024-03-15")]), ToolOutcome(text: "Friday"))
        let refused = provider.call(tool: "day_of_week", arguments: ["date": .string("2024-02-30")])
        XCTAssertEqual(refused.failure, .errorResult)
        XCTAssertTrue(refused.text.contains("expected a date YYYY-MM-DD"), refused.text)
        // 32 calls from 8 threads at once, each with its own answer.
        let results = UnsafeMutableBufferPointer<ToolOutcome?>.allocate(capacity: 32)
        results.initialize(repeating: nil)
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 32) { index in
            results[index] = provider.call(tool: "convert_length", arguments: ["value": .number(Double(index)), "from": .string("km"), "to": .string("m")])
        }
        for index in 0..<32 { XCTAssertEqual(results[index], ToolOutcome(text: String(format: "%.3f", Double(index) * 1000))) }
        XCTAssertEqual(provider.failureCounts, [.errorResult: 1])
        provider.stop()
        XCTAssertFalse(exists(pid), "the server outlived stop()")
    }

    func testEveryWayACallFailsIsAnOutcomeAndTheServerComesBack() throws {
        let provider = try MCPToolProvider.start(["broken": MCPServerConfig(command: "python3", args: [MCPToolProviderTests.misbehavingServer], timeoutSeconds: 1)])
        defer { provider.stop() }
        XCTAssertEqual(provider.call(tool: "echo", arguments: ["text": .string("hi")]), ToolOutcome(text: "hi"))
        XCTAssertEqual(provider.call(tool: "refuse", arguments: [:]).failure, .errorResult)
        XCTAssertEqual(provider.call(tool: "malformed", arguments: [:]).failure, .malformedResult)
        let firstPID = provider.servers[0].processID!
        let crashed = provider.call(tool: "crash", arguments: [:])
        XCTAssertEqual(crashed.failure, .serverCrash)
        XCTAssertTrue(crashed.text.hasPrefix("error: crash"), crashed.text)
        XCTAssertFalse(exists(firstPID), "the crashed server was not reaped")
        XCTAssertEqual(provider.call(tool: "echo", arguments: ["text": .string("after crash")]), ToolOutcome(text: "after crash"))
        let hungPID = provider.servers[0].processID!
        let started = Date()
        let hung = provider.call(tool: "hang", arguments: [:])
        XCTAssertEqual(hung.failure, .timeout)
        XCTAssertLessThan(Date().timeIntervalSince(started), 10)
        XCTAssertFalse(exists(hungPID), "the hung server was not stopped")
        XCTAssertEqual(provider.call(tool: "echo", arguments: ["text": .string("after hang")]), ToolOutcome(text: "after hang"))
        XCTAssertEqual(provider.restarts, 2)
        XCTAssertEqual(provider.failureCounts, [.errorResult: 1, .malformedResult: 1, .serverCrash: 1, .timeout: 1])
        let lastPID = provider.servers[0].processID!
        provider.stop()
        provider.stop()
        XCTAssertFalse(exists(lastPID))
    }

    func testAServerThatCannotStartIsAClearError() {
        func message(_ configurations: [String: MCPServerConfig]) -> String {
            do {
                let provider = try MCPToolProvider.start(configurations)
                provider.stop()
                return "started"
            } catch { return "\(error)" }
        }
        XCTAssertTrue(message(["units": MCPServerConfig(command: "/nonexistent/server")]).hasPrefix("env.mcp_servers.units: cannot start /nonexistent/server: No such file or directory"))
        let exited = message(["broken": MCPServerConfig(command: "python3", args: [MCPToolProviderTests.misbehavingServer], env: ["MISBEHAVING_START": "exit"])])
        XCTAssertTrue(exited.contains("env.mcp_servers.broken: the server (python3 "), exited)
        XCTAssertTrue(exited.contains("refusing to start"), exited)
        let duplicate = message([
            "a": MCPServerConfig(command: "python3", args: [MCPToolProviderTests.misbehavingServer]),
            "b": MCPServerConfig(command: "python3", args: [MCPToolProviderTests.misbehavingServer]),
        ])
        XCTAssertTrue(duplicate.contains("env.mcp_servers.b: tool echo is also served by a"), duplicate)
    }
}
