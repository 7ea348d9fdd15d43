/// The arithmetic of ``Communicator/allReduceSum(_:)-(inout [Float])`` that MPI does not do for
/// us, kept apart so that it can be tested without processes.
///
/// An all-reduce of n elements over P ranks runs as a reduce-scatter then an all-gather, as a
/// ring all-reduce does, with the same bytes on the wire (2 (P − 1) / P · n elements sent per
/// rank): the buffer is cut into P chunks of `chunkLength` elements (the last padded with
/// zeros); an all-to-all gives rank r chunk r of every rank; rank r sums them in rank order
/// (`sumInRankOrder`); an all-gather gives every rank every summed chunk. MPI's own
/// `MPI_Allreduce` may pick its algorithm, and so its order of summation, by message size and
/// rank count; summing here in a fixed order makes the result the same bits on every rank and
/// in every run with the same ranks.
public enum DeterministicSum {
    /// Elements per chunk: ⌈count / size⌉, at least 1.
    public static func chunkLength(count: Int, size: Int) -> Int {
        precondition(size >= 1, "a job has at least one rank")
        return Swift.max(1, (count + size - 1) / size)
    }

    /// `received` holds one chunk of `length` elements from each rank, rank 0's first; writes
    /// their element-wise sum, added in rank order, into `result`: ((x₀ + x₁) + x₂) + …
    public static func sumInRankOrder<Scalar: FloatingPoint>(
        _ received: UnsafeBufferPointer<Scalar>, ranks: Int, length: Int, into result: UnsafeMutableBufferPointer<Scalar>
    ) {
        precondition(received.count == ranks * length && result.count == length, "\(ranks) chunks of \(length) elements expected")
        for index in 0..<length { result[index] = received[index] }
        for rank in 1..<Swift.max(ranks, 1) {
            let offset = rank * length
            for index in 0..<length { result[index] += received[offset + index] }
        }
    }

    /// The sum every rank ends with, computed in one process from every rank's buffer: what the
    /// chunked exchange must give (the tests' reference).
    public static func reference<Scalar: FloatingPoint>(_ buffers: [[Scalar]]) -> [Scalar] {
        var result = buffers[0]
        for buffer in buffers.dropFirst() {
            for index in result.indices { result[index] += buffer[index] }
        }
        return result
    }
}
