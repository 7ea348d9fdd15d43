import Distributed
import Tensor

extension Communicator {
    /// Replaces every parameter's gradient by its sum over the ranks, the same bits on every
    /// rank (``DeterministicSum``). A parameter without a gradient counts as zeros; it gets the
    /// sum when any rank has a gradient for it, and stays without one when none does, as in one
    /// process that saw the whole batch. One all-reduce of every gradient and a presence flag per
    /// parameter, in the parameters' dtype (all of them share one).
    public func allReduceGradients(_ parameters: [Tensor]) {
        guard size > 1, let dtype = parameters.first?.dtype else { return }
        precondition(parameters.allSatisfy { $0.dtype == dtype }, "the parameters must share one dtype")
        switch dtype {
        case .float32: allReduceGradients(parameters, as: Float.self) { allReduceSum(&$0) }
        case .float64: allReduceGradients(parameters, as: Double.self) { allReduceSum(&$0) }
        }
    }

    /// `allReduceGradients` in one scalar type: the presence flags, then every gradient, in one
    /// buffer that `sum` all-reduces.
    private func allReduceGradients<Scalar: TensorScalar>(_ parameters: [Tensor], as type: Scalar.Type, sum: (inout [Scalar]) -> Void) {
        let total = parameters.reduce(0) { $0 + $1.count }
        var buffer = [Scalar](repeating: 0, count: parameters.count + total)
        var offset = parameters.count
        for (index, parameter) in parameters.enumerated() {
            if let gradient = parameter.gradient {
                buffer[index] = 1
                gradient.withUnsafeBufferPointer(as: Scalar.self) { values in
                    for position in 0..<values.count { buffer[offset + position] = values[position] }
                }
            }
            offset += parameter.count
        }
        sum(&buffer)
        offset = parameters.count
        for (index, parameter) in parameters.enumerated() {
            if buffer[index] > 0 {
                let summed = Tensor.zeros(parameter.shape, dtype: Scalar.dtype)
                summed.withUnsafeMutableBufferPointer(as: Scalar.self) { destination in
                    for position in 0..<destination.count { destination[position] = buffer[offset + position] }
                }
                parameter.replaceGradient(with: summed)
            }
            offset += parameter.count
        }
    }
}
