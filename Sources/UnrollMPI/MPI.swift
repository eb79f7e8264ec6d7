import CMPI
import Foundation
import Unroll
import UnrollCore

/// MPI for data-parallel training: the world communicator's rank and size, and the gradient
/// reduction of the one trainer (`MPIReducer`). Only the main thread calls MPI (our worker threads
/// compute; MPI_THREAD_FUNNELED).
public enum MPI {
    /// Initialises MPI (once) and returns this process's rank and the number of ranks.
    public static func start() -> (rank: Int, size: Int) {
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        if initialized == 0 {
            var provided: Int32 = 0
            MPI_Init_thread(nil, nil, unroll_mpi_thread_funneled(), &provided)
            atexit { MPI.finish() }
        }
        var rank: Int32 = 0, size: Int32 = 1
        MPI_Comm_rank(unroll_mpi_comm_world(), &rank)
        MPI_Comm_size(unroll_mpi_comm_world(), &size)
        return (Int(rank), Int(size))
    }

    /// Ends the whole job (every rank) with `code`: what a rank does when it fails, so that no other
    /// rank waits forever in a collective.
    public static func abort(code: Int32) -> Never {
        MPI_Abort(unroll_mpi_comm_world(), code)
        exit(code)
    }

    /// Waits until every rank is here.
    public static func barrier() {
        MPI_Barrier(unroll_mpi_comm_world())
    }

    /// The element-wise sums over the ranks.
    public static func sum(_ values: [Double]) -> [Double] {
        var v = values
        _ = v.withUnsafeMutableBufferPointer {
            MPI_Allreduce(unroll_mpi_in_place(), $0.baseAddress, Int32($0.count), unroll_mpi_double(), unroll_mpi_sum(),
                          unroll_mpi_comm_world())
        }
        return v
    }

    static func finish() {
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        if finalized == 0 { MPI_Finalize() }
    }
}

/// Sums every rank's gradients, weighted by its examples, with one in-place `MPI_Allreduce` of float32
/// per step: [g₀·b, g₁·b, …, pooled sums, loss·b, b] → divided by Σb (the pooled sums are summed), every
/// rank holds the mean over the global batch.
public struct MPIReducer: GradientReducer {
    public let rank: Int
    public let workers: Int
    /// Seconds spent in MPI_Allreduce so far (for the share of a step it takes).
    public var communicationSeconds: Double { clock.seconds }
    private let clock = Stopwatch()

    public init(rank: Int, workers: Int) {
        self.rank = rank
        self.workers = workers
    }

    public func reduce(_ gradients: inout [Tensor], loss: inout Double, sums: inout [Double], examples: Int) throws {
        let weight = Float(examples)
        var buffer = [Float]()
        buffer.reserveCapacity(gradients.reduce(2 + sums.count) { $0 + $1.count })
        for g in gradients { buffer.append(contentsOf: g.data.lazy.map { $0 * weight }) }
        buffer.append(contentsOf: sums.map { Float($0) })
        buffer.append(Float(loss) * weight)
        buffer.append(weight)
        let start = ContinuousClock.now
        let status = buffer.withUnsafeMutableBufferPointer { b in
            MPI_Allreduce(unroll_mpi_in_place(), b.baseAddress, Int32(b.count), unroll_mpi_float(), unroll_mpi_sum(),
                          unroll_mpi_comm_world())
        }
        clock.add(start.duration(to: .now))
        guard status == MPI_SUCCESS else { throw UnrollError.invalidArgument("MPI_Allreduce failed with code \(status)") }
        let total = buffer[buffer.count - 1]
        guard total > 0 else { throw UnrollError.invalidArgument("the global batch is empty") }
        var offset = 0
        for i in gradients.indices {
            let n = gradients[i].count
            for k in 0..<n { gradients[i].data[k] = buffer[offset + k] / total }
            offset += n
        }
        for i in sums.indices { sums[i] = Double(buffer[offset + i]) }
        offset += sums.count
        loss = Double(buffer[offset] / total)
    }

    /// The hash's four 16-bit parts (exact as doubles), their minimum and maximum over the ranks.
    public func agree(on tensors: [Tensor]) throws -> Bool {
        let h = Tensor.bitHash(tensors)
        let parts = (0..<4).map { Double((h >> (16 * UInt64($0))) & 0xFFFF) }
        var low = parts, high = parts
        let a = low.withUnsafeMutableBufferPointer {
            MPI_Allreduce(unroll_mpi_in_place(), $0.baseAddress, 4, unroll_mpi_double(), unroll_mpi_min(), unroll_mpi_comm_world())
        }
        let b = high.withUnsafeMutableBufferPointer {
            MPI_Allreduce(unroll_mpi_in_place(), $0.baseAddress, 4, unroll_mpi_double(), unroll_mpi_max(), unroll_mpi_comm_world())
        }
        guard a == MPI_SUCCESS, b == MPI_SUCCESS else { throw UnrollError.invalidArgument("MPI_Allreduce failed with codes \(a), \(b)") }
        return low == high
    }
}

/// Accumulated durations (the reducer is a value shared by the trainer's copies).
final class Stopwatch: @unchecked Sendable {
    private let lock = NSLock()
    private var total = 0.0
    func add(_ d: Duration) {
        lock.lock()
        total += Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        lock.unlock()
    }
    var seconds: Double {
        lock.lock()
        defer { lock.unlock() }
        return total
    }
}
