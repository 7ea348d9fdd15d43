// In-place updates outside autodiff: optimizer steps, gradient clipping, caches. They write
// through every view sharing the storage.
extension Tensor {
    /// Multiplies every element by `factor`.
    public func scaleInPlace(by factor: Double) {
        precondition(isContiguous, "scaleInPlace needs a contiguous tensor")
        storage.version += 1
        switch dtype {
        case .float32:
            let p = pointer(Float.self), f = Float(factor)
            for index in 0..<count { p[index] *= f }
        case .float64:
            let p = pointer(Double.self)
            for index in 0..<count { p[index] *= factor }
        }
    }

    /// Adds `other` (broadcast to this shape) times `scale` into this tensor.
    public func addInPlace(_ other: Tensor, scale: Double = 1) {
        precondition(other.dtype == dtype, "addInPlace: dtypes \(dtype) and \(other.dtype) differ")
        let source = scale == 1 ? other : withoutGradients { other * scale }
        storage.version += 1
        Kernels.accumulate(source.broadcastView(to: shape), into: self, destinationStrides: strides)
    }

    /// Sets every element to `value`.
    public func fill(_ value: Double) {
        assign(Tensor.scalar(value, dtype: dtype))
    }

    /// Whether no element is NaN or infinite.
    public var allFinite: Bool {
        switch dtype {
        case .float32: return withUnsafeBufferPointer(as: Float.self) { $0.allSatisfy { $0.isFinite } }
        case .float64: return withUnsafeBufferPointer(as: Double.self) { $0.allSatisfy { $0.isFinite } }
        }
    }
}
