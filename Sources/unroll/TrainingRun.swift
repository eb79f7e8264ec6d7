import Foundation
import Unroll
import UnrollCore
import UnrollIO

/// The CLI's side of the one trainer, for any model: the output folder's checkpoint (every
/// `--checkpoint-every` steps, at the end, and on divergence), `--resume` from it, the CSV log (one row
/// per step; a resumed run drops the rows written after its checkpoint and continues its clock), the
/// progress bar and the periodic test evaluation.
struct TrainingRun {
    let output: String
    let resume: Bool
    let checkpointEvery: Int
    /// This process's place in a data-parallel job; rank 0 alone writes the folder.
    let job: Distributed
    /// One run per folder at a time (held by rank 0).
    let lock: RunLock?
    var modelPath: String { output + "/model.safetensors" }
    var checkpointPath: String { output + "/checkpoint.safetensors" }
    var logPath: String { output + "/log.csv" }

    /// The checkpoint's record of `--threads`, which a resumed run compares with its own.
    static let threadsKey = "cli.threads"

    init(output: String, resume: Bool, checkpointEvery: Int) throws {
        guard checkpointEvery >= 1 else { throw CLIError("--checkpoint-every must be ≥ 1, got \(checkpointEvery)") }
        if resume && !FileManager.default.fileExists(atPath: output + "/checkpoint.safetensors") {
            throw CLIError("--resume: \(output)/checkpoint.safetensors does not exist (nothing to resume; run without --resume to start)")
        }
        self.output = output
        self.resume = resume
        self.checkpointEvery = checkpointEvery
        job = try Distributed.current()
        if job.isRoot {
            try inContext("--output") { try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true) }
            lock = try inContext("--output") { try RunLock(folder: output) }
        } else {
            lock = nil
        }
    }

    /// Trains to `steps` steps in total. `columns` and `fields` are the model's log columns after
    /// `step` (then `evaluationColumn` when there is an `evaluate`, then `seconds`); `evaluate` (every
    /// `evaluateEvery` steps) gives the test or validation PSNR; `settings` are the CLI's own settings, stored in the
    /// checkpoint and required unchanged by `--resume`; `save` writes the model and figures from the
    /// trainer and the log so far. Returns the last step's report (nil when nothing was left to do).
    @discardableResult
    func run<M, S>(_ trainer: inout Trainer<M, S>, steps: Int, label: String, columns: [String],
                   fields: (Trainer<M, S>.Report) -> [String], detail: (Trainer<M, S>.Report) -> String,
                   settings: [String: String] = [:],
                   evaluateEvery: Int? = nil, evaluate: ((Trainer<M, S>) throws -> Double?)? = nil, evaluationColumn: String = "test_psnr",
                   save: (Trainer<M, S>, RunHistory) throws -> Void) throws -> Trainer<M, S>.Report? {
        let allColumns = ["step"] + columns + (evaluate == nil ? [] : [evaluationColumn]) + ["seconds"]
        var history = RunHistory(columns: allColumns)
        trainer.reducer = job.reducer
        let root = job.isRoot
        var log: CSVLog?
        if resume {
            let checkpoint = try CheckpointFile.read(checkpointPath)
            for (key, value) in settings.sorted(by: { $0.key < $1.key }) where checkpoint.metadata[key] != value {
                throw CLIError("--resume: \(checkpointPath) was trained with \(key) = \(checkpoint.metadata[key] ?? "(none)"), "
                    + "but this command line gives \(value); resume with the settings of the original run")
            }
            try inContext("--resume \(checkpointPath)") { try trainer.restore(checkpoint) }
            if root, let was = checkpoint.metadata[Self.threadsKey], was != String(Parallel.workers) {
                // Allowed (a run may move to a larger machine), but no longer the uninterrupted run's bits.
                FileHandle.standardError.write(Data(("note: \(checkpointPath) was written at --threads \(was); at --threads "
                    + "\(Parallel.workers) the run goes on, but its results differ in the last bits from a run that was not "
                    + "interrupted (products split over another number of workers round differently)\n").utf8))
            }
            if root {
                let resumed = try inContext("--resume") { try CSVLog(resuming: logPath, columns: allColumns, upToStep: trainer.step) }
                for row in resumed.resumedRows { history.append(row.map { Double($0) ?? .nan }) }
                log = resumed
            }
        } else if root {
            log = try inContext("--output") { try CSVLog(path: logPath, columns: allColumns) }
        }
        func writeCheckpoint() throws {
            guard root else { return }
            let extra = settings.merging([Self.threadsKey: String(Parallel.workers)]) { old, _ in old }
            try inContext("writing the checkpoint") { try CheckpointFile.write(trainer.checkpoint(), extra: extra, to: checkpointPath) }
        }
        let progress = ProgressBar(total: steps, label: label, enabled: root && isatty(STDERR_FILENO) != 0)
        let clock = ContinuousClock.now
        let secondsBefore = history.values("seconds").last ?? 0
        var last: Trainer<M, S>.Report?
        while trainer.step < steps {
            let r: Trainer<M, S>.Report
            do {
                r = try trainer.trainStep()
            } catch let UnrollError.diverged(step, reason) {
                progress.finish()
                if root { try save(trainer, history) }
                try writeCheckpoint()
                throw CLIError("training diverged at step \(step): \(reason); the last good state (step \(trainer.step)) is saved in \(modelPath) and \(checkpointPath)")
            }
            last = r
            var row = [String(r.step)] + fields(r)
            if let evaluate {
                var psnr = Double.nan
                if root, let e = evaluateEvery, r.step % e == 0, r.step < steps, let p = try evaluate(trainer) { psnr = p }
                row.append(CSV.format(psnr))
            }
            row.append(String(format: "%.3f", secondsBefore + secondsSince(clock)))
            try log?.append(fields: row)
            history.append(row.map { Double($0) ?? .nan })
            progress.update(r.step, detail: detail(r))
            if r.step % checkpointEvery == 0 {
                if root { try save(trainer, history) }   // a killed run leaves a usable model of its last checkpoint
                try writeCheckpoint()
            }
        }
        progress.finish()
        if job.size > 1, !(try trainer.reducer.agree(on: trainer.model.parameters)) {
            throw CLIError("the ranks ended with different weights (a rank's arithmetic differs); the model is not written")
        }
        if root { try save(trainer, history) }
        try writeCheckpoint()
        return last
    }
}

/// The log of a run so far (a resumed run's earlier rows included), for its curve.
struct RunHistory {
    let columns: [String]
    private(set) var rows: [[Double]] = []

    init(columns: [String]) { self.columns = columns }

    mutating func append(_ row: [Double]) { rows.append(row) }

    func values(_ column: String) -> [Double] {
        guard let i = columns.firstIndex(of: column) else { return [] }
        return rows.map { i < $0.count ? $0[i] : .nan }
    }

    /// `series` (log columns) against the step on a log scale; a series with no finite value is
    /// left out, and `start` adds a point at step 0 (e.g. the initial dictionary error).
    func plot(title: String, series: [String], start: [String: Double] = [:]) -> LinePlot {
        var plot = LinePlot(title: title, xLabel: "step", yLabel: "log scale", yScale: .log10)
        let steps = values("step")
        for name in series {
            let y = values(name)
            guard start[name] != nil || y.contains(where: { $0.isFinite }) else { continue }
            let y0 = start[name].map { [$0] } ?? []
            plot.add(name.replacingOccurrences(of: "_", with: " "), x: (y0.isEmpty ? [] : [0]) + steps, y: y0 + y)
        }
        return plot
    }
}
