import Foundation
import Tensor

/// The decode path's copies of the weights, laid out for `matmul(_: PackedMatrix, …)`: transposed
/// to `[in, out]` (and packed into column panels where the AVX-512 kernel runs), with each
/// layer's q/k/v projections fused into one `[C, C + 2·KV]` matrix and gate/up into one
/// `[C, 2F]`, so a decode step makes 4 products per layer instead of 7.
struct DecodeWeights {
    struct Layer {
        /// [C, C + 2·KV]: query, key and value columns in that order.
        let queryKeyValue: PackedMatrix
        /// [C, C].
        let output: PackedMatrix
        /// [C, 2F]: gate columns, then up columns, packed as gate/up pairs for `swiGLUMatmul`.
        let gateUp: PackedMatrix
        /// [F, C].
        let down: PackedMatrix
    }

    let layers: [Layer]
    /// [C, V]: the LM head (the embedding when tied).
    let head: PackedMatrix

    init(_ model: LlamaModel) {
        func transposed(_ weights: [Tensor], layout: PackedMatrix.Layout = .columns) -> PackedMatrix {
            let stacked = weights.count == 1 ? weights[0] : Tensor.concatenate(weights, axis: 0)  // [out, in]
            return PackedMatrix(stacked.transposed().contiguous(), layout: layout)
        }
        layers = model.layers.map { layer in
            Layer(
                queryKeyValue: transposed([layer.queryProjection, layer.keyProjection, layer.valueProjection]),
                output: transposed([layer.outputProjection]),
                gateUp: transposed([layer.gateProjection, layer.upProjection], layout: .gateUpPairs),
                down: transposed([layer.downProjection]))
        }
        head = transposed([model.languageModelHead ?? model.embedding])
    }
}

/// Holds a model's `DecodeWeights` and rebuilds them when any parameter was written in place
/// since (an optimizer step, `load(from:)`): each parameter's `storageVersion` is recorded at
/// build time and compared on every use, which costs one integer per parameter. The model's
/// parameter tensors never change identity (they are `let`s written in place), so the list is
/// taken once: building it names every parameter, which cost 2% of a decode step.
final class DecodeWeightCache: @unchecked Sendable {
    private let lock = NSLock()
    private var weights: DecodeWeights?
    private var parameters: [Tensor] = []
    private var versions: [Int] = []

    /// Weights matching `model`'s parameters now.
    func current(for model: LlamaModel) -> DecodeWeights {
        lock.lock()
        defer { lock.unlock() }
        if let weights, parameters.indices.allSatisfy({ parameters[$0].storageVersion == versions[$0] }) { return weights }
        let rebuilt = withoutGradients { DecodeWeights(model) }
        weights = rebuilt
        parameters = model.parameters
        versions = parameters.map(\.storageVersion)
        return rebuilt
    }
}
