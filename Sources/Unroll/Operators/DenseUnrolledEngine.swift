import UnrollCore

/// The unrolled (F)ISTA network of a dense dictionary, computed on the codes' non-zeros (the fast path;
/// see docs/gradients.md, "Fast path").
///
/// After the first layers only a few per cent of the codes are non-zero, so a layer
///     v = y − α(y·G − C)      (Gram form, G = W·Wᵀ, C = X·Wᵀ)   or
///     v = y − α(y·W − X)·Wᵀ   (direct form)
/// is computed per sample as a sum over the non-zeros of y of rows of G (resp. W), on both cores, with no
/// allocation inside the layer loop. Layers whose input is still dense-ish use one sgemm instead
/// (`LayerCostModel.prefersDense`). The trace keeps only masks and non-zero values (`CodeHistory`), and the
/// backward works on the active set. Results equal the straightforward path's up to rounding
/// (Tests/UnrollTests/FastPathTests.swift).
///
/// One engine serves one dictionary (it caches G) and any number of forward passes; a backward pass
/// uses the history and signals of the forward it follows.
final class DenseUnrolledEngine {
    enum Form: String { case gram, direct }

    let form: Form
    let products: DenseLayerPolicy.Products
    let weightTerms: DenseLayerPolicy.WeightTerms
    let sampleRuns: Bool
    let rowBlocks: Bool
    /// W, `[p, m]`.
    let weights: Tensor
    let p: Int
    let m: Int
    /// G = W·Wᵀ (Gram form only), exactly symmetric.
    let gram: Buffer<Float>?

    /// Per layer of the latest forward / backward: dense sgemm used?
    private(set) var forwardDense: [Bool] = []
    /// Layers of the latest forward that ran in `sparseRun`s.
    private(set) var forwardLayersInRuns = 0
    /// Rows that go through a run's layers together when no trace is kept: their αC rows and codes (a few
    /// times 16 × p floats) stay in the core's cache across the layers.
    static let rowsPerBlock = 16
    var backwardDense: [Bool] = []
    var backwardWeightTerms: [String] = []
    /// Layers of the latest backward that ran in runs (sparse layers through A, one parallel region).
    var backwardLayersInRuns = 0
    /// Samples' layers whose terms of A went through row blocks in the latest backward.
    var backwardTermsInRowBlocks = 0

    init(weights: Tensor, policy: DenseLayerPolicy, batch: Int, layers: Int, training: Bool) {
        self.weights = weights
        self.p = weights.shape[0]
        self.m = weights.shape[1]
        self.products = policy.products
        self.weightTerms = policy.weightTerms
        self.sampleRuns = policy.sampleRuns
        self.rowBlocks = policy.rowBlocks
        switch policy.form {
        case .gram: form = .gram
        case .direct: form = .direct
        case .automatic:
            form = LayerCostModel.prefersGram(atoms: weights.shape[0], signalSize: weights.shape[1], batch: batch,
                                              layers: layers, training: training) ? .gram : .direct
        }
        gram = form == .gram ? Self.gramMatrix(weights) : nil
    }

    /// G = W·Wᵀ by syrk (half of sgemm's work), the upper triangle mirrored so G is exactly symmetric
    /// (the backward reads G[j, k] where the math has G[k, j]).
    private static func gramMatrix(_ w: Tensor) -> Buffer<Float> {
        let (p, m) = (w.shape[0], w.shape[1])
        let g = Buffer<Float>(zeros: p * p)
        w.data.withUnsafeBufferPointer { pw in
            BLAS.ssyrkUpper(n: p, k: m, alpha: 1, a: pw.baseAddress!, lda: m, beta: 0, c: g.base, ldc: p)
        }
        let base = g.base
        // The lower triangle from the upper, in 64×64 tiles so the transposed reads stay in cache.
        let tile = 64, tiles = (p + tile - 1) / tile
        Parallel.forEachChunk(tiles, minPerPart: p < 512 ? tiles : 1) { range in
            for bi in range {
                for bj in 0...bi {
                    for i in (bi * tile)..<min(p, (bi + 1) * tile) {
                        let row = base + i * p
                        for j in (bj * tile)..<min(i, (bj + 1) * tile) { row[j] = base[j * p + i] }
                    }
                }
            }
        }
        return g
    }

    // MARK: forward

    struct Forward {
        /// z_T (or the last layer run), `[B, p]`.
        var codes: Tensor
        /// z_1 … z_T when recorded.
        var history: CodeHistory?
        /// Layers run (fewer than T when the tolerance stopped early).
        var layers: Int
    }

    /// Runs the network on `signals` (`[B, m]`). `tolerance`: stop once ‖z_t − z_{t−1}‖ ≤ tol·‖z_t‖ over
    /// the batch (as `UnrolledEncoder.tolerance`), or, `perSample`, per sample: a sample whose code
    /// changed by at most that is final and skipped by the later layers (inference: not with `record`).
    func forward(_ signals: Tensor, schedule: LayerSchedule, alpha: Float, tolerance: Float?, perSample: Bool = false,
                 record: Bool) -> Forward {
        precondition(!(perSample && record), "per-sample stopping keeps no trace")
        return signals.data.withUnsafeBufferPointer { px in
            weights.data.withUnsafeBufferPointer { pw in
                forward(px.baseAddress!, rows: signals.rows, w: pw.baseAddress!, schedule: schedule, alpha: alpha,
                        tolerance: tolerance, perSample: perSample && tolerance != nil, record: record)
            }
        }
    }

    private func forward(_ x: UnsafePointer<Float>, rows batch: Int, w: UnsafePointer<Float>, schedule: LayerSchedule,
                         alpha: Float, tolerance: Float?, perSample: Bool, record: Bool) -> Forward {
        let (p, m, form) = (self.p, self.m, self.form)
        let fista = schedule.fista
        let threshold = schedule.threshold
        let workers = Parallel.workers

        // Workspaces, allocated once: z_t, z_{t−1} (and z_{t−2} for FISTA) in dense storage with each
        // row's support list; buffers for the dense branch; per-part scratch rows.
        let ring = fista ? 3 : 2
        let z = (0..<ring).map { _ in Buffer<Float>(zeros: batch * p) }
        let support = (0..<ring).map { _ in Buffer<Int32>(zeros: batch * p) }
        let counts = (0..<ring).map { _ in Buffer<Int32>(zeros: batch) }
        let mayUseDense = products != .sparse
        // Gram: αC = α·X·Wᵀ. Direct: the residual R = y·W − X of each layer.
        let scaledData = form == .gram ? Buffer<Float>(zeros: batch * p) : nil
        let residual = form == .direct ? Buffer<Float>(zeros: batch * m) : nil
        // The layer product y·G (Gram, dense branch) or R·Wᵀ (direct, every layer).
        let product = (form == .direct || mayUseDense) ? Buffer<Float>(zeros: batch * p) : nil
        // FISTA's y_t in dense storage, for the dense branch.
        let input = fista && mayUseDense ? Buffer<Float>(zeros: batch * p) : nil
        // Per part: the layer's thresholds (a part running several layers fills its own), scratch rows.
        let thresholds = Buffer<Float>(zeros: workers * p)
        let rowScratch = Buffer<Float>(zeros: workers * p)
        let indexScratch = Buffer<Int32>(zeros: workers * p)
        let coefScratch = Buffer<Float>(zeros: workers * p)
        let changeSums = Buffer<Double>(zeros: workers * 2)
        let history = record ? CodeHistory(rows: batch, width: p) : nil
        // Per-sample stopping: a converged row's code is copied here and the row is skipped from then on.
        let done = Buffer<UInt8>(zeros: perSample ? batch : 0)
        let final = Buffer<Float>(zeros: perSample ? batch * p : 0)
        let squaredTolerance = Double(tolerance ?? 0) * Double(tolerance ?? 0)
        @inline(__always) func skipped(_ i: Int) -> Bool { perSample && done.base[i] != 0 }
        var denseFlags: [Bool] = []
        denseFlags.reserveCapacity(schedule.layers)

        if let c = scaledData {
            BLAS.sgemm(transA: false, transB: true, m: batch, n: p, k: m, alpha: alpha, a: x, lda: m, b: w, ldb: m,
                       beta: 0, c: c.base, ldc: p)
        }

        /// Layer t's ring slots: z_t, z_{t−1}, z_{t−2} (slot 0 starts as z_0 = 0), and FISTA's μ_t.
        struct Slots {
            let zt: UnsafeMutablePointer<Float>, st: UnsafeMutablePointer<Int32>, nt: UnsafeMutablePointer<Int32>
            let z1: UnsafeMutablePointer<Float>, s1: UnsafeMutablePointer<Int32>, n1: UnsafeMutablePointer<Int32>
            let z2: UnsafeMutablePointer<Float>, s2: UnsafeMutablePointer<Int32>, n2: UnsafeMutablePointer<Int32>
            let mu: Float, momentum: Bool
        }
        func slots(_ t: Int) -> Slots {
            let (c0, c1, c2) = (t % ring, (t - 1) % ring, (t + ring - 2) % ring)
            return Slots(zt: z[c0].base, st: support[c0].base, nt: counts[c0].base,
                         z1: z[c1].base, s1: support[c1].base, n1: counts[c1].base,
                         z2: z[c2].base, s2: support[c2].base, n2: counts[c2].base,
                         mu: schedule.inputMomentum(layer: t), momentum: fista && t >= 2)
        }

        // Non-zeros of y_t over the rows not skipped (FISTA: the supports of consecutive layers mostly
        // coincide, so the larger of the two counts), and whether layer t is then one dense product.
        func inputNonZeros(_ l: Slots, _ t: Int, _ rows: Range<Int>) -> (a: Int, b: Int) {
            guard t >= 2 else { return (0, 0) }
            var a = 0, b = 0
            for i in rows where !skipped(i) { a += Int(l.n1[i]) }
            if l.momentum { for i in rows where !skipped(i) { b += Int(l.n2[i]) } }
            return (a, b)
        }
        let inner = form == .gram ? p : m
        func isDense(_ t: Int, nonZeros: Int) -> Bool {
            switch products {
            case .dense: return t >= 2
            case .sparse: return false
            case .automatic: return t >= 2 && LayerCostModel.prefersDense(nonZeros: nonZeros, rows: batch, inner: inner)
            }
        }

        // y_t's non-zeros for sample i into (index, coef·value) lists; returns their number.
        // ISTA: z_{t−1}. FISTA: z_{t−1} + μ(z_{t−1} − z_{t−2}) over the union of both supports.
        @inline(__always)
        func inputList(_ l: Slots, _ i: Int, _ index: UnsafeMutablePointer<Int32>, _ value: UnsafeMutablePointer<Float>) -> Int {
            let (r1, r2) = (l.z1 + i * p, l.z2 + i * p)
            let (l1, l2) = (l.s1 + i * p, l.s2 + i * p)
            let (mu, momentum) = (l.mu, l.momentum)
            var n = 0
            for q in 0..<Int(l.n1[i]) {
                let k = Int(l1[q])
                index[n] = l1[q]
                value[n] = momentum ? r1[k] + mu * (r1[k] - r2[k]) : r1[k]
                n += 1
            }
            if momentum {
                for q in 0..<Int(l.n2[i]) where r1[Int(l2[q])] == 0 {
                    let k = Int(l2[q])
                    index[n] = l2[q]
                    value[n] = r1[k] + mu * (r1[k] - r2[k])
                    n += 1
                }
            }
            return n
        }

        // Thresholds row i's pre-activation `v` into z_t; accumulates ‖z_t − z_{t−1}‖², ‖z_t‖².
        @inline(__always)
        func finish(_ l: Slots, _ i: Int, _ part: Int, _ v: UnsafePointer<Float>) {
            let row = l.zt + i * p
            l.nt[i] = Int32(threshold.applyRow(v, thresholds.row(part, p), p, row, l.st + i * p))
            if perSample {
                // Over the supports of z_t and z_{t−1} only: the other entries are 0 in both.
                let prev = l.z1 + i * p, (now, before) = (l.st + i * p, l.s1 + i * p)
                var (d, n) = (0.0, 0.0)
                for q in 0..<Int(l.nt[i]) {
                    let k = Int(now[q]), a = Double(row[k]), e = a - Double(prev[k])
                    d += e * e
                    n += a * a
                }
                for q in 0..<Int(l.n1[i]) where row[Int(before[q])] == 0 {
                    let e = Double(prev[Int(before[q])])
                    d += e * e
                }
                if d <= squaredTolerance * n {
                    done.base[i] = 1
                    (final.base + i * p).update(from: row, count: p)
                }
            } else if tolerance != nil {
                let prev = l.z1 + i * p
                var (d, n) = (0.0, 0.0)
                for j in 0..<p {
                    let a = Double(row[j]), e = a - Double(prev[j])
                    d += e * e
                    n += a * a
                }
                changeSums.base[2 * part] += d
                changeSums.base[2 * part + 1] += n
            }
        }

        // Gram form on the non-zeros: v_i = αC_i + y_i − α Σ_{k ∈ supp y_i} y_k G[k, :], thresholded.
        @inline(__always)
        func sparseGramRow(_ l: Slots, _ t: Int, _ i: Int, _ part: Int) {
            let v = rowScratch.row(part, p), index = indexScratch.row(part, p), coef = coefScratch.row(part, p)
            v.update(from: scaledData!.base + i * p, count: p)
            if t >= 2 {
                let n = inputList(l, i, index, coef)
                for q in 0..<n {
                    v[Int(index[q])] += coef[q]
                    coef[q] *= -alpha
                }
                RowKernels.scatterRows(p, v, gram!.base, stride: p, index, coef, n)
            }
            finish(l, i, part, v)
        }

        /// Layer t over the whole batch, each loop split over the workers; returns whether to stop.
        func layer(_ t: Int) -> Bool {
            let l = slots(t)
            for part in 0..<workers { schedule.thresholds(layer: t, into: thresholds.row(part, p)) }
            let (a, b) = inputNonZeros(l, t, 0..<batch)
            let nonZeros = max(a, b)
            let dense = isDense(t, nonZeros: nonZeros)
            denseFlags.append(dense)
            let (zt, z1, z2, mu) = (l.zt, l.z1, l.z2, l.mu)

            changeSums.fill(0)
            let rowWork = Double(batch * p) * 4
            if form == .gram {
                let c = scaledData!.base
                if !dense {
                    let work = rowWork + Double(nonZeros) * Double(p)
                    Parallel.forEachPart(batch, parts: LayerCostModel.parts(work: work, limit: workers)) { part, range in
                        for i in range where !skipped(i) { sparseGramRow(l, t, i, part) }
                    }
                } else {
                    // V = Y·G by sgemm, then v_i = y_i + αC_i − αV_i row by row.
                    let y = fista ? input!.base : z1
                    if fista { extrapolate(z1, z2, mu, into: y, count: batch * p) }
                    let prod = product!.base
                    BLAS.sgemm(transA: false, transB: false, m: batch, n: p, k: p, alpha: 1, a: y, lda: p,
                               b: gram!.base, ldb: p, beta: 0, c: prod, ldc: p)
                    Parallel.forEachPart(batch, parts: LayerCostModel.parts(work: rowWork, limit: workers)) { part, range in
                        let v = rowScratch.row(part, p)
                        for i in range where !skipped(i) {
                            let (yr, cr, pr) = (y + i * p, c + i * p, prod + i * p)
                            for j in 0..<p { v[j] = yr[j] + (cr[j] - alpha * pr[j]) }
                            finish(l, i, part, v)
                        }
                    }
                }
            } else {
                // R = y·W − X (rows of W over the non-zeros, or sgemm), V = R·Wᵀ, v_i = y_i − αV_i.
                let r = residual!.base, prod = product!.base
                if dense {
                    let y = fista ? input!.base : z1
                    if fista { extrapolate(z1, z2, mu, into: y, count: batch * p) }
                    r.update(from: x, count: batch * m)
                    BLAS.sgemm(transA: false, transB: false, m: batch, n: m, k: p, alpha: 1, a: y, lda: p,
                               b: w, ldb: m, beta: -1, c: r, ldc: m)
                } else {
                    let work = Double(batch * m) + Double(nonZeros) * Double(m)
                    Parallel.forEachPart(batch, parts: LayerCostModel.parts(work: work, limit: workers)) { part, range in
                        let index = indexScratch.row(part, p), coef = coefScratch.row(part, p)
                        for i in range where !skipped(i) {
                            let ri = r + i * m, xi = x + i * m
                            for k in 0..<m { ri[k] = -xi[k] }
                            if t >= 2 {
                                let n = inputList(l, i, index, coef)
                                RowKernels.scatterRows(m, ri, w, stride: m, index, coef, n)
                            }
                        }
                    }
                }
                BLAS.sgemm(transA: false, transB: true, m: batch, n: p, k: m, alpha: 1, a: r, lda: m, b: w, ldb: m,
                           beta: 0, c: prod, ldc: p)
                Parallel.forEachPart(batch, parts: LayerCostModel.parts(work: rowWork, limit: workers)) { part, range in
                    let v = rowScratch.row(part, p)
                    for i in range where !skipped(i) {
                        let pr = prod + i * p
                        if t == 1 {
                            for j in 0..<p { v[j] = -(alpha * pr[j]) }
                        } else {
                            let (r1, r2) = (z1 + i * p, z2 + i * p)
                            if l.momentum {
                                for j in 0..<p { v[j] = (r1[j] + mu * (r1[j] - r2[j])) - alpha * pr[j] }
                            } else {
                                for j in 0..<p { v[j] = r1[j] - alpha * pr[j] }
                            }
                        }
                        finish(l, i, part, v)
                    }
                }
            }

            history?.append(dense: zt, support: l.st, counts: l.nt)
            if perSample {
                var remaining = 0
                for i in 0..<batch where done.base[i] == 0 { remaining += 1 }
                return remaining == 0
            } else if let tol = tolerance {
                var (d, n) = (0.0, 0.0)
                for k in 0..<workers {
                    d += changeSums.base[2 * k]
                    n += changeSums.base[2 * k + 1]
                }
                let change = d == 0 ? 0 : (n > 0 ? (d / n).squareRoot() : .infinity)
                return change <= Double(tol)
            }
            return false
        }

        /// Layers t0 ..< t0 + count on the non-zeros, each part taking its samples through all of them in
        /// one parallel region: samples are independent, and per layer a fork-join costs more than a sparse
        /// layer of a small batch. The rows compute exactly what `layer` computes, provided that every layer
        /// of the run is sparse, which depends on the whole batch's counts: that is checked afterwards.
        /// Returns the layers that stand and whether the last of them stopped every sample (per-sample
        /// stopping). A run that does not stand is undone (0 layers); `sparse` then says how many of its
        /// layers were sparse, so that a run of exactly that many would stand (the rows' computations are
        /// deterministic).
        func sparseRun(from t0: Int, count: Int, parts: Int) -> (layers: Int, stopped: Bool, sparse: Int) {
            let layers = t0..<(t0 + count)
            // The ring slots layer t0 reads, kept so that a rejected run can be undone.
            let kept = fista ? [(t0 - 1) % ring, (t0 + ring - 2) % ring] : [(t0 - 1) % ring]
            let saved = kept.map { c in (z[c].copy(), support[c].copy(), counts[c].copy(), c) }
            let savedDone = perSample ? done.copy() : nil
            // Per part and layer: the input non-zeros (a, b) and the rows still running after it.
            let tallies = Buffer<Int>(zeros: parts * count * 3)
            let ranges = (0..<parts).map { (batch * $0 / parts)..<(batch * ($0 + 1) / parts) }
            let partHistories = record ? ranges.map { CodeHistory(rows: $0.count, width: p) } : []
            Parallel.forEachPart(batch, parts: parts) { part, range in
                Parallel.$workers.withValue(1) {
                    // Each row's layers depend on that row alone. Without a trace (kept layer by layer), a
                    // few rows go through all the run's layers before the next: their αC rows and codes
                    // stay in the core's cache, where the part's rows, layer by layer, did not.
                    let block = record ? range.count : Self.rowsPerBlock
                    for lo in Swift.stride(from: range.lowerBound, to: range.upperBound, by: Swift.max(1, block)) {
                        let rows = lo..<Swift.min(lo + block, range.upperBound)
                        for (k, t) in layers.enumerated() {
                            let l = slots(t)
                            schedule.thresholds(layer: t, into: thresholds.row(part, p))
                            let tally = tallies.base + (part * count + k) * 3
                            let (a, b) = inputNonZeros(l, t, rows)
                            (tally[0], tally[1]) = (tally[0] + a, tally[1] + b)
                            for i in rows where !skipped(i) { sparseGramRow(l, t, i, part) }
                            if perSample { for i in rows where done.base[i] == 0 { tally[2] += 1 } }
                            if record {
                                partHistories[part].append(dense: l.zt + lo * p, support: l.st + lo * p, counts: l.nt + lo)
                            }
                        }
                    }
                }
            }
            // The batch-wide decisions, replayed: each layer must be sparse; per-sample stopping ends the
            // forward at the first layer after which no sample runs.
            var stand = 0, stopped = false
            for (k, t) in layers.enumerated() {
                var (a, b, running) = (0, 0, 0)
                for part in 0..<parts {
                    let tally = tallies.base + (part * count + k) * 3
                    (a, b, running) = (a + tally[0], b + tally[1], running + tally[2])
                }
                if isDense(t, nonZeros: max(a, b)) { break }
                stand = k + 1
                if perSample && running == 0 {
                    stopped = true
                    break
                }
            }
            guard stand == count || stopped else {
                for (zc, sc, nc, c) in saved {
                    z[c].base.update(from: zc.base, count: zc.count)
                    support[c].base.update(from: sc.base, count: sc.count)
                    counts[c].base.update(from: nc.base, count: nc.count)
                }
                if let savedDone { done.base.update(from: savedDone.base, count: savedDone.count) }
                return (0, false, stand)
            }
            for k in 0..<stand {
                denseFlags.append(false)
                history?.append(concatenating: partHistories.map { $0.layers[k] })
            }
            return (stand, stopped, stand)
        }

        var t = 1
        var used = 0
        // Runs start at 4 layers and double while they stand. An undone run costs its length once; the
        // sparse layers it found are then taken as one run that stands.
        var runLength = 4
        forwardLayersInRuns = 0
        while t <= schedule.layers {
            // From layer 2 on, while the layers are sparse, batches of layers run in one parallel region.
            let remaining = schedule.layers - t + 1
            if sampleRuns && form == .gram && t >= 2 && remaining >= 2 && (tolerance == nil || perSample) {
                let l = slots(t)
                let (a, b) = inputNonZeros(l, t, 0..<batch)
                let count = min(runLength, remaining)
                let work = (Double(batch * p) * 4 + Double(max(a, b)) * Double(p)) * Double(count)
                let parts = LayerCostModel.parts(work: work, limit: workers)
                // On one worker a run saves no hand-offs, but without a trace its rows still keep to the cache.
                if !isDense(t, nonZeros: max(a, b)) && (parts > 1 || !record) {
                    let run = sparseRun(from: t, count: count, parts: min(parts, batch))
                    if run.layers > 0 {
                        forwardLayersInRuns += run.layers
                        t += run.layers
                        used = t - 1
                        if run.stopped { break }
                        runLength = min(2 * runLength, schedule.layers)
                        continue
                    }
                    if run.sparse >= 2 {
                        runLength = run.sparse
                        continue
                    }
                    runLength = 4
                }
            }
            used = t
            let stop = layer(t)
            t += 1
            if stop { break }
        }
        forwardDense = denseFlags
        let out = z[used % ring]
        var codes = Tensor(shape: [batch, p], data: Array(UnsafeBufferPointer(start: out.base, count: batch * p)))
        if perSample {
            codes.data.withUnsafeMutableBufferPointer { pc in
                for i in 0..<batch where done.base[i] != 0 { (pc.baseAddress! + i * p).update(from: final.base + i * p, count: p) }
            }
        }
        // The loops above address these through raw pointers: keep them alive until here.
        withExtendedLifetime((z, support, counts, scaledData, residual, product, input, done, final)) {}
        return Forward(codes: codes, history: history, layers: used)
    }

    /// y = z1 + μ(z1 − z2) elementwise (FISTA's extrapolation, same rounding as the row form).
    private func extrapolate(_ z1: UnsafePointer<Float>, _ z2: UnsafePointer<Float>, _ mu: Float,
                             into y: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forEachChunk(count, minPerPart: LayerCostModel.minWorkPerPart) { range in
            for q in range { y[q] = z1[q] + mu * (z1[q] - z2[q]) }
        }
    }
}
