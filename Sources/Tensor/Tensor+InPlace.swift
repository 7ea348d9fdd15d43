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
            Kernels.parallelElements(count) { start, n in
                for index in start..<(start + n) { p[index] *= f }
            }
        case .float64:
            let p = pointer(Double.self)
            Kernels.parallelElements(count) { start, n in
                for index in start..<(start + n) { p[index] *= factor }
            }
        }
    }

    /// One AdamW step (Loshchilov & Hutter; torch.optim.AdamW's arithmetic) on this parameter, in
    /// place, with its gradient g and its first and second moments m and v, updated in place too:
    ///
    ///     p ← p·(1 − lr·λ);  m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²
    ///     p ← p − (lr / c₁)·m / (√v / √c₂ + ε)
    ///
    /// where c₁ = 1 − β₁ᵗ and c₂ = 1 − β₂ᵗ are the bias corrections of step t. All four tensors
    /// share one shape and dtype; the parameter and moments are dense. Each element is updated by
    /// one thread, so the result does not depend on the thread count.
    public func applyAdamW(gradient: Tensor, firstMoment: Tensor, secondMoment: Tensor, _ step: AdamWStep) {
        for (name, tensor) in [("gradient", gradient), ("first moment", firstMoment), ("second moment", secondMoment)] {
            precondition(tensor.shape == shape && tensor.dtype == dtype, "applyAdamW: \(name) \(tensor.shape) \(tensor.dtype) does not match the parameter's \(shape) \(dtype)")
        }
        let parameter = self, gradient = gradient.materialized()
        precondition([parameter, firstMoment, secondMoment].allSatisfy(\.isContiguous), "applyAdamW updates contiguous tensors only")
        for tensor in [parameter, firstMoment, secondMoment] { tensor.storage.version += 1 }
        switch dtype {
        case .float32: Kernels.adamW(Float.self, parameter, gradient, firstMoment, secondMoment, step)
        case .float64: Kernels.adamW(Double.self, parameter, gradient, firstMoment, secondMoment, step)
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

    /// How many elements are NaN or infinite.
    public var nonFiniteCount: Int {
        switch dtype {
        case .float32: return withUnsafeBufferPointer(as: Float.self) { $0.reduce(0) { $0 + ($1.isFinite ? 0 : 1) } }
        case .float64: return withUnsafeBufferPointer(as: Double.self) { $0.reduce(0) { $0 + ($1.isFinite ? 0 : 1) } }
        }
    }
}
