import CKernels
import RealModule

// Forward and backward kernels of the neural-network ops, side by side. Rows are the last axis.
extension Kernels {
    // MARK: Softmax

    static func softmax(_ input: Tensor, into result: Tensor, logarithmic: Bool) {
        switch input.dtype {
        case .float32: softmax(input.pointer(Float.self), result.pointer(Float.self), rows: input.count / input.shape.last!, width: input.shape.last!, logarithmic: logarithmic)
        case .float64: softmax(input.pointer(Double.self), result.pointer(Double.self), rows: input.count / input.shape.last!, width: input.shape.last!, logarithmic: logarithmic)
        }
    }

    static func softmax<T: TensorScalar>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, rows: Int, width n: Int, logarithmic: Bool) {
        guard n > 0 else { return }
        parallelFor(rows, workPerItem: 8 * n) { rowRange in
            softmaxRows(x, y, rows: rowRange, width: n, logarithmic: logarithmic)
        }
    }

    /// `softmax` on the rows `rows`, on this thread (attention calls it per row, from inside its
    /// own parallel loop). The plain softmax may run in place (`x == y`), the log-softmax not.
    static func softmaxRows<T: TensorScalar>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, rows: Range<Int>, width n: Int, logarithmic: Bool) {
        guard n > 0 else { return }
        precondition(!logarithmic || x != UnsafePointer(y), "log-softmax cannot run in place")
        for r in rows {
            let xr = x + r * n, yr = y + r * n
            var peak = xr[0]
            for j in 1..<n where xr[j] > peak { peak = xr[j] }
            // The exponentials go through the output row first so that the loop vectorises.
            for j in 0..<n { yr[j] = exponential(xr[j] - peak) }
            let total = sum(UnsafePointer(yr), n)
            if logarithmic {
                // (x − max) − log Σ, not x − (max + log Σ): the latter rounds log Σ away at
                // large |max| (≈5e-4 error in float32 at 1e4).
                let logTotal = T.log(total)
                for j in 0..<n { yr[j] = (xr[j] - peak) - logTotal }
            } else {
                let inverse = 1 / total
                for j in 0..<n { yr[j] *= inverse }
            }
        }
    }

    /// H = −Σ_j p_j x_j per row of log-probabilities x, p = e^x; a term with p = 0 counts 0.
    static func logProbabilityEntropy(_ input: Tensor, into result: Tensor) {
        let n = input.shape.last!
        guard n > 0 else { return }
        let rows = input.count / n
        func run<T: TensorScalar>(_: T.Type) {
            let x = input.pointer(T.self), h = result.pointer(T.self)
            parallelFor(rows, workPerItem: 8 * n) { rowRange in
                let terms = UnsafeMutablePointer<T>.allocate(capacity: n)
                defer { terms.deallocate() }
                for r in rowRange {
                    let xr = x + r * n
                    // The terms go through a scratch row first so that the exponentials vectorise.
                    for j in 0..<n {
                        let p = exponential(xr[j])
                        terms[j] = p == 0 ? 0 : p * xr[j]
                    }
                    h[r] = -sum(UnsafePointer(terms), n)
                }
            }
        }
        switch input.dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
    }

    /// dx_j = −dH · p_j (x_j + 1), zero where p_j = e^{x_j} is 0.
    static func logProbabilityEntropyBackward(input: Tensor, gradient: Tensor) -> Tensor {
        let x0 = input.materialized(), dh = gradient.materialized()
        let result = Tensor(shape: input.shape, dtype: input.dtype, zeroed: false)
        let n = input.shape.last!
        guard n > 0 else { return result }
        let rows = input.count / n
        func run<T: TensorScalar>(_: T.Type) {
            let x = x0.pointer(T.self), g = dh.pointer(T.self), dx = result.pointer(T.self)
            parallelFor(rows, workPerItem: 8 * n) { rowRange in
                for r in rowRange {
                    let xr = x + r * n, dr = dx + r * n, scale = -g[r]
                    for j in 0..<n {
                        let p = exponential(xr[j])
                        dr[j] = p == 0 ? 0 : scale * p * (xr[j] + 1)
                    }
                }
            }
        }
        switch input.dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
        return result
    }

    /// softmax: dx = y ∘ (dy − Σ dy∘y); log-softmax: dx = dy − exp(y) Σ dy.
    static func softmaxBackward(output: Tensor, gradient: Tensor, logarithmic: Bool) -> Tensor {
        let dy = gradient.materialized()
        let result = Tensor(shape: output.shape, dtype: output.dtype, zeroed: false)
        let n = output.shape.last!, rows = output.count / Swift.max(n, 1)
        func run<T: TensorScalar>(_: T.Type) {
            let y = output.pointer(T.self), g = dy.pointer(T.self), dx = result.pointer(T.self)
            parallelFor(rows, workPerItem: (logarithmic ? 8 : 2) * n) { rowRange in
                for r in rowRange {
                    let yr = y + r * n, gr = g + r * n, dr = dx + r * n
                    if logarithmic {
                        let total = sum(UnsafePointer(gr), n)
                        for j in 0..<n { dr[j] = gr[j] - exponential(yr[j]) * total }
                    } else {
                        var total = T.zero
                        for j in 0..<n { total += gr[j] * yr[j] }
                        for j in 0..<n { dr[j] = yr[j] * (gr[j] - total) }
                    }
                }
            }
        }
        switch output.dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
        return result
    }

    // MARK: Gather and embedding

    static func gather(_ input: Tensor, _ indices: [Int], into result: Tensor) {
        let width = input.shape.last!
        func run<T: TensorScalar>(_: T.Type) {
            let x = input.pointer(T.self), y = result.pointer(T.self)
            for (row, index) in indices.enumerated() { y[row] = x[row * width + index] }
        }
        switch input.dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
    }

    static func gatherBackward(_ gradient: Tensor, indices: [Int], inputShape: [Int]) -> Tensor {
        let result = Tensor.zeros(inputShape, dtype: gradient.dtype)
        let dy = gradient.materialized()
        let width = inputShape.last!
        func run<T: TensorScalar>(_: T.Type) {
            let g = dy.pointer(T.self), dx = result.pointer(T.self)
            for (row, index) in indices.enumerated() { dx[row * width + index] += g[row] }
        }
        switch gradient.dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
        return result
    }

    static func embedding(_ table: Tensor, _ ids: [Int], into result: Tensor) {
        let channels = table.shape[1]
        func run<T: TensorScalar>(_: T.Type) {
            let w = table.pointer(T.self), y = result.pointer(T.self)
            ids.withUnsafeBufferPointer { ids in
                parallelFor(ids.count, workPerItem: channels) { rows in
                    for row in rows { (y + row * channels).update(from: w + ids[row] * channels, count: channels) }
                }
            }
        }
        switch table.dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
    }

    /// Scatter-add of row gradients into the table rows that were read.
    static func embeddingBackward(_ gradient: Tensor, ids: [Int], tableShape: [Int]) -> Tensor {
        let result = Tensor.zeros(tableShape, dtype: gradient.dtype)
        let dy = gradient.materialized()
        let channels = tableShape[1]
        func run<T: TensorScalar>(_: T.Type) {
            let g = dy.pointer(T.self), dw = result.pointer(T.self)
            // Split by channel, not by row: repeated ids then add into a table row in id order
            // on one thread, whatever the thread count.
            ids.withUnsafeBufferPointer { ids in
                parallelFor(channels, workPerItem: ids.count) { channelRange in
                    for (row, id) in ids.enumerated() {
                        let source = g + row * channels, destination = dw + id * channels
                        for c in channelRange { destination[c] += source[c] }
                    }
                }
            }
        }
        switch gradient.dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
        return result
    }

    // MARK: RMSNorm

    /// In float32 with AVX-512 (`vectorized`), `ck_rmsnorm_row` computes each row with the same
    /// bits.
    static func rmsNorm(_ input: Tensor, _ weight: Tensor, epsilon: Double, into result: Tensor, inverseRMS: Tensor, vectorized: Bool = useAVX512) {
        let n = input.shape.last!, rows = input.count / n
        // Float32 rows through the AVX-512 kernel.
        func vectorizedRows(_ rowRange: Range<Int>) {
            let x = input.pointer(Float.self), w = weight.pointer(Float.self), y = result.pointer(Float.self), r = inverseRMS.pointer(Float.self)
            for row in rowRange { r[row] = ck_rmsnorm_row(Int32(n), x + row * n, w, Float(epsilon), y + row * n) }
        }
        func run<T: TensorScalar & SIMDScalar>(_: T.Type) {
            let x = input.pointer(T.self), w = weight.pointer(T.self), y = result.pointer(T.self), r = inverseRMS.pointer(T.self)
            let eps = T(epsilon)
            parallelFor(rows, workPerItem: 2 * n) { rowRange in
                if T.self == Float.self && vectorized {
                    vectorizedRows(rowRange)
                    return
                }
                for row in rowRange {
                    let xr = x + row * n, yr = y + row * n
                    // In SIMD lanes: one running sum would be bound by the add's latency.
                    let squares = dot(xr, xr, n)
                    let inverse = 1 / (squares / T(n) + eps).squareRoot()
                    r[row] = inverse
                    for j in 0..<n { yr[j] = xr[j] * inverse * w[j] }
                }
            }
        }
        switch input.dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
    }

    /// With r = 1/rms: dx_j = r·w_j·dy_j − x_j·r³/n · Σ_i dy_i w_i x_i;  dw_j = Σ_rows dy_j x_j r.
    /// With `accumulator` (dense, of the input's shape), dx is added into it and it is returned:
    /// the residual stream's gradient takes RMSNorm's share without a separate addition pass.
    /// In float32 with AVX-512 (`vectorized`), `ck_rmsnorm_backward_row` computes each row with
    /// the same bits.
    static func rmsNormBackward(input: Tensor, weight: Tensor, inverseRMS: Tensor, gradient: Tensor, accumulatingInto accumulator: Tensor? = nil, vectorized: Bool = useAVX512) -> (Tensor, Tensor) {
        let x0 = input.materialized(), w0 = weight.materialized(), dy = gradient.materialized()
        let n = input.shape.last!, rows = input.count / n
        let dxTensor = accumulator ?? Tensor(shape: input.shape, dtype: input.dtype, zeroed: false)
        let adds = accumulator != nil
        let dwTensor = Tensor.zeros(weight.shape, dtype: weight.dtype)
        // Float32 rows through the AVX-512 kernel, their dw into a block's partial.
        func vectorizedRows(_ blockRows: Range<Int>, into partial: UnsafeMutablePointer<Float>) {
            let x = x0.pointer(Float.self), w = w0.pointer(Float.self), g = dy.pointer(Float.self), r = inverseRMS.pointer(Float.self)
            let dx = dxTensor.pointer(Float.self)
            for row in blockRows { ck_rmsnorm_backward_row(Int32(n), x + row * n, w, g + row * n, r[row], adds ? 1 : 0, dx + row * n, partial) }
        }
        func run<T: TensorScalar & SIMDScalar>(_: T.Type) {
            let x = x0.pointer(T.self), w = w0.pointer(T.self), g = dy.pointer(T.self), r = inverseRMS.pointer(T.self)
            let dx = dxTensor.pointer(T.self), dw = dwTensor.pointer(T.self)
            // dw sums over rows: each block of rows sums into its own partial, and the partials
            // are added in block order, so the sum does not depend on the thread count.
            let blocks = (rows + rowsPerReductionBlock - 1) / rowsPerReductionBlock
            let partials = UnsafeMutablePointer<T>.allocate(capacity: Swift.max(blocks * n, 1))
            partials.initialize(repeating: 0, count: Swift.max(blocks * n, 1))
            defer { partials.deallocate() }
            parallelFor(blocks, workPerItem: 4 * n * rowsPerReductionBlock) { blockRange in
                for block in blockRange {
                    let partial = partials + block * n
                    let blockRows = (block * rowsPerReductionBlock)..<Swift.min(rows, (block + 1) * rowsPerReductionBlock)
                    if T.self == Float.self && vectorized {
                        vectorizedRows(blockRows, into: UnsafeMutableRawPointer(partial).assumingMemoryBound(to: Float.self))
                        continue
                    }
                    for row in blockRows {
                        let xr = x + row * n, gr = g + row * n, dr = dx + row * n
                        let inverse = r[row]
                        for j in 0..<n { partial[j] += gr[j] * xr[j] * inverse }
                        let correction = weightedDot(gr, w, xr, n) * inverse * inverse * inverse / T(n)
                        if adds {
                            for j in 0..<n { dr[j] += inverse * w[j] * gr[j] - xr[j] * correction }
                        } else {
                            for j in 0..<n { dr[j] = inverse * w[j] * gr[j] - xr[j] * correction }
                        }
                    }
                }
            }
            for block in 0..<blocks {
                let partial = partials + block * n
                for j in 0..<n { dw[j] += partial[j] }
            }
        }
        switch input.dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
        return (dxTensor, dwTensor)
    }

    // MARK: SwiGLU

    /// y = silu(g)·u = g·σ(g)·u.
    static func swiGLU(gate: Tensor, up: Tensor, into result: Tensor) {
        if result.dtype == .float32 && useAVX512 {
            let g = gate.pointer(Float.self), u = up.pointer(Float.self), y = result.pointer(Float.self)
            parallelElements(result.count, workPerElement: 8) { start, n in ck_swiglu_forward(n, g + start, u + start, y + start) }
            return
        }
        func run<T: TensorScalar>(_: T.Type) {
            let g = gate.pointer(T.self), u = up.pointer(T.self), y = result.pointer(T.self)
            parallelElements(result.count, workPerElement: 8) { start, n in
                for i in start..<(start + n) { y[i] = g[i] * sigmoid(g[i]) * u[i] }
            }
        }
        switch result.dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
    }

    /// With s = σ(g): dg = dy·u·s·(1 + g(1 − s));  du = dy·g·s.
    static func swiGLUBackward(gate: Tensor, up: Tensor, gradient: Tensor) -> (Tensor, Tensor) {
        let g0 = gate.materialized(), u0 = up.materialized(), dy = gradient.materialized()
        let dGate = Tensor(shape: gate.shape, dtype: gate.dtype, zeroed: false)
        let dUp = Tensor(shape: up.shape, dtype: up.dtype, zeroed: false)
        if gate.dtype == .float32 && useAVX512 {
            let g = g0.pointer(Float.self), u = u0.pointer(Float.self), dyp = dy.pointer(Float.self)
            let dg = dGate.pointer(Float.self), du = dUp.pointer(Float.self)
            parallelElements(dGate.count, workPerElement: 8) { start, n in ck_swiglu_backward(n, g + start, u + start, dyp + start, dg + start, du + start) }
            return (dGate, dUp)
        }
        func run<T: TensorScalar>(_: T.Type) {
            let g = g0.pointer(T.self), u = u0.pointer(T.self), dyp = dy.pointer(T.self)
            let dg = dGate.pointer(T.self), du = dUp.pointer(T.self)
            parallelElements(dGate.count, workPerElement: 8) { start, n in
                for i in start..<(start + n) {
                    let s = sigmoid(g[i])
                    dg[i] = dyp[i] * u[i] * s * (1 + g[i] * (1 - s))
                    du[i] = dyp[i] * g[i] * s
                }
            }
        }
        switch gate.dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
        return (dGate, dUp)
    }

    // MARK: LayerNorm

    static func layerNorm(_ input: Tensor, _ weight: Tensor, _ bias: Tensor, epsilon: Double, into result: Tensor, mean: Tensor, inverseStd: Tensor) {
        let n = input.shape.last!, rows = input.count / n
        func run<T: TensorScalar>(_: T.Type) {
            let x = input.pointer(T.self), w = weight.pointer(T.self), b = bias.pointer(T.self), y = result.pointer(T.self)
            let m = mean.pointer(T.self), s = inverseStd.pointer(T.self)
            for row in 0..<rows {
                let xr = x + row * n, yr = y + row * n
                var total = T.zero
                for j in 0..<n { total += xr[j] }
                let mu = total / T(n)
                var variance = T.zero
                for j in 0..<n { variance += (xr[j] - mu) * (xr[j] - mu) }
                let inverse = 1 / (variance / T(n) + T(epsilon)).squareRoot()
                m[row] = mu
                s[row] = inverse
                for j in 0..<n { yr[j] = (xr[j] - mu) * inverse * w[j] + b[j] }
            }
        }
        switch input.dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
    }

    /// With x̂ = (x − μ)s and ĝ = dy∘w: dx = s(ĝ − mean(ĝ) − x̂·mean(ĝ∘x̂)); dw = Σ dy∘x̂; db = Σ dy.
    static func layerNormBackward(input: Tensor, weight: Tensor, mean: Tensor, inverseStd: Tensor, gradient: Tensor) -> (Tensor, Tensor, Tensor) {
        let x0 = input.materialized(), w0 = weight.materialized(), dy = gradient.materialized()
        let n = input.shape.last!, rows = input.count / n
        let dxTensor = Tensor(shape: input.shape, dtype: input.dtype, zeroed: false)
        let dwTensor = Tensor.zeros(weight.shape, dtype: weight.dtype)
        let dbTensor = Tensor.zeros(weight.shape, dtype: weight.dtype)
        func run<T: TensorScalar>(_: T.Type) {
            let x = x0.pointer(T.self), w = w0.pointer(T.self), g = dy.pointer(T.self)
            let m = mean.pointer(T.self), s = inverseStd.pointer(T.self)
            let dx = dxTensor.pointer(T.self), dw = dwTensor.pointer(T.self), db = dbTensor.pointer(T.self)
            for row in 0..<rows {
                let xr = x + row * n, gr = g + row * n, dr = dx + row * n
                let mu = m[row], inverse = s[row]
                var meanG = T.zero, meanGX = T.zero
                for j in 0..<n {
                    let xhat = (xr[j] - mu) * inverse
                    let gw = gr[j] * w[j]
                    meanG += gw
                    meanGX += gw * xhat
                    dw[j] += gr[j] * xhat
                    db[j] += gr[j]
                }
                meanG /= T(n)
                meanGX /= T(n)
                for j in 0..<n {
                    let xhat = (xr[j] - mu) * inverse
                    dr[j] = inverse * (gr[j] * w[j] - meanG - xhat * meanGX)
                }
            }
        }
        switch input.dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
        return (dxTensor, dwTensor, dbTensor)
    }

    // MARK: Rotary embedding

    /// Rotate-half RoPE on `(B, T, H, D)`: for i < D/2,
    /// y_i = x_i cos − x_{i+D/2} sin,  y_{i+D/2} = x_{i+D/2} cos + x_i sin.
    /// The backward pass is the inverse rotation (`inverse: true`, sin negated).
    static func rotary(_ input: Tensor, _ rotary: RotaryEmbedding, positions: [Int], inverse: Bool, into result: Tensor) {
        let heads = input.shape[2], d = input.shape[3], half = d / 2
        // The inverse rotation is the forward one with sin negated.
        let sign = inverse ? -1.0 : 1.0
        func run<T: TensorScalar & SIMDScalar>(_: T.Type, cosine: [T], sine: [T]) {
            let x = input.pointer(T.self), y = result.pointer(T.self), sign = T(sign)
            let vectorEnd = half - half % 8
            cosine.withUnsafeBufferPointer { cosTable in
                sine.withUnsafeBufferPointer { sinTable in
                    positions.withUnsafeBufferPointer { positions in
                        parallelFor(positions.count, workPerItem: 2 * heads * d) { rows in
                            for row in rows {
                                let c = cosTable.baseAddress! + positions[row] * half, s = sinTable.baseAddress! + positions[row] * half
                                for h in 0..<heads {
                                    let xr = x + (row * heads + h) * d, yr = y + (row * heads + h) * d
                                    // Eight lanes at a time in explicit vectors: the compiler
                                    // cannot rule out that x and y overlap.
                                    for i in stride(from: 0, to: vectorEnd, by: 8) {
                                        let a = load(xr + i), b = load(xr + i + half), ci = load(c + i), si = sign * load(s + i)
                                        store(a * ci - b * si, yr + i)
                                        store(b * ci + a * si, yr + i + half)
                                    }
                                    for i in vectorEnd..<half {
                                        let a = xr[i], b = xr[i + half], si = sign * s[i]
                                        yr[i] = a * c[i] - b * si
                                        yr[i + half] = b * c[i] + a * si
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        switch input.dtype {
        case .float32: run(Float.self, cosine: rotary.cosine32, sine: rotary.sine32)
        case .float64: run(Double.self, cosine: rotary.cosine64, sine: rotary.sine64)
        }
    }

    /// Rows per partial sum in reductions across rows (weight gradients): fixed, so the order of
    /// additions depends on the shape alone.
    static let rowsPerReductionBlock = 64
}
