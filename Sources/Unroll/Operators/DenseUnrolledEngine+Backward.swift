import UnrollCore

extension DenseUnrolledEngine {
    /// ∂L/∂W summed over the layers of the forward pass recorded in `history` (on `signals`), given
    /// a_T = ∂L/∂z_T (`codeGradient`, `[B, p]`). The decoder's own term is not included.
    ///
    /// Going down from t = T, only entries on supports are ever read or written:
    ///   g_t = a_t on supp z_t                                        (the threshold's mask)
    ///   Gram:   S += α g_t,  A += α g_tᵀ y_t   (outer products on supp g × supp y)
    ///   direct: ∂W += −α[g_tᵀ(y_t W − X) + y_tᵀ(g_t W)]   (rows of ∂W on the supports)
    ///   dy_t = g_t − α g_t·DᵀD, needed only on supp z_{t−1} (and supp z_{t−2} for FISTA)
    ///   a_{t−1} = dy_t (ISTA) or P + (1 + μ) dy_t with P = −μ' dy_{t+1} (FISTA)
    /// and at the end (Gram) ∂W = −(A + Aᵀ)·W + Sᵀ·X.
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

    /// The plan of one backward layer: dense sgemm or sparse, and how many parallel parts.
    private struct LayerPlan {
        var dense: Bool
        var parts: Int
    }

    /// Per layer t (index t − 1): dense or sparse by the cost model, from the support sizes.
    private func plan(_ history: CodeHistory, _ fista: Bool, workers: Int) -> [LayerPlan] {
        let (b, p) = (history.rows, self.p)
        var plans: [LayerPlan] = []
        for t in 1...history.count {
            let layer = history.layers[t - 1]
            guard t >= 2 else {
                plans.append(LayerPlan(dense: false, parts: LayerCostModel.parts(work: Double(layer.nonZeros) * Double(form == .gram ? 1 : m), limit: workers)))
                continue
            }
            let l1 = history.layers[t - 2], l2 = fista && t >= 3 ? history.layers[t - 3] : nil
            var sparse = 0.0
            for i in 0..<b {
                let ng = layer.count(row: i)
                let nn = l1.count(row: i) + (l2?.count(row: i) ?? 0)
                if form == .gram {
                    sparse += 2 * LayerCostModel.sparseCost(terms: ng, needed: nn, width: p)   // dy and A
                } else {
                    sparse += Double((ng + nn) * 2 * m)   // g·W, y·W and the two ∂W row updates
                }
            }
            sparse += Double(b * p)
            let denseCost = 2 * Double(b) * Double(p) * Double(p) / LayerCostModel.gemmSpeedup + 3 * Double(b * p)
            let dense: Bool
            switch products {
            case .dense: dense = form == .gram
            case .sparse: dense = false
            case .automatic: dense = form == .gram && denseCost < sparse
            }
            plans.append(LayerPlan(dense: dense, parts: LayerCostModel.parts(work: dense ? Double(4 * b * p) : sparse, limit: workers)))
        }
        return plans
    }

    private func backward(_ history: CodeHistory, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                          _ schedule: LayerSchedule, _ alpha: Float, _ codeGradient: UnsafePointer<Float>,
                          _ out: UnsafeMutablePointer<Float>) {
        let (b, p, m, form) = (history.rows, self.p, self.m, self.form)
        let words = history.words
        let fista = schedule.fista
        let workers = Parallel.workers
        let plans = plan(history, fista, workers: workers)
        backwardDense = plans.map(\.dense)
        let accumulatorParts = plans.filter { !$0.dense }.map(\.parts).max() ?? 1
        let anyDense = plans.contains { $0.dense }

        // a (∂L/∂z_t on its support), P (FISTA's carried part of a_{t−1}), S = Σ α g_t (Gram).
        let adj = Buffer<Float>(b * p, repeating: 0)
        adj.base.update(from: codeGradient, count: b * p)
        let carry = fista ? Buffer<Float>(b * p, repeating: 0) : nil
        let codeSum = form == .gram ? Buffer<Float>(b * p, repeating: 0) : nil
        // Per part: A (Gram, p×p) or ∂W (direct, p×m).
        let accWidth = form == .gram ? p : m
        let acc = (0..<accumulatorParts).map { _ in Buffer<Float>(p * accWidth, repeating: 0) }
        // Dense branch: g and y in dense storage, and g·G.
        let gDense = anyDense ? Buffer<Float>(b * p, repeating: 0) : nil
        let yDense = anyDense ? Buffer<Float>(b * p, repeating: 0) : nil
        let product = (anyDense || form == .direct) ? Buffer<Float>(b * p, repeating: 0) : nil
        let codeProduct = form == .direct ? Buffer<Float>(b * m, repeating: 0) : nil   // g·W
        // Per-part scratch.
        let gIndex = Buffer<Int32>(workers * p, repeating: 0), gValue = Buffer<Float>(workers * p, repeating: 0)
        let l1Index = Buffer<Int32>(workers * p, repeating: 0), l2Index = Buffer<Int32>(workers * p, repeating: 0)
        let yIndex = Buffer<Int32>(workers * p, repeating: 0), yValue = Buffer<Float>(workers * p, repeating: 0)
        let needFlags = Buffer<UInt8>(workers * p, repeating: 0)
        let dyValue = Buffer<Float>(workers * p, repeating: 0)
        let rowScratch = Buffer<Float>(workers * max(p, m), repeating: 0)

        for t in stride(from: history.count, through: 1, by: -1) {
            let plan = plans[t - 1]
            let layer = history.layers[t - 1]
            let l1 = t >= 2 ? history.layers[t - 2] : nil
            let l2 = fista && t >= 3 ? history.layers[t - 3] : nil
            let mu = schedule.inputMomentum(layer: t)

            // Row i's g_t: indices into gi, values (from a) into gv; returns the count.
            @inline(__always)
            func loadG(_ i: Int, _ gi: UnsafeMutablePointer<Int32>, _ gv: UnsafeMutablePointer<Float>) -> Int {
                let n = layer.support(row: i, words: words, into: gi)
                let a = adj.base + i * p
                for q in 0..<n { gv[q] = a[Int(gi[q])] }
                return n
            }

            // Row i's y_t (index/value lists, union of supp z_{t−1} and supp z_{t−2}); `needed` gets the
            // same union with flags (bit 1: in supp z_{t−1}, bit 2: in supp z_{t−2}). Returns the size.
            @inline(__always)
            func loadY(_ i: Int, _ part: Int) -> Int {
                let (yi, yv) = (yIndex.row(part, p), yValue.row(part, p))
                let a1 = l1Index.row(part, p), flags = needFlags.row(part, p)
                let n1 = l1!.support(row: i, words: words, into: a1)
                let v1 = l1!.values + l1!.rowStart[i]
                guard let l2 else {
                    // ISTA, or FISTA's layer 2 (z_0 = 0): y = z_{t−1} (+ μ z_{t−1}, as the forward formed it)
                    for q in 0..<n1 {
                        yi[q] = a1[q]
                        yv[q] = fista ? v1[q] + mu * (v1[q] - 0) : v1[q]
                        flags[q] = 1
                    }
                    return n1
                }
                let a2 = l2Index.row(part, p)
                let n2 = l2.support(row: i, words: words, into: a2)
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
                return n
            }

            // Pass 1: the weight terms of layer t (and the dense operands for the sgemm branch).
            Parallel.forEachPart(b, parts: plan.parts) { part, range in
                let gi = gIndex.row(part, p), gv = gValue.row(part, p)
                let yi = yIndex.row(part, p), yv = yValue.row(part, p)
                let row = rowScratch.row(part, max(p, m))
                let a = acc[min(part, acc.count - 1)].base
                for i in range {
                    let ng = loadG(i, gi, gv)
                    if form == .gram {
                        let s = codeSum!.base + i * p
                        for q in 0..<ng { s[Int(gi[q])] += alpha * gv[q] }
                        if t == 1 { continue }
                        let ny = loadY(i, part)
                        if plan.dense {
                            let gr = gDense!.base + i * p, yr = yDense!.base + i * p
                            gr.update(repeating: 0, count: p)
                            yr.update(repeating: 0, count: p)
                            for q in 0..<ng { gr[Int(gi[q])] = gv[q] }
                            for q in 0..<ny { yr[Int(yi[q])] = yv[q] }
                        } else if LayerCostModel.prefersGather(terms: ng, needed: ny, width: p) {
                            // A[k, l] += α g_k y_l on supp g × supp y
                            for q in 0..<ng {
                                let ar = a + Int(gi[q]) * p, c = alpha * gv[q]
                                for r in 0..<ny { ar[Int(yi[r])] += c * yv[r] }
                            }
                        } else {
                            // A[k, :] += α g_k y (y spread into a dense row)
                            row.update(repeating: 0, count: p)
                            for r in 0..<ny { row[Int(yi[r])] = yv[r] }
                            for q in 0..<ng { RowKernels.axpy(p, alpha * gv[q], row, a + Int(gi[q]) * p) }
                        }
                    } else {
                        let xi = x + i * m
                        if t == 1 {
                            // y_1 = 0: v = α X Wᵀ, so ∂W += α g_1ᵀ X.
                            for q in 0..<ng { RowKernels.axpy(m, alpha * gv[q], xi, a + Int(gi[q]) * m) }
                            continue
                        }
                        let ny = loadY(i, part)
                        // gW_i = Σ g_k W[k, :];  r_i = y_i W − x_i
                        let gw = codeProduct!.base + i * m
                        gw.update(repeating: 0, count: m)
                        RowKernels.scatterRows(m, gw, w, stride: m, gi, gv, ng)
                        for k in 0..<m { row[k] = -xi[k] }
                        RowKernels.scatterRows(m, row, w, stride: m, yi, yv, ny)
                        // ∂W[k, :] −= α g_k r_i (k ∈ supp g);  ∂W[l, :] −= α y_l gW_i (l ∈ supp y)
                        for q in 0..<ng { RowKernels.axpy(m, -alpha * gv[q], row, a + Int(gi[q]) * m) }
                        for r in 0..<ny { RowKernels.axpy(m, -alpha * yv[r], gw, a + Int(yi[r]) * m) }
                    }
                }
            }
            if t == 1 { break }

            // The dense products: g·G and A += α gᵀy (Gram, dense branch), or (g·W)·Wᵀ (direct).
            if form == .gram && plan.dense {
                BLAS.sgemm(transA: false, transB: false, m: b, n: p, k: p, alpha: 1, a: gDense!.base, lda: p,
                           b: gram!.base, ldb: p, beta: 0, c: product!.base, ldc: p)
                BLAS.sgemm(transA: true, transB: false, m: p, n: p, k: b, alpha: alpha, a: gDense!.base, lda: p,
                           b: yDense!.base, ldb: p, beta: 1, c: acc[0].base, ldc: p)
            } else if form == .direct {
                BLAS.sgemm(transA: false, transB: true, m: b, n: p, k: m, alpha: 1, a: codeProduct!.base, lda: m,
                           b: w, ldb: m, beta: 0, c: product!.base, ldc: p)
            }

            // Pass 2: dy_t = g − α g·DᵀD on supp z_{t−1} ∪ supp z_{t−2}, and a_{t−1}, P from it.
            let fromProduct = plan.dense || form == .direct
            Parallel.forEachPart(b, parts: plan.parts) { part, range in
                let gi = gIndex.row(part, p), gv = gValue.row(part, p)
                let need = yIndex.row(part, p), flags = needFlags.row(part, p)
                let dy = dyValue.row(part, p), row = rowScratch.row(part, max(p, m))
                for i in range {
                    let ng = loadG(i, gi, gv)
                    let nn = loadY(i, part)
                    if fromProduct {
                        let pr = product!.base + i * p
                        for q in 0..<nn { dy[q] = -alpha * pr[Int(need[q])] }
                    } else if LayerCostModel.prefersGather(terms: ng, needed: nn, width: p) {
                        let g = gram!.base
                        for q in 0..<nn { dy[q] = -alpha * RowKernels.gather(g + Int(need[q]) * p, gi, gv, ng) }
                    } else {
                        row.update(repeating: 0, count: p)
                        RowKernels.scatterRows(p, row, gram!.base, stride: p, gi, gv, ng)
                        for q in 0..<nn { dy[q] = -alpha * row[Int(need[q])] }
                    }
                    // + g on the needed entries (both lists sorted)
                    var k = 0
                    for q in 0..<nn {
                        let j = need[q]
                        while k < ng && gi[k] < j { k += 1 }
                        if k < ng && gi[k] == j { dy[q] += gv[k] }
                    }
                    let a = adj.base + i * p
                    if !fista {
                        for q in 0..<nn { a[Int(need[q])] = dy[q] }
                    } else {
                        let c = carry!.base + i * p
                        for q in 0..<nn {
                            let j = Int(need[q]), f = flags[q]
                            if f & 1 != 0 { a[j] = c[j] + (1 + mu) * dy[q] }
                            if f & 2 != 0 { c[j] = -mu * dy[q] }
                        }
                    }
                }
            }
        }

        // Sum the parts' accumulators.
        let total = acc[0].base
        for k in 1..<acc.count { RowKernels.axpy(p * accWidth, 1, acc[k].base, total) }
        // (The loops address the buffers through raw pointers: `withExtendedLifetime` keeps them alive.)
        withExtendedLifetime((adj, carry, gDense, yDense, product, codeProduct)) {}
        if form == .direct {
            out.update(from: total, count: p * m)
            withExtendedLifetime(acc) {}
            return
        }
        // ∂W = −(A + Aᵀ)·W + Sᵀ·X
        let sym = Buffer<Float>(p * p, repeating: 0)
        var symNonZeros = 0
        for i in 0..<p {
            for j in 0..<p {
                let s = total[i * p + j] + total[j * p + i]
                sym.base[i * p + j] = s
                symNonZeros += s != 0 ? 1 : 0
            }
        }
        Self.sparseTimesDense(sym.base, rows: p, inner: p, nonZeros: symNonZeros, w, cols: m, alpha: -1, into: out)
        var sNonZeros = 0
        let s = codeSum!.base
        for q in 0..<(b * p) { sNonZeros += s[q] != 0 ? 1 : 0 }
        Self.transposedSparseTimesDense(s, rows: b, cols: p, nonZeros: sNonZeros, x, width: m, into: out)
        withExtendedLifetime((acc, sym, codeSum)) {}
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
