import Foundation
import Unroll
#if canImport(UnrollMPI)
import UnrollMPI
#endif

/// This process's place in a data-parallel job (`mpirun -np N unroll train …`): every rank reads the
/// data and draws the same global batches, computes the gradient of its share, and the trainer's
/// reducer averages the shares with one MPI_Allreduce per step; rank 0 alone writes the folder, logs
/// and prints. One process without mpirun. docs/distributed.md.
struct Distributed: Sendable {
    let rank: Int
    let size: Int
    let reducer: any GradientReducer
    var isRoot: Bool { rank == 0 }

    /// Whether a launcher (Open MPI's mpirun, or a PMI-based one) started this process.
    static var launchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMI_SIZE"] != nil || env["PMIX_RANK"] != nil
    }

    /// The job of this process, started once.
    static func current() throws -> Distributed {
        guard launchedByMPI else { return Distributed(rank: 0, size: 1, reducer: LocalReducer()) }
        #if canImport(UnrollMPI)
        let (rank, size) = MPI.start()
        return Distributed(rank: rank, size: size, reducer: size > 1 ? MPIReducer(rank: rank, workers: size) : LocalReducer())
        #else
        throw CLIError("started by mpirun, but this unroll was built without MPI: build it with `UNROLL_MPI=1 swift build -c release` "
            + "(needs libopenmpi-dev; docs/distributed.md)")
        #endif
    }

    /// Waits for every rank (nothing in one process).
    func barrier() {
        #if canImport(UnrollMPI)
        if size > 1 { MPI.barrier() }
        #endif
    }

    /// Element-wise sums over the ranks (the values themselves in one process).
    func sum(_ values: [Double]) -> [Double] {
        #if canImport(UnrollMPI)
        if size > 1 { return MPI.sum(values) }
        #endif
        return values
    }

    /// This rank's rows of `count` (rank·n/N ..< (rank+1)·n/N, as the trainer shares a batch).
    func share(of count: Int) -> Range<Int> { RowBatches.shareRange(count, worker: rank, of: size) }

    /// For a run's summary line: the ranks, and the time in MPI_Allreduce against the run's `seconds`.
    func summary(seconds: Double) -> String {
        guard size > 1 else { return "" }
        var text = " (\(size) ranks, the same weights on each"
        #if canImport(UnrollMPI)
        if let c = (reducer as? MPIReducer)?.communicationSeconds {
            text += String(format: "; MPI_Allreduce %.3f s, %.1f%% of the run", c, 100 * c / max(seconds, 1e-9))
        }
        #endif
        return text + ")"
    }

    /// Runs `body`; in a job of several ranks a failure on any rank prints its message (naming the
    /// rank) and ends every rank, so none waits forever in a collective.
    func run(_ body: () throws -> Void) throws {
        guard size > 1 else { return try body() }
        do {
            try body()
        } catch {
            let text = (error as? CLIError)?.message ?? "\(error)"
            FileHandle.standardError.write(Data("Error (rank \(rank) of \(size)): \(text)\n".utf8))
            #if canImport(UnrollMPI)
            MPI.abort(code: 1)
            #else
            throw error
            #endif
        }
    }
}
