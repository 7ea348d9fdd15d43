import Foundation
import MCP

// An MCP tool server over stdio with two tools the built-in environment lacks, for the worked
// example in examples/units (README, "Your own tasks and tools"):
//
// - convert_length(value, from, to): a length between metres, kilometres, centimetres, miles,
//   feet and inches, rounded to three decimals;
// - day_of_week(date): the weekday of a Gregorian date written YYYY-MM-DD.
//
// Build: swift build -c release --product units-server (the binary is .build/release/units-server).

/// Metres per unit.
let metres: [String: Double] = ["m": 1, "km": 1000, "cm": 0.01, "mi": 1609.344, "ft": 0.3048, "in": 0.0254]

let tools = [
    Tool(
        name: "convert_length",
        description: "Convert a length between units (m, km, cm, mi, ft, in); the result has three decimals.",
        inputSchema: .object([
            "type": .string("object"),
            "properties": .object([
                "value": .object(["type": .string("number")]),
                "from": .object(["type": .string("string"), "enum": .array(metres.keys.sorted().map { .string($0) })]),
                "to": .object(["type": .string("string"), "enum": .array(metres.keys.sorted().map { .string($0) })]),
            ]),
            "required": .array([.string("value"), .string("from"), .string("to")]),
            "additionalProperties": .bool(false),
        ])),
    Tool(
        name: "day_of_week",
        description: "The weekday of a date written YYYY-MM-DD (Gregorian calendar).",
        inputSchema: .object([
            "type": .string("object"),
            "properties": .object(["date": .object(["type": .string("string")])]),
            "required": .array([.string("date")]),
            "additionalProperties": .bool(false),
        ])),
]

/// The result text, or an error message for an error result.
func run(_ name: String, _ arguments: [String: Value]) -> (String, isError: Bool) {
    switch name {
    case "convert_length":
        let value = arguments["value"]?.doubleValue ?? arguments["value"]?.intValue.map(Double.init)
        guard let value, let from = arguments["from"]?.stringValue.flatMap({ metres[$0] }),
              let to = arguments["to"]?.stringValue.flatMap({ metres[$0] })
        else { return ("expected a number value and units among \(metres.keys.sorted().joined(separator: ", "))", true) }
        return (String(format: "%.3f", value * from / to), false)
    case "day_of_week":
        let parts = (arguments["date"]?.stringValue ?? "").split(separator: "-").compactMap { Int($0) }
        let weekdays = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        guard parts.count == 3, let date = calendar.date(from: DateComponents(year: parts[0], month: parts[1], day: parts[2])),
              calendar.component(.day, from: date) == parts[2]
        else { return ("expected a date YYYY-MM-DD", true) }
        return (weekdays[calendar.component(.weekday, from: date) - 1], false)
    default:
        return ("unknown tool \(name)", true)
    }
}

let server = Server(name: "units", version: "1.0.0", capabilities: .init(tools: .init(listChanged: false)))
await server.withMethodHandler(ListTools.self) { _ in .init(tools: tools) }
await server.withMethodHandler(CallTool.self) { parameters in
    let (text, isError) = run(parameters.name, parameters.arguments ?? [:])
    return .init(content: [.text(text: text, annotations: nil, _meta: nil)], isError: isError)
}
try await server.start(transport: StdioTransport())
await server.waitUntilCompleted()
