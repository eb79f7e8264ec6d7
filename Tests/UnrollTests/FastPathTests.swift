import CUnrollSupport
import Foundation
import Testing
import Unroll
import UnrollCore

/// The dense dictionary's sparsity-aware fast path (`DenseDictionary.layerPolicy`, `DenseUnrolledEngine`)
/// against the straightforward paths: the generic layer loop with the generic kernel (`GenericDense`:
/// `apply`/`adjoint`/`weightGradient` in every layer) and with the dense Gram kernel
/// (`DenseLayerPolicy.straightforward`).
@Suite struct FastPathTests {
    static let policies: [DenseLayerPolicy] = [
        .automatic,
        DenseLayerPolicy(form: .gram, products: .sparse, weightTerms: .gram),
        DenseLayerPolicy(form: .gram, products: .dense, weightTerms: .gram),
        DenseLayerPolicy(form: .gram, products: .sparse, weightTerms: .direct),
        DenseLayerPolicy(form: .gram, products: .dense, weightTerms: .direct),
        DenseLayerPolicy(form: .direct),
        DenseLayerPolicy(form: .direct, products: .sparse),
        DenseLayerPolicy(form: .direct, products: .dense),
    ]

    /// Unit-norm atoms and s-sparse signals plus a little noise, so the codes thin out over the layers
    /// like PUDLE's: dense-ish first layers, a few per cent non-zero later.
    static func data(m: Int, p: Int, batch: Int, s: Int, seed: UInt64) -> (w: Tensor, x: Tensor) {
        var rng = Random(seed: seed)
        var w = Tensor.normal([p, m], rng: &rng)
        w.normalizeRows()
        var z = Tensor(zeros: [batch, p])
        for i in 0..<batch {
            for j in rng.sample(s, from: p) { z[i, j] = rng.sign() * Float(rng.uniform(1, 2)) }
        }
        return (w, z.matmul(w) + 0.05 * Tensor.normal([batch, m], rng: &rng))
    }

    enum LambdaForm: CaseIterable { case scalar, perAtom, schedule }

    static func encoder(_ threshold: Threshold, _ algorithm: UnrolledEncoder.Algorithm, _ form: LambdaForm,
                        layers: Int, p: Int) -> (UnrolledEncoder, beta: Float) {
        let base: Float = threshold == .hard ? 0.12 : 0.25
        let lambda: Lambda = form == .perAtom ? .perAtom((0..<p).map { base * (0.6 + 0.8 * Float($0 % 7) / 6) }) : .scalar(base)
        let enc = UnrolledEncoder(layers: layers, algorithm: algorithm, threshold: threshold, lambda: lambda, step: .fixed(0.2))
        return (enc, form == .schedule ? 0.9 : 1)
    }

    /// A problem whose pre-activations all stay ≥ 1e-5 from the threshold's kink in the Double
    /// reference, so rounding differences between the paths (≈1e-7) cannot flip a mask.
    static func problem(m: Int, p: Int, batch: Int, s: Int, encoder: UnrolledEncoder, beta: Float,
                        seed: UInt64) -> (w: Tensor, x: Tensor) {
        for k in UInt64(0)..<200 {
            let (w, x) = data(m: m, p: p, batch: batch, s: s, seed: seed &* 1000 &+ k)
            let ref = ReferenceUnrolled(p: p, m: m, batch: batch, layers: encoder.layers, alpha: 0.2,
                                        threshold: encoder.threshold, fista: encoder.algorithm == .fista,
                                        lambdas: encoder.lambda.values(atoms: p).map(Double.init), beta: Double(beta))
            if ref.forward(w: doubles(w), x: doubles(x)).kinkMargin > 1e-5 { return (w, x) }
        }
        fatalError("no problem without near-kink pre-activations in 200 draws")
    }

    static func relative(_ a: Tensor, _ b: Tensor) -> Double { relativeDifference(doubles(a), doubles(b)) }

    static func dense(_ w: Tensor, _ policy: DenseLayerPolicy) throws -> DenseDictionary {
        var d = try DenseDictionary(weights: w)
        d.layerPolicy = policy
        return d
    }

    /// Item 4 of the performance issue: every gradient mode × threshold × encoder (λ scalar, per atom,
    /// or with the per-layer β schedule), every form and product policy, codes and gradients equal to
    /// the straightforward paths to 1e-5 relative. The sizes make the automatic cost model use dense
    /// sgemm in the first layers and the sparse rows later (checked).
    @Test func everyModeThresholdAndEncoderMatchesTheStraightforwardPath() throws {
        let (m, p, batch, layers) = (24, 96, 24, 12)
        var automaticForward = Set<Bool>(), automaticBackward = Set<Bool>()
        var forms = Set<String>()
        var combination = 0
        for threshold in Threshold.allCases {
            for algorithm in UnrolledEncoder.Algorithm.allCases {
                let form = LambdaForm.allCases[combination % 3]
                combination += 1
                let (enc, beta) = Self.encoder(threshold, algorithm, form, layers: layers, p: p)
                let (w, x) = Self.problem(m: m, p: p, batch: batch, s: 3, encoder: enc, beta: beta, seed: UInt64(combination))
                let generic = GenericDense(inner: try DenseDictionary(weights: w))
                let gram = try Self.dense(w, .straightforward)
                for mode in GradientMode.allCases {
                    let label = "\(mode) \(threshold) \(algorithm) \(form)"
                    let r0 = try mode.evaluate(signals: x, operator: generic, encoder: enc, beta: beta)
                    let r1 = try mode.evaluate(signals: x, operator: gram, encoder: enc, beta: beta)
                    #expect(Self.relative(r1.gradient, r0.gradient) < 1e-5, "\(label): straightforward Gram vs generic")
                    let zeros = r0.codes.zeroCount()
                    #expect(zeros > r0.codes.count / 2 && zeros < r0.codes.count, "\(label): codes should be sparse, not empty")
                    for policy in Self.policies {
                        let op = try Self.dense(w, policy)
                        let r = try mode.evaluate(signals: x, operator: op, encoder: enc, beta: beta)
                        let what = "\(label) \(policy.form)/\(policy.products)/\(policy.weightTerms)"
                        #expect(Self.relative(r.codes, r0.codes) < 1e-5, "\(what): codes")
                        #expect(Self.relative(r.gradient, r0.gradient) < 1e-5, "\(what): gradient \(Self.relative(r.gradient, r0.gradient))")
                        #expect(abs(r.losses.loss - r0.losses.loss) <= 1e-5 * abs(r0.losses.loss), "\(what): loss")
                        if policy == .automatic && mode.throughEncoder {
                            let (_, trace) = try enc.forward(x, with: op, beta: beta)
                            _ = enc.backward(trace, codeGradient: Tensor(repeating: 1, shape: trace.codeShape))
                            let report = try #require(trace.fastPath)
                            automaticForward.formUnion(report.forwardDense)
                            automaticBackward.formUnion(report.backwardDense)
                            forms.insert(report.form)
                        }
                    }
                }
            }
        }
        #expect(automaticForward == [false, true], "the automatic forward should use both branches")
        #expect(automaticBackward == [false, true], "the automatic backward should use both branches")
        #expect(forms == ["gram"])
    }

    /// Sparse layers taken in runs (each part of the samples through several layers in one parallel
    /// region, `DenseUnrolledEngine.sparseRun`) compute what the layer-by-layer loop computes: at 2
    /// workers, with runs and without, the codes of every layer, the dense/sparse choices and the number
    /// of layers are equal bit for bit. ISTA and FISTA; a λ decay that makes the late layers dense, so
    /// runs that reach them are undone; per-sample stopping (inference). fig5's sizes, so the work splits.
    @Test func sampleRunsEqualTheLayerByLayerForward() throws {
        let (w, x) = Self.data(m: 1000, p: 1500, batch: 50, s: 10, seed: 41)
        let runs = try DenseDictionary(weights: w)
        let layerByLayer = try Self.dense(w, DenseLayerPolicy(sampleRuns: false))
        let bits = { (t: Tensor) in t.data.map(\.bitPattern) }
        let cases: [(UnrolledEncoder.Algorithm, Float)] = [(.ista, 1), (.fista, 1), (.ista, 0.85)]
        try Parallel.withWorkers(2) {
            for (algorithm, beta) in cases {
                let enc = UnrolledEncoder(layers: 40, algorithm: algorithm, lambda: .scalar(0.2), step: .fixed(0.2))
                let (c1, t1) = try enc.forward(x, with: layerByLayer, beta: beta)
                let (c2, t2) = try enc.forward(x, with: runs, beta: beta)
                let (r1, r2) = (try #require(t1.fastPath), try #require(t2.fastPath))
                let label = "\(algorithm) β \(beta)"
                #expect(r1.forwardLayersInRuns == 0, "\(label)")
                // (β 0.85: the layers turn dense from about layer 10 on; the run of 8 that reaches them is undone.)
                #expect(r2.forwardLayersInRuns >= (beta < 1 ? 4 : 30), "\(label): \(r2.forwardLayersInRuns) layers in runs")
                #expect(r1.forwardDense == r2.forwardDense, "\(label)")
                #expect(r2.forwardDense.contains(true) == (beta < 1), "\(label): dense layers \(r2.forwardDense)")
                #expect(t1.layers == t2.layers && bits(c1) == bits(c2), "\(label): codes")
                for t in 1...t1.layers where bits(t1.layerCodes(t)) != bits(t2.layerCodes(t)) {
                    Issue.record("\(label): layer \(t) differs")
                }
                // Inference (no trace): runs take 16 rows at a time through their layers.
                #expect(bits(try enc.encode(x, with: layerByLayer, beta: beta)) == bits(try enc.encode(x, with: runs, beta: beta)),
                        "\(label): inference")
            }
            var enc = UnrolledEncoder(layers: 100, lambda: .scalar(0.2), step: .fixed(0.2), tolerance: 1e-4)
            enc.stopsPerSample = true
            #expect(bits(try enc.encode(x, with: layerByLayer)) == bits(try enc.encode(x, with: runs)), "per-sample stopping")
        }
        // One worker: inference still takes runs (rows kept in cache), with the same codes.
        try Parallel.withWorkers(1) {
            let enc = UnrolledEncoder(layers: 40, algorithm: .fista, lambda: .scalar(0.2), step: .fixed(0.2))
            let (a, b) = (try enc.encode(x, with: layerByLayer), try enc.encode(x, with: runs))
            #expect(bits(a) == bits(b), "one worker, inference")
        }
    }

    /// The backward takes its sparse layers through A in runs too (`DenseUnrolledEngine.backward`): each
    /// part's samples go layer by layer without waiting for the other parts, in the order one region per
    /// layer takes them, so ∂W is the same bit for bit with runs and without, at one and two workers.
    /// ISTA and FISTA at fig5's sizes, least squares (∂L/∂z_T from the codes) and a random ∂L/∂z_T.
    @Test func sampleRunsEqualTheLayerByLayerBackward() throws {
        let (w, x) = Self.data(m: 1000, p: 1500, batch: 50, s: 10, seed: 43)
        let runs = try DenseDictionary(weights: w)
        let layerByLayer = try Self.dense(w, DenseLayerPolicy(sampleRuns: false))
        let bits = { (t: Tensor) in t.data.map(\.bitPattern) }
        var rng = Random(seed: 7)
        for workers in [1, 2] {
            try Parallel.withWorkers(workers) {
                for algorithm in UnrolledEncoder.Algorithm.allCases {
                    let enc = UnrolledEncoder(layers: 40, algorithm: algorithm, lambda: .scalar(0.2), step: .fixed(0.2))
                    let label = "\(algorithm), \(workers) workers"
                    let (codes, t1) = try enc.forward(x, with: layerByLayer)
                    let (_, t2) = try enc.forward(x, with: runs)
                    for codeGradient in [codes, Tensor.normal(codes.shape, rng: &rng)] {
                        let (g1, g2) = (enc.backward(t1, codeGradient: codeGradient), enc.backward(t2, codeGradient: codeGradient))
                        let (r1, r2) = (try #require(t1.fastPath), try #require(t2.fastPath))
                        #expect(r1.backwardLayersInRuns == 0, "\(label)")
                        #expect(r2.backwardLayersInRuns >= 20, "\(label): \(r2.backwardLayersInRuns) layers in runs")
                        #expect(r1.backwardWeightTerms == r2.backwardWeightTerms, "\(label)")
                        #expect(bits(g1) == bits(g2), "\(label): ∂W differs by \(Self.relative(g1, g2))")
                    }
                }
            }
        }
    }

    /// Row blocks (`GramRowBlocks`) add the same terms to A as the samples one by one, so ∂W has the same
    /// bits. Signals drawn apart from the dictionary keep the codes dense (about 12 % of 1500 non-zero), so
    /// those samples add whole rows and the blocks fill (43 samples at p 1500) and flush several times per
    /// part; every third signal is weaker, its codes sparser, and it gathers instead, flushing the block early.
    @Test func rowBlocksEqualTheSampleBySampleBackward() throws {
        var rng = Random(seed: 44)
        var w = Tensor.normal([1500, 1000], rng: &rng)
        w.normalizeRows()
        var x = Tensor.normal([120, 1000], std: 0.15, rng: &rng)
        for i in stride(from: 0, to: 120, by: 3) {   // every third signal weaker: sparser codes, which gather
            for j in 0..<1000 { x[i, j] *= 0.5 }
        }
        // Every layer through A (the plan might send the weaker signals' sparse layers direct).
        let blocks = try Self.dense(w, DenseLayerPolicy(weightTerms: .gram))
        let sampleBySample = try Self.dense(w, DenseLayerPolicy(weightTerms: .gram, rowBlocks: false))
        // Entries whose bits differ (a count, so that a failure does not print 1.5 M values).
        let differing = { (a: Tensor, b: Tensor) in zip(a.data, b.data).filter { $0.bitPattern != $1.bitPattern }.count }
        for workers in [1, 2] {
            try Parallel.withWorkers(workers) {
                for algorithm in UnrolledEncoder.Algorithm.allCases {
                    let enc = UnrolledEncoder(layers: 12, algorithm: algorithm, lambda: .scalar(0.2), step: .fixed(0.2))
                    let label = "\(algorithm), \(workers) workers"
                    let (codes, t1) = try enc.forward(x, with: sampleBySample)
                    let (_, t2) = try enc.forward(x, with: blocks)
                    let g1 = enc.backward(t1, codeGradient: codes), g2 = enc.backward(t2, codeGradient: codes)
                    let (r1, r2) = (try #require(t1.fastPath), try #require(t2.fastPath))
                    #expect(r1.backwardTermsInRowBlocks == 0, "\(label)")
                    #expect((5 * 120..<11 * 120).contains(r2.backwardTermsInRowBlocks), "\(label): \(r2.backwardTermsInRowBlocks) in blocks")
                    #expect(differing(g1, g2) == 0, "\(label): ∂W differs by \(Self.relative(g1, g2))")
                    #expect(g1.squaredNorm() > 0)
                }
            }
        }
    }

    /// The fast path thresholds a vector at a time (`unroll_threshold_row`); the generic loop applies the
    /// scalar maps. With W = I and α = 1 the first layer's pre-activations are exactly X, so edge values —
    /// exactly ±b, one ulp either side, ±0, huge — reach both; their codes must agree bit for bit (19 atoms:
    /// vectors and a tail).
    @Test func thresholdRowsEqualTheScalarMaps() throws {
        let p = 19
        var w = Tensor(zeros: [p, p])
        for j in 0..<p { w[j, j] = 1 }
        let b: Float = 0.25
        let edges: [Float] = [b, -b, b.nextUp, b.nextDown, (-b).nextUp, (-b).nextDown, 0, -0.0, 1e30, -1e30,
                              0.1, -0.1, 0.3, -0.3, 2 * b, -2 * b, .leastNonzeroMagnitude, 7, -7]
        var rng = Random(seed: 3)
        var rows = [edges]
        for _ in 0..<4 { rows.append(edges.shuffled(using: &rng)) }
        let x = Tensor(rows: rows)
        for threshold in Threshold.allCases {
            let enc = UnrolledEncoder(layers: 1, threshold: threshold, lambda: .scalar(b), step: .fixed(1))
            let fast = try enc.encode(x, with: try DenseDictionary(weights: w))
            let generic = try enc.encode(x, with: GenericDense(inner: try DenseDictionary(weights: w)))
            #expect(fast.data.map(\.bitPattern) == generic.data.map(\.bitPattern), "\(threshold)")
            #expect(fast.zeroCount() > 0 && fast.zeroCount() < fast.count)
        }
    }

    /// The row kernel itself (`unroll_threshold_row`, at this CPU's vector width) against the scalar maps
    /// written here, on rows that end inside and at the edge of a vector: the codes bit for bit, and the
    /// support as the ascending indices of the entries whose bits are not ±0 (NaN included).
    @Test func thresholdRowKernelMatchesScalarMapsAndSupport() {
        var rng = Random(seed: 36)
        let b: Float = 0.25
        let edges: [Float] = [b, -b, b.nextUp, b.nextDown, (-b).nextUp, (-b).nextDown, 0, -0.0, 1e30, -1e30, .nan]
        let maps: [(Int32, (Float, Float) -> Float)] = [
            (0, { x, t in x - min(max(x, -t), t) }),
            (1, { x, t in max(x - t, 0) }),
            (2, { x, t in abs(x) > t ? x : 0 }),
        ]
        for n in [1, 7, 8, 9, 15, 16, 17, 31, 33, 100] {
            var v = (0..<n).map { _ in Float(rng.normal() * 0.3) }
            for q in 0..<min(n, edges.count) { v[rng.int(below: n)] = edges[q] }
            let t = (0..<n).map { _ in rng.uniform() < 0.3 ? b : Float(rng.uniform() * 0.4) }
            for (kind, map) in maps {
                var z = [Float](repeating: 9, count: n), support = [Int32](repeating: -1, count: n)
                let count = unroll_threshold_row(kind, n, v, t, &z, &support)
                let expected = (0..<n).map { map(v[$0], t[$0]) }
                // NaN in: NaN out of soft and non-negative (its payload aside), 0 out of hard.
                #expect(zip(z, expected).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }, "kind \(kind), n \(n)")
                let nonZeros = (0..<n).filter { z[$0].bitPattern & 0x7fff_ffff != 0 }.map(Int32.init)
                #expect(count == nonZeros.count && Array(support.prefix(count)) == nonZeros, "kind \(kind), n \(n): support")
            }
        }
    }

    /// One to three layers (the t = 1, y = 0 layer; FISTA's z₀ = 0 at t = 2), every policy and mode.
    @Test func shortNetworksMatch() throws {
        let (m, p, batch) = (10, 24, 7)
        for layers in 1...3 {
            for algorithm in UnrolledEncoder.Algorithm.allCases {
                for threshold in Threshold.allCases {
                    let (enc, _) = Self.encoder(threshold, algorithm, .scalar, layers: layers, p: p)
                    let (w, x) = Self.problem(m: m, p: p, batch: batch, s: 2, encoder: enc, beta: 1, seed: UInt64(40 + layers))
                    let generic = GenericDense(inner: try DenseDictionary(weights: w))
                    for mode in GradientMode.allCases {
                        let r0 = try mode.evaluate(signals: x, operator: generic, encoder: enc)
                        for policy in Self.policies {
                            let r = try mode.evaluate(signals: x, operator: try Self.dense(w, policy), encoder: enc)
                            let what = "T=\(layers) \(algorithm) \(threshold) \(mode) \(policy.form)/\(policy.products)/\(policy.weightTerms)"
                            #expect(Self.relative(r.codes, r0.codes) < 1e-5, "\(what): codes")
                            #expect(Self.relative(r.gradient, r0.gradient) < 1e-5, "\(what): gradient")
                        }
                    }
                }
            }
        }
    }

    /// The cost model takes the direct form when G = W·Wᵀ costs more than the layers it saves
    /// (p ≳ batch·layers) and the Gram form otherwise; both equal the reference.
    @Test func costModelPicksTheDirectFormForTinyBatches() throws {
        let (m, p, layers) = (32, 64, 6)
        let (enc, _) = Self.encoder(.soft, .fista, .scalar, layers: layers, p: p)
        for (batch, expected) in [(1, "direct"), (40, "gram")] {
            let (w, x) = Self.problem(m: m, p: p, batch: batch, s: 3, encoder: enc, beta: 1, seed: 77)
            let op = try DenseDictionary(weights: w)
            let (z, trace) = try enc.forward(x, with: op)
            #expect(trace.fastPath?.form == expected, "batch \(batch)")
            let reference = GenericDense(inner: op)
            #expect(Self.relative(z, try enc.encode(x, with: reference)) < 1e-5)
            let g = try GradientMode.leastSquares.evaluate(signals: x, operator: op, encoder: enc).gradient
            let g0 = try GradientMode.leastSquares.evaluate(signals: x, operator: reference, encoder: enc).gradient
            #expect(Self.relative(g, g0) < 1e-5, "batch \(batch)")
        }
    }

    /// A batch large enough to run on both cores (per-part scratch and accumulators) gives the codes of
    /// its sub-batches (each small enough to run on one), and its gradient is their mean. (Equal up to
    /// rounding: sgemm's blocking, hence the last bits of X·Wᵀ, depends on the batch size.)
    /// Rows of G and W at least `RowKernels.streamingRow` (256) long take the streaming kernel
    /// (`unroll_add_scaled_rows`); the other tests' small sizes never reach it.
    @Test func longRowsMatchTheStraightforwardPath() throws {
        let (m, p, batch, layers) = (300, 400, 6, 8)
        for (k, algorithm) in UnrolledEncoder.Algorithm.allCases.enumerated() {
            let (enc, beta) = Self.encoder(.soft, algorithm, .scalar, layers: layers, p: p)
            let (w, x) = Self.problem(m: m, p: p, batch: batch, s: 4, encoder: enc, beta: beta, seed: 40 + UInt64(k))
            let generic = GenericDense(inner: try DenseDictionary(weights: w))
            for mode in GradientMode.allCases {
                let r0 = try mode.evaluate(signals: x, operator: generic, encoder: enc, beta: beta)
                for form in [DenseLayerPolicy.Form.gram, .direct] {
                    let r = try mode.evaluate(signals: x, operator: try Self.dense(w, DenseLayerPolicy(form: form, products: .sparse)),
                                              encoder: enc, beta: beta)
                    let what = "\(mode) \(algorithm) \(form)"
                    #expect(Self.relative(r.codes, r0.codes) < 1e-5, "\(what): codes")
                    #expect(Self.relative(r.gradient, r0.gradient) < 1e-5, "\(what): gradient \(Self.relative(r.gradient, r0.gradient))")
                }
            }
        }
    }

    @Test func parallelPartsAgreeWithSmallBatches() throws {
        let (m, p, batch, layers, parts) = (24, 64, 600, 10, 6)
        let (w, x) = Self.data(m: m, p: p, batch: batch, s: 3, seed: 5)
        for form in [DenseLayerPolicy.Form.gram, .direct] {
            for algorithm in UnrolledEncoder.Algorithm.allCases {
                let (enc, _) = Self.encoder(.soft, algorithm, .scalar, layers: layers, p: p)
                let op = try Self.dense(w, DenseLayerPolicy(form: form, products: .sparse))
                let whole = try GradientMode.leastSquares.evaluate(signals: x, operator: op, encoder: enc)
                var mean = Tensor(zeros: w.shape)
                let size = batch / parts
                for k in 0..<parts {
                    let rows = x.rows((k * size)..<((k + 1) * size))
                    let r = try GradientMode.leastSquares.evaluate(signals: rows, operator: op, encoder: enc)
                    #expect(Self.relative(r.codes, whole.codes.rows((k * size)..<((k + 1) * size))) < 1e-6,
                            "\(form) \(algorithm) part \(k)")
                    mean.add(r.gradient, scaledBy: 1 / Float(parts))
                }
                #expect(Self.relative(whole.gradient, mean) < 1e-5, "\(form) \(algorithm)")
            }
        }
    }

    /// Inference runs in chunks of samples; the chunked codes equal the whole-batch forward's.
    @Test func chunkedInferenceEqualsTheWholeBatch() throws {
        let (m, p, batch) = (20, 48, 23)
        let (enc, beta) = Self.encoder(.nonNegative, .fista, .schedule, layers: 9, p: p)
        let (w, x) = Self.problem(m: m, p: p, batch: batch, s: 3, encoder: enc, beta: beta, seed: 6)
        let whole = try enc.forward(x, with: try Self.dense(w, .automatic), beta: beta).codes
        for chunk in [1, 5, 22] {
            let op = try Self.dense(w, DenseLayerPolicy(inferenceChunk: chunk))
            #expect(Self.relative(try enc.encode(x, with: op, beta: beta), whole) < 1e-6, "chunk \(chunk)")
        }
        #expect(Self.relative(whole, try enc.encode(x, with: GenericDense(inner: try DenseDictionary(weights: w)), beta: beta)) < 1e-5)
    }

    /// The tolerance stops the fast path at the same layer as the generic loop.
    @Test func toleranceStopsAtTheSameLayer() throws {
        let (m, p, batch) = (20, 40, 6)
        var (enc, _) = Self.encoder(.soft, .fista, .scalar, layers: 400, p: p)
        enc.tolerance = 1e-3
        let (w, x) = Self.data(m: m, p: p, batch: batch, s: 3, seed: 7)
        for policy in Self.policies {
            let (z, trace) = try enc.forward(x, with: try Self.dense(w, policy))
            let (z0, trace0) = try enc.forward(x, with: GenericDense(inner: try DenseDictionary(weights: w)))
            #expect(trace.layers == trace0.layers && trace.layers > 5 && trace.layers < 400, "\(policy.form)/\(policy.products): \(trace.layers) vs \(trace0.layers)")
            #expect(Self.relative(z, z0) < 1e-5)
        }
    }

    /// Per-sample stopping: every policy, the chunked path and the generic loop give each sample the code
    /// it gets when encoded alone with the batch-wide rule (an independent reference: one row's batch is
    /// itself), with samples stopping at different layers; tolerance 0 gives the fixed-T codes bit for bit;
    /// a trace cannot be asked for.
    @Test func perSampleToleranceStopsEachSampleOnItsOwn() throws {
        let (m, p, batch) = (20, 40, 9)
        for algorithm in UnrolledEncoder.Algorithm.allCases {
            var (enc, _) = Self.encoder(.soft, algorithm, .scalar, layers: 400, p: p)
            enc.tolerance = 1e-3
            let (w, x) = Self.data(m: m, p: p, batch: batch, s: 3, seed: 8)
            var alone = Tensor(zeros: [batch, p]), layers = Set<Int>()
            for i in 0..<batch {
                let r = try enc.solve(x.rows(i..<(i + 1)), with: GenericDense(inner: try DenseDictionary(weights: w)))
                alone.data.replaceSubrange((i * p)..<((i + 1) * p), with: r.codes.data)
                layers.insert(r.iterations)
            }
            #expect(layers.count > 2 && layers.max()! < 400, "samples stop at different layers: \(layers.sorted())")
            enc.stopsPerSample = true
            let ops: [(String, any DictionaryOperator)] = Self.policies.map { ("\($0.form)/\($0.products)", try! Self.dense(w, $0)) }
                + [("chunks of 4", try Self.dense(w, DenseLayerPolicy(inferenceChunk: 4))),
                   ("generic", GenericDense(inner: try DenseDictionary(weights: w)))]
            for (name, op) in ops {
                func encode<Op: DictionaryOperator>(_ op: Op) throws -> (codes: Tensor, iterations: Int) { try enc.solve(x, with: op) }
                let r = try encode(op)
                #expect(Self.relative(r.codes, alone) < 1e-5, "\(algorithm) \(name)")
                #expect(r.iterations == layers.max()!, "\(algorithm) \(name): \(r.iterations) layers")
            }
            var exact = enc
            exact.tolerance = 0
            exact.layers = 60
            var fixed = exact
            fixed.tolerance = nil
            for policy in Self.policies {
                let op = try Self.dense(w, policy)
                #expect(try exact.encode(x, with: op) == (try fixed.encode(x, with: op)), "\(algorithm) \(policy.form)/\(policy.products) at tolerance 0")
            }
            #expect(throws: UnrollError.self) { try enc.forward(x, with: try Self.dense(w, .automatic)) }
        }
    }

    /// The trace keeps masks and non-zero values: its layers decode to the generic path's codes, and it
    /// holds exactly rows·⌈p/64⌉ mask words, rows + 1 offsets and one value per non-zero per layer.
    @Test func compactTraceHoldsMasksAndValues() throws {
        let (m, p, batch, layers) = (24, 96, 24, 12)
        let (enc, _) = Self.encoder(.soft, .ista, .scalar, layers: layers, p: p)
        let (w, x) = Self.problem(m: m, p: p, batch: batch, s: 3, encoder: enc, beta: 1, seed: 8)
        let (_, fast) = try enc.forward(x, with: try DenseDictionary(weights: w))
        let (_, generic) = try enc.forward(x, with: GenericDense(inner: try DenseDictionary(weights: w)))
        var expectedBytes = 0
        for t in 1...layers {
            let z = fast.layerCodes(t)
            #expect(Self.relative(z, generic.layerCodes(t)) < 1e-5, "layer \(t)")
            expectedBytes += batch * ((p + 63) / 64) * 8 + (batch + 1) * 8 + 4 * (z.count - z.zeroCount())
        }
        #expect(fast.storedCodeBytes == expectedBytes)
        #expect(generic.storedCodeBytes == expectedBytes)
        #expect(fast.storedCodeBytes * 2 < 4 * layers * batch * p, "sparse codes should take well under the dense size")
    }

    /// An operator that records whether denormals were flushed when the encoder called it.
    struct FlushProbe: DictionaryOperator {
        var inner: DenseDictionary
        let seen: Box
        final class Box: @unchecked Sendable { var flags: [Bool] = [] }
        var weights: Tensor {
            get { inner.weights }
            set { inner.weights = newValue }
        }
        var atoms: Int { inner.atoms }
        func codeShape(signalShape: [Int]) throws -> [Int] { try inner.codeShape(signalShape: signalShape) }
        func signalShape(codeShape: [Int]) throws -> [Int] { try inner.signalShape(codeShape: codeShape) }
        func apply(_ codes: Tensor) -> Tensor {
            seen.flags.append(FlushDenormals.isEnabled)
            return inner.apply(codes)
        }
        func adjoint(_ signals: Tensor) -> Tensor { inner.adjoint(signals) }
        func weightGradient(residual: Tensor, codes: Tensor) -> Tensor { inner.weightGradient(residual: residual, codes: codes) }
        mutating func normalize() { inner.normalize() }
        func lipschitz(iterations: Int, rng: inout Random) -> Float { inner.lipschitz(iterations: iterations, rng: &rng) }
    }

    /// Encoding, gradient evaluation and training run with denormals flushed, and give the caller's
    /// setting back.
    @Test func entryPointsFlushDenormalsAndRestoreTheCallersSetting() throws {
        let (w, x) = Self.data(m: 8, p: 12, batch: 4, s: 2, seed: 9)
        let (enc, _) = Self.encoder(.soft, .ista, .scalar, layers: 4, p: 12)
        let probe = FlushProbe(inner: try DenseDictionary(weights: w), seen: .init())
        for callerSetting in [false, true] {
            let was = FlushDenormals.set(callerSetting)
            defer { FlushDenormals.set(was) }
            _ = try enc.encode(x, with: probe)
            _ = try GradientMode.leastSquares.evaluate(signals: x, operator: probe, encoder: enc)
            var trainer = try DictionaryTrainer(dictionary: probe, data: x,
                                                config: TrainerConfig(encoder: enc, mode: .leastSquares,
                                                                      optimizer: Optimizer(.sgd(momentum: 0), learningRate: 0.01)))
            try trainer.trainStep()
            _ = try enc.encode(x, with: try DenseDictionary(weights: w))
            #expect(FlushDenormals.isEnabled == callerSetting)
        }
        #expect(!probe.seen.flags.isEmpty && !probe.seen.flags.contains(false))
    }
}
