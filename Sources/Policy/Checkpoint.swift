import Foundation
import Tensor

/// A model directory that Hugging Face `transformers` loads: `model.safetensors` (F32, Hugging
/// Face LLaMA keys, `[out, in]` weights), `config.json` (`LlamaConfig` fields), and the policy's
/// tokenizer as `tokenizer.json` with `tokenizer_config.json` (its class, special tokens and
/// chat template), so that `AutoTokenizer` encodes text to the policy's token ids.
public enum ModelCheckpoint {
    public static let weightsFile = "model.safetensors"
    public static let configFile = "config.json"

    /// The files of `model`'s directory, by name: the weights, the config and the tokenizer's
    /// two files, with `chatTemplate` (the protocol's, `CallFormat.chatTemplate`) in
    /// `tokenizer_config.json` when given. A caller that needs more than `save`'s atomic renames
    /// (a run's durable, checksummed checkpoints) writes these bytes itself.
    public static func files(_ model: LlamaModel, tokenizer: Tokenizer = Tokenizer(), chatTemplate: String? = nil) throws -> [(name: String, data: Data)] {
        let parameters = model.namedParameters.map { ($0.name, $0.tensor.dtype == .float32 ? $0.tensor : $0.tensor.converted(to: .float32)) }
        let config = try JSONSerialization.data(withJSONObject: model.configuration.huggingFaceConfig(tokenizer: tokenizer), options: [.prettyPrinted, .sortedKeys])
        return [
            (weightsFile, Safetensors.encode(parameters, metadata: ["format": "pt"])),
            (configFile, config),
            (Tokenizer.fileName, try tokenizer.huggingFaceJSON()),
            (Tokenizer.configFileName, try tokenizer.huggingFaceConfigJSON(modelMaxLength: model.configuration.maxPositions, chatTemplate: chatTemplate)),
        ]
    }

    /// Writes `model` into `directory` (created if needed). Each file is written to a temporary
    /// name and renamed, so an interrupted save never leaves a half-written file.
    public static func save(_ model: LlamaModel, to directory: URL, tokenizer: Tokenizer = Tokenizer(), chatTemplate: String? = nil) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for (name, data) in try files(model, tokenizer: tokenizer, chatTemplate: chatTemplate) {
            try data.write(to: directory.appendingPathComponent(name), options: .atomic)
        }
    }

    /// The tokenizer of a model directory: its `tokenizer.json`, or the byte tokenizer when it
    /// has none (directories written before tokenizers were saved). Its vocabulary must be the
    /// model's.
    public static func loadTokenizer(from directory: URL, vocabularySize: Int) throws -> Tokenizer {
        let url = directory.appendingPathComponent(Tokenizer.fileName)
        let hasFile = FileManager.default.fileExists(atPath: url.path)
        let tokenizer = hasFile ? try Tokenizer.load(huggingFaceJSON: url) : Tokenizer()
        guard tokenizer.vocabularySize == vocabularySize else {
            let source = hasFile ? url.path : "\(directory.path) (no \(Tokenizer.fileName): the byte tokenizer)"
            throw PolicyError("\(source) has a vocabulary of \(tokenizer.vocabularySize) tokens but the model's vocab_size is \(vocabularySize)")
        }
        return tokenizer
    }

    /// Loads a model directory, validating the config, every tensor's presence, dtype and shape,
    /// and that no weight is NaN or infinite (a corrupt file or a diverged run, whose outputs
    /// would be garbage).
    ///
    /// - Parameter expected: when given, the checkpoint's architecture must equal it (the run's
    ///   configured model), and the error lists the fields that differ.
    public static func load(from directory: URL, expected: LlamaConfiguration? = nil, dtype: DType = .float32) throws -> LlamaModel {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw PolicyError("checkpoint \(directory.path) is not a directory")
        }
        let configuration = try LlamaConfiguration.fromHuggingFaceConfig(at: directory.appendingPathComponent(configFile))
        if let expected, expected != configuration {
            throw PolicyError("checkpoint \(directory.path) does not match the configured model: \(differences(expected, configuration).joined(separator: ", "))")
        }
        let weightsURL = directory.appendingPathComponent(weightsFile)
        let contents: Safetensors.Contents
        do {
            contents = try Safetensors.read(weightsURL)
            try contents.requireFinite(path: weightsURL.path)
        } catch let error as SafetensorsError {
            throw PolicyError(error.description)
        }
        var parameters: [String: Tensor] = [:]
        for (name, tensor) in contents.tensors { parameters[name] = tensor.dtype == dtype ? tensor : tensor.converted(to: dtype) }
        do { return try LlamaModel(configuration: configuration, parameters: parameters) } catch let error as PolicyError {
            throw PolicyError("\(weightsURL.path): \(error.description)")
        }
    }

    /// "key: expected X, checkpoint has Y" for each differing architecture field.
    static func differences(_ expected: LlamaConfiguration, _ found: LlamaConfiguration) -> [String] {
        let encoder = JSONEncoder()
        guard let left = (try? JSONSerialization.jsonObject(with: encoder.encode(expected))) as? [String: Any],
            let right = (try? JSONSerialization.jsonObject(with: encoder.encode(found))) as? [String: Any]
        else { return ["architecture differs"] }
        return LlamaConfiguration.CodingKeys.allCases.compactMap { key in
            let a = left[key.rawValue].map { "\($0)" } ?? "none", b = right[key.rawValue].map { "\($0)" } ?? "none"
            return a == b ? nil : "\(key.rawValue): configured \(a), checkpoint has \(b)"
        }
    }
}
