// The gradient rules of every primitive op, in one place. Each rule receives the op's output and
// the gradient of the loss with respect to it, and returns the gradient for each input (nil where
// none is needed). Rules run with recording off, so the ops they use build no graph.
extension Operation {
    /// Whether `gradients` can add its first input's gradient into a given sum
    /// (`accumulatingFirstInputInto`) instead of returning a new tensor.
    var acceptsFirstInputAccumulator: Bool {
        switch self {
        case .linear, .residualLinear, .rmsNorm: return true
        default: return false
        }
    }

    /// The gradient of each input. With `accumulator` (a dense tensor of the first input's shape
    /// that nothing else holds: the backward pass's sum so far of that input's gradient), a rule
    /// that accepts one (`acceptsFirstInputAccumulator`) adds the first input's gradient into it
    /// and returns it in first place.
    ///
    /// Longer than 80 lines on purpose: it is the one exhaustive switch that holds every
    /// primitive's gradient rule, a few lines each, so that the rules read as one table and a new
    /// operation does not compile until it has its rule.
    func gradients(output: Tensor, gradient g: Tensor, accumulatingFirstInputInto accumulator: Tensor? = nil) -> [Tensor?] {
        switch self {
        case .binary(let function, let a, let b):
            let pair: (Tensor, Tensor)
            switch function {
            case .add: pair = (g, g)
            case .subtract: pair = (g, -g)
            case .multiply: pair = (g * b, g * a)
            case .divide: pair = (g / b, -(g * a) / (b * b))
            case .maximum:
                let mask = a.isGreaterOrEqual(to: b)
                pair = (g * mask, g * (1 - mask))
            case .minimum:
                let mask = a.isLessOrEqual(to: b)
                pair = (g * mask, g * (1 - mask))
            case .greater, .greaterOrEqual, .less, .lessOrEqual, .equal:
                preconditionFailure("comparisons record no gradient")
            }
            return [pair.0.summed(toShape: a.shape), pair.1.summed(toShape: b.shape)]

        case .unary(let function, let x):
            return [Kernels.unaryBackward(function, input: x, output: output, gradient: g)]

        case .reduction(let reduction, let x, let geometry, let argMax):
            let kept = g.reshaped(geometry.keptShape)
            switch reduction {
            case .sum:
                return [kept.broadcastView(to: x.shape).materialized()]
            case .mean:
                return [kept.broadcastView(to: x.shape).materialized() * (1 / Double(geometry.length))]
            case .max:
                return [Kernels.scatterArgMax(g, argMax: argMax, geometry, dtype: x.dtype)]
            case .logSumExp:
                // d/dx log Σ exp x = softmax(x) along the axis.
                let weights = (x - output.reshaped(geometry.keptShape)).exp()
                return [weights * kept]
            }

        case .matmul(let a, let b):
            // C = A·B:  dA = dC·Bᵀ,  dB = Aᵀ·dC. Transposes are views; BLAS gets flags.
            let da = Tensor.matmul(g, b.transposed()).summed(toShape: a.shape)
            let db: Tensor
            if b.rank == 2 && a.rank > 2 {
                // One GEMM over the flattened batch instead of a batch of products summed.
                let k = a.shape[a.rank - 1], n = b.shape[1]
                db = Tensor.matmul(a.reshaped([-1, k]).transposed(), g.reshaped([-1, n]))
            } else {
                db = Tensor.matmul(a.transposed(), g).summed(toShape: b.shape)
            }
            return [da, db]

        case .linear(let x, let weight):
            return Self.linearGradients(x, weight: weight, gradient: g, accumulator: accumulator)

        case .residualLinear(let x, let weight, _):
            // Y = R + X·Wᵀ: the residual's gradient is dY itself.
            return Self.linearGradients(x, weight: weight, gradient: g, accumulator: accumulator) + [g]

        case .reshape(let x):
            return [g.reshaped(x.shape)]

        case .permute(_, let axes):
            var inverse = [Int](repeating: 0, count: axes.count)
            for (position, axis) in axes.enumerated() { inverse[axis] = position }
            return [g.permuted(inverse).materialized()]

        case .slice(let x, let axis, let start):
            let result = Tensor.zeros(x.shape, dtype: x.dtype)
            result.sliced(axis: axis, start..<(start + g.shape[axis])).assign(g)
            return [result]

        case .concatenate(let tensors, let axis):
            return g.split(axis: axis, sizes: tensors.map { $0.shape[axis] }).map { $0.materialized() }

        case .expand(let x):
            return [g.summed(toShape: x.shape)]

        case .select(let condition, let a, let b):
            let zero = Tensor.scalar(0, dtype: g.dtype)
            let mask = condition.broadcastView(to: g.shape)
            return [
                Tensor.select(mask, g, zero).summed(toShape: a.shape),
                Tensor.select(mask, zero, g).summed(toShape: b.shape),
            ]

        case .softmax:
            return [Kernels.softmaxBackward(output: output, gradient: g, logarithmic: false)]

        case .logSoftmax:
            return [Kernels.softmaxBackward(output: output, gradient: g, logarithmic: true)]

        case .logProbabilityEntropy(let x):
            return [Kernels.logProbabilityEntropyBackward(input: x, gradient: g)]

        case .gather(let x, let indices):
            return [Kernels.gatherBackward(g, indices: indices, inputShape: x.shape)]

        case .embedding(let table, let ids):
            return [Kernels.embeddingBackward(g, ids: ids, tableShape: table.shape)]

        case .rmsNorm(let x, let weight, let inverseRMS):
            let (dx, dw) = Kernels.rmsNormBackward(input: x, weight: weight, inverseRMS: inverseRMS, gradient: g, accumulatingInto: accumulator)
            return [dx, dw]

        case .swiGLU(let gate, let up):
            let (dGate, dUp) = Kernels.swiGLUBackward(gate: gate, up: up, gradient: g)
            return [dGate, dUp]

        case .layerNorm(let x, let weight, _, let mean, let inverseStd):
            let (dx, dw, db) = Kernels.layerNormBackward(input: x, weight: weight, mean: mean, inverseStd: inverseStd, gradient: g)
            return [dx, dw, db]

        case .rotary(let x, let rotary, let positions):
            let result = Tensor(shape: x.shape, dtype: x.dtype, zeroed: false)
            Kernels.rotary(g.materialized(), rotary, positions: positions, inverse: true, into: result)
            return [result]

        case .attention(let q, let k, let v, let probabilities, let geometry):
            let (dq, dk, dv) = Kernels.attentionBackward(query: q, key: k, value: v, probabilities: probabilities, geometry: geometry, gradient: g)
            return [dq, dk, dv]
        }
    }
}

extension Operation {
    /// Y = X·Wᵀ over rows:  dX = dY·W,  dW = dYᵀ·X. Both single GEMMs with flags. With a sum of dX
    /// from the input's other uses (`accumulator`), the dX GEMM adds into it (beta = 1).
    fileprivate static func linearGradients(_ x: Tensor, weight: Tensor, gradient g: Tensor, accumulator: Tensor?) -> [Tensor?] {
        let outFeatures = weight.shape[0], inFeatures = weight.shape[1]
        let rows = x.count / Swift.max(inFeatures, 1)
        let dy = g.materialized(), input = x.materialized(), matrix = weight.materialized()
        let dx = accumulator ?? Tensor(shape: x.shape, dtype: x.dtype, zeroed: false)
        let dw = Tensor(shape: weight.shape, dtype: weight.dtype, zeroed: false)
        Kernels.linearGradients(rows: rows, inFeatures: inFeatures, outFeatures: outFeatures, dy: dy, input: input, weight: matrix, into: dx, accumulate: accumulator != nil, weightGradient: dw)
        return [dx, dw]
    }
}
