import Foundation
import Unroll
import UnrollCore

/// PUDLE's gradient comparison (reference §3, `compare_gradients.py`): with D fixed at D₀ (δ = 0.02)
/// and the full data set as one batch, the three gradients from t = 1 … T_max unrolled layers are
/// compared with ĝ (the decoder gradient at the codes of 1000 ISTA layers, i.e. the lasso solution) and
/// with g* (the decoder gradient at the true codes). Gradients are batch means; distances are
/// Frobenius norms of the matrices (ours are of W = Dᵀ: the same numbers).
public enum GradientsExperiment {
    public struct Settings: Equatable, Sendable {
        public var data: SyntheticDictionaryConfig
        public var lambda: Float = 0.2
        public var alpha: Float = 0.2
        /// Layers of the reference encoder for ĝ.
        public var referenceLayers = 1000
        /// t = 1 … maxLayers.
        public var maxLayers: Int
        /// The t reported in the table.
        public var reportedLayers: [Int]
        public var seed: UInt64 = 0

        public init(data: SyntheticDictionaryConfig, maxLayers: Int, reportedLayers: [Int]) {
            self.data = data
            self.maxLayers = maxLayers
            self.reportedLayers = reportedLayers
        }
    }

    /// paper: the theory data (m 50, p 100, n 10 000, s 5) with δ = 0.02, t = 1 … 100;
    /// small: n 2000; tiny: m 20, p 30, n 300, s 3, t = 1 … 40.
    public static func settings(_ scale: ReproductionScale) -> Settings {
        var data = SyntheticDictionaryConfig.pudleTheory
        data.initNoise = 0.02
        switch scale {
        case .paper:
            return Settings(data: data, maxLayers: 100, reportedLayers: [1, 51, 100])
        case .small:
            data.exampleCount = 2000
            return Settings(data: data, maxLayers: 100, reportedLayers: [1, 51, 100])
        case .tiny:
            data.signalSize = 20
            data.atomCount = 30
            data.exampleCount = 300
            data.sparsity = 3
            return Settings(data: data, maxLayers: 40, reportedLayers: [1, 20, 40])
        }
    }

    /// The quantities of a row: `||g_<gradient> - <reference>||`, or the code error.
    static let quantities: [(gradient: String, reference: String)] = [
        ("dec", "g_hat"), ("ae-lasso", "g_hat"), ("ae-ls", "g_hat"),
        ("dec", "g*"), ("ae-lasso", "g*"), ("ae-ls", "g*"),
    ]

    /// §3's gradient table at t = 1, 51, 100: per quantity (gradient, reference); "z" is mean ‖z_t − ẑ‖.
    static let paper: [Int: [String: Double]] = [
        1: ["z": 2.369, "dec|g_hat": 0.186, "ae-lasso|g_hat": 0.323, "ae-ls|g_hat": 0.495,
            "dec|g*": 0.320, "ae-lasso|g*": 0.468, "ae-ls|g*": 0.639, "g_hat|g*": 0.161],
        51: ["z": 0.0766, "dec|g_hat": 0.0082, "ae-lasso|g_hat": 0.0034, "ae-ls|g_hat": 0.112,
             "dec|g*": 0.167, "ae-lasso|g*": 0.163, "ae-ls|g*": 0.080, "g_hat|g*": 0.161],
        100: ["z": 0.00344, "dec|g_hat": 3.7e-4, "ae-lasso|g_hat": 7.5e-5, "ae-ls|g_hat": 0.119,
              "dec|g*": 0.161, "ae-lasso|g*": 0.161, "ae-ls|g*": 0.072, "g_hat|g*": 0.161],
    ]

    /// Rows `{t, gradient, reference, measured = ‖g − ref‖}` for the reported t, plus
    /// `{t, gradient: "g_hat", reference: "g*"}` and `{t, quantity: "code_error"}` rows; curves of every
    /// distance and of the code error against t.
    public static func run(_ settings: Settings, scale: String,
                           callbacks: ReproductionCallbacks = ReproductionCallbacks()) throws -> ReproductionResult {
        let start = ContinuousClock.now
        let d = settings.data
        let data = try SyntheticDictionaryData(d, seed: settings.seed)
        let x = data.signals
        let op = try DenseDictionary(weights: data.initialDictionary)
        func encoder(_ layers: Int) -> UnrolledEncoder {
            UnrolledEncoder(layers: layers, lambda: .scalar(settings.lambda), step: .fixed(settings.alpha))
        }
        callbacks.progress?("gradients: reference codes from \(settings.referenceLayers) ISTA layers")
        let zHat = try encoder(settings.referenceLayers).encode(x, with: op)
        let gHat = GradientMode.decoderGradient(signals: x, codes: zHat, operator: op)
        let gStar = GradientMode.decoderGradient(signals: x, codes: data.codes.dense(), operator: op)
        let hatToStar = distance(gHat, gStar)

        let ts = Array(1...settings.maxLayers)
        var distances: [String: [Double]] = [:]
        var codeError: [Double] = []
        let modes: [GradientMode] = [.decoder, .lasso, .leastSquares]
        for t in ts {
            for mode in modes {
                let r = try mode.evaluate(signals: x, operator: op, encoder: encoder(t))
                distances["\(mode.paperName)|g_hat", default: []].append(distance(r.gradient, gHat))
                distances["\(mode.paperName)|g*", default: []].append(distance(r.gradient, gStar))
                if mode == .decoder { codeError.append(CodeMetrics.meanError(r.codes, zHat)) }
            }
            if t % 10 == 0 || t == ts.last {
                callbacks.progress?("gradients: t = \(t)/\(settings.maxLayers), ‖g_ae-lasso − ĝ‖ "
                                    + ReproductionTable.format(distances["ae-lasso|g_hat"]!.last!))
            }
        }

        var table = ReproductionTable(experiment: "gradients", scale: scale)
        table.notes = [
            "data: m \(d.signalSize), p \(d.atomCount), n \(d.exampleCount), s \(d.sparsity), amplitudes U[1,2] with ONE random sign per example — the variant PUDLE's numbers come from",
            "D fixed at D₀ = normalise(D* + \(d.initNoise)·N); λ = α = \(settings.lambda); full batch; g_hat from \(settings.referenceLayers) ISTA layers, g* from the true codes",
            "measured = ‖g − reference‖_F of batch-averaged gradients; code_error = mean ‖z_t − z_hat‖",
        ]
        if scale != ReproductionScale.paper.rawValue {
            table.notes.append("the paper column is the published value at the paper's scale (m 50, p 100, n 10 000); this run is smaller")
        }
        for t in settings.reportedLayers where t >= 1 && t <= settings.maxLayers {
            let i = t - 1
            let published = paper[t]
            table.rows.append(ReproductionRow(
                setting: [.init("t", .int(t)), .init("gradient", .string("-")), .init("reference", .string("z_hat")),
                          .init("metric", .string("code_error"))],
                measured: codeError[i], paper: published?["z"]))
            for q in quantities {
                let key = "\(q.gradient)|\(q.reference)"
                table.rows.append(ReproductionRow(
                    setting: [.init("t", .int(t)), .init("gradient", .string(q.gradient)),
                              .init("reference", .string(q.reference)), .init("metric", .string("distance"))],
                    measured: distances[key]![i], paper: published?[key]))
            }
            table.rows.append(ReproductionRow(
                setting: [.init("t", .int(t)), .init("gradient", .string("g_hat")), .init("reference", .string("g*")),
                          .init("metric", .string("distance"))],
                measured: hatToStar, paper: published?["g_hat|g*"]))
        }
        table.info = [.init("seed", .int(Int(settings.seed))),
                      .init("wall_seconds", .double((secondsSince(start) * 10).rounded() / 10))]

        let xs = ts.map(Double.init)
        var toHat = CurveSet(name: "gradients_vs_ghat", title: "||g - g_hat|| (g_hat: \(settings.referenceLayers)-layer ISTA)",
                             xLabel: "layers t", yLabel: "distance", logY: true, x: xs)
        var toStar = CurveSet(name: "gradients_vs_gstar", title: "||g - g*|| (g*: true codes)",
                              xLabel: "layers t", yLabel: "distance", logY: true, x: xs)
        for m in modes {
            toHat.add("g_\(m.paperName)", y: distances["\(m.paperName)|g_hat"]!)
            toStar.add("g_\(m.paperName)", y: distances["\(m.paperName)|g*"]!)
        }
        toStar.add("g_hat", y: [Double](repeating: hatToStar, count: xs.count))
        var codes = CurveSet(name: "gradients_code_error", title: "mean ||z_t - z_hat||",
                             xLabel: "layers t", yLabel: "code error", logY: true, x: xs)
        codes.add("z_t", y: codeError)
        return ReproductionResult(table: table, curves: [toHat, toStar, codes])
    }

    /// ‖a − b‖_F in Double.
    static func distance(_ a: Tensor, _ b: Tensor) -> Double {
        precondition(a.shape == b.shape, "gradient shapes \(a.shape) vs \(b.shape)")
        var s = 0.0
        for i in 0..<a.count {
            let e = Double(a.data[i]) - Double(b.data[i])
            s += e * e
        }
        return s.squareRoot()
    }
}
