import RealModule

extension Kernels {
    static func binary(_ function: BinaryFunction, _ lhs: Tensor, _ rhs: Tensor, into result: Tensor) {
        switch result.dtype {
        case .float32: binary(Float.self, function, lhs, rhs, into: result)
        case .float64: binary(Double.self, function, lhs, rhs, into: result)
        }
    }

    private static func binary<T: TensorScalar>(_: T.Type, _ function: BinaryFunction, _ lhs: Tensor, _ rhs: Tensor, into result: Tensor) {
        let loop = StridedLoop(shape: result.shape, strides: [result.strides, lhs.strides, rhs.strides])
        let inner = loop.innerStrides
        let out = result.pointer(T.self), a = lhs.pointer(T.self), b = rhs.pointer(T.self)
        let sa = inner[1], sb = inner[2]
        precondition(inner[0] == 1 || loop.shape.isEmpty, "binary kernel writes a dense result")
        @inline(__always) func run(_ op: (T, T) -> T) {
            loop.forEachRun { offsets, n in
                let o = out + offsets[0], x = a + offsets[1], y = b + offsets[2]
                if sa == 1 && sb == 1 {
                    for i in 0..<n { o[i] = op(x[i], y[i]) }
                } else if sa == 1 && sb == 0 {
                    let yv = y[0]
                    for i in 0..<n { o[i] = op(x[i], yv) }
                } else if sa == 0 && sb == 1 {
                    let xv = x[0]
                    for i in 0..<n { o[i] = op(xv, y[i]) }
                } else {
                    for i in 0..<n { o[i] = op(x[i * sa], y[i * sb]) }
                }
            }
        }
        switch function {
        case .add: run { $0 + $1 }
        case .subtract: run { $0 - $1 }
        case .multiply: run { $0 * $1 }
        case .divide: run { $0 / $1 }
        case .maximum: run { $0 >= $1 ? $0 : $1 }
        case .minimum: run { $0 <= $1 ? $0 : $1 }
        case .greater: run { $0 > $1 ? 1 : 0 }
        case .greaterOrEqual: run { $0 >= $1 ? 1 : 0 }
        case .less: run { $0 < $1 ? 1 : 0 }
        case .lessOrEqual: run { $0 <= $1 ? 1 : 0 }
        case .equal: run { $0 == $1 ? 1 : 0 }
        }
    }

    static func select(_ condition: Tensor, _ ifTrue: Tensor, _ ifFalse: Tensor, into result: Tensor) {
        switch result.dtype {
        case .float32: select(Float.self, condition, ifTrue, ifFalse, into: result)
        case .float64: select(Double.self, condition, ifTrue, ifFalse, into: result)
        }
    }

    private static func select<T: TensorScalar>(_: T.Type, _ condition: Tensor, _ ifTrue: Tensor, _ ifFalse: Tensor, into result: Tensor) {
        let loop = StridedLoop(shape: result.shape, strides: [result.strides, condition.strides, ifTrue.strides, ifFalse.strides])
        let inner = loop.innerStrides
        let out = result.pointer(T.self), c = condition.pointer(T.self), a = ifTrue.pointer(T.self), b = ifFalse.pointer(T.self)
        let sc = inner[1], sa = inner[2], sb = inner[3]
        loop.forEachRun { offsets, n in
            let o = out + offsets[0], cp = c + offsets[1], ap = a + offsets[2], bp = b + offsets[3]
            for i in 0..<n { o[i] = cp[i * sc] != 0 ? ap[i * sa] : bp[i * sb] }
        }
    }

    // MARK: Unary forward and backward, side by side

    static func unary(_ function: UnaryFunction, _ input: Tensor, into result: Tensor) {
        switch result.dtype {
        case .float32: unary(function, input.pointer(Float.self), result.pointer(Float.self), result.count)
        case .float64: unary(function, input.pointer(Double.self), result.pointer(Double.self), result.count)
        }
    }

    /// `dx = dy * f'(x)` with `x` the input and `y` the forward output.
    static func unaryBackward(_ function: UnaryFunction, input: Tensor, output: Tensor, gradient: Tensor) -> Tensor {
        let x = input.materialized(), dy = gradient.materialized()
        let result = Tensor(shape: input.shape, dtype: input.dtype, zeroed: false)
        switch result.dtype {
        case .float32:
            unaryBackward(function, x.pointer(Float.self), output.pointer(Float.self), dy.pointer(Float.self), result.pointer(Float.self), result.count)
        case .float64:
            unaryBackward(function, x.pointer(Double.self), output.pointer(Double.self), dy.pointer(Double.self), result.pointer(Double.self), result.count)
        }
        return result
    }

    @inline(__always)
    static func sigmoid<T: TensorScalar>(_ x: T) -> T {
        if x >= 0 { return 1 / (1 + T.exp(-x)) }
        let e = T.exp(x)
        return e / (1 + e)
    }

    private static let geluScale = (2.0 / Double.pi).squareRoot()

    static func unary<T: TensorScalar>(_ function: UnaryFunction, _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ n: Int) {
        switch function {
        case .negate: for i in 0..<n { y[i] = -x[i] }
        case .exp: for i in 0..<n { y[i] = T.exp(x[i]) }
        case .log: for i in 0..<n { y[i] = T.log(x[i]) }
        case .sqrt: for i in 0..<n { y[i] = x[i].squareRoot() }
        case .rsqrt: for i in 0..<n { y[i] = 1 / x[i].squareRoot() }
        case .square: for i in 0..<n { y[i] = x[i] * x[i] }
        case .reciprocal: for i in 0..<n { y[i] = 1 / x[i] }
        case .abs: for i in 0..<n { y[i] = Swift.abs(x[i]) }
        case .power(let p):
            let e = T(p)
            if p == 2 {
                for i in 0..<n { y[i] = x[i] * x[i] }
            } else if let integer = Int(exactly: p) {
                // RealModule's pow(x, y: Self) is NaN for every x < 0; the Int overload is not.
                for i in 0..<n { y[i] = T.pow(x[i], integer) }
            } else {
                for i in 0..<n { y[i] = T.pow(x[i], e) }
            }
        case .tanh: for i in 0..<n { y[i] = T.tanh(x[i]) }
        case .sigmoid: for i in 0..<n { y[i] = sigmoid(x[i]) }
        case .relu: for i in 0..<n { y[i] = x[i] > 0 ? x[i] : 0 }
        case .silu: for i in 0..<n { y[i] = x[i] * sigmoid(x[i]) }
        case .gelu:
            let c = T(geluScale), k = T(0.044715)
            for i in 0..<n {
                let v = x[i]
                y[i] = 0.5 * v * (1 + T.tanh(c * (v + k * v * v * v)))
            }
        case .clamp(let lower, let upper):
            let lo = lower.map { T($0) } ?? -T.infinity, hi = upper.map { T($0) } ?? T.infinity
            for i in 0..<n { y[i] = Swift.min(Swift.max(x[i], lo), hi) }
        case .affine(let scale, let shift):
            let a = T(scale), b = T(shift)
            for i in 0..<n { y[i] = a * x[i] + b }
        }
    }

    static func unaryBackward<T: TensorScalar>(
        _ function: UnaryFunction, _ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>,
        _ dx: UnsafeMutablePointer<T>, _ n: Int
    ) {
        switch function {
        case .negate: for i in 0..<n { dx[i] = -dy[i] }
        case .exp: for i in 0..<n { dx[i] = dy[i] * y[i] }
        case .log: for i in 0..<n { dx[i] = dy[i] / x[i] }
        case .sqrt: for i in 0..<n { dx[i] = dy[i] * 0.5 / y[i] }
        case .rsqrt: for i in 0..<n { dx[i] = dy[i] * -0.5 * y[i] * y[i] * y[i] }
        case .square: for i in 0..<n { dx[i] = dy[i] * 2 * x[i] }
        case .reciprocal: for i in 0..<n { dx[i] = -dy[i] * y[i] * y[i] }
        case .abs: for i in 0..<n { dx[i] = x[i] > 0 ? dy[i] : (x[i] < 0 ? -dy[i] : 0) }
        case .power(let p):
            let e = T(p)
            if let integer = Int(exactly: p) {
                // Int overload: pow(x, 1.0) would be NaN for x < 0, so even x.pow(2) had NaN gradients.
                for i in 0..<n { dx[i] = dy[i] * e * T.pow(x[i], integer - 1) }
            } else {
                for i in 0..<n { dx[i] = dy[i] * e * T.pow(x[i], e - 1) }
            }
        case .tanh: for i in 0..<n { dx[i] = dy[i] * (1 - y[i] * y[i]) }
        case .sigmoid: for i in 0..<n { dx[i] = dy[i] * y[i] * (1 - y[i]) }
        case .relu: for i in 0..<n { dx[i] = x[i] > 0 ? dy[i] : 0 }
        case .silu:
            for i in 0..<n {
                let s = sigmoid(x[i])
                dx[i] = dy[i] * s * (1 + x[i] * (1 - s))
            }
        case .gelu:
            let c = T(geluScale), k = T(0.044715)
            for i in 0..<n {
                let v = x[i]
                let t = T.tanh(c * (v + k * v * v * v))
                dx[i] = dy[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * k * v * v))
            }
        case .clamp(let lower, let upper):
            let lo = lower.map { T($0) } ?? -T.infinity, hi = upper.map { T($0) } ?? T.infinity
            for i in 0..<n { dx[i] = (x[i] >= lo && x[i] <= hi) ? dy[i] : 0 }
        case .affine(let scale, _):
            let a = T(scale)
            for i in 0..<n { dx[i] = a * dy[i] }
        }
    }
}
