import ArgumentParser
import Foundation
import Unroll
import UnrollCore
import UnrollIO

/// `unroll train`: learn a dense dictionary with an unrolled encoder (PUDLE) or a baseline, with a CSV
/// log, checkpoints, `--resume`, and figures.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Learn a dense dictionary from data by unrolled sparse coding (PUDLE) or a baseline.",
        discussion: """
            Files. Samples are rows: --data is [n, m] (an npz's array X by default; FILE:NAME picks \
            another; .npy, .npz, .safetensors, IDX, CSV and images are read, extra axes are flattened, \
            so an IDX stack [n, 28, 28] becomes [n, 784]). Dictionaries are stored ATOMS AS ROWS, \
            [p, m], so X ≈ Z·W (transpose an m×p matrix D first). --init reads D_init, W or \
            dictionary by default (e.g. the file of `unroll synth`, or a model.safetensors). \
            --truth reads D_true [p, m] and, if present, Z_true [n, p] and logs the dictionary \
            error ‖D − D*‖/‖D*‖ (atoms normalised, no permutation) and the code error mean‖z − z*‖.

            Model. ISTA or FISTA with T layers from z = 0, step α (or auto: 1/L by power iteration), \
            threshold soft (λα), non-negative (λα) or hard (τ). Gradients: decoder (g_dec, codes \
            held fixed, lasso loss), lasso (g_ae-lasso, backprop through the T layers), \
            least-squares (g_ae-ls, reconstruction loss through the T layers), alternating (PUDLE's \
            Algorithm 1: FISTA to --tolerance, at most --layers iterations, then a g_dec step), \
            noodl (hard threshold τ, sign-based update, SGD with lr 20 by default). Atoms are scaled \
            to unit norm after every step unless --no-normalize. --beta-decay lowers the per-layer \
            λ_t = λ·β^(t−1): β starts at 1 and drops by --beta-decrement every --beta-every steps.

            Output in DIR: model.safetensors (W and the encoder settings, for `unroll encode`), \
            log.csv (one row per step), checkpoint.safetensors (every --checkpoint-every steps and \
            at the end; written atomically), curve.png, and atoms.png when --patch is given or m \
            is a perfect square. --steps and --epochs are totals: after an interruption, run the \
            same command with --resume to continue bit-identically from the last checkpoint. If \
            training diverges, the last good state is saved and the command exits non-zero.

            Example:
              unroll synth --m 50 --p 100 --n 2000 --s 5 --seed 1 --output data.npz
              unroll train --data data.npz --init data.npz --truth data.npz \\
                --layers 100 --step 0.2 --lambda 0.2 --gradient least-squares \\
                --lr 1e-3 --batch 50 --epochs 30 --output run
            """)

    // Data and initial dictionary
    @Option(help: "Model: dense; conv1d (CRsAE spike templates; --data is a recording, see docs/spikes.md); conv2d (a convolutional dictionary for image denoising; --data is a folder of PNGs, see docs/denoising.md); or vsc (variational sparse coding; --data is a folder of PNGs, or Fashion-MNIST's IDX files with --generator conv, see docs/vsc.md).")
    var model: TrainModelChoice = .dense
    @OptionGroup var conv: Conv2DTrainOptions
    @OptionGroup var spikes: SpikesTrainOptions
    @OptionGroup var vsc: VSCTrainOptions
    @Option(help: ArgumentHelp("Training signals [n, m], samples as rows.", valueName: "file[:array]"))
    var data: String
    @Option(name: .customLong("init"), help: ArgumentHelp("Initial dictionary [p, m], atoms as rows.", valueName: "file[:array]"))
    var initFile: String?
    @Option(help: "Start from p random unit-norm Gaussian atoms instead of --init.")
    var atoms: Int?
    @Option(help: ArgumentHelp("Ground truth: a file with D_true [p, m] and optionally Z_true [n, p].", valueName: "file"))
    var truth: String?

    // Encoder
    @Option(help: "Unrolled algorithm: ista or fista (default ista; fista for --gradient alternating).")
    var encoder: EncoderChoice?
    @Option(parsing: .unconditional, help: "Layers T (default 100; for alternating, the iteration cap, default 1000).")
    var layers: Int?
    @Option(parsing: .unconditional, help: ArgumentHelp("Step α, or auto for 1/L (default auto).", valueName: "α|auto"))
    var step: StepChoice?
    @Option(parsing: .unconditional, help: "λ of the soft thresholds (default 0.2).")
    var lambda: Float?
    @Option(name: .customLong("lambda-per-atom"), help: ArgumentHelp("One λ per atom, from a file of p values (instead of --lambda).", valueName: "file[:array]"))
    var lambdaPerAtom: String?
    @Option(help: "Threshold: soft, non-negative or hard (default soft; hard for noodl).")
    var threshold: ThresholdChoice?
    @Option(parsing: .unconditional, help: "τ of the hard threshold (default 0.1).")
    var tau: Float?
    @Flag(name: .customLong("beta-decay"), help: "PUDLE's λ decay across layers: λ_t = λ·β^(t−1), β = 1 − 0.005·⌊step/100⌋.")
    var betaDecay = false
    @Option(name: .customLong("beta-decrement"), parsing: .unconditional, help: "With --beta-decay: how much β drops each time.")
    var betaDecrement: Float = 0.005
    @Option(name: .customLong("beta-every"), parsing: .unconditional, help: "With --beta-decay: steps between drops.")
    var betaEvery: Int = 100
    @Option(parsing: .unconditional, help: "With --gradient alternating: stop FISTA when the relative code change is below this.")
    var tolerance: Float = 1e-4

    // Training
    @Option(help: "Update rule: decoder, lasso, least-squares, alternating or noodl.")
    var gradient: GradientChoice = .leastSquares
    @Option(help: "adam or sgd (default adam; sgd for noodl).")
    var optimizer: OptimizerChoice?
    @Option(parsing: .unconditional, help: "Learning rate (default 1e-3; 20 for noodl).")
    var lr: Float?
    @Option(parsing: .unconditional, help: "Adam β1.")
    var beta1: Float = 0.9
    @Option(parsing: .unconditional, help: "Adam β2.")
    var beta2: Float = 0.999
    @Option(parsing: .unconditional, help: "Adam ε.")
    var eps: Float = 1e-8
    @Option(parsing: .unconditional, help: "SGD momentum.")
    var momentum: Float = 0
    @Option(parsing: .unconditional, help: ArgumentHelp("Examples per step, or full.", valueName: "n|full"))
    var batch: BatchChoice = BatchChoice(argument: "full")!
    @Option(parsing: .unconditional, help: "Train until this many epochs are done (default 100 when --steps is not given).")
    var epochs: Int?
    @Option(parsing: .unconditional, help: "Train until this many steps are done.")
    var steps: Int?
    @Option(help: "Seed for shuffling and the random initial dictionary.")
    var seed: UInt64 = 0
    @Flag(name: .customLong("no-normalize"), help: "Do not scale the atoms to unit norm after each step.")
    var noNormalize = false
    @Flag(name: .customLong("no-shuffle"), help: "Keep the file order of the examples instead of shuffling every epoch.")
    var noShuffle = false
    @Option(name: .customLong("checkpoint-every"), parsing: .unconditional, help: "Write DIR/checkpoint.safetensors every N steps (and always at the end).")
    var checkpointEvery: Int = 100

    // Output
    @Option(name: .shortAndLong, help: ArgumentHelp("Output directory (created if missing).", valueName: "dir"))
    var output: String
    @Flag(help: "Continue the run in --output from its checkpoint (same settings; the log is appended).")
    var resume = false
    @Option(help: ArgumentHelp("Atom shape for atoms.png, e.g. 8x8 (default: √m×√m when m is a square).", valueName: "HxW"))
    var patch: PatchShape?
    @OptionGroup var threading: ThreadOptions

    func run() throws {
        lineBufferedOutput()
        try TrainOptionScope.check(GivenOptions.current(), model: model, family: conv.family)
        let job = try Distributed.current()
        try job.run {
            try threading.run {
                if model == .conv1d { return try spikesTraining().execute() }
                if model == .conv2d { return try Conv2DTraining(o: self).run() }
                if model == .vsc { return try vscTraining() }
                try TrainingSetup(self).train()
            }
        }
    }
}

extension Train {
    /// `--model conv1d`: the spikes training into the folder (model.safetensors, checkpoint.safetensors).
    func spikesTraining() throws -> SpikesTraining {
        try inContext("--output") { try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true) }
        var options = spikes
        if let a = atoms { options.neurons = a }
        return SpikesTraining(recording: data, modelPath: output + "/model.safetensors", checkpointPath: output + "/checkpoint.safetensors",
                              layers: layers ?? 50, epochs: epochs, batch: batch.size ?? 32, lr: lr ?? 0.01, seed: seed,
                              resume: resume, options: options)
    }
}

/// Everything `unroll train` resolved from its options and files, and the training loop.
struct TrainingSetup {
    let options: Train
    let signals: any RowSource
    let initial: Tensor
    let truth: GroundTruth?
    let config: TrainerConfig
    let targetSteps: Int?
    let targetEpochs: Int?
    let patch: PatchShape?
    let directory: String

    init(_ o: Train) throws {
        options = o
        directory = o.output
        if o.epochs != nil && o.steps != nil { throw CLIError("give --epochs or --steps, not both") }
        if let e = o.epochs, e < 0 { throw CLIError("--epochs must be ≥ 0, got \(e)") }
        if let s = o.steps, s < 0 { throw CLIError("--steps must be ≥ 0, got \(s)") }
        targetSteps = o.steps
        targetEpochs = o.steps == nil ? (o.epochs ?? 100) : nil

        // Data, samples as rows.
        signals = try ArrayInput.rowSource(ArrayReference(o.data), option: "--data", defaults: ["X"])
        let (n, m) = (signals.rowCount, signals.valuesPerRow)

        // Initial dictionary, atoms as rows.
        switch (o.initFile, o.atoms) {
        case (nil, nil):
            throw CLIError("give an initial dictionary with --init FILE[:ARRAY] or a number of random atoms with --atoms P")
        case (.some, .some):
            throw CLIError("give --init or --atoms, not both")
        case let (nil, p?):
            guard p >= 1 else { throw CLIError("--atoms must be ≥ 1, got \(p)") }
            // p·m floats for the dictionary, and as many again per optimizer moment and batch of codes.
            let (size, overflow) = p.multipliedReportingOverflow(by: m)
            guard !overflow, size <= 1 << 28 else {
                throw CLIError("--atoms \(p) with signals of m = \(m) makes a dictionary of \(overflow ? "more than 2⁶³" : String(size)) values; the limit is 2²⁸ (1 GiB of float32)")
            }
            initial = DenseDictionary.random(atoms: p, signalSize: m, seed: o.seed).weights
        case let (file?, nil):
            let ref = ArrayReference(file)
            let (name, w, _) = try ArrayInput.load(ref, option: "--init", defaults: ["D_init", "W", "dictionary"])
            guard w.rank == 2 else {
                throw CLIError("--init \(ref.path): array '\(name)' has shape \(w.shape), expected a [p, m] dictionary (atoms as rows)")
            }
            guard w.shape[1] == m else {
                let hint = w.shape[0] == m ? "; it looks like m×p — dictionaries are stored atoms as rows, transpose it" : ""
                throw CLIError("shape mismatch: --init \(ref.path):\(name) is \(w.shape) = [p, m] with atoms of length \(w.shape[1]), but the --data rows have m = \(m) values\(hint)")
            }
            if w.hasNonFinite { throw CLIError("--init \(ref.path): array '\(name)' contains NaN or Inf") }
            initial = w
        }
        let p = initial.rows

        // Ground truth.
        if let file = o.truth {
            let (_, arrays) = try ArrayInput.arrays(file, option: "--truth")
            guard let w = arrays.first(where: { $0.name == "D_true" })?.tensor else {
                throw CLIError("--truth \(file): no array 'D_true' (it has \(arrays.map { "'\($0.name)'" }.joined(separator: ", ")))")
            }
            guard w.shape == initial.shape else {
                throw CLIError("shape mismatch: --truth \(file):D_true is \(w.shape), the dictionary being trained is \(initial.shape) (atoms as rows)")
            }
            var z: Tensor?
            if let codes = arrays.first(where: { $0.name == "Z_true" })?.tensor {
                guard codes.shape == [n, p] else {
                    throw CLIError("shape mismatch: --truth \(file):Z_true is \(codes.shape), expected [n, p] = [\(n), \(p)]")
                }
                z = codes
            }
            truth = GroundTruth(weights: w, codes: z)
        } else {
            truth = nil
        }

        // Encoder.
        let g = o.gradient
        let thresholdChoice = o.threshold ?? (g == .noodl ? .hard : .soft)
        var lambda: Lambda
        if thresholdChoice == .hard {
            if o.lambda != nil || o.lambdaPerAtom != nil {
                throw CLIError("--lambda and --lambda-per-atom are for soft thresholds; the hard threshold uses --tau")
            }
            lambda = .scalar(o.tau ?? 0.1)
        } else {
            if o.tau != nil { throw CLIError("--tau is the hard threshold; use --threshold hard, or --lambda for \(thresholdChoice.rawValue)") }
            if let file = o.lambdaPerAtom {
                if o.lambda != nil { throw CLIError("give --lambda or --lambda-per-atom, not both") }
                let ref = ArrayReference(file)
                let (_, values, _) = try ArrayInput.load(ref, option: "--lambda-per-atom", defaults: ["lambda"])
                guard values.count == p else {
                    throw CLIError("shape mismatch: --lambda-per-atom \(file) has \(values.count) values, the dictionary has p = \(p) atoms")
                }
                lambda = .perAtom(values.data)
            } else {
                lambda = .scalar(o.lambda ?? 0.2)
            }
        }
        var encoder = UnrolledEncoder(
            layers: o.layers ?? (g == .alternating ? 1000 : 100),
            algorithm: (o.encoder ?? (g == .alternating ? .fista : .ista)).algorithm,
            threshold: thresholdChoice.threshold, lambda: lambda,
            step: o.step?.step ?? .inverseLipschitz())
        if g == .alternating { encoder.tolerance = o.tolerance }

        // Optimizer and trainer settings.
        let optimizerChoice = o.optimizer ?? (g == .noodl ? .sgd : .adam)
        let lr = o.lr ?? (g == .noodl ? 20 : 1e-3)
        let optimizer: Optimizer = optimizerChoice == .adam
            ? .adam(learningRate: lr, beta1: o.beta1, beta2: o.beta2, epsilon: o.eps)
            : .sgd(learningRate: lr, momentum: o.momentum)
        var config = TrainerConfig(
            encoder: encoder, mode: g.mode, optimizer: optimizer, batchSize: o.batch.size,
            shuffle: !o.noShuffle, seed: o.seed, normalizeAtoms: !o.noNormalize,
            beta: o.betaDecay ? BetaSchedule(start: 1, decrement: o.betaDecrement, every: o.betaEvery) : .constant)
        config.untied = o.conv.untied
        try inContext("train settings") { try config.validate() }
        self.config = config

        // Atom picture.
        if let shape = o.patch {
            guard shape.height * shape.width == m else {
                throw CLIError("--patch \(shape) has \(shape.height * shape.width) pixels, but atoms have m = \(m) values")
            }
            patch = shape
        } else {
            let side = Int(Double(m).squareRoot().rounded())
            patch = side * side == m && side > 1 ? PatchShape(height: side, width: side) : nil
        }
    }

    /// The CLI's own settings, stored in the checkpoint; `--resume` requires them unchanged (the
    /// trainer checks its own: encoder, batches, optimizer).
    var cliSettings: [String: String] {
        let b = config.beta
        return [
            "cli.gradient": options.gradient.rawValue,
            "cli.normalize": String(config.normalizeAtoms),
            "cli.beta_schedule": b == .constant ? "constant" : "start \(b.start), -\(b.decrement) every \(b.every)",
            "cli.data_shape": "\(signals.shape)",
        ]
    }

    func model(_ trainer: DictionaryTrainer<DenseDictionary>) throws -> ModelFile {
        let o = options
        let opt: String
        switch config.optimizer.kind {
        case let .adam(b1, b2, e): opt = "adam lr \(config.optimizer.learningRate) beta1 \(b1) beta2 \(b2) eps \(e)"
        case let .sgd(mu, _): opt = "sgd lr \(config.optimizer.learningRate) momentum \(mu)"
        }
        let info = [
            "training.gradient": o.gradient.rawValue,
            "training.optimizer": opt,
            "training.batch": o.batch.description,
            "training.step": String(trainer.step),
            "training.epoch": String(trainer.epoch),
            "training.seed": String(o.seed),
            "training.normalize": String(config.normalizeAtoms),
            "training.beta_schedule": cliSettings["cli.beta_schedule"]!,
            "data.file": o.data,
            "data.shape": "[\(signals.rowCount), \(signals.valuesPerRow)]",
        ]
        return ModelFile(model: .dense(try trainer.model.autoencoder(afterSteps: trainer.step)), info: info)
    }

    /// The model and figures for the trainer's current state.
    func save(_ trainer: DictionaryTrainer<DenseDictionary>, history: RunHistory, initialError: Double?) throws {
        try inContext("writing the model") { try model(trainer).write(to: directory + "/model.safetensors") }
        if let patch {
            let scale = max(1, 64 / max(patch.height, patch.width))
            try inContext("writing atoms.png") {
                try AtomGrid(atomHeight: patch.height, atomWidth: patch.width, scale: scale)
                    .writePNG(trainer.dictionary.weights, to: directory + "/atoms.png")
            }
        }
        let start = initialError.map { ["dict_error": $0] } ?? [:]
        try writeCurve(history.plot(title: "unroll train (\(options.gradient.paperName))",
                                    series: ["loss", "dict_error", "code_error"], start: start), in: directory)
    }

    // MARK: training

    func train() throws {
        // A step's working memory (the batch's signals, codes, residuals and their gradients) is
        // checked before the first step, so a batch too large for the memory left gives one line
        // instead of an abort. Measured for B 60 000, m 1000: 3.8 copies of B × (m + p) floats
        // resident, more in address space (what ulimit -v counts); 6 are asked for.
        let b = config.batchSize ?? signals.rowCount
        try inContext("--batch \(b)") {
            try MemoryBudget.check(24 * b * (signals.valuesPerRow + initial.rows), for: "steps on batches of \(b) × \(signals.valuesPerRow)")
        }
        let run = try TrainingRun(output: directory, resume: options.resume, checkpointEvery: options.checkpointEvery)
        var trainer = try DictionaryTrainer(dictionary: try DenseDictionary(weights: initial), data: signals,
                                            config: config, groundTruth: truth)
        let initialError = trainer.dictionaryError()
        let clock = ContinuousClock.now
        let last = try run.run(
            &trainer, steps: targetSteps ?? targetEpochs! * trainer.stepsPerEpoch, label: "train",
            columns: ["epoch", "loss", "rec", "l1", "dict_error", "code_error", "beta"],
            fields: { r in
                [String(r.epoch), CSV.format(r.loss), CSV.format(r.reconstruction), CSV.format(r.l1),
                 r.dictionaryError.map { CSV.format($0) } ?? "nan", r.codeError.map { CSV.format($0) } ?? "nan", CSV.format(r.beta)]
            },
            detail: { r in "loss \(fmt(r.loss))" + (r.dictionaryError.map { "  dict err \(fmt($0))" } ?? "") },
            settings: cliSettings,
            save: { t, history in try save(t, history: history, initialError: initialError) })

        // Summary line.
        var summary = "\(options.gradient.paperName): step \(trainer.step), epoch \(trainer.epoch)"
        if last == nil { summary += " (nothing to do: the target was already reached)" }
        if let r = last {
            summary += ", loss \(fmt(r.loss)) (rec \(fmt(r.reconstruction)), l1 \(fmt(r.l1)))"
        }
        if let w = truth?.weights {
            let final = DictionaryMetrics.relativeFrobeniusError(trainer.dictionary.weights, w)
            let matched = DictionaryMetrics.matchAtoms(trainer.dictionary.weights, to: w)
            summary += ", dict error \(fmt(initialError ?? .nan)) → \(fmt(final)) (matched mean sin \(fmt(matched.meanSinDistance)))"
        }
        if let c = last?.codeError { summary += ", code error \(fmt(c))" }
        summary += String(format: ", %.1f s", secondsSince(clock)) + "; wrote \(run.modelPath)"
        summary += run.job.summary(seconds: secondsSince(clock))
        if run.job.isRoot { print(summary) }
    }
}
