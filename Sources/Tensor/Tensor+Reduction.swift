/// Reductions over one axis or over the whole tensor.
public enum Reduction: Sendable {
    case sum, mean
    /// The gradient goes to the first arg-max.
    case max
    /// log Σ exp, computed stably by factoring out the maximum.
    case logSumExp
}

extension Tensor {
    /// Reduces over `axis` (or every element when nil), optionally keeping it as size 1.
    public func reduced(_ reduction: Reduction, axis: Int? = nil, keepingDimension: Bool = false) -> Tensor {
        let geometry = ReductionGeometry(shape: shape, axis: axis.map { normalizedAxis($0) }, keepDimension: keepingDimension)
        let input = materialized()
        let result = Tensor(shape: geometry.resultShape, dtype: dtype, zeroed: false)
        let argMax = Kernels.reduce(reduction, input, geometry, into: result)
        return result.recording(.reduction(reduction, self, geometry: geometry, argMax: argMax), inputs: self)
    }

    public func sum(axis: Int? = nil, keepingDimension: Bool = false) -> Tensor {
        reduced(.sum, axis: axis, keepingDimension: keepingDimension)
    }

    public func mean(axis: Int? = nil, keepingDimension: Bool = false) -> Tensor {
        reduced(.mean, axis: axis, keepingDimension: keepingDimension)
    }

    public func max(axis: Int? = nil, keepingDimension: Bool = false) -> Tensor {
        reduced(.max, axis: axis, keepingDimension: keepingDimension)
    }

    public func logSumExp(axis: Int? = nil, keepingDimension: Bool = false) -> Tensor {
        reduced(.logSumExp, axis: axis, keepingDimension: keepingDimension)
    }
}

/// A reduction seen as (outer, reduced, inner) over a dense input.
struct ReductionGeometry {
    let inputShape: [Int]
    let axis: Int?
    let outer: Int, length: Int, inner: Int
    let resultShape: [Int]
    /// The result's shape with the reduced axis kept as 1 (for broadcasting a gradient back).
    let keptShape: [Int]

    init(shape: [Int], axis: Int?, keepDimension: Bool) {
        inputShape = shape
        self.axis = axis
        if let axis {
            outer = shape[..<axis].reduce(1, *)
            length = shape[axis]
            inner = shape[(axis + 1)...].reduce(1, *)
            var kept = shape
            kept[axis] = 1
            keptShape = kept
            var reduced = shape
            reduced.remove(at: axis)
            resultShape = keepDimension ? kept : reduced
        } else {
            outer = 1
            length = shape.reduce(1, *)
            inner = 1
            keptShape = [Int](repeating: 1, count: shape.count)
            resultShape = keepDimension ? keptShape : []
        }
        precondition(length > 0, "cannot reduce an empty axis of shape \(shape)")
    }
}

extension Kernels {
    /// Writes the reduction into `result`; returns arg-max indices for `.max`.
    static func reduce(_ reduction: Reduction, _ input: Tensor, _ geometry: ReductionGeometry, into result: Tensor) -> [Int32] {
        switch input.dtype {
        case .float32: return reduce(Float.self, reduction, input, geometry, into: result)
        case .float64: return reduce(Double.self, reduction, input, geometry, into: result)
        }
    }

    private static func reduce<T: TensorScalar>(
        _: T.Type, _ reduction: Reduction, _ input: Tensor, _ g: ReductionGeometry, into result: Tensor
    ) -> [Int32] {
        let x = input.pointer(T.self), y = result.pointer(T.self)
        let (outer, n, inner) = (g.outer, g.length, g.inner)
        var argMax: [Int32] = []
        switch reduction {
        case .sum, .mean:
            let scale: T = reduction == .mean ? 1 / T(n) : 1
            for o in 0..<outer {
                let row = y + o * inner, block = x + o * n * inner
                if inner == 1 {
                    row[0] = pairwiseSum(UnsafePointer(block), n) * scale
                } else {
                    row.update(from: block, count: inner)
                    for j in 1..<n {
                        let source = block + j * inner
                        for i in 0..<inner { row[i] += source[i] }
                    }
                    if scale != 1 { for i in 0..<inner { row[i] *= scale } }
                }
            }
        case .max:
            argMax = [Int32](repeating: 0, count: outer * inner)
            argMax.withUnsafeMutableBufferPointer { indices in
                for o in 0..<outer {
                    let row = y + o * inner, block = x + o * n * inner
                    for i in 0..<inner {
                        var best = block[i], bestIndex = 0
                        for j in 1..<n where block[j * inner + i] > best {
                            best = block[j * inner + i]
                            bestIndex = j
                        }
                        row[i] = best
                        indices[o * inner + i] = Int32(bestIndex)
                    }
                }
            }
        case .logSumExp:
            for o in 0..<outer {
                let row = y + o * inner, block = x + o * n * inner
                for i in 0..<inner {
                    var peak = -T.infinity
                    for j in 0..<n { peak = Swift.max(peak, block[j * inner + i]) }
                    if !peak.isFinite {
                        row[i] = peak
                        continue
                    }
                    var total = T.zero
                    for j in 0..<n { total += T.exp(block[j * inner + i] - peak) }
                    row[i] = peak + T.log(total)
                }
            }
        }
        return argMax
    }

    /// Σ x[0..<n] summed pairwise, as NumPy and PyTorch sum: halves are summed recursively down
    /// to blocks of 128, each summed in eight interleaved partial sums. The rounding error grows
    /// with log n rather than n, so a float32 loss or squared gradient norm over a million terms
    /// keeps about float32's precision instead of losing three digits to a running total.
    static func pairwiseSum<T: TensorScalar>(_ x: UnsafePointer<T>, _ n: Int) -> T {
        if n <= 128 {
            guard n >= 8 else {
                var total = T.zero
                for j in 0..<n { total += x[j] }
                return total
            }
            var r0 = x[0], r1 = x[1], r2 = x[2], r3 = x[3], r4 = x[4], r5 = x[5], r6 = x[6], r7 = x[7]
            var j = 8
            while j + 8 <= n {
                r0 += x[j]; r1 += x[j + 1]; r2 += x[j + 2]; r3 += x[j + 3]
                r4 += x[j + 4]; r5 += x[j + 5]; r6 += x[j + 6]; r7 += x[j + 7]
                j += 8
            }
            var total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
            while j < n {
                total += x[j]
                j += 1
            }
            return total
        }
        // Split at a multiple of 8 so the blocks stay whole.
        let half = (n / 2) & ~7
        return pairwiseSum(x, half) + pairwiseSum(x + half, n - half)
    }

    /// Scatters `gradient` (one value per reduced slot) to the arg-max positions.
    static func scatterArgMax(_ gradient: Tensor, argMax: [Int32], _ g: ReductionGeometry, dtype: DType) -> Tensor {
        let result = Tensor.zeros(g.inputShape, dtype: dtype)
        let source = gradient.materialized()
        func run<T: TensorScalar>(_: T.Type) {
            let dx = result.pointer(T.self), dy = source.pointer(T.self)
            for o in 0..<g.outer {
                for i in 0..<g.inner {
                    let slot = o * g.inner + i
                    dx[(o * g.length + Int(argMax[slot])) * g.inner + i] = dy[slot]
                }
            }
        }
        switch dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
        return result
    }
}
