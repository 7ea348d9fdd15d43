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
        // The switch runs once per run, outside the element loops, so each loop inlines its op.
        @inline(__always) func apply(_ o: UnsafeMutablePointer<T>, _ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ n: Int, _ op: (T, T) -> T) {
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
        loop.parallelForEachRun { offsets, n in
            let o = out + offsets[0], x = UnsafePointer(a + offsets[1]), y = UnsafePointer(b + offsets[2])
            switch function {
            case .add: apply(o, x, y, n) { $0 + $1 }
            case .subtract: apply(o, x, y, n) { $0 - $1 }
            case .multiply: apply(o, x, y, n) { $0 * $1 }
            case .divide: apply(o, x, y, n) { $0 / $1 }
            case .maximum: apply(o, x, y, n) { $0 >= $1 ? $0 : $1 }
            case .minimum: apply(o, x, y, n) { $0 <= $1 ? $0 : $1 }
            case .greater: apply(o, x, y, n) { $0 > $1 ? 1 : 0 }
            case .greaterOrEqual: apply(o, x, y, n) { $0 >= $1 ? 1 : 0 }
            case .less: apply(o, x, y, n) { $0 < $1 ? 1 : 0 }
            case .lessOrEqual: apply(o, x, y, n) { $0 <= $1 ? 1 : 0 }
            case .equal: apply(o, x, y, n) { $0 == $1 ? 1 : 0 }
            }
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
        loop.parallelForEachRun { offsets, n in
            let o = out + offsets[0], cp = c + offsets[1], ap = a + offsets[2], bp = b + offsets[3]
            for i in 0..<n { o[i] = cp[i * sc] != 0 ? ap[i * sa] : bp[i * sb] }
        }
    }

    // MARK: Unary forward and backward, side by side

    static func unary(_ function: UnaryFunction, _ input: Tensor, into result: Tensor) {
        func run<T: TensorScalar>(_: T.Type) {
            let x = input.pointer(T.self), y = result.pointer(T.self)
            parallelElements(result.count, workPerElement: function.workPerElement) { start, n in
                unary(function, x + start, y + start, n)
            }
        }
        switch result.dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
    }

    /// `dx = dy * f'(x)` with `x` the input and `y` the forward output.
    static func unaryBackward(_ function: UnaryFunction, input: Tensor, output: Tensor, gradient: Tensor) -> Tensor {
        let x = input.materialized(), dy = gradient.materialized()
        let result = Tensor(shape: input.shape, dtype: input.dtype, zeroed: false)
        func run<T: TensorScalar>(_: T.Type) {
            let xp = x.pointer(T.self), yp = output.pointer(T.self), dyp = dy.pointer(T.self), dxp = result.pointer(T.self)
            parallelElements(result.count, workPerElement: function.workPerElement) { start, n in
                unaryBackward(function, xp + start, yp + start, dyp + start, dxp + start, n)
            }
        }
        switch result.dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
        return result
    }

    /// σ(x) from e = e^(−|x|), which never overflows: 1/(1 + e) for x ≥ 0, e/(1 + e) below. One
    /// division and a select rather than a branch, so loops over it vectorise.
    @inline(__always)
    static func sigmoid<T: TensorScalar>(_ x: T) -> T {
        let e = exponential(-Swift.abs(x))
        let r = 1 / (1 + e)
        return x >= 0 ? r : e * r
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

extension UnaryFunction {
    /// Rough cost of one element relative to a copy, for deciding whether to split over threads.
    var workPerElement: Int {
        switch self {
        case .negate, .square, .abs, .relu, .clamp, .affine: return 1
        case .sqrt, .rsqrt, .reciprocal: return 2
        case .exp, .log, .power, .tanh, .sigmoid, .silu, .gelu: return 8
        }
    }
}
