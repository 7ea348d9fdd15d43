import Foundation
import Policy
import Tensor
import XCTest

final class CheckpointTests: XCTestCase {
    func makeModel(valueHead: Bool = true) -> LlamaModel {
        var generator = RandomGenerator(seed: 2)
        return LlamaModel(configuration: tinyConfiguration(valueHead: valueHead, tied: false), generator: &generator)
    }

    func testRoundTripIsBitExactAndWritesHuggingFaceConfig() throws {
        let model = makeModel()
        let directory = try temporaryDirectory(self)
        try ModelCheckpoint.save(model, to: directory)
        let loaded = try ModelCheckpoint.load(from: directory, expected: model.configuration)
        XCTAssertEqual(loaded.configuration, model.configuration)
        for ((name, a), (otherName, b)) in zip(model.namedParameters, loaded.namedParameters) {
            XCTAssertEqual(name, otherName)
            XCTAssertEqual(a.shape, b.shape)
            XCTAssertEqual(a.floats.map(\.bitPattern), b.floats.map(\.bitPattern), "\(name) is not bit-exact")
        }
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("config.json"))) as! [String: Any]
        XCTAssertEqual(config["architectures"] as? [String], ["LlamaForCausalLM"])
        XCTAssertEqual(config["model_type"] as? String, "llama")
        XCTAssertEqual(config["hidden_act"] as? String, "silu")
        for key in ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "vocab_size", "max_position_embeddings", "rms_norm_eps", "rope_theta", "tie_word_embeddings", "bos_token_id", "eos_token_id", "pad_token_id"] {
            XCTAssertNotNil(config[key], "config.json lacks \(key)")
        }
        // The weights file is plain safetensors with Hugging Face keys and [out, in] shapes.
        let contents = try Safetensors.read(directory.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(contents.tensors["model.layers.0.mlp.gate_proj.weight"]?.shape, [24, 16])
        XCTAssertEqual(contents.tensors["lm_head.weight"]?.shape, [272, 16])
        XCTAssertEqual(contents.tensors["value_head.weight"]?.shape, [1, 16])
        XCTAssertEqual(contents.metadata["format"], "pt")
    }

    func testSafetensorsLayoutMatchesTheSpecification() throws {
        let tensor = Tensor(shape: [2, 2], scalars: [1, 2, 3, 4])
        let data = Safetensors.encode([("x", tensor)])
        let headerLength = Int(data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        XCTAssertEqual(headerLength % 8, 0, "header is padded to 8 bytes")
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength))) as! [String: Any]
        let entry = header["x"] as! [String: Any]
        XCTAssertEqual(entry["dtype"] as? String, "F32")
        XCTAssertEqual(entry["shape"] as? [Int], [2, 2])
        XCTAssertEqual(entry["data_offsets"] as? [Int], [0, 16])
        XCTAssertEqual(data.count, 8 + headerLength + 16)
        let floats = data.suffix(16).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        XCTAssertEqual(floats, [1, 2, 3, 4])
    }

    func assertThrows(_ message: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(message), "error '\(error)' does not mention '\(message)'", file: file, line: line)
        }
    }

    func testCorruptTruncatedAndMismatchedCheckpointsGiveClearErrors() throws {
        let model = makeModel()
        let directory = try temporaryDirectory(self)
        try ModelCheckpoint.save(model, to: directory)
        let weights = directory.appendingPathComponent("model.safetensors")
        let original = try Data(contentsOf: weights)

        // Truncated in the data, in the header, and before the header length.
        try original.prefix(original.count - 100).write(to: weights)
        assertThrows("truncated") { _ = try ModelCheckpoint.load(from: directory) }
        try original.prefix(40).write(to: weights)
        assertThrows("truncated") { _ = try ModelCheckpoint.load(from: directory) }
        try original.prefix(5).write(to: weights)
        assertThrows("truncated") { _ = try ModelCheckpoint.load(from: directory) }
        // A header that is not JSON.
        var garbled = original
        garbled[8] = UInt8(ascii: "#")
        try garbled.write(to: weights)
        assertThrows("not a JSON object") { _ = try ModelCheckpoint.load(from: directory) }
        // An absurd header length.
        var huge = original
        huge[7] = 0x7F
        try huge.write(to: weights)
        assertThrows("header length") { _ = try ModelCheckpoint.load(from: directory) }

        // A wrong shape, a missing key, an unexpected key, a bad dtype.
        var parameters = model.namedParameters.map { ($0.name, $0.tensor) }
        parameters[1] = (parameters[1].0, Tensor.zeros([17]))
        try Safetensors.write(parameters, to: weights)
        assertThrows("model.layers.0.input_layernorm.weight has shape [17]") { _ = try ModelCheckpoint.load(from: directory) }
        try Safetensors.write(Array(model.namedParameters.map { ($0.name, $0.tensor) }.dropLast()), to: weights)
        assertThrows("missing parameter value_head.bias") { _ = try ModelCheckpoint.load(from: directory) }
        try Safetensors.write(model.namedParameters.map { ($0.name, $0.tensor) } + [("extra.weight", Tensor.zeros([1]))], to: weights)
        assertThrows("unexpected parameter extra.weight") { _ = try ModelCheckpoint.load(from: directory) }
        var badDtype = try Data(contentsOf: weights)
        if let range = badDtype.range(of: Data("\"F32\"".utf8)) { badDtype.replaceSubrange(range, with: Data("\"I64\"".utf8)) }
        try badDtype.write(to: weights)
        assertThrows("only F32 and F64") { _ = try ModelCheckpoint.load(from: directory) }

        // A checkpoint of another architecture than the configured one.
        try original.write(to: weights)
        var other = model.configuration
        other.layerCount = 3
        assertThrows("num_hidden_layers: configured 3, checkpoint has 2") { _ = try ModelCheckpoint.load(from: directory, expected: other) }
        // A config.json that is not a LLaMA or misses a field.
        try Data("{\"model_type\": \"gpt2\"}".utf8).write(to: directory.appendingPathComponent("config.json"))
        assertThrows("model_type is \"gpt2\"") { _ = try ModelCheckpoint.load(from: directory) }
        try Data("{\"model_type\": \"llama\"}".utf8).write(to: directory.appendingPathComponent("config.json"))
        assertThrows("vocab_size must be an integer") { _ = try ModelCheckpoint.load(from: directory) }
        assertThrows("is not a directory") { _ = try ModelCheckpoint.load(from: directory.appendingPathComponent("nowhere")) }
    }

    /// Issue 33: weights or optimizer moments holding NaN or infinity are refused at load, with
    /// the file, each tensor and its count, whatever wrote them (a model directory from
    /// elsewhere has no manifest to catch it).
    func testNonFiniteWeightsAndMomentsAreRefusedNamingTheTensorAndCount() throws {
        let model = makeModel()
        let directory = try temporaryDirectory(self)
        try ModelCheckpoint.save(model, to: directory)
        let weights = directory.appendingPathComponent("model.safetensors")
        var parameters = model.namedParameters.map { ($0.name, $0.tensor) }
        let index = parameters.firstIndex { $0.0 == "model.layers.1.mlp.up_proj.weight" }!
        var values = parameters[index].1.floats
        values[0] = .nan
        values[5] = .infinity
        values[9] = -.infinity
        parameters[index].1 = Tensor(shape: parameters[index].1.shape, scalars: values)
        let normIndex = parameters.firstIndex { $0.0 == "model.norm.weight" }!
        parameters[normIndex].1 = Tensor(shape: [16], scalars: [Float](repeating: .nan, count: 16))
        try Safetensors.write(parameters, to: weights)
        assertThrows("\(weights.path): non-finite values (NaN or infinity): model.layers.1.mlp.up_proj.weight has 3 of \(values.count), model.norm.weight has 16 of 16") {
            _ = try ModelCheckpoint.load(from: directory)
        }

        let optimizer = AdamW(named: model.namedParameters)
        let moments = directory.appendingPathComponent("optimizer.safetensors")
        try optimizer.save(to: moments)
        XCTAssertNoThrow(try AdamW(named: model.namedParameters).load(from: moments))
        let saved = try Safetensors.read(moments)
        var tensors = saved.tensors.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        let momentIndex = tensors.firstIndex { $0.0 == "exp_avg_sq.lm_head.weight" }!
        var momentValues = tensors[momentIndex].1.floats
        momentValues[1] = .nan
        tensors[momentIndex].1 = Tensor(shape: tensors[momentIndex].1.shape, scalars: momentValues)
        try Safetensors.write(tensors, metadata: saved.metadata, to: moments)
        assertThrows("\(moments.path): non-finite values (NaN or infinity): exp_avg_sq.lm_head.weight has 1 of \(momentValues.count)") {
            try AdamW(named: model.namedParameters).load(from: moments)
        }
    }

    func testSafetensorsRejectsOverlapsAndHoles() throws {
        func file(_ header: String, dataBytes: Int) -> Data {
            var headerData = Data(header.utf8)
            while headerData.count % 8 != 0 { headerData.append(UInt8(ascii: " ")) }
            var data = Data()
            var length = UInt64(headerData.count).littleEndian
            withUnsafeBytes(of: &length) { data.append(contentsOf: $0) }
            return data + headerData + Data(count: dataBytes)
        }
        let overlap = file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, dataBytes: 12)
        XCTAssertThrowsError(try Safetensors.decode(overlap)) { XCTAssertTrue("\($0)".contains("overlaps")) }
        let hole = file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, dataBytes: 8)
        XCTAssertThrowsError(try Safetensors.decode(hole)) { XCTAssertTrue("\($0)".contains("hole")) }
        let sizeMismatch = file(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, dataBytes: 8)
        XCTAssertThrowsError(try Safetensors.decode(sizeMismatch)) { XCTAssertTrue("\($0)".contains("needs 12 bytes")) }
        let trailing = file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, dataBytes: 8)
        XCTAssertThrowsError(try Safetensors.decode(trailing)) { XCTAssertTrue("\($0)".contains("trailing")) }
        let negativeShape = file(#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, dataBytes: 4)
        XCTAssertThrowsError(try Safetensors.decode(negativeShape)) { XCTAssertTrue("\($0)".contains("invalid shape")) }
        let valid = file(#"{"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"__metadata__":{"k":"v"}}"#, dataBytes: 8)
        let contents = try Safetensors.decode(valid)
        XCTAssertEqual(contents.tensors["a"]?.dtype, .float64)
        XCTAssertEqual(contents.metadata, ["k": "v"])
    }
}
