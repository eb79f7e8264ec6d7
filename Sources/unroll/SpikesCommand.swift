import ArgumentParser
import Foundation
import Unroll
import UnrollCore
import UnrollExperiments
import UnrollIO

/// `unroll spikes simulate|train|sort`: CRsAE spike sorting on 1-D (multichannel) recordings.
struct Spikes: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "CRsAE spike sorting: simulate recordings, learn templates, sort spikes.",
        discussion: """
        A recording is a .npy of shape samples × channels (or samples), or a .npz with an array \
        "signal" of that shape; `simulate` also stores the ground truth (filters, spike_neuron, spike_time, \
        spike_amplitude, sigma, sampling_rate), which `train --initialization truth` and `sort` use when present.

        Example:
          unroll spikes simulate --seconds 60 --output rec.npz
          unroll spikes train --data rec.npz --output model.safetensors
          unroll spikes sort --data rec.npz --model model.safetensors --output sorted
        """,
        subcommands: [SpikesSimulate.self, SpikesTrain.self, SpikesSort.self])
}

/// A recording read from .npy/.npz: `[channels, samples]`, plus the ground truth if the file has it.
struct SpikeRecordingFile {
    var signal: Tensor
    var samplingRate: Double?
    var filters: Tensor?
    var spikeTimes: [[Int]]?

    static func read(_ path: String, option: String) throws -> SpikeRecordingFile {
        let (_, arrays) = try ArrayInput.arrays(path, option: option)
        func find(_ name: String) -> Tensor? { arrays.first { $0.name == name }?.tensor }
        guard let raw = find("signal") ?? (arrays.count == 1 ? arrays[0].tensor : nil) else {
            throw CLIError("\(option) \(path): expected an array named \"signal\" (samples × channels); the file has "
                           + arrays.map(\.name).joined(separator: ", "))
        }
        let matrix: Tensor
        switch raw.rank {
        case 1: matrix = raw.reshaped([raw.count, 1])
        case 2: matrix = raw
        default: throw CLIError("\(option) \(path): the recording must be samples × channels, got shape \(raw.shape)")
        }
        guard matrix.rows >= 2, matrix.cols >= 1 else { throw CLIError("\(option) \(path): the recording is empty (shape \(raw.shape))") }
        if matrix.hasNonFinite { throw CLIError("\(option) \(path): the recording contains NaN or Inf") }
        var file = SpikeRecordingFile(signal: matrix.transposed())
        file.samplingRate = find("sampling_rate").flatMap { $0.data.first.map(Double.init) }
        file.filters = find("filters")
        if let n = find("spike_neuron"), let t = find("spike_time"), let f = file.filters, n.count == t.count {
            var times = [[Int]](repeating: [], count: f.shape[0])
            for (a, b) in zip(n.data, t.data) where Int(a) >= 0 && Int(a) < times.count { times[Int(a)].append(Int(b)) }
            file.spikeTimes = times.map { $0.sorted() }
        }
        return file
    }
}

struct SpikesSimulate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "simulate",
        abstract: "Simulate a recording with ground truth (CRsAE §6.1; biphasic spikes) and write it as .npz.")

    @Option(help: "Output .npz (signal: samples × channels, filters, spike_neuron, spike_time, spike_amplitude, sigma, sampling_rate).")
    var output: String
    @Option(help: "Seconds of recording.") var seconds: Double = 60
    @Option(help: "Sampling rate (Hz).") var rate: Double = 10_000
    @Option(help: "Neurons.") var neurons: Int = 3
    @Option(help: "Channels (4 = a tetrode).") var channels: Int = 1
    @Option(help: "Filter (template) length in ms.") var filterMs: Double = 2.5
    @Option(help: "Spike durations in ms, lo,hi (at most --filter-ms).") var spikeMs: String = "1,2"
    @Option(help: "SNR in dB.") var snr: Double = 16
    @Option(help: "Firing rates in Hz, lo,hi.") var firing: String = "10,30"
    @Option(help: "Waveforms: biphasic or gaussian.") var waveform: String = "biphasic"
    @Option(help: "Seed.") var seed: UInt64 = 0

    func run() throws {
        var config = SpikeRecordingConfig()
        config.duration = seconds
        config.samplingRate = rate
        config.neurons = neurons
        config.channels = channels
        config.filterMilliseconds = filterMs
        config.snr = snr
        let parts = firing.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2, parts[0] > 0, parts[0] <= parts[1] else { throw CLIError("--firing needs lo,hi in Hz with 0 < lo ≤ hi, got '\(firing)'") }
        config.firingRate = parts[0]...parts[1]
        let durations = spikeMs.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard durations.count == 2, durations[0] > 0, durations[0] <= durations[1] else { throw CLIError("--spike-ms needs lo,hi in ms, got '\(spikeMs)'") }
        config.spikeMilliseconds = durations[0]...durations[1]
        guard let kind = SpikeWaveformKind(rawValue: waveform) else { throw CLIError("--waveform must be biphasic or gaussian, got '\(waveform)'") }
        config.waveform = kind
        try inContext("spikes simulate") { try config.validate() }
        var rng = Random(seed: seed)
        let filters = SpikeSimulation.filters(config, rng: &rng)
        let rec = try inContext("spikes simulate") { try SpikeSimulation.record(config, filters: filters, rng: &rng) }
        var neuron: [Int] = [], time: [Int] = [], amp: [Float] = []
        for n in rec.spikeTimes.indices {
            neuron += [Int](repeating: n, count: rec.spikeTimes[n].count)
            time += rec.spikeTimes[n]
            amp += rec.amplitudes[n]
        }
        try inContext("--output \(output)") {
            try Npz.write(npy: [
                ("signal", Npy.encode(rec.signal.transposed())),
                ("filters", Npy.encode(rec.filters)),
                ("spike_neuron", Npy.encode(int64: neuron)),
                ("spike_time", Npy.encode(int64: time)),
                ("spike_amplitude", Npy.encode(Tensor(shape: [amp.count], data: amp))),
                ("sigma", Npy.encode(Tensor(shape: [1], data: [rec.sigma]))),
                ("sampling_rate", Npy.encode(Tensor(shape: [1], data: [Float(rate)]))),
            ], to: output)
        }
        print("wrote \(output): \(config.samples) samples × \(channels) channel(s), \(time.count) spikes of \(neurons) neurons, σ \(rec.sigma), K \(config.filterLength)")
    }
}

struct SpikesTrain: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train",
        abstract: "Learn spike templates with CRsAE (FISTA encoder, EM λ, σ from the residual, Adam) and write the model.",
        discussion: """
            After every epoch the run's state is written to <output>.checkpoint.safetensors (atomically); \
            --resume continues from it bit for bit (same recording and settings; more epochs may be asked for). \
            `unroll train --model conv1d --data REC --output DIR` runs the same training into a folder.
            """)

    @Option(name: [.customLong("data"), .customLong("recording")], help: "Recording (.npy samples × channels, or .npz with \"signal\"; --recording is the old spelling).")
    var recording: String
    @Option(help: "Output model (.safetensors, unroll-model/2: filters, λ, EM state, encoder settings).") var output: String
    @Option(help: "FISTA layers T.") var layers: Int = 50
    @Option(help: "Epochs of the first phase (T --layers, --lr decaying by --lr-decay) before the refinement (default: 0 from --initialization clusters, whose start is already near the templates; 15 otherwise).")
    var epochs: Int?
    @Option(help: "Windows per batch.") var batch: Int = 32
    @Option(help: "Adam learning rate.") var lr: Float = 0.01
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Flag(help: "Continue from <output>.checkpoint.safetensors.") var resume = false
    @OptionGroup var spikes: SpikesTrainOptions
    @OptionGroup var threading: ThreadOptions

    func run() throws {
        if output.lowercased().hasSuffix(".npz") {
            throw CLIError("--output \(output): spikes models are written as .safetensors now (unroll-model/2; .npz models of earlier releases still load), e.g. --output model.safetensors")
        }
        // model.safetensors → model.checkpoint.safetensors
        let checkpoint = (output.lowercased().hasSuffix(".safetensors") ? String(output.dropLast(11)) : output + ".") + "checkpoint.safetensors"
        let run = SpikesTraining(recording: recording, modelPath: output, checkpointPath: checkpoint, layers: layers, epochs: epochs,
                                 batch: batch, lr: lr, seed: seed, resume: resume, options: spikes)
        try threading.run { try run.execute() }
    }
}

/// The options of spikes training beyond the shared ones (`spikes train`, `train --model conv1d`).
struct SpikesTrainOptions: ParsableArguments {
    @Option(help: "conv1d: number of templates (neurons).") var neurons: Int = 3
    @Option(help: "conv1d: template length in samples (default: the file's filters, else 2.5 ms at the sampling rate).") var filterLength: Int?
    @Option(help: "conv1d: sampling rate (Hz) when the file does not store one.") var rate: Double = 10_000
    @Option(help: "conv1d: training window in samples.") var window: Int = 1000
    @Option(help: "conv1d: learning-rate factor per epoch.") var lrDecay: Float = 0.9
    @Option(help: "conv1d: epochs of a second phase at --refine-layers FISTA layers, from the first phase's templates (0 = none).") var refineEpochs: Int = 12
    @Option(help: "conv1d: FISTA layers of the second phase (more layers: codes not smeared over neighbouring samples).") var refineLayers: Int = 100
    @Option(help: "conv1d: constant Adam learning rate of the second phase.") var refineLr: Float = 0.001
    @Option(help: "conv1d: Gamma prior rate δ of the EM λ (0 = maximum likelihood).") var priorRate: Float = 500
    @Option(help: "conv1d: start: clusters (the detected spikes clustered into 3 × --neurons groups, then merged), crossings (threshold crossings, minimum mutual correlation) or truth (the file's filters at error 0.4–0.5).")
    var initialization: String = "clusters"
    @Option(help: "conv1d: spike detection threshold in robust σ (median|y|/0.6745) for --initialization clusters and crossings.") var crossing: Float = 4
    @Option(name: .customLong("start"), help: "conv1d: start from these filters instead (a model written by `spikes train`, or .npy [C, channels, K]); replaces --initialization.")
    var startFile: String?
    @Flag(help: "conv1d: one-sided (non-negative) codes instead of CRsAE's two-sided ReLU.") var nonNegative = false

    /// The long names, for the table of which `train` options apply where.
    static let names: Set = ["--neurons", "--filter-length", "--rate", "--window", "--lr-decay", "--refine-epochs", "--refine-layers",
                             "--refine-lr", "--prior-rate", "--initialization", "--crossing", "--start", "--non-negative"]
}

/// One spikes training run: the recording, the start, the two phases with a checkpoint after every
/// epoch, the model file.
struct SpikesTraining {
    let recording: String
    let modelPath: String
    let checkpointPath: String
    let layers: Int, epochs: Int?, batch: Int
    let lr: Float
    let seed: UInt64
    let resume: Bool
    let options: SpikesTrainOptions

    func execute() throws {
        if resume && !FileManager.default.fileExists(atPath: checkpointPath) {
            throw CLIError("--resume: \(checkpointPath) does not exist (nothing to resume; run without --resume to start)")
        }
        // Data-parallel under mpirun: every rank trains, rank 0 alone writes and reports; a failing
        // rank ends the job.
        let job = try Distributed.current()
        try job.run { try train(job: job) }
    }

    private func train(job: Distributed) throws {
        let clock = ContinuousClock.now
        let lock = job.isRoot ? try inContext("--output") { try RunLock(model: modelPath, outputs: [checkpointPath]) } : nil
        defer { withExtendedLifetime(lock) {} }
        let o = options
        let (neurons, filterLength, rate, window, lrDecay) = (o.neurons, o.filterLength, o.rate, o.window, o.lrDecay)
        let (refineEpochs, refineLayers, refineLr, priorRate) = (o.refineEpochs, o.refineLayers, o.refineLr, o.priorRate)
        let (initialization, crossing, startFile, nonNegative) = (o.initialization, o.crossing, o.startFile, o.nonNegative)
        let file = try SpikeRecordingFile.read(recording, option: "--data")
        let fs = file.samplingRate ?? rate
        let k = filterLength ?? file.filters?.shape[2] ?? SpikeTrainingSettings.defaultFilterLength(samplingRate: fs)
        let method = startFile == nil ? SpikeStart(rawValue: initialization) : nil
        let epochs = self.epochs ?? SpikeTrainingSettings.defaultEpochs(start: method)
        guard neurons >= 1, k >= 2, window > k, layers >= 1, batch >= 1, refineLayers >= 1, epochs >= 0, refineEpochs >= 0,
              epochs + refineEpochs >= 1 else {
            throw CLIError("need --neurons ≥ 1, --filter-length ≥ 2, --window > filter length, --layers/--batch/--refine-layers ≥ 1, --epochs and --refine-epochs ≥ 0 with at least one epoch in all")
        }
        func writeModel(_ model: SpikeModel) throws {
            try ModelFile(model: .conv1d(try model.autoencoder()),
                          info: ["training.seed": String(seed), "training.epochs": String(epochs), "training.refine_epochs": String(o.refineEpochs),
                                 "data.recording": (recording as NSString).lastPathComponent])
                .write(to: modelPath, option: "--output")
        }
        guard refineLr.isFinite, refineLr > 0 else { throw CLIError("--refine-lr must be finite and > 0, got \(refineLr)") }
        var rng = Random(seed: seed)
        let start: Tensor
        if let path = startFile {
            let f: Tensor?
            if path.lowercased().hasSuffix(".safetensors") {
                f = try ModelFile.read(path, option: "--start").spikes(path, option: "--start").filters
            } else {
                let (_, arrays) = try ArrayInput.arrays(path, option: "--start")
                f = (arrays.first { $0.name == "filters" } ?? arrays.first)?.tensor
            }
            guard let f, f.rank == 3,
                  f.shape[0] == neurons, f.shape[1] == file.signal.shape[0], f.shape[2] == k else {
                throw CLIError("--start \(path): expected filters [\(neurons), \(file.signal.shape[0]), \(k)] (neurons × channels × filter length)")
            }
            start = f
        } else {
            if initialization == "truth" {
                guard let f = file.filters, f.shape[0] == neurons, f.shape[2] == k else {
                    throw CLIError("--initialization truth needs the recording's \"filters\" array with \(neurons) filters of length \(k)")
                }
                start = SpikeTemplates.perturbed(f, rng: &rng)
            } else if let method {
                start = try inContext("--initialization \(initialization)") {
                    try method.templates(file.signal, count: neurons, length: k, threshold: crossing, rng: &rng)
                }
            } else {
                throw CLIError("--initialization must be clusters, crossings or truth, got '\(initialization)'")
            }
        }
        var settings = SpikeTrainingSettings(epochs: epochs)
        settings.window = window
        settings.training.layers = layers
        settings.training.batchSize = batch
        settings.training.learningRate = lr
        settings.training.learningRateDecay = lrDecay
        settings.refineEpochs = refineEpochs
        settings.refineLayers = refineLayers
        settings.refineLearningRate = refineLr
        settings.training.threshold = nonNegative ? .nonNegative : .soft
        settings.priorRate = priorRate
        settings.seed = seed
        let truth = file.filters.flatMap { $0.shape == start.shape ? $0 : nil } ?? start
        var run = try inContext("spikes train") { try SpikeTrainingRun(settings, start: start, recording: file.signal) }
        run.reducer = job.reducer
        if resume {
            let checkpoint = try CheckpointFile.read(checkpointPath)
            try inContext("--resume \(checkpointPath)") { try run.restore(checkpoint) }
        }
        if job.isRoot && !resume, file.filters != nil {
            let errors = SpikeTemplates.errors(learned: start, truth: truth).map { String(format: "%.4g", $0.error) }
            FileHandle.standardError.write(Data(("start (\(startFile == nil ? initialization : "--start")): template errors " + errors.joined(separator: " ") + "\n").utf8))
        }
        while !run.done {
            let loss = try inContext("spikes train") { try run.trainEpoch() }
            let errors = SpikeTemplates.errors(learned: run.trainer.dictionary.weights, truth: truth).map(\.error)
            guard job.isRoot else { continue }
            let line = run.describeEpoch(loss: loss, templateErrors: errors) + (file.filters == nil ? " (template errors vs the start)" : "")
            FileHandle.standardError.write(Data((line + "\n").utf8))
            try writeModel(try inContext("spikes train") { try run.model() })   // usable if the run is killed
            try inContext("writing the checkpoint") { try CheckpointFile.write(run.checkpoint(), extra: [:], to: checkpointPath) }
        }
        if job.size > 1, !(try job.reducer.agree(on: run.trainer.model.parameters)) {
            throw CLIError("the ranks ended with different weights; the model is not written")
        }
        guard job.isRoot else { return }
        let model = try inContext("spikes train") { try run.model() }
        try writeModel(model)
        print("wrote \(modelPath): \(neurons) templates of \(k) samples, λ " + model.lambdas.map { String(format: "%.2f", $0) }.joined(separator: ",")
              + String(format: ", σ %.4g", model.sigma) + job.summary(seconds: secondsSince(clock)))
    }
}

struct SpikesSort: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sort",
        abstract: "Sort a recording: encode it in chunks, pick each neuron's spikes, write spikes.csv (and score against ground truth).")

    @Option(name: [.customLong("data"), .customLong("recording")], help: "Recording (.npy samples × channels, or .npz with \"signal\"; --recording is the old spelling).")
    var recording: String
    @Option(help: "Model from `unroll spikes train` (.safetensors, or a .npz of earlier releases).") var model: String
    @Option(help: "Output folder (spikes.csv; with ground truth also miss_false_alarm.csv/.png and templates.png).") var output: String
    @Option(help: "Keep detections with peak height ≥ this (0 = all peaks).") var threshold: Float = 0
    @Option(help: "Chunk length in samples.") var chunk: Int = 20_000
    @Option(help: "Matching tolerance in ms for the scores.") var toleranceMs: Double = 0.5
    @Option(help: "Sampling rate (Hz) when the file does not store one.") var rate: Double = 10_000
    @Flag(help: "Use the convex baseline (FISTA to --tolerance) instead of the trained encoder.") var convex = false
    @Option(help: "Convex baseline tolerance (relative change of the iterate).") var tolerance: Float = 1e-4
    @OptionGroup var threading: ThreadOptions

    func run() throws { try threading.run { try execute() } }

    private func execute() throws {
        let file = try SpikeRecordingFile.read(recording, option: "--data")
        let m = try ModelFile.read(model, option: "--model").spikes(model)
        guard m.filters.shape[1] == file.signal.shape[0] else {
            throw CLIError("--model has \(m.filters.shape[1])-channel templates but --data has \(file.signal.shape[0]) channels")
        }
        guard chunk > m.filterLength else { throw CLIError("--chunk must exceed the template length \(m.filterLength)") }
        let fs = file.samplingRate ?? rate
        let t0 = ContinuousClock.now
        let codes: Tensor
        if convex {
            codes = try inContext("spikes sort") { try m.encodeConvex(file.signal, tolerance: tolerance, chunkSamples: chunk).codes }
        } else {
            codes = try inContext("spikes sort") { try m.encode(file.signal, chunkSamples: chunk) }
        }
        let found = SpikeDetection.detect(codes: codes, filters: m.filters)
        let seconds = secondsSince(t0)
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        let rows = SpikeDetection.byTime(found).filter { $0.spike.height >= threshold }
            .map { [Double($0.neuron), Double($0.spike.time), Double($0.spike.time) / fs, Double($0.spike.height)] }
        try CSV.write(header: ["neuron", "sample", "seconds", "height"], rows: rows, to: output + "/spikes.csv")
        print(String(format: "sorted %.1f s of recording in %.2f s (%@): %d detections → %@/spikes.csv",
                     Double(file.signal.shape[1]) / fs, seconds, convex ? "convex baseline" : "trained encoder", rows.count, output))
        guard let truth = file.filters, truth.shape == m.filters.shape, let times = file.spikeTimes else { return }
        // Ground truth present: match templates, score, draw.
        let matching = SpikeTemplates.errors(learned: m.filters, truth: truth)
        let dets = SpikesExperiment.detections(codes: codes, model: m, matching: matching)
        let tol = max(1, Int((toleranceMs * fs / 1000).rounded()))
        let grid = stride(from: 0.0, through: 0.5, by: 0.005).map { $0 }
        var plot = LinePlot(title: "miss vs false alarm", xLabel: "false alarm rate", yLabel: "miss rate")
        var table: [[Double]] = grid.map { [$0] }
        for n in times.indices {
            let score = SpikeScore(truth: times[n], detections: dets[n], tolerance: tol)
            let y = grid.map { score.missRate(atFalseAlarm: $0) }
            plot.add("neuron \(n)", x: grid, y: y)
            for i in grid.indices { table[i].append(y[i]) }
            print(String(format: "neuron %d: template error %.3f, miss %.3f at 5%% false alarm (%d true spikes)",
                         n, matching[n].error, score.missRate(atFalseAlarm: 0.05), times[n].count))
        }
        try CSV.write(header: ["false_alarm"] + times.indices.map { "miss_neuron_\($0)" }, rows: table, to: output + "/miss_false_alarm.csv")
        try PNG.write(plot.render(), to: output + "/miss_false_alarm.png")
        let k = m.filterLength, per = m.filters.shape[1] * k
        var templates = LinePlot(title: "templates (channel 0): true vs learned", xLabel: "sample", yLabel: "amplitude")
        for n in times.indices {
            templates.add("true \(n)", x: (0..<k).map(Double.init), y: (0..<k).map { Double(truth.data[n * per + $0]) })
            let lag = matching[n].lag, l = matching[n].learned
            let xs = (0..<k).filter { $0 + lag >= 0 && $0 + lag < k }
            templates.add("learned \(n)", x: xs.map(Double.init), y: xs.map { Double(m.filters.data[l * per + $0 + lag]) })
        }
        try PNG.write(templates.render(), to: output + "/templates.png")
    }
}

/// `unroll reproduce spikes`: `SpikesExperiment` at a scale; `--steps` overrides the epochs.
enum SpikesReproduce {
    static func run(scale: ReproductionScale, seed: UInt64, steps: Int?, callbacks: ReproductionCallbacks) throws -> ReproductionResult {
        var s = SpikesExperiment.settings(scale)
        s.seed = seed
        if let e = steps { s.epochs = e }
        return try SpikesExperiment.run(s, scale: scale.rawValue, callbacks: callbacks)
    }
}
