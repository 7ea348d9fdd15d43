import Foundation

/// An n-dimensional, row-major array of `Float` or `Double` that records how it was computed,
/// so that gradients can flow back through it.
///
/// A tensor is a *view*: a shape, strides and an offset over a shared `TensorStorage`. Transpose,
/// permute and slice make views without copying; kernels that need dense memory copy on read, and
/// `matmul` hands transposed views to BLAS as transpose flags.
///
/// Tensors are reference types, like PyTorch's: an optimizer updates a parameter in place and
/// every holder sees it.
public final class Tensor {
    /// The size of each dimension, outermost first.
    public let shape: [Int]
    /// Elements to step in storage per unit of each dimension.
    public let strides: [Int]
    /// Element offset of the first scalar in `storage`.
    let offset: Int
    /// Never reassigned; a `var` only so that `isExclusivelyHeld` can ask whether this tensor
    /// holds the only reference to it.
    private(set) var storage: TensorStorage

    /// Whether gradients are computed for this tensor. Set it on leaves (parameters, inputs to a
    /// gradient check); results of ops inherit it from their inputs.
    public var requiresGradient: Bool
    /// The gradient accumulated by `backward()`; nil until the first backward pass reaches it.
    public internal(set) var gradient: Tensor?
    /// The op that produced this tensor, or nil for a leaf or a tensor made in no-grad mode.
    var operation: Operation?

    init(storage: TensorStorage, shape: [Int], strides: [Int], offset: Int) {
        self.storage = storage
        self.shape = shape
        self.strides = strides
        self.offset = offset
        self.requiresGradient = false
    }

    /// A new dense tensor; zeroed unless `zeroed` is false, in which case the caller writes every
    /// element before it is read.
    init(shape: [Int], dtype: DType, zeroed: Bool = true) {
        for dimension in shape {
            precondition(dimension >= 0, "negative dimension in shape \(shape)")
        }
        let count = shape.reduce(1, *)
        storage = TensorStorage(dtype: dtype, count: count, zeroed: zeroed)
        self.shape = shape
        self.strides = Tensor.contiguousStrides(for: shape)
        self.offset = 0
        self.requiresGradient = false
    }

    // MARK: - Shape facts

    /// The element type.
    public var dtype: DType { storage.dtype }
    /// Number of dimensions.
    public var rank: Int { shape.count }
    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
    /// Counts in-place writes to this tensor's storage (shared by all its views) through
    /// `assign`, `fill`, `addInPlace`, `scaleInPlace` and `withUnsafeMutableBufferPointer`. A copy
    /// derived from the values, such as a fused weight, is stale once this changes.
    public var storageVersion: Int { storage.version }
    /// Whether this tensor was produced by an op that gradients flow back through.
    public var hasOperation: Bool { operation != nil }

    /// Row-major strides of a dense tensor of this shape.
    static func contiguousStrides(for shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[axis] = running
            running *= Swift.max(shape[axis], 1)
        }
        return strides
    }

    /// Whether the elements are dense and in row-major order (dimensions of size 1 may have any
    /// stride).
    public var isContiguous: Bool {
        var expected = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) where shape[axis] != 1 {
            if strides[axis] != expected { return false }
            expected *= shape[axis]
        }
        return true
    }

    /// Whether `tensor` is the only reference to its tensor, that tensor the only one to its
    /// storage, and its elements dense: then nothing else can observe a write through it. The
    /// backward pass sums gradients in place only into tensors held this way.
    static func isExclusivelyHeld(_ tensor: inout Tensor) -> Bool {
        isKnownUniquelyReferenced(&tensor) && isKnownUniquelyReferenced(&tensor.storage) && tensor.isContiguous
    }

    /// Resolves a possibly negative axis against the rank.
    func normalizedAxis(_ axis: Int, rank: Int? = nil) -> Int {
        let rank = rank ?? self.rank
        let resolved = axis < 0 ? axis + rank : axis
        precondition(resolved >= 0 && resolved < rank, "axis \(axis) is out of range for shape \(shape)")
        return resolved
    }

    // MARK: - Raw access (kernels and the BLAS shim only)

    /// Pointer to the first element of this view.
    @inline(__always)
    func pointer<T: TensorScalar>(_ type: T.Type) -> UnsafeMutablePointer<T> {
        storage.pointer(T.self) + offset
    }

    /// A dense version of this tensor for kernels to read: itself when already contiguous,
    /// otherwise a copy. No gradient is recorded; the calling op records the original input.
    func materialized() -> Tensor {
        if isContiguous { return self }
        let result = Tensor(shape: shape, dtype: dtype, zeroed: false)
        Kernels.copy(from: self, into: result)
        return result
    }

    /// Calls `body` with the scalars of this tensor in row-major order.
    ///
    /// The tensor's dtype must match `T`. The buffer is valid only inside `body`.
    public func withUnsafeBufferPointer<T: TensorScalar, R>(
        as type: T.Type, _ body: (UnsafeBufferPointer<T>) throws -> R
    ) rethrows -> R {
        let dense = materialized()
        return try withExtendedLifetime(dense) {
            try body(UnsafeBufferPointer(start: dense.pointer(T.self), count: dense.count))
        }
    }

    /// Calls `body` with this tensor's scalars for writing in place. The tensor must be
    /// contiguous (a parameter or any freshly computed tensor is).
    ///
    /// This writes through every view sharing the storage and bypasses autodiff: use it for
    /// optimizer updates and initialisation, not inside a differentiated computation.
    public func withUnsafeMutableBufferPointer<T: TensorScalar, R>(
        as type: T.Type, _ body: (UnsafeMutableBufferPointer<T>) throws -> R
    ) rethrows -> R {
        precondition(isContiguous, "in-place access needs a contiguous tensor, got strides \(strides) for shape \(shape)")
        storage.version += 1
        return try body(UnsafeMutableBufferPointer(start: pointer(T.self), count: count))
    }
}

// MARK: - Creation

extension Tensor {
    /// A tensor of zeros.
    public static func zeros(_ shape: [Int], dtype: DType = .float32) -> Tensor {
        Tensor(shape: shape, dtype: dtype, zeroed: true)
    }

    /// A tensor of ones.
    public static func ones(_ shape: [Int], dtype: DType = .float32) -> Tensor {
        full(shape, value: 1, dtype: dtype)
    }

    /// A tensor with every element set to `value`.
    public static func full(_ shape: [Int], value: Double, dtype: DType = .float32) -> Tensor {
        let result = Tensor(shape: shape, dtype: dtype, zeroed: false)
        switch dtype {
        case .float32: result.pointer(Float.self).update(repeating: Float(value), count: result.count)
        case .float64: result.pointer(Double.self).update(repeating: value, count: result.count)
        }
        return result
    }

    /// A 0-dimensional tensor holding one scalar.
    public static func scalar(_ value: Double, dtype: DType = .float32) -> Tensor {
        full([], value: value, dtype: dtype)
    }

    /// A tensor from `Float` scalars in row-major order.
    public convenience init(shape: [Int], scalars: [Float]) {
        self.init(shape: shape, dtype: .float32, zeroed: false)
        precondition(scalars.count == count, "\(scalars.count) scalars cannot fill shape \(shape)")
        scalars.withUnsafeBufferPointer { pointer(Float.self).update(from: $0.baseAddress!, count: $0.count) }
    }

    /// A tensor from `Double` scalars in row-major order, stored as `dtype`.
    public convenience init(shape: [Int], values: [Double], dtype: DType = .float64) {
        self.init(shape: shape, dtype: dtype, zeroed: false)
        precondition(values.count == count, "\(values.count) values cannot fill shape \(shape)")
        switch dtype {
        case .float64:
            values.withUnsafeBufferPointer { pointer(Double.self).update(from: $0.baseAddress!, count: $0.count) }
        case .float32:
            let destination = pointer(Float.self)
            for index in 0..<values.count { destination[index] = Float(values[index]) }
        }
    }

    /// The scalars in row-major order, as `Float`.
    public var floats: [Float] {
        switch dtype {
        case .float32: return withUnsafeBufferPointer(as: Float.self) { Array($0) }
        case .float64: return withUnsafeBufferPointer(as: Double.self) { $0.map { Float($0) } }
        }
    }

    /// The scalars in row-major order, as `Double`.
    public var doubles: [Double] {
        switch dtype {
        case .float32: return withUnsafeBufferPointer(as: Float.self) { $0.map { Double($0) } }
        case .float64: return withUnsafeBufferPointer(as: Double.self) { Array($0) }
        }
    }

    /// The single scalar of a one-element tensor.
    public var item: Double {
        precondition(count == 1, "item needs a one-element tensor, got shape \(shape)")
        switch dtype {
        case .float32: return Double(pointer(Float.self)[0])
        case .float64: return pointer(Double.self)[0]
        }
    }

    /// A dense copy in `dtype` that shares nothing with this tensor and records no gradient.
    public func converted(to dtype: DType) -> Tensor {
        let source = materialized()
        let result = Tensor(shape: shape, dtype: dtype, zeroed: false)
        let n = count
        switch (source.dtype, dtype) {
        case (.float32, .float32):
            result.pointer(Float.self).update(from: source.pointer(Float.self), count: n)
        case (.float64, .float64):
            result.pointer(Double.self).update(from: source.pointer(Double.self), count: n)
        case (.float32, .float64):
            let from = source.pointer(Float.self), to = result.pointer(Double.self)
            for index in 0..<n { to[index] = Double(from[index]) }
        case (.float64, .float32):
            let from = source.pointer(Double.self), to = result.pointer(Float.self)
            for index in 0..<n { to[index] = Float(from[index]) }
        }
        return result
    }

    /// A dense copy that records no gradient.
    public func copy() -> Tensor { converted(to: dtype) }

    /// A tensor sharing this one's storage that gradients do not flow through.
    public func detached() -> Tensor {
        Tensor(storage: storage, shape: shape, strides: strides, offset: offset)
    }

    /// Overwrites this tensor's elements with `source`'s (broadcast to this shape). In place and
    /// outside autodiff: for caches, optimizer state and initialisation.
    public func assign(_ source: Tensor) {
        precondition(source.dtype == dtype, "cannot assign \(source.dtype) to \(dtype)")
        _ = broadcastShapes(shape, source.shape, operation: "assign")
        storage.version += 1
        Kernels.copy(from: source.broadcastView(to: shape), into: self)
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let values = doubles
        let preview = values.prefix(8).map { String(format: "%.6g", $0) }.joined(separator: ", ")
        return "Tensor(\(dtype), shape: \(shape), [\(preview)\(values.count > 8 ? ", …" : "")])"
    }
}
