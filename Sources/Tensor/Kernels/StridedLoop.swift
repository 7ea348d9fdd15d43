/// Visits every element of a shape for several strided operands at once, in row-major order, in
/// runs along the innermost dimension.
///
/// Adjacent dimensions that are contiguous in every operand are merged first, so a dense
/// elementwise op becomes a single run and a broadcast over rows becomes one run per row.
struct StridedLoop {
    /// Shape after merging dimensions.
    let shape: [Int]
    /// `strides[operand][axis]` after merging.
    let strides: [[Int]]

    init(shape: [Int], strides operandStrides: [[Int]]) {
        var mergedShape: [Int] = []
        var mergedStrides = [[Int]](repeating: [], count: operandStrides.count)
        for axis in 0..<shape.count where shape[axis] != 1 {
            if let last = mergedShape.last,
                (0..<operandStrides.count).allSatisfy({ mergedStrides[$0].last! == operandStrides[$0][axis] * shape[axis] })
            {
                mergedShape[mergedShape.count - 1] = last * shape[axis]
                for operand in 0..<operandStrides.count {
                    mergedStrides[operand][mergedStrides[operand].count - 1] = operandStrides[operand][axis]
                }
            } else {
                mergedShape.append(shape[axis])
                for operand in 0..<operandStrides.count { mergedStrides[operand].append(operandStrides[operand][axis]) }
            }
        }
        self.shape = mergedShape
        self.strides = mergedStrides
    }

    /// Number of elements visited.
    var count: Int { shape.reduce(1, *) }

    /// Stride of each operand along the innermost merged dimension (0 for a scalar loop).
    var innerStrides: [Int] { strides.map { $0.last ?? 0 } }

    /// Number of innermost runs (1 for a dense or scalar loop, 0 when empty).
    var runCount: Int { shape.contains(0) ? 0 : shape.dropLast().reduce(1, *) }

    /// Calls `body(offsets, runLength)` once per innermost run; `offsets[i]` is operand i's element
    /// offset at the start of the run. Allocates once per call, never per run.
    @inline(__always)
    func forEachRun(_ body: (UnsafePointer<Int>, Int) -> Void) {
        forEachRun(runs: 0..<runCount, body)
    }

    /// `forEachRun` over the runs `runs` only, in order (runs are numbered row-major).
    func forEachRun(runs: Range<Int>, _ body: (UnsafePointer<Int>, Int) -> Void) {
        let operands = strides.count
        let offsets = UnsafeMutablePointer<Int>.allocate(capacity: max(operands, 1))
        offsets.initialize(repeating: 0, count: max(operands, 1))
        defer { offsets.deallocate() }
        if shape.contains(0) || runs.isEmpty { return }
        guard let inner = shape.last else {
            body(offsets, 1)
            return
        }
        let outerRank = shape.count - 1
        if outerRank == 0 {
            body(offsets, inner)
            return
        }
        let counters = UnsafeMutablePointer<Int>.allocate(capacity: outerRank)
        counters.initialize(repeating: 0, count: outerRank)
        defer { counters.deallocate() }
        // Position the counters and offsets at the first run of the range.
        var remaining = runs.lowerBound
        for axis in stride(from: outerRank - 1, through: 0, by: -1) {
            counters[axis] = remaining % shape[axis]
            remaining /= shape[axis]
            for operand in 0..<operands { offsets[operand] += counters[axis] * strides[operand][axis] }
        }
        for _ in runs {
            body(offsets, inner)
            var axis = outerRank - 1
            while axis >= 0 {
                counters[axis] += 1
                for operand in 0..<operands { offsets[operand] += strides[operand][axis] }
                if counters[axis] < shape[axis] { break }
                for operand in 0..<operands { offsets[operand] -= strides[operand][axis] * shape[axis] }
                counters[axis] = 0
                axis -= 1
            }
        }
    }

    /// `forEachRun` split over the kernel threads: by runs when there are several, else the one
    /// run cut into pieces. Only for kernels whose every run writes its own output elements (no
    /// output broadcast, so no two runs touch the same element).
    func parallelForEachRun(workPerElement: Int = 1, _ body: (UnsafePointer<Int>, Int) -> Void) {
        let runs = runCount
        guard runs > 0 else { return }
        let inner = shape.last ?? 1
        if runs > 1 {
            Kernels.parallelFor(runs, workPerItem: inner * workPerElement) { range in forEachRun(runs: range, body) }
            return
        }
        let innerStrides = self.innerStrides
        Kernels.parallelElements(inner, workPerElement: workPerElement) { start, length in
            let offsets = innerStrides.map { $0 * start }
            offsets.withUnsafeBufferPointer { body($0.baseAddress!, length) }
        }
    }
}

/// Namespace for the unsafe-pointer kernels. Only these and the BLAS shim touch raw memory.
enum Kernels {
    /// Copies `source` into `destination` (same shape, any strides, same dtype).
    static func copy(from source: Tensor, into destination: Tensor) {
        precondition(source.shape == destination.shape, "copy from shape \(source.shape) into \(destination.shape)")
        switch source.dtype {
        case .float32: copy(Float.self, from: source, into: destination)
        case .float64: copy(Double.self, from: source, into: destination)
        }
    }

    private static func copy<T: TensorScalar>(_: T.Type, from source: Tensor, into destination: Tensor) {
        let loop = StridedLoop(shape: source.shape, strides: [destination.strides, source.strides])
        let to = destination.pointer(T.self), from = source.pointer(T.self)
        let inner = loop.innerStrides
        let toStride = inner[0], fromStride = inner[1]
        let body: (UnsafePointer<Int>, Int) -> Void = { offsets, n in
            let o = to + offsets[0], s = from + offsets[1]
            if toStride == 1 && fromStride == 1 {
                o.update(from: s, count: n)
            } else {
                for i in 0..<n { o[i * toStride] = s[i * fromStride] }
            }
        }
        // A destination with a zero stride (a broadcast view) has runs that share elements: those
        // stay on one thread, in order.
        if loop.strides[0].contains(0) { loop.forEachRun(body) } else { loop.parallelForEachRun(body) }
    }

    /// Adds `source` into `destination` in place, where `source`'s shape broadcasts to
    /// `destination`'s... or the reverse: `destination` may be smaller, with `source` summed over
    /// the broadcast dimensions (the reduction that undoes broadcasting).
    static func accumulate(_ source: Tensor, into destination: Tensor, destinationStrides: [Int]) {
        switch source.dtype {
        case .float32: accumulate(Float.self, source, into: destination, destinationStrides: destinationStrides)
        case .float64: accumulate(Double.self, source, into: destination, destinationStrides: destinationStrides)
        }
    }

    private static func accumulate<T: TensorScalar>(
        _: T.Type, _ source: Tensor, into destination: Tensor, destinationStrides: [Int]
    ) {
        let loop = StridedLoop(shape: source.shape, strides: [destinationStrides, source.strides])
        let to = destination.pointer(T.self), from = source.pointer(T.self)
        let inner = loop.innerStrides
        let toStride = inner[0], fromStride = inner[1]
        let body: (UnsafePointer<Int>, Int) -> Void = { offsets, n in
            let o = to + offsets[0], s = from + offsets[1]
            if toStride == 1 && fromStride == 1 {
                for i in 0..<n { o[i] += s[i] }
            } else if toStride == 0 {
                var total = T.zero
                for i in 0..<n { total += s[i * fromStride] }
                o[0] += total
            } else {
                for i in 0..<n { o[i * toStride] += s[i * fromStride] }
            }
        }
        // Runs that sum into shared destination elements (a zero stride) stay on one thread, in
        // order, so the sum does not depend on the thread count.
        if loop.strides[0].contains(0) { loop.forEachRun(body) } else { loop.parallelForEachRun(body) }
    }
}
