import Foundation

/// The processes of one data-parallel job and the collective operations between them
/// (docs/distributed.md). A plain run has one process (``SingleProcessCommunicator``); under
/// `mpirun` each rank holds an ``MPICommunicator``.
///
/// Every collective must be called by every rank, in the same order, with buffers of the same
/// length: a rank that skips one leaves the others waiting. Reductions are deterministic: each
/// element is summed in rank order (rank 0's value first), so the same ranks and inputs give the
/// same bits on every rank and in every run.
public protocol Communicator: AnyObject {
    /// This process's index, 0..<size; rank 0 writes the run's files.
    var rank: Int { get }
    /// Processes in the job.
    var size: Int { get }
    /// Every rank's `bytes`, indexed by rank (the lengths may differ between ranks).
    func allGather(_ bytes: [UInt8]) -> [[UInt8]]
    /// Replaces `values` on every rank by the element-wise sum over ranks, in rank order.
    func allReduceSum(_ values: inout [Float])
    /// Replaces `values` on every rank by the element-wise sum over ranks, in rank order.
    func allReduceSum(_ values: inout [Double])
    /// Returns after every rank has called it.
    func barrier()
    /// Ends every process of the job with `code`, after printing `message` on standard error.
    /// Never returns.
    func abort(_ message: String, code: Int32) -> Never
    /// Ends the job's collectives in this process; every rank calls it before a normal exit.
    func finalize()
    /// Ends this process with `code` after a stop that every rank agreed on (SIGINT or SIGTERM)
    /// and a barrier that every rank has passed, so that no message is in flight. Never returns.
    func exitAfterAgreedStop(code: Int32) -> Never
}

extension Communicator {
    /// Whether this process writes the run's files and prints its progress.
    public var isRoot: Bool { rank == 0 }

    /// The element-wise sums over ranks, in rank order.
    public func sum(_ values: [Double]) -> [Double] {
        var result = values
        allReduceSum(&result)
        return result
    }

    /// The sum over ranks of one number.
    public func sum(_ value: Double) -> Double { sum([value])[0] }

    /// The sum over ranks of one count.
    public func sum(_ value: Int) -> Int { Int(sum(Double(value))) }

    /// The element-wise maxima over ranks.
    public func maximum(_ values: [Double]) -> [Double] {
        let all = allGather(values: values)
        return values.indices.map { index in all.map { $0[index] }.max()! }
    }

    /// The maximum over ranks of one count.
    public func maximum(_ value: Int) -> Int { Int(maximum([Double(value)])[0]) }

    /// Every rank's `values`, indexed by rank.
    public func allGather(values: [Double]) -> [[Double]] {
        allGather(values.withUnsafeBytes { Array($0) }).map { bytes in
            bytes.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
        }
    }

    /// Every rank's `value`, indexed by rank, through JSON.
    public func allGather<Value: Codable>(_ value: Value) -> [Value] {
        let encoder = JSONEncoder()
        // Non-finite numbers pass through as strings (a NaN metric must not stop the job).
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let data: Data
        do { data = try encoder.encode(value) } catch { abort("cannot encode \(Value.self) for the other ranks: \(error)", code: 1) }
        return allGather(Array(data)).enumerated().map { rank, bytes in
            do { return try decoder.decode(Value.self, from: Data(bytes)) } catch {
                abort("cannot decode \(Value.self) from rank \(rank): \(error)", code: 1)
            }
        }
    }

    /// Rank 0's `value` on every rank.
    public func broadcast<Value: Codable>(_ value: Value) -> Value {
        size == 1 ? value : allGather(value)[0]
    }
}

/// The communicator of a plain run: one process, whose collectives return their input.
public final class SingleProcessCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allGather(_ bytes: [UInt8]) -> [[UInt8]] { [bytes] }
    public func allReduceSum(_ values: inout [Float]) {}
    public func allReduceSum(_ values: inout [Double]) {}
    public func barrier() {}
    public func finalize() {}
    public func exitAfterAgreedStop(code: Int32) -> Never { exit(code) }
    public func abort(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        exit(code)
    }
}

/// How the job was launched.
public enum Launch {
    /// The ranks a launcher started, from the variables it sets: Open MPI's `mpirun`
    /// (`OMPI_COMM_WORLD_SIZE`), or a PMI/PMIx launcher such as Slurm's `srun` (`PMI_SIZE`,
    /// `PMIX_SIZE`). Nil for a plain process.
    public static func launcherWorldSize(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Int? {
        for name in ["OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"] {
            if let text = environment[name], let size = Int(text) { return size }
        }
        return nil
    }

    /// The job's communicator: MPI (``MPICommunicator``, Open MPI's libmpi loaded at run time)
    /// when a launcher started this process, else a single process. Throws when a launcher
    /// started it but libmpi cannot be loaded or initialised.
    public static func communicator() throws -> Communicator {
        guard launcherWorldSize() != nil else { return SingleProcessCommunicator() }
        return try MPICommunicator()
    }
}
