import Foundation
import Tensor

/// AdamW (Loshchilov & Hutter) exactly as `torch.optim.AdamW` computes it:
/// p ← p − lr·λ·p (decoupled decay); m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
/// p ← p − lr · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε).
///
/// Parameters whose names are in `noDecay` (norms and embeddings with the usual grouping) skip the
/// weight decay.
public final class AdamW {
    public struct Hyperparameters: Codable, Equatable, Sendable {
        public var beta1: Double = 0.9
        public var beta2: Double = 0.999
        public var epsilon: Double = 1e-8
        public var weightDecay: Double = 0.01
        public init(beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0.01) {
            self.beta1 = beta1
            self.beta2 = beta2
            self.epsilon = epsilon
            self.weightDecay = weightDecay
        }
    }

    public let hyperparameters: Hyperparameters
    public let names: [String]
    public let parameters: [Tensor]
    /// Names excluded from weight decay.
    public let noDecay: Set<String>
    /// First and second moments, one per parameter (Float64 where the parameter is).
    var firstMoments: [Tensor]
    var secondMoments: [Tensor]
    /// Updates taken so far (t in the bias corrections).
    public private(set) var step: Int = 0

    public init(named: [(name: String, tensor: Tensor)], hyperparameters: Hyperparameters = Hyperparameters(), noDecay: Set<String> = []) {
        self.hyperparameters = hyperparameters
        names = named.map(\.name)
        parameters = named.map(\.tensor)
        self.noDecay = noDecay
        firstMoments = parameters.map { Tensor.zeros($0.shape, dtype: $0.dtype) }
        secondMoments = parameters.map { Tensor.zeros($0.shape, dtype: $0.dtype) }
    }

    /// The usual grouping: no decay for norm weights, biases and embeddings.
    public static func defaultNoDecay(_ names: [String]) -> Set<String> {
        Set(names.filter { $0.contains("norm") || $0.hasSuffix(".bias") || $0.contains("embed_tokens") })
    }

    /// Global L2 norm of every parameter's gradient (missing gradients count as zero).
    public func gradientNorm() -> Double {
        var total = 0.0
        for parameter in parameters {
            guard let gradient = parameter.gradient else { continue }
            total += gradient.squared().sum().item
        }
        return total.squareRoot()
    }

    /// Scales gradients so their global norm is at most `maximum`; returns the norm before
    /// clipping (what training logs).
    @discardableResult
    public func clipGradientNorm(to maximum: Double) -> Double {
        let norm = gradientNorm()
        if norm > maximum && norm.isFinite {
            let scale = maximum / (norm + 1e-6)
            for parameter in parameters { parameter.gradient?.scaleInPlace(by: scale) }
        }
        return norm
    }

    /// Forgets every parameter's gradient.
    public func zeroGradients() {
        for parameter in parameters { parameter.clearGradient() }
    }

    /// One update with learning rate `learningRate`. Parameters without a gradient are left
    /// untouched (their moments too), as torch does.
    public func update(learningRate: Double) {
        step += 1
        let h = hyperparameters
        let correction1 = 1 - Foundation.pow(h.beta1, Double(step))
        let correction2 = 1 - Foundation.pow(h.beta2, Double(step))
        for index in parameters.indices {
            let parameter = parameters[index]
            guard let gradient = parameter.gradient else { continue }
            let decay = noDecay.contains(names[index]) ? 0 : h.weightDecay
            parameter.applyAdamW(
                gradient: gradient, firstMoment: firstMoments[index], secondMoment: secondMoments[index],
                AdamWStep(
                    learningRate: learningRate, weightDecay: decay, beta1: h.beta1, beta2: h.beta2, epsilon: h.epsilon,
                    correction1: correction1, correction2: correction2))
        }
    }

    // MARK: State

    /// The moments (`exp_avg.NAME`, `exp_avg_sq.NAME`, the keys torch uses) and the step count
    /// as a safetensors file's bytes.
    public func encoded() -> Data {
        var tensors: [(String, Tensor)] = []
        for (index, name) in names.enumerated() {
            tensors.append(("exp_avg.\(name)", firstMoments[index]))
            tensors.append(("exp_avg_sq.\(name)", secondMoments[index]))
        }
        return Safetensors.encode(tensors, metadata: ["step": String(step), "format": "arpo-adamw"])
    }

    /// Writes `encoded()` to a safetensors file, atomically.
    public func save(to url: URL) throws {
        try encoded().write(to: url, options: .atomic)
    }

    /// Restores moments and step from `save(to:)`'s file; throws naming the file and tensor when
    /// it does not match these parameters, or when a moment holds NaN or infinite values.
    public func load(from url: URL) throws {
        let contents: Safetensors.Contents
        do {
            contents = try Safetensors.read(url)
            try contents.requireFinite(path: url.path)
        } catch let error as SafetensorsError { throw PolicyError(error.description) }
        guard let stepText = contents.metadata["step"], let savedStep = Int(stepText), savedStep >= 0 else {
            throw PolicyError("\(url.path): optimizer state has no valid step count")
        }
        var first: [Tensor] = [], second: [Tensor] = []
        for (index, name) in names.enumerated() {
            for (prefix, list) in [("exp_avg.", 0), ("exp_avg_sq.", 1)] {
                guard let tensor = contents.tensors[prefix + name] else { throw PolicyError("\(url.path): missing optimizer state \(prefix + name)") }
                guard tensor.shape == parameters[index].shape else {
                    throw PolicyError("\(url.path): optimizer state \(prefix + name) has shape \(tensor.shape), parameter has \(parameters[index].shape)")
                }
                let converted = tensor.dtype == parameters[index].dtype ? tensor : tensor.converted(to: parameters[index].dtype)
                if list == 0 { first.append(converted) } else { second.append(converted) }
            }
        }
        if contents.tensors.count != 2 * names.count {
            throw PolicyError("\(url.path): optimizer state holds \(contents.tensors.count) tensors, expected \(2 * names.count)")
        }
        firstMoments = first
        secondMoments = second
        step = savedStep
    }
}
