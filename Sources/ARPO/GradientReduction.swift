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
        let total = parameters.reduce(0) { $0 + $1.count }
        switch dtype {
        case .float32:
            var buffer = [Float](repeating: 0, count: parameters.count + total)
            var offset = parameters.count
            for (index, parameter) in parameters.enumerated() {
                if let gradient = parameter.gradient {
                    buffer[index] = 1
                    gradient.withUnsafeBufferPointer(as: Float.self) { values in
                        for position in 0..<values.count { buffer[offset + position] = values[position] }
                    }
                }
                offset += parameter.count
            }
            allReduceSum(&buffer)
            offset = parameters.count
            for (index, parameter) in parameters.enumerated() {
                if buffer[index] > 0 {
                    parameter.replaceGradient(with: Tensor(shape: parameter.shape, scalars: Array(buffer[offset..<(offset + parameter.count)])))
                }
                offset += parameter.count
            }
        case .float64:
            var buffer = [Double](repeating: 0, count: parameters.count + total)
            var offset = parameters.count
            for (index, parameter) in parameters.enumerated() {
                if let gradient = parameter.gradient {
                    buffer[index] = 1
                    gradient.withUnsafeBufferPointer(as: Double.self) { values in
                        for position in 0..<values.count { buffer[offset + position] = values[position] }
                    }
                }
                offset += parameter.count
            }
            allReduceSum(&buffer)
            offset = parameters.count
            for (index, parameter) in parameters.enumerated() {
                if buffer[index] > 0 {
                    parameter.replaceGradient(with: Tensor(shape: parameter.shape, values: Array(buffer[offset..<(offset + parameter.count)]), dtype: .float64))
                }
                offset += parameter.count
            }
        }
    }
}
