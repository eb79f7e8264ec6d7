import Foundation
import Unroll
import UnrollCore

/// A model on disk, as every surface (CLI, Swift package, Python) reads and writes it: one
/// safetensors file, format `unroll-model/2`, tensors plus one metadata schema (layer 7 of the design).
///
/// Autoencoders (`model.kind` dense, conv1d, conv2d):
///
/// | tensor | shape | when |
/// |---|---|---|
/// | `dictionary` | dense `[p, m]` (atoms as rows, X ≈ Z·W); conv1d `[C, channels, K]`; conv2d `[C, 1, K, K]` | always |
/// | `analysis`, `synthesis` | as `dictionary` | untied banks (E in the encoder, the decoder) |
/// | `lambda` | `[atoms]` | a per-atom λ (else metadata `encoder.lambda`) |
/// | `em.lambda` | `[atoms]` | CRsAE's EM-learned λ_c (with `em.sigma`) |
/// | `layer_gains` | `[encoder.layers, atoms]` | learned per-layer factors on the thresholds (`UnrolledEncoder.layerGains`) |
///
/// Metadata (strings; one spelling per key): `format`, `model.kind`, `model.layout` (for people),
/// `operator.stride`/`operator.height`/`operator.width` (conv2d), `encoder.algorithm` (ista, fista),
/// `encoder.layers`, `encoder.threshold` (soft, non-negative, hard), `encoder.lambda` (a number, or
/// `per-atom` with the tensor), `encoder.lambda_role` (penalty: threshold λα; threshold: λ itself),
/// `encoder.step` (a number, or `auto` = 1/L with `encoder.power_iterations` and `encoder.power_seed`),
/// `encoder.tolerance` (when set), `encoder.beta`, `em.sigma`, `model.shift_average` (conv2d: true/false),
/// `model.shift_phases` (conv2d: n, averaging n² of the s² shifts, n phases per axis) or `model.shift_lattice`
/// (conv2d: n, averaging n shifts on a lattice; `ShiftSet`), neither: all,
/// `model.adaptive_sigma` (a noise-adaptive model's reference σ, when it is one), `model.non_local` (conv2d: the
/// non-local stage's h/σ, with `model.non_local_patch` and `model.non_local_window`, odd sides in pixels;
/// `NonLocalMeans`), `model.collaborative` (conv2d: the share a of BM3D's first step mixed in, with
/// `model.collaborative_threshold` λ, `model.collaborative_group`, `model.collaborative_window` (odd) and
/// `model.collaborative_step`, and with its second step `model.collaborative_wiener` c and
/// `model.collaborative_wiener_threshold` μ; `CollaborativeFilter`). Keys under `training.` and `data.` are
/// provenance (`info`), never read back into the model; they hold no machine paths in shipped models.
///
/// VSC (`model.kind` vsc-linear, vsc-conv): the trainer's tensors and settings under their own names.
///
/// Files are written atomically, with no dates or timings, so the same model gives the same bytes.
/// `read` also loads the version-1 files earlier releases wrote (see `ModelFile+Version1.swift`).
public struct ModelFile: Sendable {
    public static let format = "unroll-model/2"
    /// Upper bounds on what a file may ask the encoder to do (a hostile file must not hang a reader).
    public static let maxLayers = UnrolledEncoder.maxLayers
    public static let maxPowerIterations = UnrolledEncoder.maxPowerIterations

    public var model: UnrollModel
    /// Provenance (`training.*`, `data.*`), written as given; other keys are dropped.
    public var info: [String: String]

    public init(model: UnrollModel, info: [String: String] = [:]) {
        self.model = model
        self.info = info.filter { Self.isInfo($0.key) }
    }

    static func isInfo(_ key: String) -> Bool { key.hasPrefix("training.") || key.hasPrefix("data.") }

    // MARK: writing

    /// The tensors (in a fixed order) and metadata of the file.
    public func contents() -> (tensors: [(name: String, tensor: Tensor)], metadata: [String: String]) {
        var meta = info
        var tensors: [(name: String, tensor: Tensor)] = []
        switch model {
        case let .dense(m):
            Self.encode(m, layout: "dictionary [p, m], atoms as rows (X ≈ Z·W); codes [n, p]", into: &tensors, &meta)
        case let .conv1d(m):
            Self.encode(m, layout: "filters [C, channels, K]; signal = Σ_c z_c ∗ h_c; codes [C, samples − K + 1]", into: &tensors, &meta)
        case let .conv2d(m):
            Self.encode(m, layout: "filters [C, 1, K, K]; image = Σ_c convᵀ(z_c, h_c) at the stride, cropped to the image; codes [C, Ho, Wo]",
                        into: &tensors, &meta)
            meta["operator.stride"] = String(m.dictionary.stride)
            meta["operator.height"] = String(m.dictionary.height)
            meta["operator.width"] = String(m.dictionary.width)
            meta["model.shift_average"] = String(m.shiftAverage)
            switch m.shifts {
            case .all: break
            case .grid(let n): meta["model.shift_phases"] = String(n)
            case .lattice(let n): meta["model.shift_lattice"] = String(n)
            }
            if let n = m.nonLocal {
                meta["model.non_local"] = n.strength.description
                meta["model.non_local_patch"] = String(n.patchSide)
                meta["model.non_local_window"] = String(n.windowSide)
            }
            if let c = m.collaborative {
                meta["model.collaborative"] = c.weight.description
                meta["model.collaborative_threshold"] = c.threshold.description
                meta["model.collaborative_group"] = String(c.groupSize)
                meta["model.collaborative_window"] = String(2 * c.searchRadius + 1)
                meta["model.collaborative_step"] = String(c.step)
                if c.wienerWeight > 0 {
                    meta["model.collaborative_wiener"] = c.wienerWeight.description
                    meta["model.collaborative_wiener_threshold"] = c.wienerThreshold.description
                }
            }
        case let .vsc(m):
            meta.merge(m.state.metadata) { _, new in new }
            tensors = m.state.tensors.keys.sorted().map { ($0, m.state.tensors[$0]!) }
        }
        meta["format"] = Self.format
        meta["model.kind"] = model.kind
        return (tensors, meta)
    }

    public func write(to path: String) throws {
        let (tensors, meta) = contents()
        try Safetensors.write(tensors, metadata: meta, to: path)
    }

    private static func encode<Op: DictionaryOperator>(_ m: UnrolledAutoencoder<Op>, layout: String,
                                                       into tensors: inout [(name: String, tensor: Tensor)],
                                                       _ meta: inout [String: String]) {
        tensors.append(("dictionary", m.dictionary.weights))
        if let e = m.analysis { tensors.append(("analysis", e.weights)) }
        if let d = m.synthesis { tensors.append(("synthesis", d.weights)) }
        let e = m.encoder
        meta["model.layout"] = layout + (m.isTied ? "" : "; untied: the encoder correlates with `analysis`, the decoder is `synthesis`")
        meta["encoder.algorithm"] = e.algorithm.rawValue
        meta["encoder.layers"] = String(e.layers)
        meta["encoder.threshold"] = thresholdNames[e.threshold]
        switch e.lambda {
        case let .scalar(v): meta["encoder.lambda"] = v.description
        case let .perAtom(v):
            meta["encoder.lambda"] = "per-atom"
            tensors.append(("lambda", Tensor(shape: [v.count], data: v)))
        }
        meta["encoder.lambda_role"] = e.lambdaIsPenalty ? "penalty" : "threshold"
        switch e.step {
        case let .fixed(a): meta["encoder.step"] = a.description
        case let .inverseLipschitz(iterations, seed):
            meta["encoder.step"] = "auto"
            meta["encoder.power_iterations"] = String(iterations)
            meta["encoder.power_seed"] = String(seed)
        }
        if let tol = e.tolerance { meta["encoder.tolerance"] = tol.description }
        if let g = e.layerGains { tensors.append(("layer_gains", g)) }
        meta["encoder.beta"] = m.beta.description
        if let em = m.em {
            tensors.append(("em.lambda", Tensor(shape: [em.lambdas.count], data: em.lambdas)))
            meta["em.sigma"] = em.sigma.description
        }
        if let s = m.adaptiveSigma { meta["model.adaptive_sigma"] = s.description }
    }

    static let thresholdNames: [Threshold: String] = [.soft: "soft", .nonNegative: "non-negative", .hard: "hard"]

    // MARK: reading

    /// Reads any model file: `unroll-model/2`, or a version-1 file (dense, conv2d, CRsAE 2-D untied,
    /// VSC safetensors, spikes .npz). Every error names the file and the entry.
    public static func read(_ path: String) throws -> ModelFile {
        let bytes = try FileBytes.read(path)
        return try naming(path) { try decode(bytes) }
    }

    /// A model file's bytes, read as `read(_:)` does.
    public static func decode(_ bytes: [UInt8]) throws -> ModelFile {
        if bytes.starts(with: [0x50, 0x4B]) { return try version1Spikes(Npz.decode(bytes)) }   // "PK": a zip
        let file = try Safetensors.decode(bytes)
        switch file.metadata["format"] {
        case Self.format: return try decode(file)
        case nil, "unroll-model/1": return try version1(file)
        case let other?:
            throw UnrollIOError(.unsupported, "model format '\(other)' is not one this version reads (\(Self.format) or unroll-model/1); a newer Unroll wrote it?")
        }
    }

    /// An `unroll-model/2` file's model.
    static func decode(_ file: SafetensorsFile) throws -> ModelFile {
        let r = Entries(file)
        let kind = try r.string("model.kind")
        let model: UnrollModel
        switch kind {
        case "dense":
            model = .dense(try autoencoder(r) { try DenseDictionary(weights: $0) })
        case "conv1d":
            model = .conv1d(try autoencoder(r) { try Convolution1DDictionary(weights: $0) })
        case "conv2d":
            let stride = try r.int("operator.stride", 1...4096)
            let height = try r.int("operator.height", 1...1 << 20), width = try r.int("operator.width", 1...1 << 20)
            var m = try autoencoder(r) { try Convolution2DDictionary(filters: $0, stride: stride, height: height, width: width) }
            let average = try r.string("model.shift_average")
            guard average == "true" || average == "false" else {
                throw UnrollIOError(.malformed, "metadata model.shift_average is '\(average)', expected true or false")
            }
            m.shiftAverage = average == "true"
            switch (file.metadata["model.shift_phases"] != nil, file.metadata["model.shift_lattice"] != nil) {
            case (true, true): throw UnrollIOError(.malformed, "metadata has both model.shift_phases and model.shift_lattice; a model averages one set of shifts")
            case (true, false): m.shifts = .grid(try r.int("model.shift_phases", 1...4096))
            case (false, true): m.shifts = .lattice(try r.int("model.shift_lattice", 1...65_536))
            case (false, false): m.shifts = .all
            }
            if file.metadata["model.non_local"] != nil {
                let patch = try r.int("model.non_local_patch", 1...129), window = try r.int("model.non_local_window", 3...129)
                m.nonLocal = try r.context("model.non_local") {
                    try NonLocalMeans(strength: try r.float("model.non_local"), patchSide: patch, windowSide: window)
                }
            }
            if file.metadata["model.collaborative"] != nil {
                let threshold = try r.float("model.collaborative_threshold"), group = try r.int("model.collaborative_group", 1...32)
                let window = try r.int("model.collaborative_window", 3...129), step = try r.int("model.collaborative_step", 1...4)
                guard window % 2 == 1 else { throw UnrollIOError(.malformed, "metadata model.collaborative_window is \(window), expected an odd side") }
                var wiener: (weight: Float, threshold: Float) = (0, CollaborativeFilter.defaultWienerThreshold)
                if file.metadata["model.collaborative_wiener"] != nil {
                    wiener = (try r.float("model.collaborative_wiener"), try r.float("model.collaborative_wiener_threshold"))
                }
                m.collaborative = try r.context("model.collaborative") {
                    try CollaborativeFilter(weight: try r.float("model.collaborative"), threshold: threshold, wienerWeight: wiener.weight,
                                            wienerThreshold: wiener.threshold, groupSize: group, searchRadius: window / 2, step: step)
                }
            }
            model = .conv2d(m)
        case "vsc-linear", "vsc-conv":
            var tensors: [String: Tensor] = [:]
            for (name, array) in file.tensors { tensors[name] = array.tensor }
            let meta = file.metadata.filter { $0.key != "format" && $0.key != "model.kind" && !isInfo($0.key) }
            model = .vsc(VSCModel(generator: kind == "vsc-linear" ? .linear : .conv, state: TrainerCheckpoint(tensors: tensors, metadata: meta)))
        default:
            throw UnrollIOError(.malformed, "metadata model.kind is '\(kind)', expected dense, conv1d, conv2d, vsc-linear or vsc-conv")
        }
        return ModelFile(model: model, info: file.metadata)
    }

    private static func autoencoder<Op: DictionaryOperator>(_ r: Entries, _ make: (Tensor) throws -> Op) throws -> UnrolledAutoencoder<Op> {
        func bank(_ name: String) throws -> Op? {
            guard let t = r.file[name]?.tensor else { return nil }
            return try r.context("tensor \(name)") { try make(t) }
        }
        guard let dictionary = try bank("dictionary") else { throw UnrollIOError(.malformed, "no tensor 'dictionary'") }
        let analysis = try bank("analysis"), synthesis = try bank("synthesis")
        let lambda: Lambda = try r.string("encoder.lambda") == "per-atom"
            ? .perAtom(try r.vector("lambda", count: dictionary.atoms)) : .scalar(try r.float("encoder.lambda"))
        let role = try r.string("encoder.lambda_role")
        guard role == "penalty" || role == "threshold" else {
            throw UnrollIOError(.malformed, "metadata encoder.lambda_role is '\(role)', expected penalty or threshold")
        }
        let layers = try r.layers("encoder.layers")
        var gains: Tensor?
        if let g = r.file["layer_gains"]?.tensor {
            guard g.shape == [layers, dictionary.atoms] else {
                throw UnrollIOError(.malformed, "tensor layer_gains is \(g.shape), expected [\(layers), \(dictionary.atoms)] (encoder.layers × atoms)")
            }
            guard g.data.allSatisfy({ $0.isFinite && $0 >= 0 }) else { throw UnrollIOError(.malformed, "tensor layer_gains must be finite and ≥ 0") }
            gains = g
        }
        let encoder = UnrolledEncoder(layers: layers, algorithm: try r.algorithm(), threshold: try r.threshold(),
                                      lambda: lambda, step: try r.step(), tolerance: try r.tolerance(), lambdaIsPenalty: role == "penalty",
                                      layerGains: gains)
        var em: EMLambda?
        if r.file["em.lambda"] != nil {
            em = EMLambda(lambdas: try r.vector("em.lambda", count: dictionary.atoms), sigma: try r.float("em.sigma"))
        }
        return try r.context("the model") {
            try UnrolledAutoencoder(dictionary: dictionary, analysis: analysis, synthesis: synthesis, encoder: encoder,
                                    beta: try r.float("encoder.beta"), em: em,
                                    adaptiveSigma: r.file.metadata["model.adaptive_sigma"] != nil ? try r.float("model.adaptive_sigma") : nil)
        }
    }

    /// Typed access to a file's entries; every failure names the key and what was expected.
    struct Entries {
        let file: SafetensorsFile

        init(_ file: SafetensorsFile) { self.file = file }

        func quoted(_ key: String) -> String { file.metadata[key].map { "'\($0)'" } ?? "missing" }

        func string(_ key: String) throws -> String {
            guard let v = file.metadata[key] else { throw UnrollIOError(.malformed, "metadata \(key) is missing") }
            return v
        }

        func float(_ key: String) throws -> Float {
            guard let v = Float(try string(key)), v.isFinite else {
                throw UnrollIOError(.malformed, "metadata \(key) is \(quoted(key)), expected a finite number")
            }
            return v
        }

        func int(_ key: String, _ range: ClosedRange<Int>) throws -> Int {
            guard let v = Int(try string(key)), range.contains(v) else {
                throw UnrollIOError(.malformed, "metadata \(key) is \(quoted(key)), expected an integer in \(range.lowerBound)…\(range.upperBound)")
            }
            return v
        }

        func uint64(_ key: String) throws -> UInt64 {
            guard let v = UInt64(try string(key)) else {
                throw UnrollIOError(.malformed, "metadata \(key) is \(quoted(key)), expected a non-negative integer")
            }
            return v
        }

        // The encoder's settings, spelled the same in both versions.

        func layers(_ key: String) throws -> Int { try int(key, 1...ModelFile.maxLayers) }

        func algorithm() throws -> UnrolledEncoder.Algorithm {
            guard let a = UnrolledEncoder.Algorithm(rawValue: try string("encoder.algorithm")) else {
                throw UnrollIOError(.malformed, "metadata encoder.algorithm is \(quoted("encoder.algorithm")), expected ista or fista")
            }
            return a
        }

        func threshold() throws -> Threshold {
            guard let t = ModelFile.thresholdNames.first(where: { $0.value == file.metadata["encoder.threshold"] })?.key else {
                throw UnrollIOError(.malformed, "metadata encoder.threshold is \(quoted("encoder.threshold")), expected soft, non-negative or hard")
            }
            return t
        }

        /// A number, or `auto` with the power iterations and their seed.
        func step() throws -> StepSize {
            try string("encoder.step") == "auto"
                ? .inverseLipschitz(iterations: try int("encoder.power_iterations", 1...ModelFile.maxPowerIterations),
                                    seed: try uint64("encoder.power_seed"))
                : .fixed(try float("encoder.step"))
        }

        func tolerance() throws -> Float? { file.metadata["encoder.tolerance"] == nil ? nil : try float("encoder.tolerance") }

        func vector(_ name: String, count: Int) throws -> [Float] {
            guard let t = file[name]?.tensor else { throw UnrollIOError(.malformed, "no tensor '\(name)'") }
            guard t.shape == [count] else { throw UnrollIOError(.malformed, "tensor \(name) has shape \(t.shape), expected [\(count)] (one per atom)") }
            return t.data
        }

        /// Runs `body`, turning a library error into a malformed-file error about `what`.
        func context<T>(_ what: String, _ body: () throws -> T) throws -> T { try Self.context(what, body) }

        static func context<T>(_ what: String, _ body: () throws -> T) throws -> T {
            do { return try body() } catch let e as UnrollError { throw UnrollIOError(.malformed, "\(what): \(e.description)") }
        }
    }
}
