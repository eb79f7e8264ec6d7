import ArgumentParser
import Unroll
import UnrollCore

/// `--threads N`, one spelling and one meaning on every verb that computes: the workers of our kernels
/// and OpenBLAS's threads together (never both at full count: they take turns).
struct ThreadOptions: ParsableArguments {
    @Option(help: "Threads for BLAS and our workers.")
    var threads: Int = 2

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be ≥ 1, got \(threads)") }
    }

    /// Runs `body` with this many workers.
    func run<T>(_ body: () throws -> T) throws -> T { try Parallel.withWorkers(threads) { try body() } }
}

/// Which of the s² shifts a strided CRsAE model averages when it denoises (`ShiftSet`): one spelling on
/// `denoise`, `bench denoise` and `train` (where the choice is recorded in the model).
struct ShiftOptions: ParsableArguments {
    @Option(name: .customLong("shift-phases"), help: ArgumentHelp(
        "CRsAE models: average n² of the s² shifts, n evenly spaced phases per axis (default: the model's own, else all).", valueName: "n"))
    var phases: Int?
    @Option(name: .customLong("shift-lattice"), help: ArgumentHelp(
        "CRsAE models: average n shifts on a lattice, each with its own phase on both axes when n ≤ s (the shipped models: 6 of 64).", valueName: "n"))
    var lattice: Int?

    func validate() throws { _ = try set() }

    /// The shifts asked for; nil: neither option.
    func set() throws -> ShiftSet? {
        switch (phases, lattice) {
        case (nil, nil): return nil
        case let (n?, nil):
            guard n >= 1 else { throw ValidationError("--shift-phases must be ≥ 1, got \(n)") }
            return .grid(n)
        case let (nil, n?):
            guard n >= 1 else { throw ValidationError("--shift-lattice must be ≥ 1, got \(n)") }
            return .lattice(n)
        default: throw ValidationError("--shift-phases and --shift-lattice both choose the shifts; give one of them")
        }
    }
}

/// The non-local stage a CRsAE model ends its denoising with (`NonLocalMeans`): one spelling on `denoise`,
/// `bench denoise` and `train` (where it is recorded in the model).
struct NonLocalOptions: ParsableArguments {
    @Option(name: .customLong("non-local"), help: ArgumentHelp(
        "CRsAE models: end denoising with a non-local means of the estimate, its weights of width h = this·σ; 0: none (default: the model's own setting; the shipped models have one).",
        valueName: "h/σ"))
    var strength: Float?
    @Option(name: .customLong("non-local-patch"), help: ArgumentHelp("The non-local means' patch side, odd (default 7).", valueName: "pixels"))
    var patch: Int?
    @Option(name: .customLong("non-local-window"), help: ArgumentHelp("The non-local means' search window side, odd (default 23).", valueName: "pixels"))
    var window: Int?

    func validate() throws {
        if strength == 0, patch != nil || window != nil {
            throw ValidationError("--non-local 0 turns the stage off; --non-local-patch and --non-local-window do not apply")
        }
        _ = try NonLocalMeans(strength: strength == 0 ? 1 : strength ?? 1, patchSide: patch ?? 7, windowSide: window ?? 23)   // 0: off
    }

    /// The stage asked for, in place of `current` (the model's own): the options given on top of it.
    func setting(replacing current: NonLocalMeans?) throws -> NonLocalMeans? {
        if strength == 0 { return nil }
        guard let base = try strength.map({ try NonLocalMeans(strength: $0) }) ?? current else {
            if patch != nil || window != nil { throw CLIError("--non-local-patch and --non-local-window need --non-local h/σ: the model has no non-local stage") }
            return nil
        }
        return try NonLocalMeans(strength: base.strength, patchSide: patch ?? base.patchSide, windowSide: window ?? base.windowSide)
    }
}

/// The collaborative filter mixed into a CRsAE model's denoising (`CollaborativeFilter`), on `denoise` and
/// `bench denoise`.
struct CollaborativeOptions: ParsableArguments {
    @Option(name: .customLong("collaborative"), help: ArgumentHelp(
        "CRsAE models: mix this share a of BM3D's first step of the noisy image into the estimate; 0: none (default: the model's own setting).",
        valueName: "a"))
    var weight: Float?
    @Option(name: .customLong("collaborative-threshold"), help: ArgumentHelp(
        "The collaborative filter's hard threshold λ, in units of σ (default: the model's, else 2.7).", valueName: "λ"))
    var threshold: Float?
    @Option(name: .customLong("wiener"), help: ArgumentHelp(
        "CRsAE models: then mix this share c of BM3D's second step (on the same groups, with the estimate so far as its pilot) in; 0: none (default: the model's own setting).",
        valueName: "c"))
    var wiener: Float?
    @Option(name: .customLong("wiener-threshold"), help: ArgumentHelp(
        "The second step's μ: its factors are P²/(P² + μ²σ²) (default: the model's, else √0.4, BM3D's).", valueName: "μ"))
    var wienerThreshold: Float?

    func validate() throws {
        if weight == 0, threshold != nil || wiener != nil || wienerThreshold != nil {
            throw ValidationError("--collaborative 0 turns the filter off; --collaborative-threshold, --wiener and --wiener-threshold do not apply")
        }
        _ = try CollaborativeFilter(weight: weight == 0 ? 1 : weight ?? 1, threshold: threshold ?? 2.7, wienerWeight: wiener ?? 0,
                                    wienerThreshold: wienerThreshold ?? CollaborativeFilter.defaultWienerThreshold)
    }

    var given: Bool { weight != nil || threshold != nil || wiener != nil || wienerThreshold != nil }

    /// The filter asked for, in place of `current` (the model's own): the options given on top of it.
    func setting(replacing current: CollaborativeFilter?) throws -> CollaborativeFilter? {
        if weight == 0 { return nil }
        guard let base = try current ?? weight.map({ try CollaborativeFilter(weight: $0) }) else {
            if threshold != nil || wiener != nil || wienerThreshold != nil {
                throw CLIError("--collaborative-threshold, --wiener and --wiener-threshold need --collaborative a: the model has no collaborative filter")
            }
            return nil
        }
        return try base.with(weight: weight ?? base.weight, threshold: threshold ?? base.threshold, wienerWeight: wiener,
                             wienerThreshold: wienerThreshold)
    }
}

/// The long options the user typed (`--name` or `--name=value`), for refusing the ones that do not
/// apply: ArgumentParser fills defaults in and cannot tell a default from a typed value.
enum GivenOptions {
    static func current(_ arguments: [String] = CommandLine.arguments) -> Set<String> {
        var given = Set<String>()
        for a in arguments.dropFirst() {
            if a == "--" { break }
            if a.hasPrefix("--") { given.insert(String(a.split(separator: "=", maxSplits: 1)[0])) }
        }
        return given
    }
}

/// Which options of `unroll train` apply to which model: one table, checked before anything runs.
enum TrainOptionScope {
    static let denseOnly: Set = ["--init", "--truth", "--lambda-per-atom", "--beta-decay", "--beta-decrement", "--beta-every",
                                 "--tolerance", "--no-shuffle", "--patch", "--epochs"]
    static let conv2dOnly: Set = ["--family", "--kernel", "--stride", "--crop", "--sigma", "--target", "--test-images",
                                  "--eval-every", "--no-flips"]
    static let crsaeOnly: Set = ["--bias", "--lambda-mean", "--delta", "--lipschitz", "--guard-lipschitz", "--rotations", "--sigma-range",
                                 "--shifts", "--hold-out", "--lr-step", "--lr-gamma", "--layer-thresholds", "--shift-phases", "--shift-lattice",
                                 "--non-local", "--non-local-patch", "--non-local-window"]
    /// Untied banks: dense (a learned analysis bank) and CRsAE (H, We, Wd), not PUDLE's conv2d.
    static let untied: Set = ["--untied"]
    /// CRsAE sets its encoder (FISTA, step 1/L, thresholds from λ) and its optimizer (Adam) itself.
    static let notCRsAE: Set = ["--lambda", "--tau", "--step", "--encoder", "--threshold", "--gradient", "--optimizer",
                                "--momentum", "--beta1", "--beta2"]

    /// The dense encoder and optimizer options: conv1d (spikes) sets its own (FISTA at 1/L, EM λ, Adam).
    static let denseEncoder: Set = ["--lambda", "--tau", "--step", "--encoder", "--threshold", "--gradient", "--optimizer",
                                    "--momentum", "--beta1", "--beta2", "--eps", "--steps", "--checkpoint-every", "--no-normalize"]

    /// VSC trains its encoder network and dictionary by SGD/Adam under a one-cycle schedule, for --epochs.
    static let notVSC: Set = ["--layers", "--tau", "--step", "--encoder", "--threshold", "--gradient", "--optimizer", "--momentum",
                              "--beta1", "--beta2", "--eps", "--steps", "--no-normalize"]
    /// Where a name means something else for VSC, the option it has instead.
    static let vscSpelling = ["--family": "--posterior", "--threshold": "--learn-threshold", "--steps": "--epochs"]

    /// Throws naming the first given option that does not apply to `model` (and `family` for conv2d).
    static func check(_ given: Set<String>, model: TrainModelChoice, family: Conv2DFamily) throws {
        let what = model == .conv2d ? "--model conv2d --family \(family.rawValue)" : "--model \(model.rawValue)"
        var refused: [(Set<String>, String)] = []
        if model != .conv1d { refused.append((SpikesTrainOptions.names, "an option of --model conv1d")) }
        if model != .vsc { refused.append((VSCTrainOptions.names, "an option of --model vsc")) }
        if model == .vsc, let bad = given.intersection(vscSpelling.keys).sorted().first {
            throw CLIError("\(bad) does not apply to --model vsc: use \(vscSpelling[bad]!)")
        }
        if model == .dense {
            refused += [(conv2dOnly, "an option of --model conv2d"), (crsaeOnly, "an option of --model conv2d --family crsae")]
        } else if model == .conv1d {
            refused += [(conv2dOnly.union(crsaeOnly).union(untied), "an option of --model conv2d"),
                        (denseOnly.subtracting(["--epochs"]), "an option of --model dense"),
                        (denseEncoder, "not a setting of spikes training (FISTA at step 1/L, EM λ, Adam; a checkpoint after every epoch)")]
        } else if model == .vsc {
            refused += [(conv2dOnly.union(crsaeOnly).union(untied), "an option of --model conv2d"),
                        (denseOnly.subtracting(["--epochs"]), "an option of --model dense"),
                        (notVSC, "not a setting of VSC training (an encoder network and a dictionary trained by SGD or Adam under a one-cycle schedule, for --epochs)")]
        } else {
            refused += [(denseOnly, "an option of --model dense" + (given.contains("--epochs") ? " (conv2d counts --steps)" : ""))]
            if family == .pudle { refused += [(crsaeOnly, "an option of --family crsae"), (untied, "an option of --model dense and --family crsae")] }
            if family == .crsae { refused.append((notCRsAE, "not a CRsAE setting (FISTA at step 1/--lipschitz, thresholds from --lambda-mean and --bias, Adam)")) }
        }
        for (options, why) in refused {
            if let bad = given.intersection(options).sorted().first {
                throw CLIError("\(bad) does not apply to \(what): it is \(why)")
            }
        }
    }
}
