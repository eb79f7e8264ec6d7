import Foundation
import Unroll
import UnrollCore
import UnrollIO

// The library's C ABI, for the Python package (python/unroll) and any other language with a C FFI.
// The declarations are python/unroll/unroll.h; docs/python.md describes them.
//
// Every function that can fail returns 0 on success and -1 on failure, and never traps on bad input:
// the failure's message is `unroll_last_error()` on the same thread. Arrays are float32, C order,
// samples as rows; the caller owns every buffer, and outputs are written into buffers it allocated
// with the sizes the shape functions report.

/// A model behind a handle: its kind's state (`DenseHandle`, `ConvHandle`) and its threads.
class Handle {
    let threads: Int
    /// The loss of every training step since the last full fit.
    var losses: [Double] = []
    init(threads: Int) { self.threads = threads }
    var kind: StaticString { "unknown" }
}

/// A dense unrolled dictionary model (PUDLE) with its training state.
final class DenseHandle: Handle {
    let config: TrainerConfig
    let atoms: Int?
    let epochs: Int
    var trainer: DictionaryTrainer<DenseDictionary>?
    /// The model to encode with (after fit, load or set_dictionary).
    var model: UnrolledAutoencoder<DenseDictionary>?
    var epochsDone = 0
    var fits = 0

    init(config: TrainerConfig, atoms: Int?, epochs: Int, threads: Int) {
        self.config = config
        self.atoms = atoms
        self.epochs = epochs
        super.init(threads: threads)
    }
    override var kind: StaticString { "dense" }
}

/// A 2-D convolutional denoising model (PUDLE's CAE, or a loaded CRsAE model) with its training state.
final class ConvHandle: Handle {
    let config: DenoisingConfig
    let filters: Int, kernel: Int, stride: Int, steps: Int
    var trainer: DenoisingTrainer?
    var model: UnrolledAutoencoder<Convolution2DDictionary>?

    init(config: DenoisingConfig, filters: Int, kernel: Int, stride: Int, steps: Int, threads: Int) {
        self.config = config
        (self.filters, self.kernel, self.stride, self.steps) = (filters, kernel, stride, steps)
        super.init(threads: threads)
    }
    override var kind: StaticString { "conv2d" }
}

/// A CRsAE spike-sorting model (multichannel 1-D convolutional dictionary) with its training recipe.
final class SpikeHandle: Handle {
    let settings: SpikeTrainingSettings
    let neurons: Int, filterLength: Int?, samplingRate: Double, crossing: Float
    let start: SpikeStart
    var model: SpikeModel?
    var epochsDone = 0
    /// The last `unroll_sort`'s detections, ordered by time.
    var detections: [(neuron: Int, spike: DetectedSpike)] = []

    init(settings: SpikeTrainingSettings, neurons: Int, filterLength: Int?, samplingRate: Double, crossing: Float, start: SpikeStart,
         threads: Int) {
        self.settings = settings
        (self.neurons, self.filterLength, self.samplingRate, self.crossing, self.start) = (neurons, filterLength, samplingRate, crossing, start)
        super.init(threads: threads)
    }
    override var kind: StaticString { "conv1d" }
}

/// A variational sparse-coding model read from a file (trained by `unroll train --model vsc`).
final class VSCHandle: Handle {
    let model: VSCModel

    init(model: VSCModel, threads: Int) {
        self.model = model
        super.init(threads: threads)
    }
    override var kind: StaticString { model.generator == .linear ? "vsc-linear" : "vsc-conv" }
}

private final class ErrorBox: @unchecked Sendable {
    var message: UnsafeMutablePointer<CChar>?
    deinit { free(message) }
}

private let errorKey = "unroll.last_error"

/// Records `message` as this thread's last error.
private func fail(_ message: String) -> Int32 {
    let box = (Thread.current.threadDictionary[errorKey] as? ErrorBox) ?? ErrorBox()
    free(box.message)
    box.message = strdup(message.escapingControlCharacters)
    Thread.current.threadDictionary[errorKey] = box
    return -1
}

/// Runs `body`, turning every thrown error into this thread's last error and -1.
private func guarded(_ body: () throws -> Void) -> Int32 {
    do {
        try body()
        return 0
    } catch let e as UnrollError {
        return fail(e.description)
    } catch let e as UnrollIOError {
        return fail(e.description)
    } catch let e as APIError {
        return fail(e.message)
    } catch {
        return fail("\(error)")
    }
}

struct APIError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

private func anyHandle(_ pointer: OpaquePointer?) throws -> Handle {
    guard let pointer else { throw APIError("the model handle is NULL") }
    return Unmanaged<Handle>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
}

/// The handle as a dense model (the functions of dense dictionaries).
private func handle(_ pointer: OpaquePointer?) throws -> DenseHandle {
    let h = try anyHandle(pointer)
    guard let dense = h as? DenseHandle else { throw APIError("this function takes a dense model; the handle holds a \(h.kind) model") }
    return dense
}

private func convHandle(_ pointer: OpaquePointer?) throws -> ConvHandle {
    let h = try anyHandle(pointer)
    guard let conv = h as? ConvHandle else { throw APIError("this function takes a conv2d model; the handle holds a \(h.kind) model") }
    return conv
}

private func retained(_ h: Handle) -> OpaquePointer {
    OpaquePointer(Unmanaged.passRetained(h).toOpaque())
}

/// A `[rows, cols]` tensor copied from a caller's buffer.
private func matrix(_ pointer: UnsafePointer<Float>?, _ rows: Int64, _ cols: Int64, _ what: String) throws -> Tensor {
    guard let pointer else { throw APIError("\(what) is NULL") }
    guard rows >= 1, cols >= 1 else { throw APIError("\(what) must have at least one row and one column, got \(rows)×\(cols)") }
    let (count, overflow) = Int(rows).multipliedReportingOverflow(by: Int(cols))
    guard !overflow, count <= 1 << 31 else { throw APIError("\(what) of \(rows)×\(cols) values is too large (limit 2³¹)") }
    return Tensor(shape: [Int(rows), Int(cols)], data: Array(UnsafeBufferPointer(start: pointer, count: count)))
}

private func write(_ t: Tensor, to out: UnsafeMutablePointer<Float>?, _ what: String) throws {
    guard let out else { throw APIError("\(what) output buffer is NULL") }
    t.data.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: $0.count) }
}

// MARK: settings

/// A settings object (JSON, scikit-learn's parameter names), read with checks that name the key.
private struct Settings {
    let values: [String: Any]

    init(_ json: String, known: Set<String>) throws {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)), let s = object as? [String: Any] else {
            throw APIError("settings must be a JSON object, got \(json.prefix(80))")
        }
        if let unknown = s.keys.filter({ !known.contains($0) }).sorted().first { throw APIError("unknown setting \"\(unknown)\"") }
        values = s
    }

    private func value(_ key: String) -> Any? {
        guard let v = values[key], !(v is NSNull) else { return nil }
        return v
    }

    func int(_ key: String, _ d: Int?, minimum: Int) throws -> Int? {
        guard let v = value(key) else { return d }
        guard let n = v as? NSNumber, Double(n.intValue) == n.doubleValue, n.intValue >= minimum else {
            throw APIError("\(key) must be an integer ≥ \(minimum), got \(v)")
        }
        return n.intValue
    }

    func float(_ key: String, _ d: Float?) throws -> Float? {
        guard let v = value(key) else { return d }
        guard let n = v as? NSNumber, n.doubleValue.isFinite else { throw APIError("\(key) must be a finite number, got \(v)") }
        return n.floatValue
    }

    func positive(_ key: String, _ d: Float) throws -> Float {
        let v = try float(key, d)!
        guard v > 0 else { throw APIError("\(key) must be > 0, got \(v)") }
        return v
    }

    func bool(_ key: String, _ d: Bool) throws -> Bool {
        guard let v = value(key) else { return d }
        guard let b = v as? Bool else { throw APIError("\(key) must be true or false, got \(v)") }
        return b
    }

    func choice(_ key: String, _ d: String, _ options: [String]) throws -> String {
        guard let v = value(key) else { return d }
        guard let c = v as? String, options.contains(c) else {
            throw APIError("\(key) must be one of \(options.joined(separator: ", ")), got \(v)")
        }
        return c
    }

    /// The unrolled encoder: `n_layers`, `encoder`, `threshold`, `lam` (≥ 0), `step` (> 0, or 1/L when
    /// `autoStep`).
    func encoder(layers: Int, lam: (soft: Float, hard: Float), step: Float?) throws -> UnrolledEncoder {
        let threshold = try choice("threshold", "soft", ["soft", "hard", "nonneg"])
        let lam = try float("lam", threshold == "hard" ? lam.hard : lam.soft)!
        guard lam >= 0 else { throw APIError("lam must be ≥ 0, got \(lam)") }
        var rule = StepSize.inverseLipschitz()
        if let a = try float("step", step) {
            guard a > 0 else { throw APIError("step must be > 0, got \(a)") }
            rule = .fixed(a)
        }
        return UnrolledEncoder(layers: try int("n_layers", layers, minimum: 1)!,
                               algorithm: try choice("encoder", "ista", ["ista", "fista"]) == "fista" ? .fista : .ista,
                               threshold: threshold == "hard" ? .hard : threshold == "nonneg" ? .nonNegative : .soft,
                               lambda: .scalar(lam), step: rule)
    }

    func gradient() throws -> GradientMode {
        switch try choice("gradient", "ae-ls", ["ae-ls", "ae-lasso", "dec"]) {
        case "dec": return .decoder
        case "ae-lasso": return .lasso
        default: return .leastSquares
        }
    }

    var seed: UInt64 { get throws { UInt64(try int("random_state", 0, minimum: 0)!) } }
    var threads: Int { get throws { try int("n_jobs", 1, minimum: 1)! } }
}

/// The dense estimator's settings.
private func denseSettings(_ json: String) throws -> DenseHandle {
    let s = try Settings(json, known: ["n_components", "n_layers", "lam", "gradient", "threshold", "lambda_decay", "encoder", "step",
                                      "batch_size", "max_iter", "learning_rate", "random_state", "n_jobs"])
    var config = TrainerConfig(encoder: try s.encoder(layers: 100, lam: (0.2, 0.1), step: nil), mode: try s.gradient(),
                               optimizer: .adam(learningRate: try s.float("learning_rate", 1e-3)!),
                               batchSize: try s.int("batch_size", nil, minimum: 1), seed: try s.seed)
    if let decay = s.values["lambda_decay"], !(decay is NSNull) {
        guard let d = decay as? [String: Any], let dec = d["decrement"] as? NSNumber, let every = d["every"] as? NSNumber,
              dec.doubleValue >= 0, every.intValue >= 1 else {
            throw APIError("lambda_decay must be {\"decrement\": δ ≥ 0, \"every\": steps ≥ 1} or null")
        }
        config.beta = BetaSchedule(start: 1, decrement: dec.floatValue, every: every.intValue)
    }
    try config.validate()
    return DenseHandle(config: config, atoms: try s.int("n_components", nil, minimum: 1),
                       epochs: try s.int("max_iter", 100, minimum: 1)!, threads: try s.threads)
}

/// The convolutional denoiser's settings (defaults: PUDLE Table 1, as `unroll train --model conv2d`).
private func convSettings(_ json: String) throws -> ConvHandle {
    let s = try Settings(json, known: ["n_filters", "kernel_size", "stride", "n_layers", "lam", "gradient", "threshold", "encoder", "step",
                                      "crop_size", "sigma", "batch_size", "max_iter", "learning_rate", "target", "flips", "random_state",
                                      "n_jobs"])
    let kernel = try s.int("kernel_size", 9, minimum: 1)!, crop = try s.int("crop_size", 129, minimum: 1)!
    guard crop >= kernel else { throw APIError("crop_size \(crop) is smaller than kernel_size \(kernel)") }
    let sigma = try s.float("sigma", 25.0 / 255)!
    guard sigma >= 0 else { throw APIError("sigma must be ≥ 0, got \(sigma)") }
    let config = DenoisingConfig(encoder: try s.encoder(layers: 15, lam: (0.16, 0.05), step: 0.1), mode: try s.gradient(),
                                 optimizer: .adam(learningRate: try s.float("learning_rate", 1e-4)!), sigma: sigma, cropSize: crop,
                                 batchSize: try s.int("batch_size", 1, minimum: 1)!,
                                 target: try s.choice("target", "clean", ["clean", "noisy"]) == "clean" ? .clean : .noisy,
                                 flips: try s.bool("flips", true), seed: try s.seed)
    return ConvHandle(config: config, filters: try s.int("n_filters", 64, minimum: 1)!, kernel: kernel,
                      stride: try s.int("stride", 4, minimum: 1)!, steps: try s.int("max_iter", 1000, minimum: 0)!,
                      threads: try s.threads)
}

/// The spike sorter's settings (defaults: `unroll spikes train`'s).
private func spikeSettings(_ json: String) throws -> SpikeHandle {
    let s = try Settings(json, known: ["n_neurons", "filter_length", "sampling_rate", "n_layers", "max_iter", "batch_size", "learning_rate",
                                      "lr_decay", "window", "refine_epochs", "refine_layers", "refine_learning_rate", "prior_rate",
                                      "initialization", "crossing", "non_negative", "random_state", "n_jobs"])
    let start = SpikeStart(rawValue: try s.choice("initialization", "clusters", SpikeStart.allCases.map(\.rawValue)))!
    var settings = SpikeTrainingSettings(epochs: try s.int("max_iter", SpikeTrainingSettings.defaultEpochs(start: start), minimum: 0)!)
    settings.window = try s.int("window", 1000, minimum: 3)!
    settings.training.layers = try s.int("n_layers", 50, minimum: 1)!
    settings.training.batchSize = try s.int("batch_size", 32, minimum: 1)!
    settings.training.learningRate = try s.positive("learning_rate", 0.01)
    settings.training.learningRateDecay = try s.positive("lr_decay", 0.9)
    settings.refineEpochs = try s.int("refine_epochs", 12, minimum: 0)!
    guard settings.epochs + settings.refineEpochs >= 1 else { throw APIError("max_iter + refine_epochs must be ≥ 1") }
    settings.refineLayers = try s.int("refine_layers", 100, minimum: 1)!
    settings.refineLearningRate = try s.positive("refine_learning_rate", 0.001)
    let priorRate = try s.float("prior_rate", 500)!
    guard priorRate >= 0 else { throw APIError("prior_rate must be ≥ 0, got \(priorRate)") }
    settings.priorRate = priorRate
    settings.training.threshold = try s.bool("non_negative", false) ? .nonNegative : .soft
    settings.seed = try s.seed
    return SpikeHandle(settings: settings, neurons: try s.int("n_neurons", 3, minimum: 1)!,
                       filterLength: try s.int("filter_length", nil, minimum: 2), samplingRate: Double(try s.positive("sampling_rate", 10_000)),
                       crossing: try s.positive("crossing", 4),
                       start: start,
                       threads: try s.threads)
}

// MARK: the ABI

/// A string literal's bytes (NUL-terminated, static) as a C string.
private func cString(_ s: StaticString) -> UnsafePointer<CChar> {
    UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)
}

@_cdecl("unroll_version")
public func unrollVersion() -> UnsafePointer<CChar> { cString("unroll 0.2 (unroll-model/2)") }

/// The message of the calling thread's last failure ("" if none); valid until its next failure.
@_cdecl("unroll_last_error")
public func unrollLastError() -> UnsafePointer<CChar> {
    if let box = Thread.current.threadDictionary[errorKey] as? ErrorBox, let m = box.message { return UnsafePointer(m) }
    return cString("")
}

/// A new handle from settings (JSON) read by `make`.
private func create(_ settings: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?,
                    _ make: (String) throws -> Handle) -> Int32 {
    guarded {
        guard let settings, let out else { throw APIError("settings and the output pointer must not be NULL") }
        out.pointee = retained(try make(String(cString: settings)))
    }
}

/// A new, untrained dense model from settings (JSON).
@_cdecl("unroll_dense_create")
public func unrollDenseCreate(_ settings: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    create(settings, out, denseSettings)
}

@_cdecl("unroll_free")
public func unrollFree(_ h: OpaquePointer?) {
    guard let h else { return }
    Unmanaged<Handle>.fromOpaque(UnsafeRawPointer(h)).release()
}

/// Trains on `x` `[n, m]`: `partial` = 0 starts afresh (random atoms from the seed, `max_iter`
/// epochs); 1 continues the model and its optimizer for one epoch over `x`.
@_cdecl("unroll_fit")
public func unrollFit(_ h: OpaquePointer?, _ x: UnsafePointer<Float>?, _ n: Int64, _ m: Int64, _ partial: Int32) -> Int32 {
    guarded {
        let model = try handle(h)
        let data = try matrix(x, n, m, "X")
        try Parallel.withWorkers(model.threads) {
            var trainer: DictionaryTrainer<DenseDictionary>
            var epochs = model.epochs
            if partial != 0, let fitted = model.model {
                guard fitted.dictionary.signalSize == data.cols else {
                    throw APIError("X has \(data.cols) features, the model was fitted on \(fitted.dictionary.signalSize)")
                }
                let stream = RowBatches(data: data, batchSize: model.config.batchSize ?? data.rows, shuffle: model.config.shuffle,
                                        seed: model.config.seed &+ UInt64(model.fits))
                // A loaded or set dictionary starts a fresh optimizer.
                trainer = try model.trainer?.continuing(on: stream)
                    ?? DictionaryTrainer(dictionary: fitted.dictionary, data: data, config: model.config)
                epochs = trainer.epoch + 1
            } else {
                let p = model.atoms ?? data.cols
                guard p.multipliedReportingOverflow(by: data.cols).partialValue <= 1 << 28 else {
                    throw APIError("n_components \(p) × \(data.cols) features exceeds 2²⁸ dictionary values")
                }
                trainer = try DictionaryTrainer(dictionary: DenseDictionary.random(atoms: p, signalSize: data.cols, seed: model.config.seed),
                                                data: data, config: model.config)
                model.losses = []
                model.epochsDone = 0
                model.fits = 0
                if partial != 0 { epochs = 1 }
            }
            let start = trainer.epoch
            while trainer.epoch < epochs {
                model.losses.append(try trainer.trainStep().loss)
            }
            model.epochsDone += trainer.epoch - start
            model.fits += 1
            model.trainer = trainer
            model.model = try trainer.model.autoencoder(afterSteps: trainer.step)
        }
    }
}

/// The codes `[n, p]` of `x` `[n, m]` into `codes`.
@_cdecl("unroll_transform")
public func unrollTransform(_ h: OpaquePointer?, _ x: UnsafePointer<Float>?, _ n: Int64, _ m: Int64,
                            _ codes: UnsafeMutablePointer<Float>?) -> Int32 {
    transform(h, x, n, m, codes, exact: false)
}

/// The exact lasso codes `[n, p]` of `x` `[n, m]` at the model's λ (`exactLassoCodes`: a soft threshold,
/// one λ, no decay) into `codes`: what `unroll_transform` converges to as the layers grow.
@_cdecl("unroll_transform_exact")
public func unrollTransformExact(_ h: OpaquePointer?, _ x: UnsafePointer<Float>?, _ n: Int64, _ m: Int64,
                                 _ codes: UnsafeMutablePointer<Float>?) -> Int32 {
    transform(h, x, n, m, codes, exact: true)
}

private func transform(_ h: OpaquePointer?, _ x: UnsafePointer<Float>?, _ n: Int64, _ m: Int64,
                       _ codes: UnsafeMutablePointer<Float>?, exact: Bool) -> Int32 {
    guarded {
        let model = try handle(h)
        guard let ae = model.model else { throw APIError("the model is not fitted") }
        let data = try matrix(x, n, m, "X")
        guard data.cols == ae.dictionary.signalSize else {
            throw APIError("X has \(data.cols) features, the dictionary's atoms have \(ae.dictionary.signalSize)")
        }
        let z = try Parallel.withWorkers(model.threads) { try exact ? ae.exactLassoCodes(data) : ae.encode(data) }
        try write(z, to: codes, "codes")
    }
}

/// The reconstructions `[n, m]` of codes `[n, p]` into `x`.
@_cdecl("unroll_inverse_transform")
public func unrollInverseTransform(_ h: OpaquePointer?, _ codes: UnsafePointer<Float>?, _ n: Int64, _ p: Int64,
                                   _ x: UnsafeMutablePointer<Float>?) -> Int32 {
    guarded {
        let model = try handle(h)
        guard let ae = model.model else { throw APIError("the model is not fitted") }
        let z = try matrix(codes, n, p, "codes")
        guard z.cols == ae.dictionary.atoms else { throw APIError("codes have \(z.cols) columns, the dictionary has \(ae.dictionary.atoms) atoms") }
        try write(Parallel.withWorkers(model.threads) { ae.decoder.apply(z) }, to: x, "X")
    }
}

/// The dictionary's shape: atoms p and their length m (conv2d: filters C and K·K; conv1d: C and channels·K;
/// VSC: latents and pixels); 0, 0 before fitting.
@_cdecl("unroll_shape")
public func unrollShape(_ h: OpaquePointer?, _ p: UnsafeMutablePointer<Int64>?, _ m: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded {
        let model = try anyHandle(h)
        if let v = model as? VSCHandle {
            let (latents, pixels) = try v.model.sizes()
            p?.pointee = Int64(latents)
            m?.pointee = Int64(pixels)
            return
        }
        let w = weights(model)
        p?.pointee = Int64(w?.shape[0] ?? 0)
        m?.pointee = Int64(w.map { $0.count / $0.shape[0] } ?? 0)
    }
}

/// The model's weights: a dense dictionary `[p, m]`, or conv2d filters `[C, 1, K, K]`.
private func weights(_ h: Handle) -> Tensor? {
    if let d = h as? DenseHandle { return d.model?.dictionary.weights }
    if let c = h as? ConvHandle { return c.model?.dictionary.weights }
    if let s = h as? SpikeHandle { return s.model?.filters }
    if let v = h as? VSCHandle, v.model.generator == .linear { return try? LinearGeneratorModel(checkpoint: v.model.state).dictionary }
    return nil
}

/// The weights' shape (dense `[p, m]`, conv2d `[C, 1, K, K]`, conv1d `[C, channels, K]`, vsc-linear
/// `[latents, pixels]`) into `shape` (room for 4) and its rank into `rank`; rank 0 before fitting and
/// for vsc-conv (a network).
@_cdecl("unroll_weights_shape")
public func unrollWeightsShape(_ h: OpaquePointer?, _ shape: UnsafeMutablePointer<Int64>?, _ rank: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded {
        guard let shape, let rank else { throw APIError("shape and rank must not be NULL") }
        let dims = weights(try anyHandle(h))?.shape ?? []
        rank.pointee = Int64(dims.count)
        for (i, d) in dims.enumerated() { shape[i] = Int64(d) }
    }
}

/// The encoder's threshold per atom (λ; conv1d: the lasso penalty λ_c σ²) into `out` when it is not
/// NULL, and their number into `count`.
@_cdecl("unroll_lambdas")
public func unrollLambdas(_ h: OpaquePointer?, _ out: UnsafeMutablePointer<Float>?, _ count: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded {
        let model = try anyHandle(h)
        func perAtom<Op: DictionaryOperator>(_ ae: UnrolledAutoencoder<Op>?) -> [Float]? {
            guard let ae else { return nil }
            switch ae.encoder.lambda {
            case let .scalar(v): return [Float](repeating: v, count: ae.dictionary.atoms)
            case let .perAtom(v): return v
            }
        }
        let values: [Float]?
        switch model {
        case let d as DenseHandle: values = perAtom(d.model)
        case let c as ConvHandle: values = perAtom(c.model)
        case let s as SpikeHandle: values = perAtom(try s.model?.autoencoder())
        default: throw APIError("a \(model.kind) model has no λ per atom")
        }
        guard let values else { throw APIError("the model is not fitted") }
        count?.pointee = Int64(values.count)
        out?.update(from: values, count: values.count)
    }
}

/// The dictionary (atoms as rows; conv2d: the filters, C × K·K) into `out`.
@_cdecl("unroll_dictionary")
public func unrollDictionary(_ h: OpaquePointer?, _ out: UnsafeMutablePointer<Float>?) -> Int32 {
    guarded {
        guard let w = weights(try anyHandle(h)) else { throw APIError("the model is not fitted") }
        try write(w, to: out, "dictionary")
    }
}

/// Sets the dictionary `[p, m]` (atoms as rows) to encode with (an unpickled estimator, `sparse_encode`);
/// training state is dropped.
@_cdecl("unroll_set_dictionary")
public func unrollSetDictionary(_ h: OpaquePointer?, _ d: UnsafePointer<Float>?, _ p: Int64, _ m: Int64) -> Int32 {
    guarded {
        let model = try handle(h)
        let w = try matrix(d, p, m, "dictionary")
        model.model = try UnrolledAutoencoder(dictionary: try DenseDictionary(weights: w), encoder: model.config.encoder,
                                              beta: model.config.beta.beta(afterSteps: max(0, (model.trainer?.step ?? 1) - 1)))
        model.trainer = nil
    }
}

/// Steps and epochs trained, and the number of logged losses (one per step).
@_cdecl("unroll_progress")
public func unrollProgress(_ h: OpaquePointer?, _ steps: UnsafeMutablePointer<Int64>?, _ epochs: UnsafeMutablePointer<Int64>?,
                           _ losses: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded {
        let model = try anyHandle(h)
        let dense = model as? DenseHandle, conv = model as? ConvHandle
        let spikes = model as? SpikeHandle
        steps?.pointee = Int64(dense?.trainer?.step ?? conv?.trainer?.step ?? 0)
        epochs?.pointee = Int64(dense?.epochsDone ?? spikes?.epochsDone ?? 0)
        losses?.pointee = Int64(model.losses.count)
    }
}

/// The loss of every step since the last full fit into `out` (as many as `unroll_progress` reports).
@_cdecl("unroll_losses")
public func unrollLosses(_ h: OpaquePointer?, _ out: UnsafeMutablePointer<Double>?) -> Int32 {
    guarded {
        let model = try anyHandle(h)
        guard let out else { throw APIError("the losses output buffer is NULL") }
        model.losses.withUnsafeBufferPointer { if let b = $0.baseAddress { out.update(from: b, count: $0.count) } }
    }
}

/// Writes the model file (`unroll-model/2`, the CLI's format) to `path`.
@_cdecl("unroll_save")
public func unrollSave(_ h: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> Int32 {
    guarded {
        let model = try anyHandle(h)
        guard let path else { throw APIError("path is NULL") }
        var info = ["training.source": "python"]
        let file: ModelFile
        if let d = model as? DenseHandle, let ae = d.model {
            if let t = d.trainer { info["training.step"] = String(t.step); info["training.epoch"] = String(t.epoch) }
            file = ModelFile(model: .dense(ae), info: info)
        } else if let c = model as? ConvHandle, let ae = c.model {
            if let t = c.trainer { info["training.step"] = String(t.step); info["training.sigma"] = c.config.sigma.description }
            file = ModelFile(model: .conv2d(ae), info: info)
        } else if let s = model as? SpikeHandle, let m = s.model {
            info["training.epochs"] = String(s.epochsDone)
            file = ModelFile(model: .conv1d(try m.autoencoder()), info: info)
        } else if let v = model as? VSCHandle {
            file = ModelFile(model: .vsc(v.model), info: info)
        } else {
            throw APIError("the model is not fitted")
        }
        try file.write(to: String(cString: path))
    }
}

/// Reads a model file of any kind into a new handle, ready to transform, denoise or sort; `settings`
/// (JSON, may be NULL) give the threads and what a later fit continues with.
@_cdecl("unroll_load")
public func unrollLoad(_ path: UnsafePointer<CChar>?, _ settings: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guarded {
        guard let path, let out else { throw APIError("path and the output pointer must not be NULL") }
        let file = try ModelFile.read(String(cString: path))
        let json = settings.map { String(cString: $0) } ?? "{}"
        switch file.model {
        case let .dense(ae):
            let h = try denseSettings(json)
            h.model = ae
            out.pointee = retained(h)
        case let .conv2d(ae):
            let h = try convSettings(json)
            h.model = ae
            out.pointee = retained(h)
        case let .conv1d(ae):
            let h = try spikeSettings(json)
            h.model = try SpikeModel(ae)
            out.pointee = retained(h)
        case let .vsc(m):
            out.pointee = retained(VSCHandle(model: m, threads: try Settings(json, known: ["n_jobs"]).threads))
        }
    }
}

/// The handle's model kind: "dense", "conv2d", "conv1d", "vsc-linear" or "vsc-conv".
@_cdecl("unroll_kind")
public func unrollKind(_ h: OpaquePointer?) -> UnsafePointer<CChar> {
    guard let model = try? anyHandle(h) else { return cString("") }
    return cString(model.kind)
}

// MARK: conv2d denoising

/// A new, untrained convolutional denoiser from settings (JSON).
@_cdecl("unroll_conv2d_create")
public func unrollConv2DCreate(_ settings: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    create(settings, out, convSettings)
}

/// Trains from random filters (seeded) on `count` grayscale images in [0, 1], their pixels one after
/// another in `pixels` (image i is `heights[i]` × `widths[i]`, row-major), for `max_iter` steps of
/// random noisy crops, as `unroll train --model conv2d` does.
@_cdecl("unroll_fit_images")
public func unrollFitImages(_ h: OpaquePointer?, _ pixels: UnsafePointer<Float>?, _ heights: UnsafePointer<Int64>?,
                            _ widths: UnsafePointer<Int64>?, _ count: Int64) -> Int32 {
    guarded {
        let model = try convHandle(h)
        guard let pixels, let heights, let widths else { throw APIError("pixels, heights and widths must not be NULL") }
        guard count >= 1, count <= 1 << 20 else { throw APIError("need between 1 and 2²⁰ images, got \(count)") }
        var images: [Tensor] = []
        var offset = 0
        for i in 0..<Int(count) {
            let (hh, ww) = (Int(heights[i]), Int(widths[i]))
            guard hh >= 1, ww >= 1, hh <= 1 << 16, ww <= 1 << 16 else { throw APIError("image \(i) is \(ww)×\(hh)") }
            images.append(Tensor(shape: [hh, ww], data: Array(UnsafeBufferPointer(start: pixels + offset, count: hh * ww))))
            offset += hh * ww
        }
        try DenoisingImages.validate(images, what: "training image", minimumSide: model.kernel)
        try Parallel.withWorkers(model.threads) {
            var rng = Random(seed: model.config.seed)
            let initial = try Convolution2DDictionary(filters: model.filters, kernel: model.kernel, stride: model.stride,
                                                      height: model.config.cropSize, width: model.config.cropSize, rng: &rng)
            var trainer = try DenoisingTrainer(dictionary: initial, images: images, config: model.config)
            model.losses = []
            while trainer.step < model.steps { model.losses.append(try trainer.trainStep().loss) }
            model.trainer = trainer
            model.model = try UnrolledAutoencoder(dictionary: trainer.dictionary, encoder: model.config.encoder)
        }
    }
}

/// The denoised `[height, width]` image (not clamped) of a noisy one into `out`. `sigma` is the
/// input's noise level, for which a noise-adaptive model sets its thresholds (≤ 0: estimated from
/// the image, `NoiseEstimate`); other models ignore it.
@_cdecl("unroll_denoise")
public func unrollDenoise(_ h: OpaquePointer?, _ image: UnsafePointer<Float>?, _ height: Int64, _ width: Int64, _ sigma: Float,
                          _ out: UnsafeMutablePointer<Float>?) -> Int32 {
    guarded {
        let model = try convHandle(h)
        guard var ae = model.model else { throw APIError("the model is not fitted") }
        let noisy = try matrix(image, height, width, "image")
        guard ae.adaptiveSigma == nil || sigma.isFinite else { throw APIError("sigma must be a finite noise level, got \(sigma)") }
        ae = try Denoiser.model(ae, forNoise: sigma > 0 ? sigma : nil, of: noisy).model
        try write(try Parallel.withWorkers(model.threads) { try Denoiser.denoise(noisy, model: ae) }, to: out, "denoised image")
    }
}

/// The model's non-local stage (`NonLocalMeans`): h/σ into `strength`, the patch and window sides (odd, in
/// pixels) into `patch` and `window`; all 0 for a model without one.
@_cdecl("unroll_non_local")
public func unrollNonLocal(_ h: OpaquePointer?, _ strength: UnsafeMutablePointer<Float>?, _ patch: UnsafeMutablePointer<Int64>?,
                           _ window: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded {
        guard let strength, let patch, let window else { throw APIError("strength, patch and window must not be NULL") }
        guard let ae = try convHandle(h).model else { throw APIError("the model is not fitted") }
        let n = ae.nonLocal
        strength.pointee = n?.strength ?? 0
        patch.pointee = Int64(n?.patchSide ?? 0)
        window.pointee = Int64(n?.windowSide ?? 0)
    }
}

/// Sets the model's non-local stage: h/σ `strength` > 0 with odd `patch` and `window` sides, or none
/// when `strength` is 0 (denoising with one needs the noise σ: a noise-adaptive or EM model).
@_cdecl("unroll_set_non_local")
public func unrollSetNonLocal(_ h: OpaquePointer?, _ strength: Float, _ patch: Int64, _ window: Int64) -> Int32 {
    guarded {
        let model = try convHandle(h)
        guard var ae = model.model else { throw APIError("the model is not fitted") }
        ae.nonLocal = strength == 0 ? nil : try NonLocalMeans(strength: strength, patchSide: Int(patch), windowSide: Int(window))
        model.model = ae
    }
}

/// The model's collaborative filter (`CollaborativeFilter`): the share a of BM3D's first step into `weight`, its
/// threshold λ into `threshold`, the share c of its second step into `wiener` and that step's μ into
/// `wiener_threshold`; all 0 for a model without one.
@_cdecl("unroll_collaborative")
public func unrollCollaborative(_ h: OpaquePointer?, _ weight: UnsafeMutablePointer<Float>?, _ threshold: UnsafeMutablePointer<Float>?,
                                _ wiener: UnsafeMutablePointer<Float>?, _ wienerThreshold: UnsafeMutablePointer<Float>?) -> Int32 {
    guarded {
        guard let weight, let threshold, let wiener, let wienerThreshold else { throw APIError("the outputs must not be NULL") }
        guard let ae = try convHandle(h).model else { throw APIError("the model is not fitted") }
        let c = ae.collaborative
        (weight.pointee, threshold.pointee) = (c?.weight ?? 0, c?.threshold ?? 0)
        (wiener.pointee, wienerThreshold.pointee) = (c?.wienerWeight ?? 0, c?.wienerThreshold ?? 0)
    }
}

/// Sets the model's collaborative filter: a share `weight` in (0, 1] of BM3D's first step with threshold λ ≥ 0,
/// then a share `wiener` in [0, 1] of its second step with μ = `wiener_threshold` ≥ 0 (the other settings the
/// model's, else the defaults), or none when `weight` is 0 (denoising with one needs the noise σ).
@_cdecl("unroll_set_collaborative")
public func unrollSetCollaborative(_ h: OpaquePointer?, _ weight: Float, _ threshold: Float, _ wiener: Float, _ wienerThreshold: Float) -> Int32 {
    guarded {
        let model = try convHandle(h)
        guard var ae = model.model else { throw APIError("the model is not fitted") }
        ae.collaborative = weight == 0 ? nil : try (ae.collaborative ?? CollaborativeFilter(weight: weight))
            .with(weight: weight, threshold: threshold, wienerWeight: wiener, wienerThreshold: wienerThreshold)
        model.model = ae
    }
}

/// A noise-adaptive model's reference σ (the noise its thresholds are set for, scaled for any other)
/// into `sigma`; 0 for a model of one σ.
@_cdecl("unroll_noise_reference")
public func unrollNoiseReference(_ h: OpaquePointer?, _ sigma: UnsafeMutablePointer<Float>?) -> Int32 {
    guarded {
        guard let sigma else { throw APIError("sigma must not be NULL") }
        guard let ae = try convHandle(h).model else { throw APIError("the model is not fitted") }
        sigma.pointee = ae.adaptiveSigma ?? 0
    }
}

// MARK: conv1d spike sorting

/// A new, untrained spike sorter from settings (JSON).
@_cdecl("unroll_conv1d_create")
public func unrollConv1DCreate(_ settings: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    create(settings, out, spikeSettings)
}

/// A `[channels, samples]` recording from the caller's `[samples, channels]` buffer (C order).
private func recording(_ pointer: UnsafePointer<Float>?, _ samples: Int64, _ channels: Int64) throws -> Tensor {
    let rows = try matrix(pointer, samples, channels, "recording")
    let (n, c) = (rows.rows, rows.cols)
    var data = [Float](repeating: 0, count: n * c)
    for i in 0..<n { for j in 0..<c { data[j * n + i] = rows.data[i * c + j] } }
    guard data.allSatisfy(\.isFinite) else { throw APIError("the recording holds NaN or infinite values") }
    return Tensor(shape: [c, n], data: data)
}

/// Learns the templates from a recording `[samples, channels]` as `unroll spikes train` does from a
/// file: a start from the recording (`initialization`), `max_iter` epochs over windows, then `refine_epochs`.
@_cdecl("unroll_fit_recording")
public func unrollFitRecording(_ h: OpaquePointer?, _ signal: UnsafePointer<Float>?, _ samples: Int64, _ channels: Int64) -> Int32 {
    guarded {
        let model = try anyHandle(h)
        guard let sorter = model as? SpikeHandle else { throw APIError("this function takes a conv1d model; the handle holds a \(model.kind) model") }
        let x = try recording(signal, samples, channels)
        let k = sorter.filterLength ?? SpikeTrainingSettings.defaultFilterLength(samplingRate: sorter.samplingRate)
        guard sorter.settings.window > k, x.shape[1] >= sorter.settings.window else {
            throw APIError("need filter_length \(k) < window \(sorter.settings.window) ≤ the recording's \(x.shape[1]) samples")
        }
        try Parallel.withWorkers(sorter.threads) {
            var rng = Random(seed: sorter.settings.seed)
            let start = try sorter.start.templates(x, count: sorter.neurons, length: k, threshold: sorter.crossing, rng: &rng)
            var run = try SpikeTrainingRun(sorter.settings, start: start, recording: x)
            sorter.losses = []
            while !run.done { sorter.losses.append(try run.trainEpoch()) }
            sorter.epochsDone = run.epochsDone
            sorter.model = try run.model()
        }
    }
}

/// Sorts a recording `[samples, channels]`: encodes it in chunks of `chunk` samples, picks each
/// neuron's spikes, and keeps them (ordered by time) for `unroll_sorted`; their number into `count`.
@_cdecl("unroll_sort")
public func unrollSort(_ h: OpaquePointer?, _ signal: UnsafePointer<Float>?, _ samples: Int64, _ channels: Int64, _ chunk: Int64,
                       _ count: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded {
        let model = try anyHandle(h)
        guard let sorter = model as? SpikeHandle else { throw APIError("this function takes a conv1d model; the handle holds a \(model.kind) model") }
        guard let m = sorter.model else { throw APIError("the model is not fitted") }
        let x = try recording(signal, samples, channels)
        guard x.shape[0] == m.filters.shape[1] else {
            throw APIError("the recording has \(x.shape[0]) channel(s), the model's templates \(m.filters.shape[1])")
        }
        guard chunk > m.filterLength, x.shape[1] >= m.filterLength else {
            throw APIError("chunk (\(chunk)) and the recording (\(x.shape[1]) samples) must exceed the template length \(m.filterLength)")
        }
        let codes = try Parallel.withWorkers(sorter.threads) { try m.encode(x, chunkSamples: Int(chunk)) }
        sorter.detections = SpikeDetection.byTime(SpikeDetection.detect(codes: codes, filters: m.filters))
        count?.pointee = Int64(sorter.detections.count)
    }
}

/// The last `unroll_sort`'s detections: neuron, sample index and peak height of each, into buffers of
/// the count it reported.
@_cdecl("unroll_sorted")
public func unrollSorted(_ h: OpaquePointer?, _ neurons: UnsafeMutablePointer<Int64>?, _ times: UnsafeMutablePointer<Int64>?,
                         _ heights: UnsafeMutablePointer<Float>?) -> Int32 {
    guarded {
        let model = try anyHandle(h)
        guard let sorter = model as? SpikeHandle else { throw APIError("this function takes a conv1d model; the handle holds a \(model.kind) model") }
        guard let neurons, let times, let heights else { throw APIError("the output buffers must not be NULL") }
        for (i, d) in sorter.detections.enumerated() {
            neurons[i] = Int64(d.neuron)
            times[i] = Int64(d.spike.time)
            heights[i] = d.spike.height
        }
    }
}

// MARK: variational sparse coding

/// Codes `[n, latents]` and reconstructions `[n, pixels]` of rows `x` `[n, pixels]` under a VSC model,
/// as `unroll encode --samples S --seed seed`: each row's code chosen among `samples` draws (0: the
/// model's own count).
@_cdecl("unroll_vsc_encode")
public func unrollVSCEncode(_ h: OpaquePointer?, _ x: UnsafePointer<Float>?, _ n: Int64, _ m: Int64, _ samples: Int64, _ seed: UInt64,
                            _ codes: UnsafeMutablePointer<Float>?, _ reconstruction: UnsafeMutablePointer<Float>?) -> Int32 {
    guarded {
        let model = try anyHandle(h)
        guard let v = model as? VSCHandle else { throw APIError("this function takes a VSC model; the handle holds a \(model.kind) model") }
        guard samples >= 0, samples <= 1 << 16 else { throw APIError("samples must be in 0…65536, got \(samples)") }
        let data = try matrix(x, n, m, "X")
        var rng = Random(seed: seed)
        let (z, r) = try Parallel.withWorkers(v.threads) {
            try v.model.encode(data, samples: samples == 0 ? nil : Int(samples), rng: &rng)
        }
        try write(z, to: codes, "codes")
        try write(r, to: reconstruction, "reconstruction")
    }
}

// MARK: images

/// A PNG image (8- or 16-bit; gray, RGB(A) or palette, RGB as ITU-R 601 luma) as gray levels in
/// [0, 1]: its size into `height` and `width`, and its pixels (row-major) into `out` when not NULL.
@_cdecl("unroll_read_png")
public func unrollReadPNG(_ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<Float>?, _ height: UnsafeMutablePointer<Int64>?,
                          _ width: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded {
        guard let path, let height, let width else { throw APIError("path, height and width must not be NULL") }
        let image = try PNG.readGray(String(cString: path))
        height.pointee = Int64(image.shape[0])
        width.pointee = Int64(image.shape[1])
        if let out { try write(image, to: out, "image") }
    }
}

/// Writes `[height, width]` gray levels in [0, 1] (clamped, rounded) as an 8-bit PNG, atomically.
@_cdecl("unroll_write_png")
public func unrollWritePNG(_ path: UnsafePointer<CChar>?, _ image: UnsafePointer<Float>?, _ height: Int64, _ width: Int64) -> Int32 {
    guarded {
        guard let path else { throw APIError("path is NULL") }
        let pixels = try matrix(image, height, width, "image")
        guard height <= 1 << 16, width <= 1 << 16 else { throw APIError("image of \(width)×\(height) is too large for a PNG here (limit 65536)") }
        guard pixels.data.allSatisfy({ !$0.isNaN }) else { throw APIError("the image holds NaN values") }
        try PNG.write(Raster(gray: pixels), to: String(cString: path))
    }
}
