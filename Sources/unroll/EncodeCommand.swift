import ArgumentParser
import Foundation
import Unroll
import UnrollCore
import UnrollIO

/// `unroll encode`: the codes of data under any model file.
struct Encode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sparse codes of data under a trained model (any kind).",
        discussion: """
            Runs the model's encoder on --data and writes the codes as .npy (or as array Z of an .npz). \
            What --data holds depends on the model: dense and vsc-linear, a matrix [n, m] with samples \
            as rows (an npz's array X by default); vsc-conv, 28×28 images in [0, 1] as rows of 784; \
            conv1d, a recording samples × channels (.npy, or .npz with "signal"), coded as [C, samples − K + 1] \
            in exact chunks; conv2d, a PNG/PGM image or an array [H, W] or [B, H, W], coded as [B, C, Ho, Wo]. \
            Prints the share of zero codes and the relative reconstruction error ‖X − X̂‖_F / ‖X‖_F.

            Example:
              unroll encode --model run/model.safetensors --data data.npz --output codes.npy
            """)

    @Option(help: ArgumentHelp("A model file (`unroll train`, `spikes train`, `vsc train`).", valueName: "file"))
    var model: String
    @Option(help: ArgumentHelp("The data (see above).", valueName: "file[:array]"))
    var data: String
    @Option(name: .shortAndLong, help: ArgumentHelp("Output codes, .npy (or .npz with array Z).", valueName: "file"))
    var output: String
    @OptionGroup var encoding: ModelRunOptions
    @OptionGroup var threading: ThreadOptions

    func run() throws { try threading.run { try execute() } }

    private func execute() throws {
        let lower = output.lowercased()
        guard lower.hasSuffix(".npy") || lower.hasSuffix(".npz") else {
            throw CLIError("--output \(output): expected a .npy or .npz file name")
        }
        let file = try ModelFile.read(model, option: "--model")
        let job = try Distributed.current()
        if job.size > 1 { return try job.run { try encodeDistributed(file, job: job) } }
        let start = ContinuousClock.now
        let r = try ModelRun.run(file, model: model, data: data, options: encoding)
        let seconds = secondsSince(start)
        try inContext("--output") {
            if lower.hasSuffix(".npz") { try Npz.write([("Z", r.codes)], to: output) } else { try Npy.write(r.codes, to: output) }
        }
        print("encoded \(r.what) with \(file.described) (\(Self.encoderSummary(file, exact: encoding.exact))) in \(String(format: "%.2f", seconds)) s: "
            + "zeros \(String(format: "%.1f", 100 * r.zeroFraction))% (\(String(format: "%.2f", r.nonZerosPerSignal)) non-zeros per signal), "
            + "reconstruction error ‖X − X̂‖/‖X‖ = \(fmt(r.relativeError)); wrote \(output) \(r.codes.shape)")
    }

    /// `mpirun -np N unroll encode`: each rank encodes its share of the rows (dense, VSC) or images
    /// (conv2d), rank·n/N ..< (rank+1)·n/N, and writes its codes into their place in one .npy (rank 0
    /// writes the header and sizes the file first; the file takes its name when every rank is done);
    /// the summary adds the ranks' counts. A conv1d recording is encoded by one process.
    private func encodeDistributed(_ file: ModelFile, job: Distributed) throws {
        guard output.lowercased().hasSuffix(".npy") else {
            throw CLIError("--output \(output): a distributed encoding writes .npy (each rank its rows of one file)")
        }
        let start = ContinuousClock.now
        // This rank's codes [k, …] from row `first` of `total`, its signals and their reconstructions.
        let (total, first, z, mine, reconstruction, what): (Int, Int, Tensor, Tensor, Tensor, String)
        switch file.model {
        case let .dense(m):
            let x = try ModelRun.rows(data, for: m)
            let encoder = try ModelRun.overriding(m, layers: encoding.layers, tolerance: encoding.tolerance)
            let rows = job.share(of: x.rowCount)
            let signals = x.rows(rows)
            let codes = try inContext(encoding.exact ? "--exact" : "encode") {
                try encoding.exact ? encoder.exactLassoCodes(signals) : encoder.encode(signals)
            }
            (total, first, z, mine, reconstruction) = (x.rowCount, rows.lowerBound, codes, signals, encoder.decoder.apply(codes))
            what = "\(x.rowCount) signals of \(x.valuesPerRow) values"
        case .conv2d where encoding.exact, .vsc where encoding.exact:
            throw CLIError("--exact applies to dense models only; \(model) holds \(file.described)")
        case let .conv2d(m):
            let images = try ModelRun.images(data)
            let model = try ModelRun.overriding(m, layers: encoding.layers, tolerance: encoding.tolerance)
            let share = job.share(of: images.shape[0])
            let signals = images.rows(share)
            let (codes, x̂) = try inContext("encode") { try model.reconstruct(signals) }
            (total, first, z, mine, reconstruction) = (images.shape[0], share.lowerBound, codes, signals, x̂)
            what = "\(images.shape[0]) image(s) of \(images.shape[2])×\(images.shape[1])"
        case let .vsc(v):
            let x = try ArrayInput.matrix(ArrayReference(data), option: "--data", defaults: ["X"]).tensor
            let rows = job.share(of: x.rows)
            // Each rank draws from its own generator (from --seed and the rank).
            var rng = Random(seed: encoding.seed).derived([UInt64(job.rank)])
            let (codes, x̂) = try inContext("--data \(data) with --model \(model)") {
                try v.encode(x.rows(rows), samples: encoding.samples, rng: &rng)
            }
            (total, first, z, mine, reconstruction) = (x.rows, rows.lowerBound, codes, x.rows(rows), x̂)
            what = "\(x.rows) signals of \(x.cols) values"
        case .conv1d:
            throw CLIError("--model \(model) holds \(file.described): a recording is encoded by one process; run it without mpirun")
        }
        let seconds = secondsSince(start)
        let rowShape = Array(z.shape.dropFirst()), rowValues = rowShape.reduce(1, *)
        var residual = mine
        residual.add(reconstruction, scaledBy: -1)

        let header = Npy.float32Header(shape: [total] + rowShape)
        let partial = output + ".tmp-ranks"
        if job.isRoot {
            try inContext("--output") {
                try Data(header).write(to: URL(fileURLWithPath: partial))
                guard truncate(partial, off_t(header.count + total * rowValues * 4)) == 0 else {
                    throw CLIError("--output \(output): cannot size the file: \(String(cString: strerror(errno)))")
                }
            }
        }
        job.barrier()
        let fd = open(partial, O_WRONLY)
        guard fd >= 0 else { throw CLIError("--output \(output): cannot open \(partial): \(String(cString: strerror(errno)))") }
        let written = z.data.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(header.count + first * rowValues * 4)) }
        let synced = fsync(fd)
        close(fd)
        guard written == z.count * 4, synced == 0 else {
            throw CLIError("--output \(output): rank \(job.rank) could not write its rows: \(String(cString: strerror(errno)))")
        }
        let totals = job.sum([Double(z.zeroCount()), Double(z.count), residual.squaredNorm(), mine.squaredNorm(), seconds])
        job.barrier()
        guard job.isRoot else { return }
        try inContext("--output") {
            guard rename(partial, output) == 0 else { throw CLIError("cannot rename \(partial): \(String(cString: strerror(errno)))") }
        }
        let zeros = totals[0] / max(totals[1], 1)
        print("encoded \(what) with \(file.described) (\(Self.encoderSummary(file, exact: encoding.exact))) on \(job.size) ranks "
            + "in \(String(format: "%.2f", secondsSince(start))) s (\(String(format: "%.2f", totals[4] / Double(job.size))) s encoding per rank): "
            + "zeros \(String(format: "%.1f", 100 * zeros))% (\(String(format: "%.2f", (1 - zeros) * Double(rowValues))) non-zeros per row), "
            + "reconstruction error ‖X − X̂‖/‖X‖ = \(fmt((totals[2] / totals[3]).squareRoot())); wrote \(output) \([total] + rowShape)")
    }

    /// "ista, T 15, soft λ 0.1, α 0.2" for autoencoders; the family for VSC.
    static func encoderSummary(_ file: ModelFile, exact: Bool = false) -> String {
        if exact, case let .dense(m) = file.model, case let .scalar(lambda) = m.encoder.lambda {
            return "the exact lasso codes at λ \(CSV.format(lambda)), homotopy"
        }
        func summary<Op: DictionaryOperator>(_ m: UnrolledAutoencoder<Op>) -> String {
            let e = m.encoder
            let name = e.threshold == .hard ? "τ" : (e.lambdaIsPenalty ? "λ" : "threshold")
            let lambda: String
            switch e.lambda {
            case let .scalar(v): lambda = "\(name) " + CSV.format(v)
            case let .perAtom(v): lambda = "per-atom \(name) \(CSV.format(v.min() ?? 0))…\(CSV.format(v.max() ?? 0))"
            }
            let alpha = (try? e.stepSize(for: m.dictionary)).map { "α " + fmt(Double($0)) } ?? "α ?"
            return "\(e.algorithm.rawValue), T \(e.layers), \(ThresholdChoice(e.threshold).rawValue) \(lambda), \(alpha)"
                + (m.isTied ? "" : ", untied") + (m.beta == 1 ? "" : ", β \(CSV.format(m.beta))")
        }
        switch file.model {
        case let .dense(m): return summary(m)
        case let .conv1d(m): return summary(m)
        case let .conv2d(m): return summary(m)
        case let .vsc(v): return v.state.metadata["vsc.family"] ?? "variational"
        }
    }
}
