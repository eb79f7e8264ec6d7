import Foundation
import Unroll
import UnrollCore

/// PUDLE §5 / Theorem 5.1 (reference §1.5 and §6): the learned dictionary as a combination of the
/// training examples, on images of classes 0–4.
///
/// Two models per data set, both non-negative codes from the same initial dictionary (p random training
/// images, unit norm):
/// - **alt-min**: exact alternating minimisation of ½‖X − ZW‖² + λΣ|Z| + ω/2‖W‖² (Z ≥ 0) until W and Z
///   both change by less than `tolerance` in a round (`RegularizedDictionaryLearning`). At this
///   stationary point the theorem says W = W̃ = (ZᵀZ + ωI)⁻¹ZᵀX.
/// - **backprop**: PUDLE's MNIST model trained end to end — T unrolled non-negative ISTA layers, the
///   lasso loss backpropagated through them (g_ae-lasso), Adam, atoms normalised — with its codes z_T.
///
/// Rows per data set and model: the gap ‖W − W̃‖/‖W‖, for test images the identity ẑᵀW̃ = Σβ_k x_k and
/// the reconstruction gap ‖ẑᵀW − ẑᵀW̃‖/‖ẑᵀW‖, and the share of the top-k |β| training images that
/// share the test image's label (against code similarity and chance).
public enum InterpretExperiment {
    public struct Settings: Equatable, Sendable {
        public var classes: [Int] = [0, 1, 2, 3, 4]
        public var trainPerClass: Int
        public var testPerClass: Int
        public var atoms: Int
        public var lambda: Double
        public var omega: Double
        public var tolerance: Double = 1e-6
        public var maxRounds: Int = 3000
        /// The backprop model: T layers, epochs, Adam learning rate, batch size (0 epochs = skip it).
        public var layers: Int = 15
        public var backpropEpochs: Int
        public var learningRate: Float = 1e-3
        public var batchSize: Int = 32
        /// k of the same-class share.
        public var shareTop: Int = 20
        /// Atoms and test images drawn in the figures, training images per side, and terms in the β estimate.
        public var figureAtoms: Int = 3
        public var figureExamples: Int = 3
        public var figureTop: Int = 4
        public var estimateTerms: Int = 200
        public var seed: UInt64 = 0

        public init(trainPerClass: Int, testPerClass: Int, atoms: Int, lambda: Double, omega: Double, backpropEpochs: Int) {
            self.trainPerClass = trainPerClass
            self.testPerClass = testPerClass
            self.atoms = atoms
            self.lambda = lambda
            self.omega = omega
            self.backpropEpochs = backpropEpochs
        }
    }

    /// λ 0.3 and ω 1 on pixels in [0, 1] (with ω = 0.1 alternating minimisation still drifts after
    /// 3000 rounds). tiny: 40 training images per class, p 50, at most 400 rounds (seconds; may stop
    /// short of 1e-6); small: digits all ≈ 144/class with p 100, Fashion 60/class with p 50 and λ 1, at most
    /// 1500 rounds;
    /// paper: p 500, T 15 (Fashion 1200/class = the paper's 6000 examples, λ 1; not run yet).
    public static func settings(_ scale: ReproductionScale, dataset: String) -> Settings {
        let digits = dataset == "digits"
        var s: Settings
        switch scale {
        case .tiny:
            s = Settings(trainPerClass: 40, testPerClass: 10, atoms: 50, lambda: 0.3, omega: 1, backpropEpochs: 5)
            s.maxRounds = 400
        case .small:
            s = digits
                ? Settings(trainPerClass: 1000, testPerClass: 1000, atoms: 100, lambda: 0.3, omega: 1, backpropEpochs: 30)
                : Settings(trainPerClass: 60, testPerClass: 100, atoms: 50, lambda: 1, omega: 1, backpropEpochs: 20)
            s.maxRounds = 1500
        case .paper:
            s = digits
                ? Settings(trainPerClass: 1000, testPerClass: 1000, atoms: 500, lambda: 0.3, omega: 1, backpropEpochs: 100)
                : Settings(trainPerClass: 1200, testPerClass: 200, atoms: 500, lambda: 1, omega: 1, backpropEpochs: 30)
        }
        return s
    }

    /// What one data set produced: the alt-min model and the figures' contents.
    public struct DataSetOutcome: Sendable {
        public var model: InterpretModel
        public var atoms: [AtomExplanation]
        public var examples: [ExampleExplanation]
    }

    public struct Outcome: Sendable {
        public var result: ReproductionResult
        public var datasets: [DataSetOutcome]
    }

    /// Trains the alt-min model on `images` (already the subset to use).
    public static func trainModel(_ images: LabeledImages, _ s: Settings, progress: ((String) -> Void)? = nil) throws
        -> (model: InterpretModel, training: RegularizedDictionaryLearning.Result)
    {
        var am = RegularizedDictionaryLearning.Settings(atoms: s.atoms, lambda: s.lambda, omega: s.omega)
        am.tolerance = s.tolerance
        am.maxRounds = s.maxRounds
        am.seed = s.seed
        let every = 25
        let training = try RegularizedDictionaryLearning.train(signals: images.train, settings: am) { line in
            if line.hasPrefix("round 1:") || line.contains("round ") && (Int(line.dropFirst(6).prefix { $0.isNumber }) ?? 0) % every == 0 {
                progress?("\(images.name) alt-min " + line)
            }
        }
        let model = try InterpretModel(data: images, weights: training.weightsDouble, atoms: s.atoms, codes: training.codes,
                                       lambda: s.lambda, omega: s.omega)
        return (model, training)
    }

    /// Runs every data set with its settings (each is subset by its settings first).
    public static func run(_ inputs: [(LabeledImages, Settings)], scale: String,
                           callbacks: ReproductionCallbacks = ReproductionCallbacks()) throws -> Outcome {
        let start = ContinuousClock.now
        var table = ReproductionTable(experiment: "interpret", scale: scale)
        table.notes = [
            "alt-min: exact alternating minimisation of ½‖X − ZW‖² + λΣ|Z| + ω/2‖W‖² with Z ≥ 0 (non-negative lasso codes in Double, warm-started, to a proximal residual of 1e-10; W ← (ZᵀZ + ωI)⁻¹ZᵀX), until ‖ΔW‖/‖W‖ and ‖ΔZ‖/‖Z‖ of a round are both below the tolerance",
            "backprop: T unrolled non-negative ISTA layers (α = 1/L), lasso loss backpropagated through them (g_ae-lasso), Adam, batch 32, atoms normalised; its gap uses its own codes z_T and the same ω",
            "gap = ‖W − W̃‖_F/‖W‖_F with W̃ = (ZᵀZ + ωI)⁻¹ZᵀX = X G⁻¹Zᵀ (Theorem 5.1: 0 at a stationary point); two_forms = ‖W̃(p×p form) − W̃(n×n form)‖/‖W̃‖",
            "identity = max over test images of ‖ẑᵀW̃ − Σ_k β_k x_k‖/‖ẑᵀW̃‖ with β = G⁻¹Zẑ; recon_gap = ‖ẑᵀW − ẑᵀW̃‖/‖ẑᵀW‖ (mean, max)",
            "same_class = mean share of the top-k training images by |β| (or by code cosine) that have the test image's label; chance = share of training images with that label",
            "the paper column is empty: PUDLE shows these relations as figures on MNIST (p 500, T 15) without numbers",
        ]
        var curves: [CurveSet] = []
        var outcomes: [DataSetOutcome] = []
        var rng = Random(seed: 0)
        for (full, s) in inputs {
            rng = Random(seed: s.seed)
            let images = try full.subset(classes: s.classes, trainPerClass: s.trainPerClass, testPerClass: s.testPerClass, rng: &rng)
            let name = images.name
            let n = images.train.rows, m = images.train.cols
            callbacks.progress?("\(name): \(n) training, \(images.test.rows) test images of \(m) pixels; p \(s.atoms), λ \(s.lambda), ω \(s.omega)")
            func row(_ model: String, _ metric: String, _ v: Double?) {
                table.rows.append(ReproductionRow(setting: [.init("data", .string(name)), .init("model", .string(model)),
                                                            .init("metric", .string(metric))], measured: v, paper: nil))
            }

            // The alt-min model.
            let (model, training) = try trainModel(images, s, progress: callbacks.progress)
            callbacks.progress?("\(name) alt-min: \(training.rounds) rounds, ΔW \(ReproductionTable.format(training.dictionaryChange)), ΔZ \(ReproductionTable.format(training.codeChange)), gap \(ReproductionTable.format(model.gap)) (\(String(format: "%.0f", training.seconds)) s)")
            row("alt-min", "rounds", Double(training.rounds))
            row("alt-min", "converged", training.converged ? 1 : 0)
            row("alt-min", "dW_last", training.dictionaryChange)
            row("alt-min", "dZ_last", training.codeChange)
            row("alt-min", "code_residual", training.codeResidual)
            row("alt-min", "gap", model.gap)
            if n <= 2000 {
                let byExamples = try model.combination.impliedWeightsByExamples()
                row("alt-min", "two_forms", ExampleCombination.relativeDifference(byExamples, model.implied))
            }
            let zT = Tensor(shape: [n, s.atoms], data: training.codes.map(Float.init))
            row("alt-min", "nonzeros_per_code", Double(zT.count - zT.zeroCount()) / Double(n))
            row("alt-min", "rel_reconstruction", relativeReconstruction(images.train, codes: zT, weights: model.weights))

            let testCodes = try model.encode(images.test)
            let stats = try testStatistics(model, codes: testCodes, top: s.shareTop)
            row("alt-min", "identity_max", stats.identityMax)
            row("alt-min", "recon_gap_mean", stats.gapMean)
            row("alt-min", "recon_gap_max", stats.gapMax)
            row("alt-min", "same_class_top\(s.shareTop)_beta", stats.shareBeta)
            row("alt-min", "same_class_top\(s.shareTop)_cosine", stats.shareCosine)
            row("alt-min", "chance", stats.chance)
            table.info = info(start)
            callbacks.partial?(ReproductionResult(table: table, curves: curves))

            // Figures: the highest-energy atoms, the first test images of distinct classes.
            let atoms = try model.atomsByEnergy().prefix(s.figureAtoms).map { try model.explainAtom($0, top: s.figureTop) }
            var picked: [Int] = []
            for c in s.classes where picked.count < s.figureExamples {
                if let i = images.testLabels.firstIndex(of: c) { picked.append(i) }
            }
            let examples = try picked.map { i in
                try model.explain(code: Array(testCodes.data[(i * s.atoms)..<((i + 1) * s.atoms)]),
                                  image: Array(images.test.data[(i * m)..<((i + 1) * m)]), testIndex: i,
                                  label: images.testLabels[i], top: s.figureTop, estimateTerms: min(s.estimateTerms, n))
            }
            for e in examples { curves.append(similarityHistogram(e, dataset: name, classes: s.classes)) }
            outcomes.append(DataSetOutcome(model: model, atoms: atoms, examples: examples))

            // The backprop model.
            if s.backpropEpochs > 0 {
                let t0 = ContinuousClock.now
                let encoder = UnrolledEncoder(layers: s.layers, threshold: .nonNegative, lambda: .scalar(Float(s.lambda)),
                                              step: .inverseLipschitz())
                let config = TrainerConfig(encoder: encoder, mode: .lasso,
                                           optimizer: .adam(learningRate: s.learningRate),
                                           batchSize: s.batchSize, shuffle: true, seed: s.seed, normalizeAtoms: true)
                let w0 = RegularizedDictionaryLearning.initialWeights(signals: images.train, atoms: s.atoms, seed: s.seed)
                var trainer = try DictionaryTrainer(dictionary: try DenseDictionary(weights: Tensor(shape: [s.atoms, m], data: w0.map(Float.init))),
                                                    data: images.train, config: config)
                for e in 1...s.backpropEpochs {
                    var loss = 0.0, count = 0
                    try trainer.train(epochs: 1) { r in loss += r.loss; count += 1 }
                    if e == 1 || e % max(1, s.backpropEpochs / 5) == 0 {
                        callbacks.progress?("\(name) backprop T=\(s.layers) epoch \(e)/\(s.backpropEpochs): loss \(ReproductionTable.format(loss / Double(max(1, count))))")
                    }
                }
                let w = trainer.dictionary.weights
                let trainCodes = try encoder.encode(images.train, with: trainer.dictionary)
                let bp = try InterpretModel(data: images, weights: w.data.map(Double.init), atoms: s.atoms,
                                            codes: trainCodes.data.map(Double.init), lambda: s.lambda, omega: s.omega)
                let bpStats = try testStatistics(bp, codes: try encoder.encode(images.test, with: trainer.dictionary), top: s.shareTop)
                let exact = try bp.encode(images.train)
                let bpExact = try InterpretModel(data: images, weights: bp.weights, atoms: s.atoms,
                                                 codes: exact.data.map(Double.init), lambda: s.lambda, omega: s.omega)
                row("backprop-T\(s.layers)", "gap", bp.gap)
                row("backprop-T\(s.layers)", "gap_exact_codes", bpExact.gap)
                row("backprop-T\(s.layers)", "decoder_gradient_rel", decoderStationarity(images.train, codes: trainCodes, weights: bp.weights, omega: s.omega))
                row("backprop-T\(s.layers)", "rel_reconstruction", relativeReconstruction(images.train, codes: trainCodes, weights: bp.weights))
                row("backprop-T\(s.layers)", "identity_max", bpStats.identityMax)
                row("backprop-T\(s.layers)", "recon_gap_mean", bpStats.gapMean)
                row("backprop-T\(s.layers)", "recon_gap_max", bpStats.gapMax)
                row("backprop-T\(s.layers)", "same_class_top\(s.shareTop)_beta", bpStats.shareBeta)
                callbacks.progress?("\(name) backprop: gap \(ReproductionTable.format(bp.gap)) (exact codes \(ReproductionTable.format(bpExact.gap))) (\(String(format: "%.0f", secondsSince(t0))) s)")
            }
            table.info = info(start)
            callbacks.partial?(ReproductionResult(table: table, curves: curves))
        }
        table.info = info(start)
        return Outcome(result: ReproductionResult(table: table, curves: curves), datasets: outcomes)
    }

    struct TestStatistics {
        var identityMax = 0.0, gapMean = 0.0, gapMax = 0.0, shareBeta = 0.0, shareCosine = 0.0, chance = 0.0
    }

    /// Over all test images of the model's data set, with codes `codes` (`[t, p]`).
    static func testStatistics(_ model: InterpretModel, codes: Tensor, top: Int) throws -> TestStatistics {
        let data = model.data, p = model.atoms, m = data.test.cols, t = data.test.rows
        var s = TestStatistics()
        let k = min(top, data.train.rows)
        for i in 0..<t {
            let code = Array(codes.data[(i * p)..<((i + 1) * p)])
            let beta = try model.combination.coefficients(code: code)
            let viaImplied = ExampleCombination.decode(code, weights: model.implied, signalSize: m)
            let viaModel = ExampleCombination.decode(code, weights: model.weights, signalSize: m)
            let identity = ExampleCombination.relativeDifference(model.combination.combine(beta), viaImplied)
            // An all-zero code reconstructs nothing: both sides are 0 and there is nothing to compare.
            if identity.isFinite { s.identityMax = max(s.identityMax, identity) }
            let gap = ExampleCombination.relativeDifference(viaImplied, viaModel)
            if gap.isFinite { s.gapMean += gap / Double(t); s.gapMax = max(s.gapMax, gap) }
            let label = data.testLabels[i]
            let byBeta = ExampleCombination.extremes(beta.map(abs), k: k).largest
            let byCosine = ExampleCombination.extremes(try model.combination.codeSimilarity(code: code), k: k).largest
            s.shareBeta += Double(byBeta.filter { data.trainLabels[$0] == label }.count) / Double(k * t)
            s.shareCosine += Double(byCosine.filter { data.trainLabels[$0] == label }.count) / Double(k * t)
            s.chance += Double(data.trainLabels.filter { $0 == label }.count) / Double(data.train.rows * t)
        }
        return s
    }

    /// ‖X − ZW‖_F/‖X‖_F.
    static func relativeReconstruction(_ x: Tensor, codes: Tensor, weights: [Double]) -> Double {
        let w = Tensor(shape: [codes.cols, x.cols], data: weights.map(Float.init))
        let r = codes.matmul(w) - x
        return (r.squaredNorm() / max(1e-300, x.squaredNorm())).squareRoot()
    }

    /// ‖Zᵀ(ZW − X) + ωW‖/‖ZᵀX‖: the relative gradient of the ω-objective in W (0 at the theorem's point).
    static func decoderStationarity(_ x: Tensor, codes: Tensor, weights: [Double], omega: Double) -> Double {
        let w = Tensor(shape: [codes.cols, x.cols], data: weights.map(Float.init))
        var g = codes.matmul(codes.matmul(w) - x, transposeSelf: true)
        g.add(w, scaledBy: Float(omega))
        let ref = codes.matmul(x, transposeSelf: true)
        return (g.squaredNorm() / max(1e-300, ref.squaredNorm())).squareRoot()
    }

    /// Per class, the fraction of that class's training images in each bin of cos(z_k, ẑ) ∈ [0, 1].
    static func similarityHistogram(_ e: ExampleExplanation, dataset: String, classes: [Int], bins: Int = 20) -> CurveSet {
        let centers = (0..<bins).map { (Double($0) + 0.5) / Double(bins) }
        var curve = CurveSet(name: "interpret-\(dataset)-similarity-test\(e.testIndex)",
                             title: "\(dataset) test \(e.testIndex) (label \(e.label)): code cosine to training images",
                             xLabel: "cos(z_k, z_test)", yLabel: "fraction of class", logY: false, x: centers)
        for c in classes {
            let values = e.similarity.indices.filter { e.trainLabels[$0] == c }.map { e.similarity[$0] }
            var counts = [Double](repeating: 0, count: bins)
            for v in values { counts[min(bins - 1, max(0, Int(v * Double(bins))))] += 1 }
            curve.add("class \(c)", y: counts.map { values.isEmpty ? 0 : $0 / Double(values.count) })
        }
        return curve
    }

    static func info(_ start: ContinuousClock.Instant) -> [ReproductionRow.Entry] {
        [.init("wall_seconds", .double((secondsSince(start) * 10).rounded() / 10))]
    }
}
