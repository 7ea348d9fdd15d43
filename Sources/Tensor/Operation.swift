/// The op that produced a tensor, with what its gradient rule needs.
///
/// Every differentiable op is one case here, and every case has its rule in the one exhaustive
/// `switch` of `gradients(output:gradient:)`: a new op does not compile until it has a rule.
indirect enum Operation {
    case binary(BinaryFunction, Tensor, Tensor)
    case unary(UnaryFunction, Tensor)
    case reduction(Reduction, Tensor, geometry: ReductionGeometry, argMax: [Int32])
    case matmul(Tensor, Tensor)
    case linear(Tensor, weight: Tensor)
    case residualLinear(Tensor, weight: Tensor, residual: Tensor)
    case reshape(Tensor)
    case permute(Tensor, axes: [Int])
    case slice(Tensor, axis: Int, start: Int)
    case concatenate([Tensor], axis: Int)
    case expand(Tensor)
    case select(Tensor, Tensor, Tensor)
    case softmax(Tensor)
    case logSoftmax(Tensor)
    case logProbabilityEntropy(Tensor)
    case gather(Tensor, indices: [Int])
    case embedding(Tensor, ids: [Int])
    case rmsNorm(Tensor, weight: Tensor, inverseRMS: Tensor)
    case swiGLU(gate: Tensor, up: Tensor)
    case layerNorm(Tensor, weight: Tensor, bias: Tensor, mean: Tensor, inverseStd: Tensor)
    case rotary(Tensor, RotaryEmbedding, positions: [Int])
    case attention(Tensor, Tensor, Tensor, probabilities: Tensor, geometry: AttentionGeometry)

    /// The tensors gradients flow to, in the order `gradients` returns them.
    var inputs: [Tensor] {
        switch self {
        case .binary(_, let a, let b): return [a, b]
        case .unary(_, let x): return [x]
        case .reduction(_, let x, _, _): return [x]
        case .matmul(let a, let b): return [a, b]
        case .linear(let x, let weight): return [x, weight]
        case .residualLinear(let x, let weight, let residual): return [x, weight, residual]
        case .reshape(let x), .expand(let x), .softmax(let x), .logSoftmax(let x), .logProbabilityEntropy(let x): return [x]
        case .permute(let x, _), .slice(let x, _, _), .gather(let x, _), .embedding(let x, _): return [x]
        case .concatenate(let tensors, _): return tensors
        case .select(_, let a, let b): return [a, b]
        case .rmsNorm(let x, let weight, _): return [x, weight]
        case .swiGLU(let gate, let up): return [gate, up]
        case .layerNorm(let x, let weight, let bias, _, _): return [x, weight, bias]
        case .rotary(let x, _, _): return [x]
        case .attention(let q, let k, let v, _, _): return [q, k, v]
        }
    }
}
