import UnrollCore

extension DenseUnrolledEngine {
    /// ∂L/∂W summed over the layers of the forward pass recorded in `history` (on `signals`), given
    /// a_T = ∂L/∂z_T (`codeGradient`, `[B, p]`). The decoder's own term is not included.
    ///
    /// Going down from t = T, only entries on supports are ever read or written:
    ///   g_t = a_t on supp z_t                                                (the threshold's mask)
    ///   weight term −α[g_tᵀ(y_t W − X) + y_tᵀ(g_t W)], either
    ///     through A and S (Gram form): A += α g_tᵀ y_t (outer products on supp g × supp y), S += α g_t,
    ///       multiplied out once at the end: ∂W += −(A + Aᵀ)·W + Sᵀ·X; or
    ///     directly: rows of W at the supports (or four sgemms in a dense-ish layer)
    ///   dy_t = g_t − α g_t·DᵀD, needed only on supp z_{t−1} (and supp z_{t−2} for FISTA)
    ///   a_{t−1} = dy_t (ISTA) or P + (1 + μ) dy_t with P = −μ' dy_{t+1} (FISTA).
    /// The plan (`plan`) picks per layer the route and dense or sparse products by the cost model.
    func backward(history: CodeHistory, signals: Tensor, schedule: LayerSchedule, alpha: Float,
                  codeGradient: Tensor) -> Tensor {
        precondition(codeGradient.shape == [history.rows, p], "code gradient \(codeGradient.shape) vs codes [\(history.rows), \(p)]")
        precondition(signals.rows == history.rows, "signals \(signals.shape) vs \(history.rows) traced samples")
        var out = Tensor(zeros: [p, m])
        signals.data.withUnsafeBufferPointer { px in
            weights.data.withUnsafeBufferPointer { pw in
                codeGradient.data.withUnsafeBufferPointer { pa in
                    out.data.withUnsafeMutableBufferPointer { po in
                        backward(history, px.baseAddress!, pw.baseAddress!, schedule, alpha, pa.baseAddress!, po.baseAddress!)
                    }
                }
            }
        }
        return out
    }

    /// How one backward layer runs.
    struct LayerPlan {
        /// Weight term through A and S (true, Gram form only) or directly into ∂W.
        var throughGram: Bool
        /// The weight term's products by sgemm (dense copies of g and y).
        var denseWeights: Bool
        /// g·G by sgemm (Gram form; the direct form always multiplies (gW)·Wᵀ by sgemm).
        var denseInput: Bool
        var parts: Int
    }

    /// The backward plan, layer t at index t − 1, from the support sizes in the history.
    ///
    /// Costs in `LayerCostModel` units per layer: the input gradient on the non-zeros (gathers or row
    /// scatters with G) or by sgemm (B·p²); the weight term through A (Σ_i |g_i|·|y_i|, or B·p² by sgemm)
    /// or directly (Σ_i 2m(|g_i| + |y_i|) with rows of W, or 4·B·p·m by sgemm). Routing through A also
    /// costs the final (A + Aᵀ)·W once, which grows with A's non-zeros ≈ Σ_i |∪g_i|·|∪y_i| (unions of the
    /// supports of the layers routed through A). Supports shrink over the layers and the late ones repeat
    /// the same entries, so the plan routes the layers t ≥ t₀ through A and the earlier, denser ones
    /// directly, with t₀ minimising the total. In PUDLE's fig5 setting (p·m large) the first few layers
    /// go direct; in the theory setting (p = 100, m = 50) every layer goes through A.
    func plan(_ history: CodeHistory, _ fista: Bool, workers: Int) -> (plans: [LayerPlan], touched: (rows: [UInt64], cols: [UInt64])) {
        let (b, p, words, layers) = (history.rows, self.p, history.words, history.count)
        let speedup = LayerCostModel.gemmSpeedup
        let (bd, pd, md) = (Double(history.rows), Double(p), Double(m))
        let gramForm = form == .gram
        var plans = [LayerPlan](repeating: LayerPlan(throughGram: gramForm, denseWeights: false, denseInput: false, parts: 1),
                                count: layers)
        // Per layer: cost through A (without the final product), directly, and of the input gradient;
        // and A's estimated non-zeros if every layer from here to T went through A.
        var gramCost = [Double](repeating: 0, count: layers + 1), directCost = gramCost, pairsFrom = gramCost
        var directDenseFlags = [Bool](repeating: false, count: layers + 1)
        var gUnion = [UInt64](repeating: 0, count: b * words), yUnion = gUnion
        // Per layer t: the rows and columns of A that the layers t … T touch (all samples).
        var touchedRows = [[UInt64]](repeating: [UInt64](repeating: 0, count: words), count: layers + 2)
        var touchedCols = touchedRows
        for t in stride(from: layers, through: 2, by: -1) {
            touchedRows[t] = touchedRows[t + 1]
            touchedCols[t] = touchedCols[t + 1]
            let layer = history.layers[t - 1]
            let l1 = history.layers[t - 2], l2 = fista && t >= 3 ? history.layers[t - 3] : nil
            var inputSparse = 0.0, gramSparse = 0.0, directSparse = 0.0, pairs = 0.0
            for i in 0..<b {
                let ng = layer.count(row: i)
                var ny = 0, ug = 0, uy = 0
                let o = i * words
                for k in 0..<words {
                    let y = l1.mask[o + k] | (l2?.mask[o + k] ?? 0)
                    ny += y.nonzeroBitCount
                    gUnion[o + k] |= layer.mask[o + k]
                    yUnion[o + k] |= y
                    ug += gUnion[o + k].nonzeroBitCount
                    uy += yUnion[o + k].nonzeroBitCount
                    touchedRows[t][k] |= layer.mask[o + k]
                    touchedCols[t][k] |= y
                }
                inputSparse += LayerCostModel.sparseCost(terms: ng, needed: ny, width: p)
                gramSparse += LayerCostModel.sparseCost(terms: ng, needed: ny, width: p)
                directSparse += Double(2 * m * (ng + ny))
                pairs += Double(ug) * Double(uy)
            }
            let rowsCost = 3 * bd * pd   // writing dense copies of g and y
            let inputDense = bd * pd * pd / speedup + rowsCost
            let gramDense = bd * pd * pd / speedup + rowsCost
            let directDense = 4 * bd * pd * md / speedup + rowsCost
            var plan = LayerPlan(throughGram: gramForm, denseWeights: false, denseInput: false, parts: 1)
            gramCost[t] = min(gramSparse, gramDense)
            directCost[t] = min(directSparse, directDense)
            pairsFrom[t] = pairs
            plan.denseInput = gramForm && inputDense < inputSparse
            switch products {
            case .automatic: break
            case .sparse: plan.denseInput = false
            case .dense: plan.denseInput = gramForm
            }
            // The weight products are decided below with the route; parts from the larger sparse work.
            let work = (plan.denseInput ? 4 * bd * pd : inputSparse) + max(gramSparse, directSparse)
            plan.parts = LayerCostModel.parts(work: work, limit: workers)
            plans[t - 1] = plan
            // Remember both variants' sparse/dense choice for the route picked below.
            plans[t - 1].denseWeights = gramDense < gramSparse     // through A
            directDenseFlags[t] = directDense < directSparse
        }
        // t₀: layers t ≥ t₀ through A. The final product costs nnz·m on rows of W or p²m/speedup by sgemm.
        func finalCost(_ pairs: Double) -> Double {
            let nonZeros = min(pd * pd, 2 * pairs)
            return min(nonZeros * md, pd * pd * md / speedup)
        }
        var cutoff = layers + 1
        if gramForm {
            switch weightTerms {
            case .gram: cutoff = 2
            case .direct: cutoff = layers + 1
            case .automatic:
                var best = Double.infinity
                var throughGram = 0.0
                var direct = (2...max(2, layers)).reduce(0.0) { $0 + (layers >= 2 ? directCost[$1] : 0) }
                for t0 in stride(from: layers + 1, through: 2, by: -1) {
                    if t0 <= layers {
                        throughGram += gramCost[t0]
                        direct -= directCost[t0]
                    }
                    let total = throughGram + direct + (t0 <= layers ? finalCost(pairsFrom[t0]) : 0)
                    if total < best {
                        best = total
                        cutoff = t0
                    }
                }
            }
        }
        for t in stride(from: layers, through: 2, by: -1) {
            plans[t - 1].throughGram = t >= cutoff
            if !plans[t - 1].throughGram { plans[t - 1].denseWeights = directDenseFlags[t] }
            switch products {
            case .automatic: break
            case .sparse: plans[t - 1].denseWeights = false
            case .dense: plans[t - 1].denseWeights = true
            }
        }
        if layers >= 1 {
            plans[0].parts = LayerCostModel.parts(work: Double(history.layers[0].nonZeros) * (gramForm ? 1 : md),
                                                  limit: workers)
        }
        let t0 = min(cutoff, layers + 1)
        return (plans, (touchedRows[t0], touchedCols[t0]))
    }

    private func backward(_ history: CodeHistory, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                          _ schedule: LayerSchedule, _ alpha: Float, _ codeGradient: UnsafePointer<Float>,
                          _ out: UnsafeMutablePointer<Float>) {
        let (b, p, m, form) = (history.rows, self.p, self.m, self.form)
        let gram = form == .gram
        let words = history.words
        let fista = schedule.fista
        let workers = Parallel.workers
        let (plans, touched) = plan(history, fista, workers: workers)
        backwardDense = plans.map { $0.denseWeights || $0.denseInput }
        backwardWeightTerms = plans.map { $0.throughGram ? "gram" : "direct" }
        backwardLayersInRuns = 0
        let gramParts = plans.filter(\.throughGram).map(\.parts).max() ?? 1
        let anyDense = plans.contains { $0.denseWeights || $0.denseInput }
        let anyDirect = plans.dropFirst().contains { !$0.throughGram } || !gram
        let anyDenseDirect = plans.contains { !$0.throughGram && $0.denseWeights }

        // a (∂L/∂z_t on its support), P (FISTA's carried part of a_{t−1}), S = Σ α g_t (Gram route).
        let adj = Buffer<Float>(zeros: b * p)
        adj.base.update(from: codeGradient, count: b * p)
        let carry = fista ? Buffer<Float>(zeros: b * p) : nil
        let codeSum = gram ? Buffer<Float>(zeros: b * p) : nil
        // Per part: A (p×p, Gram route); ∂W (p×m, direct route; rows owned by parts).
        let gramAcc = gram ? (0..<gramParts).map { _ in Buffer<Float>(zeros: p * p) } : []
        let directAcc = anyDirect ? Buffer<Float>(zeros: p * m) : nil
        // Direct route on the non-zeros: per sample the (atom, coefficient) terms of −α[gᵀr + yᵀ(gW)]
        // (and α gᵀx at t = 1), re-sorted by atom so each ∂W row is built in one place.
        let terms = anyDirect ? DirectTerms(rows: b, atoms: p) : nil
        // Dense copies of g and y, the input-gradient product (g·G or (gW)·Wᵀ), gW, and R = yW − X.
        let gDense = anyDense ? Buffer<Float>(zeros: b * p) : nil
        let yDense = anyDense ? Buffer<Float>(zeros: b * p) : nil
        let product = (anyDense || !gram) ? Buffer<Float>(zeros: b * p) : nil
        // R and gW interleaved by sample (row 2i: R_i, row 2i + 1: (gW)_i), so that a direct term's
        // source row is one index into one matrix.
        let residualAndProduct = anyDirect ? Buffer<Float>(zeros: b * 2 * m) : nil
        let (residual, codeProduct) = (residualAndProduct.map { $0.base }, residualAndProduct.map { $0.base + m })
        _ = anyDenseDirect
        // Per-part scratch; `gRow` is kept all zeros between uses.
        let gValue = Buffer<Float>(zeros: workers * p)
        let yIndex = Buffer<Int32>(zeros: workers * p), yValue = Buffer<Float>(zeros: workers * p)
        let needFlags = Buffer<UInt8>(zeros: workers * p)
        let dyValue = Buffer<Float>(zeros: workers * p)
        let rowScratch = Buffer<Float>(zeros: workers * max(p, m)), gRow = Buffer<Float>(zeros: workers * p)
        // A's rows leave L2 when p is large: then the samples that add whole rows to A go through blocks.
        let blocks = rowBlocks && gram && GramRowBlocks.pays(atoms: p) ? GramRowBlocks(atoms: p, parts: workers) : nil
        // The supports of the three layers a step reads (t, t − 1, t − 2), decoded from the masks once
        // each: slot L % 3 holds layer L's sorted indices, row i at i·p.
        let decoded = (0..<3).map { _ in Buffer<Int32>(zeros: b * p) }
        var slotLayer = [0, 0, 0]
        /// The layers that layer t reads and the slots do not hold yet, now marked as held.
        func toDecode(_ t: Int) -> [Int] {
            var out: [Int] = []
            for l in fista ? [t, t - 1, t - 2] : [t, t - 1] where l >= 1 && slotLayer[l % 3] != l {
                slotLayer[l % 3] = l
                out.append(l)
            }
            return out
        }
        func decode(_ l: Int, rows: Range<Int>) {
            let (layer, out) = (history.layers[l - 1], decoded[l % 3].base)
            for i in rows { _ = layer.support(row: i, words: words, into: out + i * p) }
        }

        /// Layer t's inputs: its trace, the two before it, FISTA's momentum, the decoded supports.
        struct Step {
            let t: Int, layer: LayerCodes, l1: LayerCodes?, l2: LayerCodes?, mu: Float
            let s0: UnsafeMutablePointer<Int32>, s1: UnsafeMutablePointer<Int32>, s2: UnsafeMutablePointer<Int32>
        }
        func step(_ t: Int) -> Step {
            Step(t: t, layer: history.layers[t - 1], l1: t >= 2 ? history.layers[t - 2] : nil,
                 l2: fista && t >= 3 ? history.layers[t - 3] : nil, mu: schedule.inputMomentum(layer: t),
                 s0: decoded[t % 3].base, s1: decoded[(t + 2) % 3].base, s2: decoded[(t + 1) % 3].base)
        }

        // Row i's g_t: its indices (into the decoded supports) and its values from a into gv.
        @inline(__always)
        func loadG(_ s: Step, _ i: Int, _ gv: UnsafeMutablePointer<Float>) -> (UnsafePointer<Int32>, Int) {
            let gi = s.s0 + i * p, n = s.layer.count(row: i)
            let a = adj.base + i * p
            for q in 0..<n { gv[q] = a[Int(gi[q])] }
            return (UnsafePointer(gi), n)
        }

        // Row i's y_t (index/value lists over the union of supp z_{t−1} and supp z_{t−2}, formed as
        // the forward formed it); for FISTA the flags mark membership (bit 1: supp z_{t−1}, bit 2:
        // supp z_{t−2}). The same union is where dy_t is needed.
        @inline(__always)
        func loadY(_ s: Step, _ i: Int, _ part: Int) -> (UnsafePointer<Int32>, UnsafePointer<Float>, Int) {
            let (l1, mu) = (s.l1!, s.mu)
            let a1 = s.s1 + i * p, n1 = l1.count(row: i)
            let v1 = l1.values + l1.rowStart[i]
            if !fista { return (UnsafePointer(a1), UnsafePointer(v1), n1) }    // ISTA: y_t = z_{t−1}, straight from the trace
            let (yi, yv, flags) = (yIndex.row(part, p), yValue.row(part, p), needFlags.row(part, p))
            guard let l2 = s.l2 else {
                // FISTA's layer 2 (z_0 = 0)
                for q in 0..<n1 {
                    yi[q] = a1[q]
                    yv[q] = v1[q] + mu * (v1[q] - 0)
                    flags[q] = 1
                }
                return (UnsafePointer(yi), UnsafePointer(yv), n1)
            }
            let a2 = s.s2 + i * p, n2 = l2.count(row: i)
            let v2 = l2.values + l2.rowStart[i]
            let n = RowKernels.union(a1, n1, a2, n2, yi, flags)
            var (q1, q2) = (0, 0)
            for q in 0..<n {
                let f = flags[q]
                let z1: Float = f & 1 != 0 ? v1[q1] : 0
                let z2: Float = f & 2 != 0 ? v2[q2] : 0
                q1 += Int(f & 1)
                q2 += Int(f >> 1)
                yv[q] = z1 + mu * (z1 - z2)
            }
            return (UnsafePointer(yi), UnsafePointer(yv), n)
        }

        // dy_t = g − α g·DᵀD on the needed entries (loaded by loadG/loadY), then a_{t−1} and P;
        // g·DᵀD from the sgemm's product (`fromProduct`) or from the rows of G.
        @inline(__always)
        func inputGradient(_ s: Step, _ fromProduct: Bool, _ i: Int, _ part: Int, _ gi: UnsafePointer<Int32>, _ ng: Int,
                           _ need: UnsafePointer<Int32>, _ nn: Int) {
            let gv = gValue.row(part, p), flags = needFlags.row(part, p)
            let dy = dyValue.row(part, p), row = rowScratch.row(part, max(p, m))
            if fromProduct {
                let pr = product!.base + i * p
                for q in 0..<nn { dy[q] = -alpha * pr[Int(need[q])] }
            } else if LayerCostModel.prefersGather(terms: ng, needed: nn, width: p) {
                let g = self.gram!.base
                for q in 0..<nn { dy[q] = -alpha * RowKernels.gather(g + Int(need[q]) * p, gi, gv, ng) }
            } else {
                row.update(repeating: 0, count: p)
                RowKernels.scatterRows(p, row, self.gram!.base, stride: p, gi, gv, ng)
                for q in 0..<nn { dy[q] = -alpha * row[Int(need[q])] }
            }
            // + g on the needed entries (through a dense row: no branches)
            let gr = gRow.row(part, p)
            for q in 0..<ng { gr[Int(gi[q])] = gv[q] }
            for q in 0..<nn { dy[q] += gr[Int(need[q])] }
            for q in 0..<ng { gr[Int(gi[q])] = 0 }
            let a = adj.base + i * p
            if !fista {
                for q in 0..<nn { a[Int(need[q])] = dy[q] }
            } else {
                let (c, mu) = (carry!.base + i * p, s.mu)
                for q in 0..<nn {
                    let j = Int(need[q]), f = flags[q]
                    if f & 1 != 0 { a[j] = c[j] + (1 + mu) * dy[q] }
                    if f & 2 != 0 { c[j] = -mu * dy[q] }
                }
            }
        }

        // Pass 1 for row i: the weight term of layer t on the non-zeros, or the dense copies for the
        // sgemms; with `onePass` (no sgemm in the layer), the input gradient as well.
        @inline(__always)
        func passOne(_ s: Step, _ plan: LayerPlan, _ onePass: Bool, _ i: Int, _ part: Int) {
            let gv = gValue.row(part, p)
            let row = rowScratch.row(part, max(p, m))
            let (gi, ng) = loadG(s, i, gv)
            if s.t == 1 {
                if gram {
                    let c = codeSum!.base + i * p
                    for q in 0..<ng { c[Int(gi[q])] += alpha * gv[q] }
                } else {
                    // y_1 = 0: v = α X Wᵀ, so ∂W += α g_1ᵀ X.
                    terms!.set(sample: i, g: gi, gv, ng, scale: alpha, y: gi, gv, 0)
                }
                return
            }
            let (yi, yv, ny) = loadY(s, i, part)
            if plan.denseInput || plan.denseWeights {
                let gr = gDense!.base + i * p
                gr.update(repeating: 0, count: p)
                for q in 0..<ng { gr[Int(gi[q])] = gv[q] }
            }
            if plan.denseWeights {
                let yr = yDense!.base + i * p
                yr.update(repeating: 0, count: p)
                for q in 0..<ny { yr[Int(yi[q])] = yv[q] }
            }
            if plan.throughGram {
                let c = codeSum!.base + i * p
                for q in 0..<ng { c[Int(gi[q])] += alpha * gv[q] }
            }
            if plan.throughGram && !plan.denseWeights {
                let a = gramAcc[part].base
                if LayerCostModel.prefersGather(terms: ng, needed: ny, width: p) {
                    blocks?.flush(part, into: a)   // the earlier samples' terms first, as without blocks
                    // A[k, l] += α g_k y_l on supp g × supp y
                    for q in 0..<ng {
                        let ar = a + Int(gi[q]) * p, c = alpha * gv[q]
                        for r in 0..<ny { ar[Int(yi[r])] += c * yv[r] }
                    }
                } else if let blocks {
                    blocks.add(part, g: gi, gv, ng, scale: alpha, y: yi, yv, ny, flushingInto: a)
                } else {
                    // A[k, :] += α g_k y (y spread into a dense row)
                    row.update(repeating: 0, count: p)
                    for r in 0..<ny { row[Int(yi[r])] = yv[r] }
                    for q in 0..<ng { RowKernels.axpy(p, alpha * gv[q], row, a + Int(gi[q]) * p) }
                }
            } else if !plan.throughGram && !plan.denseWeights {
                // gW_i = Σ g_k W[k, :];  r_i = y_i W − x_i;  the terms −α g_k r_i (k ∈ supp g) and
                // −α y_l gW_i (l ∈ supp y) go to ∂W below, atom by atom.
                let (xi, gw, r) = (x + i * m, codeProduct! + i * 2 * m, residual! + i * 2 * m)
                gw.update(repeating: 0, count: m)
                RowKernels.scatterRows(m, gw, w, stride: m, gi, gv, ng)
                for k in 0..<m { r[k] = -xi[k] }
                RowKernels.scatterRows(m, r, w, stride: m, yi, yv, ny)
                terms!.set(sample: i, g: gi, gv, ng, scale: -alpha, y: yi, yv, ny)
            }
            if onePass { inputGradient(s, false, i, part, gi, ng, yi, ny) }
        }

        /// A sparse layer through A needs no product over the batch: its two halves are one pass per sample.
        func isSparseThroughGram(_ plan: LayerPlan) -> Bool { plan.throughGram && !plan.denseWeights && !plan.denseInput }

        var t = history.count
        while t >= 1 {
            let plan = plans[t - 1]
            // Layers t down to `low`, all sparse and through A on the same parts, in one parallel region:
            // a part takes its samples layer by layer without waiting for the others (samples are
            // independent), in the order of one region per layer, so A's sums are the same.
            var low = t
            if sampleRuns && isSparseThroughGram(plan) {
                while low > 2 && isSparseThroughGram(plans[low - 2]) && plans[low - 2].parts == plan.parts { low -= 1 }
            }
            if low < t {
                let run = Array(stride(from: t, through: low, by: -1))
                let decodes = run.map(toDecode)
                Parallel.forEachPart(b, parts: plan.parts) { part, range in
                    for (k, layer) in run.enumerated() {
                        for l in decodes[k] { decode(l, rows: range) }
                        let s = step(layer)
                        for i in range { passOne(s, plan, true, i, part) }
                    }
                    blocks?.flush(part, into: gramAcc[part].base)
                }
                backwardLayersInRuns += run.count
                t = low - 1
                continue
            }

            for l in toDecode(t) {
                let nonZeros = history.layers[l - 1].nonZeros
                Parallel.forEachChunk(b, minPerPart: max(1, LayerCostModel.minWorkPerPart / max(1, 2 * words + nonZeros / max(1, b)))) {
                    decode(l, rows: $0)
                }
            }
            let s = step(t)
            let fromProduct = plan.denseInput || !gram
            // Without sgemms in this layer, one pass per sample does both halves.
            let onePass = !fromProduct && !plan.denseWeights
            Parallel.forEachPart(b, parts: plan.parts) { part, range in
                for i in range { passOne(s, plan, onePass, i, part) }
                if plan.throughGram { blocks?.flush(part, into: gramAcc[part].base) }
            }
            if !plan.throughGram && !plan.denseWeights {
                // ∂W[k, :] += Σ c·(row i of R or gW; of X at t = 1) over the terms at atom k.
                terms!.accumulate(into: directAcc!.base, width: m, rows: t == 1 ? x : UnsafePointer(residualAndProduct!.base),
                                  listsPerSample: t == 1 ? 1 : 2, parts: plan.parts)
            }
            if t == 1 { break }

            // The sgemms of a dense-ish layer.
            if plan.denseWeights {
                let (gd, yd) = (gDense!.base, yDense!.base)
                if plan.throughGram {
                    // A += α gᵀy
                    BLAS.sgemm(transA: true, transB: false, m: p, n: p, k: b, alpha: alpha, a: gd, lda: p,
                               b: yd, ldb: p, beta: 1, c: gramAcc[0].base, ldc: p)
                } else {
                    // gW = g·W;  R = y·W − X;  ∂W −= α(gᵀR + yᵀ(gW))
                    let (gw, r, d) = (codeProduct!, residual!, directAcc!.base)
                    BLAS.sgemm(transA: false, transB: false, m: b, n: m, k: p, alpha: 1, a: gd, lda: p,
                               b: w, ldb: m, beta: 0, c: gw, ldc: 2 * m)
                    for i in 0..<b { (r + i * 2 * m).update(from: x + i * m, count: m) }
                    BLAS.sgemm(transA: false, transB: false, m: b, n: m, k: p, alpha: 1, a: yd, lda: p,
                               b: w, ldb: m, beta: -1, c: r, ldc: 2 * m)
                    BLAS.sgemm(transA: true, transB: false, m: p, n: m, k: b, alpha: -alpha, a: gd, lda: p,
                               b: r, ldb: 2 * m, beta: 1, c: d, ldc: m)
                    BLAS.sgemm(transA: true, transB: false, m: p, n: m, k: b, alpha: -alpha, a: yd, lda: p,
                               b: gw, ldb: 2 * m, beta: 1, c: d, ldc: m)
                }
            }
            if gram && plan.denseInput {
                BLAS.sgemm(transA: false, transB: false, m: b, n: p, k: p, alpha: 1, a: gDense!.base, lda: p,
                           b: self.gram!.base, ldb: p, beta: 0, c: product!.base, ldc: p)
            } else if !gram {
                BLAS.sgemm(transA: false, transB: true, m: b, n: p, k: m, alpha: 1, a: codeProduct!, lda: 2 * m,
                           b: w, ldb: m, beta: 0, c: product!.base, ldc: p)
            }

            // Pass 2 (after the sgemms): the input gradient.
            if !onePass {
                Parallel.forEachPart(b, parts: plan.parts) { part, range in
                    let gv = gValue.row(part, p)
                    for i in range {
                        let (gi, ng) = loadG(s, i, gv)
                        let (need, _, nn) = loadY(s, i, part)
                        inputGradient(s, fromProduct, i, part, gi, ng, need, nn)
                    }
                }
            }
            t -= 1
        }
        // (The loops address these through raw pointers: keep them alive until here.)
        withExtendedLifetime((adj, carry, gDense, yDense, product, residualAndProduct, decoded)) {}
        backwardTermsInRowBlocks = blocks?.added ?? 0

        // ∂W = Σ_parts (direct terms) − (A + Aᵀ)·W + Sᵀ·X
        if let d = directAcc { RowKernels.axpy(p * m, 1, d.base, out) }
        withExtendedLifetime((directAcc, terms)) {}
        guard gram else { return }
        // A is non-zero only on the rows and columns its layers touched.
        func list(_ mask: [UInt64]) -> [Int] {
            var out: [Int] = []
            for (k, word) in mask.enumerated() {
                var bits = word
                while bits != 0 {
                    out.append(k << 6 | bits.trailingZeroBitCount)
                    bits &= bits &- 1
                }
            }
            return out
        }
        let rows = list(touched.rows), cols = list(touched.cols)
        let total = gramAcc[0].base
        // The parts' A summed into the first, and its non-zeros counted, a range of rows per worker (each
        // entry adds the parts in the same order, whatever the split).
        let reduceParts = LayerCostModel.parts(work: Double(rows.count) * Double(p) * Double(gramAcc.count))
        let nonZeroCounts = Buffer<Int>(zeros: reduceParts)
        rows.withUnsafeBufferPointer { rp in
            cols.withUnsafeBufferPointer { cp in
                Parallel.forEachPart(rp.count, parts: reduceParts) { part, range in
                    var n = 0
                    for r in range {
                        let i = rp[r]
                        for k in 1..<gramAcc.count { RowKernels.axpy(p, 1, gramAcc[k].base + i * p, total + i * p) }
                        for k in cp { n += RowKernels.isNonZero(total[i * p + k]) }
                    }
                    nonZeroCounts.base[part] = n
                }
            }
        }
        let nonZeros = (0..<reduceParts).reduce(0) { $0 + nonZeroCounts.base[$1] }
        if LayerCostModel.prefersDense(nonZeros: 2 * nonZeros, rows: p, inner: p) {
            let sym = Buffer<Float>(zeros: p * p)
            for i in 0..<p {
                for j in 0..<p { sym.base[i * p + j] = total[i * p + j] + total[j * p + i] }
            }
            BLAS.sgemm(transA: false, transB: false, m: p, n: m, k: p, alpha: -1, a: sym.base, lda: p,
                       b: w, ldb: m, beta: 1, c: out, ldc: m)
            withExtendedLifetime(sym) {}
        } else {
            // −A·W: row i collects A[i, k]·W[k, :];  −Aᵀ·W: row k collects A[i, k]·W[i, :].
            // Each part owns the output rows it writes.
            let work = Double(rows.count * cols.count) + 2 * Double(nonZeros) * Double(m)
            let parts = LayerCostModel.parts(work: work)
            rows.withUnsafeBufferPointer { rp in
                cols.withUnsafeBufferPointer { cp in
                    Parallel.forEachPart(rp.count, parts: parts) { _, range in
                        for r in range {
                            let i = rp[r]
                            for k in cp where total[i * p + k] != 0 {
                                RowKernels.axpy(m, -total[i * p + k], w + k * m, out + i * m)
                            }
                        }
                    }
                    Parallel.forEachPart(cp.count, parts: parts) { _, range in
                        for c in range {
                            let k = cp[c]
                            for i in rp where total[i * p + k] != 0 {
                                RowKernels.axpy(m, -total[i * p + k], w + i * m, out + k * m)
                            }
                        }
                    }
                }
            }
        }
        var sNonZeros = 0
        let s = codeSum!.base
        for q in 0..<(b * p) { sNonZeros += RowKernels.isNonZero(s[q]) }
        Self.transposedSparseTimesDense(s, rows: b, cols: p, nonZeros: sNonZeros, x, width: m, into: out)
        withExtendedLifetime((gramAcc, codeSum)) {}
    }

    /// out += alpha·S·W for S `rows × inner` (dense storage, `nonZeros` of them non-zero) and W `inner × cols`:
    /// sgemm when dense enough, else each output row from the rows of W at S's non-zeros.
    static func sparseTimesDense(_ s: UnsafePointer<Float>, rows: Int, inner: Int, nonZeros: Int,
                                 _ w: UnsafePointer<Float>, cols: Int, alpha: Float, into out: UnsafeMutablePointer<Float>) {
        if LayerCostModel.prefersDense(nonZeros: nonZeros, rows: rows, inner: inner) {
            BLAS.sgemm(transA: false, transB: false, m: rows, n: cols, k: inner, alpha: alpha, a: s, lda: inner,
                       b: w, ldb: cols, beta: 1, c: out, ldc: cols)
            return
        }
        let work = Double(rows * inner) + Double(nonZeros) * Double(cols)
        Parallel.forEachPart(rows, parts: LayerCostModel.parts(work: work)) { _, range in
            for i in range {
                let si = s + i * inner, oi = out + i * cols
                for k in 0..<inner where si[k] != 0 { RowKernels.axpy(cols, alpha * si[k], w + k * cols, oi) }
            }
        }
    }

    /// out += Sᵀ·X for S `rows × cols` (dense storage, mostly zeros) and X `rows × width`: output row j
    /// collects S[i, j]·X[i, :]; each part owns a range of output rows.
    static func transposedSparseTimesDense(_ s: UnsafePointer<Float>, rows: Int, cols: Int, nonZeros: Int,
                                           _ x: UnsafePointer<Float>, width: Int, into out: UnsafeMutablePointer<Float>) {
        if LayerCostModel.prefersDense(nonZeros: nonZeros, rows: cols, inner: rows) {
            BLAS.sgemm(transA: true, transB: false, m: cols, n: width, k: rows, alpha: 1, a: s, lda: cols,
                       b: x, ldb: width, beta: 1, c: out, ldc: width)
            return
        }
        let work = Double(rows * cols) + Double(nonZeros) * Double(width)
        Parallel.forEachPart(cols, parts: LayerCostModel.parts(work: work)) { _, atoms in
            for i in 0..<rows {
                let si = s + i * cols, xi = x + i * width
                for j in atoms where si[j] != 0 { RowKernels.axpy(width, si[j], xi, out + j * width) }
            }
        }
    }
}

/// The Gram route's A += α g_kᵀ y for samples whose y is spread into a dense row (`prefersGather` false),
/// by blocks of samples. Sample by sample, each such sample re-reads and re-writes |supp g| rows of A, and
/// with p large A (p² floats per part) lives in L3. A block keeps its samples' y rows and α g values
/// (≤ 256 KB) and `flush` adds them atom by atom, so each touched row of A is read and written once while
/// all of its samples' terms go in. An entry of A receives the same fused multiply-adds in the same order,
/// samples in order (`RowKernels.scatterRows` rounds as one saxpy per term): the result has the same bits.
/// A sample that gathers instead flushes the block first.
final class GramRowBlocks {
    let atoms: Int, capacity: Int
    /// Per part: `capacity` y rows (all zeros outside a block), and per slot its atoms and α g values.
    let yRows: Buffer<Float>, slotAtoms: Buffer<Int32>, slotCoefs: Buffer<Float>, slotCounts: Buffer<Int32>
    let filled: Buffer<Int>
    /// Per part: samples added since the start (for `FastPathReport`).
    let addedPerPart: Buffer<Int>
    var added: Int { (0..<addedPerPart.count).reduce(0) { $0 + addedPerPart.base[$1] } }
    /// Per part, for `flush`: each atom's first term, and the terms by atom (slot, coefficient).
    let atomStart: Buffer<Int32>, sortedSlot: Buffer<Int32>, sortedCoef: Buffer<Float>

    /// Whether A's rows are large enough for blocks to pay: a part's A (p² floats) beyond the 1 MB of L2
    /// (the same crossover as `LayerCostModel.gatherCost(width:)`).
    static func pays(atoms p: Int) -> Bool { p > 512 }

    init(atoms p: Int, parts: Int) {
        atoms = p
        capacity = max(1, (256 << 10) / (4 * p))
        yRows = Buffer(zeros: parts * capacity * p)
        slotAtoms = Buffer(zeros: parts * capacity * p)
        slotCoefs = Buffer(zeros: parts * capacity * p)
        slotCounts = Buffer(zeros: parts * capacity)
        filled = Buffer(zeros: parts)
        addedPerPart = Buffer(zeros: parts)
        atomStart = Buffer(zeros: parts * (p + 1))
        sortedSlot = Buffer(zeros: parts * capacity * p)
        sortedCoef = Buffer(zeros: parts * capacity * p)
    }

    /// A sample's terms α g_k (k ∈ supp g) with its y; flushes into `a` when the block is full.
    @inline(__always)
    func add(_ part: Int, g gi: UnsafePointer<Int32>, _ gv: UnsafePointer<Float>, _ ng: Int, scale alpha: Float,
             y yi: UnsafePointer<Int32>, _ yv: UnsafePointer<Float>, _ ny: Int, flushingInto a: UnsafeMutablePointer<Float>) {
        let p = atoms, slot = filled.base[part], at = part * capacity + slot
        let y = yRows.base + at * p, k = slotAtoms.base + at * p, c = slotCoefs.base + at * p
        for r in 0..<ny { y[Int(yi[r])] = yv[r] }
        for q in 0..<ng {
            k[q] = gi[q]
            c[q] = alpha * gv[q]
        }
        slotCounts.base[at] = Int32(ng)
        filled.base[part] = slot + 1
        addedPerPart.base[part] += 1
        if slot + 1 == capacity { flush(part, into: a) }
    }

    /// Adds the block's terms into A (`a`, p × p) atom by atom, samples in order, and empties the block.
    func flush(_ part: Int, into a: UnsafeMutablePointer<Float>) {
        let (p, n) = (atoms, filled.base[part])
        guard n > 0 else { return }
        let first = part * capacity
        let start = atomStart.base + part * (p + 1)
        let (slots, coefs) = (sortedSlot.base + first * p, sortedCoef.base + first * p)
        start.update(repeating: 0, count: p + 1)
        for s in 0..<n {
            let k = slotAtoms.base + (first + s) * p
            for q in 0..<Int(slotCounts.base[first + s]) { start[Int(k[q]) + 1] += 1 }
        }
        for k in 0..<p { start[k + 1] += start[k] }
        // Fill in slot order, start[k] as the cursor; afterwards start[k] is atom k's end.
        for s in 0..<n {
            let (k, c) = (slotAtoms.base + (first + s) * p, slotCoefs.base + (first + s) * p)
            for q in 0..<Int(slotCounts.base[first + s]) {
                let e = Int(start[Int(k[q])])
                slots[e] = Int32(s)
                coefs[e] = c[q]
                start[Int(k[q])] = Int32(e + 1)
            }
        }
        // Row k of A takes its terms in one pass, one FMA per term in slot order (as the saxpys would).
        var e = 0
        for k in 0..<p where Int(start[k]) > e {
            RowKernels.scatterRows(p, a + k * p, yRows.base + first * p, stride: p, slots + e, coefs + e, Int(start[k]) - e)
            e = Int(start[k])
        }
        (yRows.base + first * p).update(repeating: 0, count: n * p)
        filled.base[part] = 0
    }
}

/// One layer's direct-route weight terms on the non-zeros: per sample, coefficients c at atoms k for the
/// row r_i (first list) and for gW_i (second list); `accumulate` re-sorts them by atom (counting sort)
/// and adds each atom's terms into its ∂W row, which stays in L1 while the sample rows stream from L2.
final class DirectTerms {
    let rows: Int, atoms: Int
    /// Per sample i: up to 2·atoms terms at i·2·atoms: first `firstCount[i]`, then `secondCount[i]`.
    let atom: Buffer<Int32>, coef: Buffer<Float>
    let firstCount: Buffer<Int32>, secondCount: Buffer<Int32>
    /// By atom: where its terms start, and each term as (sample·2 + list, coefficient).
    let atomStart: Buffer<Int>, source: Buffer<Int32>, sortedCoef: Buffer<Float>

    init(rows: Int, atoms: Int) {
        self.rows = rows
        self.atoms = atoms
        atom = Buffer(zeros: rows * 2 * atoms)
        coef = Buffer(zeros: rows * 2 * atoms)
        firstCount = Buffer(zeros: rows)
        secondCount = Buffer(zeros: rows)
        atomStart = Buffer(zeros: atoms + 1)
        source = Buffer(zeros: rows * 2 * atoms)
        sortedCoef = Buffer(zeros: rows * 2 * atoms)
    }

    /// Sample i's terms: scale·g at supp g (list 1) and scale·y at supp y (list 2).
    @inline(__always)
    func set(sample i: Int, g gi: UnsafePointer<Int32>, _ gv: UnsafePointer<Float>, _ ng: Int, scale: Float,
             y yi: UnsafePointer<Int32>, _ yv: UnsafePointer<Float>, _ ny: Int) {
        let (a, c) = (atom.base + i * 2 * atoms, coef.base + i * 2 * atoms)
        for q in 0..<ng {
            a[q] = gi[q]
            c[q] = scale * gv[q]
        }
        for q in 0..<ny {
            a[ng + q] = yi[q]
            c[ng + q] = scale * yv[q]
        }
        firstCount.base[i] = Int32(ng)
        secondCount.base[i] = Int32(ny)
    }

    /// out[k, :] += Σ c·rows[i·listsPerSample + list, :] over atom k's terms (sample i, list 0 or 1),
    /// one sparse row times `rows` per atom; parts own atoms.
    func accumulate(into out: UnsafeMutablePointer<Float>, width: Int, rows matrix: UnsafePointer<Float>,
                    listsPerSample: Int, parts: Int) {
        let (n, start) = (atoms, atomStart.base)
        start.update(repeating: 0, count: n + 1)
        for i in 0..<rows {
            let a = atom.base + i * 2 * n
            for q in 0..<Int(firstCount.base[i] + secondCount.base[i]) { start[Int(a[q]) + 1] += 1 }
        }
        for k in 0..<n { start[k + 1] += start[k] }
        // Fill in sample order (deterministic sums), using atomStart as the running cursor, then restore.
        for i in 0..<rows {
            let (a, c) = (atom.base + i * 2 * n, coef.base + i * 2 * n)
            let first = Int(firstCount.base[i])
            assert(listsPerSample == 2 || secondCount.base[i] == 0, "one list per sample, but sample \(i) has two")
            for q in 0..<(first + Int(secondCount.base[i])) {
                let k = Int(a[q]), e = start[k]
                source.base[e] = Int32(i * listsPerSample + (q < first ? 0 : 1))
                sortedCoef.base[e] = c[q]
                start[k] = e + 1
            }
        }
        for k in stride(from: n, to: 0, by: -1) { start[k] = start[k - 1] }
        start[0] = 0
        let total = start[n]
        let (s, c) = (source.base, sortedCoef.base)
        Parallel.forEachPart(n, parts: max(1, min(parts, LayerCostModel.parts(work: Double(total) * Double(width))))) { _, range in
            for k in range {
                RowKernels.scatterRows(width, out + k * width, matrix, stride: width, s + start[k], c + start[k],
                                       start[k + 1] - start[k])
            }
        }
    }
}
