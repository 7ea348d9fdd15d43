import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A communicator over Open MPI's `MPI_COMM_WORLD`, with libmpi loaded at run time (`dlopen`),
/// so that building and running `arpo-train` without `mpirun` needs no MPI at all.
///
/// Open MPI's handles (`MPI_COMM_WORLD`, `MPI_BYTE`) are the addresses of global objects
/// (`ompi_mpi_comm_world`, `ompi_mpi_byte`), which `dlsym` gives. Every exchange moves bytes
/// (`MPI_BYTE`); sums are computed here in rank order (``DeterministicSum``). Errors of MPI
/// calls abort the job (`MPI_ERRORS_ARE_FATAL`, the default on `MPI_COMM_WORLD`).
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    let library: UnsafeMutableRawPointer
    let world: OpaquePointer
    let byte: OpaquePointer
    private var finalized = false

    typealias InitThread = @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?, Int32, UnsafeMutablePointer<Int32>) -> Int32
    typealias CommQuery = @convention(c) (OpaquePointer, UnsafeMutablePointer<Int32>) -> Int32
    typealias Exchange = @convention(c) (UnsafeRawPointer?, Int32, OpaquePointer, UnsafeMutableRawPointer?, Int32, OpaquePointer, OpaquePointer) -> Int32
    typealias CommOnly = @convention(c) (OpaquePointer) -> Int32
    typealias Abort = @convention(c) (OpaquePointer, Int32) -> Int32
    typealias Finalize = @convention(c) () -> Int32

    let allToAllFunction: Exchange
    let allGatherFunction: Exchange
    let barrierFunction: CommOnly
    let abortFunction: Abort
    let finalizeFunction: Finalize

    /// Open MPI 4's library (Debian's `libopenmpi3`), then the development symlink.
    public static let libraryNames = ["libmpi.so.40", "libmpi.so"]

    /// Loads libmpi and initialises MPI. Throws when the library or one of its symbols is missing.
    public init() throws {
        var handle: UnsafeMutableRawPointer?
        var problems: [String] = []
        for name in MPICommunicator.libraryNames {
            // RTLD_GLOBAL: Open MPI's components, loaded by libmpi itself, resolve its symbols.
            handle = dlopen(name, RTLD_NOW | RTLD_GLOBAL)
            if handle != nil { break }
            problems.append(String(cString: dlerror()))
        }
        guard let handle else {
            throw DistributedError("launched by mpirun but Open MPI's library cannot be loaded (apt-get install openmpi-bin, or scripts/bootstrap.sh): " + problems.joined(separator: "; "))
        }
        library = handle
        func symbol(_ name: String) throws -> UnsafeMutableRawPointer {
            guard let address = dlsym(handle, name) else { throw DistributedError("libmpi has no symbol \(name): is it Open MPI?") }
            return address
        }
        func function<F>(_ name: String, _ type: F.Type) throws -> F { unsafeBitCast(try symbol(name), to: type) }
        world = OpaquePointer(try symbol("ompi_mpi_comm_world"))
        byte = OpaquePointer(try symbol("ompi_mpi_byte"))
        allToAllFunction = try function("MPI_Alltoall", Exchange.self)
        allGatherFunction = try function("MPI_Allgather", Exchange.self)
        barrierFunction = try function("MPI_Barrier", CommOnly.self)
        abortFunction = try function("MPI_Abort", Abort.self)
        finalizeFunction = try function("MPI_Finalize", Finalize.self)
        let initialize = try function("MPI_Init_thread", InitThread.self)
        // MPI_THREAD_FUNNELED (1): the worker threads compute; only the main thread calls MPI.
        var provided: Int32 = 0
        guard initialize(nil, nil, 1, &provided) == 0 else { throw DistributedError("MPI_Init_thread failed") }
        var value: Int32 = 0
        _ = try function("MPI_Comm_rank", CommQuery.self)(world, &value)
        rank = Int(value)
        _ = try function("MPI_Comm_size", CommQuery.self)(world, &value)
        size = Int(value)
    }

    deinit { finalize() }

    /// Ends MPI in this process; every rank must call it before exiting normally, or `mpirun`
    /// takes the exit for a failure.
    public func finalize() {
        guard !finalized else { return }
        finalized = true
        _ = finalizeFunction()
    }

    public func barrier() { _ = barrierFunction(world) }

    /// Exits without `MPI_Finalize`, whose first act is a fence through `mpirun`: an `mpirun`
    /// that was itself sent SIGINT or SIGTERM is asleep in Open MPI 4.1's kill sequence (SIGCONT
    /// to every rank, `odls_base_sigkill_timeout` seconds, SIGTERM, as long again, SIGKILL) and
    /// answers the fence only with SIGKILL. When the stop came from a signal to one rank,
    /// `mpirun` reports this exit as it reports a non-zero exit after `MPI_Finalize`: every rank
    /// ends and `mpirun` returns the rank's code (docs/distributed.md).
    public func exitAfterAgreedStop(code: Int32) -> Never {
        finalized = true
        exit(code)
    }

    public func abort(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data("error: rank \(rank) of \(size): \(message)\n".utf8))
        _ = abortFunction(world, code)
        exit(code)
    }

    /// The largest message of one MPI call, in bytes: counts are C ints.
    static let largestMessage = 1 << 30

    public func allGather(_ bytes: [UInt8]) -> [[UInt8]] {
        var length = bytes.count
        let lengths: [Int] = withUnsafeBytes(of: &length) { own in
            var gathered = [Int](repeating: 0, count: size)
            gathered.withUnsafeMutableBytes { _ = allGatherFunction(own.baseAddress, Int32(own.count), byte, $0.baseAddress, Int32(own.count), byte, world) }
            return gathered
        }
        // Every rank's bytes padded to the longest, in pieces MPI's int counts can carry.
        let longest = lengths.max() ?? 0
        var padded = bytes + [UInt8](repeating: 0, count: longest - bytes.count)
        var received = [UInt8](repeating: 0, count: longest * size)
        let piece = Swift.max(1, MPICommunicator.largestMessage / size)
        var start = 0
        while start < longest {
            let count = Swift.min(piece, longest - start)
            var sendPiece = Array(padded[start..<(start + count)])
            var receivedPiece = [UInt8](repeating: 0, count: count * size)
            sendPiece.withUnsafeMutableBytes { send in
                receivedPiece.withUnsafeMutableBytes { _ = allGatherFunction(send.baseAddress, Int32(count), byte, $0.baseAddress, Int32(count), byte, world) }
            }
            for rank in 0..<size {
                received.replaceSubrange((rank * longest + start)..<(rank * longest + start + count), with: receivedPiece[(rank * count)..<((rank + 1) * count)])
            }
            start += count
        }
        padded.removeAll()
        return (0..<size).map { Array(received[($0 * longest)..<($0 * longest + lengths[$0])]) }
    }

    public func allReduceSum(_ values: inout [Float]) { reduce(&values) }
    public func allReduceSum(_ values: inout [Double]) { reduce(&values) }

    /// The chunked reduce-scatter and all-gather of ``DeterministicSum``, in segments small
    /// enough for MPI's int counts.
    func reduce<Scalar: FloatingPoint>(_ values: inout [Scalar]) {
        guard size > 1, !values.isEmpty else { return }
        let stride = MemoryLayout<Scalar>.stride
        let segmentLength = Swift.max(size, MPICommunicator.largestMessage / stride / size * size)
        var start = 0
        while start < values.count {
            let count = Swift.min(segmentLength, values.count - start)
            let chunk = DeterministicSum.chunkLength(count: count, size: size)
            var send = [Scalar](repeating: 0, count: chunk * size)
            for index in 0..<count { send[index] = values[start + index] }
            var received = [Scalar](repeating: 0, count: chunk * size)
            let bytes = Int32(chunk * stride)
            send.withUnsafeBytes { sendBytes in
                received.withUnsafeMutableBytes { _ = allToAllFunction(sendBytes.baseAddress, bytes, byte, $0.baseAddress, bytes, byte, world) }
            }
            var summed = [Scalar](repeating: 0, count: chunk)
            received.withUnsafeBufferPointer { receivedBuffer in
                summed.withUnsafeMutableBufferPointer { DeterministicSum.sumInRankOrder(receivedBuffer, ranks: size, length: chunk, into: $0) }
            }
            summed.withUnsafeBytes { summedBytes in
                send.withUnsafeMutableBytes { _ = allGatherFunction(summedBytes.baseAddress, bytes, byte, $0.baseAddress, bytes, byte, world) }
            }
            for index in 0..<count { values[start + index] = send[index] }
            start += count
        }
    }
}

/// MPI cannot be used: the library is missing or is not Open MPI.
public struct DistributedError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
