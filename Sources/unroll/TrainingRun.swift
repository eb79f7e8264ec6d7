import Foundation
import Unroll
import UnrollCore
import UnrollIO

/// The CLI's side of the one trainer, for any model: the output folder's checkpoint (every
/// `--checkpoint-every` steps, at the end, and on divergence), `--resume` from it, the CSV log (one row
/// per step; a resumed run drops the rows written after its checkpoint), the progress bar and the
/// periodic test evaluation.
struct TrainingRun {
    let output: String
    let resume: Bool
    let checkpointEvery: Int
    /// One run per folder at a time.
    let lock: RunLock
    var checkpointPath: String { output + "/checkpoint.safetensors" }
    var logPath: String { output + "/log.csv" }

    init(output: String, resume: Bool, checkpointEvery: Int) throws {
        guard checkpointEvery >= 1 else { throw CLIError("--checkpoint-every must be ≥ 1, got \(checkpointEvery)") }
        if resume && !FileManager.default.fileExists(atPath: output + "/checkpoint.safetensors") {
            throw CLIError("--resume: \(output)/checkpoint.safetensors does not exist (nothing to resume; run without --resume to start)")
        }
        self.output = output
        self.resume = resume
        self.checkpointEvery = checkpointEvery
        try inContext("--output") { try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true) }
        lock = try inContext("--output") {
            try RunLock(model: output + "/model.safetensors", outputs: [output + "/checkpoint.safetensors", output + "/log.csv"])
        }
    }

    /// Trains to `steps` steps in total. `columns` and `fields` are the model's log columns between
    /// `step` and `test_psnr, seconds`; `evaluate` (every `evaluateEvery` steps) gives the test PSNR;
    /// `save` writes the model. Returns the last step's report.
    @discardableResult
    func run<M, S>(_ trainer: inout Trainer<M, S>, steps: Int, label: String, columns: [String],
                   fields: (Trainer<M, S>.Report) -> [String], detail: (Trainer<M, S>.Report) -> String,
                   evaluateEvery: Int?, evaluate: (Trainer<M, S>) throws -> Double?,
                   save: (Trainer<M, S>) throws -> Void) throws -> Trainer<M, S>.Report? {
        let allColumns = ["step"] + columns + ["test_psnr", "seconds"]
        let log: CSVLog
        if resume {
            let checkpoint = try CheckpointFile.read(checkpointPath)
            try inContext("--resume \(checkpointPath)") { try trainer.restore(checkpoint) }
            log = try inContext("--resume") { try CSVLog(resuming: logPath, columns: allColumns, upToStep: trainer.step) }
        } else {
            log = try inContext("--output") { try CSVLog(path: logPath, columns: allColumns) }
        }
        func writeCheckpoint() throws {
            try inContext("writing the checkpoint") { try CheckpointFile.write(trainer.checkpoint(), extra: [:], to: checkpointPath) }
        }
        let progress = ProgressBar(total: steps, label: label)
        let clock = ContinuousClock.now
        var last: Trainer<M, S>.Report?
        while trainer.step < steps {
            let r: Trainer<M, S>.Report
            do {
                r = try trainer.trainStep()
            } catch let UnrollError.diverged(step, reason) {
                progress.finish()
                try save(trainer)
                try writeCheckpoint()
                throw CLIError("training diverged at step \(step): \(reason); the last good state (step \(trainer.step)) is saved in \(output)/model.safetensors and checkpoint.safetensors")
            }
            last = r
            var psnr = Double.nan
            if let e = evaluateEvery, r.step % e == 0, r.step < steps, let p = try evaluate(trainer) { psnr = p }
            try log.append(fields: [String(r.step)] + fields(r) + [CSV.format(psnr), String(format: "%.3f", secondsSince(clock))])
            progress.update(r.step, detail: detail(r))
            if r.step % checkpointEvery == 0 {
                try save(trainer)   // a killed run leaves a usable model of its last checkpoint
                try writeCheckpoint()
            }
        }
        progress.finish()
        try save(trainer)
        try writeCheckpoint()
        return last
    }
}
