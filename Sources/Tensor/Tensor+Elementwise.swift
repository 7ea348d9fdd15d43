/// Elementwise functions of two tensors, with NumPy broadcasting.
public enum BinaryFunction: Sendable {
    case add, subtract, multiply, divide, maximum, minimum
    /// Comparisons give 1 where true and 0 where false; no gradient flows through them.
    case greater, greaterOrEqual, less, lessOrEqual, equal

    var isDifferentiable: Bool {
        switch self {
        case .add, .subtract, .multiply, .divide, .maximum, .minimum: return true
        default: return false
        }
    }
}

/// Elementwise functions of one tensor. Scalar forms of the binary ops (`x * 2`, `x + 1`,
/// `1 / x`) are the `affine` and `reciprocal` cases, so they cost one pass and no broadcast.
public enum UnaryFunction: Sendable {
    case negate, exp, log, sqrt, rsqrt, square, reciprocal, abs
    case power(Double)
    case tanh, sigmoid, relu, silu
    /// GELU in its tanh form: 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))).
    case gelu
    /// Clamps into [lower, upper] (either bound optional). The gradient is 1 inside the closed
    /// range and 0 outside it, which PPO's ratio clipping relies on.
    case clamp(lower: Double?, upper: Double?)
    /// scale · x + shift.
    case affine(scale: Double, shift: Double)
}

extension Tensor {
    /// Applies `function` elementwise with broadcasting.
    public static func binary(_ function: BinaryFunction, _ lhs: Tensor, _ rhs: Tensor) -> Tensor {
        precondition(lhs.dtype == rhs.dtype, "\(function): dtypes \(lhs.dtype) and \(rhs.dtype) differ")
        let shape = broadcastShapes(lhs.shape, rhs.shape, operation: "\(function)")
        let result = Tensor(shape: shape, dtype: lhs.dtype, zeroed: false)
        Kernels.binary(function, lhs.broadcastView(to: shape), rhs.broadcastView(to: shape), into: result)
        guard function.isDifferentiable else { return result }
        return result.recording(.binary(function, lhs, rhs), inputs: lhs, rhs)
    }

    /// Applies `function` elementwise.
    public func applying(_ function: UnaryFunction) -> Tensor {
        let input = materialized()
        let result = Tensor(shape: shape, dtype: dtype, zeroed: false)
        Kernels.unary(function, input, into: result)
        return result.recording(.unary(function, self), inputs: self)
    }

    public static func + (lhs: Tensor, rhs: Tensor) -> Tensor { binary(.add, lhs, rhs) }
    public static func - (lhs: Tensor, rhs: Tensor) -> Tensor { binary(.subtract, lhs, rhs) }
    public static func * (lhs: Tensor, rhs: Tensor) -> Tensor { binary(.multiply, lhs, rhs) }
    public static func / (lhs: Tensor, rhs: Tensor) -> Tensor { binary(.divide, lhs, rhs) }
    public static prefix func - (operand: Tensor) -> Tensor { operand.applying(.negate) }

    public static func + (lhs: Tensor, rhs: Double) -> Tensor { lhs.applying(.affine(scale: 1, shift: rhs)) }
    public static func + (lhs: Double, rhs: Tensor) -> Tensor { rhs.applying(.affine(scale: 1, shift: lhs)) }
    public static func - (lhs: Tensor, rhs: Double) -> Tensor { lhs.applying(.affine(scale: 1, shift: -rhs)) }
    public static func - (lhs: Double, rhs: Tensor) -> Tensor { rhs.applying(.affine(scale: -1, shift: lhs)) }
    public static func * (lhs: Tensor, rhs: Double) -> Tensor { lhs.applying(.affine(scale: rhs, shift: 0)) }
    public static func * (lhs: Double, rhs: Tensor) -> Tensor { rhs.applying(.affine(scale: lhs, shift: 0)) }
    public static func / (lhs: Tensor, rhs: Double) -> Tensor { lhs.applying(.affine(scale: 1 / rhs, shift: 0)) }
    public static func / (lhs: Double, rhs: Tensor) -> Tensor {
        lhs == 1 ? rhs.applying(.reciprocal) : rhs.applying(.reciprocal).applying(.affine(scale: lhs, shift: 0))
    }

    /// Elementwise maximum with broadcasting; the gradient goes to the larger operand (to `lhs`
    /// on ties).
    public static func maximum(_ lhs: Tensor, _ rhs: Tensor) -> Tensor { binary(.maximum, lhs, rhs) }
    /// Elementwise minimum with broadcasting; the gradient goes to the smaller operand (to `lhs`
    /// on ties).
    public static func minimum(_ lhs: Tensor, _ rhs: Tensor) -> Tensor { binary(.minimum, lhs, rhs) }
    /// Elementwise maximum with a scalar.
    public static func maximum(_ lhs: Tensor, _ rhs: Double) -> Tensor { lhs.applying(.clamp(lower: rhs, upper: nil)) }
    /// Elementwise minimum with a scalar.
    public static func minimum(_ lhs: Tensor, _ rhs: Double) -> Tensor { lhs.applying(.clamp(lower: nil, upper: rhs)) }

    public func exp() -> Tensor { applying(.exp) }
    public func log() -> Tensor { applying(.log) }
    public func sqrt() -> Tensor { applying(.sqrt) }
    public func rsqrt() -> Tensor { applying(.rsqrt) }
    public func squared() -> Tensor { applying(.square) }
    public func reciprocal() -> Tensor { applying(.reciprocal) }
    public func abs() -> Tensor { applying(.abs) }
    public func pow(_ exponent: Double) -> Tensor { applying(.power(exponent)) }
    public func tanh() -> Tensor { applying(.tanh) }
    public func sigmoid() -> Tensor { applying(.sigmoid) }
    public func relu() -> Tensor { applying(.relu) }
    public func silu() -> Tensor { applying(.silu) }
    public func gelu() -> Tensor { applying(.gelu) }
    public func clamped(min lower: Double? = nil, max upper: Double? = nil) -> Tensor {
        applying(.clamp(lower: lower, upper: upper))
    }

    // Comparisons: 1 where true, 0 where false; not differentiable.
    public func isGreater(than other: Tensor) -> Tensor { Tensor.binary(.greater, self, other) }
    public func isGreaterOrEqual(to other: Tensor) -> Tensor { Tensor.binary(.greaterOrEqual, self, other) }
    public func isLess(than other: Tensor) -> Tensor { Tensor.binary(.less, self, other) }
    public func isLessOrEqual(to other: Tensor) -> Tensor { Tensor.binary(.lessOrEqual, self, other) }
    public func isEqual(to other: Tensor) -> Tensor { Tensor.binary(.equal, self, other) }
    public func isGreater(than value: Double) -> Tensor { isGreater(than: Tensor.scalar(value, dtype: dtype)) }
    public func isLess(than value: Double) -> Tensor { isLess(than: Tensor.scalar(value, dtype: dtype)) }

    /// Picks `ifTrue` where `condition` is nonzero and `ifFalse` elsewhere, with broadcasting.
    /// Gradients flow to the picked operand; the condition gets none.
    public static func select(_ condition: Tensor, _ ifTrue: Tensor, _ ifFalse: Tensor) -> Tensor {
        precondition(ifTrue.dtype == ifFalse.dtype && condition.dtype == ifTrue.dtype, "select: dtypes must agree")
        let shape = broadcastShapes(broadcastShapes(condition.shape, ifTrue.shape, operation: "select"), ifFalse.shape, operation: "select")
        let result = Tensor(shape: shape, dtype: ifTrue.dtype, zeroed: false)
        Kernels.select(condition.broadcastView(to: shape), ifTrue.broadcastView(to: shape), ifFalse.broadcastView(to: shape), into: result)
        return result.recording(.select(condition, ifTrue, ifFalse), inputs: ifTrue, ifFalse)
    }

    /// Replaces elements where `mask` is nonzero with `value` (a causal or padding mask).
    public func maskedFill(_ mask: Tensor, with value: Double) -> Tensor {
        Tensor.select(mask, Tensor.scalar(value, dtype: dtype), self)
    }
}
