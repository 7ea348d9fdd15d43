/// NumPy broadcasting of two shapes; stops with a message naming both when they do not broadcast.
public func broadcastShapes(_ lhs: [Int], _ rhs: [Int], operation: String = "broadcast") -> [Int] {
    let rank = max(lhs.count, rhs.count)
    var result = [Int](repeating: 1, count: rank)
    for axis in 0..<rank {
        let l = axis < rank - lhs.count ? 1 : lhs[axis - (rank - lhs.count)]
        let r = axis < rank - rhs.count ? 1 : rhs[axis - (rank - rhs.count)]
        precondition(l == r || l == 1 || r == 1, "\(operation): shapes \(lhs) and \(rhs) do not broadcast")
        result[axis] = l == 1 ? r : l
    }
    return result
}

extension Tensor {
    /// A view of this tensor broadcast to `target` (stride 0 along stretched dimensions). No
    /// gradient is recorded: kernels use it to read operands.
    func broadcastView(to target: [Int]) -> Tensor {
        if target == shape { return self }
        precondition(target.count >= rank, "cannot broadcast shape \(shape) to \(target)")
        let lead = target.count - rank
        var newStrides = [Int](repeating: 0, count: target.count)
        for axis in 0..<rank {
            let size = shape[axis]
            precondition(size == target[lead + axis] || size == 1, "cannot broadcast shape \(shape) to \(target)")
            newStrides[lead + axis] = size == 1 ? 0 : strides[axis]
        }
        return Tensor(storage: storage, shape: target, strides: newStrides, offset: offset)
    }

    /// Sums `self` (a gradient) over the dimensions that broadcasting stretched from `target`.
    /// This is the one place where broadcast gradients are reduced back to an operand's shape.
    func summed(toShape target: [Int]) -> Tensor {
        if target == shape { return self }
        let result = Tensor.zeros(target, dtype: dtype)
        Kernels.accumulate(self, into: result, destinationStrides: result.broadcastView(to: shape).strides)
        return result
    }

    // MARK: - Differentiable layout ops

    /// The same elements in a new shape. One dimension may be -1 and is inferred. A view when
    /// the tensor is contiguous, a copy otherwise.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var resolved = newShape
        if let unknown = newShape.firstIndex(of: -1) {
            let known = newShape.enumerated().filter { $0.offset != unknown }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "cannot reshape \(shape) to \(newShape)")
            resolved[unknown] = count / known
        }
        precondition(resolved.reduce(1, *) == count, "cannot reshape \(shape) (\(count) elements) to \(newShape)")
        if resolved == shape { return self }
        let dense = materialized()
        let result = Tensor(storage: dense.storage, shape: resolved, strides: Tensor.contiguousStrides(for: resolved), offset: dense.offset)
        return result.recording(.reshape(self), inputs: self)
    }

    /// A view with the dimensions reordered: result dimension i is input dimension `axes[i]`.
    public func permuted(_ axes: [Int]) -> Tensor {
        precondition(axes.count == rank && Set(axes) == Set(0..<rank), "permutation \(axes) is invalid for shape \(shape)")
        let result = Tensor(storage: storage, shape: axes.map { shape[$0] }, strides: axes.map { strides[$0] }, offset: offset)
        return result.recording(.permute(self, axes: axes), inputs: self)
    }

    /// A view with two dimensions swapped (by default the last two, a matrix transpose).
    public func transposed(_ first: Int = -2, _ second: Int = -1) -> Tensor {
        let a = normalizedAxis(first), b = normalizedAxis(second)
        var axes = Array(0..<rank)
        axes.swapAt(a, b)
        return permuted(axes)
    }

    /// A view of indices `range` along `axis`.
    public func sliced(axis: Int, _ range: Range<Int>) -> Tensor {
        let axis = normalizedAxis(axis)
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[axis], "slice \(range) is out of bounds for axis \(axis) of shape \(shape)")
        var newShape = shape
        newShape[axis] = range.count
        let result = Tensor(storage: storage, shape: newShape, strides: strides, offset: offset + range.lowerBound * strides[axis])
        return result.recording(.slice(self, axis: axis, start: range.lowerBound), inputs: self)
    }

    /// Splits along `axis` into pieces of the given sizes (views).
    public func split(axis: Int, sizes: [Int]) -> [Tensor] {
        let axis = normalizedAxis(axis)
        precondition(sizes.reduce(0, +) == shape[axis], "split sizes \(sizes) do not add up to \(shape[axis]) along axis \(axis) of \(shape)")
        var start = 0
        return sizes.map { size in
            defer { start += size }
            return sliced(axis: axis, start..<(start + size))
        }
    }

    /// Joins tensors along `axis`; every other dimension must agree.
    public static func concatenate(_ tensors: [Tensor], axis: Int) -> Tensor {
        precondition(!tensors.isEmpty, "concatenate needs at least one tensor")
        let first = tensors[0]
        let axis = first.normalizedAxis(axis)
        var newShape = first.shape
        newShape[axis] = 0
        for tensor in tensors {
            precondition(tensor.dtype == first.dtype, "concatenate: dtypes \(first.dtype) and \(tensor.dtype) differ")
            var expected = first.shape
            expected[axis] = tensor.shape[axis]
            precondition(tensor.shape == expected, "concatenate along axis \(axis): shapes \(first.shape) and \(tensor.shape) differ off that axis")
            newShape[axis] += tensor.shape[axis]
        }
        let result = Tensor(shape: newShape, dtype: first.dtype, zeroed: false)
        var start = 0
        for tensor in tensors {
            var piece = newShape
            piece[axis] = tensor.shape[axis]
            let view = Tensor(storage: result.storage, shape: piece, strides: result.strides, offset: start * result.strides[axis])
            Kernels.copy(from: tensor, into: view)
            start += tensor.shape[axis]
        }
        return result.recording(.concatenate(tensors, axis: axis), inputList: tensors)
    }

    /// Materialises a broadcast of this tensor to `target`; its gradient sums back.
    public func expanded(to target: [Int]) -> Tensor {
        if target == shape { return self }
        let result = Tensor(shape: target, dtype: dtype, zeroed: false)
        Kernels.copy(from: broadcastView(to: target), into: result)
        return result.recording(.expand(self), inputs: self)
    }

    /// A dense version of this tensor; a differentiable identity when it already is one.
    public func contiguous() -> Tensor {
        if isContiguous { return self }
        // Not `reshaped(shape)`: that returns `self` when the shape is unchanged.
        return materialized().recording(.reshape(self), inputs: self)
    }

    /// Inserts a dimension of size 1 at `axis`.
    public func unsqueezed(_ axis: Int) -> Tensor {
        let axis = axis < 0 ? axis + rank + 1 : axis
        precondition(axis >= 0 && axis <= rank, "unsqueeze axis \(axis) is out of range for shape \(shape)")
        var newShape = shape
        newShape.insert(1, at: axis)
        return reshaped(newShape)
    }

    /// Removes a dimension of size 1 at `axis`.
    public func squeezed(_ axis: Int) -> Tensor {
        let axis = normalizedAxis(axis)
        precondition(shape[axis] == 1, "cannot squeeze axis \(axis) of size \(shape[axis]) in shape \(shape)")
        var newShape = shape
        newShape.remove(at: axis)
        return reshaped(newShape)
    }
}
