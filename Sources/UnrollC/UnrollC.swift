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

/// A dense unrolled dictionary model (PUDLE) with its training state.
final class DenseHandle {
    let config: TrainerConfig
    let atoms: Int?
    let epochs: Int
    let threads: Int
    var trainer: DictionaryTrainer<DenseDictionary>?
    /// The model to encode with (after fit, load or set_dictionary).
    var model: UnrolledAutoencoder<DenseDictionary>?
    /// The loss of every training step so far.
    var losses: [Double] = []
    var epochsDone = 0
    var fits = 0

    init(config: TrainerConfig, atoms: Int?, epochs: Int, threads: Int) {
        self.config = config
        self.atoms = atoms
        self.epochs = epochs
        self.threads = threads
    }
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

private func handle(_ pointer: OpaquePointer?) throws -> DenseHandle {
    guard let pointer else { throw APIError("the model handle is NULL") }
    return Unmanaged<DenseHandle>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
}

private func retained(_ h: DenseHandle) -> OpaquePointer {
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

/// The estimator's settings (JSON object; scikit-learn's parameter names).
private func denseSettings(_ json: String) throws -> DenseHandle {
    guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)), let s = object as? [String: Any] else {
        throw APIError("settings must be a JSON object, got \(json.prefix(80))")
    }
    let known: Set = ["n_components", "n_layers", "lam", "gradient", "threshold", "lambda_decay", "encoder", "step",
                      "batch_size", "max_iter", "learning_rate", "random_state", "n_jobs"]
    if let unknown = s.keys.filter({ !known.contains($0) }).sorted().first { throw APIError("unknown setting \"\(unknown)\"") }
    func int(_ key: String, _ d: Int?, minimum: Int) throws -> Int? {
        guard let v = s[key], !(v is NSNull) else { return d }
        guard let n = v as? NSNumber, Double(n.intValue) == n.doubleValue, n.intValue >= minimum else {
            throw APIError("\(key) must be an integer ≥ \(minimum), got \(v)")
        }
        return n.intValue
    }
    func float(_ key: String, _ d: Float?) throws -> Float? {
        guard let v = s[key], !(v is NSNull) else { return d }
        guard let n = v as? NSNumber, n.doubleValue.isFinite else { throw APIError("\(key) must be a finite number, got \(v)") }
        return n.floatValue
    }
    func choice(_ key: String, _ d: String, _ options: [String]) throws -> String {
        guard let v = s[key], !(v is NSNull) else { return d }
        guard let c = v as? String, options.contains(c) else {
            throw APIError("\(key) must be one of \(options.joined(separator: ", ")), got \(v)")
        }
        return c
    }
    let gradient = try choice("gradient", "ae-ls", ["ae-ls", "ae-lasso", "dec"])
    let threshold = try choice("threshold", "soft", ["soft", "hard", "nonneg"])
    let lam = try float("lam", threshold == "hard" ? 0.1 : 0.2)!
    guard lam >= 0 else { throw APIError("lam must be ≥ 0, got \(lam)") }
    let step: StepSize
    if let a = try float("step", nil) {
        guard a > 0 else { throw APIError("step must be > 0, got \(a)") }
        step = .fixed(a)
    } else {
        step = .inverseLipschitz()
    }
    let encoder = UnrolledEncoder(layers: try int("n_layers", 100, minimum: 1)!,
                                  algorithm: try choice("encoder", "ista", ["ista", "fista"]) == "fista" ? .fista : .ista,
                                  threshold: threshold == "hard" ? .hard : threshold == "nonneg" ? .nonNegative : .soft,
                                  lambda: .scalar(lam), step: step)
    let lr = try float("learning_rate", 1e-3)!
    let seed = UInt64(try int("random_state", 0, minimum: 0)!)
    var config = TrainerConfig(encoder: encoder, mode: gradient == "dec" ? .decoder : gradient == "ae-lasso" ? .lasso : .leastSquares,
                               optimizer: .adam(learningRate: lr), batchSize: try int("batch_size", nil, minimum: 1), seed: seed)
    if let decay = s["lambda_decay"], !(decay is NSNull) {
        guard let d = decay as? [String: Any], let dec = d["decrement"] as? NSNumber, let every = d["every"] as? NSNumber,
              dec.doubleValue >= 0, every.intValue >= 1 else {
            throw APIError("lambda_decay must be {\"decrement\": δ ≥ 0, \"every\": steps ≥ 1} or null")
        }
        config.beta = BetaSchedule(start: 1, decrement: dec.floatValue, every: every.intValue)
    }
    try config.validate()
    return DenseHandle(config: config, atoms: try int("n_components", nil, minimum: 1),
                       epochs: try int("max_iter", 100, minimum: 1)!, threads: try int("n_jobs", 1, minimum: 1)!)
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

/// A new, untrained dense model from settings (JSON).
@_cdecl("unroll_dense_create")
public func unrollDenseCreate(_ settings: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guarded {
        guard let settings, let out else { throw APIError("settings and the output pointer must not be NULL") }
        out.pointee = retained(try denseSettings(String(cString: settings)))
    }
}

@_cdecl("unroll_free")
public func unrollFree(_ h: OpaquePointer?) {
    guard let h else { return }
    Unmanaged<DenseHandle>.fromOpaque(UnsafeRawPointer(h)).release()
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
    guarded {
        let model = try handle(h)
        guard let ae = model.model else { throw APIError("the model is not fitted") }
        let data = try matrix(x, n, m, "X")
        guard data.cols == ae.dictionary.signalSize else {
            throw APIError("X has \(data.cols) features, the dictionary's atoms have \(ae.dictionary.signalSize)")
        }
        try write(try Parallel.withWorkers(model.threads) { try ae.encode(data) }, to: codes, "codes")
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

/// The dictionary's shape (atoms p, signal length m); 0, 0 before fitting.
@_cdecl("unroll_shape")
public func unrollShape(_ h: OpaquePointer?, _ p: UnsafeMutablePointer<Int64>?, _ m: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded {
        let model = try handle(h)
        p?.pointee = Int64(model.model?.dictionary.atoms ?? 0)
        m?.pointee = Int64(model.model?.dictionary.signalSize ?? 0)
    }
}

/// The dictionary `[p, m]` (atoms as rows) into `out`.
@_cdecl("unroll_dictionary")
public func unrollDictionary(_ h: OpaquePointer?, _ out: UnsafeMutablePointer<Float>?) -> Int32 {
    guarded {
        guard let ae = try handle(h).model else { throw APIError("the model is not fitted") }
        try write(ae.dictionary.weights, to: out, "dictionary")
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
        let model = try handle(h)
        steps?.pointee = Int64(model.trainer?.step ?? 0)
        epochs?.pointee = Int64(model.epochsDone)
        losses?.pointee = Int64(model.losses.count)
    }
}

/// The loss of every step since the last full fit into `out` (as many as `unroll_progress` reports).
@_cdecl("unroll_losses")
public func unrollLosses(_ h: OpaquePointer?, _ out: UnsafeMutablePointer<Double>?) -> Int32 {
    guarded {
        let model = try handle(h)
        guard let out else { throw APIError("the losses output buffer is NULL") }
        model.losses.withUnsafeBufferPointer { if let b = $0.baseAddress { out.update(from: b, count: $0.count) } }
    }
}

/// Writes the model file (`unroll-model/2`, the CLI's format) to `path`.
@_cdecl("unroll_save")
public func unrollSave(_ h: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> Int32 {
    guarded {
        let model = try handle(h)
        guard let path else { throw APIError("path is NULL") }
        guard let ae = model.model else { throw APIError("the model is not fitted") }
        var info = ["training.source": "python"]
        if let t = model.trainer { info["training.step"] = String(t.step); info["training.epoch"] = String(t.epoch) }
        try ModelFile(model: .dense(ae), info: info).write(to: String(cString: path))
    }
}

/// Reads a dense model file into a new handle (ready to transform; `settings` (JSON, may be NULL)
/// give the threads and what `partial_fit` continues with).
@_cdecl("unroll_load")
public func unrollLoad(_ path: UnsafePointer<CChar>?, _ settings: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guarded {
        guard let path, let out else { throw APIError("path and the output pointer must not be NULL") }
        let file = try ModelFile.read(String(cString: path))
        guard case let .dense(ae) = file.model else {
            throw APIError("\(String(cString: path)) holds a \(file.model.kind) model; this function reads dense models")
        }
        let h = try denseSettings(settings.map { String(cString: $0) } ?? "{}")
        h.model = ae
        out.pointee = retained(h)
    }
}
