/// Whether ops record the graph that `backward()` walks.
///
/// Recording is on by default and off inside `withoutGradients`. The flag is task-local (and
/// thread-local outside Swift concurrency), so a rollout on one thread never disables training
/// on another, and there is no global mutable state.
public enum GradientMode {
    @TaskLocal static var isRecording = true

    /// Whether ops executed here record gradients.
    public static var isEnabled: Bool { isRecording }
}

/// Runs `body` with graph recording off: ops produce plain tensors and keep no saved inputs, so
/// inference (rollouts, evaluation) pays nothing for the tape.
public func withoutGradients<R>(_ body: () throws -> R) rethrows -> R {
    try GradientMode.$isRecording.withValue(false, operation: body)
}

extension Tensor {
    /// Whether an op on `inputs` must record itself.
    @inline(__always)
    static func shouldRecord(_ inputs: Tensor...) -> Bool {
        for input in inputs where input.requiresGradient { return GradientMode.isEnabled }
        return false
    }

    @inline(__always)
    static func shouldRecord(_ inputs: [Tensor]) -> Bool {
        for input in inputs where input.requiresGradient { return GradientMode.isEnabled }
        return false
    }

    /// Attaches `operation` to `self` when any of its inputs requires a gradient and recording
    /// is on. Returns `self` for chaining.
    @inline(__always)
    func recording(_ operation: @autoclosure () -> Operation, inputs: Tensor...) -> Tensor {
        if Tensor.shouldRecord(inputs) {
            self.operation = operation()
            self.requiresGradient = true
        }
        return self
    }

    @inline(__always)
    func recording(_ operation: @autoclosure () -> Operation, inputList: [Tensor]) -> Tensor {
        if Tensor.shouldRecord(inputList) {
            self.operation = operation()
            self.requiresGradient = true
        }
        return self
    }
}

// MARK: - Backward

extension Tensor {
    /// Back-propagates from this scalar, adding each leaf's gradient into its `gradient`.
    ///
    /// Gradients accumulate across calls, as in PyTorch; call `clearGradient()` (or the
    /// optimizer's `zeroGradients`) between steps.
    public func backward() {
        precondition(count == 1, "backward() needs a scalar, got shape \(shape); pass a gradient for non-scalars")
        backward(gradient: Tensor.ones(shape, dtype: dtype))
    }

    /// Back-propagates `gradient` (the derivative of some scalar with respect to this tensor).
    public func backward(gradient seed: Tensor) {
        precondition(seed.shape == shape, "backward gradient shape \(seed.shape) does not match tensor shape \(shape)")
        precondition(requiresGradient, "backward() on a tensor that does not require a gradient")
        Tensor.propagate(from: self, seed: seed, stopAt: []) { tensor, gradient, exclusive in
            if let existing = tensor.gradient {
                Kernels.accumulate(gradient, into: existing, destinationStrides: existing.strides)
            } else {
                tensor.gradient = exclusive ? gradient : gradient.copy()
            }
        }
    }

    /// Forgets the accumulated gradient.
    public func clearGradient() { gradient = nil }

    /// Replaces the accumulated gradient: a data-parallel job sets each parameter's to the sum
    /// of its ranks' gradients. `gradient` must have this tensor's shape and dtype.
    public func replaceGradient(with gradient: Tensor) {
        precondition(gradient.shape == shape && gradient.dtype == dtype, "gradient \(gradient.shape) \(gradient.dtype) does not match \(shape) \(dtype)")
        self.gradient = gradient
    }

    /// Walks the graph below `root` in reverse topological order, calling `deliver` with the
    /// total gradient of every leaf and of every tensor in `stopAt`, and whether nothing else
    /// holds that gradient or its storage (so the receiver may keep it without a copy).
    ///
    /// With targets, only tensors that lead to a target are walked, and a target computed from
    /// another target passes its gradient on (as `torch.autograd.grad` does): stopping at every
    /// target gave zeros for x in `gradients(of: loss, withRespectTo: [x, hidden])`.
    ///
    /// A tensor used by several ops collects one gradient from each. The sum is kept in place
    /// where the walk holds the only reference to it (`isExclusivelyHeld`): each further
    /// gradient is added into it, and a projection (`linear`) or RMSNorm adds its input's
    /// gradient into it straight from its own kernel. Otherwise (a gradient one rule handed to
    /// two inputs, or a view sharing storage with another) the sum is a new tensor.
    static func propagate(
        from root: Tensor, seed: Tensor, stopAt targets: Set<ObjectIdentifier>,
        deliver: (_ tensor: Tensor, _ gradient: Tensor, _ exclusive: Bool) -> Void
    ) {
        withoutGradients {
            let order = topologicalOrder(from: root, towards: targets)
            let walked = Set(order.map(ObjectIdentifier.init))
            var pending: [ObjectIdentifier: Tensor] = [ObjectIdentifier(root): seed]
            /// The pending sum for `key`, if the walk holds the only reference to it.
            func exclusiveSum(_ key: ObjectIdentifier) -> Tensor? {
                guard var sum = pending.removeValue(forKey: key) else { return nil }
                let exclusive = Tensor.isExclusivelyHeld(&sum)
                pending[key] = sum
                return exclusive ? sum : nil
            }
            for tensor in order.reversed() {
                let key = ObjectIdentifier(tensor)
                guard var gradient = pending.removeValue(forKey: key) else { continue }
                if tensor.operation == nil || targets.contains(key) { deliver(tensor, gradient, Tensor.isExclusivelyHeld(&gradient)) }
                guard let operation = tensor.operation else { continue }
                let inputs = operation.inputs
                // A target with no other target below it ends the walk on this path.
                guard inputs.contains(where: { walked.contains(ObjectIdentifier($0)) }) else { continue }
                var accumulator = operation.acceptsFirstInputAccumulator ? exclusiveSum(ObjectIdentifier(inputs[0])) : nil
                let inputGradients = operation.gradients(output: tensor, gradient: gradient, accumulatingFirstInputInto: accumulator)
                precondition(inputs.count == inputGradients.count, "gradient rule arity mismatch")
                // The rule summed input 0's gradient into its pending sum already.
                let firstIsSummed = accumulator != nil && inputGradients[0] === accumulator
                accumulator = nil  // so that the pending sums can be exclusive again below
                for (index, (input, inputGradient)) in zip(inputs, inputGradients).enumerated() where walked.contains(ObjectIdentifier(input)) {
                    guard let inputGradient else { continue }
                    precondition(
                        inputGradient.shape == input.shape,
                        "gradient rule produced shape \(inputGradient.shape) for input \(input.shape)")
                    if index == 0 && firstIsSummed { continue }
                    let key = ObjectIdentifier(input)
                    if let sum = exclusiveSum(key) {
                        Kernels.accumulate(inputGradient, into: sum, destinationStrides: sum.strides)
                    } else if let existing = pending[key] {
                        pending[key] = existing + inputGradient
                    } else {
                        pending[key] = inputGradient
                    }
                }
            }
        }
    }

    /// Tensors reachable from `root` through inputs that require gradients, inputs before users;
    /// with `targets`, only those with a target at or below them.
    private static func topologicalOrder(from root: Tensor, towards targets: Set<ObjectIdentifier>) -> [Tensor] {
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        // Iterative depth-first search: a deep graph (many layers, many steps) must not overflow
        // the stack.
        var stack: [(tensor: Tensor, expanded: Bool)] = [(root, false)]
        while let (tensor, expanded) = stack.popLast() {
            if expanded {
                order.append(tensor)
                continue
            }
            let key = ObjectIdentifier(tensor)
            if visited.contains(key) { continue }
            visited.insert(key)
            stack.append((tensor, true))
            if let operation = tensor.operation {
                for input in operation.inputs where input.requiresGradient && !visited.contains(ObjectIdentifier(input)) {
                    stack.append((input, false))
                }
            }
        }
        guard !targets.isEmpty else { return order }
        var leadsToTarget = Set<ObjectIdentifier>()
        for tensor in order {
            let key = ObjectIdentifier(tensor)
            let inputLeadsToTarget = tensor.operation?.inputs.contains { leadsToTarget.contains(ObjectIdentifier($0)) } ?? false
            if targets.contains(key) || inputLeadsToTarget { leadsToTarget.insert(key) }
        }
        return order.filter { leadsToTarget.contains(ObjectIdentifier($0)) }
    }
}

/// The gradients of `output` with respect to each of `inputs`, without touching any tensor's
/// accumulated `gradient`. `output` must be a scalar unless `seed` is given.
///
/// An input that `output` does not depend on gets a zero gradient.
public func gradients(of output: Tensor, withRespectTo inputs: [Tensor], seed: Tensor? = nil) -> [Tensor] {
    let seed = seed ?? {
        precondition(output.count == 1, "gradients(of:) needs a scalar output, got shape \(output.shape)")
        return Tensor.ones(output.shape, dtype: output.dtype)
    }()
    var found: [ObjectIdentifier: Tensor] = [:]
    if output.requiresGradient {
        let targets = Set(inputs.map(ObjectIdentifier.init))
        Tensor.propagate(from: output, seed: seed, stopAt: targets) { tensor, gradient, _ in
            if targets.contains(ObjectIdentifier(tensor)) { found[ObjectIdentifier(tensor)] = gradient }
        }
    }
    return inputs.map { found[ObjectIdentifier($0)]?.materialized() ?? Tensor.zeros($0.shape, dtype: $0.dtype) }
}
